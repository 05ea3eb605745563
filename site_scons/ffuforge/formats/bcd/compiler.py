"""BCD stores compiled from the phone-era BootConfiguration XML that ``bcdStore`` packages carry.

The kit's imaging library (ImageStorageServiceManaged) turned each XML into registry data with
its own tables of friendly names, which no public header has; the tables below reproduce those
facts (names, object GUIDs and types, element class/format/subclass, device blob layout) as
published by public reverse engineering of that library. Element IDs agree with the documented
``BcdLibraryElementTypes``/``BcdOSLoaderElementTypes``/``BcdBootMgrElementTypes`` values
(e.g. 0x16000049 AllowPrereleaseSignatures, 0x25000004 Timeout, 0x16000069 progress animation).

Store layout: ``Description`` (KeyName=BCD00000000, System=1, TreatAsSystem=1), then
``Objects\\{guid}\\Description\\Type`` (REG_DWORD) and ``Objects\\{guid}\\Elements\\<xxxxxxxx>\\Element``.
Documents are merged in order; an object is matched by GUID (friendly names resolve to GUIDs),
a later element of the same type replaces the earlier one. Deliberate differences from pkggen:

* the store Description and every object's Type are always written (``SaveKeyToRegistry`` and
  ``IncludeDescriptions`` only shaped pkggen's partial .reg fragments; a store needs both);
* custom objects may be declared with ``<Id>`` and ``<RawType>`` (the schema allows it; the
  imaging tool only knew its own friendly names) and referenced by friendly name;
* MBR devices are resolved here from ``partition_ids`` (name → byte offset); pkggen wrote a
  placeholder that ImgGen later pointed at EFIESP or MainOS by object (boot manager, loader, …),
  ignoring the XML's partition name, which we honour;
* aliases ``Timeout`` (= Timeout Value) and ``Application Device`` (= Boot Device).

Encodings: boolean → REG_BINARY 1 byte; integer → REG_BINARY 8 bytes LE, and the text is
**always hexadecimal** (``<IntegerValue>10</IntegerValue>`` is 16, as in pkggen); integer list →
8 bytes per item; string → REG_SZ; object → REG_SZ ``{guid}`` (lower case); object list →
REG_MULTI_SZ; device → REG_BINARY: 16-byte options GUID, then the boot device (type, flags, size,
reserved). GPT/MBR partitions are PartitionEx devices (72 bytes: partition GUID or u64 byte offset,
then a hard-disk identifier padded to 40 bytes); a ramdisk is a BlockIo device wrapping a file
identifier whose parent is such a partition, with the Ramdisk Options object's GUID as options.
**Uncertain**: the ramdisk blob ends with 4 zero bytes after the path although its size fields
count 2 (reproduced as the serializer wrote it); RawType element data types are refused as pkggen
did.
"""

from __future__ import annotations

import difflib
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from construct import Bytes as CBytes
from construct import Int32ul, Int64ul, Struct

from ...errors import FFUError
from ...util import xmlsafe
from ..hive import HiveBuilder

BCD_NS = "http://schemas.microsoft.com/phone/2011/10/BootConfiguration"
STORE_ROOT = "NewStoreRoot"
STORE_FILE_NAME = "\\EFI\\Microsoft\\Boot\\BCD"

# --- element types ----------------------------------------------------------------------------

LIBRARY, APPLICATION, DEVICE_CLASS, OEM = 1, 2, 3, 5
F_DEVICE, F_STRING, F_OBJECT, F_OBJECTLIST, F_INTEGER, F_BOOLEAN, F_INTEGERLIST = 1, 2, 3, 4, 5, 6, 7
FORMAT_NAMES = {
    F_DEVICE: "device",
    F_STRING: "string",
    F_OBJECT: "object",
    F_OBJECTLIST: "object list",
    F_INTEGER: "integer",
    F_BOOLEAN: "boolean",
    F_INTEGERLIST: "integer list",
}


def element_id(cls: int, fmt: int, sub: int) -> int:
    return (cls << 28) | (fmt << 24) | sub


