"""SxS component key forms: the folder and manifest names CBS uses inside a package CAB.

The 16-hex-digit suffix is the servicing stack's "pseudo key" hash of the identity; a wrong
value makes the servicing stack reject the component, so it is reproduced exactly.
"""

from __future__ import annotations

import re

_M64 = (1 << 64) - 1
_M32 = (1 << 32) - 1
_ATTR_ORDER = (
    "name",
    "culture",
    "type",
    "version",
    "publicKeyToken",
    "processorArchitecture",
    "versionScope",
)


def _h(text: str) -> int:
    lanes = [0, 0, 0, 0]
    for i, ch in enumerate(text.lower()):
        lanes[i & 3] = (lanes[i & 3] * 0x1003F + ord(ch)) & _M32
    return (
        lanes[0] * 0x1E5FFFFFD27 + lanes[1] * 0xFFFFFFDC00000051 + lanes[2] * 0x1FFFFFFF7 + lanes[3]
    ) & _M64


def pseudo_key(identity: dict[str, str]) -> str:
    """Hash of an assembly identity. `identity` uses manifest attribute names (`language`)."""
    key = 0
    for attr in _ATTR_ORDER:
        value = identity.get("language" if attr == "culture" else attr)
        if value is None:
            continue
        if attr == "culture" and value.lower() in ("neutral", "none"):
            continue
        key = (key * 0x1FFFFFFF7 + _h(attr) * 0x1FFFFFFF7 + _h(value)) & _M64
    return f"{key:016x}"


def _short(text: str, limit: int, head: int, tail: int) -> str:
    return text if len(text) <= limit else f"{text[:head]}..{text[-tail:]}"


def key_form(identity: dict[str, str], winners: bool = False) -> str:
    """`arch_name_pkt_version_culture_hash`, lower case (winners form drops the version)."""
    ident = dict(identity)
    if winners:
        ident.pop("version", None)
    name = re.sub(r"[^a-z0-9._-]", "", ident["name"].lower())
    name = _short(name, 40, 19, 19)
    culture = ident.get("language", "neutral").lower()
    culture = "none" if culture in ("neutral", "none", "") else _short(culture, 8, 3, 3)
    parts = [ident["processorArchitecture"].lower(), name, ident["publicKeyToken"].lower()]
    if not winners:
        parts.append(ident["version"].lower())
    parts += [culture, pseudo_key(ident)]
    return "_".join(parts)
