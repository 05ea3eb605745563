"""The BCD store hive as registry data: the empty store, and merging the registry form of BCD
packages into it.

Microsoft's BCD packages do not carry BootConfiguration XML: pkggen/PkgBldr convert it at package
build time (``BcdConverter.SaveToRegData``, ``HiveBase = HKEY_LOCAL_MACHINE\\BCD``; public
decompilations gus33000/DD2FFU ``ImageStorageServiceManaged/BcdConverter.cs`` and
Empyreal96/IUTool_components_decompiled ``PkgBldr.Common/Base/BasePlugins/BcdStore.cs``) into
``registryKey`` elements of the EFIESP component manifest: ``BCD\\Description`` (KeyName
``BCD00000000``, System 1, TreatAsSystem 1), ``BCD\\Objects\\{guid}\\Description\\Type`` and
``BCD\\Objects\\{guid}\\Elements\\<8 hex>\\Element``. ImageApp applies those values to the store.

Merge rule (ours; ImageApp's servicing stack applies registry values to one store the same way):
the store gets the objects and elements of every XML document and every registry package. The same
value from two packages with the same type and data is fine; with different data it is one error
naming both packages (XML documents among themselves keep pkggen's "a later element replaces an
earlier one"). Keys outside the store layout above are refused, and every object must end up with
a Type from some package. No real Microsoft BCD package was available to compare with (none in the
corpus); the layout is the one BcdConverter writes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ...errors import ConfigError
from ..hive import HiveBuilder
from .schema import ELEMENT_TYPES, WELL_KNOWN_OBJECTS

__all__ = [
    "STORE_FILE_NAME",
    "STORE_ROOT",
    "add_registry_values",
    "check_store",
    "element_name",
    "new_store",
    "object_name",
]

STORE_ROOT = "NewStoreRoot"
STORE_FILE_NAME = "\\EFI\\Microsoft\\Boot\\BCD"
DESCRIPTION = (
    ("KeyName", 1, "BCD00000000\0".encode("utf-16-le")),
    ("System", 4, (1).to_bytes(4, "little")),
    ("TreatAsSystem", 4, (1).to_bytes(4, "little")),
)

_GUID = r"\{[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}"
_OBJECT_KEY = re.compile(rf"^Objects\\({_GUID})(?:\\(Description|Elements)(?:\\([0-9a-fA-F]{{8}}))?)?$", re.I)
_ELEMENT_NAMES: dict[int, str] = {}
for _name, _eid in ELEMENT_TYPES.items():
    _ELEMENT_NAMES.setdefault(_eid, _name)  # first name of the table, not the ffuforge aliases
_OBJECT_NAMES = {g: n for n, (g, _t) in WELL_KNOWN_OBJECTS.items()}
LAYOUT_HINT = (
    "a BCD store holds Description, Objects\\{guid}\\Description (Type) and "
    "Objects\\{guid}\\Elements\\<8 hex digits> (Element)"
)


def element_name(eid: int) -> str | None:
    return _ELEMENT_NAMES.get(eid)


def object_name(guid: str) -> str | None:
    return _OBJECT_NAMES.get(guid.lower())


def new_store(timestamp: int) -> HiveBuilder:
    """An empty store: the Description BcdConverter writes and an empty Objects key."""
    store = HiveBuilder(STORE_ROOT, timestamp=timestamp, file_name=STORE_FILE_NAME)
    for name, type_, data in DESCRIPTION:
        store.set_value("Description", name, type_, data)
    store.ensure_key("Objects")
    return store


def _what(inner: str, name: str) -> str:
    m = _OBJECT_KEY.match(inner)
    if not m:
        return f"BCD value {inner}\\{name}"
    guid = m.group(1).lower()
    obj = f"object {guid}" + (f" ({object_name(guid)})" if object_name(guid) else "")
    if m.group(3):
        eid = int(m.group(3), 16)
        label = element_name(eid)
        return f"BCD element {eid:#010x}" + (f" ({label})" if label else "") + f" of {obj}"
    return f"type of {obj}" if (m.group(2) or "").lower() == "description" else obj


def _check_place(inner: str, name: str | None, package: str) -> None:
    """Refuse registry data outside the store layout (``name`` None: a key without values)."""
    if inner.lower() in ("", "description", "objects"):
        if name is not None and inner.lower() != "description":
            raise ConfigError(f"BCD value {inner or '(store root)'}\\{name} (from {package}): {LAYOUT_HINT}")
        return
    m = _OBJECT_KEY.match(inner)
    if m is None:
        raise ConfigError(f"BCD key {inner!r} (from {package}) is not part of a BCD store; {LAYOUT_HINT}")
    if name is None:
        return
    part, elem = (m.group(2) or "").lower(), m.group(3)
    ok = (part == "description" and not elem and name.lower() == "type") or (
        part == "elements" and elem and name.lower() == "element"
    )
    if not ok:
        raise ConfigError(
            f"BCD value {inner}\\{name} (from {package}) is not part of a BCD store; {LAYOUT_HINT}"
        )


def add_registry_values(
    store: HiveBuilder,
    values: Iterable[tuple[str, str, int, bytes, str]],
    keys: Iterable[tuple[str, str]] = (),
) -> None:
    """Merge registry-form BCD data into ``store``: ``values`` are (key below ``HKLM\\BCD``, value
    name, type, data, package), ``keys`` (key, package) for keys without values."""
    for inner, package in sorted(keys, key=lambda t: t[0].lower()):
        _check_place(inner, None, package)
        store.ensure_key(inner)
    for inner, name, type_, data, package in sorted(values, key=lambda t: (t[0].lower(), t[1].lower())):
        _check_place(inner, name, package)
        if name.lower() == "type" and type_ != 4:
            raise ConfigError(f"{_what(inner, name)} (from {package}) must be REG_DWORD, not type {type_}")
        old = store.get_value(inner, name)
        if old is not None and (old[0], old[1]) != (type_, data):
            first = old[2] or "ffuforge (the store description)"
            raise ConfigError(
                f"{_what(inner, name)} is set by both {first} ({_show(old[0], old[1])}) and {package} "
                f"({_show(type_, data)}); make one package own it"
            )
        if old is None:
            store.set_value(inner, name, type_, data, owner=package)


def check_store(store: HiveBuilder, owners: dict[str, str]) -> None:
    """Every object has a Type; ``owners`` maps a lower-case object GUID to a package that gave
    it elements, for the message."""
    for guid in store.subkey_names("Objects"):
        if store.get_value(f"Objects\\{guid}\\Description", "Type") is None:
            who = owners.get(guid.lower(), "a package")
            raise ConfigError(
                f"BCD object {guid} (elements from {who}) has no Description\\Type; the package that "
                "creates the object must set it (e.g. 0x10200003 for an OS loader)"
            )


def _show(type_: int, data: bytes) -> str:
    if type_ in (1, 2, 7):
        return repr(data.decode("utf-16-le", "replace").rstrip("\0").replace("\0", ";"))
    if type_ == 4 and len(data) == 4:
        return f"{int.from_bytes(data, 'little'):#x}"
    return data[:24].hex() + ("…" if len(data) > 24 else "")
