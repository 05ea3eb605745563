"""PE helpers: Authenticode image hashing for catalogs, and tiny valid PE images for samples.

The catalog must list the Authenticode hash of every PE member (what Code Integrity looks up),
not its plain file hash, so the hashing follows the linear rule of Microsoft's "Windows
Authenticode Portable Executable Signature Format" (calculating the PE image hash) that makecat
and osslsigncode were shown to produce, including the zero padding of unsigned files whose
length is not a multiple of 8.

Input is untrusted. A file that does not even carry the PE structure (`MZ`, e_lfanew in range,
`PE\\0\\0`) is simply "not a PE" and the catalog hashes it as a flat file, like makecat's flat
SIP would. A file that carries the PE signature but whose headers are truncated or whose offsets
point outside the file is rejected with an :class:`FFUError`: silently flat-hashing it would
produce a catalog entry that never matches what Windows computes.

The sample generator exists so that tests and the sample workspace have real "driver
binaries" that signing tools accept, without shipping binaries.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from construct import (
    Array,
    Const,
    Int8ul,
    Int16ul,
    Int32ul,
    Int64ul,
    PaddedString,
    Padding,
    Struct,
)

from ..errors import ConfigError, FormatError

__all__ = [
    "MACHINES",
    "PeLayout",
    "Source",
    "authenticode_digest",
    "authenticode_digests",
    "is_pe",
    "make_minimal_pe",
    "pe_checksum",
    "pe_layout",
]

Source = str | os.PathLike | bytes | bytearray | memoryview
"""A file path (str / PathLike) or the file content itself (bytes-like)."""

# ----------------------------------------------------------------------------- structures

DOS_HEADER = Struct(
    "e_magic" / Const(b"MZ"),
    "e_cblp" / Int16ul,
    "e_cp" / Int16ul,
    "e_crlc" / Int16ul,
    "e_cparhdr" / Int16ul,
    "e_minalloc" / Int16ul,
    "e_maxalloc" / Int16ul,
    "e_ss" / Int16ul,
    "e_sp" / Int16ul,
    "e_csum" / Int16ul,
    "e_ip" / Int16ul,
    "e_cs" / Int16ul,
    "e_lfarlc" / Int16ul,
    "e_ovno" / Int16ul,
    Padding(8),  # e_res[4]
    "e_oemid" / Int16ul,
    "e_oeminfo" / Int16ul,
    Padding(20),  # e_res2[10]
    "e_lfanew" / Int32ul,
)
assert DOS_HEADER.sizeof() == 64

# Signature + IMAGE_FILE_HEADER.
NT_HEADERS = Struct(
    "signature" / Const(b"PE\0\0"),
    "Machine" / Int16ul,
    "NumberOfSections" / Int16ul,
    "TimeDateStamp" / Int32ul,
    "PointerToSymbolTable" / Int32ul,
    "NumberOfSymbols" / Int32ul,
    "SizeOfOptionalHeader" / Int16ul,
    "Characteristics" / Int16ul,
)
assert NT_HEADERS.sizeof() == 24

DATA_DIRECTORY = Struct("VirtualAddress" / Int32ul, "Size" / Int32ul)


def _optional_header(plus: bool) -> Struct:
    """IMAGE_OPTIONAL_HEADER32/64 without the data directory array (its length is variable)."""
    word = Int64ul if plus else Int32ul
    fields = [
        "Magic" / Int16ul,
        "MajorLinkerVersion" / Int8ul,
        "MinorLinkerVersion" / Int8ul,
        "SizeOfCode" / Int32ul,
        "SizeOfInitializedData" / Int32ul,
        "SizeOfUninitializedData" / Int32ul,
        "AddressOfEntryPoint" / Int32ul,
        "BaseOfCode" / Int32ul,
    ]
    if not plus:
        fields.append("BaseOfData" / Int32ul)
    fields += [
        "ImageBase" / word,
        "SectionAlignment" / Int32ul,
        "FileAlignment" / Int32ul,
        "MajorOperatingSystemVersion" / Int16ul,
        "MinorOperatingSystemVersion" / Int16ul,
        "MajorImageVersion" / Int16ul,
        "MinorImageVersion" / Int16ul,
        "MajorSubsystemVersion" / Int16ul,
        "MinorSubsystemVersion" / Int16ul,
        "Win32VersionValue" / Int32ul,
        "SizeOfImage" / Int32ul,
        "SizeOfHeaders" / Int32ul,
        "CheckSum" / Int32ul,
        "Subsystem" / Int16ul,
        "DllCharacteristics" / Int16ul,
        "SizeOfStackReserve" / word,
        "SizeOfStackCommit" / word,
        "SizeOfHeapReserve" / word,
        "SizeOfHeapCommit" / word,
        "LoaderFlags" / Int32ul,
        "NumberOfRvaAndSizes" / Int32ul,
    ]
    return Struct(*fields)


OPTIONAL_HEADER32 = _optional_header(False)
OPTIONAL_HEADER64 = _optional_header(True)
# The layout reader runs several times per PE payload of every package: it reads its few fields
# with struct at these offsets (checked against the declarations above) instead of construct.
_DOS_SIZE, _NT_SIZE = DOS_HEADER.sizeof(), NT_HEADERS.sizeof()
_OPT_FIXED = {False: OPTIONAL_HEADER32.sizeof(), True: OPTIONAL_HEADER64.sizeof()}
assert (_OPT_FIXED[False], _OPT_FIXED[True]) == (96, 112)
assert OPTIONAL_HEADER32.sizeof() == 96 and OPTIONAL_HEADER64.sizeof() == 112

SECTION_HEADER = Struct(
    "Name" / PaddedString(8, "ascii"),
    "VirtualSize" / Int32ul,
    "VirtualAddress" / Int32ul,
    "SizeOfRawData" / Int32ul,
    "PointerToRawData" / Int32ul,
    "PointerToRelocations" / Int32ul,
    "PointerToLinenumbers" / Int32ul,
    "NumberOfRelocations" / Int16ul,
    "NumberOfLinenumbers" / Int16ul,
    "Characteristics" / Int32ul,
)
assert SECTION_HEADER.sizeof() == 40

MAGIC_PE32 = 0x10B
MAGIC_PE32PLUS = 0x20B
_CHECKSUM_REL = 64  # CheckSum offset inside the optional header, same for PE32 and PE32+
_SECURITY_DIR = 4  # IMAGE_DIRECTORY_ENTRY_SECURITY
_NUM_DIRS = 16

# ----------------------------------------------------------------------------- input helpers

_CHUNK = 1 << 20


def _open(source: Source) -> tuple[BinaryIO, str | None]:
    """Open a path or wrap content; returns (stream, name for error messages).

    In-memory content has no name: callers locate the FFUError with `.at(name)`.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        return io.BytesIO(bytes(source)), None
    name = os.fspath(source)
    try:
        return open(name, "rb"), str(name)  # closed by callers
    except OSError as e:
        raise FormatError(f"cannot read file: {e.strerror or e}", file=name) from e