_TABLE = [
    # Library class (apply to every application)
    ("Boot Device", LIBRARY, F_DEVICE, 0x01),
    ("Application Path", LIBRARY, F_STRING, 0x02),
    ("Description", LIBRARY, F_STRING, 0x04),
    ("Preferred Locale", LIBRARY, F_STRING, 0x05),
    ("Inherit", LIBRARY, F_OBJECTLIST, 0x06),
    ("Recovery Sequence", LIBRARY, F_OBJECTLIST, 0x08),
    ("Auto-recovery Enabled", LIBRARY, F_BOOLEAN, 0x09),
    ("Debugger Enabled", LIBRARY, F_BOOLEAN, 0x10),
    ("Debugger Type", LIBRARY, F_INTEGER, 0x11),
    ("Debugger Port Address", LIBRARY, F_INTEGER, 0x12),
    ("Port Number", LIBRARY, F_INTEGER, 0x13),
    ("Debugger Baud Rate", LIBRARY, F_INTEGER, 0x14),
    ("Debugger USB Target Name", LIBRARY, F_STRING, 0x16),
    ("Debugger Ignore Usermode Exceptions", LIBRARY, F_BOOLEAN, 0x17),
    ("Debugger Start Policy", LIBRARY, F_INTEGER, 0x18),
    ("Debugger Bus Parameters", LIBRARY, F_STRING, 0x19),
    ("Debugger Network Host IP", LIBRARY, F_INTEGER, 0x1A),
    ("Debugger Network Port", LIBRARY, F_INTEGER, 0x1B),
    ("Debugger Network DHCP", LIBRARY, F_BOOLEAN, 0x1C),
    ("Debugger Network Key", LIBRARY, F_STRING, 0x1D),
    ("EMS Enabled", LIBRARY, F_BOOLEAN, 0x20),
    ("Load Options", LIBRARY, F_STRING, 0x30),
    ("Display Advanced Options", LIBRARY, F_BOOLEAN, 0x40),
    ("Display Option Edit", LIBRARY, F_BOOLEAN, 0x41),
    ("BSD Filepath", LIBRARY, F_STRING, 0x44),
    ("BSD Preserve Previous Entries", LIBRARY, F_BOOLEAN, 0x45),
    ("Graphics Mode Disable", LIBRARY, F_BOOLEAN, 0x46),
    ("Disable Integrity Checks", LIBRARY, F_BOOLEAN, 0x48),
    ("Allow Pre-release Signatures", LIBRARY, F_BOOLEAN, 0x49),
    ("Console Extended Input", LIBRARY, F_BOOLEAN, 0x50),
    ("Boot UX Text Disable", LIBRARY, F_BOOLEAN, 0x68),
    ("Boot UX Progress Animation Disable", LIBRARY, F_BOOLEAN, 0x69),
    ("Boot UX Fade Disable", LIBRARY, F_BOOLEAN, 0x6A),
    ("Force No Keyboard", LIBRARY, F_BOOLEAN, 0x72),
    ("Boot UX Logo Transition Time", LIBRARY, F_INTEGER, 0x79),
    ("Boot UX Logo Transition Enable", LIBRARY, F_BOOLEAN, 0x7A),
    ("Boot UX Error Screen", LIBRARY, F_INTEGER, 0x7D),
    ("Allow Flight Signatures", LIBRARY, F_BOOLEAN, 0x7E),
    # Application class (meaning depends on the application: boot manager, OS loader, …)
    ("OS Loader Type", APPLICATION, F_DEVICE, 0x01),
    ("BCD Device", APPLICATION, F_DEVICE, 0x22),
    ("System Root", APPLICATION, F_STRING, 0x02),
    ("Debug Transport Path", APPLICATION, F_STRING, 0x13),
    ("File Path", APPLICATION, F_STRING, 0x23),
    ("Manufacturing Mode", APPLICATION, F_STRING, 0x140),
    ("WpDmp Settings File", APPLICATION, F_STRING, 0x501),
    ("WpDmp Log File", APPLICATION, F_STRING, 0x502),
    ("Default Object", APPLICATION, F_OBJECT, 0x03),
    ("Resume Object", APPLICATION, F_OBJECT, 0x06),
    ("Display Order", APPLICATION, F_OBJECTLIST, 0x01),
    ("Boot Sequence", APPLICATION, F_OBJECTLIST, 0x02),
    ("Tools Display Order", APPLICATION, F_OBJECTLIST, 0x10),
    ("Timeout Value", APPLICATION, F_INTEGER, 0x04),
    ("NX Policy", APPLICATION, F_INTEGER, 0x20),
    ("PAE Policy", APPLICATION, F_INTEGER, 0x21),
    ("Remove Memory", APPLICATION, F_INTEGER, 0x31),
    ("Boot Menu Policy", APPLICATION, F_INTEGER, 0xC2),
    ("Boot Status Policy", APPLICATION, F_INTEGER, 0xE0),
    ("Hypervisor Debugger Type", APPLICATION, F_INTEGER, 0xF3),
    ("Hypervisor Debugger Port Number", APPLICATION, F_INTEGER, 0xF4),
    ("Hypervisor Debugger Baud Rate", APPLICATION, F_INTEGER, 0xF5),
    ("UFP Log Location", APPLICATION, F_INTEGER, 0x209),
    ("Memory Capture Mode Address", APPLICATION, F_INTEGER, 0x500),
    ("OEM Charging Boot Threshold", APPLICATION, F_INTEGER, 0x510),
    ("OEM Charging Mode Threshold", APPLICATION, F_INTEGER, 0x511),
    ("BootFlowAPI Global", APPLICATION, F_INTEGER, 0xAAA),
    ("Debugging Enabled", APPLICATION, F_BOOLEAN, 0x06),
    ("Detect Kernel and HAL", APPLICATION, F_BOOLEAN, 0x10),
    ("Display Boot Menu", APPLICATION, F_BOOLEAN, 0x20),
    ("WinPE Image", APPLICATION, F_BOOLEAN, 0x22),
    ("Process Custom Actions First", APPLICATION, F_BOOLEAN, 0x28),
    ("Persist Boot Sequence", APPLICATION, F_BOOLEAN, 0x31),
    ("Quiet Boot Enable", APPLICATION, F_BOOLEAN, 0x41),
    ("Kernel Debugger Enabled", APPLICATION, F_BOOLEAN, 0xA0),
    ("Kernel EMS Enabled", APPLICATION, F_BOOLEAN, 0xB0),
    ("Enable Boot Debug Policy", APPLICATION, F_BOOLEAN, 0x145),
    ("Enable Boot Order Clean", APPLICATION, F_BOOLEAN, 0x146),
    ("Enable Device Id", APPLICATION, F_BOOLEAN, 0x147),
    ("Enable FFU Loader", APPLICATION, F_BOOLEAN, 0x148),
    ("Enable IU Loader", APPLICATION, F_BOOLEAN, 0x149),
    ("Enable Mass Storage", APPLICATION, F_BOOLEAN, 0x14A),
    ("Enable RPMB Provisioning", APPLICATION, F_BOOLEAN, 0x14B),
    ("Enable Secure Boot Policy", APPLICATION, F_BOOLEAN, 0x14C),
    ("Enable Start Charge", APPLICATION, F_BOOLEAN, 0x14D),
    ("Enable Reset TPM", APPLICATION, F_BOOLEAN, 0x14E),
    ("FFU Update Mode", APPLICATION, F_BOOLEAN, 0x201),
    ("Force FFU", APPLICATION, F_BOOLEAN, 0x203),
    ("Enable Platform ID Check", APPLICATION, F_BOOLEAN, 0x204),
    ("Disable Platform ID Check", APPLICATION, F_BOOLEAN, 0x205),
    ("Allow User To Reset Phone", APPLICATION, F_BOOLEAN, 0x206),
    ("Enable UFP Mode", APPLICATION, F_BOOLEAN, 0x207),
    ("Use Mincrypl for Hashing", APPLICATION, F_BOOLEAN, 0x208),
    ("OEM Charging Mode Enabled", APPLICATION, F_BOOLEAN, 0x512),
    ("Custom Action List", APPLICATION, F_INTEGERLIST, 0x30),
    # Device class (ramdisk options object)
    ("Ramdisk SDI Device", DEVICE_CLASS, F_DEVICE, 0x03),
    ("Ramdisk SDI Path", DEVICE_CLASS, F_STRING, 0x04),
    # OEM class
    ("Flashing Action", OEM, F_OBJECTLIST, 0x01),
    ("Reset My Phone Action", OEM, F_OBJECTLIST, 0x02),
    ("Developer Menu Action", OEM, F_OBJECTLIST, 0x03),
    # ffuforge aliases
    ("Timeout", APPLICATION, F_INTEGER, 0x04),
    ("Application Device", LIBRARY, F_DEVICE, 0x01),
]
ELEMENT_TYPES: dict[str, int] = {name: element_id(c, f, s) for name, c, f, s in _TABLE}
_ELEMENTS_FOLDED = {name.casefold(): (name, eid) for name, eid in ELEMENT_TYPES.items()}

