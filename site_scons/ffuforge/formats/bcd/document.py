"""Reading BootConfiguration XML documents into objects and elements, with file:line locations.

Checks structure, names and literal values but encodes nothing: :func:`parse_document` is also
used on its own to validate a package's ``bcdStore`` source early (ffuforge.package.project).
"""

from __future__ import annotations

import difflib
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from ...errors import ConfigError
from ...util import xmlsafe
from .schema import BCD_NS, ELEMENT_TYPES, ELEMENTS_FOLDED, OBJECTS_FOLDED, WELL_KNOWN_OBJECTS

__all__ = [
    "Element",
    "Loc",
    "Object",
    "braced",
    "children",
    "element_text",
    "parse_document",
    "parse_guid",
    "parse_int",
]

# --- XML model --------------------------------------------------------------------------------


@dataclass
class Loc:
    file: str
    line: int | None

    def error(self, message: str) -> ConfigError:
        return ConfigError(message, self.file, self.line)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass
class Element:
    name: str
    type_id: int
    value_el: etree._Element  # the lxml element inside <ValueType>
    loc: Loc


@dataclass
class Object:
    name: str
    guid: str
    type: int | None
    loc: Loc
    elements: list[Element] = field(default_factory=list)


def children(el, loc_file: str, allowed: Sequence[str]) -> dict[str, etree._Element]:
    out: dict[str, etree._Element] = {}
    for c in xmlsafe.elements(el):
        if xmlsafe.namespace(c) != BCD_NS:
            raise ConfigError(
                f"element <{xmlsafe.localname(c)}> is not in the BootConfiguration namespace",
                loc_file,
                c.sourceline,
            )
        name = xmlsafe.localname(c)
        if name not in allowed:
            raise ConfigError(
                f"unexpected <{name}> in <{xmlsafe.localname(el)}>; expected {', '.join(allowed)}",
                loc_file,
                c.sourceline,
            )
        if name in out:
            raise ConfigError(f"<{name}> appears twice in <{xmlsafe.localname(el)}>", loc_file, c.sourceline)
        out[name] = c
    return out


def element_text(el) -> str:
    return (el.text or "").strip()


def parse_guid(text: str, loc: Loc, what: str) -> uuid.UUID:
    t = text.strip()
    if not re.fullmatch(
        r"\{?[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\}?", t
    ):
        raise loc.error(f"{what} {text!r} is not a GUID like {{01234567-89ab-cdef-0123-456789abcdef}}")
    return uuid.UUID(t.strip("{}"))


def braced(u: uuid.UUID) -> str:
    return "{" + str(u) + "}"


def parse_int(text: str, loc: Loc, what: str, *, bits: int = 64) -> int:
    t = text.strip()
    digits = t[2:] if t[:2].lower() == "0x" else t
    if not digits or not re.fullmatch(r"[0-9A-Fa-f]+", digits):
        raise loc.error(
            f"{what} {text!r} is not a hexadecimal number (BCD integers are always hex, e.g. 0x1E)"
        )
    v = int(digits, 16)
    if v >= 1 << bits:
        raise loc.error(f"{what} {text!r} does not fit in {bits} bits")
    return v


