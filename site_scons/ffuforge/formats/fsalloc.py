"""Which bytes of a partition image an FFU must store: the file system's allocation, not the
image file's holes.

ImgGen stores a formatted partition by its allocation (`FileSystemSourceAllocation`: the
volume bitmap), a raw one as the disk holds it (spec/updateos-chunk0.md B2). Reading the holes
of the image file instead made the FFU depend on how the file was copied (`cp --sparse=always`
dropped two all-zero but allocated blocks, which the device then never received). So:

* FAT12/16/32: the reserved sectors, every FAT and the root directory, plus every cluster whose
  first-FAT entry is not 0 (free). Field meanings: Microsoft's FAT specification (fatgen103).
* NTFS: every cluster set in ``$Bitmap`` (MFT record 6, unnamed ``$DATA``), plus the backup boot
  sector, which lies in the sector after the last cluster and is in no bitmap.
* anything else: the image's non-zero 4 KiB pages. That is a function of the bytes only (holes
  read as zero, so they are skipped unread) and keeps synthetic or unknown images working.

The readers are bounded: every field is checked against the image size before it is used, so a
damaged or hostile image gives a :class:`FormatError`, never a huge read or a traceback.
"""

from __future__ import annotations

import errno
import os
import re
import struct
import sys
from array import array
from collections.abc import Iterator

from ..errors import FormatError

__all__ = ["allocated_ranges", "data_extents", "detect"]

_PAGE = 4096
_NONZERO = re.compile(rb"[^\x00]+")
_MAX_MAP = 256 << 20  # FAT or bitmap bytes: 256 MiB covers 2^31 clusters; more is not a volume


def data_extents(fd: int, size: int) -> Iterator[tuple[int, int]]:
    """[start, end) byte ranges of `fd` holding data, up to `size` (whole file if the file system
    cannot tell)."""
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:
                return
            if e.errno in (errno.EINVAL, errno.EOPNOTSUPP):
                yield pos, size
                return
            raise
        if start >= size:
            return
        end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
        if end <= start:  # racing writer; be safe
            end = size
        yield start, end
        pos = end


def _pread(fd: int, offset: int, length: int, size: int, what: str) -> bytes:
    if offset < 0 or length < 0 or offset + length > size:
        raise FormatError(
            f"{what} lies outside the image ({offset}+{length} > {size}); the volume is damaged"
        )
    out = os.pread(fd, length, offset)
    if len(out) != length:
        raise FormatError(f"{what}: image shorter than its size; it changed while read")
    return out


def detect(boot: bytes) -> str | None:
    """'ntfs', 'fat' or None from a volume's first sector."""
    if len(boot) >= 512 and boot[3:11] == b"NTFS    ":
        return "ntfs"
    if len(boot) >= 512 and boot[510:512] == b"\x55\xaa" and boot[0] in (0xEB, 0xE9):
        bps, spc, rsvd, nfats = struct.unpack_from("<HBHB", boot, 11)
        fatsz = struct.unpack_from("<H", boot, 22)[0] or struct.unpack_from("<I", boot, 36)[0]
        if bps in (512, 1024, 2048, 4096) and spc and not spc & (spc - 1) and rsvd and nfats and fatsz:
            return "fat"
    return None


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in sorted(ranges):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        elif s < e:
            out.append((s, e))
    return out


