"""GPT and MBR/EBR partition tables for a computed DiskLayout, and bounded parsers for them.

The raw disk, the FFU's flash-only table and its final/backup tables must be byte-identical
wherever they describe the same thing, so every table comes from here (ffu-format.md §5.3,
device-layout.md §3). IDs are deterministic: the disk GUID / MBR signature default to ImgGen's
normalised values and partitions without a fixed `Id` get a GUID derived from disk GUID + name
(ImgGen's own fixed MainOS/EFIESP GUIDs are not known).

MBR layouts with more than four partitions keep slots 1-3 primary and put an extended partition
in slot 4 (as the kit does); each logical partition's EBR lives in the sector just before it, so
the layout must leave that sector free. The parsers take a `read(offset, length)` callable and
treat every field as hostile: out-of-range LBAs, counts, sizes and EBR loops raise FFUError.
"""

from __future__ import annotations

import hashlib
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from construct import Adapter, Array, Bytes, ConstructError, Int8ul, Int16ul, Int32ul, Int64ul, Struct

from ..errors import FFUError
from .disklayout import DiskLayout, PlacedPartition

__all__ = [
    "GPT_ATTR_HIDDEN",
    "GPT_ATTR_NO_DRIVE_LETTER",
    "GPT_ATTR_PLATFORM_REQUIRED",
    "GPT_ATTR_READ_ONLY",
    "GPT_DEFAULT_ENTRIES",
    "NORMALISED_DISK_GUID",
    "NORMALISED_MBR_SIGNATURE",
    "Gpt",
    "GptEntry",
    "MbrPartition",
    "PartitionTables",
    "TableRegion",
    "build_gpt",
    "build_mbr",
    "build_tables",
    "check_layout",
    "chs",
    "describe_table",
    "disk_guid",
    "ebr_sector",
    "gpt_geometry",
    "parse_gpt",
    "parse_mbr_sector",
    "partition_guid",
    "read_mbr",
    "read_partitions",
]

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

_EMPTY_MBR_ENTRY = dict(status=0, chs_first=b"\0\0\0", type=0, chs_last=b"\0\0\0", lba_first=0, sectors=0)

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