# --- well-known objects -----------------------------------------------------------------------

WELL_KNOWN_OBJECTS: dict[str, tuple[str, int]] = {
    "Windows Boot Manager": ("{9dea862c-5cdd-4e70-acc1-f32b344d4795}", 0x10100002),
    "Windows Loader": ("{7619dcc9-fafe-11d9-b411-000476eba25f}", 0x10200003),
    "Firmware BootMgr": ("{a5a30fa2-3d06-4e9f-b5f4-a01df9d1fcba}", 0x10200003),
    "Windows Phone Update OS": ("{311b88b5-9b30-491d-bad9-167ca3e2d417}", 0x10200003),
    "MMOS": ("{a5935ff2-32ba-4617-bf36-5ac314b3f9bf}", 0x10200003),
    "Mobile Startup App": ("{01de5a27-8705-40db-bad6-96fa5187d4a6}", 0x1020000A),
    "Full Flash Update": ("{0ff5f24a-3785-4aeb-b8fe-4226215b88c4}", 0x1020000A),
    "Reset My Phone App": ("{bd8951c4-eabd-4c6f-aafb-4ddb4eb0469b}", 0x1020000A),
    "Preboot Crash Dump Application": ("{012cdeb8-68fe-4fb9-be98-dbf20d98c261}", 0x1020000A),
    "MMOS Launcher App": ("{874ef8bb-d20f-4364-b545-a36e88ec40b0}", 0x1020000A),
    "Developer Menu App": ("{0d1b5e40-42f1-41e7-a690-8dd3ce23cc11}", 0x1020000A),
    "Relock App": ("{f8e167d7-bedf-41ff-a32e-27043a83cc89}", 0x1020000A),
    "HoloLens Display Initialization App": ("{17b80a47-c57b-460f-af39-9bd2d4080a26}", 0x1020000A),
    "Windows Memory Tester": ("{b2721d73-1db4-4c62-bf78-c548a880142d}", 0x10200005),
    "Windows Resume App": ("{147aa509-0358-4473-b83b-d950dda00615}", 0x10200004),
    "Debugger Settings Group": ("{4636856e-540f-4170-a130-a84776f4c654}", 0x20100000),
    "EMS Settings Group": ("{0ce4991b-e6b3-4b16-b23c-5e0d9250e5d9}", 0x20100000),
    "Global Settings Group": ("{7ea2e1ac-2e61-4728-aaa3-896d9d0a9f0e}", 0x20100000),
    "Hypervisor Settings Group": ("{7ff607e0-4395-11db-b0de-0800200c9a66}", 0x20200003),
    "Boot Loader Settings Group": ("{6efb52bf-1766-41db-a6b3-0ee5eff72bd7}", 0x20200003),
    "Ramdisk Options": ("{ae5534e0-a924-466c-b836-758539a3ee3a}", 0x30000004),
}
_OBJECTS_FOLDED = {name.casefold(): (name, guid, typ) for name, (guid, typ) in WELL_KNOWN_OBJECTS.items()}
RAMDISK_OPTIONS = uuid.UUID(WELL_KNOWN_OBJECTS["Ramdisk Options"][0])

