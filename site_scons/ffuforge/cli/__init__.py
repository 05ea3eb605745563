"""`ffuforge` command line: pkggen-style package builds and CAB inspection outside SCons."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .. import __version__
from ..errors import FFUError


def _variables(text: str | None) -> tuple[tuple[str, str], ...]:
    out = []
    for item in (text or "").split(";"):
        if not item.strip():
            continue
        if "=" not in item:
            raise FFUError(f"--variables item {item!r} is not NAME=VALUE")
        key, value = item.split("=", 1)
        out.append((key.strip(), value))
    return tuple(sorted(out))


def cmd_package(args) -> int:
    from ..package import build as pkgbuild
    from ..package import project, variant

    opts = variant.BuildOptions(
        cpu=args.cpu,
        version=args.version,
        variables=_variables(args.variables),
        languages=tuple(x for x in (args.languages or "").split(";") if x),
        build_type=args.build,
    )
    path = Path(args.project)
    variants = variant.plan(project.load(path, str(path)), opts, str(path.parent), top=Path.cwd())
    out = Path(args.output)
    for v in variants:
        pkgbuild.build_variant(v, out / v.cab_name, pkgbuild.BuildSettings(args.compression, args.epoch))
        print(out / v.cab_name)
    return 0


def cmd_cab(args) -> int:
    from ..formats.cab import CabReader

    with CabReader(args.cab) as cab:
        if args.action == "list":
            for m in cab.members:
                print(f"{m.size:>12}  {m.name}")
        else:
            dest = Path(args.dest or ".")
            for p in cab.extract_all(dest):
                print(p)
    return 0


def cmd_verify(args) -> int:
    from ..signing import verify

    return verify.verify_main(args.files, args.root or None)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="ffuforge", description="Windows IoT Core packages and images on Linux")
    ap.add_argument("--version", action="version", version=f"ffuforge {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("package", help="build the CAB(s) of one .wm.xml/.pkg.xml (like pkggen)")
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
    p.set_defaults(func=cmd_package)

    c = sub.add_parser("cab", help="list or extract a CAB (safe against hostile archives)")
    c.add_argument("action", choices=("list", "extract"))
    c.add_argument("cab")
    c.add_argument("dest", nargs="?")
    c.set_defaults(func=cmd_cab)

    v = sub.add_parser("verify", help="check signatures and catalog membership of CABs, catalogs or PE files")
    v.add_argument("files", nargs="+")
    v.add_argument("--root", action="append", help="trusted root certificate (PEM/DER); repeatable")
    v.set_defaults(func=cmd_verify)
    for name, (_, _, help_text) in _DELEGATED.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return ap


# Subcommands with their own argument parsing, implemented next to the code they drive.
_DELEGATED = {
    "features": ("features", "features_main", "resolve an OEMInput into the image's package set"),
    "ffu": ("ffu", "ffu_main", "inspect, verify or unpack an FFU: info | verify | to-raw"),
    "layout": ("layout", "layout_main", "compute and check a device layout (DeviceLayout.xml)"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in _DELEGATED:
        module, func, _ = _DELEGATED[argv[0]]
        import importlib

        try:
            return getattr(importlib.import_module(f"ffuforge.{module}"), func)(argv[1:])
        except KeyboardInterrupt:
            print("ffuforge: interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:  # `ffuforge ffu info x | head`
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except FFUError as exc:
        print(f"ffuforge: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ffuforge: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
