"""`ffuforge cab list|extract X.cab [DIR]`: a CAB's members, safe against hostile archives."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from ..formats.cab import CabReader
from .files import input_file, output_dir


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ffuforge cab", description="list or extract a CAB")
    p.add_argument("action", choices=("list", "extract"))
    p.add_argument("cab")
    p.add_argument("dest", nargs="?")
    args = p.parse_args(argv)
    input_file(args.cab, "a CAB file")
    if args.action == "extract":
        output_dir(args.dest or ".")
    with CabReader(args.cab) as cab:
        if args.action == "list":
            for m in cab.members:
                print(f"{m.size:>12}  {m.name}")
        else:
            for path in cab.extract_all(Path(args.dest or ".")):
                print(path)
    return 0
