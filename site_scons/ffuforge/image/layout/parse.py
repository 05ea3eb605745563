"""Parsing DeviceLayout.xml and OEMDevicePlatform.xml into the layout models.

Element and value checks happen here, with file and line; the layout-wide rules (one table
style, unique names, IoT requirements) are in :mod:`.rules`, sizing in :mod:`.sizing`.

Both schemas put everything in elements: any attribute (other than xmlns and xsi:*) is an error, an
unknown element one with a did-you-mean hint. None of the corpus's 44 DeviceLayouts and 39
OEMDevicePlatforms carries an attribute.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from pathlib import Path

from ...errors import ConfigError
from ...util.xmlsafe import check_attributes, elements, localname, namespace, parse_bytes, parse_file, suggest
from .model import (
    DEFAULT_PARTITION_ALIGNMENT,
    FILESYSTEMS,
    IMAGEUPDATE_NS,
    MAX_RTC_RESERVED_SECTORS,
    DeviceLayout,
    DevicePlatform,
    Partition,
)
from .rules import validate

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


# -------------------------------------------------------------------------------------- parsing


def _parse(path_or_bytes: str | Path | bytes, display: str | None, default: str):
    if isinstance(path_or_bytes, bytes | bytearray):
        name = display or default
        root = parse_bytes(bytes(path_or_bytes), name)
    else:
        name = display or str(path_or_bytes)
        root = parse_file(path_or_bytes, name)
    for el in root.iter():
        if isinstance(el.tag, str):
            check_attributes(el, (), name)
    return root, name


def _check_root(root, expected: str, display: str) -> None:
    if localname(root) != expected:
        raise ConfigError(
            f"root element is <{localname(root)}>, expected <{expected}>", display, root.sourceline
        )
    ns = namespace(root)
    if ns not in (None, IMAGEUPDATE_NS):
        raise ConfigError(
            f"<{expected}> is in namespace {ns!r}; expected {IMAGEUPDATE_NS}", display, root.sourceline
        )


def _text(el, display: str, *, required: bool = True) -> str:
    text = (el.text or "").strip()
    if required and not text:
        raise ConfigError(f"<{localname(el)}> is empty", display, el.sourceline)
    if len(elements(el)):
        raise ConfigError(f"<{localname(el)}> must contain text, not elements", display, el.sourceline)
    return text


def _number(el, display: str) -> int:
    text = _text(el, display)
    if not _NUM.match(text):
        raise ConfigError(
            f"<{localname(el)}> value {text!r} is not a number (decimal or 0x hex)", display, el.sourceline
        )
    return int(text, 0) if text[:2].lower() == "0x" else int(text, 10)


def _bool(el, display: str) -> bool:
    text = _text(el, display).lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise ConfigError(
        f"<{localname(el)}> value {text!r} is not a boolean (true or false)", display, el.sourceline
    )


def _children(parent, display: str, known: Iterable[str], what: str) -> dict:
    known = tuple(known)
    seen: dict = {}
    for child in elements(parent):
        name = localname(child)
        if name not in known:
            raise ConfigError(
                f"unknown element <{name}> in <{what}>{suggest(name, known, '<{}>')}; expected one of "
                f"{', '.join(known)}",
                display,
                child.sourceline,
            )
        if name in seen:
            raise ConfigError(
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
        raise ConfigError("<Partition> has no <Name>", display, el.sourceline)
    name = _text(ch["Name"], display)
    if not _PART_NAME.match(name):  # it names the partition's image and manifest under build/
        raise ConfigError(
            f"partition name {name!r} may only contain letters, digits, '_', '-', '.' and spaces, "
            "and must start with a letter or digit",
            display,
            ch["Name"].sourceline,
        )
    if "Type" not in ch:
        raise ConfigError(f"partition {name} has no <Type>", display, el.sourceline)
    raw_type = _text(ch["Type"], display)
    gtype = _guid(raw_type)
    m = _MBR_TYPE.match(raw_type)
    if gtype:
        ptype = gtype
    elif m:
        ptype = f"0x{int(m.group(1), 16):02x}"
    else:
        raise ConfigError(
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
            raise ConfigError(f"partition {name}: <Id> is not a GUID", display, ch["Id"].sourceline)
    fs = None
    if "FileSystem" in ch:
        text = _text(ch["FileSystem"], display)
        fs = FILESYSTEMS.get(text.upper())
        if fs is None:
            raise ConfigError(
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
        raise ConfigError(
            f"partition {name} needs exactly one of <TotalSectors>, <MinFreeSectors>, "
            f"<UseAllSpace>true</UseAllSpace> (got {got})",
            display,
            el.sourceline,
        )
    if "TotalSectors" in kw and kw["TotalSectors"] == 0:
        raise ConfigError(
            f"partition {name}: <TotalSectors> must be greater than 0", display, lines["TotalSectors"]
        )
    if kw.get("OffsetInSectors") == 0:
        # DeviceLayout.xsd (newer schema, DD2FFU) defaults OffsetInSectors to "0" and the native
        # placement uses it only when non-zero: 0 means "not set" (spec/updateos-chunk0.md B1).
        del kw["OffsetInSectors"]
    if "OffsetInSectors" in kw and "TotalSectors" not in kw:
        raise ConfigError(
            f"partition {name}: <OffsetInSectors> needs a fixed <TotalSectors>",
            display,
            lines["OffsetInSectors"],
        )
    for key in ("ByteAlignment",):
        if key in kw and (kw[key] == 0 or kw[key] % sector_size):
            raise ConfigError(
                f"partition {name}: <{key}> {kw[key]:#x} must be a non-zero multiple of the "
                f"sector size {sector_size}",
                display,
                lines[key],
            )
    if "SectorAlignment" in kw and kw["SectorAlignment"] == 0:
        raise ConfigError(
            f"partition {name}: <SectorAlignment> must be greater than 0", display, lines["SectorAlignment"]
        )
    if "ClusterSize" in kw:
        c = kw["ClusterSize"]
        if c < sector_size or c & (c - 1) or c > 2 * 1024 * 1024:
            raise ConfigError(
                f"partition {name}: <ClusterSize> {c:#x} must be a power of two between the sector "
                "size and 2 MiB",
                display,
                lines["ClusterSize"],
            )
        if fs is None:
            raise ConfigError(
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
        raise ConfigError(
            f"<SectorSize> {sector} must be a power of two of at least 512", display, lines["SectorSize"]
        )
    chunk = _number(ch["ChunkSize"], display) if "ChunkSize" in ch else 128
    if chunk == 0 or (chunk * 1024) % sector:
        raise ConfigError(
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
        raise ConfigError(
            f"<DefaultPartitionByteAlignment> {align:#x} must be a non-zero multiple of the sector "
            f"size {sector}",
            display,
            lines["DefaultPartitionByteAlignment"],
        )
    tag = _text(ch["VersionTag"], display) if "VersionTag" in ch else None
    if "Partitions" not in ch:
        raise ConfigError("<DeviceLayout> has no <Partitions>", display, root.sourceline)
    parts_el = ch["Partitions"]
    parts = []
    for el in elements(parts_el):
        if localname(el) != "Partition":
            raise ConfigError(
                f"unknown element <{localname(el)}> in <Partitions>; expected <Partition>",
                display,
                el.sourceline,
            )
        parts.append(_partition(el, display, sector))
    if not parts:
        raise ConfigError("<Partitions> lists no partition", display, parts_el.sourceline)
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
    warnings = validate(layout)
    return dataclasses.replace(layout, warnings=tuple(warnings))


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
        raise ConfigError(
            "<OEMDevicePlatform> has no <MinSectorCount> (the disk size in sectors)", display, root.sourceline
        )
    count = _number(ch["MinSectorCount"], display)
    if count == 0:
        raise ConfigError("<MinSectorCount> must be greater than 0", display, lines["MinSectorCount"])
    if ("DevicePlatformIDs" in ch) == ("DevicePlatformID" in ch):
        raise ConfigError(
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
                raise ConfigError(
                    f"unknown element <{localname(el)}> in <DevicePlatformIDs>; expected <ID>",
                    display,
                    el.sourceline,
                )
            ids.append(_text(el, display))
            id_lines.append(el.sourceline)
        if not ids:
            raise ConfigError("<DevicePlatformIDs> lists no <ID>", display, lines["DevicePlatformIDs"])
    for pid, line in zip(ids, id_lines, strict=True):
        if not pid.isascii() or any(ord(c) < 0x20 for c in pid):
            raise ConfigError(f"platform id {pid!r} must be printable ASCII", display, line)
    if sum(len(x) + 1 for x in ids) > 191:
        raise ConfigError(
            "platform ids are longer than the FFU store header allows (191 bytes with NULs)",
            display,
            id_lines[-1],
        )
    compressed = []
    if "CompressedPartitions" in ch:
        for el in elements(ch["CompressedPartitions"]):
            if localname(el) != "Name":
                raise ConfigError(
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
        raise ConfigError(
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
