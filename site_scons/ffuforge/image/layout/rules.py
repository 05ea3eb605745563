"""The rules a whole DeviceLayout must follow, structural and IoT, checked right after parsing.

Structural: one partition table style, unique names and ids, UseAllSpace only on the last
partition, GPT limits, no MBR types reserved for the table itself. IoT (only with
``<VersionTag>IoTUAP</VersionTag>``, as the kit does): 512-byte sectors, 128 KiB chunks, and the
EFIESP, MainOS and Data partitions with their file systems and sizes.
"""

from __future__ import annotations

from ...errors import ConfigError
from .model import (
    GPT_ENTRY_ARRAY_BYTES,
    GPT_MAX_NAME_CHARS,
    IMGGEN_PARTITION_IDS,
    IOT_EFIESP_MIN_BYTES,
    IOT_MAINOS_FREE_MIN_BYTES,
    IOT_MAINOS_FREE_RECOMMENDED_BYTES,
    DeviceLayout,
    Partition,
)


def validate(layout: DeviceLayout) -> list[str]:
    """Structural and IoT rules; raises on errors, returns warnings."""
    d = layout.display
    S = layout.sector_size
    warnings: list[str] = []
    seen: dict[str, Partition] = {}
    ids: dict[str, Partition] = {}
    first = layout.partitions[0]
    for i, p in enumerate(layout.partitions):
        style = "gpt" if p.type.startswith("{") else "mbr"
        if style != layout.style:
            raise ConfigError(
                f"partition {p.name}: <Type> {p.type} is {style.upper()}-style but partition "
                f"{first.name} (line {first.line}) is {layout.style.upper()}-style; use one table style",
                d,
                p.line_of("Type"),
            )
        key = p.name.lower()
        if key in seen:
            raise ConfigError(
                f"partition name {p.name} is used twice (also on line {seen[key].line}; names are "
                "case-insensitive)",
                d,
                p.line_of("Name"),
            )
        seen[key] = p
        if p.use_all_space and i != len(layout.partitions) - 1:
            others = [q for q in layout.partitions if q.use_all_space and q is not p]
            if others:
                raise ConfigError(
                    f"partitions {p.name} and {others[0].name} both have UseAllSpace; only one (the "
                    "last) partition can take the remaining space",
                    d,
                    others[0].line_of("UseAllSpace"),
                )
            raise ConfigError(
                f"partition {p.name} has UseAllSpace but is not the last partition; move it to the "
                "end of <Partitions>",
                d,
                p.line_of("UseAllSpace"),
            )
        if layout.style == "gpt":
            if len(p.name) > GPT_MAX_NAME_CHARS:
                raise ConfigError(
                    f"partition name {p.name} is longer than {GPT_MAX_NAME_CHARS} characters (GPT limit)",
                    d,
                    p.line_of("Name"),
                )
            fixed = IMGGEN_PARTITION_IDS.get(p.name)
            if fixed and p.id and p.id != fixed:
                warnings.append(
                    f"{d}:{p.line_of('Id')}: partition {p.name}: <Id> {p.id} is replaced by ImgGen's fixed "
                    f"ID {fixed} (BCD stores point at it); remove the <Id>"
                )
            pid = fixed or p.id
            if pid:
                if pid in ids:
                    raise ConfigError(
                        f"partition {p.name}: <Id> {pid} is also used by {ids[pid].name}"
                        + (" (ImgGen's fixed ID for it)" if ids[pid].name in IMGGEN_PARTITION_IDS else ""),
                        d,
                        p.line_of("Id") or p.line_of("Name"),
                    )
                ids[pid] = p
        else:
            if p.id:
                raise ConfigError(
                    f"partition {p.name}: <Id> only applies to GPT partitions; remove it", d, p.line_of("Id")
                )
            if p.type in ("0x00", "0x05", "0x0f", "0xee", "0x85"):
                raise ConfigError(
                    f"partition {p.name}: MBR <Type> {p.type} is reserved for the partition table "
                    "itself; use the file-system type (0x07, 0x0c, …)",
                    d,
                    p.line_of("Type"),
                )
    if layout.style == "gpt" and len(layout.partitions) > GPT_ENTRY_ARRAY_BYTES // 128:
        raise ConfigError(
            f"{len(layout.partitions)} partitions do not fit the 128-entry GPT",
            d,
            layout.lines.get("Partitions"),
        )
    if not layout.is_iot:
        return warnings
    # IoT rules — only with <VersionTag>IoTUAP</VersionTag>, as the kit does.
    tagline = layout.lines.get("VersionTag")
    if S != 512:
        raise ConfigError(
            f"<SectorSize> {S}: IoTUAP layouts require 512", d, layout.lines.get("SectorSize", tagline)
        )
    if layout.chunk_size_kib != 128:
        raise ConfigError(
            f"<ChunkSize> {layout.chunk_size_kib}: IoTUAP layouts require 128",
            d,
            layout.lines.get("ChunkSize", tagline),
        )
    for name in ("EFIESP", "MainOS", "Data"):
        if layout.find(name) is None:
            raise ConfigError(
                f"IoTUAP layouts need a {name} partition (EFIESP, MainOS and Data are mandatory)",
                d,
                layout.lines.get("Partitions"),
            )
    esp = layout.find("EFIESP")
    if esp.filesystem not in ("FAT", "FAT32"):
        raise ConfigError("partition EFIESP must have <FileSystem>FAT</FileSystem>", d, esp.line)
    if esp.total_sectors is None:
        raise ConfigError("partition EFIESP must have a fixed <TotalSectors> (65536 = 32 MiB)", d, esp.line)
    if esp.total_sectors * S < IOT_EFIESP_MIN_BYTES:
        raise ConfigError(
            f"partition EFIESP has {esp.total_sectors} sectors; IoT needs at least "
            f"{IOT_EFIESP_MIN_BYTES // S} (32 MiB)",
            d,
            esp.line_of("TotalSectors"),
        )
    if not esp.required_to_flash:
        warnings.append(f"{d}:{esp.line}: partition EFIESP is not RequiredToFlash (IoT layouts set it)")
    main = layout.find("MainOS")
    if main.filesystem != "NTFS":
        raise ConfigError("partition MainOS must have <FileSystem>NTFS</FileSystem>", d, main.line)
    if main.min_free_sectors is None:
        raise ConfigError(
            "partition MainOS must be sized by <MinFreeSectors> (1048576 = 512 MiB)", d, main.line
        )
    free = main.min_free_sectors * S
    if free < IOT_MAINOS_FREE_MIN_BYTES:
        raise ConfigError(
            f"partition MainOS: <MinFreeSectors> {main.min_free_sectors} is below the minimum "
            f"{IOT_MAINOS_FREE_MIN_BYTES // S}; use 1048576 (512 MiB)",
            d,
            main.line_of("MinFreeSectors"),
        )
    if free < IOT_MAINOS_FREE_RECOMMENDED_BYTES:
        warnings.append(
            f"{d}:{main.line_of('MinFreeSectors')}: MainOS <MinFreeSectors> "
            f"{main.min_free_sectors} is below the kit's {IOT_MAINOS_FREE_RECOMMENDED_BYTES // S}"
        )
    data = layout.find("Data")
    if data.filesystem != "NTFS":
        raise ConfigError("partition Data must have <FileSystem>NTFS</FileSystem>", d, data.line)
    if not data.use_all_space:
        raise ConfigError("partition Data must have <UseAllSpace>true</UseAllSpace>", d, data.line)
    return warnings
