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

Microsoft's own BCD packages carry the store as registry values under ``HKEY_LOCAL_MACHINE\\BCD``
instead; :mod:`.store` merges those with the compiled XML (see there for the rule), and
:mod:`.dump` decodes a store back into objects and elements for ``ffuforge bcd dump``.

The package is split by stage: :mod:`.schema` (element types, well-known objects),
:mod:`.devices` (device blobs), :mod:`.document` (XML reading), :mod:`.compiler` (encoding and
compiling, the main part), :mod:`.store` and :mod:`.dump`; the public API is re-exported here.
"""

from __future__ import annotations

from .compiler import build_bcd, compile_bcd
from .devices import gpt_partition_device, mbr_partition_device, ramdisk_device
from .document import parse_document
from .schema import BCD_NS, ELEMENT_TYPES, GPT_PARTITION_IDS, WELL_KNOWN_OBJECTS
from .store import STORE_FILE_NAME, STORE_ROOT, add_registry_values, check_store, new_store

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
    "new_store",
    "add_registry_values",
    "check_store",
    "STORE_ROOT",
    "STORE_FILE_NAME",
]
