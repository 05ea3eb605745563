"""`ffuforge ffu info|verify|to-raw FILE [OUT]`: inspect, verify and unpack FFU images."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import FFUError
from ..formats.ffu import FfuReader


def main(argv: Sequence[str] | None = None) -> int:
    """`ffuforge ffu info|verify|to-raw FILE [OUT]`."""
    ap = argparse.ArgumentParser(prog="ffuforge ffu", description="inspect, verify and unpack FFU images")
    sub = ap.add_subparsers(dest="action", required=True)
    p = sub.add_parser("info", help="headers, manifest, stores and the partition table")
    p.add_argument("file")
    p = sub.add_parser("verify", help="check every chunk hash, the catalog and its signature")
    p.add_argument("file")
    p.add_argument("--root", action="append", default=[], help="trusted root certificate (PEM/DER)")
    p = sub.add_parser("to-raw", help="write the (sparse) raw disk image of a store")
    p.add_argument("file")
    p.add_argument("out")
    p.add_argument("--store", type=int, default=1, help="store number (1-based, default 1)")
    args = ap.parse_args(argv)
    try:
        with FfuReader(args.file) as r:
            if args.action == "info":
                print(r.info())
            elif args.action == "verify":
                from ..signing.verify import catalog_signature_problems, load_certificates

                roots = load_certificates(args.root) if args.root else None

                def check(der: bytes, signers: list[str]) -> list[str]:
                    return catalog_signature_problems(der, roots, where="catalog", signers=signers)

                res = r.verify(catalog_check=check)
                for line in res.problems:
                    print(f"{args.file}: {line}", file=sys.stderr)
                if not res.ok:
                    return 1
                print(
                    f"{args.file}: OK ({res.chunks} chunks, catalog {'signed' if res.signed else 'unsigned'})"
                )
            else:
                r.to_raw(args.out, args.store - 1)
                print(args.out)
    except FFUError as e:
        print(f"ffuforge: {e}", file=sys.stderr)
        return 1
    return 0
