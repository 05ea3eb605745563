"""NTFS partition images: mkntfs, then the staged tree written through libntfs-3g, made
reproducible by :func:`normalize_ntfs`.

``mkntfs -T`` seeds its "random" values from a zero clock, so the bare volume is fixed; the
helper :mod:`.ntfswrite` (its own process, under eatmydata) then creates every entry in sorted
order with Windows' security descriptors (:mod:`.secdesc`: the WRP defaults, or one given per
path with what it inherits from its directory; the root's from Windows' own volumes, see
:data:`.secdesc.OS_ROOT_SDDL`) and attributes, and libntfs-3g stamps the MFT-change time of every record it touches with
the wall clock. Afterwards every time in the MFT and in the ``$I30`` index entries is rewritten
to the build epoch (and the volume serial replaced, otherwise equal for all volumes), re-applying
NTFS update-sequence fix-ups. Measured design: ``../shared/spec/ntfs-libntfs3g.md`` (issue 14).

Not written (refused by :func:`.fstools.scan` with a message that says so): hard links, named
streams, reparse points, sparse or compressed files, DOS 8.3 short names (names are in the POSIX
namespace, as wimlib also writes a tree captured on Linux).
"""

from __future__ import annotations

import json
import os
import struct
import sys
import zlib
from collections.abc import Mapping
from pathlib import Path

from ..errors import ConfigError, FormatError
from ..util.atomic import atomic_path
from . import fstools, ntfswrite, secdesc