def _element_type(name: str, loc: Loc) -> int:
    hit = ELEMENTS_FOLDED.get(name.casefold())
    if hit is None:
        close = difflib.get_close_matches(name, list(ELEMENT_TYPES), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise loc.error(f"unknown BCD element {name!r}; {hint}supported: {', '.join(sorted(ELEMENT_TYPES))}")
    return hit[1]


def parse_document(path: str | Path, display: str | None = None) -> list[Object]:
    """Objects of one BootConfigurationDatabase document (no encoding yet)."""
    name = display or str(path)
    root = xmlsafe.parse_file(path, name)
    if xmlsafe.localname(root) != "BootConfigurationDatabase" or xmlsafe.namespace(root) != BCD_NS:
        raise ConfigError(
            f'not a BCD description: expected <BootConfigurationDatabase xmlns="{BCD_NS}">',
            name,
            root.sourceline,
        )
    objects: list[Object] = []
    top = children(root, name, ("Objects",))
    if "Objects" not in top:
        return objects
    for obj_el in xmlsafe.elements(top["Objects"]):
        loc = Loc(name, obj_el.sourceline)
        if xmlsafe.localname(obj_el) != "Object" or xmlsafe.namespace(obj_el) != BCD_NS:
            raise loc.error(f"unexpected <{xmlsafe.localname(obj_el)}> in <Objects>; expected <Object>")
        parts = children(obj_el, name, ("FriendlyName", "Id", "RawType", "Elements"))
        if "FriendlyName" not in parts or not element_text(parts["FriendlyName"]):
            raise loc.error("<Object> needs a <FriendlyName>")
        friendly = element_text(parts["FriendlyName"])
        known = OBJECTS_FOLDED.get(friendly.casefold())
        guid = (
            braced(parse_guid(element_text(parts["Id"]), Loc(name, parts["Id"].sourceline), "object Id"))
            if "Id" in parts
            else (known[1] if known else None)
        )
        if known and guid != known[1]:
            raise loc.error(
                f"object {friendly!r} is well known as {known[1]}; its <Id> {guid} contradicts that"
            )
        obj_type = known[2] if known else None
        if "RawType" in parts:
            rt = parts["RawType"]
            text = element_text(rt)
            rloc = Loc(name, rt.sourceline)
            value = (
                parse_int(text, rloc, "object RawType", bits=32)
                if text[:2].lower() == "0x"
                else _decimal(text, rloc)
            )
            if obj_type is not None and value != obj_type:
                raise rloc.error(
                    f"object {friendly!r} has type 0x{obj_type:08x}; <RawType> 0x{value:08x} contradicts it"
                )
            obj_type = value
        if guid is None:
            raise loc.error(
                f"object {friendly!r} is not a well-known BCD object; give it an <Id>{{GUID}}</Id> and "
                f"a <RawType>, or use one of: {', '.join(sorted(WELL_KNOWN_OBJECTS))}"
            )
        obj = Object(name=known[0] if known else friendly, guid=guid, type=obj_type, loc=loc)
        if "Elements" in parts:
            for el in xmlsafe.elements(parts["Elements"]):
                obj.elements.append(_parse_element(el, name))
        objects.append(obj)
    return objects


def _decimal(text: str, loc: Loc) -> int:
    if not re.fullmatch(r"[0-9]+", text):
        raise loc.error(f"object RawType {text!r} is not a number")
    v = int(text)
    if v >= 1 << 32:
        raise loc.error(f"object RawType {text!r} does not fit in 32 bits")
    return v


def _parse_element(el, file: str) -> Element:
    loc = Loc(file, el.sourceline)
    if xmlsafe.localname(el) != "Element" or xmlsafe.namespace(el) != BCD_NS:
        raise loc.error(f"unexpected <{xmlsafe.localname(el)}> in <Elements>; expected <Element>")
    parts = children(el, file, ("DataType", "ValueType"))
    if "DataType" not in parts or "ValueType" not in parts:
        raise loc.error("<Element> needs a <DataType> and a <ValueType>")
    dt = children(parts["DataType"], file, ("WellKnownType", "RawType"))
    if "RawType" in dt:
        raise ConfigError(
            "RawType element data types are not supported (pkggen refused them too); use a <WellKnownType>",
            file,
            dt["RawType"].sourceline,
        )
    if "WellKnownType" not in dt:
        raise loc.error("<DataType> needs a <WellKnownType>")
    wkt = dt["WellKnownType"]
    wloc = Loc(file, wkt.sourceline)
    type_name = element_text(wkt)
    type_id = _element_type(type_name, wloc)
    values = xmlsafe.elements(parts["ValueType"])
    if len(values) != 1:
        raise Loc(file, parts["ValueType"].sourceline).error("<ValueType> needs exactly one value element")
    return Element(name=type_name, type_id=type_id, value_el=values[0], loc=wloc)
