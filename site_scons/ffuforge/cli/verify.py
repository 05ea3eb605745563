"""`ffuforge verify FILE… [--root CERT]`: signatures and catalog membership of CABs, catalogs and PE files."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable, Sequence

from ..errors import FFUError
from ..formats import pe
from ..signing.verify import load_certificates, verify_cab, verify_catalog, verify_pe
from ..util.paths import open_regular
from .files import input_files


def _kind(path: str) -> str:
    with os.fdopen(open_regular(path), "rb") as f:  # a FIFO or a directory: one line, no hang
        head = f.read(4)
    if head == b"MSCF":
        return "cab"
    if head[:2] == b"MZ" and pe.is_pe(path):
        return "pe"
    return "catalog"


def verify_files(paths: Iterable[str | os.PathLike], roots: Iterable[str | os.PathLike] | None = None) -> int:
    """Verify CABs, PE files and catalogs; print `OK <file>` or `<file>: <problem>` lines.

    `roots` are certificate files to trust (None: only check internal consistency). Returns
    0 when every file verifies, 1 otherwise. Unreadable root files raise FFUError.
    """
    trusted = load_certificates(roots) if roots is not None else None
    failed = False
    for p in paths:
        p = str(p)
        try:
            kind = _kind(p)
        except OSError as e:
            print(f"{p}: cannot read: {e.strerror or e}")
            failed = True
            continue
        except FFUError as e:
            print(f"{p}: {e.message}")
            failed = True
            continue
        verify = {"cab": verify_cab, "pe": verify_pe, "catalog": verify_catalog}[kind]
        report = verify(p, trusted_roots=trusted)
        if report.ok:
            print(f"OK {p}")
        else:
            failed = True
            for problem in report.problems:
                print(f"{p}: {problem}")
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="ffuforge verify",
        description="check signatures and catalog membership of CABs, catalogs or PE files",
    )
    ap.add_argument("files", nargs="+")
    ap.add_argument("--root", action="append", help="trusted root certificate (PEM/DER); repeatable")
    args = ap.parse_args(argv)
    input_files(args.root, "a certificate file")
    return verify_files(args.files, args.root or None)
