"""`ffuforge certs new --test|--production DIR`: an OEM PKI the way the kit's New-IoTOEMCerts makes it.

See :mod:`ffuforge.signing.oempki` for what is created and where each fact comes from. The key
password is read from FFU_SIGN_PASSWORD (the variable the build reads), never from the command line.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from ..signing import oempki


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ffuforge certs", description="create signing certificates")
    sub = ap.add_subparsers(dest="action", required=True, metavar="ACTION")
    new = sub.add_parser(
        "new", help="create an OEM PKI (root, CA, PCA, code-signing and Secure Boot certificates)"
    )
    kind = new.add_mutually_exclusive_group(required=True)
    kind.add_argument("--test", action="store_true", help='every common name says "(TEST ONLY)"')
    kind.add_argument("--production", action="store_true", help="certificates for Retail images")
    new.add_argument("directory", help="folder to create them in (made if missing; nothing is overwritten)")
    new.add_argument("--oem", default="Contoso", help="OEM name in the certificates and file names")
    new.add_argument("--years", type=int, default=10, help="validity of the end-entity certificates")
    args = ap.parse_args(argv)
    password = os.environ.get("FFU_SIGN_PASSWORD") or None
    written = oempki.create_oem_pki(
        args.directory, args.oem, test=args.test, years=args.years, password=password
    )
    for name in written:
        print(os.path.join(args.directory, name))
    protected = "encrypted with $FFU_SIGN_PASSWORD" if password else "NOT encrypted (set FFU_SIGN_PASSWORD)"
    print(
        f"signing certificate: {args.oem}-{oempki.SIGNER_ROLE} (oem.pfx, or oem.crt + oem.key with "
        f"SIGN_CHAIN=intermediate.crt); private keys {protected}; trust root.crt to verify"
    )
    return 0