def _size(f: BinaryIO) -> int:
    f.seek(0, os.SEEK_END)
    return f.tell()


def _read_at(f: BinaryIO, offset: int, n: int) -> bytes:
    f.seek(offset)
    return f.read(n)


# ----------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class PeLayout:
    """Where the Authenticode-excluded fields of a PE file are (all absolute file offsets)."""

    size: int  # file length
    pe_offset: int  # e_lfanew
    plus: bool  # PE32+ (64-bit optional header)
    machine: int
    checksum_offset: int  # 4-byte CheckSum field
    certdir_offset: int  # 8-byte security data directory entry {file offset, size}
    cert_offset: int  # attribute certificate table (0 when unsigned)
    cert_size: int

    @property
    def signed(self) -> bool:
        return self.cert_size != 0

    @property
    def hash_end(self) -> int:
        return self.cert_offset if self.signed else self.size

    @property
    def padding(self) -> int:
        """Zero bytes appended to the hashed data (unsigned files only, as makecat and osslsigncode hash them)."""
        return 0 if self.signed else (-self.size) % 8

    def hashed_ranges(self) -> list[tuple[int, int]]:
        """The [start, end) file ranges covered by the Authenticode image hash, in order."""
        return [
            (0, self.checksum_offset),
            (self.checksum_offset + 4, self.certdir_offset),
            (self.certdir_offset + 8, self.hash_end),
        ]