# Unique partition GUIDs ImgGen gives the main-OS store's protected partitions (GPT).
GPT_PARTITION_IDS = {
    "mainos": "{a76b8ce2-0187-4c13-8fca-8651c9b0620a}",
    "efiesp": "{8183040a-8b44-4592-92f7-c6d9ee0560f7}",
    "mmos": "{27a47557-8243-4c8e-9d30-846844c29c52}",
}

# --- device blobs -----------------------------------------------------------------------------

BOOT_DEVICE_HEADER = Struct("type" / Int32ul, "flags" / Int32ul, "size" / Int32ul, "reserved" / Int32ul)
HARD_DISK_ID = Struct("block_io_type" / Int32ul, "partition_style" / Int32ul, "disk" / CBytes(16))
RAMDISK_ID = Struct(
    "block_io_type" / Int32ul,
    "reserved" / Int32ul,
    "image_base" / Int32ul,
    "image_size" / Int64ul,
    "image_offset" / Int32ul,
)
FILE_ID = Struct("version" / Int32ul, "length" / Int32ul, "type" / Int32ul)

DEVICE_BLOCK_IO, DEVICE_PARTITION_EX = 0, 6
BLOCK_IO_HARD_DISK, BLOCK_IO_RAMDISK = 0, 3
STYLE_GPT, STYLE_MBR = 0, 1
BLOCK_IO_ID_SIZE = 40  # hard-disk identifier slot, padded
PARTITION_DEVICE_SIZE = 16 + 16 + BLOCK_IO_ID_SIZE


