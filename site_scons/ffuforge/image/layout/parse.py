"""DeviceLayout.xml / OEMDevicePlatform.xml models and the one function that places partitions.

ImgGen's exact sizing arithmetic is not published, so every placement decision lives in
:func:`compute_layout` (spec device-layout.md §4/§6) and everything downstream (partition
writers, disk assembly, FFU writer) reads the resulting :class:`~ffuforge.disklayout.DiskLayout`
instead of re-deriving offsets.

Conventions chosen where the spec leaves room (all deterministic):

* GPT unique partition GUIDs: the layout's ``Id``, else ``uuid5(<normalised disk GUID>,
  name.lower())``. All GUIDs (disk, type, id) are lower case in braces.
* Content-sized partitions (``MinFreeSectors``): payload bytes plus a file-system overhead
  estimate (:func:`estimate_used_bytes`), plus ``MinFreeSectors`` (plus the OEMDevicePlatform
  MainOS reserves for MainOS), rounded up to the partition alignment.
* ``UseAllSpace``: the space up to the last usable sector, rounded down to the alignment; it
  must keep at least :data:`MIN_USE_ALL_SPACE_BYTES`. Without an OEMDevicePlatform the disk is
  made just big enough (whole FFU chunks) for such a minimal last partition.
* MBR with more than four partitions: slots 1-3 primary, slot 4 the extended partition
  (type 0x0f); every logical partition's EBR is the sector right before it (placement reserves
  it), see :func:`mbr_plan`.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import FFUError
from ...formats.disklayout import DiskLayout, PlacedPartition
from ...util.xmlsafe import elements, localname, namespace, parse_bytes, parse_file

IMAGEUPDATE_NS = "http://schemas.microsoft.com/embedded/2004/10/ImageUpdate"
GPT_DISK_GUID = "{ae420040-13dd-41f2-ae7f-0dc35854c8d7}"  # ffu-format.md §5.3 normalisation
MBR_DISK_ID = "0xae420040"
DEFAULT_PARTITION_ALIGNMENT = 0x200000  # bytes, when DefaultPartitionByteAlignment is absent
GPT_ENTRY_ARRAY_BYTES = 128 * 128
GPT_MAX_NAME_CHARS = 36
MIN_USE_ALL_SPACE_BYTES = 8 * 1024 * 1024
MBR_EXTENDED_TYPE = "0x0f"
EFI_SYSTEM_TYPE = "{c12a7328-f81f-11d2-ba4b-00a0c93ec93b}"
BASIC_DATA_TYPE = "{ebd0a0a2-b9e5-4433-87c0-68b6b72699c7}"
FILESYSTEMS = {"NTFS": "NTFS", "FAT": "FAT", "FAT32": "FAT32"}
# IoT floors (spec §5). MainOS: the kit wants 1048576 sectors (512 MiB) free; the 2 GB sample
# layouts Microsoft shipped use 262144, so below 512 MiB is a warning and below 128 MiB an error.
IOT_EFIESP_MIN_BYTES = 32 * 1024 * 1024
IOT_MAINOS_FREE_RECOMMENDED_BYTES = 512 * 1024 * 1024
IOT_MAINOS_FREE_MIN_BYTES = 128 * 1024 * 1024
MAX_RTC_RESERVED_SECTORS = 204800

_NUM = re.compile(r"^(?:0[xX][0-9a-fA-F]+|[0-9]+)$")
_GUID = re.compile(r"^\{?([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\}?$")
_MBR_TYPE = re.compile(r"^0[xX]([0-9a-fA-F]{1,2})$")

_PART_NUMBERS = (
    "TotalSectors",
    "MinFreeSectors",
    "ByteAlignment",
    "ClusterSize",
    "OffsetInSectors",
    "SectorAlignment",
)
_PART_BOOLS = (
    "UseAllSpace",
    "Bootable",
    "RequiredToFlash",
    "AttachDriveLetter",
    "ReadOnly",
    "Hidden",
    "PrimaryPartition",
    "ServicePartition",
    "SingleSBL",
)
_PART_TEXT = ("Name", "Type", "Id", "FileSystem")
_ATTRIBUTE_FLAGS = (
    "AttachDriveLetter",
    "ReadOnly",
    "Hidden",
    "PrimaryPartition",
    "ServicePartition",
    "SingleSBL",
)


# --------------------------------------------------------------------------------------- models


@dataclass(frozen=True)
class Partition:
    """One `<Partition>` as written (types/GUIDs normalised to lower case)."""

    name: str
    type: str
    line: int | None = None
    id: str | None = None
    filesystem: str | None = None
    total_sectors: int | None = None
    min_free_sectors: int | None = None
    use_all_space: bool = False
    byte_alignment: int | None = None
    cluster_size: int | None = None
    offset_in_sectors: int | None = None
    sector_alignment: int | None = None
    bootable: bool = False
    required_to_flash: bool = False
    attributes: dict[str, bool] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict, compare=False)

    def line_of(self, element: str) -> int | None:
        return self.lines.get(element, self.line)


@dataclass(frozen=True)
class DeviceLayout:
    display: str
    style: str  # 'gpt' | 'mbr'
    partitions: tuple[Partition, ...]
    sector_size: int = 512
    chunk_size_kib: int = 128
    default_alignment: int = DEFAULT_PARTITION_ALIGNMENT
    version_tag: str | None = None
    warnings: tuple[str, ...] = ()
    lines: dict[str, int] = field(default_factory=dict, compare=False)

    @property
    def is_iot(self) -> bool:
        return (self.version_tag or "").lower() == "iotuap"

    def find(self, name: str) -> Partition | None:
        for p in self.partitions:
            if p.name.lower() == name.lower():
                return p
        return None


@dataclass(frozen=True)
class DevicePlatform:
    display: str
    min_sector_count: int
    platform_ids: tuple[str, ...]
    compressed_partitions: tuple[str, ...] = ()
    additional_mainos_free_sectors: int = 0
    mainos_rtc_reserved_sectors: int = 0
    lines: dict[str, int] = field(default_factory=dict, compare=False)


# -------------------------------------------------------------------------------------- parsing


def _parse(path_or_bytes: str | Path | bytes, display: str | None, default: str):
    if isinstance(path_or_bytes, bytes | bytearray):
        return parse_bytes(bytes(path_or_bytes), display or default), display or default
    name = display or str(path_or_bytes)
    return parse_file(path_or_bytes, name), name


def _check_root(root, expected: str, display: str) -> None:
    if localname(root) != expected:
        raise FFUError(
            f"root element is <{localname(root)}>, expected <{expected}>", display, root.sourceline
        )
    ns = namespace(root)
    if ns not in (None, IMAGEUPDATE_NS):
        raise FFUError(
            f"<{expected}> is in namespace {ns!r}; expected {IMAGEUPDATE_NS}", display, root.sourceline
        )


def _text(el, display: str, *, required: bool = True) -> str:
    text = (el.text or "").strip()
    if required and not text:
        raise FFUError(f"<{localname(el)}> is empty", display, el.sourceline)
    if len(elements(el)):
        raise FFUError(f"<{localname(el)}> must contain text, not elements", display, el.sourceline)
    return text


def _number(el, display: str) -> int:
    text = _text(el, display)
    if not _NUM.match(text):
        raise FFUError(
            f"<{localname(el)}> value {text!r} is not a number (decimal or 0x hex)", display, el.sourceline
        )
    return int(text, 0) if text[:2].lower() == "0x" else int(text, 10)


def _bool(el, display: str) -> bool:
    text = _text(el, display).lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise FFUError(
        f"<{localname(el)}> value {text!r} is not a boolean (true or false)", display, el.sourceline
    )


def _children(parent, display: str, known: Iterable[str], what: str) -> dict:
    known = tuple(known)
    seen: dict = {}
    for child in elements(parent):
        name = localname(child)
        if name not in known:
            raise FFUError(
                f"unknown element <{name}> in <{what}>; expected one of {', '.join(known)}",
                display,
                child.sourceline,
            )
        if name in seen:
            raise FFUError(
                f"<{name}> given twice in <{what}> (first on line {seen[name].sourceline})",
                display,
                child.sourceline,
            )
        seen[name] = child
    return seen


def _guid(text: str) -> str | None:
    m = _GUID.match(text)
    return "{" + m.group(1).lower() + "}" if m else None


_PART_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_. -]*$")


def _partition(el, display: str, sector_size: int) -> Partition:
    ch = _children(el, display, _PART_TEXT + _PART_NUMBERS + _PART_BOOLS, "Partition")
    lines = {k: v.sourceline for k, v in ch.items()}
    if "Name" not in ch:
        raise FFUError("<Partition> has no <Name>", display, el.sourceline)
    name = _text(ch["Name"], display)
    if not _PART_NAME.match(name):  # it names the partition's image and manifest under build/
        raise FFUError(
            f"partition name {name!r} may only contain letters, digits, '_', '-', '.' and spaces, "
            "and must start with a letter or digit",
            display,
            ch["Name"].sourceline,
        )
    if "Type" not in ch:
        raise FFUError(f"partition {name} has no <Type>", display, el.sourceline)
    raw_type = _text(ch["Type"], display)
    gtype = _guid(raw_type)
    m = _MBR_TYPE.match(raw_type)
    if gtype:
        ptype = gtype
    elif m:
        ptype = f"0x{int(m.group(1), 16):02x}"
    else:
        raise FFUError(
            f"partition {name}: <Type> {raw_type!r} is neither an MBR type byte (0xNN) nor a "
            "GPT type GUID ({…})",
            display,
            ch["Type"].sourceline,
        )
    kw: dict = {}
    for key in _PART_NUMBERS:
        if key in ch:
            kw[key] = _number(ch[key], display)
    flags = {key: _bool(ch[key], display) for key in _PART_BOOLS if key in ch}
    pid = None
    if "Id" in ch:
        pid = _guid(_text(ch["Id"], display))
        if pid is None:
            raise FFUError(f"partition {name}: <Id> is not a GUID", display, ch["Id"].sourceline)
    fs = None
    if "FileSystem" in ch:
        text = _text(ch["FileSystem"], display)
        fs = FILESYSTEMS.get(text.upper())
        if fs is None:
            raise FFUError(
                f"partition {name}: unknown <FileSystem> {text!r}; use NTFS, FAT or FAT32",
                display,
                ch["FileSystem"].sourceline,
            )
    use_all = flags.pop("UseAllSpace", False)
    modes = [
        k
        for k, on in (
            ("TotalSectors", "TotalSectors" in kw),
            ("MinFreeSectors", "MinFreeSectors" in kw),
            ("UseAllSpace", use_all),
        )
        if on
    ]
    if len(modes) != 1:
        got = " and ".join(modes) if modes else "none"
        raise FFUError(
            f"partition {name} needs exactly one of <TotalSectors>, <MinFreeSectors>, "
            f"<UseAllSpace>true</UseAllSpace> (got {got})",
            display,
            el.sourceline,
        )
    if "TotalSectors" in kw and kw["TotalSectors"] == 0:
        raise FFUError(
            f"partition {name}: <TotalSectors> must be greater than 0", display, lines["TotalSectors"]
        )
    if "OffsetInSectors" in kw and "TotalSectors" not in kw:
        raise FFUError(
            f"partition {name}: <OffsetInSectors> needs a fixed <TotalSectors>",
            display,
            lines["OffsetInSectors"],
        )
    for key in ("ByteAlignment",):
        if key in kw and (kw[key] == 0 or kw[key] % sector_size):
            raise FFUError(
                f"partition {name}: <{key}> {kw[key]:#x} must be a non-zero multiple of the "
                f"sector size {sector_size}",
                display,
                lines[key],
            )
    if "SectorAlignment" in kw and kw["SectorAlignment"] == 0:
        raise FFUError(
            f"partition {name}: <SectorAlignment> must be greater than 0", display, lines["SectorAlignment"]
        )
    if "ClusterSize" in kw:
        c = kw["ClusterSize"]
        if c < sector_size or c & (c - 1) or c > 2 * 1024 * 1024:
            raise FFUError(
                f"partition {name}: <ClusterSize> {c:#x} must be a power of two between the sector "
                "size and 2 MiB",
                display,
                lines["ClusterSize"],
            )
        if fs is None:
            raise FFUError(
                f"partition {name}: <ClusterSize> needs a <FileSystem>", display, lines["ClusterSize"]
            )
    return Partition(
        name=name,
        type=ptype,
        line=el.sourceline,
        id=pid,
        filesystem=fs,
        total_sectors=kw.get("TotalSectors"),
        min_free_sectors=kw.get("MinFreeSectors"),
        use_all_space=use_all,
        byte_alignment=kw.get("ByteAlignment"),
        cluster_size=kw.get("ClusterSize"),
        offset_in_sectors=kw.get("OffsetInSectors"),
        sector_alignment=kw.get("SectorAlignment"),
        bootable=flags.pop("Bootable", False),
        required_to_flash=flags.pop("RequiredToFlash", False),
        attributes={k: flags[k] for k in _ATTRIBUTE_FLAGS if k in flags},
        lines=lines,
    )


def load_device_layout(path_or_bytes: str | Path | bytes, display: str | None = None) -> DeviceLayout:
    """Parse and validate a DeviceLayout.xml (structure and IoT rules; sizes need compute_layout)."""
    root, display = _parse(path_or_bytes, display, "DeviceLayout.xml")
    _check_root(root, "DeviceLayout", display)
    ch = _children(
        root,
        display,
        ("Partitions", "SectorSize", "ChunkSize", "DefaultPartitionByteAlignment", "VersionTag"),
        "DeviceLayout",
    )
    lines = {k: v.sourceline for k, v in ch.items()}
    lines["DeviceLayout"] = root.sourceline
    sector = _number(ch["SectorSize"], display) if "SectorSize" in ch else 512
    if sector < 512 or sector & (sector - 1):
        raise FFUError(
            f"<SectorSize> {sector} must be a power of two of at least 512", display, lines["SectorSize"]
        )
    chunk = _number(ch["ChunkSize"], display) if "ChunkSize" in ch else 128
    if chunk == 0 or (chunk * 1024) % sector:
        raise FFUError(
            f"<ChunkSize> {chunk} KiB must be a non-zero multiple of the sector size",
            display,
            lines["ChunkSize"],
        )
    align = (
        _number(ch["DefaultPartitionByteAlignment"], display)
        if "DefaultPartitionByteAlignment" in ch
        else DEFAULT_PARTITION_ALIGNMENT
    )
    if align == 0 or align % sector:
        raise FFUError(
            f"<DefaultPartitionByteAlignment> {align:#x} must be a non-zero multiple of the sector "
            f"size {sector}",
            display,
            lines["DefaultPartitionByteAlignment"],
        )
    tag = _text(ch["VersionTag"], display) if "VersionTag" in ch else None
    if "Partitions" not in ch:
        raise FFUError("<DeviceLayout> has no <Partitions>", display, root.sourceline)
    parts_el = ch["Partitions"]
    parts = []
    for el in elements(parts_el):
        if localname(el) != "Partition":
            raise FFUError(
                f"unknown element <{localname(el)}> in <Partitions>; expected <Partition>",
                display,
                el.sourceline,
            )
        parts.append(_partition(el, display, sector))
    if not parts:
        raise FFUError("<Partitions> lists no partition", display, parts_el.sourceline)
    layout = DeviceLayout(
        display=display,
        style="gpt" if parts[0].type.startswith("{") else "mbr",
        partitions=tuple(parts),
        sector_size=sector,
        chunk_size_kib=chunk,
        default_alignment=align,
        version_tag=tag,
        lines=lines,
    )
    warnings = _validate(layout)
    return dataclasses.replace(layout, warnings=tuple(warnings))


def _validate(layout: DeviceLayout) -> list[str]:
    """Structural and IoT rules; raises on errors, returns warnings."""
    d = layout.display
    S = layout.sector_size
    warnings: list[str] = []
    seen: dict[str, Partition] = {}
    ids: dict[str, Partition] = {}
    first = layout.partitions[0]
    for i, p in enumerate(layout.partitions):
        style = "gpt" if p.type.startswith("{") else "mbr"
        if style != layout.style:
            raise FFUError(
                f"partition {p.name}: <Type> {p.type} is {style.upper()}-style but partition "
                f"{first.name} (line {first.line}) is {layout.style.upper()}-style; use one table style",
                d,
                p.line_of("Type"),
            )
        key = p.name.lower()
        if key in seen:
            raise FFUError(
                f"partition name {p.name} is used twice (also on line {seen[key].line}; names are "
                "case-insensitive)",
                d,
                p.line_of("Name"),
            )
        seen[key] = p
        if p.use_all_space and i != len(layout.partitions) - 1:
            others = [q for q in layout.partitions if q.use_all_space and q is not p]
            if others:
                raise FFUError(
                    f"partitions {p.name} and {others[0].name} both have UseAllSpace; only one (the "
                    "last) partition can take the remaining space",
                    d,
                    others[0].line_of("UseAllSpace"),
                )
            raise FFUError(
                f"partition {p.name} has UseAllSpace but is not the last partition; move it to the "
                "end of <Partitions>",
                d,
                p.line_of("UseAllSpace"),
            )
        if layout.style == "gpt":
            if len(p.name) > GPT_MAX_NAME_CHARS:
                raise FFUError(
                    f"partition name {p.name} is longer than {GPT_MAX_NAME_CHARS} characters (GPT limit)",
                    d,
                    p.line_of("Name"),
                )
            if p.id:
                if p.id in ids:
                    raise FFUError(
                        f"partition {p.name}: <Id> {p.id} is also used by {ids[p.id].name}",
                        d,
                        p.line_of("Id"),
                    )
                ids[p.id] = p
        else:
            if p.id:
                raise FFUError(
                    f"partition {p.name}: <Id> only applies to GPT partitions; remove it", d, p.line_of("Id")
                )
            if p.type in ("0x00", "0x05", "0x0f", "0xee", "0x85"):
                raise FFUError(
                    f"partition {p.name}: MBR <Type> {p.type} is reserved for the partition table "
                    "itself; use the file-system type (0x07, 0x0c, …)",
                    d,
                    p.line_of("Type"),
                )
    if layout.style == "gpt" and len(layout.partitions) > GPT_ENTRY_ARRAY_BYTES // 128:
        raise FFUError(
            f"{len(layout.partitions)} partitions do not fit the 128-entry GPT",
            d,
            layout.lines.get("Partitions"),
        )
    if not layout.is_iot:
        return warnings
    # IoT rules (spec §5) — only with <VersionTag>IoTUAP</VersionTag>, as the kit does.
    tagline = layout.lines.get("VersionTag")
    if S != 512:
        raise FFUError(
            f"<SectorSize> {S}: IoTUAP layouts require 512", d, layout.lines.get("SectorSize", tagline)
        )
    if layout.chunk_size_kib != 128:
        raise FFUError(
            f"<ChunkSize> {layout.chunk_size_kib}: IoTUAP layouts require 128",
            d,
            layout.lines.get("ChunkSize", tagline),
        )
    for name in ("EFIESP", "MainOS", "Data"):
        if layout.find(name) is None:
            raise FFUError(
                f"IoTUAP layouts need a {name} partition (EFIESP, MainOS and Data are mandatory)",
                d,
                layout.lines.get("Partitions"),
            )
    esp = layout.find("EFIESP")
    if esp.filesystem not in ("FAT", "FAT32"):
        raise FFUError("partition EFIESP must have <FileSystem>FAT</FileSystem>", d, esp.line)
    if esp.total_sectors is None:
        raise FFUError("partition EFIESP must have a fixed <TotalSectors> (65536 = 32 MiB)", d, esp.line)
    if esp.total_sectors * S < IOT_EFIESP_MIN_BYTES:
        raise FFUError(
            f"partition EFIESP has {esp.total_sectors} sectors; IoT needs at least "
            f"{IOT_EFIESP_MIN_BYTES // S} (32 MiB)",
            d,
            esp.line_of("TotalSectors"),
        )
    if not esp.required_to_flash:
        warnings.append(f"{d}:{esp.line}: partition EFIESP is not RequiredToFlash (IoT layouts set it)")
    main = layout.find("MainOS")
    if main.filesystem != "NTFS":
        raise FFUError("partition MainOS must have <FileSystem>NTFS</FileSystem>", d, main.line)
    if main.min_free_sectors is None:
        raise FFUError("partition MainOS must be sized by <MinFreeSectors> (1048576 = 512 MiB)", d, main.line)
    free = main.min_free_sectors * S
    if free < IOT_MAINOS_FREE_MIN_BYTES:
        raise FFUError(
            f"partition MainOS: <MinFreeSectors> {main.min_free_sectors} is below the minimum "
            f"{IOT_MAINOS_FREE_MIN_BYTES // S}; use 1048576 (512 MiB)",
            d,
            main.line_of("MinFreeSectors"),
        )
    if free < IOT_MAINOS_FREE_RECOMMENDED_BYTES:
        warnings.append(
            f"{d}:{main.line_of('MinFreeSectors')}: MainOS <MinFreeSectors> "
            f"{main.min_free_sectors} is below the kit's {IOT_MAINOS_FREE_RECOMMENDED_BYTES // S}"
        )
    data = layout.find("Data")
    if data.filesystem != "NTFS":
        raise FFUError("partition Data must have <FileSystem>NTFS</FileSystem>", d, data.line)
    if not data.use_all_space:
        raise FFUError("partition Data must have <UseAllSpace>true</UseAllSpace>", d, data.line)
    return warnings


def load_device_platform(path_or_bytes: str | Path | bytes, display: str | None = None) -> DevicePlatform:
    root, display = _parse(path_or_bytes, display, "OEMDevicePlatform.xml")
    _check_root(root, "OEMDevicePlatform", display)
    ch = _children(
        root,
        display,
        (
            "MinSectorCount",
            "DevicePlatformIDs",
            "DevicePlatformID",
            "CompressedPartitions",
            "AdditionalMainOSFreeSectorsRequest",
            "MainOSRTCDataReservedSectors",
        ),
        "OEMDevicePlatform",
    )
    lines = {k: v.sourceline for k, v in ch.items()}
    if "MinSectorCount" not in ch:
        raise FFUError(
            "<OEMDevicePlatform> has no <MinSectorCount> (the disk size in sectors)", display, root.sourceline
        )
    count = _number(ch["MinSectorCount"], display)
    if count == 0:
        raise FFUError("<MinSectorCount> must be greater than 0", display, lines["MinSectorCount"])
    if ("DevicePlatformIDs" in ch) == ("DevicePlatformID" in ch):
        raise FFUError(
            "give the platform id(s) as either <DevicePlatformIDs><ID>… or <DevicePlatformID>, "
            "exactly one of them",
            display,
            root.sourceline,
        )
    if "DevicePlatformID" in ch:
        ids = [_text(ch["DevicePlatformID"], display)]
        id_lines = [ch["DevicePlatformID"].sourceline]
    else:
        ids, id_lines = [], []
        for el in elements(ch["DevicePlatformIDs"]):
            if localname(el) != "ID":
                raise FFUError(
                    f"unknown element <{localname(el)}> in <DevicePlatformIDs>; expected <ID>",
                    display,
                    el.sourceline,
                )
            ids.append(_text(el, display))
            id_lines.append(el.sourceline)
        if not ids:
            raise FFUError("<DevicePlatformIDs> lists no <ID>", display, lines["DevicePlatformIDs"])
    for pid, line in zip(ids, id_lines, strict=True):
        if not pid.isascii() or any(ord(c) < 0x20 for c in pid):
            raise FFUError(f"platform id {pid!r} must be printable ASCII", display, line)
    if sum(len(x) + 1 for x in ids) > 191:
        raise FFUError(
            "platform ids are longer than the FFU store header allows (191 bytes with NULs)",
            display,
            id_lines[-1],
        )
    compressed = []
    if "CompressedPartitions" in ch:
        for el in elements(ch["CompressedPartitions"]):
            if localname(el) != "Name":
                raise FFUError(
                    f"unknown element <{localname(el)}> in <CompressedPartitions>; expected <Name>",
                    display,
                    el.sourceline,
                )
            compressed.append(_text(el, display))
    extra = (
        _number(ch["AdditionalMainOSFreeSectorsRequest"], display)
        if ("AdditionalMainOSFreeSectorsRequest" in ch)
        else 0
    )
    rtc = _number(ch["MainOSRTCDataReservedSectors"], display) if "MainOSRTCDataReservedSectors" in ch else 0
    if rtc > MAX_RTC_RESERVED_SECTORS:
        raise FFUError(
            f"<MainOSRTCDataReservedSectors> {rtc} exceeds {MAX_RTC_RESERVED_SECTORS} (100 MiB)",
            display,
            lines["MainOSRTCDataReservedSectors"],
        )
    return DevicePlatform(
        display=display,
        min_sector_count=count,
        platform_ids=tuple(ids),
        compressed_partitions=tuple(compressed),
        additional_mainos_free_sectors=extra,
        mainos_rtc_reserved_sectors=rtc,
        lines=lines,
    )


# --------------------------------------------------------------------------------------- sizing


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _align_up(x: int, a: int) -> int:
    return _ceil_div(x, a) * a


def estimate_used_bytes(
    filesystem: str | None,
    content_bytes: int,
    *,
    cluster_size: int | None = None,
    files: int | None = None,
    volume_bytes: int | None = None,
) -> int:
    """Bytes a partition needs for `content_bytes` of payload, file-system overhead included.

    A margin, not a measurement: per file half a cluster of slack (+1 KiB MFT record on NTFS), or
    1/16 of the payload when the file count is unknown; NTFS metadata ≈ 0.5 % of the volume
    (mkntfs measured) + 4 MiB; FAT: two FATs + 1 MiB. Raw partitions: the bytes as they are.
    """
    if filesystem is None:
        return content_bytes
    if content_bytes == 0 and not files:
        slack = 0
    elif files is None:
        slack = content_bytes // 16
    else:
        per = (cluster_size or 4096) // 2 + (1024 if filesystem == "NTFS" else 64)
        slack = files * per
    data = content_bytes + slack
    if filesystem == "NTFS":
        vol = volume_bytes if volume_bytes is not None else data
        return data + vol // 200 + 4 * 1024 * 1024
    cluster = cluster_size or 4096
    return data + 2 * 4 * _ceil_div(volume_bytes or data, cluster) + 1024 * 1024


def check_partitions(layout: DeviceLayout, names: Iterable) -> list[str]:
    """Canonical layout names for package target partitions; FFUError for one the layout lacks.

    `names` holds partition names or ``(name, file, line)`` tuples locating the reference.
    """
    out = []
    for item in names:
        name, file, line = (item, None, None) if isinstance(item, str) else item
        p = layout.find(name)
        if p is None:
            have = ", ".join(q.name for q in layout.partitions)
            raise FFUError(
                f"partition {name} is targeted by a package but {layout.display} has no such "
                f"partition (it has {have})",
                file,
                line,
            )
        out.append(p.name)
    return out


def _alignment_sectors(layout: DeviceLayout, p: Partition) -> int:
    S = layout.sector_size
    if p.byte_alignment:
        return p.byte_alignment // S
    if p.sector_alignment:
        return p.sector_alignment
    return layout.default_alignment // S


def _gpt_table_sectors(S: int) -> int:
    return _ceil_div(GPT_ENTRY_ARRAY_BYTES, S)


def compute_layout(
    layout: DeviceLayout,
    platform: DevicePlatform | None,
    content_bytes: dict[str, int] | None = None,
    *,
    content_files: dict[str, int] | None = None,
) -> DiskLayout:
    """Size and place every partition (spec device-layout.md §4, §6).

    `content_bytes`: payload bytes staged into each partition (raw: image size); `content_files`
    optionally refines the file-system overhead estimate. Without `platform` the disk is the
    smallest whole number of FFU chunks that holds everything.
    """
    d = layout.display
    S = layout.sector_size
    chunk = layout.chunk_size_kib * 1024
    chunk_sectors = chunk // S
    content = dict(content_bytes or {})
    files = dict(content_files or {})
    check_partitions(layout, [(n, d, None) for n in list(content) + list(files)])
    content = {layout.find(k).name.lower(): v for k, v in content.items()}
    files = {layout.find(k).name.lower(): v for k, v in files.items()}
    for k, v in content.items():
        if v < 0:
            raise FFUError(f"content size for {k} is negative")

    if layout.style == "gpt":
        table = _gpt_table_sectors(S)
        first_usable, tail = 2 + table, table + 1
    else:
        first_usable, tail = 1, 0
    N = platform.min_sector_count if platform else None
    pd = platform.display if platform else d
    pline = platform.lines.get("MinSectorCount") if platform else None
    if N is not None and (N * S) % chunk:
        raise FFUError(
            f"<MinSectorCount> {N} × {S} bytes is not a multiple of the {chunk // 1024} KiB FFU "
            f"block; use a multiple of {chunk_sectors} sectors (e.g. {_align_up(N, chunk_sectors)})",
            pd,
            pline,
        )
    if N is not None and N <= first_usable + tail:
        raise FFUError(f"<MinSectorCount> {N} is too small for any partition", pd, pline)
    logical_from = 3 if layout.style == "mbr" and len(layout.partitions) > 4 else None
    min_last = _ceil_div(MIN_USE_ALL_SPACE_BYTES, S)

    placed: list[tuple[Partition, int, int]] = []
    cursor = first_usable
    prev = "the partition table"
    N_eff = N
    for i, p in enumerate(layout.partitions):
        align = _alignment_sectors(layout, p)
        ebr = 1 if logical_from is not None and i >= logical_from else 0
        if p.offset_in_sectors is not None:
            start = p.offset_in_sectors
            if start - ebr < cursor:
                need = " (plus one sector for its EBR)" if ebr else ""
                raise FFUError(
                    f"partition {p.name}: <OffsetInSectors> {start} overlaps {prev}, which ends at "
                    f"sector {cursor - 1}{need}",
                    d,
                    p.line_of("OffsetInSectors"),
                )
        else:
            start = _align_up(cursor + ebr, align)
        key = p.name.lower()
        have = content.get(key, 0)
        if p.total_sectors is not None:
            size = p.total_sectors
            need = (
                estimate_used_bytes(
                    p.filesystem,
                    have,
                    cluster_size=p.cluster_size,
                    files=files.get(key),
                    volume_bytes=size * S,
                )
                if (have or files.get(key))
                else 0
            )
            if need > size * S:
                what = "bytes" if p.filesystem is None else "bytes with file-system overhead"
                raise FFUError(
                    f"partition {p.name}: content needs about {need} {what} but the partition holds "
                    f"{size * S} ({size} sectors); enlarge <TotalSectors> or remove content",
                    d,
                    p.line_of("TotalSectors"),
                )
        elif p.min_free_sectors is not None:
            used = estimate_used_bytes(
                p.filesystem,
                have,
                cluster_size=p.cluster_size,
                files=files.get(key),
                volume_bytes=have + p.min_free_sectors * S,
            )
            size = _ceil_div(used, S) + p.min_free_sectors
            if platform and key == "mainos":
                size += platform.additional_mainos_free_sectors + platform.mainos_rtc_reserved_sectors
            size = _align_up(size, align)
        else:  # UseAllSpace: validated to be the last partition
            if N_eff is None:
                want = _align_up(max(min_last, align), align)
                N_eff = _align_up(start + want + tail, chunk_sectors)
            last_usable = N_eff - 1 - tail
            size = ((last_usable - start + 1) // align) * align if last_usable >= start else 0
            need = (
                estimate_used_bytes(
                    p.filesystem,
                    have,
                    cluster_size=p.cluster_size,
                    files=files.get(key),
                    volume_bytes=max(size, 0) * S,
                )
                if have
                else 0
            )
            if size < min_last or size * S < need:
                want = max(min_last * S, need)
                raise FFUError(
                    f"the layout does not fit the disk: partition {p.name} (UseAllSpace) would get "
                    f"{max(size, 0)} sectors starting at {start}, needs at least {_ceil_div(want, S)}; "
                    f"MinSectorCount {N_eff} is too small or the partitions before it too large",
                    pd,
                    pline,
                )
        placed.append((p, start, size))
        cursor = start + size
        prev = f"partition {p.name}"
    if N_eff is None:
        N_eff = _align_up(cursor + tail, chunk_sectors)
    if cursor > N_eff - tail:
        raise FFUError(
            f"the layout does not fit the disk: its partitions end at sector {cursor - 1} but "
            f"MinSectorCount {N_eff} leaves sectors up to {N_eff - 1 - tail} usable",
            pd,
            pline,
        )
    if layout.style == "mbr" and N_eff > 0xFFFFFFFF:
        raise FFUError(
            f"MBR disks cannot address {N_eff} sectors (32-bit limit); use a GPT layout", pd, pline
        )

    parts = []
    ns = uuid.UUID(GPT_DISK_GUID)
    for p, start, size in placed:
        pid = None
        if layout.style == "gpt":
            pid = p.id or "{" + str(uuid.uuid5(ns, p.name.lower())) + "}"
        parts.append(
            PlacedPartition(
                name=p.name,
                type=p.type,
                first_sector=start,
                sector_count=size,
                filesystem=p.filesystem,
                cluster_size=p.cluster_size,
                id=pid,
                bootable=p.bootable,
                required_to_flash=p.required_to_flash,
                attributes=dict(p.attributes),
            )
        )
    return DiskLayout(
        style=layout.style,
        sector_size=S,
        chunk_size=chunk,
        total_sectors=N_eff,
        partitions=tuple(parts),
        platform_ids=platform.platform_ids if platform else (),
        disk_id=GPT_DISK_GUID if layout.style == "gpt" else MBR_DISK_ID,
    )


@dataclass(frozen=True)
class MbrPlan:
    """Where MBR table entries go: slots 1-4 of sector 0, then the EBR chain."""

    primary: tuple[PlacedPartition, ...]
    extended_start: int | None = None  # first EBR sector (start of the extended partition)
    extended_sectors: int = 0
    logical: tuple[tuple[int, PlacedPartition], ...] = ()  # (EBR sector, partition)


def mbr_plan(disk: DiskLayout) -> MbrPlan:
    """The MBR slot assignment :func:`compute_layout` reserved space for."""
    if disk.style != "mbr":
        raise ValueError("mbr_plan needs an MBR layout")
    parts = disk.partitions
    if len(parts) <= 4:
        return MbrPlan(primary=parts)
    logical = tuple((p.first_sector - 1, p) for p in parts[3:])
    start = logical[0][0]
    last = parts[-1]
    return MbrPlan(
        primary=parts[:3],
        extended_start=start,
        extended_sectors=last.first_sector + last.sector_count - start,
        logical=logical,
    )


# -------------------------------------------------------------------------------------- display


def _human(n: int) -> str:
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n} B"


def format_layout(disk: DiskLayout) -> str:
    """Human-readable table for `ffuforge layout`."""
    S = disk.sector_size
    head = (
        f"{disk.style.upper()} disk {disk.disk_id}: {disk.total_sectors} sectors × {S} B = "
        f"{_human(disk.total_bytes)}, FFU chunk {disk.chunk_size // 1024} KiB"
    )
    if disk.platform_ids:
        head += f", platform {';'.join(disk.platform_ids)}"
    rows = [("#", "name", "type", "start", "sectors", "size", "fs", "cluster", "flags")]
    for i, p in enumerate(disk.partitions, 1):
        flags = []
        if p.bootable:
            flags.append("bootable")
        if p.required_to_flash:
            flags.append("flash")
        for k, v in sorted(p.attributes.items()):
            flags.append(k if v else f"!{k}")
        rows.append(
            (
                str(i),
                p.name,
                p.type,
                str(p.first_sector),
                str(p.sector_count),
                _human(p.sector_count * S),
                p.filesystem or "raw",
                str(p.cluster_size) if p.cluster_size else "-",
                ",".join(flags) or "-",
            )
        )
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    right = {0, 3, 4, 5, 7}
    lines = [head]
    for r in rows:
        lines.append(
            "  ".join(
                v.rjust(w) if c in right else v.ljust(w)
                for c, (v, w) in enumerate(zip(r, widths, strict=True))
            ).rstrip()
        )
    end = max((p.first_sector + p.sector_count for p in disk.partitions), default=0)
    lines.append(f"unallocated after the last partition: {disk.total_sectors - end} sectors")
    return "\n".join(lines) + "\n"