def _pe_offset(f: BinaryIO, size: int) -> int | None:
    """e_lfanew if the file has `MZ`, an in-range e_lfanew and `PE\\0\\0` there."""
    head = _read_at(f, 0, _DOS_SIZE)
    if len(head) < _DOS_SIZE or head[:2] != b"MZ":
        return None
    pe = int.from_bytes(head[60:64], "little")  # DOS_HEADER.e_lfanew (Int32ul at 0x3C), without construct
    if pe + 4 > size or _read_at(f, pe, 4) != b"PE\0\0":
        return None
    return pe


def _layout(f: BinaryIO, name: str | None) -> PeLayout | None:
    size = _size(f)
    pe = _pe_offset(f, size)
    if pe is None:
        return None

    # From here on the file claims to be a PE: inconsistencies are errors, not "flat".
    def bad(why: str) -> FormatError:
        return FormatError(f"malformed PE image: {why}", file=name)

    nt_raw = _read_at(f, pe, _NT_SIZE)
    if len(nt_raw) < _NT_SIZE:
        raise bad("file header truncated")
    (machine,), (size_of_optional,) = (
        struct.unpack_from("<H", nt_raw, 4),
        struct.unpack_from("<H", nt_raw, 20),
    )
    opt = pe + _NT_SIZE
    magic_raw = _read_at(f, opt, 2)
    if len(magic_raw) < 2:
        raise bad("optional header truncated")
    magic = int.from_bytes(magic_raw, "little")
    if magic not in (MAGIC_PE32, MAGIC_PE32PLUS):
        raise bad(f"unknown optional header magic 0x{magic:x}")
    plus = magic == MAGIC_PE32PLUS
    fixed = _OPT_FIXED[plus]
    dirs = opt + fixed
    certdir = dirs + 8 * _SECURITY_DIR
    if size_of_optional < fixed + 8 * (_SECURITY_DIR + 1):
        raise bad(f"SizeOfOptionalHeader {size_of_optional} too small for a certificate table entry")
    if certdir + 8 > size:
        raise bad("optional header extends past end of file")
    number_of_rva = struct.unpack("<I", _read_at(f, dirs - 4, 4))[0]  # last field of the fixed part
    if number_of_rva <= _SECURITY_DIR:
        raise bad(f"NumberOfRvaAndSizes {number_of_rva} has no certificate table entry")
    cert_offset, cert_size = struct.unpack("<II", _read_at(f, certdir, 8))  # a file offset despite the name
    if (cert_offset == 0) != (cert_size == 0):
        raise bad(f"inconsistent certificate table entry (offset {cert_offset}, size {cert_size})")
    if cert_size:
        if cert_offset < certdir + 8 or cert_offset + cert_size > size:
            raise bad(
                f"certificate table [{cert_offset}, {cert_offset + cert_size}) outside file "
                f"(headers end at {certdir + 8}, file size {size})"
            )
    return PeLayout(
        size=size,
        pe_offset=pe,
        plus=plus,
        machine=machine,
        checksum_offset=opt + _CHECKSUM_REL,
        certdir_offset=certdir,
        cert_offset=cert_offset,
        cert_size=cert_size,
    )


