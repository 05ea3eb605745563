"""CAB format basics shared by the writer, the reader and the Authenticode helpers: format constants,
the construct declarations of CFHEADER/CFFOLDER/CFFILE/CFDATA, the CAB checksum, member-name and DOS
date rules, the public data types, and the temp-file naming of atomic outputs.

Separate so that each of the three users imports only the layout, not one another.
"""

from __future__ import annotations

import calendar
import os
import re
import secrets
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from construct import (
    Bytes,
    Const,
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

from ...errors import ConfigError

# --- format constants -------------------------------------------------------------------------

FLAG_PREV_CABINET = 0x0001
FLAG_NEXT_CABINET = 0x0002
FLAG_RESERVE_PRESENT = 0x0004

COMP_NONE = 0
COMP_MSZIP = 1
COMP_QUANTUM = 2
COMP_LZX = 3
# Window sizes (log2, bits 8-12 of typeCompress) the decoders accept: libmspack lzxd_init / qtmd_init.
LZX_WINDOWS = range(15, 22)
QUANTUM_WINDOWS = range(10, 22)
COMP_NAMES = {0: "none", 1: "MSZIP", 2: "Quantum", 3: "LZX"}

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
CFDATA_C = CFDATA.compile()  # per-block hot path: compiled is ~3x faster than interpreted
CFDATA_S = struct.Struct("<IHH")  # the reader's per-block header parse (same layout, ~30x faster)


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
    """The CFDATA checksum fold (as libmspack's cabd_checksum computes it): XOR of LE words,
    1-3 leftover bytes packed big-endian."""
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
SEPARATORS = re.compile(r"[\\/]")


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
    segments = SEPARATORS.split(name) if slash_is_separator else name.split("\\")
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
        raise ConfigError(f"timestamp {timestamp} is outside the DOS date range 1980-2107")
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
    sha256: str | None = None  # SHA-256 of the whole file, when computed in passing (write_cab)
    signature_size: int | None = None  # padded size of the signature write_cab appended


# --- output files -----------------------------------------------------------------------------


def temp_name(out: Path) -> Path:
    return out.with_name(f".{out.name}.{os.getpid()}-{secrets.token_hex(4)}.partial")


def unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
