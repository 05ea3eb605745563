"""Microsoft Cabinet (CAB) writer and reader.

Hand-written because neither Linux option fits: ``cabarchive`` keeps the whole archive in RAM
and silently corrupts cabinets beyond ~2 GiB (block count capped at 0xFFFF), and ``gcab`` has no
SOURCE_DATE_EPOCH, cannot reserve the Authenticode header area and gives no control over folder
splits. The reader treats every input as hostile (vendor CABs). Layout: cab-format.md; signature
placement and the CAB digest: signing.md §5.2 and §6.
"""

from __future__ import annotations

import calendar
import hashlib
import io
import os
import re
import secrets
import stat
import struct
import time
import zlib
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from construct import (
    Bytes,
    Const,
    ConstructError,
    GreedyBytes,
    If,
    Int8ul,
    Int16ul,
    Int32ul,
    NullTerminated,
    Struct,
    Tell,
    this,
)

from ..errors import FFUError
from ..util.paths import open_regular

# --- format constants -------------------------------------------------------------------------

FLAG_PREV_CABINET = 0x0001
FLAG_NEXT_CABINET = 0x0002
FLAG_RESERVE_PRESENT = 0x0004

COMP_NONE = 0
COMP_MSZIP = 1
_COMP_NAMES = {0: "none", 1: "MSZIP", 2: "Quantum", 3: "LZX"}

ATTR_NAME_IS_UTF = 0x80
BLOCK_SIZE = 32768
MAX_MSZIP_CBDATA = BLOCK_SIZE + 6144
MAX_BLOCKS_PER_FOLDER = 0xFFFF
MAX_FOLDERS = 0xFFFF
MAX_FILES = 0xFFFF
MAX_FILE_SIZE = 0x7FFF8000
MAX_CABINET_SIZE = 0x7FFFFFFF
MAX_NAME_BYTES = 255  # CB_MAX_FILENAME (256) including the NUL; libmspack's limit too
MAX_READ_NAME_BYTES = 1024
MAX_HEADER_RESERVE = 60000
DEFAULT_READ_MAX = 256 * 1024 * 1024

SIG_RESERVE_SIZE = 20
SIG_RESERVE_MAGIC = b"\x00\x00\x10\x00"
SIG_INSERT_SIZE = 4 + SIG_RESERVE_SIZE  # cbCFHeader/cbCFFolder/cbCFData + abReserve
SIG_OFFSET_POS = 44
SIG_LEN_POS = 48

DEFAULT_DOS_DATETIME = (0x5021, 0x0000)  # 2020-01-01 00:00:00

# --- binary structures ------------------------------------------------------------------------

CFHEADER_FIXED_SIZE = 36

CFHEADER = Struct(
    "signature" / Const(b"MSCF"),
    "reserved1" / Int32ul,
    "cbCabinet" / Int32ul,
    "reserved2" / Int32ul,
    "coffFiles" / Int32ul,
    "reserved3" / Int32ul,
    "versionMinor" / Int8ul,
    "versionMajor" / Int8ul,
    "cFolders" / Int16ul,
    "cFiles" / Int16ul,
    "flags" / Int16ul,
    "setID" / Int16ul,
    "iCabinet" / Int16ul,
    "reserve"
    / If(
        this.flags & FLAG_RESERVE_PRESENT,
        Struct(
            "cbCFHeader" / Int16ul,
            "cbCFFolder" / Int8ul,
            "cbCFData" / Int8ul,
            "abReserve" / Bytes(this.cbCFHeader),
        ),
    ),
    "prev"
    / If(
        this.flags & FLAG_PREV_CABINET,
        Struct("szCabinet" / NullTerminated(GreedyBytes), "szDisk" / NullTerminated(GreedyBytes)),
    ),
    "next"
    / If(
        this.flags & FLAG_NEXT_CABINET,
        Struct("szCabinet" / NullTerminated(GreedyBytes), "szDisk" / NullTerminated(GreedyBytes)),
    ),
    "end" / Tell,
)

# abReserve of an Authenticode-signed (or signature-ready) cabinet, header offsets 40..59.
SIG_RESERVE = Struct(
    "magic" / Const(SIG_RESERVE_MAGIC),
    "sigOffset" / Int32ul,
    "sigLen" / Int32ul,
    "tail" / Bytes(8),
)

CFFOLDER = Struct(
    "coffCabStart" / Int32ul,
    "cCFData" / Int16ul,
    "typeCompress" / Int16ul,
)
CFFOLDER_SIZE = CFFOLDER.sizeof()

CFFILE = Struct(
    "cbFile" / Int32ul,
    "uoffFolderStart" / Int32ul,
    "iFolder" / Int16ul,
    "date" / Int16ul,
    "time" / Int16ul,
    "attribs" / Int16ul,
    "szName" / NullTerminated(GreedyBytes),
)
CFFILE_FIXED_SIZE = 16

CFDATA = Struct(
    "csum" / Int32ul,
    "cbData" / Int16ul,
    "cbUncomp" / Int16ul,
)
CFDATA_SIZE = CFDATA.sizeof()
_CFDATA_C = CFDATA.compile()  # per-block hot path: compiled is ~3x faster than interpreted
_CFDATA_S = struct.Struct("<IHH")  # the reader's per-block header parse (same layout, ~30x faster)


# --- checksum ---------------------------------------------------------------------------------

_MASKS: dict[int, int] = {}


def _xor_words(data) -> int:
    """XOR of all complete little-endian u32 words of ``data`` (no per-byte Python loop)."""
    mv = memoryview(data)
    n = len(mv) & ~3
    q = (n >> 4) << 2  # a quarter, word aligned
    if q >= 64:
        x = (
            int.from_bytes(mv[:q], "little")
            ^ int.from_bytes(mv[q : 2 * q], "little")
            ^ int.from_bytes(mv[2 * q : 3 * q], "little")
            ^ int.from_bytes(mv[3 * q : 4 * q], "little")
        )
        if n > 4 * q:  # < 16 leftover bytes, fewer words than a quarter
            x ^= int.from_bytes(mv[4 * q : n], "little")
        w = q >> 2
    else:
        x = int.from_bytes(mv[:n], "little")
        w = n >> 2
    while w > 1:
        h = w >> 1
        bits = h << 5
        m = _MASKS.get(bits)
        if m is None:
            m = _MASKS[bits] = (1 << bits) - 1
        x = (x >> bits) ^ (x & m)
        w -= h
    return x


def cab_checksum(data, seed: int = 0) -> int:
    """FOLD of cab-format.md §4: XOR of LE words, 1-3 leftover bytes packed big-endian."""
    n = len(data)
    c = seed ^ _xor_words(data)
    r = n & 3
    if r:
        c ^= int.from_bytes(bytes(data[n - r :]), "big")
    return c


