"""Offline Windows registry hives (REGF): a deterministic writer and a hostile-input-safe reader.

Why our own: no maintained Python library writes REGF, and hivex (C; Debian's python3-hivex
binds the system interpreter, not our venv) can only edit a hive that already exists — it has no
"new hive" call, keeps whatever layout and free space the seed file has, and lays out cells in
allocation order — so its bytes depend on the order packages were merged. Here the bytes
depend only on the set of keys and values.

Layout rules (all observable in the output, all chosen for determinism):
* every key, the first hbin and the base block carry the FILETIME of ``timestamp`` (a Unix time,
  SOURCE_DATE_EPOCH); both base-block sequence numbers are 1; format version 1.5;
* cells are laid out depth first: key node, value list, each value and its data, subkey index,
  then the subkeys; a bin is 4 KiB unless one cell needs more; the tail of a bin is one free cell;
* subkeys are indexed by ``lh`` leaves sorted by upper-cased UTF-16 name (Windows binary-searches
  them); a key with more than ``LEAF_MAX`` subkeys gets an ``ri`` root over several leaves;
* values are written sorted the same way (default value first) rather than in insertion order,
  so the result does not depend on the order packages are installed;
* data of at most 4 bytes is stored in the value cell, more than 16344 bytes as ``db`` big data;
* names are stored compressed (one byte per character) only when pure ASCII, else UTF-16LE;
  case-insensitive matching uses the Unicode simple upper-case mapping per character;
* no class names; one ``sk`` cell shared by every key: owner Administrators, group SYSTEM,
  DACL granting KEY_ALL_ACCESS to SYSTEM and Administrators and KEY_READ to Users (all
  container-inherit), i.e. what a stock hive grants on most keys. Keys that need tighter
  ACLs (SAM, SECURITY) are not modelled yet.

``hive_for_key`` maps a full ``HKEY_...`` path to one of the offline hive files.
"""

from __future__ import annotations

import bisect
import gc
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from construct import (
    Array,
    BytesInteger,
    Const,
    ConstructError,
    FormatField,
    GreedyRange,
    Int8ul,
    Int16ul,
    Int32sl,
    Int32ul,
    Int64ul,
    Struct,
    this,
)
from construct import Bytes as CBytes

from ..errors import FFUError
from ..util.atomic import atomic_output
from ..util.paths import open_regular
from .regvalue import TYPE_NAMES

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

SID = Struct(
    "revision" / Const(1, Int8ul),
    "sub_authority_count" / Int8ul,
    "authority" / BytesInteger(6),  # big-endian
    "sub_authorities" / Array(this.sub_authority_count, Int32ul),
)
ACE = Struct("type" / Int8ul, "flags" / Int8ul, "size" / Int16ul, "mask" / Int32ul, "sid" / SID)
ACL_HEADER = Struct(
    "revision" / Int8ul, "sbz1" / Int8ul, "size" / Int16ul, "ace_count" / Int16ul, "sbz2" / Int16ul
)
SD_HEADER = Struct(
    "revision" / Int8ul,
    "sbz1" / Int8ul,
    "control" / Int16ul,
    "owner" / Int32ul,
    "group" / Int32ul,
    "sacl" / Int32ul,
    "dacl" / Int32ul,
)


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


_NK_P = _Packer(NK)
_VK_P = _Packer(VK)
_HBIN_C = HBIN_HEADER.compile()
_LH_ENTRY = struct.Struct("<II")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")  # CELL_SIZE, on the per-cell hot path
assert _I32.size == CELL_SIZE.sizeof()

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


def _sort_key(name: str) -> bytes:
    return upcase(name).encode("utf-16-be", "surrogatepass")  # bytes order = UTF-16 unit order


def name_hash(name: str) -> int:
    """The ``lh`` hash: h = h*37 + unit over the upper-cased UTF-16 code units."""
    h = 0
    data = upcase(name).encode("utf-16-le", "surrogatepass")
    for i in range(0, len(data), 2):
        h = (h * 37 + data[i] + (data[i + 1] << 8)) & 0xFFFFFFFF
    return h


