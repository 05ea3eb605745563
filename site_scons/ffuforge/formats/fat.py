"""FAT12/16/32 partition images with dosfstools (``mkfs.fat``) and mtools.

``mkfs.fat --invariant -i <id>`` fixes the serial and boot-sector constants; mtools honours
``SOURCE_DATE_EPOCH`` for every directory-entry time (files are copied without ``-m``), and
directories/files are created in sorted order, never in readdir order. The FAT type and cluster
size follow Windows' format rules (:func:`fat_parameters`). Separate from :mod:`.ntfs`: the two
file systems share only the tool runner in :mod:`.fstools`.
"""

from __future__ import annotations

import os
import struct
import tempfile
import zlib
from pathlib import Path

from ..errors import ConfigError
from ..util.atomic import atomic_path
from . import fstools

_FAT_LABEL_BAD = set('<>:"/\\|?*+,.;=[]')
_ARG_BATCH = 200  # files per mtools invocation (keeps argv far below ARG_MAX)


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
    root = 0 if bits == 32 else fstools.ceil_div(512 * 32, sector_size)
    count = (sectors - rsvd - root) // spc
    for _ in range(8):
        fat = fstools.ceil_div(fstools.ceil_div((count + 2) * bits, 8), sector_size)
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
        raise ConfigError(f"unknown FAT type {fat_type!r}; use FAT, FAT32, 12, 16 or 32")
    want = kind[fat_type]
    if cluster_size is not None and (
        cluster_size < sector_size or cluster_size & (cluster_size - 1) or cluster_size > 64 * 1024
    ):
        raise ConfigError(
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
            raise ConfigError(
                f"a {size_bytes}-byte volume is too small for FAT32 (needs at least 65525 clusters, "
                "about 33 MiB); use FAT"
            )
        return 32, cluster
    if size_bytes > (4 << 30):
        raise ConfigError(f"a {size_bytes}-byte volume is too large for FAT12/16 (4 GiB at most); use FAT32")
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
            raise ConfigError(
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
            n += fstools.ceil_div(len(name.encode("utf-16-le")) // 2, 13)
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
    root = fstools.ceil_div(root_ents * 32, bps)
    clusters = (total - rsvd - nfats * fatsz - root) // spc
    bits = 12 if clusters <= FAT12_MAX_CLUSTERS else 16 if clusters <= FAT16_MAX_CLUSTERS else 32
    return bits, clusters, bps * spc


def _fat_label(label: str) -> str:
    if len(label) > 11 or not label.isascii() or any(c in _FAT_LABEL_BAD or ord(c) < 0x20 for c in label):
        raise ConfigError(
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
    mkfs = fstools.find_tool("mkfs.fat", "dosfstools")
    mmd, mcopy, mlabel = (fstools.find_tool(t, "mtools") for t in ("mmd", "mcopy", "mlabel"))
    out = Path(out_path)
    label = _fat_label(label)
    bits, cluster = fat_parameters(
        size_bytes, sector_size=sector_size, fat_type=fat_type, cluster_size=cluster_size
    )
    entries = fstools.scan(staged_dir)
    if volume_id is None:
        volume_id = zlib.crc32(f"{label}\0{timestamp}\0{size_bytes}".encode())
    with atomic_path(out, mode=0o644) as tmp, tempfile.TemporaryDirectory(prefix="ffuforge-mtools-") as home:
        fstools.prepare(tmp, size_bytes, sector_size)
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
        fstools.run(argv + [str(tmp)], out)
        real_bits, clusters, real_cluster = _fat_boot_clusters(tmp)
        if real_bits != bits or real_cluster != cluster:
            raise ConfigError(
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
            fstools.run([mlabel, *img, f"::{label}"], out, env)
        dirs = [e for e in entries if e.is_dir]
        for i in range(0, len(dirs), _ARG_BATCH):
            fstools.run([mmd, *img, *("::/" + "/".join(e.rel) for e in dirs[i : i + _ARG_BATCH])], out, env)
        by_dir: dict[tuple[str, ...], list[fstools.Entry]] = {}
        for e in entries:
            if not e.is_dir:
                by_dir.setdefault(e.rel[:-1], []).append(e)
        for parent in sorted(by_dir):
            files = by_dir[parent]
            target = "::/" + "".join(p + "/" for p in parent)
            for i in range(0, len(files), _ARG_BATCH):
                try:
                    fstools.run(
                        [mcopy, *img, *(str(e.path) for e in files[i : i + _ARG_BATCH]), target], out, env
                    )
                except fstools.ToolRunError as exc:
                    if "disk full" in exc.stderr.lower():
                        raise ConfigError(
                            f"content does not fit in the {size_bytes}-byte FAT partition ({exc.message})",
                            str(out),
                        ) from None
                    raise
    return out


def _fat_check_fits(
    entries: list[fstools.Entry], bits: int, clusters: int, cluster: int, size_bytes: int, out: Path
) -> None:
    children: dict[tuple[str, ...], list[str]] = {(): []}
    need = 0
    total = 0
    for e in entries:
        children.setdefault(e.rel[:-1], []).append(e.rel[-1])
        if e.is_dir:
            children.setdefault(e.rel, [])
        else:
            need += fstools.ceil_div(e.size, cluster)
            total += e.size
    for rel, names in children.items():
        n = _dir_entries(names)
        if rel == ():
            n += 1  # volume label entry
            if bits != 32:
                if n > 512:
                    raise ConfigError(
                        f"the FAT{bits} root directory holds 512 entries; the staged root needs {n} "
                        "(move files into a subdirectory)",
                        str(out),
                    )
                continue
        else:
            n += 2  # "." and ".."
        need += max(1, fstools.ceil_div(n * 32, cluster))
    if need > clusters:
        raise ConfigError(
            f"content does not fit: {total} bytes in {len(entries)} entries need {need} clusters of "
            f"{cluster} bytes, the {size_bytes}-byte FAT{bits} partition has {clusters}",
            str(out),
        )