def cfdata_checksum(ab, cb_data: int, cb_uncomp: int) -> int:
    """CFDATA.csum over the block payload ``ab`` and its cbData/cbUncomp fields."""
    return cab_checksum(ab) ^ (cb_data | (cb_uncomp << 16))


# --- names and dates --------------------------------------------------------------------------

_DEVICE_NAMES = frozenset(
    ["CON", "PRN", "AUX", "NUL"] + [f"COM{i}" for i in range(1, 10)] + [f"LPT{i}" for i in range(1, 10)]
)
_FORBIDDEN_CHARS = frozenset('<>:"|?*')
_SEPARATORS = re.compile(r"[\\/]")


def name_problem(name: str, *, slash_is_separator: bool = False) -> str | None:
    """Why ``name`` is not a safe relative CAB path (``\\``-separated), or None if it is."""
    if not name:
        return "is empty"
    if "\0" in name:
        return "contains a NUL byte"
    if len(name) >= 2 and name[1] == ":" and name[0].isalpha():
        return "has a drive letter"
    if name[0] == "\\" or (slash_is_separator and name[0] == "/"):
        return "is an absolute path"
    if not slash_is_separator and "/" in name:
        return "contains '/' (use '\\' as the path separator)"
    segments = _SEPARATORS.split(name) if slash_is_separator else name.split("\\")
    for seg in segments:
        if seg == "":
            return "has an empty path segment"
        if seg in (".", ".."):
            return f"has a '{seg}' path segment"
        for ch in seg:
            if ord(ch) < 0x20 or ch in _FORBIDDEN_CHARS:
                return f"contains the forbidden character {ch!r}"
        if seg[-1] in ". ":
            return "has a path segment ending in '.' or ' '"
        if seg.split(".", 1)[0].rstrip(" ").upper() in _DEVICE_NAMES:
            return f"uses the reserved device name {seg!r}"
    return None


