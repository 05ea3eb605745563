"""DeviceLayout.xml / OEMDevicePlatform.xml models and the one function that places partitions.

ImgGen's exact sizing arithmetic is not published, so every placement decision lives in
:func:`compute_layout` and everything downstream (partition writers, disk assembly, FFU writer)
reads the resulting :class:`~ffuforge.formats.disklayout.DiskLayout` instead of re-deriving
offsets.

Conventions chosen where Microsoft's documentation leaves room (all deterministic):

* GPT unique partition GUIDs: ``MainOS``, ``EFIESP`` and ``MMOS`` (exact spelling) get ImgGen's
  fixed IDs (:data:`IMGGEN_PARTITION_IDS`, which win over a layout ``Id`` as in ImgGen), so BCD
  stores built by Microsoft's tools find them; others the layout's ``Id``, else
  ``uuid5(<normalised disk GUID>, name.lower())`` (ImgGen: random). All GUIDs (disk, type, id) are lower case in braces.
* Content-sized partitions (``MinFreeSectors``): payload bytes plus a file-system overhead
  estimate (:func:`estimate_used_bytes`), plus ``MinFreeSectors`` (plus the OEMDevicePlatform
  MainOS reserves for MainOS), rounded up to the partition alignment.
* ``UseAllSpace``: the space up to the last usable sector, rounded down to the alignment; it
  must keep at least :data:`MIN_USE_ALL_SPACE_BYTES`. Without an OEMDevicePlatform the disk is
  made just big enough (whole FFU chunks) for such a minimal last partition.
* MBR with more than four partitions: slots 1-3 primary, slot 4 the extended partition
  (type 0x0f); every logical partition's EBR is the sector right before it (placement reserves
  it), see :func:`mbr_plan`.

This package re-exports its parts, so `from ffuforge.image.layout import X` names any of them:
`model` (models, constants), `parse` (the two XML files), `rules` (structural and IoT layout
rules), `sizing` (sizing, placement, MBR plan, partition name checks) and `display` (the table
`ffuforge layout` prints).
"""

from __future__ import annotations

from .display import (
    format_layout,
)
from .model import (
    BASIC_DATA_TYPE,
    DEFAULT_PARTITION_ALIGNMENT,
    EFI_SYSTEM_TYPE,
    FILESYSTEMS,
    GPT_DISK_GUID,
    GPT_ENTRY_ARRAY_BYTES,
    GPT_MAX_NAME_CHARS,
    IMAGEUPDATE_NS,
    IMGGEN_PARTITION_IDS,
    IOT_EFIESP_MIN_BYTES,
    IOT_MAINOS_FREE_MIN_BYTES,
    IOT_MAINOS_FREE_RECOMMENDED_BYTES,
    MAX_RTC_RESERVED_SECTORS,
    MBR_DISK_ID,
    MBR_EXTENDED_TYPE,
    MIN_USE_ALL_SPACE_BYTES,
    DeviceLayout,
    DevicePlatform,
    Partition,
)
from .parse import (
    load_device_layout,
    load_device_platform,
)
from .sizing import (
    MbrPlan,
    check_partitions,
    compute_layout,
    estimate_used_bytes,
    mbr_plan,
)

__all__ = [
    "BASIC_DATA_TYPE",
    "DEFAULT_PARTITION_ALIGNMENT",
    "DeviceLayout",
    "DevicePlatform",
    "EFI_SYSTEM_TYPE",
    "FILESYSTEMS",
    "GPT_DISK_GUID",
    "GPT_ENTRY_ARRAY_BYTES",
    "GPT_MAX_NAME_CHARS",
    "IMGGEN_PARTITION_IDS",
    "IMAGEUPDATE_NS",
    "IOT_EFIESP_MIN_BYTES",
    "IOT_MAINOS_FREE_MIN_BYTES",
    "IOT_MAINOS_FREE_RECOMMENDED_BYTES",
    "MAX_RTC_RESERVED_SECTORS",
    "MBR_DISK_ID",
    "MBR_EXTENDED_TYPE",
    "MIN_USE_ALL_SPACE_BYTES",
    "MbrPlan",
    "Partition",
    "check_partitions",
    "compute_layout",
    "estimate_used_bytes",
    "format_layout",
    "load_device_layout",
    "load_device_platform",
    "mbr_plan",
]
