"""The FFU manifest: the ASCII/CRLF `[FullFlash]`/`[Store]`/`[Partition]` text after the image
header, built from disk layouts when writing and parsed back when reading.

Separate from the writer and the reader because both use it (the writer for the text and for
validated device paths and platform IDs, the reader for the store sections).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ...errors import ConfigError, FormatError
from ..disklayout import DiskLayout, PlacedPartition
from .structs import DEVICE_PATH_EMMC_USER, DEVICE_PATH_UFS_LUN0, FfuStore


def _category(name: str, items: Sequence[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in items)
    lines = [f"[{name}]"]
    for key, value in items:
        first, *more = value.split("\n")
        lines.append(f"{key.ljust(width)} = {first}")
        lines.extend(more)  # Description continuation lines
    return "\r\n".join(lines) + "\r\n\r\n"


def check_ascii(value: str, what: str, *, multiline: bool = False) -> str:
    for i, line in enumerate(value.split("\n") if multiline else [value]):
        if (
            not line.isascii()
            or any(c < " " for c in line)
            or (i and ("=" in line or line.lstrip().startswith("[")))
        ):
            raise ConfigError(
                f"FFU manifest {what} {value!r} must be printable ASCII"
                + (" (continuation lines without '=' or '[')" if multiline else "")
            )
    return value


def _bool(v: bool) -> str:
    return "True" if v else "False"


def _partition_items(layout: DiskLayout, p: PlacedPartition) -> list[tuple[str, str]]:
    flags = {k.lower(): v for k, v in p.attributes.items()}
    items = [("Name", p.name), ("Type", p.type), ("Primary", _bool(bool(flags.get("primarypartition"))))]
    if p.id:
        items.append(("Id", p.id))
    if flags.get("useallspace"):
        items.append(("UseAllSpace", "true"))
    else:
        items += [("TotalSectors", str(p.sector_count)), ("UsedSectors", str(p.sector_count))]
    if p.filesystem:
        items.append(("FileSystem", p.filesystem))
    for key in ("ReadOnly", "Hidden", "AttachDriveLetter"):
        if key.lower() in flags:
            items.append((key, _bool(flags[key.lower()])))
    if p.bootable:
        items.append(("Bootable", "True"))
    if p.cluster_size:
        items.append(("ClusterSize", str(p.cluster_size)))
    if p.required_to_flash:
        items.append(("RequiredToFlash", "True"))
    return [(k, check_ascii(v, k)) for k, v in items]


def build_manifest(
    stores: Sequence[FfuStore],
    *,
    version: int = 1,
    os_version: str | None = None,
    description: str | None = None,
    antitheft_version: str = "1.1",
    only_defined_gpt_entries: bool = False,
) -> bytes:
    """The manifest text (ASCII, CRLF) as ImgGen writes it."""
    main = stores[0].layout
    ff: list[tuple[str, str]] = []
    if description:
        ff.append(
            ("Description", check_ascii(description.replace("\r\n", "\n"), "Description", multiline=True))
        )
    ff.append(("Version", "2.0"))
    if os_version:
        if not re.fullmatch(r"\d+\.\d+\.\d+\.\d+", os_version):
            raise ConfigError(f"OS version {os_version!r} is not a.b.c.d")
        ff.append(("OSVersion", os_version))
    ff += [("AntiTheftVersion", check_ascii(antitheft_version, "AntiTheftVersion")), ("UEFI", "True")]
    ff += [
        (f"DevicePlatformId{i}", check_ascii(pid, "DevicePlatformId"))
        for i, pid in enumerate(main.platform_ids)
    ]
    text = _category("FullFlash", ff)
    for k, st in enumerate(stores):
        items = [("SectorSize", str(st.layout.sector_size)), ("MinSectorCount", str(st.layout.total_sectors))]
        if st.store_id:
            items.append(("StoreId", check_ascii(st.store_id, "StoreId")))
        items.append(("IsMainOSStore", _bool(_is_main(st, k))))
        if version == 2:
            items.append(("DevicePath", check_ascii(store_device_path(st, k), "DevicePath")))
        items += [
            ("OnlyAllocateDefinedGptEntries", _bool(only_defined_gpt_entries)),
            ("StoreType", "Default"),
        ]
        text += _category("Store", items)
        for p in st.layout.partitions:
            text += _category("Partition", _partition_items(st.layout, p))
    return text.encode("ascii")


def _is_main(st: FfuStore, k: int) -> bool:
    return st.is_main_os if st.is_main_os is not None else k == 0


def store_device_path(st: FfuStore, k: int) -> str:
    if st.device_path:
        return st.device_path
    if k == 0:
        return DEVICE_PATH_EMMC_USER
    raise ConfigError(f"store {k + 1} needs a device path (e.g. {DEVICE_PATH_UFS_LUN0})")


def parse_manifest(text: str) -> list[tuple[str, dict[str, str]]]:
    """[(category, {key: value})] in file order; keys keep their spelling, lookups use lower()."""
    out: list[tuple[str, dict[str, str]]] = []
    last_key = None
    for n, raw in enumerate(text.split("\n"), 1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        m = re.fullmatch(r"\s*\[([^\]]*)\]\s*", line)
        if m:
            out.append((m.group(1).strip(), {}))
            last_key = None
            continue
        m = re.fullmatch(r"\s*([^\s=]+)\s*=\s*(.*?)\s*", line)
        if m and out:
            key, value = m.groups()
            if key.lower() in {k.lower() for k in out[-1][1]}:
                raise FormatError(f"manifest line {n}: key {key} repeated in [{out[-1][0]}]")
            out[-1][1][key] = value
            last_key = key
            continue
        if out and last_key and last_key.lower() == "description":
            out[-1][1][last_key] += "\n" + line.strip()
            continue
        raise FormatError(f"manifest line {n}: {line[:60]!r} is neither [category] nor key = value")
    return out