FILETIME_EPOCH_OFFSET = 11644473600
FILE_ATTRIBUTE_ARCHIVE = 0x20  # what Windows gives a file it creates; directories get none settable
MAX_NAME_UNITS = 255  # ntfs_create takes a u8 length; NTFS's own limit too


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
    security: Mapping[str, str] | None = None,
    root_sddl: str = secdesc.OS_ROOT_SDDL,
) -> Path:
    """Write an NTFS image of `staged_dir` (mkntfs, then libntfs-3g writes the tree into the volume file).

    Every file and directory gets the WRP default descriptor (:func:`.secdesc.wrp_default`) unless
    `security` maps its path (``/``-separated, relative to the volume root, compared without case)
    to SDDL; a descriptor whose DACL or SACL is not protected also gets the inheritable ACEs of
    its parent (:func:`.secdesc.inherit`). The root gets `root_sddl` (default: ``C:\\`` of
    Windows, :data:`.secdesc.OS_ROOT_SDDL`) and keeps HIDDEN|SYSTEM."""
    mkntfs = fstools.find_tool("mkntfs", "ntfs-3g")
    out = Path(out_path)
    if cluster_size < sector_size or cluster_size & (cluster_size - 1) or cluster_size > 2 * 1024 * 1024:
        raise ConfigError(
            f"NTFS cluster size {cluster_size} must be a power of two between the sector size and 2 MiB",
            str(out),
        )
    if len(label) > 32:
        raise ConfigError(f"NTFS volume label {label!r} is longer than 32 characters", str(out))
    entries = fstools.scan(staged_dir)
    for e in entries:
        if len(e.rel[-1].encode("utf-16-le")) > 2 * MAX_NAME_UNITS:
            raise ConfigError(
                f"file name is longer than {MAX_NAME_UNITS} UTF-16 units, the NTFS limit; shorten it",
                str(e.path),
            )
    job = _job(entries, security or {}, out, root_sddl)
    # Lower bound of what the tree needs (data clusters + 1 KiB MFT record each + mkntfs metadata ≈ 0.5 %);
    # the real check is libntfs-3g running out of space, reported below.
    need = sum(fstools.ceil_div(e.size, cluster_size) * cluster_size for e in entries if e.size > 512)
    need += 1024 * len(entries) + size_bytes // 200 + (1 << 20)
    if need > size_bytes:
        total = sum(e.size for e in entries)
        raise ConfigError(
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
        fstools.prepare(tmp, size_bytes, sector_size)
        fstools.run(
            [
                *fstools.no_fsync(),
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
        # always, also for an empty tree: the root's descriptor is written by the helper
        argv = [*fstools.no_fsync(), sys.executable, "-I", "-S", ntfswrite.__file__, "-", str(tmp)]
        try:
            fstools.run(argv, out, env, "libntfs-3g", input=job)
        except fstools.ToolRunError as exc:
            if "no space left" in exc.stderr.lower():
                raise ConfigError(
                    f"content does not fit in the {size_bytes}-byte NTFS partition ({exc.message}); "
                    "make the partition larger or the content smaller",
                    str(out),
                ) from None
            raise
        normalize_ntfs(tmp, timestamp, serial=serial)
    return out


def _job(entries: list[fstools.Entry], security: Mapping[str, str], out: Path, root_sddl: str) -> bytes:
    """The helper's input: distinct descriptors (binary, hex), the root's, and every entry in
    creation order, each descriptor with what it inherits from its parent's as Windows stores it."""
    blobs: dict[bytes, int] = {}

    def index(blob: bytes) -> int:
        return blobs.setdefault(blob, len(blobs))

    given: dict[str, bytes] = {}
    for path, sddl in security.items():
        key = path.replace("\\", "/").strip("/").casefold()
        try:
            given[key] = secdesc.sddl_to_binary(sddl)
        except FormatError as exc:
            raise ConfigError(f"security descriptor for {path}: {exc.message}", str(out)) from None
    defaults = {True: secdesc.wrp_default(True), False: secdesc.wrp_default(False)}
    try:
        root = secdesc.sddl_to_binary(root_sddl)
    except FormatError as exc:
        raise ConfigError(f"security descriptor for the volume root: {exc.message}", str(out)) from None
    final: dict[tuple[str, ...], bytes] = {(): root}  # what each directory ended up with
    inherited: dict[tuple[bytes, bytes, bool], bytes] = {}
    rows = []
    for e in entries:
        rel = "/".join(e.rel)
        own = given.pop(rel.casefold(), None) or defaults[e.is_dir]
        step = (final[tuple(e.rel[:-1])], own, e.is_dir)
        blob = inherited.get(step)
        if blob is None:
            blob = inherited[step] = secdesc.inherit(*step)
        if e.is_dir:
            final[tuple(e.rel)] = blob
        attrib = 0 if e.is_dir else FILE_ATTRIBUTE_ARCHIVE
        rows.append([rel, None if e.is_dir else str(e.path), e.is_dir, index(blob), attrib])
    if given:
        raise ConfigError(
            f"security descriptor given for {sorted(given)[0]!r}, which is not in the partition", str(out)
        )
    root_index = index(root)
    return json.dumps({"descriptors": [b.hex() for b in blobs], "root": root_index, "entries": rows}).encode()


# NTFS on-disk constants
_AT_STANDARD_INFORMATION, _AT_ATTRIBUTE_LIST, _AT_FILE_NAME, _AT_DATA = 0x10, 0x20, 0x30, 0x80
_AT_INDEX_ROOT, _AT_INDEX_ALLOCATION, _AT_END = 0x90, 0xA0, 0xFFFFFFFF
_FILE_ATTR_I30_INDEX_PRESENT = 0x10000000
_FILE_SECURE = 9  # MFT record of $Secure


def _unfixup(buf: bytearray, sector: int, what: str) -> None:
    usa_ofs, usa_count = struct.unpack_from("<HH", buf, 4)
    usn = buf[usa_ofs : usa_ofs + 2]
    for i in range(1, usa_count):
        end = i * sector
        if buf[end - 2 : end] != usn:
            raise FormatError(f"NTFS {what} fails its update-sequence check; the volume is corrupt")
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
    runs: list[tuple[int, int | None]] = []
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
            raise FormatError("NTFS attribute runlist is shorter than its data; the volume is corrupt")

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
    """Rewrite every MFT/index timestamp of an NTFS volume file to `timestamp` (and the serial).

    Also gives each record's own ``$FILE_NAME`` the attributes of its ``$STANDARD_INFORMATION``
    (libntfs-3g, like Windows, updates only the parent's index entry when they change), so that
    all three places agree."""
    stamp = struct.pack("<Q", (int(timestamp) + FILETIME_EPOCH_OFFSET) * 10_000_000)
    with open(image, "r+b") as fh:
        boot = bytearray(fh.read(512))
        if boot[3:11] != b"NTFS    ":
            raise FormatError("not an NTFS volume", str(image))
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
                raise FormatError(
                    "the $MFT is too fragmented ($ATTRIBUTE_LIST) to normalise timestamps", str(image)
                )
            if atype == _AT_DATA and nonres and not name:
                mft_runs = _runlist(rec0, off + struct.unpack_from("<H", rec0, off + 0x20)[0])
                mft_size = struct.unpack_from("<q", rec0, off + 0x30)[0]
        if mft_runs is None:
            raise FormatError("NTFS $MFT has no data attribute", str(image))
        mft = _Extents(fh, cluster, mft_runs)
        sds: tuple[_Extents, int, int] | None = None
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
            si_flags = None
            for atype, off, nonres, name in _attributes(rec):
                voff = off + struct.unpack_from("<H", rec, off + 0x14)[0] if not nonres else 0
                if atype == _AT_STANDARD_INFORMATION and not nonres:
                    rec[voff : voff + 32] = stamp * 4
                    si_flags = struct.unpack_from("<I", rec, voff + 0x20)[0]
                elif atype == _AT_FILE_NAME and not nonres:
                    rec[voff + 8 : voff + 40] = stamp * 4
                    if si_flags is not None:  # the record's own $FILE_NAME copy keeps creation-time flags
                        fn_flags = struct.unpack_from("<I", rec, voff + 0x38)[0]
                        flags = (fn_flags & _FILE_ATTR_I30_INDEX_PRESENT) | (
                            si_flags & ~_FILE_ATTR_I30_INDEX_PRESENT
                        )
                        struct.pack_into("<I", rec, voff + 0x38, flags)
                elif atype == _AT_INDEX_ROOT and not nonres and name == "$I30":
                    _patch_index_entries(rec, voff + 16, stamp)
                elif atype == _AT_INDEX_ALLOCATION and nonres and name == "$I30":
                    lowest = struct.unpack_from("<q", rec, off + 0x10)[0]
                    runs = _runlist(rec, off + struct.unpack_from("<H", rec, off + 0x20)[0])
                    size = struct.unpack_from("<q", rec, off + 0x30)[0] if lowest == 0 else -1
                    indexes.setdefault(base, []).append((lowest, runs, size))
                elif n == _FILE_SECURE and atype == _AT_DATA and nonres and name == "$SDS":
                    sds = _pad_sds(rec, off, cluster)
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
        if sds is not None:
            extents, start, end = sds
            extents.fh = fh
            extents.write(start, bytes(end - start))
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


def _pad_sds(rec: bytearray, off: int, cluster: int) -> tuple[_Extents, int, int] | None:
    """Give ``$Secure:$SDS`` a zeroed entry header after its last (mirror) entry.

    libntfs-3g ends the stream exactly at the end of the last mirror copy. Readers walk ``$SDS``
    entry to entry, reading each next 16-byte-aligned header ahead; at that end they find no
    header, and ntfssecaudit -a (1.5.0, ``audit_sds``: the read-ahead comes back short and the
    header is taken from stale buffer bytes) then reports "$SDS-2: Security attribute is too
    long". A zero header is what ends a run of entries everywhere else in the stream (the gap
    before each 256 KiB block), so the data size is extended by one aligned header of zeros
    inside the clusters already allocated (returned: where to write the zeros). Whether Windows
    ends its own ``$SDS`` so is not known here; Windows and ntfs-3g find entries through
    ``$SII``/``$SDH``, which are unchanged."""
    size, init = struct.unpack_from("<qq", rec, off + 0x30)
    alloc = struct.unpack_from("<q", rec, off + 0x28)[0]
    want = ((size + 15) & ~15) + 32  # the aligned end, then a 20-byte header (rounded to 16)
    if size != init or want > alloc:
        return None  # no room without allocating: leave the stream as libntfs-3g wrote it
    struct.pack_into("<qq", rec, off + 0x30, want, want)
    runs = _runlist(rec, off + struct.unpack_from("<H", rec, off + 0x20)[0])
    return _Extents(None, cluster, runs), size, want


def _size_field(v: int, cluster: int) -> int:
    """NTFS clusters-per-record byte: positive = clusters, negative = 2^-v bytes."""
    return cluster * v if v < 0x80 else 1 << (256 - v)
