"""`ffuforge settings [--markdown]`: every construction variable and command-line option of the tool."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="ffuforge settings", description="the SCons tool's variables and options"
    )
    ap.add_argument("--markdown", action="store_true", help="the README's table")
    args = ap.parse_args(argv)
    from ..scons_tool import settings

    print(settings.markdown() if args.markdown else settings.help_text(), end="")
    return 0
