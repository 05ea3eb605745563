"""`ffuforge new KIND …`: scaffold a package project in the workspace.

Each kind lives in its own module `ffuforge.cli.new_<kind>` with `main(argv) -> int`; `KINDS`
names them (one line each, so kinds added side by side merge cleanly).
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

KINDS = {
    "app": "an app package (.appx/.msix/.appxbundle) installed at first boot, with its customizations.xml",
}


def main(argv: Sequence[str]) -> int:
    argv = list(argv)
    if not argv or argv[0] not in KINDS:
        ap = argparse.ArgumentParser(prog="ffuforge new", description="scaffold a package project")
        sub = ap.add_subparsers(dest="kind", required=True, metavar="KIND")
        for name, text in KINDS.items():
            sub.add_parser(name, help=text, add_help=False)
        ap.parse_args(argv)
        return 2
    module = importlib.import_module(f"{__package__}.new_{argv[0]}")
    return module.main(argv[1:])
