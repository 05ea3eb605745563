"""REGF basics shared by the hive writer and reader: constants, the construct declarations of the
base block and cells, the base-block checksum, name folding and hashing, the default security
descriptor and the mapping of ``HKEY_...`` paths to offline hive files.

Separate so that the writer and the reader share one declaration of the format.
"""

from __future__ import annotations

import struct

from construct import (
    Array,
    Const,
    FormatField,
    GreedyRange,
    Int16ul,
    Int32sl,
    Int32ul,
    Int64ul,
    Struct,
    this,
)
from construct import Bytes as CBytes

from ...errors import ConfigError
from ..secdesc import ACE, ACL_HEADER, SD_HEADER, SID

# --- constants --------------------------------------------------------------------------------

PAGE = 0x1000
BIN_HEADER_SIZE = 0x20
BIG_DATA_SEGMENT = 16344  # CM_KEY_VALUE_BIG: larger data is split into db segments
MAX_SEGMENTS = 0xFFFF
LEAF_MAX = 500  # entries per lh leaf; more subkeys → ri root over leaves
MAX_KEY_NAME = 255  # UTF-16 code units
MAX_VALUE_NAME = 16383
MAX_DEPTH = 512  # Windows refuses deeper trees
NIL = 0xFFFFFFFF
EPOCH_DELTA = 11644473600  # seconds from 1601-01-01 to 1970-01-01

KEY_HIVE_ENTRY = 0x0004
KEY_NO_DELETE = 0x0008
KEY_COMP_NAME = 0x0020
VALUE_COMP_NAME = 0x0001

HIVES = ("SYSTEM", "SOFTWARE", "DEFAULT", "SAM", "SECURITY", "DRIVERS")

# --- binary structures ------------------------------------------------------------------------

BASE_BLOCK = Struct(
    "signature" / Const(b"regf"),
    "primary_sequence" / Int32ul,
    "secondary_sequence" / Int32ul,
    "timestamp" / Int64ul,
    "major_version" / Int32ul,
    "minor_version" / Int32ul,
    "file_type" / Int32ul,  # 0 = primary hive file
    "file_format" / Int32ul,  # 1 = direct memory load
    "root_cell" / Int32ul,
    "hive_bins_size" / Int32ul,
    "clustering_factor" / Int32ul,
    "file_name" / CBytes(64),  # UTF-16LE, last 31 characters + NUL
    "reserved1" / CBytes(396),
    "checksum" / Int32ul,  # XOR of the 127 dwords before it
    "reserved2" / CBytes(3576),
    "boot_type" / Int32ul,
    "boot_recover" / Int32ul,
)
assert BASE_BLOCK.sizeof() == PAGE

HBIN_HEADER = Struct(
    "signature" / Const(b"hbin"),
    "offset" / Int32ul,  # from the start of the hive bins data
    "size" / Int32ul,
    "reserved" / CBytes(8),
    "timestamp" / Int64ul,
    "spare" / Int32ul,
)
assert HBIN_HEADER.sizeof() == BIN_HEADER_SIZE

CELL_SIZE = Int32sl  # negative = allocated

NK = Struct(
    "signature" / Const(b"nk"),
    "flags" / Int16ul,
    "timestamp" / Int64ul,
    "access_bits" / Int32ul,
    "parent" / Int32ul,
    "subkey_count" / Int32ul,
    "volatile_subkey_count" / Int32ul,
    "subkey_list" / Int32ul,
    "volatile_subkey_list" / Int32ul,
    "value_count" / Int32ul,
    "value_list" / Int32ul,
    "security" / Int32ul,
    "class_name" / Int32ul,
    "max_subkey_name" / Int32ul,  # bytes, as if UTF-16
    "max_subkey_class" / Int32ul,
    "max_value_name" / Int32ul,  # bytes, as if UTF-16
    "max_value_data" / Int32ul,
    "work_var" / Int32ul,
    "name_length" / Int16ul,
    "class_length" / Int16ul,
)
NK_SIZE = NK.sizeof()

VK = Struct(
    "signature" / Const(b"vk"),
    "name_length" / Int16ul,
    "data_size" / Int32ul,  # bit 31: data stored in data_offset itself
    "data_offset" / Int32ul,
    "type" / Int32ul,
    "flags" / Int16ul,
    "spare" / Int16ul,
)
VK_SIZE = VK.sizeof()

HASH_LEAF = Struct(
    "signature" / Const(b"lh"),
    "count" / Int16ul,
    "entries" / Array(this.count, Struct("offset" / Int32ul, "hash" / Int32ul)),
)
INDEX_ROOT = Struct("signature" / Const(b"ri"), "count" / Int16ul, "offsets" / Array(this.count, Int32ul))
OFFSET_LIST = GreedyRange(Int32ul)  # value list, db segment list
BIG_DATA = Struct("signature" / Const(b"db"), "segment_count" / Int16ul, "segments" / Int32ul)

