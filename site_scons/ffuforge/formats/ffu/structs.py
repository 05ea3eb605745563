"""FFU on-disk constants, header layouts (construct declarations) and the small data types
shared by the manifest builder, the writer and the reader (including the reader's view of
one store, `FfuStoreInfo`, and `lookup` for its manifest section).

Kept apart so the writer and the reader agree on one definition of every field and limit
without importing each other.
"""

from __future__ import annotations

import os
import struct
from array import array
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from construct import Bytes, Int16ul, Int32ul, Int64ul, Struct

from ...errors import FormatError
from ..disklayout import DiskLayout

BLOCK_SIZE = 131072  # chunk = block = 128 KiB, always (as ImgGen writes them)
SECURITY_SIGNATURE = b"SignedImage "
IMAGE_SIGNATURE = b"ImageFlash  "
ALG_SHA256 = 0x800C
ALG_SHA1 = 0x8004
DISK_BEGIN = 0
DISK_END = 2
HASHTABLE_MEMBER = "HashTable.blob"
DEVICE_PATH_EMMC_USER = "VenHw(B615F1F5-5088-43CD-809C-A16E52487D00)"
DEVICE_PATH_UFS_LUN0 = "VenHw(860845C1-BE09-4355-8BC1-30D64FF8E63A)"
DEFAULT_TIME = datetime(2020, 1, 1, tzinfo=UTC)
PLATFORM_ID_BYTES = 192

# Reader limits (hostile input): far beyond real files.
MAX_CATALOG = 64 << 20
MAX_MANIFEST = 16 << 20
MAX_STORES = 64
MAX_DEVICE_PATH = 2048
MAX_BLOCK_SIZE = 64 << 20
MAX_DISK = 1 << 50  # 1 PiB

SECURITY_HEADER = Struct(
    "cbSize" / Int32ul,
    "signature" / Bytes(12),
    "chunk_kb" / Int32ul,
    "alg_id" / Int32ul,
    "catalog_size" / Int32ul,
    "hash_table_size" / Int32ul,
)
IMAGE_HEADER = Struct(
    "cbSize" / Int32ul,
    "signature" / Bytes(12),
    "manifest_length" / Int32ul,
    "chunk_kb" / Int32ul,
)
STORE_HEADER = Struct(
    "update_type" / Int32ul,
    "major" / Int16ul,
    "minor" / Int16ul,
    "ff_major" / Int16ul,
    "ff_minor" / Int16ul,
    "platform_id" / Bytes(PLATFORM_ID_BYTES),
    "block_size" / Int32ul,
    "write_descriptor_count" / Int32ul,
    "write_descriptor_length" / Int32ul,
    "validate_descriptor_count" / Int32ul,
    "validate_descriptor_length" / Int32ul,
    "initial_index" / Int32ul,
    "initial_count" / Int32ul,
    "flash_only_index" / Int32ul,
    "flash_only_count" / Int32ul,
    "final_index" / Int32ul,
    "final_count" / Int32ul,
)
STORE_HEADER_V2 = Struct(
    "num_stores" / Int16ul,
    "store_index" / Int16ul,
    "store_payload_size" / Int64ul,
    "device_path_length" / Int16ul,
)
assert SECURITY_HEADER.sizeof() == 32 and IMAGE_HEADER.sizeof() == 24
assert STORE_HEADER.sizeof() == 248 and STORE_HEADER_V2.sizeof() == 14

DESC1 = struct.Struct("<IIII")  # LocationCount 1, BlockCount 1, method, index
U32X2 = struct.Struct("<II")

Progress = Callable[[int, int], None]


def align(n: int, a: int) -> int:
    return -(-n // a) * a


@dataclass(frozen=True)
class FfuStore:
    """One target device of a (v2) FFU: its layout, partition images and UEFI device path."""

    layout: DiskLayout
    images: Mapping[str, str | os.PathLike]
    device_path: str | None = None  # default: eMMC user area for the first store
    is_main_os: bool | None = None  # default: True for the first store only
    store_id: str | None = None


@dataclass(frozen=True)
class FfuWriteResult:
    path: Path
    size: int
    descriptors: int
    data_blocks: int  # payload blocks holding partition data
    chunks: int
    catalog_size: int
    signature: str  # blocksig.file_signature of the written file, computed while writing


@dataclass
class FfuVerifyResult:
    problems: list[str]
    chunks: int
    signed: bool
    signers: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def lookup(d: Mapping[str, str], key: str) -> str | None:
    """A manifest section's value for `key`, matched case-insensitively (keys keep their spelling)."""
    for k, v in d.items():
        if k.lower() == key.lower():
            return v
    return None


@dataclass
class FfuStoreInfo:
    """One store as read from the file; descriptors are kept in flat arrays."""

    index: int  # 0-based
    header: dict
    offset: int  # of the store header
    header_length: int
    meta_end: int
    block_size: int
    platform_ids: tuple[str, ...]
    device_path: str | None
    num_stores: int
    compression: int | None
    loc_start: array  # per descriptor: first location (len = count + 1)
    block_counts: array  # per descriptor
    payload_start: array  # per descriptor: first payload block (store-relative)
    loc_method: array
    loc_index: array
    payload_blocks: int = 0
    payload_offset: int = 0
    manifest: dict[str, str] = field(default_factory=dict)
    partitions: list[dict[str, str]] = field(default_factory=list)

    @property
    def descriptor_count(self) -> int:
        return len(self.block_counts)

    @property
    def disk_bytes(self) -> int | None:
        try:
            ss, n = (
                int(lookup(self.manifest, "SectorSize") or ""),
                int(lookup(self.manifest, "MinSectorCount") or ""),
            )
        except ValueError:
            return None
        return ss * n if 0 < ss <= 1 << 16 and 0 < n and ss * n <= MAX_DISK else None

    @property
    def sector_size(self) -> int | None:
        try:
            return int(lookup(self.manifest, "SectorSize") or "")
        except ValueError:
            return None

    def locations(self, i: int) -> list[tuple[int, int]]:
        a, b = self.loc_start[i], self.loc_start[i + 1]
        return list(zip(self.loc_method[a:b], self.loc_index[a:b], strict=True))

    def disk_offset(self, method: int, index: int, blocks: int = 1) -> int:
        if method == DISK_BEGIN:
            return index * self.block_size
        disk = self.disk_bytes
        if disk is None:
            raise FormatError(f"store {self.index + 1}: DISK_END location but no disk size in the manifest")
        return disk - (index + blocks) * self.block_size