def pe_layout(source: Source) -> PeLayout | None:
    """Layout of a PE file, or None if it does not carry the PE structure at all.

    Raises FFUError if it carries the PE signature but its headers are inconsistent.
    """
    f, name = _open(source)
    with f:
        try:
            return _layout(f, name)
        except OSError as e:
            raise FormatError(f"cannot read file: {e.strerror or e}", file=name) from e


def is_pe(data_or_path: Source) -> bool:
    """True if the file has `MZ`, an in-range e_lfanew and `PE\\0\\0` there."""
    f, name = _open(data_or_path)
    with f:
        try:
            return _pe_offset(f, _size(f)) is not None
        except OSError as e:
            raise FormatError(f"cannot read file: {e.strerror or e}", file=name) from e


# ----------------------------------------------------------------------------- hashing

_ALGOS = ("sha256", "sha1")


def authenticode_digests(source: Source, algos: Iterable[str] = _ALGOS) -> dict[str, bytes]:
    """Authenticode image hashes of a PE file for several algorithms in one streaming pass.

    Raises FFUError if the file is not a PE or is malformed.
    """
    algos = tuple(algos)
    for a in algos:
        if a not in _ALGOS:
            raise ValueError(f"unsupported digest algorithm {a!r}")
    f, name = _open(source)
    with f:
        try:
            layout = _layout(f, name)
            if layout is None:
                raise FormatError("not a PE image (no MZ/PE signature)", file=name)
            hashers = [hashlib.new(a) for a in algos]
            for start, end in layout.hashed_ranges():
                f.seek(start)
                left = end - start
                while left:
                    chunk = f.read(min(left, _CHUNK))
                    if not chunk:
                        raise FormatError("file shrank while hashing", file=name)
                    for h in hashers:
                        h.update(chunk)
                    left -= len(chunk)
            pad = b"\0" * layout.padding
            for h in hashers:
                h.update(pad)
        except OSError as e:
            raise FormatError(f"cannot read file: {e.strerror or e}", file=name) from e
    return {a: h.digest() for a, h in zip(algos, hashers, strict=True)}


def authenticode_digest(path: Source, algo: str = "sha256") -> bytes:
    """Authenticode PE image hash of a path, or of bytes given directly."""
    return authenticode_digests(path, (algo,))[algo]


# ----------------------------------------------------------------------------- checksum


def pe_checksum(image: bytes | bytearray, checksum_offset: int) -> int:
    """Standard PE checksum (CheckSumMappedFile): 16-bit end-around-carry sum + file length."""
    data = bytearray(image)
    data[checksum_offset : checksum_offset + 4] = b"\0\0\0\0"
    # The folded sum of the little-endian 16-bit words is their sum modulo 0xFFFF, except that a
    # nonzero multiple folds to 0xFFFF. As 2**16 ≡ 1 (mod 0xFFFF), the whole image read as one
    # little-endian integer has that residue too (a trailing odd byte is a word with a zero high
    # byte): one C-speed conversion instead of summing the words one Python int at a time.
    x = int.from_bytes(data, "little")
    total = x % 0xFFFF or (0xFFFF if x else 0)
    return (total + len(image)) & 0xFFFFFFFF


# ----------------------------------------------------------------------------- generator

MACHINES = {"x86": 0x014C, "amd64": 0x8664, "arm": 0x01C4, "arm64": 0xAA64}
_PLUS = {"x86": False, "amd64": True, "arm": False, "arm64": True}

