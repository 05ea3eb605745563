"""Partition-table constants, on-disk structures (construct declarations), the result types
(table regions, parsed GPT and MBR entries) and the helpers both the builders and the parsers
use: GUIDs, MBR types, the deterministic disk GUID / MBR signature and partition GUIDs, CHS
and GPT geometry.

Separate from `build` and `parse` so both read one definition of every field.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from construct import Adapter, Array, Bytes, Int8ul, Int16ul, Int32ul, Int64ul, Struct

from ...errors import ConfigError
from ..disklayout import DiskLayout, PlacedPartition

NORMALISED_DISK_GUID = uuid.UUID("AE420040-13DD-41F2-AE7F-0DC35854C8D7")
NORMALISED_MBR_SIGNATURE = 0xAE420040
GPT_DEFAULT_ENTRIES = 128
GPT_ENTRY_SIZE = 128
GPT_SIGNATURE = b"EFI PART"
GPT_REVISION = 0x00010000
GPT_HEADER_SIZE = 92

GPT_ATTR_PLATFORM_REQUIRED = 1 << 0
GPT_ATTR_READ_ONLY = 1 << 60
GPT_ATTR_HIDDEN = 1 << 62
GPT_ATTR_NO_DRIVE_LETTER = 1 << 63

MBR_TYPE_PROTECTIVE = 0xEE
MBR_TYPE_EXTENDED_CHS = 0x05
MBR_TYPE_EXTENDED_LBA = 0x0F
MBR_BOOT_SIGNATURE = b"\x55\xaa"
MBR_SIZE = 512

# Parser limits: far beyond anything real, small enough that hostile headers cannot make us
# allocate or loop without bound.
MAX_GPT_ENTRIES = 4096
MAX_GPT_ENTRY_SIZE = 4096
MAX_LOGICAL_PARTITIONS = 256

Read = Callable[[int, int], bytes]

# ----------------------------------------------------------------------------- structures


class GuidAdapter(Adapter):
    """16 bytes on disk in the mixed-endian layout (first three fields little-endian)."""

    def _decode(self, obj, context, path):
        return uuid.UUID(bytes_le=bytes(obj))

    def _encode(self, obj, context, path):
        return obj.bytes_le


Guid = GuidAdapter(Bytes(16))

MBR_ENTRY = Struct(
    "status" / Int8ul,
    "chs_first" / Bytes(3),
    "type" / Int8ul,
    "chs_last" / Bytes(3),
    "lba_first" / Int32ul,
    "sectors" / Int32ul,
)
MBR_SECTOR = Struct(
    "bootcode" / Bytes(440),
    "disk_signature" / Int32ul,
    "reserved" / Int16ul,
    "entries" / Array(4, MBR_ENTRY),
    "boot_signature" / Bytes(2),
)
assert MBR_ENTRY.sizeof() == 16 and MBR_SECTOR.sizeof() == MBR_SIZE

GPT_HEADER = Struct(
    "signature" / Bytes(8),
    "revision" / Int32ul,
    "header_size" / Int32ul,
    "header_crc32" / Int32ul,
    "reserved" / Int32ul,
    "my_lba" / Int64ul,
    "alternate_lba" / Int64ul,
    "first_usable_lba" / Int64ul,
    "last_usable_lba" / Int64ul,
    "disk_guid" / Guid,
    "entries_lba" / Int64ul,
    "entry_count" / Int32ul,
    "entry_size" / Int32ul,
    "entries_crc32" / Int32ul,
)
GPT_ENTRY = Struct(
    "type_guid" / Guid,
    "unique_guid" / Guid,
    "first_lba" / Int64ul,
    "last_lba" / Int64ul,
    "attributes" / Int64ul,
    "name" / Bytes(72),
)
assert GPT_HEADER.sizeof() == GPT_HEADER_SIZE and GPT_ENTRY.sizeof() == GPT_ENTRY_SIZE

EMPTY_MBR_ENTRY = dict(status=0, chs_first=b"\0\0\0", type=0, chs_last=b"\0\0\0", lba_first=0, sectors=0)

# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class TableRegion:
    """Bytes of a partition table at a disk byte offset."""

    offset: int
    data: bytes
    kind: str  # 'primary' | 'backup' | 'mbr' | 'ebr'

    @property
    def end(self) -> int:
        return self.offset + len(self.data)


@dataclass(frozen=True)
class PartitionTables:
    style: str
    regions: tuple[TableRegion, ...]

    def blocks(self, bs: int, kinds: tuple[str, ...] | None = None) -> list[int]:
        """Sorted disk block indices (of size bs) the regions touch."""
        out: set[int] = set()
        for r in self.regions:
            if kinds is None or r.kind in kinds:
                out.update(range(r.offset // bs, (r.end - 1) // bs + 1))
        return sorted(out)

    def overlay(self, buf: memoryview | bytearray, buf_offset: int) -> None:
        """Copy the table bytes falling into `buf` (which holds disk bytes from `buf_offset`)."""
        end = buf_offset + len(buf)
        for r in self.regions:
            lo, hi = max(r.offset, buf_offset), min(r.end, end)
            if lo < hi:
                buf[lo - buf_offset : hi - buf_offset] = r.data[lo - r.offset : hi - r.offset]


@dataclass(frozen=True)
class GptEntry:
    index: int  # 0-based slot in the entry array
    type_guid: uuid.UUID
    unique_guid: uuid.UUID
    first_lba: int
    last_lba: int
    attributes: int
    name: str


@dataclass(frozen=True)
class Gpt:
    disk_guid: uuid.UUID
    my_lba: int
    alternate_lba: int
    first_usable_lba: int
    last_usable_lba: int
    entries_lba: int
    entry_count: int
    entry_size: int
    entries: tuple[GptEntry, ...]  # used slots only


@dataclass(frozen=True)
class MbrPartition:
    number: int  # 1-4 primary (slot), 5+ logical, as Linux numbers them
    type: int
    bootable: bool
    first_lba: int
    sectors: int
    ebr_lba: int | None = None  # logical partitions: where their EBR is


# ----------------------------------------------------------------------------- helpers


def parse_guid(text: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(text.strip().strip("{}"))
    except (ValueError, AttributeError) as e:
        raise ConfigError(f"{what}: {text!r} is not a GUID") from e


def guid_text(g: uuid.UUID) -> str:
    return "{" + str(g) + "}"


def mbr_type(p: PlacedPartition) -> int:
    t = p.type.strip().lower()
    try:
        value = int(t, 16) if t.startswith("0x") else int(t, 16 if len(t) <= 2 else 10)
    except ValueError as e:
        raise ConfigError(f"partition {p.name}: MBR type {p.type!r} is not a byte like 0x07") from e
    if not 0 < value <= 0xFF or value in (MBR_TYPE_EXTENDED_CHS, MBR_TYPE_EXTENDED_LBA, MBR_TYPE_PROTECTIVE):
        raise ConfigError(f"partition {p.name}: MBR type {p.type!r} cannot be used for a partition")
    return value


def disk_guid(layout: DiskLayout) -> uuid.UUID:
    """The GPT disk GUID: the layout's, else ImgGen's normalised main-OS value."""
    if layout.disk_id and not layout.disk_id.lower().startswith("0x"):
        return parse_guid(layout.disk_id, "disk id")
    return NORMALISED_DISK_GUID


def mbr_signature(layout: DiskLayout) -> int:
    if layout.disk_id and layout.disk_id.lower().startswith("0x"):
        try:
            value = int(layout.disk_id, 16)
        except ValueError as e:
            raise ConfigError(f"MBR disk signature {layout.disk_id!r} is not a hex number") from e
        if not 0 <= value <= 0xFFFFFFFF:
            raise ConfigError(f"MBR disk signature {layout.disk_id!r} does not fit 32 bits")
        return value
    return NORMALISED_MBR_SIGNATURE


def partition_guid(layout: DiskLayout, p: PlacedPartition) -> uuid.UUID:
    """`Id` if the layout fixes it, else a stable GUID derived from disk GUID and name."""
    if p.id:
        return parse_guid(p.id, f"partition {p.name} Id")
    h = hashlib.sha256(b"ffuforge gpt partition\0" + disk_guid(layout).bytes + p.name.lower().encode())
    return uuid.UUID(bytes=h.digest()[:16], version=4)


def gpt_attributes(p: PlacedPartition, *, final: bool) -> int:
    """GPT attribute bits from the layout flags. AttachDriveLetter=false → no-drive-letter
    (mapping uncertain); the final table clears that bit on MainOS."""
    flags = {k.lower(): v for k, v in p.attributes.items()}
    bits = 0
    if flags.get("readonly"):
        bits |= GPT_ATTR_READ_ONLY
    if flags.get("hidden"):
        bits |= GPT_ATTR_HIDDEN
    if flags.get("attachdriveletter") is False:
        bits |= GPT_ATTR_NO_DRIVE_LETTER
    if final and p.name.lower() == "mainos":
        bits &= ~GPT_ATTR_NO_DRIVE_LETTER
    return bits


def chs(lba: int) -> bytes:
    """CHS triple as fdisk/parted write it: 255 heads × 63 sectors, (1023, 254, 63) beyond."""
    c, rem = divmod(lba, 255 * 63)
    if c > 1023:
        return b"\xfe\xff\xff"
    h, s = divmod(rem, 63)
    s += 1
    return bytes((h, s | ((c >> 2) & 0xC0), c & 0xFF))


def gpt_geometry(
    total_sectors: int, sector_size: int, entry_count: int = GPT_DEFAULT_ENTRIES
) -> tuple[int, int, int]:
    """(first usable LBA, last usable LBA, sectors of the entry array)."""
    entry_sectors = -(-entry_count * GPT_ENTRY_SIZE // sector_size)
    return 2 + entry_sectors, total_sectors - 2 - entry_sectors, entry_sectors