def _encode_name(name: str) -> tuple[bytes, bool]:
    if name.isascii():
        return name.encode("ascii"), True
    return name.encode("utf-16-le", "surrogatepass"), False


def _utf16_len(name: str) -> int:
    return len(name.encode("utf-16-le", "surrogatepass")) // 2


def filetime(unix_time: int) -> int:
    if unix_time < -EPOCH_DELTA:
        raise FFUError(f"timestamp {unix_time} is before 1601-01-01")
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
    ``allow_bcd`` (the store lives on EFIESP, see :mod:`ffuforge.bcd`).
    """
    parts = [p for p in full_key.replace("/", "\\").split("\\")]
    if parts and parts[-1] == "":
        parts.pop()
    if not parts or not parts[0]:
        raise FFUError(f"registry key {full_key!r} does not start with a root key such as HKEY_LOCAL_MACHINE")
    root = _ROOTS.get(parts[0].upper())
    rest = parts[1:]
    if any(p == "" for p in rest):
        raise FFUError(f"registry key {full_key!r} has an empty component (doubled backslash)")
    if root is None:
        raise FFUError(
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
        raise FFUError(f"registry key {full_key!r}: only HKEY_USERS\\.DEFAULT exists in an offline image")
    if root == "HKCC":
        raise FFUError(
            f"registry key {full_key!r}: HKEY_CURRENT_CONFIG is created at boot and cannot be "
            "written offline; write HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Hardware Profiles"
        )
    if not rest:
        raise FFUError(
            f"registry key {full_key!r} names no hive; use HKEY_LOCAL_MACHINE\\SYSTEM, \\SOFTWARE, …"
        )
    top = rest[0].upper()
    if top == "HARDWARE":
        raise FFUError(
            f"registry key {full_key!r}: HKEY_LOCAL_MACHINE\\HARDWARE is volatile (built at every "
            "boot) and cannot be written offline"
        )
    if top == "BCD" or top.startswith("BCD0"):
        if allow_bcd:
            return "BCD", "\\".join(rest[1:])
        raise FFUError(
            f"registry key {full_key!r}: the BCD store is not a MainOS hive; describe boot "
            "settings in a bcdStore XML instead"
        )
    hive = _HKLM_HIVES.get(top)
    if hive is None:
        raise FFUError(
            f"registry key {full_key!r}: unknown hive {rest[0]!r} under HKEY_LOCAL_MACHINE; "
            f"use one of {', '.join(_HKLM_HIVES)}"
        )
    inner = rest[1:]
    if hive == "SYSTEM" and inner and inner[0].upper() == "CURRENTCONTROLSET":
        inner = ["ControlSet001", *inner[1:]]
    return hive, "\\".join(inner)


# --- writer -----------------------------------------------------------------------------------


@dataclass
class _Value:
    name: str
    type: int
    data: bytes
    owner: str | None


@dataclass
class _Key:
    name: str
    children: dict[str, _Key] = field(default_factory=dict)  # by upcase(name)
    values: dict[str, _Value] = field(default_factory=dict)  # by upcase(name)


class _Cell:
    __slots__ = ("size", "offset", "render")

    def __init__(self, payload_len: int, render: Callable[[], bytes]):
        self.size = (4 + payload_len + 7) & ~7
        self.offset = -1
        self.render = render


def _owner_text(owner: str | None) -> str:
    return owner if owner else "an unnamed source"


def _describe(v: _Value) -> str:
    preview = v.data[:16].hex()
    more = "…" if len(v.data) > 16 else ""
    return f"{TYPE_NAMES.get(v.type, f'type {v.type}')} {len(v.data)} bytes {preview}{more}"


class HiveBuilder:
    """Collects keys and values, then writes one hive file deterministically."""

    def __init__(self, root_name: str = "ROOT", *, timestamp: int, file_name: str | None = None):
        _check_key_name(root_name, "root key name")
        self.root = _Key(root_name)
        self.filetime = filetime(timestamp)
        self.file_name = file_name
        self.security_descriptor = default_security_descriptor()

    # -- building -------------------------------------------------------------------------

    def _walk(self, path: str, create: bool) -> _Key | None:
        key = self.root
        for depth, part in enumerate(_split_path(path), start=1):
            if depth >= MAX_DEPTH:
                raise FFUError(f"registry key {path!r} is nested deeper than {MAX_DEPTH} levels")
            folded = upcase(part)
            child = key.children.get(folded)
            if child is None:
                if not create:
                    return None
                _check_key_name(part, f"key name in {path!r}")
                child = key.children[folded] = _Key(part)
            key = child
        return key

    def ensure_key(self, path: str) -> None:
        """Create the key (and its parents); the first spelling of a name is kept."""
        self._walk(path, True)

    def set_value(self, path: str, name: str, type: int, data: bytes, *, owner: str | None = None) -> None:
        """Set ``path\\name`` (``''`` = the default value). A different second setting is an error."""
        if not 0 <= type <= 0xFFFFFFFF:
            raise FFUError(f"registry value type {type} is out of range")
        if _utf16_len(name) > MAX_VALUE_NAME:
            raise FFUError(f"registry value name {name[:40]!r}… is longer than {MAX_VALUE_NAME} characters")
        data = bytes(data)
        if len(data) > MAX_SEGMENTS * BIG_DATA_SEGMENT:
            raise FFUError(
                f"registry value {name!r} under {path!r} is {len(data)} bytes; the hive limit is "
                f"{MAX_SEGMENTS * BIG_DATA_SEGMENT}"
            )
        key = self._walk(path, True)
        folded = upcase(name)
        new = _Value(name, type, data, owner)
        old = key.values.get(folded)
        if old is None:
            key.values[folded] = new
            return
        if old.type == type and old.data == data:
            return
        where = f"{path}\\{old.name or '(default)'}" if path else (old.name or "(default)")
        if old.owner == owner:
            raise FFUError(
                f"registry value {where} is set twice by {_owner_text(owner)} with different data "
                f"({_describe(old)} vs {_describe(new)})"
            )
        raise FFUError(
            f"registry value {where} is set by both {_owner_text(old.owner)} ({_describe(old)}) and "
            f"{_owner_text(owner)} ({_describe(new)}); make one package own it"
        )

    def has_key(self, path: str) -> bool:
        return self._walk(path, False) is not None

    # -- serialising ----------------------------------------------------------------------

    def _cells(self) -> tuple[list[_Cell], _Cell]:
        cells: list[_Cell] = []
        ft = self.filetime
        sd = self.security_descriptor
        key_count = 0

        def add(payload_len: int, render: Callable[[], bytes]) -> _Cell:
            c = _Cell(payload_len, render)
            cells.append(c)
            return c

        sk_cell: _Cell | None = None

        def emit(key: _Key, parent: _Cell | None) -> tuple[_Cell, list[tuple[_Key, _Cell]], list[_Cell]]:
            nonlocal sk_cell, key_count
            key_count += 1
            name_bytes, compressed = _encode_name(key.name)
            children = sorted(key.children.values(), key=lambda k: _sort_key(k.name))
            values = sorted(key.values.values(), key=lambda v: _sort_key(v.name))
            holder: dict[str, _Cell | None] = {"values": None, "subkeys": None}
            is_root = parent is None
            flags = (KEY_HIVE_ENTRY | KEY_NO_DELETE if is_root else 0) | (KEY_COMP_NAME if compressed else 0)
            child_cells: list[_Cell] = []
            meta = {
                "max_subkey_name": max((2 * _utf16_len(k.name) for k in children), default=0),
                "max_value_name": max((2 * _utf16_len(v.name) for v in values), default=0),
                "max_value_data": max((len(v.data) for v in values), default=0),
            }

            def render_nk() -> bytes:
                return (
                    _NK_P.pack(
                        flags=flags,
                        timestamp=ft,
                        access_bits=0,
                        parent=NIL if parent is None else parent.offset,
                        subkey_count=len(children),
                        volatile_subkey_count=0,
                        subkey_list=holder["subkeys"].offset if holder["subkeys"] else NIL,
                        volatile_subkey_list=NIL,
                        value_count=len(values),
                        value_list=holder["values"].offset if holder["values"] else NIL,
                        security=sk_cell.offset,
                        class_name=NIL,
                        max_subkey_class=0,
                        work_var=0,
                        name_length=len(name_bytes),
                        class_length=0,
                        **meta,
                    )
                    + name_bytes
                )

            nk = add(_NK_P.size + len(name_bytes), render_nk)
            if is_root:
                sk_cell = add(
                    SK_SIZE + len(sd),
                    lambda: (
                        SK.build(
                            {
                                "reserved": 0,
                                "flink": sk_cell.offset,
                                "blink": sk_cell.offset,
                                "reference_count": key_count,
                                "descriptor_size": len(sd),
                            }
                        )
                        + sd
                    ),
                )
            if values:
                vk_cells: list[_Cell] = []
                holder["values"] = add(
                    4 * len(values), lambda: b"".join(_U32.pack(c.offset) for c in vk_cells)
                )
                for v in values:
                    vk_cells.append(self._emit_value(v, add))
            if children:
                holder["subkeys"] = self._emit_index(children, child_cells, add)
            return nk, [(c, nk) for c in children], child_cells

        # iterative depth-first: a key's own cells, then each subtree in sorted order
        stack: list[tuple[_Key, _Cell | None, list[_Cell] | None]] = [(self.root, None, None)]
        root_cell: _Cell | None = None
        while stack:
            key, parent, slot = stack.pop()
            nk, kids, child_cells = emit(key, parent)
            if slot is not None:
                slot.append(nk)
            if root_cell is None:
                root_cell = nk
            for child, parent_nk in reversed(kids):
                stack.append((child, parent_nk, child_cells))
        # child nk cells were appended in sorted order (stack pops the first child first)
        return cells, root_cell

    @staticmethod
    def _emit_value(v: _Value, add) -> _Cell:
        name_bytes, compressed = _encode_name(v.name)
        data = v.data
        n = len(data)
        ref: dict[str, _Cell | None] = {"data": None}
        if n <= 4:
            size_field = n | 0x80000000
            inline = int.from_bytes(data.ljust(4, b"\0"), "little")
        else:
            size_field = n
            inline = None

        def render_vk() -> bytes:
            return (
                _VK_P.pack(
                    name_length=len(name_bytes),
                    data_size=size_field,
                    data_offset=inline if inline is not None else ref["data"].offset,
                    type=v.type,
                    flags=VALUE_COMP_NAME if compressed else 0,
                    spare=0,
                )
                + name_bytes
            )

        vk = add(VK_SIZE + len(name_bytes), render_vk)
        if inline is None:
            if n <= BIG_DATA_SEGMENT:
                ref["data"] = add(n, lambda: data)
            else:
                chunks = [data[i : i + BIG_DATA_SEGMENT] for i in range(0, n, BIG_DATA_SEGMENT)]
                segs: list[_Cell] = []
                seg_list: list[_Cell] = []
                ref["data"] = add(
                    BIG_DATA.sizeof(),
                    lambda: BIG_DATA.build({"segment_count": len(segs), "segments": seg_list[0].offset}),
                )
                seg_list.append(add(4 * len(chunks), lambda: OFFSET_LIST.build([c.offset for c in segs])))
                for chunk in chunks:
                    # 4 spare bytes after each segment: hivex takes cell length - 8 bytes from
                    # every segment, so a tight last segment would lose its tail
                    segs.append(add(len(chunk) + 4, lambda chunk=chunk: chunk + b"\0\0\0\0"))
        return vk

    @staticmethod
    def _emit_index(children: list[_Key], child_cells: list[_Cell], add) -> _Cell:
        hashes = [name_hash(k.name) for k in children]
        leaves: list[_Cell] = []
        for start in range(0, len(children), LEAF_MAX):
            count = min(LEAF_MAX, len(children) - start)

            def render_leaf(start=start, count=count) -> bytes:
                return (
                    b"lh"
                    + count.to_bytes(2, "little")
                    + b"".join(
                        _LH_ENTRY.pack(child_cells[start + i].offset, hashes[start + i]) for i in range(count)
                    )
                )

            leaves.append(add(4 + 8 * count, render_leaf))
        if len(leaves) == 1:
            return leaves[0]
        return add(
            4 + 4 * len(leaves),
            lambda: INDEX_ROOT.build({"count": len(leaves), "offsets": [c.offset for c in leaves]}),
        )

    def to_bytes(self, file_name: str | None = None) -> bytes:
        enabled = gc.isenabled()
        gc.disable()  # hundreds of thousands of live closures, nothing to collect until done
        try:
            return self._to_bytes(file_name)
        finally:
            if enabled:
                gc.enable()

    def _to_bytes(self, file_name: str | None) -> bytes:
        cells, root_cell = self._cells()
        # pack cells into bins
        bins: list[tuple[int, int, int]] = []  # (start, size, used)
        start, size, used = 0, PAGE, BIN_HEADER_SIZE
        for c in cells:
            if used + c.size > size:
                bins.append((start, size, used))
                start += size
                size = max(PAGE, (BIN_HEADER_SIZE + c.size + PAGE - 1) // PAGE * PAGE)
                used = BIN_HEADER_SIZE
            c.offset = start + used
            used += c.size
        bins.append((start, size, used))
        total = start + size
        if total > 0x7FFFF000:
            raise FFUError("registry hive would exceed 2 GiB")
        buf = bytearray(PAGE + total)
        for i, (b_start, b_size, b_used) in enumerate(bins):
            buf[PAGE + b_start : PAGE + b_start + BIN_HEADER_SIZE] = _HBIN_C.build(
                {
                    "offset": b_start,
                    "size": b_size,
                    "reserved": bytes(8),
                    "timestamp": self.filetime if i == 0 else 0,
                    "spare": 0,
                }
            )
            if b_used < b_size:
                buf[PAGE + b_start + b_used : PAGE + b_start + b_used + 4] = CELL_SIZE.build(b_size - b_used)
        pack_size = _I32.pack_into
        for c in cells:
            payload = c.render()
            pos = PAGE + c.offset
            assert 4 + len(payload) <= c.size, "cell payload larger than its cell"
            pack_size(buf, pos, -c.size)
            buf[pos + 4 : pos + 4 + len(payload)] = payload
        name = file_name if file_name is not None else (self.file_name or "")
        buf[:PAGE] = _base_block(self.filetime, root_cell.offset, total, name)
        return bytes(buf)

    def write(self, out_path: str | Path, *, file_name: str | None = None) -> None:
        """Write the hive atomically; the base block's name field defaults to the file's name."""
        out_path = Path(out_path)
        name = file_name if file_name is not None else (self.file_name or out_path.name)
        data = self.to_bytes(name)
        with atomic_output(out_path) as fh:
            fh.write(data)


def _split_path(path: str) -> list[str]:
    text = path.strip("\\")
    if not text:
        return []
    parts = text.split("\\")
    if any(p == "" for p in parts):
        raise FFUError(f"registry key {path!r} has an empty component (doubled backslash)")
    return parts


def _check_key_name(name: str, what: str) -> None:
    if not name:
        raise FFUError(f"empty {what}")
    if "\\" in name or "\0" in name:
        raise FFUError(f"{what} {name!r} contains a backslash or NUL")
    if _utf16_len(name) > MAX_KEY_NAME:
        raise FFUError(f"{what} {name[:40]!r}… is longer than {MAX_KEY_NAME} characters")


def checksum(block: bytes) -> int:
    x = 0
    for i in range(0, 0x1FC, 4):
        x ^= int.from_bytes(block[i : i + 4], "little")
    if x == 0xFFFFFFFF:
        return 0xFFFFFFFE
    if x == 0:
        return 1
    return x


def _base_block(ft: int, root_offset: int, bins_size: int, file_name: str) -> bytes:
    name = file_name[-31:].encode("utf-16-le", "surrogatepass")[:62]
    fields = {
        "primary_sequence": 1,
        "secondary_sequence": 1,
        "timestamp": ft,
        "major_version": 1,
        "minor_version": 5,
        "file_type": 0,
        "file_format": 1,
        "root_cell": root_offset,
        "hive_bins_size": bins_size,
        "clustering_factor": 1,
        "file_name": name.ljust(64, b"\0"),
        "reserved1": bytes(396),
        "checksum": 0,
        "reserved2": bytes(3576),
        "boot_type": 0,
        "boot_recover": 0,
    }
    block = BASE_BLOCK.build(fields)
    fields["checksum"] = checksum(block)
    return BASE_BLOCK.build(fields)


# --- reader -----------------------------------------------------------------------------------


@dataclass
class RegValue:
    name: str
    type: int
    data: bytes


@dataclass
class RegKey:
    name: str
    timestamp: int  # FILETIME
    values: list[RegValue] = field(default_factory=list)
    subkeys: list[RegKey] = field(default_factory=list)

    def subkey(self, path: str) -> RegKey | None:
        key: RegKey | None = self
        for part in _split_path(path):
            folded = upcase(part)
            key = next((k for k in key.subkeys if upcase(k.name) == folded), None)
            if key is None:
                return None
        return key

    def value(self, name: str) -> RegValue | None:
        folded = upcase(name)
        return next((v for v in self.values if upcase(v.name) == folded), None)


@dataclass
class Hive:
    root: RegKey
    minor_version: int
    timestamp: int
    file_name: str
    dirty: bool  # sequence numbers differ (unreplayed log)

    def walk(self) -> Iterator[tuple[str, RegKey]]:
        """(path relative to the root, key) for every key, parents first; root path is ''."""
        stack = [("", self.root)]
        while stack:
            path, key = stack.pop()
            yield path, key
            for sub in reversed(key.subkeys):
                stack.append((f"{path}\\{sub.name}" if path else sub.name, sub))

    def as_dict(self) -> dict[str, dict[str, tuple[int, bytes]]]:
        return {path: {v.name: (v.type, v.data) for v in key.values} for path, key in self.walk()}


class _Reader:
    def __init__(self, data: bytes, name: str):
        self.data = memoryview(data)
        self.name = name
        self.bins: list[tuple[int, int]] = []  # absolute (start, end)
        self.bin_starts: list[int] = []
        self.visited: set[int] = set()

    def fail(self, message: str) -> FFUError:
        return FFUError(f"malformed registry hive: {message}", self.name)

    def cell(self, offset: int, what: str) -> memoryview:
        """Payload of the allocated cell at ``offset`` (relative to the bins), bounded by its bin."""
        if offset == NIL or offset < BIN_HEADER_SIZE:
            raise self.fail(f"{what} cell offset 0x{offset:x} is not a cell")
        pos = PAGE + offset
        i = bisect.bisect_right(self.bin_starts, pos) - 1
        if i < 0:
            raise self.fail(f"{what} cell offset 0x{offset:x} is outside the hive bins")
        b_start, b_end = self.bins[i]
        if pos < b_start + BIN_HEADER_SIZE or pos + 4 > b_end:
            raise self.fail(f"{what} cell offset 0x{offset:x} is outside the hive bins")
        size = int.from_bytes(self.data[pos : pos + 4], "little", signed=True)
        if size >= 0:
            raise self.fail(f"{what} cell at 0x{offset:x} is not allocated")
        size = -size
        if size < 8 or pos + size > b_end:
            raise self.fail(f"{what} cell at 0x{offset:x} has a bad size {size}")
        return self.data[pos + 4 : pos + size]

    def read(self) -> Hive:
        d = self.data
        if len(d) < 2 * PAGE:
            raise self.fail(f"file is {len(d)} bytes, too small for a hive")
        if bytes(d[:4]) != b"regf":
            raise self.fail("no 'regf' signature")
        try:
            base = BASE_BLOCK.parse(bytes(d[:PAGE]))
        except ConstructError as exc:
            raise self.fail(f"bad base block ({exc})") from None
        if checksum(d[:PAGE]) != base.checksum:
            raise self.fail("base block checksum mismatch")
        if base.major_version != 1:
            raise self.fail(f"unsupported format version {base.major_version}.{base.minor_version}")
        size = base.hive_bins_size
        if size == 0 or size % PAGE or PAGE + size > len(d):
            raise self.fail(f"hive bins size 0x{size:x} does not fit the file ({len(d)} bytes)")
        pos, end = PAGE, PAGE + size
        while pos < end:
            try:
                hb = _HBIN_C.parse(bytes(d[pos : pos + BIN_HEADER_SIZE]))
            except ConstructError:
                raise self.fail(f"no 'hbin' at file offset 0x{pos:x}") from None
            if hb.offset != pos - PAGE or hb.size < PAGE or hb.size % PAGE or pos + hb.size > end:
                raise self.fail(f"bad hbin header at file offset 0x{pos:x}")
            self.bins.append((pos, pos + hb.size))
            self.bin_starts.append(pos)
            pos += hb.size
        name = bytes(base.file_name).decode("utf-16-le", "replace").split("\0", 1)[0]
        root = self.key(base.root_cell, 0)
        return Hive(
            root=root,
            minor_version=base.minor_version,
            timestamp=base.timestamp,
            file_name=name,
            dirty=base.primary_sequence != base.secondary_sequence,
        )

    def key(self, offset: int, depth: int) -> RegKey:
        # explicit stack: hostile nesting cannot exhaust Python's recursion limit
        root_key: RegKey | None = None
        stack: list[tuple[int, int, RegKey | None]] = [(offset, depth, None)]
        while stack:
            off, dep, parent = stack.pop()
            if dep > MAX_DEPTH:
                raise self.fail(f"keys nested deeper than {MAX_DEPTH} levels")
            if off in self.visited:
                raise self.fail(f"key cell 0x{off:x} is referenced twice (loop)")
            self.visited.add(off)
            key, subkey_offsets = self.node(off)
            if parent is None:
                root_key = key
            else:
                parent.subkeys.append(key)
            for sub in reversed(subkey_offsets):
                stack.append((sub, dep + 1, key))
        return root_key

    def node(self, offset: int) -> tuple[RegKey, list[int]]:
        c = self.cell(offset, "key")
        if len(c) < NK_SIZE or bytes(c[:2]) != b"nk":
            raise self.fail(f"cell 0x{offset:x} is not a key node")
        nk = _NK_P.unpack(c)
        name_length = nk["name_length"]
        if NK_SIZE + name_length > len(c):
            raise self.fail(f"key name at 0x{offset:x} runs past its cell")
        raw = bytes(c[NK_SIZE : NK_SIZE + name_length])
        name = raw.decode("latin-1") if nk["flags"] & KEY_COMP_NAME else raw.decode("utf-16-le", "replace")
        key = RegKey(name=name, timestamp=nk["timestamp"])
        value_count, subkey_count = nk["value_count"], nk["subkey_count"]
        if value_count:
            vl = self.cell(nk["value_list"], "value list")
            if 4 * value_count > len(vl):
                raise self.fail(f"key {name!r} claims {value_count} values, its value list holds fewer")
            for i in range(value_count):
                key.values.append(self.value(int.from_bytes(vl[4 * i : 4 * i + 4], "little")))
        subkeys: list[int] = []
        if subkey_count:
            self.index(nk["subkey_list"], subkeys, 0, subkey_count)
            if len(subkeys) != subkey_count:
                raise self.fail(f"key {name!r} claims {subkey_count} subkeys, its index lists {len(subkeys)}")
        return key, subkeys

    def index(self, offset: int, out: list[int], level: int, limit: int) -> None:
        c = self.cell(offset, "subkey index")
        if len(c) < 4:
            raise self.fail(f"subkey index at 0x{offset:x} is truncated")
        sig, count = bytes(c[:2]), int.from_bytes(c[2:4], "little")
        if sig in (b"lf", b"lh", b"li"):
            step = 4 if sig == b"li" else 8
            if 4 + step * count > len(c):
                raise self.fail(f"subkey index at 0x{offset:x} claims {count} entries, its cell holds fewer")
            if len(out) + count > limit:
                raise self.fail(f"subkey index at 0x{offset:x} lists more subkeys than its key declares")
            for i in range(count):
                out.append(int.from_bytes(c[4 + step * i : 8 + step * i], "little"))
        elif sig == b"ri":
            if level > 0:
                raise self.fail(f"nested ri index at 0x{offset:x}")
            if 4 + 4 * count > len(c):
                raise self.fail(f"ri index at 0x{offset:x} claims {count} entries, its cell holds fewer")
            for i in range(count):
                self.index(int.from_bytes(c[4 + 4 * i : 8 + 4 * i], "little"), out, level + 1, limit)
        else:
            raise self.fail(f"cell 0x{offset:x} is not a subkey index ({sig!r})")

    def value(self, offset: int) -> RegValue:
        c = self.cell(offset, "value")
        if len(c) < VK_SIZE or bytes(c[:2]) != b"vk":
            raise self.fail(f"cell 0x{offset:x} is not a value")
        vk = _VK_P.unpack(c)
        name_length, size, data_offset = vk["name_length"], vk["data_size"], vk["data_offset"]
        if VK_SIZE + name_length > len(c):
            raise self.fail(f"value name at 0x{offset:x} runs past its cell")
        raw = bytes(c[VK_SIZE : VK_SIZE + name_length])
        name = raw.decode("latin-1") if vk["flags"] & VALUE_COMP_NAME else raw.decode("utf-16-le", "replace")
        n = size & 0x7FFFFFFF
        if size & 0x80000000:
            if n > 4:
                raise self.fail(f"value {name!r} has {n} bytes of inline data (at most 4)")
            data = data_offset.to_bytes(4, "little")[:n]
        elif n == 0:
            data = b""
        else:
            dc = self.cell(data_offset, "value data")
            if n <= len(dc):
                data = bytes(dc[:n])
            elif bytes(dc[:2]) == b"db" and len(dc) >= BIG_DATA.sizeof():
                data = self.big_data(dc, n, name)
            else:
                raise self.fail(f"value {name!r} declares {n} bytes, its data cell holds {len(dc)}")
        return RegValue(name=name, type=vk["type"], data=data)

    def big_data(self, dc: memoryview, n: int, name: str) -> bytes:
        db = BIG_DATA.parse(bytes(dc[: BIG_DATA.sizeof()]))
        if db.segment_count * BIG_DATA_SEGMENT < n:
            raise self.fail(f"value {name!r}: {db.segment_count} big-data segments cannot hold {n} bytes")
        seg_list = self.cell(db.segments, "big data segment list")
        if 4 * db.segment_count > len(seg_list):
            raise self.fail(f"value {name!r}: big-data segment list is shorter than its count")
        parts, left = [], n
        for i in range(db.segment_count):
            if left == 0:
                break
            seg = self.cell(int.from_bytes(seg_list[4 * i : 4 * i + 4], "little"), "big data segment")
            take = min(BIG_DATA_SEGMENT, left)
            if len(seg) < take:
                raise self.fail(f"value {name!r}: big-data segment {i} is too short")
            parts.append(bytes(seg[:take]))
            left -= take
        return b"".join(parts)


DEFAULT_READ_MAX = 1 << 31


def read_hive(path: str | os.PathLike, *, max_size: int = DEFAULT_READ_MAX) -> Hive:
    """Read a whole hive; any inconsistency is an FFUError naming the file, never a crash or hang."""
    name = str(path)
    try:
        with os.fdopen(open_regular(path), "rb") as fh:
            data = fh.read(max_size + 1)
    except OSError as exc:
        raise FFUError(f"cannot read registry hive: {exc.strerror}", name) from None
    if len(data) > max_size:
        raise FFUError(f"registry hive is larger than {max_size} bytes", name)
    return parse_hive(data, name)


def parse_hive(data: bytes, name: str = "<hive>") -> Hive:
    reader = _Reader(data, name)
    try:
        return reader.read()
    except FFUError:
        raise
    except (ConstructError, struct.error, ValueError, IndexError, OverflowError) as exc:
        raise reader.fail(str(exc)) from None


__all__ = [
    "HiveBuilder",
    "Hive",
    "RegKey",
    "RegValue",
    "read_hive",
    "parse_hive",
    "hive_for_key",
    "HIVES",
    "name_hash",
    "upcase",
    "default_security_descriptor",
    "filetime",
]
