"""Bounded parsers for GPT and MBR/EBR tables read through a `read(offset, length)` callable,
and a human-readable description of whatever table a disk holds.

Separate from the builders because they treat every field as hostile: out-of-range LBAs,
counts, sizes and EBR loops raise FormatError.
"""

from __future__ import annotations

import zlib
from typing import Any

from construct import ConstructError, Container

from ...errors import FFUError, FormatError
from .structs import (
    GPT_ENTRY,
    GPT_ENTRY_SIZE,
    GPT_HEADER,
    GPT_HEADER_SIZE,
    GPT_SIGNATURE,
    MAX_GPT_ENTRIES,
    MAX_GPT_ENTRY_SIZE,
    MAX_LOGICAL_PARTITIONS,
    MBR_BOOT_SIGNATURE,
    MBR_SECTOR,
    MBR_SIZE,
    MBR_TYPE_EXTENDED_CHS,
    MBR_TYPE_EXTENDED_LBA,
    MBR_TYPE_PROTECTIVE,
    Gpt,
    GptEntry,
    MbrPartition,
    Read,
    guid_text,
)

# ----------------------------------------------------------------------------- parsers


def _read(read: Read, offset: int, length: int, what: str) -> bytes:
    data = read(offset, length)
    if len(data) != length:
        raise FormatError(f"{what}: truncated (wanted {length} bytes at offset {offset})")
    return data


def parse_mbr_sector(data: bytes) -> Container:
    """Parse one MBR/EBR sector (construct container); FFUError without the 55 AA signature."""
    if len(data) < MBR_SIZE:
        raise FormatError("MBR: sector truncated")
    try:
        mbr = MBR_SECTOR.parse(data[:MBR_SIZE])
    except ConstructError as e:
        raise FormatError(f"MBR: {e}") from e
    if mbr.boot_signature != MBR_BOOT_SIGNATURE:
        raise FormatError("MBR: no 55 AA boot signature")
    return mbr


def parse_gpt(read: Read, total_sectors: int, sector_size: int, *, backup: bool = False) -> Gpt:
    """Read and check the primary (LBA 1) or backup (last LBA) GPT header and its entry array."""
    n, ss = total_sectors, sector_size
    which = "backup GPT" if backup else "GPT"
    if n < 3 or ss < MBR_SIZE:
        raise FormatError(f"{which}: disk too small")
    lba = n - 1 if backup else 1
    raw = _read(read, lba * ss, ss, which)
    try:
        h = GPT_HEADER.parse(raw)
    except ConstructError as e:
        raise FormatError(f"{which}: {e}") from e
    if h.signature != GPT_SIGNATURE:
        raise FormatError(f"{which}: no 'EFI PART' signature at LBA {lba}")
    if not GPT_HEADER_SIZE <= h.header_size <= ss:
        raise FormatError(f"{which}: header size {h.header_size} out of range")
    check = bytearray(raw[: h.header_size])
    check[16:20] = b"\0\0\0\0"
    if zlib.crc32(check) != h.header_crc32:
        raise FormatError(f"{which}: header CRC32 mismatch")
    if h.my_lba != lba:
        raise FormatError(f"{which}: header says it is at LBA {h.my_lba}, found at {lba}")
    if not (
        h.entry_size >= GPT_ENTRY_SIZE
        and h.entry_size <= MAX_GPT_ENTRY_SIZE
        and h.entry_size & (h.entry_size - 1) == 0
    ):
        raise FormatError(f"{which}: entry size {h.entry_size} invalid (128 × 2^n)")
    if not 0 < h.entry_count <= MAX_GPT_ENTRIES:
        raise FormatError(f"{which}: entry count {h.entry_count} out of range")
    array_bytes = h.entry_count * h.entry_size
    array_sectors = -(-array_bytes // ss)
    if not (
        2 <= h.entries_lba
        and h.entries_lba + array_sectors <= n
        and h.entries_lba != lba
        and not h.entries_lba <= lba < h.entries_lba + array_sectors
    ):
        raise FormatError(f"{which}: entry array at LBA {h.entries_lba} lies outside the disk")
    if not (
        h.first_usable_lba <= h.last_usable_lba + 1 and h.last_usable_lba < n and h.first_usable_lba >= 2
    ):
        raise FormatError(f"{which}: usable range {h.first_usable_lba}-{h.last_usable_lba} invalid")
    if h.alternate_lba >= n:
        raise FormatError(f"{which}: alternate header LBA {h.alternate_lba} beyond the disk")
    array = _read(read, h.entries_lba * ss, array_bytes, f"{which} entries")
    if zlib.crc32(array) != h.entries_crc32:
        raise FormatError(f"{which}: entry array CRC32 mismatch")
    entries = []
    for i in range(h.entry_count):
        raw_entry = array[i * h.entry_size : i * h.entry_size + GPT_ENTRY_SIZE]
        if raw_entry[:16] == bytes(16):
            continue
        ent = GPT_ENTRY.parse(raw_entry)
        if not h.first_usable_lba <= ent.first_lba <= ent.last_lba <= h.last_usable_lba:
            raise FormatError(
                f"{which}: entry {i + 1} (LBA {ent.first_lba}-{ent.last_lba}) outside the usable range"
            )
        name = ent.name.decode("utf-16-le", errors="replace").split("\0", 1)[0]
        entries.append(
            GptEntry(i, ent.type_guid, ent.unique_guid, ent.first_lba, ent.last_lba, ent.attributes, name)
        )
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
            raise FormatError(f"MBR: partition {slot} (LBA {e.lba_first}+{e.sectors}) outside the disk")
        if e.type in (MBR_TYPE_EXTENDED_CHS, MBR_TYPE_EXTENDED_LBA, 0x85):
            if ext is not None:
                raise FormatError("MBR: more than one extended partition")
            ext = (e.lba_first, e.lba_first + e.sectors)
        parts.append(MbrPartition(slot, e.type, e.status == 0x80, e.lba_first, e.sectors))
    if ext is not None:
        ext_start, ext_end = ext
        ebr, number = ext_start, 5
        seen: set[int] = set()
        while True:
            if ebr in seen or len(seen) >= MAX_LOGICAL_PARTITIONS:
                raise FormatError("MBR: EBR chain loops or is too long")
            seen.add(ebr)
            if not ext_start <= ebr < ext_end:
                raise FormatError(f"MBR: EBR at LBA {ebr} outside the extended partition")
            rec = parse_mbr_sector(_read(read, ebr * ss, MBR_SIZE, f"EBR at LBA {ebr}"))
            first, link = rec.entries[0], rec.entries[1]
            if first.type:
                start = ebr + first.lba_first
                if first.lba_first == 0 or first.sectors == 0 or start + first.sectors > ext_end:
                    raise FormatError(f"MBR: logical partition {number} outside the extended partition")
                parts.append(
                    MbrPartition(number, first.type, first.status == 0x80, start, first.sectors, ebr)
                )
                number += 1
            if link.type == 0:
                break
            ebr = ext_start + link.lba_first
    return mbr.disk_signature, parts


def read_partitions(read: Read, total_sectors: int, sector_size: int) -> tuple[str, Any, list]:
    """('gpt', Gpt, entries) or ('mbr', signature, partitions) for whatever the disk holds
    (the second item is a Gpt or an int, told apart by the first)."""
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
        except FFUError as err:
            lines.append(f"  backup GPT: {err}")
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
