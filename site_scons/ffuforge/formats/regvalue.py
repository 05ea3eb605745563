"""Registry value encodings of wm.xml and pkg.xml, decoded once into (type, bytes).

Both schemas spell the same data differently (`0x00007530` vs `7530`, `12ABCDEF` vs
`12,AB,CD,EF`); decoding to raw bytes here lets manifests and offline hives share one truth.

REG_MULTI_SZ items: pkg.xml and the documented wm.xml form separate items with ``;`` (pkg.xml
cannot escape it). pkggen copies a wm.xml ``value`` into the component manifest unchanged
(PkgBldr ``WmToCsi/RegValue.cs``), where CSI reads the quoted form ``"a;b","c"`` — so a wm.xml
value written in that form (first character ``"``) is read as CSI reads it, and an item may then
hold ``;`` or ``,`` (``""`` is a literal quote). An empty item is refused: Windows ends a
multi-string at the first empty string, so every item after it would be lost.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ConfigError

TYPES = {
    "REG_NONE": 0,
    "REG_SZ": 1,
    "REG_EXPAND_SZ": 2,
    "REG_BINARY": 3,
    "REG_DWORD": 4,
    "REG_DWORD_BIG_ENDIAN": 5,
    "REG_LINK": 6,
    "REG_MULTI_SZ": 7,
    "REG_RESOURCE_LIST": 8,
    "REG_FULL_RESOURCE_DESCRIPTOR": 9,
    "REG_RESOURCE_REQUIREMENTS_LIST": 10,
    "REG_QWORD": 11,
}
TYPE_NAMES = {v: k for k, v in TYPES.items()}
AUTHORED = ("REG_SZ", "REG_EXPAND_SZ", "REG_MULTI_SZ", "REG_DWORD", "REG_QWORD", "REG_BINARY")
_HEX = re.compile(r"^[0-9A-Fa-f]+$")


@dataclass(frozen=True)
class RegData:
    type: int
    data: bytes
    warning: str | None = None

    @property
    def type_name(self) -> str:
        return TYPE_NAMES.get(self.type, f"REG_TYPE_{self.type}")

    def manifest_text(self) -> str:
        """Value text as written in CBS component manifests."""
        if self.type in (1, 2):
            return self.data.decode("utf-16-le").rstrip("\0")
        if self.type == 7:
            items = multi_items(self.data)
            return ",".join('"' + p.replace('"', '""') + '"' for p in items) if items else '""'
        if self.type == 4:
            return f"0x{int.from_bytes(self.data, 'little'):08X}"
        if self.type == 11:
            return f"0x{int.from_bytes(self.data, 'little'):016X}"
        return self.data.hex().upper()


def _sz(text: str) -> bytes:
    return (text + "\0").encode("utf-16-le")


def multi_data(items: list[str]) -> bytes:
    """REG_MULTI_SZ bytes: each item NUL-terminated, then the empty string that ends the list."""
    for i, item in enumerate(items):
        if item == "":
            raise ConfigError(
                f"REG_MULTI_SZ item {i + 1} of {len(items)} is empty; Windows ends the list at an "
                "empty string, so remove it (a doubled or trailing ';' or an empty \"\" item)"
            )
        if "\0" in item:
            raise ConfigError(f"REG_MULTI_SZ item {item[:40]!r} contains a NUL character")
    return b"".join(_sz(s) for s in items) + b"\0\0"


def multi_items(data: bytes) -> list[str]:
    """The items of REG_MULTI_SZ bytes (up to the first empty string, as Windows reads them)."""
    text = data.decode("utf-16-le", errors="replace")
    out: list[str] = []
    for item in text.split("\0"):
        if item == "":
            break
        out.append(item)
    return out


_QUOTED_ITEM = re.compile(r'\s*"((?:[^"]|"")*)"\s*')


def quoted_items(text: str) -> list[str] | None:
    """Items of the CSI manifest form ``"a","b;c"`` (``""`` inside an item is one quote), or None
    when `text` is not in that form. A lone ``""`` is the empty list (how manifests write one)."""
    if not text.lstrip().startswith('"'):
        return None
    items, pos = [], 0
    while True:
        m = _QUOTED_ITEM.match(text, pos)
        if m is None:
            return None
        items.append(m.group(1).replace('""', '"'))
        pos = m.end()
        if pos == len(text):
            break
        if text[pos] != ",":
            return None
        pos += 1
    return [] if items == [""] else items


def _multi(text: str, legacy: bool) -> tuple[bytes, str | None]:
    warning = None
    if text.endswith("\\0"):
        text, warning = text[:-2], "REG_MULTI_SZ value ends with a literal \\0; it was dropped"
    quoted = None if legacy else quoted_items(text)
    if quoted is None and not legacy and text.lstrip().startswith('"'):
        raise ConfigError(
            f"REG_MULTI_SZ value {text[:40]!r} starts with a quote but is not a list of quoted items; "
            'write "a","b;c" (quotes doubled inside an item) or a;b without quotes'
        )
    items = quoted if quoted is not None else (text.split(";") if text else [])
    return multi_data(items), warning


def _int(text: str, bits: int, what: str) -> bytes:
    t = text.strip()
    if t[:2].lower() == "0x":
        t = t[2:]
    if not t or not _HEX.match(t):
        raise ConfigError(f"{what} value {text!r} is not hexadecimal; write it like 0x{'0' * (bits // 4)}")
    value = int(t, 16)
    if value >= 1 << bits:
        raise ConfigError(f"{what} value {text!r} does not fit in {bits} bits")
    return value.to_bytes(bits // 8, "little")


def _binary_hex(text: str) -> bytes:
    t = re.sub(r"\s+", "", text)
    if t[:2].lower() == "0x":
        t = t[2:]
    if t and not _HEX.match(t):
        raise ConfigError(f"REG_BINARY value {text[:40]!r} is not contiguous hexadecimal (e.g. 12ABCDEF)")
    if len(t) % 2:
        raise ConfigError(
            f"REG_BINARY value has an odd number of hex digits ({len(t)}); pad it with a leading 0"
        )
    return bytes.fromhex(t)


def _binary_commas(text: str) -> bytes:
    t = re.sub(r"\s+", "", text)
    if not t:
        return b""
    out = bytearray()
    for item in t.split(","):
        if not _HEX.match(item) or len(item) > 2:
            raise ConfigError(f"REG_BINARY byte {item!r} is not one or two hex digits (write 12,AB,CD)")
        out.append(int(item, 16))
    return bytes(out)


def decode(type_name: str, value: str | None, *, legacy: bool) -> RegData:
    """Decode an authored value. `legacy` selects the pkg.xml spellings. Raises ConfigError."""
    t = type_name.strip().upper()
    text = value if value is not None else ""
    if t == "REG_SZ":
        return RegData(1, _sz(text))
    if t == "REG_EXPAND_SZ":
        return RegData(2, _sz(text))
    if t == "REG_MULTI_SZ":
        data, warning = _multi(text, legacy)
        return RegData(7, data, warning)
    if t == "REG_DWORD":
        return RegData(4, _int(text, 32, "REG_DWORD"))
    if t == "REG_QWORD":
        return RegData(11, _int(text, 64, "REG_QWORD"))
    if t == "REG_BINARY":
        if legacy or "," in text:
            return RegData(3, _binary_commas(text))
        return RegData(3, _binary_hex(text))
    if t == "REG_HEX":
        if not legacy:
            raise ConfigError(
                "REG_HEX is only valid in legacy .pkg.xml files; use REG_BINARY or a typed value"
            )
        m = re.match(r"^\s*hex\(([0-9A-Fa-f]{1,8})\):(.*)$", text, re.S)
        if not m:
            raise ConfigError(f"REG_HEX value {text[:40]!r} must look like hex(7):aa,bb,...")
        return RegData(int(m.group(1), 16), _binary_commas(m.group(2)))
    raise ConfigError(f"unknown registry value type {type_name!r}; use one of {', '.join(AUTHORED)}")
