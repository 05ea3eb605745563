"""Reading files out of an NTFS volume in place (no mount, no root, no temporary copy).

Enough NTFS for what ffuforge writes and what a build engineer inspects: the boot sector, the MFT
(its own runlist), each in-use record's Win32/POSIX `$FILE_NAME` (parent and name) and unnamed
`$DATA` (resident or through its runlist; sparse runs read as zeros). The volume is read through
`read(offset, length)`, so a partition inside an FFU is read through the FFU's block map and one
inside a raw disk at its offset. Every offset and count is bounded; a record with an
`$ATTRIBUTE_LIST` (a file too fragmented for one record), compressed or encrypted data is refused
with one line (ffuforge's images have none; `ntfscat` reads them). Layout facts: the NTFS
documentation of the Linux-NTFS project (boot sector fields, record header, attribute header,
mapping pairs), the same ones `formats/ntfs.py` normalises.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ..errors import FormatError

ReadFn = Callable[[int, int], bytes]

_AT_ATTRIBUTE_LIST, _AT_FILE_NAME, _AT_DATA, _AT_END = 0x20, 0x30, 0x80, 0xFFFFFFFF
_MAX_RECORDS = 1 << 22  # 4 Mi files: far beyond any IoT image
_MAX_FILE = 1 << 40
_ROOT = 5
_FIRST_USER = 16  # records 0-15 are the metadata files ($MFT, $Bitmap, …) and reserved ones
_DIRECTORY = 0x2


@dataclass(frozen=True)
class NtfsFile:
    path: str  # `\`-separated, relative to the volume root
    record: int
    size: int
    is_dir: bool


class NtfsVolume:
    def __init__(self, read: ReadFn, size: int, label: str):
        self._read_raw, self.size, self.label = read, size, label
        boot = self._read(0, 512)
        if boot[3:11] != b"NTFS    ":
            raise FormatError("not an NTFS volume (no 'NTFS' in the boot sector)", label)
        bps, spc = struct.unpack_from("<HB", boot, 11)
        if bps not in (512, 1024, 2048, 4096) or spc == 0:
            raise FormatError(f"NTFS boot sector: bad geometry ({bps} bytes/sector)", label)
        self.sector = bps
        self.cluster = bps * (spc if spc <= 0x80 else 1 << (256 - spc))
        mft_lcn = struct.unpack_from("<Q", boot, 0x30)[0]
        rec = struct.unpack_from("<b", boot, 0x40)[0]
        self.record_size = rec * self.cluster if rec > 0 else 1 << -rec
        if not 512 <= self.record_size <= 65536 or self.record_size % bps:
            raise FormatError(f"NTFS boot sector: bad MFT record size {self.record_size}", label)
        first = self._record_at(mft_lcn * self.cluster, 0)
        runs, mft_size, _ = self._data(first, 0)
        if runs is None:
            raise FormatError("NTFS $MFT has resident data; the volume is corrupt", label)
        self._mft_runs = runs
        self.records = min(mft_size // self.record_size, _MAX_RECORDS)
        self._files: dict[str, NtfsFile] | None = None

    # -- raw access

    def _read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise FormatError(f"NTFS structure at {offset:#x} lies outside the volume", self.label)
        data = self._read_raw(offset, length)
        if len(data) != length:
            raise FormatError(f"short read at {offset:#x}", self.label)
        return data

    def _record_at(self, offset: int, number: int) -> bytearray:
        buf = self._record_from(bytearray(self._read(offset, self.record_size)), number)
        if not buf:
            raise FormatError(f"MFT record {number} is not a FILE record", self.label)
        return buf

    def _extents(self, runs: list[tuple[int, int | None]], offset: int, length: int) -> Iterator[bytes]:
        vpos = 0
        for count, lcn in runs:
            span = count * self.cluster
            if length > 0 and offset < vpos + span:
                within = offset - vpos
                n = min(length, span - within)
                yield bytes(n) if lcn is None else self._read(lcn * self.cluster + within, n)
                offset += n
                length -= n
            vpos += span
        if length > 0:
            raise FormatError("an NTFS runlist is shorter than its data; the volume is corrupt", self.label)

    def record(self, number: int) -> bytearray:
        if not 0 <= number < self.records:
            raise FormatError(f"MFT record {number} does not exist", self.label)
        pos = number * self.record_size
        data = b"".join(self._extents(self._mft_runs, pos, self.record_size))
        return self._record_from(bytearray(data), number)

    def _record_from(self, buf: bytearray, number: int) -> bytearray:
        """The record with its update-sequence fix-ups applied; empty if it is not a FILE record
        (a never-used slot)."""
        if buf[:4] != b"FILE":
            return bytearray()
        usa_ofs, usa_count = struct.unpack_from("<HH", buf, 4)
        if usa_count != self.record_size // self.sector + 1 or usa_ofs + 2 * usa_count > self.record_size:
            raise FormatError(f"MFT record {number}: bad update-sequence array", self.label)
        usn = bytes(buf[usa_ofs : usa_ofs + 2])
        for i in range(1, usa_count):
            end = i * self.sector
            if buf[end - 2 : end] != usn:
                raise FormatError(f"MFT record {number} fails its update-sequence check", self.label)
            buf[end - 2 : end] = buf[usa_ofs + 2 * i : usa_ofs + 2 * i + 2]
        return buf

    # -- attributes

    def _attributes(self, rec: bytearray, number: int) -> Iterator[tuple[int, int, int, str]]:
        """(type, offset, length, name) of each attribute of a record, bounded by the record."""
        off = struct.unpack_from("<H", rec, 0x14)[0]
        used = min(struct.unpack_from("<I", rec, 0x18)[0], len(rec))
        while off + 16 <= used:
            atype, alen = struct.unpack_from("<II", rec, off)
            if atype == _AT_END:
                return
            if alen < 16 or off + alen > used:
                raise FormatError(
                    f"MFT record {number}: attribute at {off:#x} overruns the record", self.label
                )
            nlen, noff = rec[off + 9], struct.unpack_from("<H", rec, off + 10)[0]
            if off + noff + 2 * nlen > off + alen:
                raise FormatError(f"MFT record {number}: attribute name overruns", self.label)
            name = rec[off + noff : off + noff + 2 * nlen].decode("utf-16-le", "replace")
            yield atype, off, alen, name
            off += alen

    def _runlist(self, rec: bytearray, start: int, end: int, number: int) -> list[tuple[int, int | None]]:
        runs: list[tuple[int, int | None]] = []
        lcn, off = 0, start
        while off < end and rec[off]:
            hdr = rec[off]
            nl, no = hdr & 0xF, hdr >> 4
            if off + 1 + nl + no > end or nl == 0 or nl > 8 or no > 8:
                raise FormatError(f"MFT record {number}: bad runlist", self.label)
            length = int.from_bytes(rec[off + 1 : off + 1 + nl], "little")
            if no:
                lcn += int.from_bytes(rec[off + 1 + nl : off + 1 + nl + no], "little", signed=True)
                if lcn < 0 or (lcn + length) * self.cluster > self.size:
                    raise FormatError(f"MFT record {number}: a run lies outside the volume", self.label)
                runs.append((length, lcn))
            else:
                runs.append((length, None))
            off += 1 + nl + no
        return runs

    def _data(self, rec: bytearray, number: int):
        """(runs or None, size, resident bytes) of the unnamed $DATA; refuses what we cannot read."""
        for atype, off, alen, name in self._attributes(rec, number):
            if atype == _AT_ATTRIBUTE_LIST:
                raise FormatError(
                    f"MFT record {number} has an attribute list (a very fragmented file); "
                    "read it with ntfscat",
                    self.label,
                )
            if atype != _AT_DATA or name:
                continue
            flags = struct.unpack_from("<H", rec, off + 12)[0]
            if flags & 0xC001:
                raise FormatError(
                    f"MFT record {number}: compressed or encrypted data is not supported", self.label
                )
            if rec[off + 8] == 0:
                vlen, voff = struct.unpack_from("<IH", rec, off + 16)
                if voff + vlen > alen:
                    raise FormatError(f"MFT record {number}: resident data overruns", self.label)
                return None, vlen, bytes(rec[off + voff : off + voff + vlen])
            runs_off = struct.unpack_from("<H", rec, off + 32)[0]
            size = struct.unpack_from("<Q", rec, off + 48)[0]
            if size > _MAX_FILE:
                raise FormatError(f"MFT record {number}: data size {size} is absurd", self.label)
            return self._runlist(rec, off + runs_off, off + alen, number), size, b""
        return None, 0, b""

    # -- files

    def files(self) -> dict[str, NtfsFile]:
        """Every user file and directory by upper-cased path (the root's metadata files left out)."""
        if self._files is not None:
            return self._files
        names: dict[int, tuple[int, str, bool, int]] = {}
        for n in range(self.records):
            try:
                rec = self.record(n)
            except FormatError:
                continue
            if not rec or not struct.unpack_from("<H", rec, 0x16)[0] & 1:  # not in use
                continue
            if struct.unpack_from("<Q", rec, 0x20)[0] & 0xFFFFFFFFFFFF:  # an extension record
                continue
            best = None
            for atype, off, alen, _ in self._attributes(rec, n):
                if atype != _AT_FILE_NAME or rec[off + 8]:
                    continue
                voff = struct.unpack_from("<H", rec, off + 20)[0]
                v = off + voff
                if v + 66 > off + alen:
                    continue
                parent = struct.unpack_from("<Q", rec, v)[0] & 0xFFFFFFFFFFFF
                nlen, space = rec[v + 64], rec[v + 65]
                if v + 66 + 2 * nlen > off + alen:
                    raise FormatError(f"MFT record {n}: file name overruns", self.label)
                if space == 2 and best is not None:  # DOS 8.3 alias: keep the long name
                    continue
                best = (parent, rec[v + 66 : v + 66 + 2 * nlen].decode("utf-16-le", "replace"))
            if best is None:
                continue
            is_dir = bool(struct.unpack_from("<H", rec, 0x16)[0] & _DIRECTORY)
            size = 0 if is_dir else self._data(rec, n)[1]
            names[n] = (best[0], best[1], is_dir, size)
        out: dict[str, NtfsFile] = {}
        for n, (_parent, _name, is_dir, size) in names.items():
            if n < _FIRST_USER:
                continue
            parts: list[str] = []
            cur, seen = n, set()
            while cur != _ROOT:
                if cur in seen or cur not in names:
                    parts = []
                    break
                seen.add(cur)
                parts.append(names[cur][1])
                cur = names[cur][0]
            if parts:
                path = "\\".join(reversed(parts))
                out[path.upper()] = NtfsFile(path, n, size, is_dir)
        self._files = out
        return out

    def lookup(self, path: str) -> NtfsFile:
        key = path.replace("/", "\\").strip("\\").upper()
        found = self.files().get(key)
        if found is None:
            raise FormatError(f"no such file in the volume: {path}", self.label)
        return found

    def chunks(self, f: NtfsFile, step: int = 1 << 20) -> Iterator[bytes]:
        """The file's bytes, in pieces of at most `step`."""
        if f.is_dir:
            raise FormatError(f"{f.path} is a directory", self.label)
        runs, size, resident = self._data(self.record(f.record), f.record)
        if runs is None:
            yield resident
            return
        for pos in range(0, size, step):
            yield b"".join(self._extents(runs, pos, min(step, size - pos)))

    def read_file(self, f: NtfsFile, max_size: int = 256 << 20) -> bytes:
        if f.size > max_size:
            raise FormatError(f"{f.path} is {f.size} bytes; more than {max_size} to load", self.label)
        return b"".join(self.chunks(f))
