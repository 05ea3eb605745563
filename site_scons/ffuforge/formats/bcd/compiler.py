"""Encoding parsed BCD elements into registry values and compiling documents into a store hive.

The main part of :mod:`ffuforge.formats.bcd`: merges documents by object GUID, resolves object
references and devices against the disk being built, and writes the store layout described in
the package docstring.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ...errors import ConfigError
from ...util import xmlsafe
from ..hive import HiveBuilder
from .devices import gpt_partition_device, mbr_partition_device, ramdisk_device
from .document import (
    Element,
    Loc,
    Object,
    braced,
    children,
    element_text,
    parse_document,
    parse_guid,
    parse_int,
)
from .schema import (
    F_BOOLEAN,
    F_DEVICE,
    F_INTEGER,
    F_INTEGERLIST,
    F_OBJECT,
    F_OBJECTLIST,
    F_STRING,
    FORMAT_NAMES,
    GPT_PARTITION_IDS,
    RAMDISK_OPTIONS,
    WELL_KNOWN_OBJECTS,
)
from .store import new_store

__all__ = ["DiskContext", "build_bcd", "compile_bcd"]


# --- encoding ---------------------------------------------------------------------------------

_VALUE_FORMATS = {
    "BooleanValue": F_BOOLEAN,
    "IntegerValue": F_INTEGER,
    "StringValue": F_STRING,
    "ObjectValue": F_OBJECT,
    "ObjectListValue": F_OBJECTLIST,
    "IntegerListValue": F_INTEGERLIST,
    "DeviceValue": F_DEVICE,
}
_FORMAT_TAGS = {v: k for k, v in _VALUE_FORMATS.items()}


@dataclass
class DiskContext:
    style: str  # 'gpt' | 'mbr'
    disk_id: str | int | None
    partition_ids: dict[str, str | int]  # lower-case name → GUID text (gpt) / byte offset (mbr)


class _Encoder:
    def __init__(self, names: dict[str, str], disk: DiskContext):
        self.names = names  # casefolded friendly name → {guid}
        self.disk = disk

    def object_ref(self, text: str, loc: Loc) -> str:
        t = text.strip()
        if t.startswith("{"):
            return braced(parse_guid(t, loc, "object reference"))
        guid = self.names.get(t.casefold())
        if guid is None:
            raise loc.error(
                f"unknown BCD object {t!r}; reference a well-known object, an object declared with "
                "<Id> in one of the BCD files, or a {GUID}"
            )
        return guid

    def encode(self, e: Element) -> tuple[int, bytes]:
        v = e.value_el
        tag = xmlsafe.localname(v)
        loc = Loc(e.loc.file, v.sourceline)
        fmt = (e.type_id >> 24) & 0xF
        got = _VALUE_FORMATS.get(tag)
        if got is None:
            raise loc.error(f"unknown value <{tag}>; use one of {', '.join(_VALUE_FORMATS)}")
        if got != fmt:
            raise loc.error(
                f"BCD element {e.name!r} ({FORMAT_NAMES[fmt]}) takes <{_FORMAT_TAGS[fmt]}>, not <{tag}>"
            )
        if fmt == F_BOOLEAN:
            t = element_text(v).lower()
            if t not in ("true", "false", "1", "0"):
                raise loc.error(f"boolean {element_text(v)!r} must be true or false")
            return 3, b"\x01" if t in ("true", "1") else b"\x00"
        if fmt == F_INTEGER:
            return 3, parse_int(element_text(v), loc, "integer").to_bytes(8, "little")
        if fmt == F_STRING:
            return 1, ((v.text or "") + "\0").encode("utf-16-le")
        if fmt == F_OBJECT:
            return 1, (self.object_ref(element_text(v), loc) + "\0").encode("utf-16-le")
        if fmt == F_DEVICE:
            return 3, self.device(v, loc)
        items = self._string_values(v, loc)
        if fmt == F_OBJECTLIST:
            refs = [self.object_ref(text, il) for text, il in items]
            return 7, ("".join(r + "\0" for r in refs) + "\0").encode("utf-16-le")
        return 3, b"".join(parse_int(text, il, "integer").to_bytes(8, "little") for text, il in items)

    @staticmethod
    def _string_values(v, loc: Loc) -> list[tuple[str, Loc]]:
        parts = children(v, loc.file, ("StringValues",))
        if "StringValues" not in parts:
            raise loc.error(f"<{xmlsafe.localname(v)}> needs <StringValues>")
        items = []
        for s in xmlsafe.elements(parts["StringValues"]):
            if xmlsafe.localname(s) != "StringValue":
                raise ConfigError(
                    f"unexpected <{xmlsafe.localname(s)}> in <StringValues>", loc.file, s.sourceline
                )
            items.append((element_text(s), Loc(loc.file, s.sourceline)))
        if not items:
            raise loc.error("<StringValues> is empty")
        return items

    def device(self, v, loc: Loc) -> bytes:
        kids = xmlsafe.elements(v)
        if len(kids) != 1:
            raise loc.error("<DeviceValue> needs exactly one of <GPTDevice>, <MBRDevice>, <RamdiskDevice>")
        dev = kids[0]
        kind = xmlsafe.localname(dev)
        dloc = Loc(loc.file, dev.sourceline)
        if kind == "RamdiskDevice":
            parts = children(dev, loc.file, ("ParentDevice", "FilePath", "RamdiskOptions"))
            for need in ("ParentDevice", "FilePath"):
                if need not in parts:
                    raise dloc.error(f"<RamdiskDevice> needs <{need}>")
            parent_kids = xmlsafe.elements(parts["ParentDevice"])
            if len(parent_kids) != 1 or xmlsafe.localname(parent_kids[0]) not in ("GPTDevice", "MBRDevice"):
                raise Loc(loc.file, parts["ParentDevice"].sourceline).error(
                    "<ParentDevice> needs exactly one <GPTDevice> or <MBRDevice>"
                )
            options = True
            if "RamdiskOptions" in parts:
                t = element_text(parts["RamdiskOptions"]).lower()
                if t not in ("true", "false", "1", "0"):
                    raise Loc(loc.file, parts["RamdiskOptions"].sourceline).error(
                        f"<RamdiskOptions> {t!r} must be true or false"
                    )
                options = t in ("true", "1")
            path = element_text(parts["FilePath"])
            if not path:
                raise Loc(loc.file, parts["FilePath"].sourceline).error("<FilePath> is empty")
            flags = RAMDISK_OPTIONS.bytes_le if options else bytes(16)
            return flags + ramdisk_device(path, self.partition(parent_kids[0], loc.file))
        if kind in ("GPTDevice", "MBRDevice"):
            return bytes(16) + self.partition(dev, loc.file)
        raise dloc.error(f"unsupported device <{kind}>; use <GPTDevice>, <MBRDevice> or <RamdiskDevice>")

    def partition(self, dev, file: str) -> bytes:
        kind = xmlsafe.localname(dev)
        loc = Loc(file, dev.sourceline)
        style = self.disk.style
        if kind == "GPTDevice":
            if style != "gpt":
                raise loc.error("<GPTDevice> in a BCD for an MBR disk; use the MBR variant of this package")
            parts = children(dev, file, ("DiskId", "Partition"))
            if "DiskId" not in parts or "Partition" not in parts:
                raise loc.error("<GPTDevice> needs <DiskId> and <Partition>")
            disk = parse_guid(element_text(parts["DiskId"]), Loc(file, parts["DiskId"].sourceline), "DiskId")
            if self.disk.disk_id is not None:
                want = parse_guid(str(self.disk.disk_id), loc, "disk id")
                if want != disk:
                    raise loc.error(f"<DiskId> {braced(disk)} is not the disk being built ({braced(want)})")
            pparts = children(parts["Partition"], file, ("Name", "Id"))
            ploc = Loc(file, parts["Partition"].sourceline)
            if len(pparts) != 1:
                raise ploc.error("<Partition> needs exactly one of <Name> or <Id>")
            if "Id" in pparts:
                part = parse_guid(element_text(pparts["Id"]), ploc, "partition Id")
            else:
                pname = element_text(pparts["Name"])
                text = self.disk.partition_ids.get(pname.lower(), GPT_PARTITION_IDS.get(pname.lower()))
                if text is None:
                    raise ploc.error(
                        f"no partition GUID known for {pname!r}; pass it in partition_ids "
                        f"(known: {', '.join(sorted(set(self.disk.partition_ids) | set(GPT_PARTITION_IDS)))})"
                    )
                part = parse_guid(str(text), ploc, f"partition id of {pname!r}")
            return gpt_partition_device(disk, part)
        if kind == "MBRDevice":
            if style != "mbr":
                raise loc.error("<MBRDevice> in a BCD for a GPT disk; use the GPT variant of this package")
            parts = children(dev, file, ("DiskSignature", "PartitionName"))
            if "DiskSignature" not in parts or "PartitionName" not in parts:
                raise loc.error("<MBRDevice> needs <DiskSignature> and <PartitionName>")
            sig = parse_int(
                element_text(parts["DiskSignature"]),
                Loc(file, parts["DiskSignature"].sourceline),
                "DiskSignature",
                bits=32,
            )
            if self.disk.disk_id is not None:
                want_sig = (
                    self.disk.disk_id
                    if isinstance(self.disk.disk_id, int)
                    else parse_int(str(self.disk.disk_id), loc, "disk signature", bits=32)
                )
                if want_sig != sig:
                    raise loc.error(
                        f"<DiskSignature> 0x{sig:08x} is not the disk being built (0x{want_sig:08x})"
                    )
            pname = element_text(parts["PartitionName"])
            offset = self.disk.partition_ids.get(pname.lower())
            if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
                raise Loc(file, parts["PartitionName"].sourceline).error(
                    f"an MBR device needs the byte offset of partition {pname!r}; pass partition_ids from the "
                    "disk layout"
                )
            return mbr_partition_device(sig, offset)
        raise loc.error(f"unsupported parent device <{kind}>")


# --- compiling --------------------------------------------------------------------------------


def build_bcd(
    xml_paths: Sequence[str | Path],
    *,
    timestamp: int,
    disk_style: str = "gpt",
    disk_id: str | int | None = None,
    partition_ids: Mapping[str, str | int] | None = None,
    displays: Sequence[str] | None = None,
    owners: Sequence[str] | None = None,
) -> HiveBuilder:
    """Merge the BCD XML documents (in order) into a store hive, not yet written. ``owners``
    (one per document, e.g. the package) are recorded on the values they set, so that registry
    values merged later (:func:`~.store.add_registry_values`) can name them on a conflict."""
    style = disk_style.lower()
    if style not in ("gpt", "mbr"):
        raise ConfigError(f"disk style {disk_style!r} must be 'gpt' or 'mbr'")
    disk = DiskContext(style, disk_id, {k.lower(): v for k, v in (partition_ids or {}).items()})
    names = list(displays) if displays is not None else [str(p) for p in xml_paths]
    if len(names) != len(xml_paths):
        raise ConfigError("build_bcd: displays and xml_paths differ in length")
    who = list(owners) if owners is not None else [None] * len(xml_paths)
    if len(who) != len(xml_paths):
        raise ConfigError("build_bcd: owners and xml_paths differ in length")
    element_owner: dict[int, str | None] = {}  # id(Element) → owner
    type_owner: dict[str, str | None] = {}  # object guid → owner of its first typed declaration

    merged: dict[str, Object] = {}  # by guid
    order: list[str] = []
    for path, display, owner in zip(xml_paths, names, who, strict=True):
        for obj in parse_document(path, display):
            element_owner.update((id(e), owner) for e in obj.elements)
            if obj.type is not None:
                type_owner.setdefault(obj.guid, owner)
            cur = merged.get(obj.guid)
            if cur is None:
                merged[obj.guid] = Object(obj.name, obj.guid, obj.type, obj.loc, list(obj.elements))
                order.append(obj.guid)
                continue
            if obj.type is not None and cur.type is not None and obj.type != cur.type:
                raise obj.loc.error(
                    f"object {obj.name!r} has type 0x{obj.type:08x} here but 0x{cur.type:08x} at {cur.loc}"
                )
            cur.type = cur.type if cur.type is not None else obj.type
            cur.elements.extend(obj.elements)

    by_name: dict[str, str] = {n.casefold(): g for n, (g, _t) in WELL_KNOWN_OBJECTS.items()}
    for obj in merged.values():
        other = by_name.get(obj.name.casefold())
        if other is not None and other != obj.guid:
            raise obj.loc.error(f"two BCD objects are called {obj.name!r} ({other} and {obj.guid})")
        by_name[obj.name.casefold()] = obj.guid
    enc = _Encoder(by_name, disk)

    store = new_store(timestamp)
    for guid in order:
        obj = merged[guid]
        if obj.type is None:
            raise obj.loc.error(
                f"object {obj.name!r} has no type; add <RawType> (e.g. 0x10200003 for an OS loader)"
            )
        base = f"Objects\\{guid}"
        store.set_value(
            base + "\\Description", "Type", 4, obj.type.to_bytes(4, "little"), owner=type_owner.get(guid)
        )
        store.ensure_key(base + "\\Elements")
        final: dict[int, tuple[int, bytes, str | None]] = {}
        for e in obj.elements:  # later documents/elements replace earlier ones
            final[e.type_id] = (*enc.encode(e), element_owner.get(id(e)))
        for type_id, (reg_type, data, owner) in final.items():
            store.set_value(f"{base}\\Elements\\{type_id:08x}", "Element", reg_type, data, owner=owner)
    return store


def compile_bcd(
    xml_paths: Sequence[str | Path],
    out_path: str | Path,
    *,
    timestamp: int,
    disk_style: str = "gpt",
    disk_id: str | int | None = None,
    partition_ids: Mapping[str, str | int] | None = None,
    displays: Sequence[str] | None = None,
) -> None:
    """Compile BCD XML documents into the store hive ``out_path`` (``\\EFI\\Microsoft\\Boot\\BCD``).

    ``partition_ids`` maps partition names to unique GUIDs (GPT; MainOS/EFIESP/MMOS default to the
    IDs ImgGen assigns) or to byte offsets (MBR, required for every partition an MBRDevice names).
    ``disk_id``, when given, must match the DiskId/DiskSignature in the XML.
    """
    store = build_bcd(
        xml_paths,
        timestamp=timestamp,
        disk_style=disk_style,
        disk_id=disk_id,
        partition_ids=partition_ids,
        displays=displays,
    )
    store.write(out_path)
