"""Re-signing existing package CABs (the kit's Redo-IoTCabSignature): a new catalog signature and
a new CAB signature, the members untouched.

A CAB is only re-signed while its members still match its `update.cat` (a package edited after
cataloguing must be rebuilt, not re-signed). The catalog keeps its content; only its signature is
replaced. The CAB is written again with the same members, order and attributes (every member
with the first one's DOS time, as ffuforge's writer stamps them all alike) and
signed as the build signs (in-process signers while it is written, commands afterwards), then
renamed over the original (or written to another folder): an interrupted run leaves the old CAB.
ffuforge writes stored and MSZIP cabinets only, so an LZX or Quantum CAB (Microsoft's) comes back
MSZIP-compressed: the members and the catalog are unchanged, only the container bytes differ.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import SigningError
from ..formats import cab
from . import verify
from .signers import KeySigner, Signer

CATALOG = "update.cat"
_CATALOG_MAX = 64 << 20


def resign_cab(
    src: str | os.PathLike, signer: Signer, *, epoch: int, out: str | os.PathLike | None = None
) -> Path:
    """Re-sign `src` with `signer` at `epoch` (see KeySigner.signing_epoch); write it to `out`
    (default: in place). Returns the written path."""
    src = Path(src)
    dst = Path(out) if out is not None else src
    report = verify.verify_cab(src)  # membership only: the old signer may be anyone
    stale = [p for p in report.problems if "not listed in" in p or "missing from the cabinet" in p]
    if stale or any(p.startswith("cannot read the cabinet") for p in report.problems):
        raise SigningError(
            f"{(stale or report.problems)[0]}; rebuild the package instead of re-signing it", file=str(src)
        )
    with cab.CabReader(src) as reader, tempfile.TemporaryDirectory(prefix="ffuforge-resign-") as tmp:
        entries = list(reader.members)
        compression = "none" if all(c == "none" for c in reader.compressions) else "mszip"
        members: list[cab.CabMember] = []
        for i, e in enumerate(entries):
            if e.name.lower() == CATALOG:
                signed = signer.sign_catalog(reader.read(e, _CATALOG_MAX), epoch=epoch)
                members.append(cab.CabMember(e.name, data=signed, attribs=e.attribs & ~0x80))
                continue
            path = Path(tmp) / str(i)
            with reader.open(e) as fin, open(path, "wb") as fout:
                while chunk := fin.read(1 << 20):
                    fout.write(chunk)
            members.append(cab.CabMember(e.name, source=path, attribs=e.attribs & ~0x80))
        stamp = (entries[0].date, entries[0].time)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(signer, KeySigner):
            cab.write_cab(
                dst,
                members,
                compression=compression,
                dos_datetime=stamp,
                reserve_signature=True,
                authenticode=lambda digest: signer.cab_signature(digest, epoch=epoch),
            )
        else:
            cab.write_cab(
                dst,
                members,
                compression=compression,
                dos_datetime=stamp,
                finish=lambda path: signer.sign_cab(path, path, epoch=epoch),
            )
    return dst