SK = Struct(
    "signature" / Const(b"sk"),
    "reserved" / Int16ul,
    "flink" / Int32ul,
    "blink" / Int32ul,
    "reference_count" / Int32ul,
    "descriptor_size" / Int32ul,
)
SK_SIZE = SK.sizeof()

# SID, ACE, ACL and security-descriptor layouts: one declaration, in formats.secdesc


class _Packer:
    """struct.Struct derived from a flat construct Struct: same declaration, ~10x faster to build
    the hundreds of thousands of key and value cells of a SOFTWARE hive."""

    def __init__(self, decl: Struct):
        fmt, self.fields = "<", []
        for sc in decl.subcons:
            inner, const = sc.subcon, None
            if isinstance(inner, Const):
                inner, const = inner.subcon, inner.value
            if isinstance(inner, FormatField):
                fmt += inner.fmtstr[1:]
            elif isinstance(inner, CBytes) and isinstance(inner.length, int):
                fmt += f"{inner.length}s"
            else:
                raise TypeError(f"{sc.name}: not a fixed-size field")
            self.fields.append((sc.name, const))
        self.struct = struct.Struct(fmt)
        self.size = self.struct.size
        assert self.size == decl.sizeof()

    def pack(self, **values) -> bytes:
        return self.struct.pack(*(values[n] if c is None else c for n, c in self.fields))

    def unpack(self, data) -> dict:
        return {n: v for (n, _c), v in zip(self.fields, self.struct.unpack_from(data), strict=True)}


NK_P = _Packer(NK)
VK_P = _Packer(VK)
HBIN_C = HBIN_HEADER.compile()


def checksum(block: bytes | memoryview) -> int:
    x = 0
    for i in range(0, 0x1FC, 4):
        x ^= int.from_bytes(block[i : i + 4], "little")
    if x == 0xFFFFFFFF:
        return 0xFFFFFFFE
    if x == 0:
        return 1
    return x


# --- names ------------------------------------------------------------------------------------


def upcase(name: str) -> str:
    """Windows-style case folding: per-character simple upper case (length preserving)."""
    if name.isascii():
        return name.upper()
    out = []
    for c in name:
        u = c.upper()
        out.append(u if len(u) == 1 else c)
    return "".join(out)


def sort_key(name: str) -> bytes:
    return upcase(name).encode("utf-16-be", "surrogatepass")  # bytes order = UTF-16 unit order


def name_hash(name: str) -> int:
    """The ``lh`` hash: h = h*37 + unit over the upper-cased UTF-16 code units."""
    h = 0
    data = upcase(name).encode("utf-16-le", "surrogatepass")
    for i in range(0, len(data), 2):
        h = (h * 37 + data[i] + (data[i + 1] << 8)) & 0xFFFFFFFF
    return h


def encode_name(name: str) -> tuple[bytes, bool]:
    if name.isascii():
        return name.encode("ascii"), True
    return name.encode("utf-16-le", "surrogatepass"), False


def utf16_len(name: str) -> int:
    return len(name.encode("utf-16-le", "surrogatepass")) // 2


def filetime(unix_time: int) -> int:
    if unix_time < -EPOCH_DELTA:
        raise ConfigError(f"timestamp {unix_time} is before 1601-01-01")
    return (int(unix_time) + EPOCH_DELTA) * 10_000_000


# --- security descriptor ----------------------------------------------------------------------

KEY_ALL_ACCESS = 0x000F003F
KEY_READ = 0x00020019
SE_DACL_PRESENT = 0x0004
SE_SELF_RELATIVE = 0x8000
CONTAINER_INHERIT_ACE = 0x02


def _sid(*parts: int) -> dict:
    authority, *subs = parts
    return {"sub_authority_count": len(subs), "authority": authority, "sub_authorities": subs}


SID_SYSTEM = _sid(5, 18)
SID_ADMINISTRATORS = _sid(5, 32, 544)
SID_USERS = _sid(5, 32, 545)


def default_security_descriptor() -> bytes:
    """Self-relative SD shared by every key (see module docstring)."""
    aces = b""
    for sid, mask in (
        (SID_SYSTEM, KEY_ALL_ACCESS),
        (SID_ADMINISTRATORS, KEY_ALL_ACCESS),
        (SID_USERS, KEY_READ),
    ):
        sid_bytes = SID.build(sid)
        aces += ACE.build(
            {"type": 0, "flags": CONTAINER_INHERIT_ACE, "size": 8 + len(sid_bytes), "mask": mask, "sid": sid}
        )
    dacl = (
        ACL_HEADER.build({"revision": 2, "sbz1": 0, "size": 8 + len(aces), "ace_count": 3, "sbz2": 0}) + aces
    )
    owner, group = SID.build(SID_ADMINISTRATORS), SID.build(SID_SYSTEM)
    head = SD_HEADER.sizeof()
    return (
        SD_HEADER.build(
            {
                "revision": 1,
                "sbz1": 0,
                "control": SE_SELF_RELATIVE | SE_DACL_PRESENT,
                "owner": head + len(dacl),
                "group": head + len(dacl) + len(owner),
                "sacl": 0,
                "dacl": head,
            }
        )
        + dacl
        + owner
        + group
    )


