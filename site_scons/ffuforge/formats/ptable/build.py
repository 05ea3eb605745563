"""Building partition tables from a DiskLayout: the layout checks, the GPT (primary and
backup, final and flash-only) and the MBR with its EBR chain.

Separate from the parsers: building trusts a checked layout, parsing trusts nothing.
"""

from __future__ import annotations

import zlib

from ...errors import ConfigError
from ..disklayout import DiskLayout, PlacedPartition
from .structs import (
    EMPTY_MBR_ENTRY,
    GPT_DEFAULT_ENTRIES,
    GPT_ENTRY,
    GPT_ENTRY_SIZE,
    GPT_HEADER,
    GPT_HEADER_SIZE,
    GPT_REVISION,
    GPT_SIGNATURE,
    MBR_BOOT_SIGNATURE,
    MBR_SECTOR,
    MBR_TYPE_EXTENDED_CHS,
    MBR_TYPE_EXTENDED_LBA,
    MBR_TYPE_PROTECTIVE,
    PartitionTables,
    TableRegion,
    chs,
    disk_guid,
    gpt_attributes,
    gpt_geometry,
    mbr_signature,
    mbr_type,
    parse_guid,
    partition_guid,
)

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
        raise ConfigError(f"sector size {ss} is not supported (512 or 4096)")
    if layout.style not in ("gpt", "mbr"):
        raise ConfigError(f"partition style {layout.style!r} is neither 'gpt' nor 'mbr'")
    if n <= 0:
        raise ConfigError("disk has no sectors")
    seen: set[str] = set()
    for p in layout.partitions:
        if p.name.lower() in seen:
            raise ConfigError(f"partition {p.name} is listed twice")
        seen.add(p.name.lower())
        if p.sector_count <= 0 or p.first_sector < 0:
            raise ConfigError(f"partition {p.name}: empty or negative range")
    used: list[tuple[int, int, str]] = []  # [start, end) sectors: partitions and tables
    if layout.style == "gpt":
        if not 0 < gpt_entries * GPT_ENTRY_SIZE <= 1 << 20 or gpt_entries % (ss // GPT_ENTRY_SIZE or 1):
            raise ConfigError(f"GPT entry count {gpt_entries} must fill whole sectors")
        if len(layout.partitions) > gpt_entries:
            raise ConfigError(
                f"{len(layout.partitions)} partitions do not fit a GPT of {gpt_entries} entries"
            )
        first, last, _ = gpt_geometry(n, ss, gpt_entries)
        if last < first:
            raise ConfigError(f"disk of {n} sectors is too small for a GPT")
        for p in layout.partitions:
            parse_guid(p.type, f"partition {p.name} type")
            partition_guid(layout, p)
            if len(p.name) > 36:
                raise ConfigError(
                    f"partition name {p.name!r} is longer than the 36 characters a GPT entry holds"
                )
            if p.first_sector < first or p.first_sector + p.sector_count - 1 > last:
                raise ConfigError(
                    f"partition {p.name} (sectors {p.first_sector}-{p.first_sector + p.sector_count - 1}) "
                    f"lies outside the GPT usable area {first}-{last}"
                )
            used.append((p.first_sector, p.first_sector + p.sector_count, p.name))
        disk_guid(layout)
    else:
        primaries, logicals = _mbr_split(layout)
        for p in layout.partitions:
            mbr_type(p)
            if p.first_sector < 1 or p.first_sector + p.sector_count > n:
                raise ConfigError(f"partition {p.name} lies outside the disk (sectors 1-{n - 1})")
            if p.first_sector + p.sector_count > 0xFFFFFFFF + 1 or p.sector_count > 0xFFFFFFFF:
                raise ConfigError(f"partition {p.name} lies beyond the 2^32-sector reach of an MBR")
            used.append((p.first_sector, p.first_sector + p.sector_count, p.name))
        for p in logicals:
            used.append((ebr_sector(p), ebr_sector(p) + 1, f"the EBR of {p.name}"))
        if logicals:
            ext_start = ebr_sector(logicals[0])
            for p in primaries:
                if p.first_sector + p.sector_count > ext_start:
                    raise ConfigError(
                        f"primary partition {p.name} must lie before the logical partitions "
                        f"(extended partition starts at sector {ext_start})"
                    )
            for a, b in zip(logicals, logicals[1:], strict=False):
                if b.first_sector < a.first_sector:
                    raise ConfigError(f"logical partitions {a.name} and {b.name} are not in disk order")
        mbr_signature(layout)
    used.sort()
    for (a0, a1, an), (b0, _b1, bn) in zip(used, used[1:], strict=False):
        if b0 < a1:
            hint = "; leave a free sector before each logical partition" if "EBR" in an + bn else ""
            raise ConfigError(f"{an} (sectors {a0}-{a1 - 1}) overlaps {bn} (from sector {b0}){hint}")


# ----------------------------------------------------------------------------- GPT


def _gpt_entry_array(layout: DiskLayout, entry_count: int, *, flash_only: bool) -> bytes:
    out = bytearray(entry_count * GPT_ENTRY_SIZE)
    for i, p in enumerate(layout.partitions):
        if flash_only and not p.required_to_flash:
            continue  # slot stays zero (ImgGen's flash-only table)
        out[i * GPT_ENTRY_SIZE : (i + 1) * GPT_ENTRY_SIZE] = GPT_ENTRY.build(
            dict(
                type_guid=parse_guid(p.type, f"partition {p.name} type"),
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
            entries=[entry] + [EMPTY_MBR_ENTRY] * 3,
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
        type=mbr_type(p),
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
    entries = entries + [EMPTY_MBR_ENTRY] * (4 - len(entries))
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
        else EMPTY_MBR_ENTRY
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
    raise ConfigError(f"partition style {layout.style!r} is neither 'gpt' nor 'mbr'")
