"""`ffuforge verify FILE… [--root CERT]`: signatures and catalog membership of CABs, catalogs and PE files.

After each file's verdict it says who signed it: the signer's subject, the chain the signature
carries (leaf first), whether that chain is TEST ONLY (a "TEST ONLY" common name, the mark the
release policy keys on) and, for a package, the release type its update.mum declares."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from cryptography.x509.oid import NameOID

from ..errors import FFUError
from ..formats import pe
from ..signing.verify import (
    cab_signature,
    load_certificates,
    pe_signature,
    signer_chains,
    verify_cab,
    verify_catalog,
    verify_pe,
)
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
        for line in describe(p, kind):
            print(f"  {line}")
    return 1 if failed else 0


_SHORT = {NameOID.EMAIL_ADDRESS: "E"}  # as Windows shows it


def _signature_lines(label: str, blob: bytes | None) -> list[str]:
    if blob is None:
        return [f"{label}: none"]
    chains = signer_chains(blob)
    if not chains:
        return [f"{label}: unreadable"]
    lines = []
    for chain in chains:
        names = [c.subject.rfc4514_string(_SHORT) for c in chain]
        test = any("TEST ONLY" in n.upper() for n in names)
        top = chain[-1]
        ends = (
            "self-signed root"
            if top.issuer == top.subject
            else f"issued by {top.issuer.rfc4514_string(_SHORT)}, not included"
        )
        lines.append(f"{label}: {names[0]}")
        lines.append(f"  chain: {' <- '.join(names)} ({ends})")
        lines.append(f"  test only: {'yes (TEST ONLY certificate)' if test else 'no'}")
    return lines


def describe(path: str, kind: str) -> list[str]:
    """Who signed `path`, with its chain and TEST ONLY verdict; a package's release type."""
    from ..formats import cab

    try:
        if kind == "pe":
            return _signature_lines("signer", pe_signature(path))
        if kind == "catalog":
            with open(path, "rb") as f:
                return _signature_lines("signer", f.read())
        lines = _signature_lines("signer", cab_signature(path))
        with cab.CabReader(path) as reader:
            cats = [m for m in reader.members if m.name.lower() == "update.cat"]
            if cats:
                lines += _signature_lines("catalog signer", reader.read(cats[0], 64 << 20))
    except (FFUError, OSError):
        return []  # the verdict above already names what is unreadable
    from ..image import install

    try:
        info = install.read_package_info(Path(path))
    except FFUError as e:
        return [*lines, f"release type: unknown ({e.message})"]
    return [*lines, f"release type: {info.release_type} (update.mum)"]


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