# Entry-point stubs returning TRUE (DllMain) or 0 (STATUS_SUCCESS / exit code).
_STUBS = {
    # xor eax,eax; ret 8 (stdcall DriverEntry) | mov eax,1; ret 0xc (stdcall DllMain) | xor eax,eax; ret
    ("x86", "sys"): bytes.fromhex("31c0c20800"),
    ("x86", "dll"): bytes.fromhex("b801000000c20c00"),
    ("x86", "exe"): bytes.fromhex("31c0c3"),
    # xor eax,eax; ret | mov eax,1; ret
    ("amd64", "sys"): bytes.fromhex("31c0c3"),
    ("amd64", "dll"): bytes.fromhex("b801000000c3"),
    ("amd64", "exe"): bytes.fromhex("31c0c3"),
    # Thumb-2: movs r0,#0|#1; bx lr
    ("arm", "sys"): bytes.fromhex("00207047"),
    ("arm", "dll"): bytes.fromhex("01207047"),
    ("arm", "exe"): bytes.fromhex("00207047"),
    # A64: mov w0,#0|#1; ret
    ("arm64", "sys"): bytes.fromhex("00008052c0035fd6"),
    ("arm64", "dll"): bytes.fromhex("20008052c0035fd6"),
    ("arm64", "exe"): bytes.fromhex("00008052c0035fd6"),
}

_DOS_STUB = (
    bytes.fromhex("0e1fba0e00b409cd21b8014ccd21") + b"This program cannot be run in DOS mode.\r\r\n$"
).ljust(64, b"\0")

_FILE_ALIGN = 0x200
_SECTION_ALIGN = 0x1000

