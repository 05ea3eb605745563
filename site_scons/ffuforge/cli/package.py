"""`ffuforge package X.wm.xml`: the CAB(s) of one package project, like pkggen."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..util.assignments import parse_assignments
from .files import input_file, output_dir


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="ffuforge package", description="build the CAB(s) of one .wm.xml/.pkg.xml"
    )
    p.add_argument("project")
    p.add_argument("--cpu", default="arm", help="x86, amd64, arm or arm64 (default arm)")
    p.add_argument("--version", default="1.0.0.0", help="package version a.b.c.d")
    p.add_argument("--variables", help="'NAME=VALUE;NAME=VALUE' build variables")
    p.add_argument("--languages", help="';'-separated languages for language packages")
    p.add_argument("--build", default="fre", choices=("fre", "chk"))
    p.add_argument("--compression", default="none", choices=("none", "mszip"))
    p.add_argument(
        "--epoch", type=int, default=1577836800, help="SOURCE_DATE_EPOCH for catalog and CAB dates"
    )
    p.add_argument("--output", "-o", default=".", help="output directory")
    args = p.parse_args(argv)
    input_file(args.project, "a .wm.xml or .pkg.xml file")
    output_dir(args.output)

    from ..package import build, project, variant

    opts = variant.BuildOptions(
        cpu=args.cpu,
        version=args.version,
        variables=tuple(sorted(parse_assignments(args.variables, "--variables").items())),
        languages=tuple(x for x in (args.languages or "").split(";") if x),
        build_type=args.build,
    )
    path = Path(args.project)
    variants = variant.plan(
        project.load(path, str(path)), opts, str(path.parent), top=Path.cwd(), driver_files=True
    )
    out = Path(args.output)
    for v in variants:
        for line in dict.fromkeys(v.warnings):
            print(line, file=sys.stderr)
        build.build_variant(v, out / v.cab_name, build.BuildSettings(args.compression, args.epoch))
        print(out / v.cab_name)
    return 0