def partition_device(style: int, partition: bytes, disk: bytes) -> bytes:
    """Boot device (header + PartitionEx identifier), 72 bytes."""
    hd = HARD_DISK_ID.build({"block_io_type": BLOCK_IO_HARD_DISK, "partition_style": style, "disk": disk})
    return (
        BOOT_DEVICE_HEADER.build(
            {"type": DEVICE_PARTITION_EX, "flags": 0, "size": PARTITION_DEVICE_SIZE, "reserved": 0}
        )
        + partition
        + hd.ljust(BLOCK_IO_ID_SIZE, b"\0")
    )


def gpt_partition_device(disk: uuid.UUID, partition: uuid.UUID) -> bytes:
    return partition_device(STYLE_GPT, partition.bytes_le, disk.bytes_le)


def mbr_partition_device(signature: int, offset: int) -> bytes:
    return partition_device(
        STYLE_MBR, offset.to_bytes(8, "little") + bytes(8), signature.to_bytes(4, "little") + bytes(12)
    )


def ramdisk_device(path: str, parent: bytes) -> bytes:
    """Boot device for a ramdisk loaded from ``path`` on the partition ``parent``."""
    name = path.encode("utf-16-le")
    file_len = FILE_ID.sizeof() + 2 + len(name) + len(parent)
    ident = RAMDISK_ID.build(
        {
            "block_io_type": BLOCK_IO_RAMDISK,
            "reserved": 0,
            "image_base": 0,
            "image_size": 0,
            "image_offset": 0,
        }
    )
    body = ident + FILE_ID.build({"version": 1, "length": file_len, "type": 5}) + parent + name + bytes(4)
    return (
        BOOT_DEVICE_HEADER.build(
            {"type": DEVICE_BLOCK_IO, "flags": 1, "size": 16 + len(ident) + file_len, "reserved": 0}
        )
        + body
    )


# --- XML model --------------------------------------------------------------------------------


@dataclass
class _Loc:
    file: str
    line: int | None

    def error(self, message: str) -> FFUError:
        return FFUError(message, self.file, self.line)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass
class _Element:
    name: str
    type_id: int
    value_el: object  # the lxml element inside <ValueType>
    loc: _Loc


@dataclass
class _Object:
    name: str
    guid: str | None
    type: int | None
    loc: _Loc
    elements: list[_Element] = field(default_factory=list)