def _fat(fd: int, size: int, boot: bytes) -> list[tuple[int, int]]:
    bps, spc, rsvd, nfats, root_ents, tot16 = struct.unpack_from("<HBHBHH", boot, 11)
    fatsz = struct.unpack_from("<H", boot, 22)[0] or struct.unpack_from("<I", boot, 36)[0]
    total = tot16 or struct.unpack_from("<I", boot, 32)[0]
    root = -(-root_ents * 32 // bps)
    meta = rsvd + nfats * fatsz + root
    if total * bps > size or meta >= total:
        raise FormatError(f"FAT boot sector gives {total} sectors of {bps} B; the image holds {size} B")
    clusters = (total - meta) // spc
    bits = 12 if clusters < 4085 else 16 if clusters < 65525 else 32  # fatgen103 type rule
    need = (clusters + 2) * bits // 8 + 2
    if need > fatsz * bps or need > _MAX_MAP:
        raise FormatError(f"FAT of {fatsz} sectors cannot map {clusters} clusters; the volume is damaged")
    raw = _pread(fd, rsvd * bps, need, size, "FAT")
    if bits == 12:
        used = [
            (int.from_bytes(raw[k * 3 // 2 : k * 3 // 2 + 2], "little") >> (4 * (k & 1))) & 0xFFF
            for k in range(clusters + 2)
        ]
    else:
        arr = array("H" if bits == 16 else "I")
        arr.frombytes(raw[: (clusters + 2) * bits // 8])
        if arr.itemsize * 8 != bits:
            raise FormatError("host array sizes unsupported")  # pragma: no cover
        if sys.byteorder != "little":  # pragma: no cover
            arr.byteswap()
        used = arr.tolist() if bits == 16 else [v & 0x0FFFFFFF for v in arr]
    clus = bps * spc
    data = meta * bps
    out = [(0, data)]
    k = 2
    n = clusters + 2
    while k < n:
        if used[k]:
            j = k
            while j < n and used[j]:
                j += 1
            out.append((data + (k - 2) * clus, data + (j - 2) * clus))
            k = j
        else:
            k += 1
    return _merge(out)


def _runs(rec: bytes | bytearray, off: int, end: int) -> list[tuple[int, int]]:
    """Bounded mapping-pairs decoder: (cluster count, LCN) runs; sparse runs are refused."""
    out, lcn = [], 0
    while off < end and rec[off]:
        nl, no = rec[off] & 0xF, rec[off] >> 4
        if not 0 < nl <= 8 or no > 8 or off + 1 + nl + no > end:
            raise FormatError("NTFS $Bitmap runlist is malformed; the volume is damaged")
        length = int.from_bytes(rec[off + 1 : off + 1 + nl], "little")
        if not no:
            raise FormatError("NTFS $Bitmap is sparse; the volume is damaged")
        lcn += int.from_bytes(rec[off + 1 + nl : off + 1 + nl + no], "little", signed=True)
        out.append((length, lcn))
        off += 1 + nl + no
    return out


def _record(fd: int, size: int, pos: int, rec_size: int, bps: int) -> bytearray:
    rec = bytearray(_pread(fd, pos, rec_size, size, "NTFS MFT record"))
    if rec[:4] != b"FILE":
        raise FormatError("NTFS MFT record has no FILE signature; the volume is damaged")
    usa_ofs, usa_count = struct.unpack_from("<HH", rec, 4)
    if usa_ofs + 2 * usa_count > rec_size or (usa_count - 1) * bps > rec_size:
        raise FormatError("NTFS MFT record update sequence out of range; the volume is damaged")
    for i in range(1, usa_count):
        if rec[i * bps - 2 : i * bps] != rec[usa_ofs : usa_ofs + 2]:
            raise FormatError("NTFS MFT record fails its update-sequence check; the volume is damaged")
        rec[i * bps - 2 : i * bps] = rec[usa_ofs + 2 * i : usa_ofs + 2 * i + 2]
    return rec


def _unnamed_data(rec: bytearray) -> tuple[bool, int, int, int]:
    """(non-resident, value/runlist offset, attribute end, data size) of the unnamed $DATA."""
    off = struct.unpack_from("<H", rec, 0x14)[0]
    while off + 16 <= len(rec):
        atype, alen = struct.unpack_from("<II", rec, off)
        if atype == 0xFFFFFFFF:
            break
        if alen < 0x18 or off + alen > len(rec):
            raise FormatError("NTFS attribute length out of range; the volume is damaged")
        if atype == 0x20:
            raise FormatError("NTFS $Bitmap has an attribute list (too fragmented to read here)")
        if atype == 0x80 and rec[off + 9] == 0:
            if rec[off + 8]:
                if alen < 0x40:
                    raise FormatError("NTFS $DATA header truncated; the volume is damaged")
                runs_at = struct.unpack_from("<H", rec, off + 0x20)[0]
                return True, off + runs_at, off + alen, struct.unpack_from("<q", rec, off + 0x30)[0]
            vlen, voff = struct.unpack_from("<IH", rec, off + 0x10)
            if voff + vlen > alen:
                raise FormatError("NTFS resident $DATA out of range; the volume is damaged")
            return False, off + voff, off + voff + vlen, vlen
        off += alen
    raise FormatError("NTFS $Bitmap has no data; the volume is damaged")


def _bit_runs(bitmap: bytes, limit: int) -> list[tuple[int, int]]:
    """[first, stop) runs of set bits (bit i = byte i//8, bit i%8), below `limit`. Zero bytes are
    skipped by a regex; the rest is decoded 64 bytes at a time, so the cost follows the set bits."""
    out: list[tuple[int, int]] = []
    for m in _NONZERO.finditer(bitmap):
        for base in range(m.start(), m.end(), 64):
            x = int.from_bytes(bitmap[base : min(base + 64, m.end())], "little")
            while x:
                lo = (x & -x).bit_length() - 1
                ones = ((x >> lo) ^ ((x >> lo) + 1)).bit_length() - 1
                x &= ~(((1 << ones) - 1) << lo)
                a, b = base * 8 + lo, min(base * 8 + lo + ones, limit)
                if a >= b:
                    continue
                if out and out[-1][1] == a:
                    out[-1] = (out[-1][0], b)
                else:
                    out.append((a, b))
    return out


def _size_field(v: int, cluster: int) -> int:
    return cluster * v if v < 0x80 else 1 << (256 - v)


def _ntfs(fd: int, size: int, boot: bytes) -> list[tuple[int, int]]:
    bps, spc = struct.unpack_from("<HB", boot, 11)
    spc = 1 << (256 - spc) if spc > 0x80 else spc
    if bps not in (512, 1024, 2048, 4096) or not spc or spc & (spc - 1):
        raise FormatError(f"NTFS boot sector: {bps} B sectors, {spc} per cluster; the volume is damaged")
    cluster = bps * spc
    sectors, mft_lcn = struct.unpack_from("<qq", boot, 0x28)
    rec_size = _size_field(boot[0x40], cluster)
    if sectors <= 0 or sectors * bps > size or not 512 <= rec_size <= 65536 or mft_lcn <= 0:
        raise FormatError(f"NTFS boot sector gives {sectors} sectors; the image holds {size} B")
    clusters = sectors * bps // cluster
    rec0 = _record(fd, size, mft_lcn * cluster, rec_size, bps)
    nonres, at, end, _ = _unnamed_data(rec0)
    mft_runs = _runs(rec0, at, end) if nonres else []
    pos, want = None, 6 * rec_size  # record 6 is $Bitmap
    for count, lcn in mft_runs:
        if want < count * cluster:
            pos = lcn * cluster + want
            break
        want -= count * cluster
    if pos is None:
        raise FormatError("NTFS $MFT does not reach record 6 ($Bitmap); the volume is damaged")
    rec6 = _record(fd, size, pos, rec_size, bps)
    nonres, at, end, length = _unnamed_data(rec6)
    need = -(-clusters // 8)
    if length < need or length > _MAX_MAP:
        raise FormatError(f"NTFS $Bitmap holds {length} B for {clusters} clusters; the volume is damaged")
    if nonres:
        parts, left = [], need
        for count, lcn in _runs(rec6, at, end):
            n = min(left, count * cluster)
            parts.append(_pread(fd, lcn * cluster, n, size, "NTFS $Bitmap"))
            left -= n
            if not left:
                break
        if left:
            raise FormatError("NTFS $Bitmap runlist is shorter than the volume; the volume is damaged")
        bitmap = b"".join(parts)
    else:
        bitmap = bytes(rec6[at : at + need])
    out = [(s * cluster, e * cluster) for s, e in _bit_runs(bitmap, clusters)]
    backup = sectors * bps
    if backup + bps <= size:
        out.append((backup, backup + bps))
    return _merge([(s, e) for s, e in out if s < e])


def _nonzero_pages(fd: int, size: int) -> list[tuple[int, int]]:
    """Pages holding a non-zero byte: holes are skipped unread (they are zero), data is read
    into one reused buffer and compared page by page (memcmp speed, no per-byte Python)."""
    out: list[tuple[int, int]] = []
    buf = bytearray(8 << 20)
    zero = bytes(_PAGE)
    for s, e in data_extents(fd, size):
        pos = s - s % _PAGE
        while pos < e:
            view = memoryview(buf)[: min(len(buf), e - pos + -(e - pos) % _PAGE, size - pos)]
            got = os.preadv(fd, [view], pos)
            view = view[:got]
            if not got:
                break
            for i in range(0, got, _PAGE):
                page = view[i : i + _PAGE]
                if page != zero[: len(page)]:
                    a, b = pos + i, pos + i + len(page)
                    if out and out[-1][1] >= a:
                        out[-1] = (out[-1][0], max(out[-1][1], b))
                    else:
                        out.append((a, b))
            pos += got
    return out


def allocated_ranges(fd: int, size: int, filesystem: str | None) -> list[tuple[int, int]]:
    """Sorted, merged [start, end) byte ranges of an image (of `size` bytes) the device must get.

    `filesystem` is the layout's (None for a raw partition: every byte). A FAT or NTFS volume is
    read by its allocation; an image that is neither gives its non-zero pages.
    """
    if filesystem is None:
        return [(0, size)] if size else []
    boot = os.pread(fd, 512, 0) if size >= 512 else b""
    kind = detect(boot)
    if kind == "ntfs":
        return _ntfs(fd, size, boot)
    if kind == "fat":
        return _fat(fd, size, boot)
    return _nonzero_pages(fd, size)
