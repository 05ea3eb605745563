"""Partition images (FAT, NTFS, raw) from a staged directory tree, without root or FUSE.

Debian's own tools write the file systems, so their on-disk format is exactly what Linux and
fsck already trust: FAT with dosfstools + mtools, NTFS with mkntfs + wimlib (which writes into
an NTFS volume *file* through libntfs-3g). What they do not give us is reproducibility, so:

* FAT: ``mkfs.fat --invariant -i <id>`` fixes the serial and boot-sector constants; mtools
  honours ``SOURCE_DATE_EPOCH`` for every directory-entry time (files are copied without
  ``-m``), and directories/files are created in sorted order, never in readdir order.
* NTFS: ``mkntfs -T`` seeds its "random" values from a zero clock, so the bare volume is
  fixed; libntfs-3g then stamps the MFT-change time of every record it touches with the wall
  clock. After applying the files we rewrite all times in the MFT and in the ``$I30`` index
  entries to the build epoch (and replace the volume serial, otherwise equal for all volumes),
  re-applying NTFS update-sequence fix-ups — see :func:`normalize_ntfs`.

Images are sparse: the output is truncated to size and the tools write only metadata and file
data, so a hole is always a free cluster (or FAT file tail) that no file system structure reads.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from ..errors import FFUError
from ..util.atomic import atomic_path
from . import wimapply

_SBIN = ("/usr/sbin", "/sbin")
_WIN_BAD = set('<>:"/\\|?*')
_FAT_LABEL_BAD = set('<>:"/\\|?*+,.;=[]')
_ARG_BATCH = 200  # files per mtools invocation (keeps argv far below ARG_MAX)
FILETIME_EPOCH_OFFSET = 11644473600


# ------------------------------------------------------------------------------------ utilities


def _tool(name: str, package: str) -> str:
    found = shutil.which(name)
    if not found:
        for d in _SBIN:
            cand = os.path.join(d, name)
            if os.access(cand, os.X_OK):
                found = cand
                break
    if not found:
        raise FFUError(f"{name} not found; install the Debian package {package} (apt-get install {package})")
    return found


def _no_fsync() -> list[str]:
    """`eatmydata` (Debian package eatmydata) as a command prefix, if installed. libntfs-3g fsyncs
    the volume file when it closes it: a build waited ~1.5 s per GiB of MainOS for the disk, for
    durability that no other output has (every output is a temp file renamed into place, never
    fsynced: a killed build leaves nothing half-written, a power cut may). Same bytes either way."""
    found = shutil.which("eatmydata")
    return [found] if found else []


class ToolError(FFUError):
    """An external tool failed; `stderr` keeps its whole error output, `status` its exit status."""

    def __init__(self, message: str, file: str | None, stderr: str, status: int | None = None):
        super().__init__(message, file)
        self.stderr = stderr
        self.status = status


def _run(
    argv: list[str], out: Path, env: dict[str, str] | None = None, name: str | None = None
) -> subprocess.CompletedProcess:
    name = name or os.path.basename(argv[1] if os.path.basename(argv[0]) == "eatmydata" else argv[0])
    try:
        res = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, env=env, check=False)
    except OSError as exc:
        raise FFUError(f"cannot run {argv[0]}: {exc.strerror}", str(out)) from None
    if res.returncode < 0:  # Ctrl-C reaches the whole process group: not the tool's fault, say so
        sig = -res.returncode
        why = {
            signal.SIGINT: "was interrupted (Ctrl-C)",
            signal.SIGTERM: "was terminated (SIGTERM)",
            signal.SIGXFSZ: "exceeded the file size limit (SIGXFSZ, ulimit -f)",
        }.get(sig)
        if why is None:
            why = f"was killed by {signal.Signals(sig).name if sig in signal.valid_signals() else f'signal {sig}'}"
        raise ToolError(f"{name} {why}", str(out), "", res.returncode)
    if res.returncode != 0:
        text = (res.stderr or b"").decode("utf-8", "replace").replace("\r", "\n")
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("[ERROR]")]  # wimlib: the cause precedes a summary
        last = errors[-1] if errors else lines[-1] if lines else f"exit status {res.returncode}"
        raise ToolError(f"{name} failed: {last}", str(out), text, res.returncode)
    return res


@dataclass(frozen=True)
class _Entry:
    rel: tuple[str, ...]  # path components below the staged root
    path: Path
    is_dir: bool
    size: int


def _scan(staged_dir: str | Path) -> list[_Entry]:
    """Every entry of the staged tree, parents before children, siblings sorted by name."""
    root = Path(staged_dir)
    if not root.is_dir():
        raise FFUError("staged directory does not exist", str(root))
    out: list[_Entry] = []

    def walk(d: Path, rel: tuple[str, ...]) -> None:
        try:
            names = sorted(os.listdir(d))
        except OSError as exc:
            raise FFUError(f"cannot read directory: {exc.strerror}", str(d)) from None
        folded: dict[str, str] = {}
        for name in names:
            p = d / name
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                raise FFUError("file name is not valid UTF-8", str(p)) from None
            if any(c in _WIN_BAD or ord(c) < 0x20 for c in name) or name.endswith((" ", ".")):
                raise FFUError(
                    f"file name {name!r} is not valid on Windows (reserved character or trailing dot/space)",
                    str(p),
                )
            key = name.casefold()
            if key in folded:
                raise FFUError(
                    f"{name!r} and {folded[key]!r} differ only in case; Windows file systems "
                    "cannot hold both",
                    str(p),
                )
            folded[key] = name
            st = os.lstat(p)
            if stat.S_ISDIR(st.st_mode):
                out.append(_Entry(rel + (name,), p, True, 0))
                walk(p, rel + (name,))
            elif stat.S_ISREG(st.st_mode):
                out.append(_Entry(rel + (name,), p, False, st.st_size))
            else:
                kind = "symbolic link" if stat.S_ISLNK(st.st_mode) else "special file"
                raise FFUError(
                    f"{kind} in a staged partition tree; only files and directories can be imaged", str(p)
                )

    walk(root, ())
    return out


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _prepare(tmp: Path, size_bytes: int, sector_size: int) -> None:
    if size_bytes <= 0 or size_bytes % sector_size:
        raise FFUError(
            f"partition size {size_bytes} is not a positive multiple of the sector size {sector_size}",
            str(tmp),
        )
    with open(tmp, "r+b") as fh:
        fh.truncate(size_bytes)


# -------------------------------------------------------------------------------------------- FAT

# Windows' default cluster sizes (KB140365): (volume bytes up to, cluster bytes).
_FAT16_CLUSTERS = (
    (16 << 20, 2048),
    (32 << 20, 512),
    (64 << 20, 1024),
    (128 << 20, 2048),
    (256 << 20, 4096),
    (512 << 20, 8192),
    (1 << 30, 16384),
    (2 << 30, 32768),
    (4 << 30, 65536),
)
_FAT32_CLUSTERS = (
    (64 << 20, 512),
    (128 << 20, 1024),
    (256 << 20, 2048),
    (8 << 30, 4096),
    (16 << 30, 8192),
    (32 << 30, 16384),
    (1 << 62, 32768),
)
FAT12_MAX_CLUSTERS = 4084
FAT16_MAX_CLUSTERS = 65524
_MARGIN = 64  # clusters: mkfs.fat's alignment may cost a few; never sit right above a lower bound


def _fat_clusters(size_bytes: int, sector_size: int, bits: int, cluster: int) -> int:
    """Data clusters of a FAT volume (Microsoft fatgen103 arithmetic, 512 root entries)."""
    sectors = size_bytes // sector_size
    spc = cluster // sector_size
    rsvd = 32 if bits == 32 else 1
    root = 0 if bits == 32 else _ceil_div(512 * 32, sector_size)
    count = (sectors - rsvd - root) // spc
    for _ in range(8):
        fat = _ceil_div(_ceil_div((count + 2) * bits, 8), sector_size)
        count = max(0, (sectors - rsvd - root - 2 * fat) // spc)
    return count


def fat_parameters(
    size_bytes: int,
    *,
    sector_size: int = 512,
    fat_type: int | str | None = None,
    cluster_size: int | None = None,
) -> tuple[int, int]:
    """(FAT bits, cluster bytes) as Windows' format picks them.

    ``fat_type`` None/"FAT" means Windows' FAT: FAT16's default cluster size for the volume size,
    FAT12 when that leaves fewer than 4085 clusters (Microsoft's type rule). "FAT32"/32 uses the
    FAT32 table and needs at least 65525 clusters (≈ 33 MiB). Explicit `cluster_size` wins.
    """
    kind = {None: None, "FAT": None, "FAT12": 12, "FAT16": 16, "FAT32": 32, 12: 12, 16: 16, 32: 32}
    if fat_type not in kind:
        raise FFUError(f"unknown FAT type {fat_type!r}; use FAT, FAT32, 12, 16 or 32")
    want = kind[fat_type]
    if cluster_size is not None and (
        cluster_size < sector_size or cluster_size & (cluster_size - 1) or cluster_size > 64 * 1024
    ):
        raise FFUError(
            f"FAT cluster size {cluster_size} must be a power of two between the sector size and 64 KiB"
        )
    if want == 32:
        cluster = cluster_size or next(c for lim, c in _FAT32_CLUSTERS if size_bytes <= lim)
        cluster = max(cluster, sector_size)
        while (
            cluster_size is None
            and cluster > sector_size
            and _fat_clusters(size_bytes, sector_size, 32, cluster) < FAT16_MAX_CLUSTERS + 1 + _MARGIN
        ):
            cluster //= 2
        if _fat_clusters(size_bytes, sector_size, 32, cluster) < FAT16_MAX_CLUSTERS + 1 + _MARGIN:
            raise FFUError(
                f"a {size_bytes}-byte volume is too small for FAT32 (needs at least 65525 clusters, "
                "about 33 MiB); use FAT"
            )
        return 32, cluster
    if size_bytes > (4 << 30):
        raise FFUError(f"a {size_bytes}-byte volume is too large for FAT12/16 (4 GiB at most); use FAT32")
    if cluster_size:
        cluster = cluster_size
    elif size_bytes < 7 << 20:
        cluster = sector_size
        while _fat_clusters(size_bytes, sector_size, 12, cluster) > FAT12_MAX_CLUSTERS:
            cluster *= 2
    else:
        cluster = max(sector_size, next(c for lim, c in _FAT16_CLUSTERS if size_bytes <= lim))
    if want is None:
        n16 = _fat_clusters(size_bytes, sector_size, 16, cluster)
        if (
            cluster_size is None
            and FAT12_MAX_CLUSTERS < n16 < FAT12_MAX_CLUSTERS + 1 + _MARGIN
            and cluster > sector_size
        ):
            cluster //= 2
            n16 = _fat_clusters(size_bytes, sector_size, 16, cluster)
        want = 12 if _fat_clusters(size_bytes, sector_size, 12, cluster) <= FAT12_MAX_CLUSTERS else 16
        if want == 16 and n16 > FAT16_MAX_CLUSTERS:
            raise FFUError(
                f"cluster size {cluster} gives {n16} clusters, too many for FAT16; use a larger "
                "cluster size or FAT32"
            )
    return want, cluster


def _needs_lfn(name: str) -> bool:
    base, dot, ext = name.rpartition(".") if "." in name[1:] else (name, "", "")
    ok = set("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'()-@^_`{}~")
    return not (
        0 < len(base) <= 8
        and len(ext) <= 3
        and (not dot or ext)
        and all(c.upper() in ok for c in base + ext)
        and (base.isupper() or base.islower() or not any(c.isalpha() for c in base))
        and (ext.isupper() or ext.islower() or not any(c.isalpha() for c in ext))
    )


def _dir_entries(names: list[str]) -> int:
    n = 0
    for name in names:
        n += 1
        if _needs_lfn(name):
            n += _ceil_div(len(name.encode("utf-16-le")) // 2, 13)
    return n


def _fat_boot_clusters(img: Path) -> tuple[int, int, int]:
    """(bits, data clusters, cluster bytes) read back from the boot sector mkfs.fat wrote."""
    with open(img, "rb") as fh:
        bs = fh.read(512)
    bps, spc, rsvd, nfats, root_ents, tot16 = struct.unpack_from("<HBHBHH", bs, 11)
    fat16 = struct.unpack_from("<H", bs, 22)[0]
    tot32, fat32 = struct.unpack_from("<I", bs, 32)[0], struct.unpack_from("<I", bs, 36)[0]
    fatsz = fat16 or fat32
    total = tot16 or tot32
    root = _ceil_div(root_ents * 32, bps)
    clusters = (total - rsvd - nfats * fatsz - root) // spc
    bits = 12 if clusters <= FAT12_MAX_CLUSTERS else 16 if clusters <= FAT16_MAX_CLUSTERS else 32
    return bits, clusters, bps * spc


def _fat_label(label: str) -> str:
    if len(label) > 11 or not label.isascii() or any(c in _FAT_LABEL_BAD or ord(c) < 0x20 for c in label):
        raise FFUError(
            f'FAT volume label {label!r} must be at most 11 ASCII characters without <>:"/\\|?*+,.;=[]'
        )
    return label.upper()


def write_fat(
    staged_dir: str | Path,
    out_path: str | Path,
    *,
    size_bytes: int,
    cluster_size: int | None = None,
    label: str,
    fat_type: int | str | None = None,
    timestamp: int,
    sector_size: int = 512,
    hidden_sectors: int = 0,
    volume_id: int | None = None,
) -> Path:
    """Write a FAT12/16/32 image of `staged_dir` (see :func:`fat_parameters` for the type)."""
    mkfs = _tool("mkfs.fat", "dosfstools")
    mmd, mcopy, mlabel = (_tool(t, "mtools") for t in ("mmd", "mcopy", "mlabel"))
    out = Path(out_path)
    label = _fat_label(label)
    bits, cluster = fat_parameters(
        size_bytes, sector_size=sector_size, fat_type=fat_type, cluster_size=cluster_size
    )
    entries = _scan(staged_dir)
    if volume_id is None:
        volume_id = zlib.crc32(f"{label}\0{timestamp}\0{size_bytes}".encode())
    with atomic_path(out, mode=0o644) as tmp, tempfile.TemporaryDirectory(prefix="ffuforge-mtools-") as home:
        _prepare(tmp, size_bytes, sector_size)
        argv = [
            mkfs,
            "--invariant",
            "-F",
            str(bits),
            "-S",
            str(sector_size),
            "-s",
            str(cluster // sector_size),
            "-i",
            f"{volume_id & 0xFFFFFFFF:08x}",
            "-h",
            str(hidden_sectors),
            "-f",
            "2",
            "-M",
            "0xf8",
        ]
        if bits != 32:
            argv += ["-r", "512"]
        _run(argv + [str(tmp)], out)
        real_bits, clusters, real_cluster = _fat_boot_clusters(tmp)
        if real_bits != bits or real_cluster != cluster:
            raise FFUError(
                f"mkfs.fat made FAT{real_bits} with {clusters} clusters of {real_cluster} bytes, "
                f"expected FAT{bits}/{cluster}; choose another size or cluster size",
                str(out),
            )
        _fat_check_fits(entries, bits, clusters, cluster, size_bytes, out)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": home,
            "MTOOLSRC": os.devnull,
            "MTOOLS_SKIP_CHECK": "1",
            "MTOOLS_NAME_NUMERIC_TAIL": "1",
            "LC_ALL": "C.UTF-8",
            "TZ": "UTC",
            "SOURCE_DATE_EPOCH": str(int(timestamp)),
        }
        img = ["-i", str(tmp)]
        if label:
            _run([mlabel, *img, f"::{label}"], out, env)
        dirs = [e for e in entries if e.is_dir]
        for i in range(0, len(dirs), _ARG_BATCH):
            _run([mmd, *img, *("::/" + "/".join(e.rel) for e in dirs[i : i + _ARG_BATCH])], out, env)
        by_dir: dict[tuple[str, ...], list[_Entry]] = {}
        for e in entries:
            if not e.is_dir:
                by_dir.setdefault(e.rel[:-1], []).append(e)
        for parent in sorted(by_dir):
            files = by_dir[parent]
            target = "::/" + "".join(p + "/" for p in parent)
            for i in range(0, len(files), _ARG_BATCH):
                try:
                    _run([mcopy, *img, *(str(e.path) for e in files[i : i + _ARG_BATCH]), target], out, env)
                except ToolError as exc:
                    if "disk full" in exc.stderr.lower():
                        raise FFUError(
                            f"content does not fit in the {size_bytes}-byte FAT partition ({exc.message})",
                            str(out),
                        ) from None
                    raise
    return out


def _fat_check_fits(
    entries: list[_Entry], bits: int, clusters: int, cluster: int, size_bytes: int, out: Path
) -> None:
    children: dict[tuple[str, ...], list[str]] = {(): []}
    need = 0
    total = 0
    for e in entries:
        children.setdefault(e.rel[:-1], []).append(e.rel[-1])
        if e.is_dir:
            children.setdefault(e.rel, [])
        else:
            need += _ceil_div(e.size, cluster)
            total += e.size
    for rel, names in children.items():
        n = _dir_entries(names)
        if rel == ():
            n += 1  # volume label entry
            if bits != 32:
                if n > 512:
                    raise FFUError(
                        f"the FAT{bits} root directory holds 512 entries; the staged root needs {n} "
                        "(move files into a subdirectory)",
                        str(out),
                    )
                continue
        else:
            n += 2  # "." and ".."
        need += max(1, _ceil_div(n * 32, cluster))
    if need > clusters:
        raise FFUError(
            f"content does not fit: {total} bytes in {len(entries)} entries need {need} clusters of "
            f"{cluster} bytes, the {size_bytes}-byte FAT{bits} partition has {clusters}",
            str(out),
        )


# ------------------------------------------------------------------------------------------ NTFS


def write_ntfs(
    staged_dir: str | Path,
    out_path: str | Path,
    *,
    size_bytes: int,
    cluster_size: int = 4096,
    label: str,
    timestamp: int,
    sector_size: int = 512,
    hidden_sectors: int = 0,
    serial: int | None = None,
) -> Path:
    """Write an NTFS image of `staged_dir` (mkntfs, then wimlib applies the tree into the volume file)."""
    mkntfs = _tool("mkntfs", "ntfs-3g")
    wimlib = _tool("wimlib-imagex", "wimtools")
    out = Path(out_path)
    if cluster_size < sector_size or cluster_size & (cluster_size - 1) or cluster_size > 2 * 1024 * 1024:
        raise FFUError(
            f"NTFS cluster size {cluster_size} must be a power of two between the sector size and 2 MiB",
            str(out),
        )
    if len(label) > 32:
        raise FFUError(f"NTFS volume label {label!r} is longer than 32 characters", str(out))
    entries = _scan(staged_dir)
    # Lower bound of what the tree needs (data clusters + 1 KiB MFT record each + mkntfs metadata ≈ 0.5 %);
    # the real check is libntfs-3g running out of space, reported below.
    need = sum(_ceil_div(e.size, cluster_size) * cluster_size for e in entries if e.size > 512)
    need += 1024 * len(entries) + size_bytes // 200 + (1 << 20)
    if need > size_bytes:
        total = sum(e.size for e in entries)
        raise FFUError(
            f"content does not fit: {total} bytes in {len(entries)} entries need about {need} bytes, "
            f"the NTFS partition has {size_bytes}",
            str(out),
        )
    if serial is None:
        serial = zlib.crc32(f"{label}\0{timestamp}\0{size_bytes}".encode()) << 32 | zlib.crc32(
            f"{size_bytes}\0{label}\0{timestamp}".encode()
        )
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8", "TZ": "UTC"}
    with atomic_path(out, mode=0o644) as tmp:
        _prepare(tmp, size_bytes, sector_size)
        _run(
            [
                *_no_fsync(),
                mkntfs,
                "-F",
                "-Q",
                "-T",
                "-q",
                "-s",
                str(sector_size),
                "-c",
                str(cluster_size),
                "-L",
                label,
                "-p",
                str(hidden_sectors),
                "-H",
                "0",
                "-S",
                "0",
                str(tmp),
            ],
            out,
            env,
        )
        if entries:
            try:
                _apply_tree(Path(staged_dir), tmp, out, env, wimlib)
            except ToolError as exc:
                if "no space left" in exc.stderr.lower():
                    raise FFUError(
                        f"content does not fit in the {size_bytes}-byte NTFS partition ({exc.message})",
                        str(out),
                    ) from None
                raise
        normalize_ntfs(tmp, timestamp, serial=serial)
    return out


_LIBWIM = {"usable": True}  # until the helper finds no libwim in this process's environment


def _apply_tree(staged_dir: Path, volume: Path, out: Path, env: dict[str, str], wimlib: str) -> None:
    """Write the staged tree into the NTFS volume file: libwim straight from the tree (see
    :mod:`ffuforge.wimapply`), else `wimlib-imagex` capture into a WIM file, then apply. Same bytes."""
    if _LIBWIM["usable"]:
        try:
            _run(
                [*_no_fsync(), sys.executable, "-I", "-S", wimapply.__file__, str(staged_dir), str(volume)],
                out,
                env,
                "wimlib",
            )
            return
        except ToolError as exc:
            if exc.status != wimapply.UNAVAILABLE:
                raise
            _LIBWIM["usable"] = False
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.wim-", dir=out.parent) as td:
        wim = os.path.join(td, "tree.wim")
        _run([wimlib, "capture", str(staged_dir), wim, "--compress=none", "--no-acls", "--norpfix"], out, env)
        _run([*_no_fsync(), wimlib, "apply", wim, "1", str(volume), "--no-acls"], out, env)


# NTFS on-disk constants
_AT_STANDARD_INFORMATION, _AT_ATTRIBUTE_LIST, _AT_FILE_NAME, _AT_DATA = 0x10, 0x20, 0x30, 0x80
_AT_INDEX_ROOT, _AT_INDEX_ALLOCATION, _AT_END = 0x90, 0xA0, 0xFFFFFFFF


def _unfixup(buf: bytearray, sector: int, what: str) -> None:
    usa_ofs, usa_count = struct.unpack_from("<HH", buf, 4)
    usn = buf[usa_ofs : usa_ofs + 2]
    for i in range(1, usa_count):
        end = i * sector
        if buf[end - 2 : end] != usn:
            raise FFUError(f"NTFS {what} fails its update-sequence check; the volume is corrupt")
        buf[end - 2 : end] = buf[usa_ofs + 2 * i : usa_ofs + 2 * i + 2]


def _fixup(buf: bytearray, sector: int) -> None:
    usa_ofs, usa_count = struct.unpack_from("<HH", buf, 4)
    usn = buf[usa_ofs : usa_ofs + 2]
    for i in range(1, usa_count):
        end = i * sector
        buf[usa_ofs + 2 * i : usa_ofs + 2 * i + 2] = buf[end - 2 : end]
        buf[end - 2 : end] = usn


def _runlist(buf: bytes | bytearray, off: int) -> list[tuple[int, int | None]]:
    """Decode a mapping-pairs array into (cluster count, LCN or None for a sparse run)."""
    runs = []
    lcn = 0
    while buf[off]:
        hdr = buf[off]
        nl, no = hdr & 0xF, hdr >> 4
        length = int.from_bytes(buf[off + 1 : off + 1 + nl], "little")
        if no:
            lcn += int.from_bytes(buf[off + 1 + nl : off + 1 + nl + no], "little", signed=True)
            runs.append((length, lcn))
        else:
            runs.append((length, None))
        off += 1 + nl + no
    return runs


class _Extents:
    """Byte access to a non-resident attribute through its runlist."""

    def __init__(self, fh, cluster: int, runs: list[tuple[int, int | None]]):
        self.fh, self.cluster, self.runs = fh, cluster, runs

    def _pieces(self, offset: int, length: int):
        vpos = 0
        for count, lcn in self.runs:
            span = count * self.cluster
            if offset < vpos + span and length > 0:
                within = offset - vpos
                n = min(length, span - within)
                yield (None if lcn is None else lcn * self.cluster + within), n
                offset += n
                length -= n
            vpos += span
        if length > 0:
            raise FFUError("NTFS attribute runlist is shorter than its data; the volume is corrupt")

    def read(self, offset: int, length: int) -> bytearray:
        out = bytearray()
        for pos, n in self._pieces(offset, length):
            if pos is None:
                out += bytes(n)
            else:
                self.fh.seek(pos)
                out += self.fh.read(n)
        return out

    def write(self, offset: int, data: bytes | bytearray) -> None:
        i = 0
        for pos, n in self._pieces(offset, len(data)):
            if pos is not None:
                self.fh.seek(pos)
                self.fh.write(data[i : i + n])
            i += n


def _attributes(rec: bytearray):
    off = struct.unpack_from("<H", rec, 0x14)[0]
    while off + 8 <= len(rec):
        atype, alen = struct.unpack_from("<II", rec, off)
        if atype == _AT_END or alen == 0:
            return
        nlen, noff = rec[off + 9], struct.unpack_from("<H", rec, off + 10)[0]
        name = rec[off + noff : off + noff + 2 * nlen].decode("utf-16-le", "replace")
        yield atype, off, rec[off + 8] != 0, name
        off += alen


def _patch_index_entries(buf: bytearray, header: int, stamp: bytes) -> None:
    """Set the four times of every $FILE_NAME key in an index node (header = index header offset)."""
    first, used = struct.unpack_from("<II", buf, header)
    pos, end = header + first, header + used
    while pos + 16 <= end:
        elen, klen, flags = struct.unpack_from("<HHH", buf, pos + 8)
        if klen >= 0x42:
            buf[pos + 16 + 8 : pos + 16 + 40] = stamp * 4
        if flags & 2 or elen == 0:
            break
        pos += elen


def normalize_ntfs(image: str | Path, timestamp: int, *, serial: int | None = None) -> None:
    """Rewrite every MFT/index timestamp of an NTFS volume file to `timestamp` (and the serial)."""
    stamp = struct.pack("<Q", (int(timestamp) + FILETIME_EPOCH_OFFSET) * 10_000_000)
    with open(image, "r+b") as fh:
        boot = bytearray(fh.read(512))
        if boot[3:11] != b"NTFS    ":
            raise FFUError("not an NTFS volume", str(image))
        bps, spc = struct.unpack_from("<HB", boot, 11)
        spc = 1 << (256 - spc) if spc > 0x80 else spc
        cluster = bps * spc
        total_sectors, mft_lcn = struct.unpack_from("<qq", boot, 0x28)
        rec_size = _size_field(boot[0x40], cluster)
        idx_size = _size_field(boot[0x44], cluster)
        fh.seek(mft_lcn * cluster)
        rec0 = bytearray(fh.read(rec_size))
        _unfixup(rec0, bps, "MFT record 0")
        mft_runs, mft_size = None, 0
        for atype, off, nonres, name in _attributes(rec0):
            if atype == _AT_ATTRIBUTE_LIST:
                raise FFUError(
                    "the $MFT is too fragmented ($ATTRIBUTE_LIST) to normalise timestamps", str(image)
                )
            if atype == _AT_DATA and nonres and not name:
                mft_runs = _runlist(rec0, off + struct.unpack_from("<H", rec0, off + 0x20)[0])
                mft_size = struct.unpack_from("<q", rec0, off + 0x30)[0]
        if mft_runs is None:
            raise FFUError("NTFS $MFT has no data attribute", str(image))
        mft = _Extents(fh, cluster, mft_runs)
        indexes: dict[int, list[tuple[int, list, int]]] = {}
        mirror_runs, mirror_size = None, 0
        for n in range(mft_size // rec_size):
            rec = mft.read(n * rec_size, rec_size)
            if rec[:4] != b"FILE" or not struct.unpack_from("<H", rec, 0x16)[0] & 1:
                continue
            _unfixup(rec, bps, f"MFT record {n}")
            used = struct.unpack_from("<I", rec, 0x18)[0]
            rec[used:] = bytes(len(rec) - used)  # slack may keep stale copies (with wall-clock times)
            base = struct.unpack_from("<Q", rec, 0x20)[0] & 0xFFFFFFFFFFFF or n
            for atype, off, nonres, name in _attributes(rec):
                voff = off + struct.unpack_from("<H", rec, off + 0x14)[0] if not nonres else 0
                if atype == _AT_STANDARD_INFORMATION and not nonres:
                    rec[voff : voff + 32] = stamp * 4
                elif atype == _AT_FILE_NAME and not nonres:
                    rec[voff + 8 : voff + 40] = stamp * 4
                elif atype == _AT_INDEX_ROOT and not nonres and name == "$I30":
                    _patch_index_entries(rec, voff + 16, stamp)
                elif atype == _AT_INDEX_ALLOCATION and nonres and name == "$I30":
                    lowest = struct.unpack_from("<q", rec, off + 0x10)[0]
                    runs = _runlist(rec, off + struct.unpack_from("<H", rec, off + 0x20)[0])
                    size = struct.unpack_from("<q", rec, off + 0x30)[0] if lowest == 0 else -1
                    indexes.setdefault(base, []).append((lowest, runs, size))
                elif n == 1 and atype == _AT_DATA and nonres and not name:
                    mirror_runs = _runlist(rec, off + struct.unpack_from("<H", rec, off + 0x20)[0])
                    mirror_size = struct.unpack_from("<q", rec, off + 0x30)[0]
            _fixup(rec, bps)
            mft.write(n * rec_size, rec)
        for pieces in indexes.values():
            pieces.sort(key=lambda x: x[0])
            runs = [r for _, rl, _ in pieces for r in rl]
            size = next((s for lo, _, s in pieces if lo == 0), 0)
            alloc = _Extents(fh, cluster, runs)
            for b in range(size // idx_size):
                blk = alloc.read(b * idx_size, idx_size)
                if blk[:4] != b"INDX":
                    continue
                _unfixup(blk, bps, "index block")
                _patch_index_entries(blk, 0x18, stamp)
                used = 0x18 + struct.unpack_from("<I", blk, 0x1C)[0]
                blk[used:] = bytes(len(blk) - used)  # entries moved by node splits leave stale copies
                _fixup(blk, bps)
                alloc.write(b * idx_size, blk)
        if mirror_runs:  # $MFTMirr mirrors the first records byte for byte
            _Extents(fh, cluster, mirror_runs).write(0, mft.read(0, mirror_size))
        if serial is not None:
            boot[0x48:0x50] = struct.pack("<Q", serial & 0xFFFFFFFFFFFFFFFF)
            fh.seek(0)
            fh.write(boot)
            fh.seek(total_sectors * bps)  # backup boot sector: last sector of the volume
            backup = fh.read(512)
            if backup[3:11] == b"NTFS    ":
                fh.seek(total_sectors * bps)
                fh.write(boot)


def _size_field(v: int, cluster: int) -> int:
    """NTFS clusters-per-record byte: positive = clusters, negative = 2^-v bytes."""
    return cluster * v if v < 0x80 else 1 << (256 - v)


# ------------------------------------------------------------------------------------------- raw


def write_raw(image_file: str | Path, out_path: str | Path, *, size_bytes: int) -> Path:
    """A raw (binaryPartition) image: the file's bytes at offset 0, the rest left unwritten.

    Every byte of the image is written, zeros included: for a raw partition they are content.
    """
    src = Path(image_file)
    out = Path(out_path)
    try:
        length = src.stat().st_size
    except OSError as exc:
        raise FFUError(f"cannot read raw partition image: {exc.strerror}", str(src)) from None
    if length > size_bytes:
        raise FFUError(f"raw image is {length} bytes, larger than its {size_bytes}-byte partition", str(src))
    with atomic_path(out, mode=0o644) as tmp, open(src, "rb") as inp, open(tmp, "r+b") as dst:
        dst.truncate(size_bytes)
        copied = 0
        while True:
            chunk = inp.read(1 << 20)
            if not chunk:
                break
            dst.write(chunk)
            copied += len(chunk)
        if copied != length:
            raise FFUError("raw partition image changed while it was being copied", str(src))
    return out