# IMAGE_FILE_* characteristics
_EXECUTABLE_IMAGE = 0x0002
_LARGE_ADDRESS_AWARE = 0x0020
_32BIT_MACHINE = 0x0100
_DLL = 0x2000
# IMAGE_SUBSYSTEM_*
_SUBSYSTEM = {"sys": 1, "dll": 2, "exe": 3}  # native, windows GUI, windows console
_NX_COMPAT = 0x0100
_SCN_TEXT = 0x60000020  # CODE | EXECUTE | READ
_SCN_RDATA = 0x40000040  # INITIALIZED_DATA | READ


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def make_minimal_pe(
    path_or_none: str | os.PathLike | None,
    *,
    machine: str,
    kind: str,
    payload: bytes = b"",
    timestamp: int = 0,
) -> bytes:
    """Build a small valid PE image; write it to `path_or_none` if given and return its bytes.

    `.text` holds a stub entry point, `.rdata` (only if `payload`) holds `payload`, so different
    payloads give different files. Output depends only on the arguments.
    """
    if machine not in MACHINES:
        raise ConfigError(f"unknown machine {machine!r} (expected one of {', '.join(MACHINES)})")
    if kind not in _SUBSYSTEM:
        raise ConfigError(f"unknown PE kind {kind!r} (expected sys, dll or exe)")
    if not 0 <= timestamp <= 0xFFFFFFFF:
        raise ConfigError(f"PE timestamp {timestamp} out of range")
    plus = _PLUS[machine]
    code = _STUBS[machine, kind]

    sections = [(".text", code, _SCN_TEXT)]
    if payload:
        sections.append((".rdata", bytes(payload), _SCN_RDATA))

    e_lfanew = 64 + len(_DOS_STUB)
    opt_struct = OPTIONAL_HEADER64 if plus else OPTIONAL_HEADER32
    size_of_opt = opt_struct.sizeof() + 8 * _NUM_DIRS
    headers_len = e_lfanew + NT_HEADERS.sizeof() + size_of_opt + SECTION_HEADER.sizeof() * len(sections)
    size_of_headers = _align(headers_len, _FILE_ALIGN)

    sec_headers = []
    raw_ptr, rva = size_of_headers, _SECTION_ALIGN
    body = bytearray()
    for sname, content, chars in sections:
        raw_size = _align(len(content), _FILE_ALIGN)
        sec_headers.append(
            dict(
                Name=sname,
                VirtualSize=len(content),
                VirtualAddress=rva,
                SizeOfRawData=raw_size,
                PointerToRawData=raw_ptr,
                PointerToRelocations=0,
                PointerToLinenumbers=0,
                NumberOfRelocations=0,
                NumberOfLinenumbers=0,
                Characteristics=chars,
            )
        )
        body += content.ljust(raw_size, b"\0")
        raw_ptr += raw_size
        rva += _align(len(content), _SECTION_ALIGN)
    size_of_image = rva
    text = sec_headers[0]
    rdata = sec_headers[1] if len(sec_headers) > 1 else None

    characteristics = _EXECUTABLE_IMAGE | (_LARGE_ADDRESS_AWARE if plus else _32BIT_MACHINE)
    if kind == "dll":
        characteristics |= _DLL
    if plus:
        image_base = {"sys": 0x1_4000_0000, "dll": 0x1_8000_0000, "exe": 0x1_4000_0000}[kind]
    else:
        image_base = {"sys": 0x10000, "dll": 0x10000000, "exe": 0x400000}[kind]

    opt = dict(
        Magic=MAGIC_PE32PLUS if plus else MAGIC_PE32,
        MajorLinkerVersion=14,
        MinorLinkerVersion=0,
        SizeOfCode=text["SizeOfRawData"],
        SizeOfInitializedData=rdata["SizeOfRawData"] if rdata else 0,
        SizeOfUninitializedData=0,
        AddressOfEntryPoint=text["VirtualAddress"],
        BaseOfCode=text["VirtualAddress"],
        ImageBase=image_base,
        SectionAlignment=_SECTION_ALIGN,
        FileAlignment=_FILE_ALIGN,
        MajorOperatingSystemVersion=10,
        MinorOperatingSystemVersion=0,
        MajorImageVersion=10,
        MinorImageVersion=0,
        MajorSubsystemVersion=10,
        MinorSubsystemVersion=0,
        Win32VersionValue=0,
        SizeOfImage=size_of_image,
        SizeOfHeaders=size_of_headers,
        CheckSum=0,
        Subsystem=_SUBSYSTEM[kind],
        DllCharacteristics=_NX_COMPAT,
        SizeOfStackReserve=0x100000 if kind != "sys" else 0x40000,
        SizeOfStackCommit=0x1000,
        SizeOfHeapReserve=0x100000,
        SizeOfHeapCommit=0x1000,
        LoaderFlags=0,
        NumberOfRvaAndSizes=_NUM_DIRS,
    )
    if not plus:
        opt["BaseOfData"] = rdata["VirtualAddress"] if rdata else size_of_image

    headers = bytearray()
    headers += DOS_HEADER.build(
        dict(
            e_cblp=0x90,
            e_cp=3,
            e_crlc=0,
            e_cparhdr=4,
            e_minalloc=0,
            e_maxalloc=0xFFFF,
            e_ss=0,
            e_sp=0xB8,
            e_csum=0,
            e_ip=0,
            e_cs=0,
            e_lfarlc=0x40,
            e_ovno=0,
            e_oemid=0,
            e_oeminfo=0,
            e_lfanew=e_lfanew,
        )
    )
    headers += _DOS_STUB
    headers += NT_HEADERS.build(
        dict(
            Machine=MACHINES[machine],
            NumberOfSections=len(sections),
            TimeDateStamp=timestamp,
            PointerToSymbolTable=0,
            NumberOfSymbols=0,
            SizeOfOptionalHeader=size_of_opt,
            Characteristics=characteristics,
        )
    )
    opt_offset = len(headers)
    headers += opt_struct.build(opt)
    headers += Array(_NUM_DIRS, DATA_DIRECTORY).build([dict(VirtualAddress=0, Size=0)] * _NUM_DIRS)
    for sh in sec_headers:
        headers += SECTION_HEADER.build(sh)
    assert len(headers) == headers_len
    image = headers.ljust(size_of_headers, b"\0") + body

    checksum_offset = opt_offset + _CHECKSUM_REL
    image[checksum_offset : checksum_offset + 4] = Int32ul.build(pe_checksum(image, checksum_offset))
    out = bytes(image)
    if path_or_none is not None:
        Path(path_or_none).write_bytes(out)
    return out
