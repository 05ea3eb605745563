"""`ffuforge layout DeviceLayout.xml`: compute and check a device layout, and show it."""

from __future__ import annotations

import argparse
import re
import sys

from ..errors import FFUError
from ..image.layout import compute_layout, format_layout, load_device_layout, load_device_platform
from .files import input_file

_SUFFIX = {"": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gib": 1 << 30}


def _content_arg(text: str) -> tuple[str, int]:
    name, sep, value = text.partition("=")
    m = re.match(r"^\s*(0[xX][0-9a-fA-F]+|[0-9]+)\s*([A-Za-z]*)\s*$", value)
    if not sep or not name.strip() or not m or m.group(2).lower() not in _SUFFIX:
        raise FFUError(f"--content {text!r}: expected NAME=BYTES (suffix K, M or G allowed)")
    return name.strip(), int(m.group(1), 0) * _SUFFIX[m.group(2).lower()]


def main(argv: list[str] | None = None) -> int:
    """`ffuforge layout DeviceLayout.xml [--platform OEMDevicePlatform.xml] [--content MainOS=BYTES …]`."""
    ap = argparse.ArgumentParser(prog="ffuforge layout", description="compute and show a device layout")
    ap.add_argument("layout", help="DeviceLayout.xml")
    ap.add_argument("--platform", help="OEMDevicePlatform.xml (disk size); without it the disk is minimal")
    ap.add_argument(
        "--content",
        action="append",
        default=[],
        metavar="NAME=BYTES",
        help="payload bytes staged into a partition (repeatable; K/M/G suffixes)",
    )
    args = ap.parse_args(argv)
    try:
        input_file(args.layout, "a DeviceLayout XML file")
        if args.platform:
            input_file(args.platform, "an OEMDevicePlatform XML file")
        layout = load_device_layout(args.layout, args.layout)
        platform = load_device_platform(args.platform, args.platform) if args.platform else None
        content = dict(_content_arg(c) for c in args.content)
        disk = compute_layout(layout, platform, content)
    except FFUError as exc:
        print(f"ffuforge: error: {exc}", file=sys.stderr)
        return 2
    for w in layout.warnings:
        print(f"ffuforge: warning: {w}", file=sys.stderr)
    if platform and platform.compressed_partitions:
        print(
            f"ffuforge: note: {', '.join(platform.compressed_partitions)} listed in CompressedPartitions "
            "are written uncompressed (no WOF/CompactOS on Linux) and sized accordingly",
            file=sys.stderr,
        )
    sys.stdout.write(format_layout(disk))
    return 0
