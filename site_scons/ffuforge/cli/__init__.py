"""`ffuforge` command line: one module per subcommand, each with `main(argv) -> int`.

The dispatcher imports only the subcommand asked for (the package's heavier modules load on use),
and turns a user mistake (:class:`FFUError`) into one `ffuforge: error: …` line and exit 2, an OS
error (no space, read-only, permission denied) into one such line and exit 1.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from .. import __version__
from ..errors import FFUError

# name -> one-line help; the module is ffuforge.cli.<name> (dashes become underscores)
COMMANDS = {
    "package": "build the CAB(s) of one .wm.xml/.pkg.xml (like pkggen)",
    "cab": "list or extract a CAB (safe against hostile archives)",
    "verify": "check signatures and catalog membership of CABs, catalogs or PE files",
    "features": "resolve an OEMInput into the image's package set",
    "layout": "compute and check a device layout (DeviceLayout.xml)",
    "ffu": "inspect, verify or unpack an FFU: info | verify | to-raw",
    "diff": "compare two images (build folders or FFUs): packages, files, registry, partitions, layout",
    "bcd": "dump a BCD store (a store, an EFIESP image or an FFU) as objects and elements",
    "sign": "re-sign existing CABs (catalog and CAB) with your certificate, in place",
    "certs": "create an OEM test or production PKI (like New-IoTOEMCerts): certs new --test|--production DIR",
    "ls": "list an image's files with size, SHA-256 and owning package (FFU, raw disk or partition image)",
    "cat": "write a file of an image to stdout",
    "reg": "print a registry key of an image, reg-query style",
    "services": "list an image's services and drivers",
    "drivers": "list an image's drivers and driver store packages",
    "bsp": "bsp build ROOT --board NAME: a BSP tree as shipped to a board image (writes a workspace)",
    "settings": "list the SCons tool's construction variables and command-line options",
    "new": "create a driver, file or registry package, a product, a board, a feature or an app",
    "feature": "select (add) or drop (remove) a feature in a product's OEMInputs",
    "convert": "convert a legacy .pkg.xml package project to .wm.xml",
}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="ffuforge", description="Windows IoT Core packages and images on Linux")
    ap.add_argument("--version", action="version", version=f"ffuforge {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in COMMANDS:
        build_parser().parse_args(argv)  # --help, --version, or a usage error (exit 2)
        return 2
    try:
        module = importlib.import_module(f"{__name__}.{argv[0].replace('-', '_')}")
        return module.main(argv[1:])
    except FFUError as exc:
        for line in str(exc).split("\n"):  # several missing inputs: one line each
            print(f"ffuforge: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ffuforge: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `ffuforge ffu info x | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:  # no space, read-only, permission denied: one line, never a traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"ffuforge: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
