"""Device layout models and the constants every layout step uses.

:class:`DeviceLayout`, :class:`Partition` and :class:`DevicePlatform` hold what
DeviceLayout.xml / OEMDevicePlatform.xml say (as parsed, before sizing); parsing, the layout
rules and sizing all read them, so they sit apart from each of those.
"""

from __future__ import annotations

from dataclasses import dataclass, field

IMAGEUPDATE_NS = "http://schemas.microsoft.com/embedded/2004/10/ImageUpdate"
GPT_DISK_GUID = "{ae420040-13dd-41f2-ae7f-0dc35854c8d7}"  # fixed, so that equal inputs give equal disks
MBR_DISK_ID = "0xae420040"
# ImgGen's normalised unique partition GUIDs (ImageStorageServiceManaged ImageConstants MAINOS_/SYSTEM_/
# MMOS_PARTITION_ID, applied by GuidPartitionTable.NormalizeGptIds to the flash-only and final tables of
# the main-OS store; public decompilation gus33000/DD2FFU). The name match there is ordinal
# (case-sensitive), and only these three are fixed: Data and every other partition keeps the ID its
# virtual disk got (random in ImgGen; here the layout's Id or a uuid5, see sizing).
IMGGEN_PARTITION_IDS = {
    "MainOS": "{a76b8ce2-0187-4c13-8fca-8651c9b0620a}",
    "EFIESP": "{8183040a-8b44-4592-92f7-c6d9ee0560f7}",
    "MMOS": "{27a47557-8243-4c8e-9d30-846844c29c52}",
}
DEFAULT_PARTITION_ALIGNMENT = 0x200000  # bytes, when DefaultPartitionByteAlignment is absent
GPT_ENTRY_ARRAY_BYTES = 128 * 128
GPT_MAX_NAME_CHARS = 36
MIN_USE_ALL_SPACE_BYTES = 8 * 1024 * 1024
MBR_EXTENDED_TYPE = "0x0f"
EFI_SYSTEM_TYPE = "{c12a7328-f81f-11d2-ba4b-00a0c93ec93b}"
BASIC_DATA_TYPE = "{ebd0a0a2-b9e5-4433-87c0-68b6b72699c7}"
FILESYSTEMS = {"NTFS": "NTFS", "FAT": "FAT", "FAT32": "FAT32"}
# IoT floors (the IoT Core kit's rules). MainOS: the kit wants 1048576 sectors (512 MiB) free; the 2 GB sample
# layouts Microsoft shipped use 262144, so below 512 MiB is a warning and below 128 MiB an error.
IOT_EFIESP_MIN_BYTES = 32 * 1024 * 1024
IOT_MAINOS_FREE_RECOMMENDED_BYTES = 512 * 1024 * 1024
IOT_MAINOS_FREE_MIN_BYTES = 128 * 1024 * 1024
MAX_RTC_RESERVED_SECTORS = 204800


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
