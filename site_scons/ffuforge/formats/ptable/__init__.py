"""GPT and MBR/EBR partition tables for a computed DiskLayout, and bounded parsers for them.

The raw disk, the FFU's flash-only table and its final/backup tables must be byte-identical
wherever they describe the same thing, so every table comes from here. IDs are deterministic:
the disk GUID / MBR signature default to ImgGen's normalised values and partitions without a fixed `Id` get a GUID derived from disk GUID + name
(ImgGen's own fixed MainOS/EFIESP GUIDs are not known).

MBR layouts with more than four partitions keep slots 1-3 primary and put an extended partition
in slot 4 (as the kit does); each logical partition's EBR lives in the sector just before it, so
the layout must leave that sector free. The parsers take a `read(offset, length)` callable and
treat every field as hostile: out-of-range LBAs, counts, sizes and EBR loops raise FormatError.

This package is a facade over `structs` (constants, structures, result types, shared helpers),
`build` (layout checks and table builders) and `parse` (the bounded parsers).
"""

from __future__ import annotations

from .build import (
    build_gpt,
    build_mbr,
    build_tables,
    check_layout,
    ebr_sector,
    protective_mbr,
)
from .parse import (
    describe_table,
    parse_gpt,
    parse_mbr_sector,
    read_mbr,
    read_partitions,
)
from .structs import (
    GPT_ATTR_HIDDEN,
    GPT_ATTR_NO_DRIVE_LETTER,
    GPT_ATTR_PLATFORM_REQUIRED,
    GPT_ATTR_READ_ONLY,
    GPT_DEFAULT_ENTRIES,
    GPT_ENTRY_SIZE,
    GPT_HEADER,
    MBR_SECTOR,
    NORMALISED_DISK_GUID,
    NORMALISED_MBR_SIGNATURE,
    Gpt,
    GptEntry,
    MbrPartition,
    PartitionTables,
    Read,
    TableRegion,
    chs,
    disk_guid,
    gpt_attributes,
    gpt_geometry,
    guid_text,
    mbr_signature,
    partition_guid,
)

__all__ = [
    "GPT_ATTR_HIDDEN",
    "GPT_ATTR_NO_DRIVE_LETTER",
    "GPT_ATTR_PLATFORM_REQUIRED",
    "GPT_ATTR_READ_ONLY",
    "GPT_DEFAULT_ENTRIES",
    "GPT_ENTRY_SIZE",
    "GPT_HEADER",
    "MBR_SECTOR",
    "NORMALISED_DISK_GUID",
    "NORMALISED_MBR_SIGNATURE",
    "Gpt",
    "GptEntry",
    "MbrPartition",
    "PartitionTables",
    "Read",
    "TableRegion",
    "build_gpt",
    "build_mbr",
    "build_tables",
    "check_layout",
    "chs",
    "describe_table",
    "disk_guid",
    "ebr_sector",
    "gpt_attributes",
    "gpt_geometry",
    "guid_text",
    "mbr_signature",
    "parse_gpt",
    "parse_mbr_sector",
    "partition_guid",
    "protective_mbr",
    "read_mbr",
    "read_partitions",
]
