"""The human-readable partition table `ffuforge layout` prints for a placed disk."""

from __future__ import annotations

from ...formats.disklayout import DiskLayout

# -------------------------------------------------------------------------------------- display


def _human(n: int) -> str:
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n} B"


def format_layout(disk: DiskLayout) -> str:
    """Human-readable table for `ffuforge layout`."""
    S = disk.sector_size
    head = (
        f"{disk.style.upper()} disk {disk.disk_id}: {disk.total_sectors} sectors × {S} B = "
        f"{_human(disk.total_bytes)}, FFU chunk {disk.chunk_size // 1024} KiB"
    )
    if disk.platform_ids:
        head += f", platform {';'.join(disk.platform_ids)}"
    rows = [("#", "name", "type", "start", "sectors", "size", "fs", "cluster", "flags")]
    for i, p in enumerate(disk.partitions, 1):
        flags = []
        if p.bootable:
            flags.append("bootable")
        if p.required_to_flash:
            flags.append("flash")
        for k, v in sorted(p.attributes.items()):
            flags.append(k if v else f"!{k}")
        rows.append(
            (
                str(i),
                p.name,
                p.type,
                str(p.first_sector),
                str(p.sector_count),
                _human(p.sector_count * S),
                p.filesystem or "raw",
                str(p.cluster_size) if p.cluster_size else "-",
                ",".join(flags) or "-",
            )
        )
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    right = {0, 3, 4, 5, 7}
    lines = [head]
    for r in rows:
        lines.append(
            "  ".join(
                v.rjust(w) if c in right else v.ljust(w)
                for c, (v, w) in enumerate(zip(r, widths, strict=True))
            ).rstrip()
        )
    end = max((p.first_sector + p.sector_count for p in disk.partitions), default=0)
    lines.append(f"unallocated after the last partition: {disk.total_sectors - end} sectors")
    return "\n".join(lines) + "\n"
