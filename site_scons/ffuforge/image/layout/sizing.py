"""Sizing and placing partitions: the one place every offset of the disk is decided.

ImgGen's exact sizing arithmetic is not published, so every placement decision lives in
:func:`compute_layout` and everything downstream (partition writers, disk assembly, FFU writer)
reads the resulting :class:`~ffuforge.formats.disklayout.DiskLayout` instead of re-deriving
offsets. :func:`mbr_plan` says where MBR entries and EBRs go in that placement.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from ...errors import ConfigError
from ...formats.disklayout import DiskLayout, PlacedPartition
from .model import (
    GPT_DISK_GUID,
    GPT_ENTRY_ARRAY_BYTES,
    IMGGEN_PARTITION_IDS,
    MBR_DISK_ID,
    MIN_USE_ALL_SPACE_BYTES,
    DeviceLayout,
    DevicePlatform,
    Partition,
)

# --------------------------------------------------------------------------------------- sizing


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _align_up(x: int, a: int) -> int:
    return _ceil_div(x, a) * a


def estimate_used_bytes(
    filesystem: str | None,
    content_bytes: int,
    *,
    cluster_size: int | None = None,
    files: int | None = None,
    volume_bytes: int | None = None,
) -> int:
    """Bytes a partition needs for `content_bytes` of payload, file-system overhead included.

    A margin, not a measurement: per file half a cluster of slack (+1 KiB MFT record on NTFS), or
    1/16 of the payload when the file count is unknown; NTFS metadata ≈ 0.5 % of the volume
    (mkntfs measured) + 4 MiB; FAT: two FATs + 1 MiB. Raw partitions: the bytes as they are.
    """
    if filesystem is None:
        return content_bytes
    if content_bytes == 0 and not files:
        slack = 0
    elif files is None:
        slack = content_bytes // 16
    else:
        per = (cluster_size or 4096) // 2 + (1024 if filesystem == "NTFS" else 64)
        slack = files * per
    data = content_bytes + slack
    if filesystem == "NTFS":
        vol = volume_bytes if volume_bytes is not None else data
        return data + vol // 200 + 4 * 1024 * 1024
    cluster = cluster_size or 4096
    return data + 2 * 4 * _ceil_div(volume_bytes or data, cluster) + 1024 * 1024


def check_partitions(layout: DeviceLayout, names: Iterable) -> list[str]:
    """Canonical layout names for package target partitions; FFUError for one the layout lacks.

    `names` holds partition names or ``(name, file, line)`` tuples locating the reference.
    """
    out = []
    for item in names:
        name, file, line = (item, None, None) if isinstance(item, str) else item
        p = layout.find(name)
        if p is None:
            have = ", ".join(q.name for q in layout.partitions)
            raise ConfigError(
                f"partition {name} is targeted by a package but {layout.display} has no such "
                f"partition (it has {have})",
                file,
                line,
            )
        out.append(p.name)
    return out


def _alignment_sectors(layout: DeviceLayout, p: Partition) -> int:
    S = layout.sector_size
    if p.byte_alignment:
        return p.byte_alignment // S
    if p.sector_alignment:
        return p.sector_alignment
    return layout.default_alignment // S


def _gpt_table_sectors(S: int) -> int:
    return _ceil_div(GPT_ENTRY_ARRAY_BYTES, S)


def compute_layout(
    layout: DeviceLayout,
    platform: DevicePlatform | None,
    content_bytes: dict[str, int] | None = None,
    *,
    content_files: dict[str, int] | None = None,
) -> DiskLayout:
    """Size and place every partition.

    `content_bytes`: payload bytes staged into each partition (raw: image size); `content_files`
    optionally refines the file-system overhead estimate. Without `platform` the disk is the
    smallest whole number of FFU chunks that holds everything.
    """
    d = layout.display
    S = layout.sector_size
    chunk = layout.chunk_size_kib * 1024
    chunk_sectors = chunk // S
    content = dict(content_bytes or {})
    files = dict(content_files or {})
    check_partitions(layout, [(n, d, None) for n in list(content) + list(files)])
    content = {layout.find(k).name.lower(): v for k, v in content.items()}
    files = {layout.find(k).name.lower(): v for k, v in files.items()}
    for k, v in content.items():
        if v < 0:
            raise ConfigError(f"content size for {k} is negative")

    if layout.style == "gpt":
        table = _gpt_table_sectors(S)
        first_usable, tail = 2 + table, table + 1
    else:
        first_usable, tail = 1, 0
    N = platform.min_sector_count if platform else None
    pd = platform.display if platform else d
    pline = platform.lines.get("MinSectorCount") if platform else None
    if N is not None and (N * S) % chunk:
        raise ConfigError(
            f"<MinSectorCount> {N} × {S} bytes is not a multiple of the {chunk // 1024} KiB FFU "
            f"block; use a multiple of {chunk_sectors} sectors (e.g. {_align_up(N, chunk_sectors)})",
            pd,
            pline,
        )
    if N is not None and N <= first_usable + tail:
        raise ConfigError(f"<MinSectorCount> {N} is too small for any partition", pd, pline)
    logical_from = 3 if layout.style == "mbr" and len(layout.partitions) > 4 else None
    min_last = _ceil_div(MIN_USE_ALL_SPACE_BYTES, S)

    placed: list[tuple[Partition, int, int]] = []
    cursor = first_usable
    prev = "the partition table"
    N_eff = N
    for i, p in enumerate(layout.partitions):
        align = _alignment_sectors(layout, p)
        ebr = 1 if logical_from is not None and i >= logical_from else 0
        if p.offset_in_sectors is not None:
            start = p.offset_in_sectors
            if start - ebr < cursor:
                need = " (plus one sector for its EBR)" if ebr else ""
                raise ConfigError(
                    f"partition {p.name}: <OffsetInSectors> {start} overlaps {prev}, which ends at "
                    f"sector {cursor - 1}{need}",
                    d,
                    p.line_of("OffsetInSectors"),
                )
        else:
            start = _align_up(cursor + ebr, align)
        key = p.name.lower()
        have = content.get(key, 0)
        if p.total_sectors is not None:
            size = p.total_sectors
            need = (
                estimate_used_bytes(
                    p.filesystem,
                    have,
                    cluster_size=p.cluster_size,
                    files=files.get(key),
                    volume_bytes=size * S,
                )
                if (have or files.get(key))
                else 0
            )
            if need > size * S:
                what = "bytes" if p.filesystem is None else "bytes with file-system overhead"
                raise ConfigError(
                    f"partition {p.name}: content needs about {need} {what} but the partition holds "
                    f"{size * S} ({size} sectors); enlarge <TotalSectors> or remove content",
                    d,
                    p.line_of("TotalSectors"),
                )
        elif p.min_free_sectors is not None:
            used = estimate_used_bytes(
                p.filesystem,
                have,
                cluster_size=p.cluster_size,
                files=files.get(key),
                volume_bytes=have + p.min_free_sectors * S,
            )
            size = _ceil_div(used, S) + p.min_free_sectors
            if platform and key == "mainos":
                size += platform.additional_mainos_free_sectors + platform.mainos_rtc_reserved_sectors
            size = _align_up(size, align)
        else:  # UseAllSpace: validated to be the last partition
            if N_eff is None:
                want = _align_up(max(min_last, align), align)
                N_eff = _align_up(start + want + tail, chunk_sectors)
            last_usable = N_eff - 1 - tail
            size = ((last_usable - start + 1) // align) * align if last_usable >= start else 0
            need = (
                estimate_used_bytes(
                    p.filesystem,
                    have,
                    cluster_size=p.cluster_size,
                    files=files.get(key),
                    volume_bytes=max(size, 0) * S,
                )
                if have
                else 0
            )
            if size < min_last or size * S < need:
                want = max(min_last * S, need)
                raise ConfigError(
                    f"the layout does not fit the disk: partition {p.name} (UseAllSpace) would get "
                    f"{max(size, 0)} sectors starting at {start}, needs at least {_ceil_div(want, S)}; "
                    f"MinSectorCount {N_eff} is too small or the partitions before it too large",
                    pd,
                    pline,
                )
        placed.append((p, start, size))
        cursor = start + size
        prev = f"partition {p.name}"
    if N_eff is None:
        N_eff = _align_up(cursor + tail, chunk_sectors)
    if cursor > N_eff - tail:
        raise ConfigError(
            f"the layout does not fit the disk: its partitions end at sector {cursor - 1} but "
            f"MinSectorCount {N_eff} leaves sectors up to {N_eff - 1 - tail} usable",
            pd,
            pline,
        )
    if layout.style == "mbr" and N_eff > 0xFFFFFFFF:
        raise ConfigError(
            f"MBR disks cannot address {N_eff} sectors (32-bit limit); use a GPT layout", pd, pline
        )

    parts = []
    ns = uuid.UUID(GPT_DISK_GUID)
    for p, start, size in placed:
        pid = None
        if layout.style == "gpt":
            pid = IMGGEN_PARTITION_IDS.get(p.name) or p.id or "{" + str(uuid.uuid5(ns, p.name.lower())) + "}"
        parts.append(
            PlacedPartition(
                name=p.name,
                type=p.type,
                first_sector=start,
                sector_count=size,
                filesystem=p.filesystem,
                cluster_size=p.cluster_size,
                id=pid,
                bootable=p.bootable,
                required_to_flash=p.required_to_flash,
                attributes=dict(p.attributes),
            )
        )
    return DiskLayout(
        style=layout.style,
        sector_size=S,
        chunk_size=chunk,
        total_sectors=N_eff,
        partitions=tuple(parts),
        platform_ids=platform.platform_ids if platform else (),
        disk_id=GPT_DISK_GUID if layout.style == "gpt" else MBR_DISK_ID,
    )


@dataclass(frozen=True)
class MbrPlan:
    """Where MBR table entries go: slots 1-4 of sector 0, then the EBR chain."""

    primary: tuple[PlacedPartition, ...]
    extended_start: int | None = None  # first EBR sector (start of the extended partition)
    extended_sectors: int = 0
    logical: tuple[tuple[int, PlacedPartition], ...] = ()  # (EBR sector, partition)


def mbr_plan(disk: DiskLayout) -> MbrPlan:
    """The MBR slot assignment :func:`compute_layout` reserved space for."""
    if disk.style != "mbr":
        raise ValueError("mbr_plan needs an MBR layout")
    parts = disk.partitions
    if len(parts) <= 4:
        return MbrPlan(primary=parts)
    logical = tuple((p.first_sector - 1, p) for p in parts[3:])
    start = logical[0][0]
    last = parts[-1]
    return MbrPlan(
        primary=parts[:3],
        extended_start=start,
        extended_sectors=last.first_sector + last.sector_count - start,
        logical=logical,
    )
