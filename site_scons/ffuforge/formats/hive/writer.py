"""The deterministic hive writer (:class:`HiveBuilder`): collects keys and values and lays out cells
and bins so that the bytes depend only on the set of keys and values (rules in the package
docstring).
"""

from __future__ import annotations

import gc
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from ...errors import ConfigError
from ...util.atomic import atomic_output
from .. import secdesc
from ..regvalue import TYPE_NAMES
from .structs import (
    BASE_BLOCK,
    BIG_DATA,
    BIG_DATA_SEGMENT,
    BIN_HEADER_SIZE,
    CELL_SIZE,
    HBIN_C,
    INDEX_ROOT,
    KEY_COMP_NAME,
    KEY_HIVE_ENTRY,
    KEY_NO_DELETE,
    LEAF_MAX,
    MAX_DEPTH,
    MAX_KEY_NAME,
    MAX_SEGMENTS,
    MAX_VALUE_NAME,
    NIL,
    NK_P,
    OFFSET_LIST,
    PAGE,
    SK,
    SK_SIZE,
    VALUE_COMP_NAME,
    VK_P,
    VK_SIZE,
    checksum,
    default_security_descriptor,
    encode_name,
    filetime,
    name_hash,
    sort_key,
    split_path,
    upcase,
    utf16_len,
)