def dos_datetime_of(timestamp: int | None = None) -> tuple[int, int]:
    """(DOS date, DOS time) of a Unix timestamp in UTC; None gives 2020-01-01 00:00."""
    if timestamp is None:
        return DEFAULT_DOS_DATETIME
    t = time.gmtime(int(timestamp))
    if not 1980 <= t.tm_year <= 2107:
        raise FFUError(f"timestamp {timestamp} is outside the DOS date range 1980-2107")
    return (
        ((t.tm_year - 1980) << 9) | (t.tm_mon << 5) | t.tm_mday,
        (t.tm_hour << 11) | (t.tm_min << 5) | (t.tm_sec // 2),
    )


def _dos_to_unix(date: int, tm: int) -> int | None:
    try:
        return calendar.timegm(
            (1980 + (date >> 9), (date >> 5) & 15, date & 31, tm >> 11, (tm >> 5) & 63, (tm & 31) * 2)
        )
    except (ValueError, OverflowError):
        return None


# --- public data types ------------------------------------------------------------------------


@dataclass(frozen=True)
class CabMember:
    """One file to store: from ``source`` (streamed) or in-memory ``data``."""

    name: str
    source: str | os.PathLike | None = None
    data: bytes | None = None
    attribs: int = 0x20


@dataclass(frozen=True)
class CabEntry:
    """One CFFILE entry as stored (name with ``\\`` separators)."""

    name: str
    size: int
    folder: int
    offset: int
    date: int
    time: int
    attribs: int

    @property
    def mtime(self) -> int | None:
        """DOS date/time as a Unix timestamp (interpreted as UTC), None if invalid."""
        return _dos_to_unix(self.date, self.time)


@dataclass(frozen=True)
class CabInfo:
    """What :func:`write_cab` wrote."""

    num_folders: int
    num_files: int
    cb_cabinet: int
    members: tuple[CabEntry, ...]
    # content_signature() of the file as written, when it was computed in passing (uncompressed, or
    # signed here; nothing run on the file afterwards); else None
    content_signature: str | None = None


# --- writer -----------------------------------------------------------------------------------


@dataclass
class _Planned:
    name: str
    raw_name: bytes
    attribs: int
    size: int
    source: str | None
    data: bytes | None
    folder: int = 0
    offset: int = 0


def _plan_members(members: list[CabMember]) -> list[_Planned]:
    if not members:
        raise FFUError("a cabinet needs at least one member")
    if len(members) > MAX_FILES:
        raise FFUError(f"{len(members)} members exceed the CAB limit of {MAX_FILES} files")
    seen: dict[str, str] = {}
    out: list[_Planned] = []
    for m in members:
        problem = name_problem(m.name)
        if problem:
            raise FFUError(f"CAB member name {m.name!r} {problem}")
        key = m.name.casefold()
        if key in seen:
            raise FFUError(f"duplicate CAB member name {m.name!r} (clashes with {seen[key]!r})")
        seen[key] = m.name
        attribs = m.attribs
        if m.name.isascii():
            raw = m.name.encode("ascii")
        else:
            raw = m.name.encode("utf-8")
            attribs |= ATTR_NAME_IS_UTF
        if len(raw) > MAX_NAME_BYTES:
            raise FFUError(f"CAB member name {m.name!r} is longer than {MAX_NAME_BYTES} bytes")
        if not 0 <= attribs <= 0xFFFF:
            raise FFUError(f"CAB member {m.name!r}: attributes {attribs:#x} do not fit 16 bits")
        if (m.source is None) == (m.data is None):
            raise FFUError(f"CAB member {m.name!r} needs exactly one of source= or data=")
        if m.data is not None:
            size, source = len(m.data), None
        else:
            source = os.fspath(m.source)
            try:
                st = os.stat(source)
            except OSError as exc:
                raise FFUError(f"cannot read {m.name!r}: {exc.strerror}", source) from None
            if not stat.S_ISREG(st.st_mode):
                raise FFUError(f"CAB member source for {m.name!r} is not a regular file", source)
            size = st.st_size
        if size > MAX_FILE_SIZE:
            raise FFUError(
                f"CAB member {m.name!r} is {size} bytes; a cabinet file is limited to {MAX_FILE_SIZE} bytes",
                source,
            )
        out.append(_Planned(m.name, raw, attribs, size, source, m.data))
    return out


def _plan_folders(planned: list[_Planned], max_blocks: int) -> list[tuple[int, int, int]]:
    """Assign members to folders; returns (first, end, stream_size) per folder."""
    if not 1 <= max_blocks <= MAX_BLOCKS_PER_FOLDER:
        raise ValueError(f"max_blocks_per_folder must be in 1..{MAX_BLOCKS_PER_FOLDER}")
    cap = min(max_blocks * BLOCK_SIZE, 0xFFFFFFFF)
    folders: list[tuple[int, int, int]] = []
    first, cur = 0, 0
    for i, p in enumerate(planned):
        if p.size > cap:
            raise FFUError(f"CAB member {p.name!r} ({p.size} bytes) does not fit in one folder ({cap} bytes)")
        if cur + p.size > cap and i > first:
            folders.append((first, i, cur))
            first, cur = i, 0
        p.folder, p.offset = len(folders), cur
        cur += p.size
    folders.append((first, len(planned), cur))
    if len(folders) > MAX_FOLDERS:
        raise FFUError(f"payload needs {len(folders)} folders; the CAB limit is {MAX_FOLDERS}")
    return folders


def _temp_name(out: Path) -> Path:
    return out.with_name(f".{out.name}.{os.getpid()}-{secrets.token_hex(4)}.partial")


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _folder_stream(planned: list[_Planned], out_label: str) -> Iterator[memoryview]:
    """The folder's uncompressed stream in BLOCK_SIZE pieces (the last one may be short)."""
    buf = bytearray(BLOCK_SIZE)
    view = memoryview(buf)
    fill = 0
    for p in planned:
        if p.data is not None:
            src = memoryview(p.data)
            pos = 0
            while pos < p.size:
                n = min(BLOCK_SIZE - fill, p.size - pos)
                view[fill : fill + n] = src[pos : pos + n]
                fill += n
                pos += n
                if fill == BLOCK_SIZE:
                    yield view
                    fill = 0
            continue
        try:
            with open(p.source, "rb", buffering=0) as f:
                remaining = p.size
                while remaining:
                    n = f.readinto(view[fill : fill + min(BLOCK_SIZE - fill, remaining)])
                    if not n:
                        raise FFUError(
                            f"{p.name!r}: file shrank while it was being written to {out_label}", p.source
                        )
                    fill += n
                    remaining -= n
                    if fill == BLOCK_SIZE:
                        yield view
                        fill = 0
                if f.read(1):
                    raise FFUError(
                        f"{p.name!r}: file grew while it was being written to {out_label}", p.source
                    )
        except OSError as exc:
            raise FFUError(f"cannot read {p.name!r}: {exc.strerror or exc}", p.source) from None
    if fill:
        yield view[:fill]


def write_cab(
    out_path: str | os.PathLike,
    members: list[CabMember],
    *,
    compression: str = "none",
    level: int = 6,
    dos_datetime: tuple[int, int] | None = None,
    timestamp: int | None = None,
    reserve_signature: bool = False,
    max_blocks_per_folder: int = MAX_BLOCKS_PER_FOLDER,
    mszip_history: bool = False,
    finish: Callable[[str], None] | None = None,
    authenticode: Callable[[bytes], bytes] | None = None,
) -> CabInfo:
    """Write ``members`` (in the given order) to a deterministic single-cabinet CAB, atomically.

    ``dos_datetime`` (date, time) or ``timestamp`` (Unix seconds, UTC) fixes every file's stamp;
    default 2020-01-01 00:00. ``reserve_signature`` writes the 20-byte Authenticode reserve
    (sigOffset/sigLen zero) for :func:`append_signature`. ``mszip_history`` lets MSZIP blocks
    reference the previous block (smaller; readers must keep the window; off by default).
    ``finish(temp_path)`` runs on the complete file before it is renamed into place (a signer
    signs it there: no second temp file and rename per signed package).
    ``authenticode(digest) -> PKCS#7 blob`` signs the CAB as it is written (needs
    ``reserve_signature``): the signed-layout digest of an uncompressed CAB is computed while its
    bytes are written, since its header is known in advance, so the file is not read back.
    """
    out = Path(out_path)
    if compression not in ("none", "mszip"):
        raise FFUError(f"unknown CAB compression {compression!r} (use 'none' or 'mszip')")
    if not 0 <= level <= 9:
        raise FFUError(f"MSZIP level {level} is not in 0..9")
    if dos_datetime is not None and timestamp is not None:
        raise ValueError("give dos_datetime or timestamp, not both")
    date, tm = dos_datetime if dos_datetime is not None else dos_datetime_of(timestamp)
    if not (0 <= date <= 0xFFFF and 0 <= tm <= 0xFFFF):
        raise FFUError(f"DOS date/time {date:#x}/{tm:#x} does not fit 16 bits")

    if authenticode is not None and not reserve_signature:
        raise ValueError("authenticode signing needs reserve_signature=True")
    planned = _plan_members(members)
    folders = _plan_folders(planned, max_blocks_per_folder)

    header_size = CFHEADER_FIXED_SIZE + (SIG_INSERT_SIZE if reserve_signature else 0)
    coff_files = header_size + CFFOLDER_SIZE * len(folders)
    file_table = b"".join(
        CFFILE.build(
            dict(
                cbFile=p.size,
                uoffFolderStart=p.offset,
                iFolder=p.folder,
                date=date,
                time=tm,
                attribs=p.attribs,
                szName=p.raw_name,
            )
        )
        for p in planned
    )
    data_start = coff_files + len(file_table)
    nblocks = [-(-size // BLOCK_SIZE) for _first, _end, size in folders]
    if compression == "none":
        total = data_start + sum(n * CFDATA_SIZE for n in nblocks) + sum(f[2] for f in folders)
        if total > MAX_CABINET_SIZE:
            raise FFUError(
                f"the cabinet would be {total} bytes; a CAB is limited to {MAX_CABINET_SIZE} bytes "
                "(split the package)",
                str(out),
            )

    def header_of(size: int, folder_entries: list[bytes]) -> bytes:
        reserve = None
        if reserve_signature:
            reserve = dict(
                cbCFHeader=SIG_RESERVE_SIZE,
                cbCFFolder=0,
                cbCFData=0,
                abReserve=SIG_RESERVE.build(dict(sigOffset=0, sigLen=0, tail=bytes(8))),
            )
        header = CFHEADER.build(
            dict(
                reserved1=0,
                cbCabinet=size,
                reserved2=0,
                coffFiles=coff_files,
                reserved3=0,
                versionMinor=3,
                versionMajor=1,
                cFolders=len(folders),
                cFiles=len(planned),
                flags=FLAG_RESERVE_PRESENT if reserve_signature else 0,
                setID=0,
                iCabinet=0,
                reserve=reserve,
                prev=None,
                next=None,
            )
        )
        assert len(header) == header_size
        return header + b"".join(folder_entries)

    type_compress = COMP_NONE if compression == "none" else COMP_MSZIP
    hasher = None
    if compression == "none":  # the whole layout is known before any data is written
        planned_entries, start = [], data_start
        for fi, (_first, _end, size) in enumerate(folders):
            planned_entries.append(
                CFFOLDER.build(dict(coffCabStart=start, cCFData=nblocks[fi], typeCompress=type_compress))
            )
            start += nblocks[fi] * CFDATA_SIZE + size
        head = header_of(total, planned_entries)
        if authenticode is not None:
            hasher = hashlib.sha256(_signed_layout_header(head))
            hasher.update(head[header_size:])
        elif not reserve_signature:  # the file's own SHA-256, for content_signature()
            hasher = hashlib.sha256(head)
        if hasher is not None:
            hasher.update(file_table)
    else:
        head = bytes(coff_files)
    content_sig = None
    tmp = _temp_name(out)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        raise FFUError(f"cannot create cabinet: {exc.strerror}", str(out)) from None
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as f:
            f.write(head)
            f.write(file_table)
            pos = data_start
            folder_entries = []
            for fi, (first, end, _size) in enumerate(folders):
                start = pos
                count = 0
                hist = None
                for block in _folder_stream(planned[first:end], str(out)):
                    n = len(block)
                    if compression == "none":
                        ab = block
                    else:
                        if hist is not None:
                            c = zlib.compressobj(level, zlib.DEFLATED, -15, zdict=hist)
                        else:
                            c = zlib.compressobj(level, zlib.DEFLATED, -15)
                        ab = b"CK" + c.compress(block) + c.flush()
                        if mszip_history:
                            hist = bytes(block)
                    cb = len(ab)
                    cfdata = _CFDATA_C.build(dict(csum=cfdata_checksum(ab, cb, n), cbData=cb, cbUncomp=n))
                    f.write(cfdata)
                    f.write(ab)
                    if hasher is not None:
                        hasher.update(cfdata)
                        hasher.update(ab)
                    pos += CFDATA_SIZE + cb
                    count += 1
                    if pos > MAX_CABINET_SIZE:
                        raise FFUError(
                            f"the compressed cabinet exceeds {MAX_CABINET_SIZE} bytes (split the package)",
                            str(out),
                        )
                if count != nblocks[fi]:  # pragma: no cover - guarded by _folder_stream
                    raise FFUError(f"folder {fi} has {count} blocks, expected {nblocks[fi]}", str(out))
                folder_entries.append(
                    CFFOLDER.build(dict(coffCabStart=start, cCFData=count, typeCompress=type_compress))
                )
            if compression != "none":
                f.seek(0)
                f.write(header_of(pos, folder_entries))
            elif pos != total or folder_entries != planned_entries:  # pragma: no cover - planned exactly
                raise FFUError("the cabinet's layout differs from its plan", str(out))
            if authenticode is not None:
                if hasher is None:  # compressed: the folder table was only known at the end
                    f.flush()
                    digest = cab_hash(tmp)
                else:
                    digest = hasher.digest()
                blob = authenticode(digest)
                f.seek(SIG_OFFSET_POS)
                padded = bytes(blob) + bytes(-len(blob) % 8)
                offsets = pos.to_bytes(4, "little") + len(padded).to_bytes(4, "little")
                f.write(offsets)
                f.seek(pos)
                f.write(padded)
                if finish is None:  # the header as it now is on disk; its first 60 bytes are ours
                    final = header_of(pos, folder_entries)
                    final = final[:SIG_OFFSET_POS] + offsets + final[SIG_OFFSET_POS + 8 :]
                    h = _signed_content_hash(digest, final)
                    h.update(padded)
                    h.update((pos + len(padded)).to_bytes(8, "little"))
                    content_sig = h.hexdigest()
            elif hasher is not None and finish is None:
                content_sig = _plain_content_signature(hasher.digest(), pos)
        if finish is not None:
            finish(tmp)
        os.replace(tmp, out)
    except BaseException as exc:
        _unlink_quietly(tmp)
        if isinstance(exc, OSError):
            raise FFUError(f"cannot write cabinet: {exc.strerror or exc}", str(out)) from None
        raise
    return CabInfo(
        num_folders=len(folders),
        num_files=len(planned),
        cb_cabinet=pos,
        members=tuple(CabEntry(p.name, p.size, p.folder, p.offset, date, tm, p.attribs) for p in planned),
        content_signature=content_sig,
    )


# --- reader -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Folder:
    coff: int
    blocks: int
    comp: int


_INDEX_STRIDE = 64  # keep (file offset, uncompressed offset) of every 64th block


@dataclass
class _FolderIndex:
    uoffs: array
    offsets: array
    total: int = 0


class _ChunkRaw(io.RawIOBase):
    def __init__(self, chunks: Iterator[memoryview]):
        self._chunks = chunks
        self._cur = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self._cur:
            nxt = next(self._chunks, None)
            if nxt is None:
                return 0
            self._cur = memoryview(nxt)
        n = min(len(b), len(self._cur))
        b[:n] = self._cur[:n]
        self._cur = self._cur[n:]
        return n

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close:
            close()
        super().close()


class _FolderCursor:
    """Forward reader over one folder's uncompressed stream; restarts to go backwards."""

    def __init__(self, reader: CabReader, index: int):
        self._r = reader
        self._i = index
        self._gen: Iterator[tuple[int, bytes]] | None = None
        self._cur: tuple[int, bytes] | None = None

    def chunks(self, start: int, length: int, label: str) -> Iterator[memoryview]:
        end = start + length
        try:
            while start < end:
                if self._gen is None or self._cur is None or start < self._cur[0]:
                    self._gen = self._r._blocks(self._i, start)
                    self._cur = next(self._gen, None)
                while self._cur is not None and self._cur[0] + len(self._cur[1]) <= start:
                    self._cur = next(self._gen, None)
                if self._cur is None:
                    raise FFUError(f"data of folder {self._i} ends before the member does")
                base, data = self._cur
                a, b = start - base, min(len(data), end - base)
                yield memoryview(data)[a:b]
                start = base + b
        except FFUError as exc:
            self._gen = self._cur = None
            raise FFUError(f"member {label!r}: {exc.message}", self._r.path) from None


class CabReader:
    """Read a single (non-spanned) cabinet: none and MSZIP folders, hostile input checked."""

    def __init__(self, path: str | os.PathLike, *, max_members: int = MAX_FILES):
        self.path = str(path)
        try:
            self._fd = open_regular(self.path)
        except OSError as exc:
            raise FFUError(f"cannot open cabinet: {exc.strerror}", self.path) from None
        try:
            self._parse(max_members)
        except BaseException:
            os.close(self._fd)
            self._fd = -1
            raise
        self._index: dict[int, _FolderIndex] = {}
        self._idle: dict[int, _FolderCursor] = {}

    # context manager / lifetime
    def __enter__(self) -> CabReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _err(self, msg: str) -> FFUError:
        return FFUError(msg, self.path)

    def _pread(self, n: int, off: int) -> bytes:
        if off < 0 or off + n > self.cb_cabinet:
            raise self._err(f"{n} bytes at offset {off} lie outside the cabinet ({self.cb_cabinet} bytes)")
        data = os.pread(self._fd, n, off)
        if len(data) != n:
            raise self._err(f"file is truncated (wanted {n} bytes at offset {off})")
        return data

    def _parse(self, max_members: int) -> None:
        st = os.fstat(self._fd)
        if not stat.S_ISREG(st.st_mode):
            raise self._err("not a regular file")
        size = st.st_size
        self.file_size = size
        if size < CFHEADER_FIXED_SIZE:
            raise self._err(f"file is truncated ({size} bytes; a CAB header needs {CFHEADER_FIXED_SIZE})")
        head = os.pread(self._fd, min(size, CFHEADER_FIXED_SIZE + 4 + MAX_HEADER_RESERVE + 4 * 256), 0)
        if head[:4] != b"MSCF":
            raise self._err("not a cabinet file (signature is not 'MSCF')")
        flags = int.from_bytes(head[30:32], "little")
        if flags & (FLAG_PREV_CABINET | FLAG_NEXT_CABINET):
            raise self._err("multi-cabinet (spanned) sets are not supported; repack as a single cabinet")
        if flags & FLAG_RESERVE_PRESENT and len(head) >= 38:
            cb_reserve = int.from_bytes(head[36:38], "little")
            if cb_reserve > MAX_HEADER_RESERVE:
                raise self._err(f"header reserve of {cb_reserve} bytes exceeds {MAX_HEADER_RESERVE}")
        try:
            h = CFHEADER.parse(head)
        except ConstructError:
            raise self._err("file is truncated or has a corrupt header") from None
        if h.versionMajor != 1:
            raise self._err(f"unsupported cabinet version {h.versionMajor}.{h.versionMinor}")
        self.cb_cabinet = h.cbCabinet
        if h.cbCabinet > size:
            raise self._err(f"file is truncated (cbCabinet says {h.cbCabinet} bytes, file has {size})")
        if h.cbCabinet < h.end:
            raise self._err(f"cbCabinet {h.cbCabinet} is smaller than the header")
        self.flags = h.flags
        self.set_id = h.setID
        self.cb_cf_header = h.reserve.cbCFHeader if h.reserve else 0
        self.header_reserve = h.reserve.abReserve if h.reserve else b""
        self.cb_cf_folder = h.reserve.cbCFFolder if h.reserve else 0
        self.cb_cf_data = h.reserve.cbCFData if h.reserve else 0

        # folders
        fsize = CFFOLDER_SIZE + self.cb_cf_folder
        table = self._pread(fsize * h.cFolders, h.end)
        folders = []
        data_min = h.end + fsize * h.cFolders
        budget = 0
        for i in range(h.cFolders):
            f = CFFOLDER.parse(table[i * fsize : i * fsize + CFFOLDER_SIZE])
            if not data_min <= f.coffCabStart <= h.cbCabinet:
                raise self._err(f"folder {i}: data offset {f.coffCabStart} is outside the cabinet")
            need = f.cCFData * (CFDATA_SIZE + self.cb_cf_data)
            if f.coffCabStart + need > h.cbCabinet:
                raise self._err(f"folder {i}: {f.cCFData} data blocks cannot fit in the cabinet")
            budget += need
            folders.append(_Folder(f.coffCabStart, f.cCFData, f.typeCompress))
        if budget > h.cbCabinet - data_min:
            raise self._err("folders declare more data blocks than the cabinet can hold")
        self._folders = folders

        # files
        if h.cFiles > max_members:
            raise self._err(f"{h.cFiles} members exceed the limit of {max_members}")
        if h.cFiles and not data_min <= h.coffFiles <= h.cbCabinet:
            raise self._err(f"coffFiles {h.coffFiles} is outside the cabinet")
        if h.cFiles and h.cFiles * (CFFILE_FIXED_SIZE + 2) > h.cbCabinet - h.coffFiles:
            raise self._err(f"{h.cFiles} file entries cannot fit in the cabinet")
        members: list[CabEntry] = []
        pos = h.coffFiles
        buf = b""
        bufpos = pos
        for k in range(h.cFiles):
            want = CFFILE_FIXED_SIZE + MAX_READ_NAME_BYTES + 1
            rel = pos - bufpos
            if len(buf) - rel < want and bufpos + len(buf) < h.cbCabinet:
                n = min(max(65536, want), h.cbCabinet - pos)
                buf, bufpos, rel = self._pread(n, pos), pos, 0
            try:
                e = CFFILE.parse(buf[rel : rel + want])
            except ConstructError:
                raise self._err(f"file entry {k} is truncated or its name is too long") from None
            pos += CFFILE_FIXED_SIZE + len(e.szName) + 1
            try:
                name = e.szName.decode("utf-8" if e.attribs & ATTR_NAME_IS_UTF else "latin-1")
            except UnicodeDecodeError:
                raise self._err(f"file entry {k}: name is not valid UTF-8") from None
            if e.iFolder >= 0xFFFD:
                raise self._err(
                    f"member {name!r} continues in another cabinet; spanned sets are not supported"
                )
            if e.iFolder >= len(folders):
                raise self._err(f"member {name!r}: folder index {e.iFolder} does not exist")
            if e.cbFile > MAX_FILE_SIZE:
                raise self._err(f"member {name!r}: size {e.cbFile} exceeds the CAB limit")
            if e.uoffFolderStart + e.cbFile > folders[e.iFolder].blocks * BLOCK_SIZE:
                raise self._err(f"member {name!r} extends past the end of folder {e.iFolder}")
            members.append(CabEntry(name, e.cbFile, e.iFolder, e.uoffFolderStart, e.date, e.time, e.attribs))
        self.members: list[CabEntry] = members
        self._folder_members: dict[int, list[CabEntry]] = {}
        for m in members:
            self._folder_members.setdefault(m.folder, []).append(m)
        self._by_name: dict[str, CabEntry | None] = {}
        for m in members:
            self._by_name[m.name] = None if m.name in self._by_name else m

    # data blocks
    def _block_header(
        self, fi: int, j: int, pos: int, comp: int, head: bytes | None = None
    ) -> tuple[int, int, int, int]:
        """Checked CFDATA header of block j at pos (`head`: its 8 bytes when already read)."""
        hl = CFDATA_SIZE + self.cb_cf_data
        csum, cb_data, cb_uncomp = _CFDATA_S.unpack(
            head if head is not None else self._pread(CFDATA_SIZE, pos)
        )
        if cb_uncomp == 0 or cb_uncomp > BLOCK_SIZE:
            raise self._err(f"folder {fi} block {j}: cbUncomp {cb_uncomp} is not in 1..{BLOCK_SIZE}")
        if comp == COMP_NONE and cb_data != cb_uncomp:
            raise self._err(
                f"folder {fi} block {j}: stored block has cbData {cb_data} != cbUncomp {cb_uncomp}"
            )
        if comp == COMP_MSZIP and not 2 < cb_data <= MAX_MSZIP_CBDATA:
            raise self._err(f"folder {fi} block {j}: MSZIP cbData {cb_data} is out of range")
        if pos + hl + cb_data > self.cb_cabinet:
            raise self._err(f"folder {fi} block {j}: data extends past the end of the cabinet")
        return csum, cb_data, cb_uncomp, hl

    def _read_ahead(self, pos: int) -> bytes | None:
        """The bytes of a stored block's header and data in one read (None: read them apart)."""
        hl = CFDATA_SIZE + self.cb_cf_data
        if pos < 0 or pos + hl > self.cb_cabinet:
            return None
        buf = os.pread(self._fd, min(hl + BLOCK_SIZE, self.cb_cabinet - pos), pos)
        return buf if len(buf) >= hl else None

    def _check_folder(self, fi: int) -> _Folder:
        folder = self._folders[fi]
        if folder.comp & 0xF not in (COMP_NONE, COMP_MSZIP):
            kind = _COMP_NAMES.get(folder.comp & 0xF, f"#{folder.comp & 0xF}")
            raise self._err(
                f"folder {fi}: compression type {kind} is not supported; re-pack the CAB with MSZIP or none"
            )
        return folder

    def _folder_index(self, fi: int) -> _FolderIndex:
        """Walk folder ``fi``'s block headers once: bounds, total size, sparse seek index."""
        idx = self._index.get(fi)
        if idx is None:
            folder = self._check_folder(fi)
            comp = folder.comp & 0xF
            idx = _FolderIndex(array("Q"), array("Q"))
            pos, total = folder.coff, 0
            for j in range(folder.blocks):
                if j % _INDEX_STRIDE == 0:
                    idx.uoffs.append(total)
                    idx.offsets.append(pos)
                _c, cb, cu, hl = self._block_header(fi, j, pos, comp)
                pos += hl + cb
                total += cu
            idx.total = total
            for m in self._folder_members.get(fi, ()):
                if m.offset + m.size > total:
                    raise self._err(
                        f"member {m.name!r} (offset {m.offset}, {m.size} bytes) extends past the end of "
                        f"folder {fi} data ({total} bytes)"
                    )
            self._index[fi] = idx
        return idx

    def _blocks(self, fi: int, want: int) -> Iterator[tuple[int, bytes]]:
        """(uncompressed offset, data) of folder ``fi``'s blocks from the one holding ``want``
        (stored folders seek via the sparse index; MSZIP needs the history from block 0)."""
        folder = self._check_folder(fi)
        comp = folder.comp & 0xF
        idx = self._folder_index(fi)
        k = max(bisect_right(idx.uoffs, want) - 1, 0) if comp == COMP_NONE else 0
        pos, uoff = (idx.offsets[k], idx.uoffs[k]) if idx.offsets else (folder.coff, 0)
        hist = b""
        for j in range(k * _INDEX_STRIDE, folder.blocks):
            ahead = self._read_ahead(pos) if comp == COMP_NONE and uoff + BLOCK_SIZE > want else None
            csum, cb, cu, hl = self._block_header(fi, j, pos, comp, ahead and ahead[:CFDATA_SIZE])
            if comp == COMP_NONE and uoff + cu <= want:
                pos += hl + cb
                uoff += cu
                continue
            ab = (
                memoryview(ahead)[hl : hl + cb]
                if ahead and len(ahead) >= hl + cb
                else self._pread(cb, pos + hl)
            )
            if csum and cfdata_checksum(ab, cb, cu) != csum:
                raise self._err(f"folder {fi} block {j}: checksum mismatch (corrupt data)")
            if comp == COMP_NONE:
                out = ab
            else:
                if ab[:2] != b"CK":
                    raise self._err(f"folder {fi} block {j}: MSZIP block does not start with 'CK'")
                d = zlib.decompressobj(-15, zdict=hist) if hist else zlib.decompressobj(-15)
                try:
                    out = d.decompress(memoryview(ab)[2:], cu + 1)
                except zlib.error as exc:
                    raise self._err(f"folder {fi} block {j}: corrupt MSZIP data ({exc})") from None
                if len(out) != cu:
                    raise self._err(
                        f"folder {fi} block {j}: MSZIP data inflates to "
                        f"{'more' if len(out) > cu else 'fewer'} than the declared {cu} bytes"
                    )
                hist = out if cu >= BLOCK_SIZE else (hist + out)[-BLOCK_SIZE:]
            yield uoff, out
            pos += hl + cb
            uoff += cu

    # public access
    def _entry(self, name: str | CabEntry) -> CabEntry:
        if isinstance(name, CabEntry):
            return name
        if name not in self._by_name:
            raise self._err(f"no member named {name!r}")
        e = self._by_name[name]
        if e is None:
            raise self._err(f"member name {name!r} occurs more than once")
        return e

    def iter_chunks(self, name: str | CabEntry) -> Iterator[memoryview]:
        """Stream a member's bytes in chunks of at most 32 KiB."""
        e = self._entry(name)
        if e.size:
            self._folder_index(e.folder)
        return self._member_chunks(e)

    def _member_chunks(self, e: CabEntry) -> Iterator[memoryview]:
        # Reuse an idle cursor of the folder so members read in order decode each block once.
        cursor = self._idle.pop(e.folder, None) or _FolderCursor(self, e.folder)
        try:
            yield from cursor.chunks(e.offset, e.size, e.name)
        finally:
            self._idle[e.folder] = cursor

    def open(self, name: str | CabEntry) -> io.BufferedReader:
        """A read-only binary stream over one member (bounded memory)."""
        return io.BufferedReader(_ChunkRaw(self.iter_chunks(name)), BLOCK_SIZE)

    def read(self, name: str | CabEntry, max_size: int | None = DEFAULT_READ_MAX) -> bytes:
        """A member's content; refuses members above ``max_size`` bytes (None: no limit)."""
        e = self._entry(name)
        if max_size is not None and e.size > max_size:
            raise self._err(
                f"member {e.name!r} is {e.size} bytes, more than the {max_size} allowed in memory"
            )
        return b"".join(self.iter_chunks(e))

    def extract_all(self, dest_dir: str | os.PathLike) -> list[Path]:
        """Extract every member below ``dest_dir``; never writes outside it or through symlinks."""
        dest = Path(dest_dir)
        seen: dict[str, str] = {}
        parts: list[list[str]] = []
        for m in self.members:
            problem = name_problem(m.name, slash_is_separator=True)
            if problem:
                raise self._err(f"refusing to extract member {m.name!r}: name {problem}")
            key = _SEPARATORS.sub("\\\\", m.name).casefold()
            if key in seen:
                raise self._err(f"duplicate member name {m.name!r} (clashes with {seen[key]!r})")
            seen[key] = m.name
            parts.append(_SEPARATORS.split(m.name))
        for fi in sorted({m.folder for m in self.members if m.size}):
            self._folder_index(fi)
        try:
            dest.mkdir(parents=True, exist_ok=True)
            root = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise FFUError(f"cannot create extraction directory: {exc.strerror}", str(dest)) from None
        dirs: dict[tuple[str, ...], int] = {(): root}
        cursors: dict[int, _FolderCursor] = {}
        order = sorted(
            range(len(self.members)), key=lambda k: (self.members[k].folder, self.members[k].offset)
        )
        written: list[Path] = [dest] * len(self.members)
        try:
            for k in order:
                m, segs = self.members[k], parts[k]
                dfd = self._open_dirs(dirs, segs[:-1], dest)
                target = dest.joinpath(*segs)
                cursor = cursors.setdefault(m.folder, _FolderCursor(self, m.folder))
                self._write_member(dfd, segs[-1], target, cursor.chunks(m.offset, m.size, m.name))
                written[k] = target
        finally:
            for fd in dirs.values():
                os.close(fd)
        return written

    def _open_dirs(self, dirs: dict[tuple[str, ...], int], segs: list[str], dest: Path) -> int:
        for i in range(len(segs)):
            key = tuple(segs[: i + 1])
            if key in dirs:
                continue
            parent = dirs[key[:-1]]
            try:
                os.mkdir(segs[i], 0o777, dir_fd=parent)
            except FileExistsError:
                pass
            except OSError as exc:
                raise FFUError(f"cannot create directory: {exc.strerror}", str(dest.joinpath(*key))) from None
            try:
                dirs[key] = os.open(
                    segs[i], os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent
                )
            except OSError as exc:
                raise FFUError(
                    f"refusing to extract through {dest.joinpath(*key)}: not a plain directory ({exc.strerror})",
                    self.path,
                ) from None
        return dirs[tuple(segs)]

    def _write_member(self, dfd: int, leaf: str, target: Path, chunks: Iterator[memoryview]) -> None:
        try:
            st = os.stat(leaf, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        except OSError as exc:
            raise FFUError(f"cannot extract: {exc.strerror}", str(target)) from None
        if st is not None:
            if stat.S_ISDIR(st.st_mode):
                raise FFUError("cannot extract a file over an existing directory", str(target))
            os.unlink(leaf, dir_fd=dfd)  # never write through an existing symlink or hard link
        try:
            fd = os.open(
                leaf, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666, dir_fd=dfd
            )
        except OSError as exc:
            raise FFUError(f"cannot extract: {exc.strerror}", str(target)) from None
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in chunks:
                    f.write(chunk)
        except BaseException:
            try:
                os.unlink(leaf, dir_fd=dfd)
            except OSError:
                pass
            raise


# --- Authenticode helpers ---------------------------------------------------------------------


def _read_header(f, path: str) -> tuple[bytes, object, int]:
    """(raw header bytes, parsed CFHEADER, file size) for the signature helpers."""
    size = os.fstat(f.fileno()).st_size
    head = f.read(CFHEADER_FIXED_SIZE + 4 + MAX_HEADER_RESERVE + 4 * 256)
    if head[:4] != b"MSCF":
        raise FFUError("not a cabinet file (signature is not 'MSCF')", path)
    try:
        h = CFHEADER.parse(head)
    except ConstructError:
        raise FFUError("file is truncated or has a corrupt header", path) from None
    if h.cbCabinet > size or h.cbCabinet < h.end:
        raise FFUError(f"cbCabinet {h.cbCabinet} is inconsistent with the file size {size}", path)
    return head, h, size


def _sig_reserve(h, path: str):
    r = h.reserve
    if r.cbCFHeader != SIG_RESERVE_SIZE or r.cbCFFolder or r.cbCFData:
        raise FFUError(
            f"reserve ({r.cbCFHeader}/{r.cbCFFolder}/{r.cbCFData}) is not an Authenticode signature reserve",
            path,
        )
    try:
        return SIG_RESERVE.parse(r.abReserve)
    except ConstructError:
        raise FFUError("header reserve is not an Authenticode signature reserve", path) from None


def _hash_range(h, f, start: int, end: int) -> None:
    f.seek(start)
    left = end - start
    while left > 0:
        chunk = f.read(min(left, 1 << 20))
        if not chunk:
            raise EOFError
        h.update(chunk)
        left -= len(chunk)


def _signed_layout_header(head: bytes) -> bytes:
    """The header bytes the signed-layout digest covers (signing.md §5.2): all but reserved1 and
    the 24-byte reserve fields; prev/next cabinet strings are not used by our writer."""
    return head[0:4] + head[8:34] + head[56:60]


_SIGNED_TAG = b"ffuforge-signed-cab-sha256-v1\0"
_PLAIN_TAG = b"ffuforge-cab-sha256-v1\0"


def _plain_content_signature(sha256: bytes, size: int) -> str:
    h = hashlib.sha256(_PLAIN_TAG)
    h.update(sha256)
    h.update(size.to_bytes(8, "little"))
    return h.hexdigest()


def _signed_content_hash(digest: bytes, head: bytes):
    """Start of :func:`content_signature`: the tag, the signed-layout SHA-256 and the
    header bytes that digest leaves out (reserved1, iCabinet, the reserve's sizes and offsets)."""
    h = hashlib.sha256(_SIGNED_TAG)
    h.update(digest)
    h.update(head[4:8])
    h.update(head[34:56])
    return h


def content_signature(path: str | os.PathLike) -> str | None:
    """A content signature of a CAB that its writer gets for free (:attr:`CabInfo.content_signature`),
    so the build tool does not read and hash the file again. With the signature reserve: the
    signed-layout SHA-256 (the Authenticode digest a signer computes anyway) plus every byte that
    digest leaves out — the header fields above, the appended signature and padding — and the
    size; as strong as a hash of the whole file. Without: the SHA-256 of the whole file. None for
    a file that does not parse as a CAB (the caller signs it some other way)."""
    path = str(path)
    try:
        with open(path, "rb") as f:
            head, hdr, size = _read_header(f, path)
            if not hdr.flags & FLAG_RESERVE_PRESENT:
                plain = hashlib.sha256()
                _hash_range(plain, f, 0, size)
                return _plain_content_signature(plain.digest(), size)
        digest = cab_hash(path)
        with open(path, "rb") as f:
            head, hdr, size = _read_header(f, path)
            h = _signed_content_hash(digest, head)
            _hash_range(h, f, hdr.cbCabinet, size)
    except (FFUError, OSError, EOFError, ConstructError):
        return None
    h.update(size.to_bytes(8, "little"))
    return h.hexdigest()


def cab_hash(path: str | os.PathLike, algo: str = "sha256") -> bytes:
    """Authenticode/catalog digest of a CAB (signing.md §5.2), signed or unsigned layout.

    With the signature reserve (signed, or reserved with sigOffset 0) the signed-layout rule is
    used, so the result is the digest a signer embeds; it ignores sigOffset/sigLen and any
    appended signature.
    """
    path = str(path)
    h = hashlib.new(algo)
    try:
        with open(path, "rb") as f:
            head, hdr, size = _read_header(f, path)
            if not hdr.flags & FLAG_RESERVE_PRESENT:
                h.update(head[0:4])
                _hash_range(h, f, 8, size)
                return h.digest()
            sig = _sig_reserve(hdr, path)
            if sig.sigOffset not in (0, hdr.cbCabinet):
                raise FFUError(
                    f"signature offset {sig.sigOffset} differs from cbCabinet {hdr.cbCabinet}", path
                )
            h.update(_signed_layout_header(head))
            pos = CFHEADER_FIXED_SIZE + SIG_INSERT_SIZE
            h.update(head[pos : hdr.end])  # prev/next cabinet strings with their NULs
            folders_end = hdr.end + CFFOLDER_SIZE * hdr.cFolders
            if folders_end != hdr.coffFiles or hdr.coffFiles > hdr.cbCabinet:
                raise FFUError(
                    f"corrupt coffFiles {hdr.coffFiles} (folder table ends at {folders_end})", path
                )
            _hash_range(h, f, hdr.end, hdr.cbCabinet)
    except OSError as exc:
        raise FFUError(f"cannot read cabinet: {exc.strerror}", path) from None
    except EOFError:
        raise FFUError("file is truncated", path) from None
    return h.digest()


def _atomic_copy_patch(src: str, dst: str, build) -> None:
    """Write ``dst`` via a temp file; ``build(fin, fout)`` produces the content."""
    out = Path(dst)
    tmp = _temp_name(out)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        raise FFUError(f"cannot create file: {exc.strerror}", dst) from None
    try:
        with open(src, "rb") as fin, os.fdopen(fd, "wb", buffering=1 << 20) as fout:
            build(fin, fout)
        os.replace(tmp, out)
    except BaseException as exc:
        _unlink_quietly(tmp)
        if isinstance(exc, OSError):
            raise FFUError(f"cannot write {dst}: {exc.strerror or exc}", src) from None
        raise


def _copy_range(fin, fout, start: int, end: int, path: str) -> None:
    fin.seek(start)
    left = end - start
    while left > 0:
        chunk = fin.read(min(left, 1 << 20))
        if not chunk:
            raise FFUError("file is truncated", path)
        fout.write(chunk)
        left -= len(chunk)


def insert_signature_reserve(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Copy an unsigned CAB without reserve to ``dst`` with the 24-byte signature reserve inserted
    after offset 36 (signing.md §6); every absolute offset moves by +24."""
    src, dst = str(src), str(dst)

    def build(fin, fout) -> None:
        head, h, size = _read_header(fin, src)
        if h.flags & FLAG_RESERVE_PRESENT:
            raise FFUError("cabinet already has a reserve area", src)
        if size != h.cbCabinet:
            raise FFUError(f"file size {size} differs from cbCabinet {h.cbCabinet}", src)
        if h.cbCabinet + SIG_INSERT_SIZE > MAX_CABINET_SIZE:
            raise FFUError(f"cabinet would exceed {MAX_CABINET_SIZE} bytes with the signature reserve", src)
        folders_end = h.end + CFFOLDER_SIZE * h.cFolders
        if folders_end > h.cbCabinet:
            raise FFUError("folder table extends past the end of the cabinet", src)
        fin.seek(h.end)
        table = fin.read(CFFOLDER_SIZE * h.cFolders)
        new = dict(h)
        new.update(
            cbCabinet=h.cbCabinet + SIG_INSERT_SIZE,
            coffFiles=h.coffFiles + SIG_INSERT_SIZE,
            flags=h.flags | FLAG_RESERVE_PRESENT,
            reserve=dict(
                cbCFHeader=SIG_RESERVE_SIZE,
                cbCFFolder=0,
                cbCFData=0,
                abReserve=SIG_RESERVE.build(dict(sigOffset=0, sigLen=0, tail=bytes(8))),
            ),
        )
        fout.write(CFHEADER.build(new))
        for i in range(h.cFolders):
            fo = CFFOLDER.parse(table[i * CFFOLDER_SIZE : (i + 1) * CFFOLDER_SIZE])
            fout.write(CFFOLDER.build(dict(fo, coffCabStart=fo.coffCabStart + SIG_INSERT_SIZE)))
        _copy_range(fin, fout, folders_end, size, src)

    _atomic_copy_patch(src, dst, build)


def append_signature(path: str | os.PathLike, blob: bytes, out_path: str | os.PathLike | None = None) -> None:
    """Append a PKCS#7 ``blob`` (zero-padded to a multiple of 8) to a CAB with the signature
    reserve and set sigOffset = cbCabinet, sigLen = padded length. Replaces an existing signature.
    Writes ``out_path`` (atomically) or patches ``path`` in place."""
    path = str(path)
    if not blob:
        raise FFUError("empty signature blob", path)
    padded = bytes(blob) + bytes(-len(blob) % 8)
    with open(path, "rb") as f:
        _head, h, _size = _read_header(f, path)
    if not h.flags & FLAG_RESERVE_PRESENT:
        raise FFUError("cabinet has no signature reserve (use insert_signature_reserve first)", path)
    sig = _sig_reserve(h, path)
    if sig.sigOffset not in (0, h.cbCabinet):
        raise FFUError(f"signature offset {sig.sigOffset} differs from cbCabinet {h.cbCabinet}", path)
    fields = h.cbCabinet.to_bytes(4, "little") + len(padded).to_bytes(4, "little")

    def patch(f) -> None:
        f.seek(SIG_OFFSET_POS)
        f.write(fields)
        f.seek(h.cbCabinet)
        if os.fstat(f.fileno()).st_size != h.cbCabinet:  # truncating costs ~5 ms on ext4 even as a no-op
            f.flush()
            f.truncate()
        f.write(padded)

    if out_path is None or os.path.abspath(out_path) == os.path.abspath(path):
        with open(path, "r+b") as f:
            patch(f)
        return

    def build(fin, fout) -> None:
        _copy_range(fin, fout, 0, h.cbCabinet, path)
        fout.flush()
        patch(fout)

    _atomic_copy_patch(path, str(out_path), build)
