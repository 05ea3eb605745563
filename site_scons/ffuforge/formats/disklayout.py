"""The computed disk layout: where every partition lies, shared by partition writers, disk
assembly and the FFU writer (one truth, so the FFU, the raw image and the tables agree)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PlacedPartition:
    name: str  # canonical spelling from DeviceLayout.xml
    type: str  # GPT type GUID '{...}' lower case, or MBR type '0x07' lower case
    first_sector: int
    sector_count: int
    filesystem: str | None = None  # 'NTFS', 'FAT', 'FAT32' or None for raw partitions
    cluster_size: int | None = None  # bytes
    id: str | None = None  # GPT unique partition GUID, if the layout fixes it
    bootable: bool = False
    required_to_flash: bool = False
    attributes: dict[str, bool] = field(default_factory=dict)  # ReadOnly, Hidden, AttachDriveLetter, …


@dataclass(frozen=True)
class DiskLayout:
    style: str  # 'gpt' | 'mbr'
    sector_size: int  # bytes (512 or 4096)
    chunk_size: int  # bytes (FFU block size, ChunkSize KiB × 1024)
    total_sectors: int  # size of the disk the image is made for
    partitions: tuple[PlacedPartition, ...]  # disk order
    platform_ids: tuple[str, ...] = ()
    disk_id: str | None = None  # GPT disk GUID '{...}' or MBR signature '0xae420040'

    @property
    def total_bytes(self) -> int:
        return self.total_sectors * self.sector_size

    def partition(self, name: str) -> PlacedPartition:
        for p in self.partitions:
            if p.name.lower() == name.lower():
                return p
        raise KeyError(name)

    def offset(self, p: PlacedPartition) -> int:
        return p.first_sector * self.sector_size

    def size(self, p: PlacedPartition) -> int:
        return p.sector_count * self.sector_size


def to_json(layout: DiskLayout) -> dict:
    d = dataclasses.asdict(layout)
    d["partitions"] = [dataclasses.asdict(p) for p in layout.partitions]
    return d


def from_json(data: dict) -> DiskLayout:
    parts = tuple(PlacedPartition(**p) for p in data["partitions"])
    return DiskLayout(**{**data, "partitions": parts, "platform_ids": tuple(data.get("platform_ids", ()))})