def _children(el, loc_file: str, allowed: Sequence[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for c in xmlsafe.elements(el):
        if xmlsafe.namespace(c) != BCD_NS:
            raise FFUError(
                f"element <{xmlsafe.localname(c)}> is not in the BootConfiguration namespace",
                loc_file,
                c.sourceline,
            )
        name = xmlsafe.localname(c)
        if name not in allowed:
            raise FFUError(
                f"unexpected <{name}> in <{xmlsafe.localname(el)}>; expected {', '.join(allowed)}",
                loc_file,
                c.sourceline,
            )
        if name in out:
            raise FFUError(f"<{name}> appears twice in <{xmlsafe.localname(el)}>", loc_file, c.sourceline)
        out[name] = c
    return out


def _text(el) -> str:
    return (el.text or "").strip()


def _parse_guid(text: str, loc: _Loc, what: str) -> uuid.UUID:
    t = text.strip()
    if not re.fullmatch(
        r"\{?[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\}?", t
    ):
        raise loc.error(f"{what} {text!r} is not a GUID like {{01234567-89ab-cdef-0123-456789abcdef}}")
    return uuid.UUID(t.strip("{}"))


def _braced(u: uuid.UUID) -> str:
    return "{" + str(u) + "}"


def _parse_int(text: str, loc: _Loc, what: str, *, bits: int = 64) -> int:
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


def _element_type(name: str, loc: _Loc) -> int:
    hit = _ELEMENTS_FOLDED.get(name.casefold())
    if hit is None:
        close = difflib.get_close_matches(name, list(ELEMENT_TYPES), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise loc.error(f"unknown BCD element {name!r}; {hint}supported: {', '.join(sorted(ELEMENT_TYPES))}")
    return hit[1]


def parse_document(path: str | Path, display: str | None = None) -> list[_Object]:
    """Objects of one BootConfigurationDatabase document (no encoding yet)."""
    name = display or str(path)
    root = xmlsafe.parse_file(path, name)
    if xmlsafe.localname(root) != "BootConfigurationDatabase" or xmlsafe.namespace(root) != BCD_NS:
        raise FFUError(
            f'not a BCD description: expected <BootConfigurationDatabase xmlns="{BCD_NS}">',
            name,
            root.sourceline,
        )
    objects: list[_Object] = []
    top = _children(root, name, ("Objects",))
    if "Objects" not in top:
        return objects
    for obj_el in xmlsafe.elements(top["Objects"]):
        loc = _Loc(name, obj_el.sourceline)
        if xmlsafe.localname(obj_el) != "Object" or xmlsafe.namespace(obj_el) != BCD_NS:
            raise loc.error(f"unexpected <{xmlsafe.localname(obj_el)}> in <Objects>; expected <Object>")
        parts = _children(obj_el, name, ("FriendlyName", "Id", "RawType", "Elements"))
        if "FriendlyName" not in parts or not _text(parts["FriendlyName"]):
            raise loc.error("<Object> needs a <FriendlyName>")
        friendly = _text(parts["FriendlyName"])
        known = _OBJECTS_FOLDED.get(friendly.casefold())
        guid = (
            _braced(_parse_guid(_text(parts["Id"]), _Loc(name, parts["Id"].sourceline), "object Id"))
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
            text = _text(rt)
            rloc = _Loc(name, rt.sourceline)
            value = (
                _parse_int(text, rloc, "object RawType", bits=32)
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
        obj = _Object(name=known[0] if known else friendly, guid=guid, type=obj_type, loc=loc)
        if "Elements" in parts:
            for el in xmlsafe.elements(parts["Elements"]):
                obj.elements.append(_parse_element(el, name))
        objects.append(obj)
    return objects


def _decimal(text: str, loc: _Loc) -> int:
    if not re.fullmatch(r"[0-9]+", text):
        raise loc.error(f"object RawType {text!r} is not a number")
    v = int(text)
    if v >= 1 << 32:
        raise loc.error(f"object RawType {text!r} does not fit in 32 bits")
    return v


def _parse_element(el, file: str) -> _Element:
    loc = _Loc(file, el.sourceline)
    if xmlsafe.localname(el) != "Element" or xmlsafe.namespace(el) != BCD_NS:
        raise loc.error(f"unexpected <{xmlsafe.localname(el)}> in <Elements>; expected <Element>")
    parts = _children(el, file, ("DataType", "ValueType"))
    if "DataType" not in parts or "ValueType" not in parts:
        raise loc.error("<Element> needs a <DataType> and a <ValueType>")
    dt = _children(parts["DataType"], file, ("WellKnownType", "RawType"))
    if "RawType" in dt:
        raise FFUError(
            "RawType element data types are not supported (pkggen refused them too); use a <WellKnownType>",
            file,
            dt["RawType"].sourceline,
        )
    if "WellKnownType" not in dt:
        raise loc.error("<DataType> needs a <WellKnownType>")
    wkt = dt["WellKnownType"]
    wloc = _Loc(file, wkt.sourceline)
    type_name = _text(wkt)
    type_id = _element_type(type_name, wloc)
    values = xmlsafe.elements(parts["ValueType"])
    if len(values) != 1:
        raise _Loc(file, parts["ValueType"].sourceline).error("<ValueType> needs exactly one value element")
    return _Element(name=type_name, type_id=type_id, value_el=values[0], loc=wloc)


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

    def object_ref(self, text: str, loc: _Loc) -> str:
        t = text.strip()
        if t.startswith("{"):
            return _braced(_parse_guid(t, loc, "object reference"))
        guid = self.names.get(t.casefold())
        if guid is None:
            raise loc.error(
                f"unknown BCD object {t!r}; reference a well-known object, an object declared with "
                "<Id> in one of the BCD files, or a {GUID}"
            )
        return guid

    def encode(self, e: _Element) -> tuple[int, bytes]:
        v = e.value_el
        tag = xmlsafe.localname(v)
        loc = _Loc(e.loc.file, v.sourceline)
        fmt = (e.type_id >> 24) & 0xF
        got = _VALUE_FORMATS.get(tag)
        if got is None:
            raise loc.error(f"unknown value <{tag}>; use one of {', '.join(_VALUE_FORMATS)}")
        if got != fmt:
            raise loc.error(
                f"BCD element {e.name!r} ({FORMAT_NAMES[fmt]}) takes <{_FORMAT_TAGS[fmt]}>, not <{tag}>"
            )
        if fmt == F_BOOLEAN:
            t = _text(v).lower()
            if t not in ("true", "false", "1", "0"):
                raise loc.error(f"boolean {_text(v)!r} must be true or false")
            return 3, b"\x01" if t in ("true", "1") else b"\x00"
        if fmt == F_INTEGER:
            return 3, _parse_int(_text(v), loc, "integer").to_bytes(8, "little")
        if fmt == F_STRING:
            return 1, ((v.text or "") + "\0").encode("utf-16-le")
        if fmt == F_OBJECT:
            return 1, (self.object_ref(_text(v), loc) + "\0").encode("utf-16-le")
        if fmt == F_DEVICE:
            return 3, self.device(v, loc)
        items = self._string_values(v, loc)
        if fmt == F_OBJECTLIST:
            refs = [self.object_ref(text, il) for text, il in items]
            return 7, ("".join(r + "\0" for r in refs) + "\0").encode("utf-16-le")
        return 3, b"".join(_parse_int(text, il, "integer").to_bytes(8, "little") for text, il in items)

    @staticmethod
    def _string_values(v, loc: _Loc) -> list[tuple[str, _Loc]]:
        parts = _children(v, loc.file, ("StringValues",))
        if "StringValues" not in parts:
            raise loc.error(f"<{xmlsafe.localname(v)}> needs <StringValues>")
        items = []
        for s in xmlsafe.elements(parts["StringValues"]):
            if xmlsafe.localname(s) != "StringValue":
                raise FFUError(
                    f"unexpected <{xmlsafe.localname(s)}> in <StringValues>", loc.file, s.sourceline
                )
            items.append((_text(s), _Loc(loc.file, s.sourceline)))
        if not items:
            raise loc.error("<StringValues> is empty")
        return items

    def device(self, v, loc: _Loc) -> bytes:
        kids = xmlsafe.elements(v)
        if len(kids) != 1:
            raise loc.error("<DeviceValue> needs exactly one of <GPTDevice>, <MBRDevice>, <RamdiskDevice>")
        dev = kids[0]
        kind = xmlsafe.localname(dev)
        dloc = _Loc(loc.file, dev.sourceline)
        if kind == "RamdiskDevice":
            parts = _children(dev, loc.file, ("ParentDevice", "FilePath", "RamdiskOptions"))
            for need in ("ParentDevice", "FilePath"):
                if need not in parts:
                    raise dloc.error(f"<RamdiskDevice> needs <{need}>")
            parent_kids = xmlsafe.elements(parts["ParentDevice"])
            if len(parent_kids) != 1 or xmlsafe.localname(parent_kids[0]) not in ("GPTDevice", "MBRDevice"):
                raise _Loc(loc.file, parts["ParentDevice"].sourceline).error(
                    "<ParentDevice> needs exactly one <GPTDevice> or <MBRDevice>"
                )
            options = True
            if "RamdiskOptions" in parts:
                t = _text(parts["RamdiskOptions"]).lower()
                if t not in ("true", "false", "1", "0"):
                    raise _Loc(loc.file, parts["RamdiskOptions"].sourceline).error(
                        f"<RamdiskOptions> {t!r} must be true or false"
                    )
                options = t in ("true", "1")
            path = _text(parts["FilePath"])
            if not path:
                raise _Loc(loc.file, parts["FilePath"].sourceline).error("<FilePath> is empty")
            flags = RAMDISK_OPTIONS.bytes_le if options else bytes(16)
            return flags + ramdisk_device(path, self.partition(parent_kids[0], loc.file))
        if kind in ("GPTDevice", "MBRDevice"):
            return bytes(16) + self.partition(dev, loc.file)
        raise dloc.error(f"unsupported device <{kind}>; use <GPTDevice>, <MBRDevice> or <RamdiskDevice>")

    def partition(self, dev, file: str) -> bytes:
        kind = xmlsafe.localname(dev)
        loc = _Loc(file, dev.sourceline)
        style = self.disk.style
        if kind == "GPTDevice":
            if style != "gpt":
                raise loc.error("<GPTDevice> in a BCD for an MBR disk; use the MBR variant of this package")
            parts = _children(dev, file, ("DiskId", "Partition"))
            if "DiskId" not in parts or "Partition" not in parts:
                raise loc.error("<GPTDevice> needs <DiskId> and <Partition>")
            disk = _parse_guid(_text(parts["DiskId"]), _Loc(file, parts["DiskId"].sourceline), "DiskId")
            if self.disk.disk_id is not None:
                want = _parse_guid(str(self.disk.disk_id), loc, "disk id")
                if want != disk:
                    raise loc.error(f"<DiskId> {_braced(disk)} is not the disk being built ({_braced(want)})")
            pparts = _children(parts["Partition"], file, ("Name", "Id"))
            ploc = _Loc(file, parts["Partition"].sourceline)
            if len(pparts) != 1:
                raise ploc.error("<Partition> needs exactly one of <Name> or <Id>")
            if "Id" in pparts:
                part = _parse_guid(_text(pparts["Id"]), ploc, "partition Id")
            else:
                pname = _text(pparts["Name"])
                text = self.disk.partition_ids.get(pname.lower(), GPT_PARTITION_IDS.get(pname.lower()))
                if text is None:
                    raise ploc.error(
                        f"no partition GUID known for {pname!r}; pass it in partition_ids "
                        f"(known: {', '.join(sorted(set(self.disk.partition_ids) | set(GPT_PARTITION_IDS)))})"
                    )
                part = _parse_guid(str(text), ploc, f"partition id of {pname!r}")
            return gpt_partition_device(disk, part)
        if kind == "MBRDevice":
            if style != "mbr":
                raise loc.error("<MBRDevice> in a BCD for a GPT disk; use the GPT variant of this package")
            parts = _children(dev, file, ("DiskSignature", "PartitionName"))
            if "DiskSignature" not in parts or "PartitionName" not in parts:
                raise loc.error("<MBRDevice> needs <DiskSignature> and <PartitionName>")
            sig = _parse_int(
                _text(parts["DiskSignature"]),
                _Loc(file, parts["DiskSignature"].sourceline),
                "DiskSignature",
                bits=32,
            )
            if self.disk.disk_id is not None:
                want = (
                    self.disk.disk_id
                    if isinstance(self.disk.disk_id, int)
                    else _parse_int(str(self.disk.disk_id), loc, "disk signature", bits=32)
                )
                if want != sig:
                    raise loc.error(f"<DiskSignature> 0x{sig:08x} is not the disk being built (0x{want:08x})")
            pname = _text(parts["PartitionName"])
            offset = self.disk.partition_ids.get(pname.lower())
            if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
                raise _Loc(file, parts["PartitionName"].sourceline).error(
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
) -> HiveBuilder:
    """Merge the BCD XML documents (in order) into a store hive, not yet written."""
    style = disk_style.lower()
    if style not in ("gpt", "mbr"):
        raise FFUError(f"disk style {disk_style!r} must be 'gpt' or 'mbr'")
    disk = DiskContext(style, disk_id, {k.lower(): v for k, v in (partition_ids or {}).items()})
    names = list(displays) if displays is not None else [str(p) for p in xml_paths]
    if len(names) != len(xml_paths):
        raise FFUError("build_bcd: displays and xml_paths differ in length")

    merged: dict[str, _Object] = {}  # by guid
    order: list[str] = []
    for path, display in zip(xml_paths, names, strict=True):
        for obj in parse_document(path, display):
            cur = merged.get(obj.guid)
            if cur is None:
                merged[obj.guid] = _Object(obj.name, obj.guid, obj.type, obj.loc, list(obj.elements))
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

    store = HiveBuilder(STORE_ROOT, timestamp=timestamp, file_name=STORE_FILE_NAME)
    store.set_value("Description", "KeyName", 1, "BCD00000000\0".encode("utf-16-le"))
    store.set_value("Description", "System", 4, (1).to_bytes(4, "little"))
    store.set_value("Description", "TreatAsSystem", 4, (1).to_bytes(4, "little"))
    store.ensure_key("Objects")
    for guid in order:
        obj = merged[guid]
        if obj.type is None:
            raise obj.loc.error(
                f"object {obj.name!r} has no type; add <RawType> (e.g. 0x10200003 for an OS loader)"
            )
        base = f"Objects\\{guid}"
        store.set_value(base + "\\Description", "Type", 4, obj.type.to_bytes(4, "little"))
        store.ensure_key(base + "\\Elements")
        final: dict[int, tuple[int, bytes]] = {}
        for e in obj.elements:  # later documents/elements replace earlier ones
            final[e.type_id] = enc.encode(e)
        for type_id, (reg_type, data) in final.items():
            store.set_value(f"{base}\\Elements\\{type_id:08x}", "Element", reg_type, data)
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


__all__ = [
    "compile_bcd",
    "build_bcd",
    "parse_document",
    "ELEMENT_TYPES",
    "WELL_KNOWN_OBJECTS",
    "GPT_PARTITION_IDS",
    "BCD_NS",
    "gpt_partition_device",
    "mbr_partition_device",
    "ramdisk_device",
]