# --- hive paths -------------------------------------------------------------------------------

_ROOTS = {
    "HKEY_LOCAL_MACHINE": "HKLM",
    "HKLM": "HKLM",
    "HKEY_USERS": "HKU",
    "HKU": "HKU",
    "HKEY_CURRENT_USER": "HKCU",
    "HKCU": "HKCU",
    "HKEY_CLASSES_ROOT": "HKCR",
    "HKCR": "HKCR",
    "HKEY_CURRENT_CONFIG": "HKCC",
    "HKCC": "HKCC",
}
_HKLM_HIVES = {
    "SYSTEM": "SYSTEM",
    "SOFTWARE": "SOFTWARE",
    "SAM": "SAM",
    "SECURITY": "SECURITY",
    "DRIVERS": "DRIVERS",
}


def hive_for_key(full_key: str, *, allow_bcd: bool = False) -> tuple[str, str]:
    """Map ``HKEY_LOCAL_MACHINE\\SYSTEM\\X`` → ``('SYSTEM', 'X')`` (case-insensitive).

    HKLM\\SYSTEM, SOFTWARE, SAM, SECURITY, DRIVERS are their hive files; HKEY_CLASSES_ROOT is
    SOFTWARE\\Classes (offline there is no per-user part); HKEY_USERS\\.DEFAULT and
    HKEY_CURRENT_USER both go to DEFAULT — an offline image has no logged-on user, and this is the
    hive the device's system-context user loads (**uncertain** for interactive users, whose profile
    hive is copied from Users\\Default\\NTUSER.DAT). ``SYSTEM\\CurrentControlSet`` is a link
    Windows creates at boot; it is written as ControlSet001 (a real key of that name would break
    the link). HARDWARE and HKEY_CURRENT_CONFIG are volatile and refused; BCD only with
    ``allow_bcd`` (the store lives on EFIESP, see :mod:`ffuforge.formats.bcd`).
    """
    parts = [p for p in full_key.replace("/", "\\").split("\\")]
    if parts and parts[-1] == "":
        parts.pop()
    if not parts or not parts[0]:
        raise ConfigError(
            f"registry key {full_key!r} does not start with a root key such as HKEY_LOCAL_MACHINE"
        )
    root = _ROOTS.get(parts[0].upper())
    rest = parts[1:]
    if any(p == "" for p in rest):
        raise ConfigError(f"registry key {full_key!r} has an empty component (doubled backslash)")
    if root is None:
        raise ConfigError(
            f"registry key {full_key!r}: unknown root {parts[0]!r}; use HKEY_LOCAL_MACHINE, "
            "HKEY_USERS\\.DEFAULT, HKEY_CURRENT_USER or HKEY_CLASSES_ROOT"
        )
    if root == "HKCR":
        return "SOFTWARE", "\\".join(["Classes", *rest])
    if root == "HKCU":
        return "DEFAULT", "\\".join(rest)
    if root == "HKU":
        if rest and rest[0].upper() == ".DEFAULT":
            return "DEFAULT", "\\".join(rest[1:])
        raise ConfigError(f"registry key {full_key!r}: only HKEY_USERS\\.DEFAULT exists in an offline image")
    if root == "HKCC":
        raise ConfigError(
            f"registry key {full_key!r}: HKEY_CURRENT_CONFIG is created at boot and cannot be "
            "written offline; write HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Hardware Profiles"
        )
    if not rest:
        raise ConfigError(
            f"registry key {full_key!r} names no hive; use HKEY_LOCAL_MACHINE\\SYSTEM, \\SOFTWARE, …"
        )
    top = rest[0].upper()
    if top == "HARDWARE":
        raise ConfigError(
            f"registry key {full_key!r}: HKEY_LOCAL_MACHINE\\HARDWARE is volatile (built at every "
            "boot) and cannot be written offline"
        )
    if top == "BCD" or top.startswith("BCD0"):
        if allow_bcd:
            return "BCD", "\\".join(rest[1:])
        raise ConfigError(
            f"registry key {full_key!r}: the BCD store is not a MainOS hive; describe boot "
            "settings in a bcdStore XML instead"
        )
    hive = _HKLM_HIVES.get(top)
    if hive is None:
        raise ConfigError(
            f"registry key {full_key!r}: unknown hive {rest[0]!r} under HKEY_LOCAL_MACHINE; "
            f"use one of {', '.join(_HKLM_HIVES)}"
        )
    inner = rest[1:]
    if hive == "SYSTEM" and inner and inner[0].upper() == "CURRENTCONTROLSET":
        inner = ["ControlSet001", *inner[1:]]
    return hive, "\\".join(inner)


def split_path(path: str) -> list[str]:
    text = path.strip("\\")
    if not text:
        return []
    parts = text.split("\\")
    if any(p == "" for p in parts):
        raise ConfigError(f"registry key {path!r} has an empty component (doubled backslash)")
    return parts