_LH_ENTRY = struct.Struct("<II")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")  # CELL_SIZE, on the per-cell hot path
assert _I32.size == CELL_SIZE.sizeof()


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
    security: bytes | None = None  # self-relative descriptor; None = the hive's default
    security_owner: str | None = None


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
        for depth, part in enumerate(split_path(path), start=1):
            if depth >= MAX_DEPTH:
                raise ConfigError(f"registry key {path!r} is nested deeper than {MAX_DEPTH} levels")
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
            raise ConfigError(f"registry value type {type} is out of range")
        if utf16_len(name) > MAX_VALUE_NAME:
            raise ConfigError(
                f"registry value name {name[:40]!r}… is longer than {MAX_VALUE_NAME} characters"
            )
        data = bytes(data)
        if len(data) > MAX_SEGMENTS * BIG_DATA_SEGMENT:
            raise ConfigError(
                f"registry value {name!r} under {path!r} is {len(data)} bytes; the hive limit is "
                f"{MAX_SEGMENTS * BIG_DATA_SEGMENT}"
            )
        key = self._walk(path, True)
        assert key is not None  # create=True always finds or makes the key
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
            raise ConfigError(
                f"registry value {where} is set twice by {_owner_text(owner)} with different data "
                f"({_describe(old)} vs {_describe(new)})"
            )
        raise ConfigError(
            f"registry value {where} is set by both {_owner_text(old.owner)} ({_describe(old)}) and "
            f"{_owner_text(owner)} ({_describe(new)}); make one package own it"
        )

    def set_key_security(self, path: str, descriptor: bytes, *, owner: str | None = None) -> None:
        """Give the key (created if needed) its own self-relative descriptor, written as an ``sk``
        cell shared with every other key that has the same bytes. A different second one is an error."""
        key = self._walk(path, True)
        assert key is not None
        descriptor = bytes(descriptor)
        if key.security is not None and key.security != descriptor:
            raise ConfigError(
                f"registry key {path} gets a security descriptor from both {_owner_text(key.security_owner)} "
                f"and {_owner_text(owner)}, and they differ; make one package own it"
            )
        if key.security is None:
            key.security, key.security_owner = descriptor, owner

    def get_value(self, path: str, name: str) -> tuple[int, bytes, str | None] | None:
        """(type, data, owner) of ``path\\name``, or None."""
        key = self._walk(path, False)
        v = key.values.get(upcase(name)) if key is not None else None
        return None if v is None else (v.type, v.data, v.owner)

    def subkey_names(self, path: str) -> list[str]:
        """Names of the subkeys of ``path`` as first spelt (empty if it does not exist)."""
        key = self._walk(path, False)
        return [] if key is None else [k.name for k in key.children.values()]

    def has_key(self, path: str) -> bool:
        return self._walk(path, False) is not None

    # -- serialising ----------------------------------------------------------------------

    def _descriptors(self) -> dict[int, bytes]:
        """The descriptor of every key at or below a key given one (by ``id``; the others keep the
        hive's default): as the registry gives a key created below its parent, "the ACLs in a
        default security descriptor for a key are inherited from its direct parent key"
        (Microsoft Learn, *Registry Key Security and Access Rights*; merging rules: *Security
        Descriptors for New Objects*, *ACE Inheritance*). So a key with no descriptor of its own
        gets its parent's container-inheritable ACEs, marked inherited, with the default's owner
        and group (the creating process's, not public for Windows' servicing stack); a given
        descriptor whose DACL or SACL is not protected gets them after its own ACEs, as files do
        (:func:`..secdesc.inherit`). A parent that passes nothing on leaves the child the default.
        Inheritance starts at given descriptors only: the default itself is ffuforge's choice, not
        Windows' skeleton, and is not propagated into given ones."""
        out: dict[int, bytes] = {}
        bare = secdesc.sddl_to_binary("O:BAG:SY")  # the default's owner and group, no ACLs
        memo: dict[tuple[bytes, bytes], bytes] = {}

        def derive(parent: bytes, own: bytes) -> bytes:
            got = memo.get((parent, own))
            if got is None:
                got = memo[parent, own] = secdesc.inherit(parent, own, True)
            return got

        stack: list[tuple[_Key, bytes | None]] = [(self.root, None)]
        while stack:
            key, parent = stack.pop()
            if key.security is not None:
                mine: bytes | None = key.security if parent is None else derive(parent, key.security)
            elif parent is not None:
                mine = derive(parent, bare)
                if mine == bare:  # nothing inheritable: the default, and nothing below inherits
                    mine = None
            else:
                mine = None
            if mine is not None:
                out[id(key)] = mine
            stack.extend((child, mine) for child in key.children.values())
        return out

    def _cells(self) -> tuple[list[_Cell], _Cell]:
        cells: list[_Cell] = []
        ft = self.filetime
        sd = self.security_descriptor
        given = self._descriptors()

        def add(payload_len: int, render: Callable[[], bytes]) -> _Cell:
            c = _Cell(payload_len, render)
            cells.append(c)
            return c

        # One sk cell per distinct descriptor, each placed after the first key (depth first) that
        # uses it (the root's first). All sk cells form one flink/blink ring in that
        # order, each counting the keys that point to it (REGF: CM_KEY_SECURITY).
        sk_cells: dict[bytes, _Cell] = {}
        ring: list[_Cell] = []
        refs: dict[bytes, int] = {}

        def sk_for(descriptor: bytes) -> _Cell:
            cell = sk_cells.get(descriptor)
            if cell is not None:
                return cell
            pos = len(ring)

            def render_sk() -> bytes:
                return (
                    SK.build(
                        {
                            "reserved": 0,
                            "flink": ring[(pos + 1) % len(ring)].offset,
                            "blink": ring[pos - 1].offset,
                            "reference_count": refs[descriptor],
                            "descriptor_size": len(descriptor),
                        }
                    )
                    + descriptor
                )

            cell = sk_cells[descriptor] = add(SK_SIZE + len(descriptor), render_sk)
            ring.append(cell)
            return cell

        def emit(key: _Key, parent: _Cell | None) -> tuple[_Cell, list[tuple[_Key, _Cell]], list[_Cell]]:
            descriptor = given.get(id(key), sd)
            refs[descriptor] = refs.get(descriptor, 0) + 1
            sk_holder: list[_Cell] = []
            name_bytes, compressed = encode_name(key.name)
            children = sorted(key.children.values(), key=lambda k: sort_key(k.name))
            values = sorted(key.values.values(), key=lambda v: sort_key(v.name))
            holder: dict[str, _Cell | None] = {"values": None, "subkeys": None}
            is_root = parent is None
            flags = (KEY_HIVE_ENTRY | KEY_NO_DELETE if is_root else 0) | (KEY_COMP_NAME if compressed else 0)
            child_cells: list[_Cell] = []
            meta = {
                "max_subkey_name": max((2 * utf16_len(k.name) for k in children), default=0),
                "max_value_name": max((2 * utf16_len(v.name) for v in values), default=0),
                "max_value_data": max((len(v.data) for v in values), default=0),
            }

            def render_nk() -> bytes:
                return (
                    NK_P.pack(
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
                        security=sk_holder[0].offset,
                        class_name=NIL,
                        max_subkey_class=0,
                        work_var=0,
                        name_length=len(name_bytes),
                        class_length=0,
                        **meta,
                    )
                    + name_bytes
                )

            nk = add(NK_P.size + len(name_bytes), render_nk)
            sk_holder.append(sk_for(descriptor))
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
        assert root_cell is not None  # the root is emitted first
        return cells, root_cell

    @staticmethod
    def _emit_value(v: _Value, add) -> _Cell:
        name_bytes, compressed = encode_name(v.name)
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
                VK_P.pack(
                    name_length=len(name_bytes),
                    data_size=size_field,
                    data_offset=inline if inline is not None else cast(_Cell, ref["data"]).offset,
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
            raise ConfigError("registry hive would exceed 2 GiB")
        buf = bytearray(PAGE + total)
        for i, (b_start, b_size, b_used) in enumerate(bins):
            buf[PAGE + b_start : PAGE + b_start + BIN_HEADER_SIZE] = HBIN_C.build(
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


def _check_key_name(name: str, what: str) -> None:
    if not name:
        raise ConfigError(f"empty {what}")
    if "\\" in name or "\0" in name:
        raise ConfigError(f"{what} {name!r} contains a backslash or NUL")
    if utf16_len(name) > MAX_KEY_NAME:
        raise ConfigError(f"{what} {name[:40]!r}… is longer than {MAX_KEY_NAME} characters")


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
