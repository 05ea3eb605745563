"""`ffuforge sign CAB… --cert/--key/--chain | --pfx | --command`: re-sign existing packages.

The signer is given as the build's is (SIGN_CERT/SIGN_KEY/SIGN_CHAIN, a PFX, SIGN_COMMAND), the
password only through FFU_SIGN_PASSWORD. The signing time follows the build's rule: SOURCE_DATE_EPOCH
from the environment (or --epoch), else 2020-01-01, moved to the certificate chain's notBefore when
outside its validity. Every CAB is checked and signed before the next; each is replaced atomically.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from ..errors import ConfigError
from ..signing import resign
from ..signing import signers as signing
from .files import input_files, output_dir

DEFAULT_EPOCH = 1577836800  # 2020-01-01, the build's default (scons_tool.settings.DEFAULT_EPOCH)


def _epoch(given: int | None) -> int:
    if given is not None:
        return given
    text = os.environ.get("SOURCE_DATE_EPOCH", "")
    if not text:
        return DEFAULT_EPOCH
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"SOURCE_DATE_EPOCH={text!r} is not an integer (seconds since 1970)") from None


def signer_from_args(args: argparse.Namespace) -> signing.Signer:
    if args.command:
        if args.cert or args.pfx or args.key or args.chain:
            raise ConfigError(
                "give either --command or a certificate (--cert/--key/--chain or --pfx), not both"
            )
        return signing.CommandSigner(args.command)
    if args.pfx and (args.cert or args.key):
        raise ConfigError("--pfx holds the key: do not give --cert or --key with it")
    cert = args.pfx or args.cert
    if not cert:
        raise ConfigError("no signer: give --cert CERT --key KEY [--chain CHAIN], --pfx PFX or --command CMD")
    return signing.load_key_signer(
        cert, args.key, args.chain or (), password=os.environ.get("FFU_SIGN_PASSWORD")
    )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="ffuforge sign",
        description="re-sign existing CABs: a new update.cat signature and CAB signature, members unchanged",
    )
    ap.add_argument("cabs", nargs="+", metavar="CAB")
    ap.add_argument("--cert", help="code-signing certificate (PEM/DER; may hold the chain and key)")
    ap.add_argument("--key", help="private key for --cert (password in $FFU_SIGN_PASSWORD)")
    ap.add_argument("--chain", action="append", help="intermediate certificate file; repeatable")
    ap.add_argument("--pfx", help="a .pfx/.p12 with key and chain (password in $FFU_SIGN_PASSWORD)")
    ap.add_argument("--command", help="external signing command, given each file to sign")
    ap.add_argument("--epoch", type=int, help="signing time (default: $SOURCE_DATE_EPOCH, else 2020-01-01)")
    ap.add_argument("-o", "--output", help="write the signed CABs to this folder (default: in place)")
    args = ap.parse_args(argv)
    input_files(args.cabs, "a CAB")  # before any key is loaded; never blocks on a FIFO
    input_files(
        [p for p in (args.cert, args.key, args.pfx, *(args.chain or ())) if p], "a certificate or key file"
    )
    if args.output:
        output_dir(args.output)
    signer = signer_from_args(args)
    epoch = _epoch(args.epoch)
    if hasattr(signer, "check_validity"):
        signer.check_validity(epoch)
    for path in args.cabs:
        out = os.path.join(args.output, os.path.basename(path)) if args.output else None
        written = resign.resign_cab(path, signer, epoch=epoch, out=out)
        print(f"signed {written}")
    return 0
