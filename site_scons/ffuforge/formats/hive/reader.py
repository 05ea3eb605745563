"""The hive reader: parses a whole REGF file into :class:`Hive`/:class:`RegKey`/:class:`RegValue`,
treating it as hostile (bounds, loops, nesting depth and counts checked; any inconsistency is an
FFUError naming the file, never a crash or a hang).
"""

from __future__ import annotations

import bisect
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from construct import ConstructError

from ...errors import FFUError, FormatError
from ...util.paths import open_regular
from .structs import (
    BASE_BLOCK,
    BIG_DATA,
    BIG_DATA_SEGMENT,
    BIN_HEADER_SIZE,
    HBIN_C,
    KEY_COMP_NAME,
    MAX_DEPTH,
    NIL,
    NK_P,
    NK_SIZE,
    PAGE,
    SK,
    SK_SIZE,
    VALUE_COMP_NAME,
    VK_P,
    VK_SIZE,
    checksum,
    split_path,
    upcase,
)

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
    security: bytes = b""  # the self-relative descriptor of the key's sk cell
    security_cell: int = -1  # offset of that sk cell (shared by keys with the same descriptor)

    def subkey(self, path: str) -> RegKey | None:
        key = self
        for part in split_path(path):
            folded = upcase(part)
            found = next((k for k in key.subkeys if upcase(k.name) == folded), None)
            if found is None:
                return None
            key = found
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
        self.sk_cache: dict[int, bytes] = {}

    def fail(self, message: str) -> FormatError:
        return FormatError(f"malformed registry hive: {message}", self.name)

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
                hb = HBIN_C.parse(bytes(d[pos : pos + BIN_HEADER_SIZE]))
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
        assert root_key is not None  # the first entry popped is the root
        return root_key

    def node(self, offset: int) -> tuple[RegKey, list[int]]:
        c = self.cell(offset, "key")
        if len(c) < NK_SIZE or bytes(c[:2]) != b"nk":
            raise self.fail(f"cell 0x{offset:x} is not a key node")
        nk = NK_P.unpack(c)
        name_length = nk["name_length"]
        if NK_SIZE + name_length > len(c):
            raise self.fail(f"key name at 0x{offset:x} runs past its cell")
        raw = bytes(c[NK_SIZE : NK_SIZE + name_length])
        name = raw.decode("latin-1") if nk["flags"] & KEY_COMP_NAME else raw.decode("utf-16-le", "replace")
        key = RegKey(name=name, timestamp=nk["timestamp"])
        key.security_cell = nk["security"]
        key.security = self.security(nk["security"], name)
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

    def security(self, offset: int, name: str) -> bytes:
        """The descriptor of an ``sk`` cell (read once per cell); none for NIL (volatile keys)."""
        if offset == NIL:
            return b""
        cached = self.sk_cache.get(offset)
        if cached is not None:
            return cached
        c = self.cell(offset, "security")
        if len(c) < SK_SIZE or bytes(c[:2]) != b"sk":
            raise self.fail(f"key {name!r} points to 0x{offset:x} for its security, which is not an sk cell")
        size = SK.parse(bytes(c[:SK_SIZE])).descriptor_size
        if SK_SIZE + size > len(c):
            raise self.fail(f"security descriptor at 0x{offset:x} runs past its cell")
        out = self.sk_cache[offset] = bytes(c[SK_SIZE : SK_SIZE + size])
        return out

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
        vk = VK_P.unpack(c)
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
        raise FormatError(f"registry hive is larger than {max_size} bytes", name)
    return parse_hive(data, name)


def parse_hive(data: bytes, name: str = "<hive>") -> Hive:
    reader = _Reader(data, name)
    try:
        return reader.read()
    except FFUError:
        raise
    except (ConstructError, struct.error, ValueError, IndexError, OverflowError) as exc:
        raise reader.fail(str(exc)) from None
