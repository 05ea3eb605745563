"""BCD stores compiled from BootConfiguration XML; the implementation is in :mod:`.compiler`."""

from __future__ import annotations

from .compiler import (
    BCD_NS,
    ELEMENT_TYPES,
    GPT_PARTITION_IDS,
    WELL_KNOWN_OBJECTS,
    build_bcd,
    compile_bcd,
    gpt_partition_device,
    mbr_partition_device,
    parse_document,
    ramdisk_device,
)

__all__ = [
    "compile_bcd",
    "build_bcd",
    "parse_document",
    "ELEMENT_TYPES",
    "WELL_KNOWN_OBJECTS",
    "GPT_PARTITION_IDS",
    "BCD_NS",
    "gpt_partition_device",
    "mbr_partition_device",
    "ramdisk_device",
]