def _guid(text: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(text.strip().strip("{}"))
    except (ValueError, AttributeError) as e:
        raise FFUError(f"{what}: {text!r} is not a GUID") from e


def guid_text(g: uuid.UUID) -> str:
    return "{" + str(g) + "}"


def _mbr_type(p: PlacedPartition) -> int:
    t = p.type.strip().lower()
    try:
        value = int(t, 16) if t.startswith("0x") else int(t, 16 if len(t) <= 2 else 10)
    except ValueError as e:
        raise FFUError(f"partition {p.name}: MBR type {p.type!r} is not a byte like 0x07") from e
    if not 0 < value <= 0xFF or value in (MBR_TYPE_EXTENDED_CHS, MBR_TYPE_EXTENDED_LBA, MBR_TYPE_PROTECTIVE):
        raise FFUError(f"partition {p.name}: MBR type {p.type!r} cannot be used for a partition")
    return value


def disk_guid(layout: DiskLayout) -> uuid.UUID:
    """The GPT disk GUID: the layout's, else ImgGen's normalised main-OS value."""
    if layout.disk_id and not layout.disk_id.lower().startswith("0x"):
        return _guid(layout.disk_id, "disk id")
    return NORMALISED_DISK_GUID


def mbr_signature(layout: DiskLayout) -> int:
    if layout.disk_id and layout.disk_id.lower().startswith("0x"):
        try:
            value = int(layout.disk_id, 16)
        except ValueError as e:
            raise FFUError(f"MBR disk signature {layout.disk_id!r} is not a hex number") from e
        if not 0 <= value <= 0xFFFFFFFF:
            raise FFUError(f"MBR disk signature {layout.disk_id!r} does not fit 32 bits")
        return value
    return NORMALISED_MBR_SIGNATURE


def partition_guid(layout: DiskLayout, p: PlacedPartition) -> uuid.UUID:
    """`Id` if the layout fixes it, else a stable GUID derived from disk GUID and name."""
    if p.id:
        return _guid(p.id, f"partition {p.name} Id")
    h = hashlib.sha256(b"ffuforge gpt partition\0" + disk_guid(layout).bytes + p.name.lower().encode())
    return uuid.UUID(bytes=h.digest()[:16], version=4)


def gpt_attributes(p: PlacedPartition, *, final: bool) -> int:
    """GPT attribute bits from the layout flags. AttachDriveLetter=false → no-drive-letter
    (mapping uncertain, device-layout.md §2); the final table clears that bit on MainOS."""
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


# ----------------------------------------------------------------------------- layout checks


def _mbr_split(layout: DiskLayout) -> tuple[list[PlacedPartition], list[PlacedPartition]]:
    parts = list(layout.partitions)
    if len(parts) <= 4:
        return parts, []
    return parts[:3], parts[3:]


def ebr_sector(p: PlacedPartition) -> int:
    """Where the EBR describing logical partition `p` lives: the sector just before it."""
    return p.first_sector - 1


def check_layout(layout: DiskLayout, *, gpt_entries: int = GPT_DEFAULT_ENTRIES) -> None:
    """Reject a layout whose tables cannot be written: partitions outside the usable area,
    overlapping each other or a table, or values that do not fit the table fields."""
    ss, n = layout.sector_size, layout.total_sectors
    if ss not in (512, 1024, 2048, 4096):
        raise FFUError(f"sector size {ss} is not supported (512 or 4096)")
    if layout.style not in ("gpt", "mbr"):
        raise FFUError(f"partition style {layout.style!r} is neither 'gpt' nor 'mbr'")
    if n <= 0:
        raise FFUError("disk has no sectors")
    seen: set[str] = set()
    for p in layout.partitions:
        if p.name.lower() in seen:
            raise FFUError(f"partition {p.name} is listed twice")
        seen.add(p.name.lower())
        if p.sector_count <= 0 or p.first_sector < 0:
            raise FFUError(f"partition {p.name}: empty or negative range")
    used: list[tuple[int, int, str]] = []  # [start, end) sectors: partitions and tables
    if layout.style == "gpt":
        if not 0 < gpt_entries * GPT_ENTRY_SIZE <= 1 << 20 or gpt_entries % (ss // GPT_ENTRY_SIZE or 1):
            raise FFUError(f"GPT entry count {gpt_entries} must fill whole sectors")
        if len(layout.partitions) > gpt_entries:
            raise FFUError(f"{len(layout.partitions)} partitions do not fit a GPT of {gpt_entries} entries")
        first, last, _ = gpt_geometry(n, ss, gpt_entries)
        if last < first:
            raise FFUError(f"disk of {n} sectors is too small for a GPT")
        for p in layout.partitions:
            _guid(p.type, f"partition {p.name} type")
            partition_guid(layout, p)
            if len(p.name) > 36:
                raise FFUError(
                    f"partition name {p.name!r} is longer than the 36 characters a GPT entry holds"
                )
            if p.first_sector < first or p.first_sector + p.sector_count - 1 > last:
                raise FFUError(
                    f"partition {p.name} (sectors {p.first_sector}-{p.first_sector + p.sector_count - 1}) "
                    f"lies outside the GPT usable area {first}-{last}"
                )
            used.append((p.first_sector, p.first_sector + p.sector_count, p.name))
        disk_guid(layout)
    else:
        primaries, logicals = _mbr_split(layout)
        for p in layout.partitions:
            _mbr_type(p)
            if p.first_sector < 1 or p.first_sector + p.sector_count > n:
                raise FFUError(f"partition {p.name} lies outside the disk (sectors 1-{n - 1})")
            if p.first_sector + p.sector_count > 0xFFFFFFFF + 1 or p.sector_count > 0xFFFFFFFF:
                raise FFUError(f"partition {p.name} lies beyond the 2^32-sector reach of an MBR")
            used.append((p.first_sector, p.first_sector + p.sector_count, p.name))
        for p in logicals:
            used.append((ebr_sector(p), ebr_sector(p) + 1, f"the EBR of {p.name}"))
        if logicals:
            ext_start = ebr_sector(logicals[0])
            for p in primaries:
                if p.first_sector + p.sector_count > ext_start:
                    raise FFUError(
                        f"primary partition {p.name} must lie before the logical partitions "
                        f"(extended partition starts at sector {ext_start})"
                    )
            for a, b in zip(logicals, logicals[1:], strict=False):
                if b.first_sector < a.first_sector:
                    raise FFUError(f"logical partitions {a.name} and {b.name} are not in disk order")
        mbr_signature(layout)
    used.sort()
    for (a0, a1, an), (b0, _b1, bn) in zip(used, used[1:], strict=False):
        if b0 < a1:
            hint = "; leave a free sector before each logical partition" if "EBR" in an + bn else ""
            raise FFUError(f"{an} (sectors {a0}-{a1 - 1}) overlaps {bn} (from sector {b0}){hint}")


# ----------------------------------------------------------------------------- GPT


def _gpt_entry_array(layout: DiskLayout, entry_count: int, *, flash_only: bool) -> bytes:
    out = bytearray(entry_count * GPT_ENTRY_SIZE)
    for i, p in enumerate(layout.partitions):
        if flash_only and not p.required_to_flash:
            continue  # slot stays zero (ImgGen's flash-only table)
        out[i * GPT_ENTRY_SIZE : (i + 1) * GPT_ENTRY_SIZE] = GPT_ENTRY.build(
            dict(
                type_guid=_guid(p.type, f"partition {p.name} type"),
                unique_guid=partition_guid(layout, p),
                first_lba=p.first_sector,
                last_lba=p.first_sector + p.sector_count - 1,
                attributes=gpt_attributes(p, final=not flash_only),
                name=p.name.encode("utf-16-le").ljust(72, b"\0"),
            )
        )
    return bytes(out)


def _gpt_header(layout: DiskLayout, *, backup: bool, entries: bytes, entry_count: int) -> bytes:
    n, ss = layout.total_sectors, layout.sector_size
    first, last, entry_sectors = gpt_geometry(n, ss, entry_count)
    fields = dict(
        signature=GPT_SIGNATURE,
        revision=GPT_REVISION,
        header_size=GPT_HEADER_SIZE,
        header_crc32=0,
        reserved=0,
        my_lba=n - 1 if backup else 1,
        alternate_lba=1 if backup else n - 1,
        first_usable_lba=first,
        last_usable_lba=last,
        disk_guid=disk_guid(layout),
        entries_lba=n - 1 - entry_sectors if backup else 2,
        entry_count=entry_count,
        entry_size=GPT_ENTRY_SIZE,
        entries_crc32=zlib.crc32(entries),
    )
    fields["header_crc32"] = zlib.crc32(GPT_HEADER.build(fields))
    return GPT_HEADER.build(fields).ljust(ss, b"\0")


def protective_mbr(total_sectors: int, sector_size: int) -> bytes:
    entry = dict(
        status=0,
        chs_first=b"\x00\x02\x00",
        type=MBR_TYPE_PROTECTIVE,
        chs_last=b"\xff\xff\xff",
        lba_first=1,
        sectors=min(total_sectors - 1, 0xFFFFFFFF),
    )
    sector = MBR_SECTOR.build(
        dict(
            bootcode=bytes(440),
            disk_signature=0,
            reserved=0,
            entries=[entry] + [_EMPTY_MBR_ENTRY] * 3,
            boot_signature=MBR_BOOT_SIGNATURE,
        )
    )
    return sector.ljust(sector_size, b"\0")


def build_gpt(
    layout: DiskLayout, *, flash_only: bool = False, entry_count: int = GPT_DEFAULT_ENTRIES
) -> PartitionTables:
    """Primary (protective MBR, header, entries from LBA 0) and backup (entries, header at the
    end) tables. `flash_only`: ImgGen's phase-2 table, every non-RequiredToFlash slot zeroed
    and no backup; otherwise the final table (MainOS loses its no-drive-letter bit)."""
    check_layout(layout, gpt_entries=entry_count)
    n, ss = layout.total_sectors, layout.sector_size
    entries = _gpt_entry_array(layout, entry_count, flash_only=flash_only)
    padded = entries.ljust(-(-len(entries) // ss) * ss, b"\0")
    primary = (
        protective_mbr(n, ss)
        + _gpt_header(layout, backup=False, entries=entries, entry_count=entry_count)
        + padded
    )
    regions = [TableRegion(0, primary, "primary")]
    if not flash_only:
        backup = padded + _gpt_header(layout, backup=True, entries=entries, entry_count=entry_count)
        regions.append(TableRegion(n * ss - len(backup), backup, "backup"))
    return PartitionTables("gpt", tuple(regions))


# ----------------------------------------------------------------------------- MBR


def _mbr_entry(p: PlacedPartition, first: int, count: int, rel_first: int) -> dict:
    return dict(
        status=0x80 if p.bootable else 0,
        chs_first=chs(first),
        type=_mbr_type(p),
        chs_last=chs(first + count - 1),
        lba_first=rel_first,
        sectors=count,
    )


def _link_entry(ebr: int, end: int, ext_start: int) -> dict:
    return dict(
        status=0,
        chs_first=chs(ebr),
        type=MBR_TYPE_EXTENDED_CHS,
        chs_last=chs(end - 1),
        lba_first=ebr - ext_start,
        sectors=end - ebr,
    )


def _mbr_sector(entries: list[dict], signature: int, ss: int) -> bytes:
    entries = entries + [_EMPTY_MBR_ENTRY] * (4 - len(entries))
    return MBR_SECTOR.build(
        dict(
            bootcode=bytes(440),
            disk_signature=signature,
            reserved=0,
            entries=entries,
            boot_signature=MBR_BOOT_SIGNATURE,
        )
    ).ljust(ss, b"\0")


def build_mbr(layout: DiskLayout, *, flash_only: bool = False) -> PartitionTables:
    """MBR sector (+ one EBR per logical partition). `flash_only` keeps only RequiredToFlash
    partitions (their slots stay where they are) — the MBR analogue of the flash-only GPT."""
    check_layout(layout)
    ss = layout.sector_size
    primaries, logicals = _mbr_split(layout)
    if flash_only:
        logicals = [p for p in logicals if p.required_to_flash]
    slots = [
        _mbr_entry(p, p.first_sector, p.sector_count, p.first_sector)
        if p.required_to_flash or not flash_only
        else _EMPTY_MBR_ENTRY
        for p in primaries
    ]
    regions = []
    if logicals:
        ext_start = ebr_sector(logicals[0])
        ext_end = logicals[-1].first_sector + logicals[-1].sector_count
        slots.append(
            dict(
                status=0,
                chs_first=chs(ext_start),
                type=MBR_TYPE_EXTENDED_LBA,
                chs_last=chs(ext_end - 1),
                lba_first=ext_start,
                sectors=ext_end - ext_start,
            )
        )
        for i, p in enumerate(logicals):
            ebr = ebr_sector(p)
            entries = [_mbr_entry(p, p.first_sector, p.sector_count, p.first_sector - ebr)]
            if i + 1 < len(logicals):
                nxt = logicals[i + 1]
                entries.append(_link_entry(ebr_sector(nxt), nxt.first_sector + nxt.sector_count, ext_start))
            regions.append(TableRegion(ebr * ss, _mbr_sector(entries, 0, ss), "ebr"))
    regions.insert(0, TableRegion(0, _mbr_sector(slots, mbr_signature(layout), ss), "mbr"))
    return PartitionTables("mbr", tuple(regions))


def build_tables(
    layout: DiskLayout, *, flash_only: bool = False, gpt_entries: int = GPT_DEFAULT_ENTRIES
) -> PartitionTables:
    if layout.style == "gpt":
        return build_gpt(layout, flash_only=flash_only, entry_count=gpt_entries)
    if layout.style == "mbr":
        return build_mbr(layout, flash_only=flash_only)
    raise FFUError(f"partition style {layout.style!r} is neither 'gpt' nor 'mbr'")


# ----------------------------------------------------------------------------- parsers


def _read(read: Read, offset: int, length: int, what: str) -> bytes:
    data = read(offset, length)
    if len(data) != length:
        raise FFUError(f"{what}: truncated (wanted {length} bytes at offset {offset})")
    return data


def parse_mbr_sector(data: bytes) -> dict:
    """Parse one MBR/EBR sector (construct container); FFUError without the 55 AA signature."""
    if len(data) < MBR_SIZE:
        raise FFUError("MBR: sector truncated")
    try:
        mbr = MBR_SECTOR.parse(data[:MBR_SIZE])
    except ConstructError as e:
        raise FFUError(f"MBR: {e}") from e
    if mbr.boot_signature != MBR_BOOT_SIGNATURE:
        raise FFUError("MBR: no 55 AA boot signature")
    return mbr


def parse_gpt(read: Read, total_sectors: int, sector_size: int, *, backup: bool = False) -> Gpt:
    """Read and check the primary (LBA 1) or backup (last LBA) GPT header and its entry array."""
    n, ss = total_sectors, sector_size
    which = "backup GPT" if backup else "GPT"
    if n < 3 or ss < MBR_SIZE:
        raise FFUError(f"{which}: disk too small")
    lba = n - 1 if backup else 1
    raw = _read(read, lba * ss, ss, which)
    try:
        h = GPT_HEADER.parse(raw)
    except ConstructError as e:
        raise FFUError(f"{which}: {e}") from e
    if h.signature != GPT_SIGNATURE:
        raise FFUError(f"{which}: no 'EFI PART' signature at LBA {lba}")
    if not GPT_HEADER_SIZE <= h.header_size <= ss:
        raise FFUError(f"{which}: header size {h.header_size} out of range")
    check = bytearray(raw[: h.header_size])
    check[16:20] = b"\0\0\0\0"
    if zlib.crc32(check) != h.header_crc32:
        raise FFUError(f"{which}: header CRC32 mismatch")
    if h.my_lba != lba:
        raise FFUError(f"{which}: header says it is at LBA {h.my_lba}, found at {lba}")
    if not (
        h.entry_size >= GPT_ENTRY_SIZE
        and h.entry_size <= MAX_GPT_ENTRY_SIZE
        and h.entry_size & (h.entry_size - 1) == 0
    ):
        raise FFUError(f"{which}: entry size {h.entry_size} invalid (128 × 2^n)")
    if not 0 < h.entry_count <= MAX_GPT_ENTRIES:
        raise FFUError(f"{which}: entry count {h.entry_count} out of range")
    array_bytes = h.entry_count * h.entry_size
    array_sectors = -(-array_bytes // ss)
    if not (
        2 <= h.entries_lba
        and h.entries_lba + array_sectors <= n
        and h.entries_lba != lba
        and not h.entries_lba <= lba < h.entries_lba + array_sectors
    ):
        raise FFUError(f"{which}: entry array at LBA {h.entries_lba} lies outside the disk")
    if not (
        h.first_usable_lba <= h.last_usable_lba + 1 and h.last_usable_lba < n and h.first_usable_lba >= 2
    ):
        raise FFUError(f"{which}: usable range {h.first_usable_lba}-{h.last_usable_lba} invalid")
    if h.alternate_lba >= n:
        raise FFUError(f"{which}: alternate header LBA {h.alternate_lba} beyond the disk")
    array = _read(read, h.entries_lba * ss, array_bytes, f"{which} entries")
    if zlib.crc32(array) != h.entries_crc32:
        raise FFUError(f"{which}: entry array CRC32 mismatch")
    entries = []
    for i in range(h.entry_count):
        raw_entry = array[i * h.entry_size : i * h.entry_size + GPT_ENTRY_SIZE]
        if raw_entry[:16] == bytes(16):
            continue
        e = GPT_ENTRY.parse(raw_entry)
        if not h.first_usable_lba <= e.first_lba <= e.last_lba <= h.last_usable_lba:
            raise FFUError(
                f"{which}: entry {i + 1} (LBA {e.first_lba}-{e.last_lba}) outside the usable range"
            )
        name = e.name.decode("utf-16-le", errors="replace").split("\0", 1)[0]
        entries.append(GptEntry(i, e.type_guid, e.unique_guid, e.first_lba, e.last_lba, e.attributes, name))
    return Gpt(
        h.disk_guid,
        h.my_lba,
        h.alternate_lba,
        h.first_usable_lba,
        h.last_usable_lba,
        h.entries_lba,
        h.entry_count,
        h.entry_size,
        tuple(entries),
    )


def read_mbr(read: Read, total_sectors: int, sector_size: int) -> tuple[int, list[MbrPartition]]:
    """(disk signature, partitions) from the MBR and its EBR chain, in Linux numbering."""
    n, ss = total_sectors, sector_size
    mbr = parse_mbr_sector(_read(read, 0, MBR_SIZE, "MBR"))
    parts: list[MbrPartition] = []
    ext: tuple[int, int] | None = None
    for slot, e in enumerate(mbr.entries, 1):
        if e.type == 0:
            continue
        if e.lba_first == 0 or e.sectors == 0 or e.lba_first + e.sectors > n:
            raise FFUError(f"MBR: partition {slot} (LBA {e.lba_first}+{e.sectors}) outside the disk")
        if e.type in (MBR_TYPE_EXTENDED_CHS, MBR_TYPE_EXTENDED_LBA, 0x85):
            if ext is not None:
                raise FFUError("MBR: more than one extended partition")
            ext = (e.lba_first, e.lba_first + e.sectors)
        parts.append(MbrPartition(slot, e.type, e.status == 0x80, e.lba_first, e.sectors))
    if ext is not None:
        ext_start, ext_end = ext
        ebr, number, seen = ext_start, 5, set()
        while True:
            if ebr in seen or len(seen) >= MAX_LOGICAL_PARTITIONS:
                raise FFUError("MBR: EBR chain loops or is too long")
            seen.add(ebr)
            if not ext_start <= ebr < ext_end:
                raise FFUError(f"MBR: EBR at LBA {ebr} outside the extended partition")
            rec = parse_mbr_sector(_read(read, ebr * ss, MBR_SIZE, f"EBR at LBA {ebr}"))
            first, link = rec.entries[0], rec.entries[1]
            if first.type:
                start = ebr + first.lba_first
                if first.lba_first == 0 or first.sectors == 0 or start + first.sectors > ext_end:
                    raise FFUError(f"MBR: logical partition {number} outside the extended partition")
                parts.append(
                    MbrPartition(number, first.type, first.status == 0x80, start, first.sectors, ebr)
                )
                number += 1
            if link.type == 0:
                break
            ebr = ext_start + link.lba_first
    return mbr.disk_signature, parts


def read_partitions(read: Read, total_sectors: int, sector_size: int) -> tuple[str, object, list]:
    """('gpt', Gpt, entries) or ('mbr', signature, partitions) for whatever the disk holds."""
    signature, parts = read_mbr(read, total_sectors, sector_size)
    if any(p.type == MBR_TYPE_PROTECTIVE for p in parts):
        gpt = parse_gpt(read, total_sectors, sector_size)
        return "gpt", gpt, list(gpt.entries)
    return "mbr", signature, parts


def describe_table(read: Read, total_sectors: int, sector_size: int) -> str:
    """Human-readable partition table (the primary GPT is checked against the backup)."""
    style, head, parts = read_partitions(read, total_sectors, sector_size)
    lines = []
    if style == "gpt":
        lines.append(
            f"GPT  disk GUID {guid_text(head.disk_guid)}  usable LBA {head.first_usable_lba}-"
            f"{head.last_usable_lba}  {head.entry_count} entries × {head.entry_size} B"
        )
        try:
            backup = parse_gpt(read, total_sectors, sector_size, backup=True)
            if backup.entries != head.entries:
                lines.append("  backup GPT: entries differ from the primary")
        except FFUError as e:
            lines.append(f"  backup GPT: {e}")
        for e in parts:
            lines.append(
                f"  {e.index + 1:>3}  {e.first_lba:>12}  {e.last_lba - e.first_lba + 1:>12}  "
                f"{guid_text(e.type_guid)}  attr {e.attributes:#018x}  {e.name}"
            )
    else:
        lines.append(f"MBR  disk signature {head:#010x}")
        for p in parts:
            lines.append(
                f"  {p.number:>3}  {p.first_lba:>12}  {p.sectors:>12}  type {p.type:#04x}"
                f"{'  boot' if p.bootable else ''}"
            )
    return "\n".join(lines)
