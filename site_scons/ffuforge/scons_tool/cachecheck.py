"""What the shared cache checks before it takes or stores an entry, and the record it keeps beside it.

SCons names a cache entry by the build signature of its inputs, so nothing in the name says what
the bytes should be: a flipped byte, a truncated copy or a half-written entry on network storage
was taken as it was, recorded as the output's content and shipped. Every entry therefore gets a
record `<entry>.ffuforge` (kind, size, content signature), written after the entry was copied and
checked, and an entry is used only when its bytes match its record and pass the checks of its
kind:

* a CAB: :func:`..formats.cab.content_signature` covers every byte, the signature block included,
  and :func:`..signing.verify.consistency_problems` reads it whole (header and CFDATA checksums,
  the CAB's and the catalog's signatures, catalog <-> members);
* a partition image: its size and the chunk signature (:mod:`..formats.blocksig`), holes unread,
  recomputed from the entry's bytes: the same function the partition action's read-back pass and
  (for FFUs) the FFU writer's hash table give, so a stored record and a check always agree;
* a merged FM: its bytes against the ones this run computed from the FMs;
* anything else (a partition's .json): size and content signature.
"""

from __future__ import annotations

import contextlib
import os
from typing import NamedTuple

from ..formats import blocksig
from .state import MERGED_XML, PRESIGNED

RECORD_SUFFIX = ".ffuforge"
_TAG = "ffuforge-cache-entry-v1"
_CHECKED: dict[str, blocksig.Signed] = {}  # a retrieved image's copy -> its chunk digests, until renamed


class Record(NamedTuple):
    kind: str  # cab | image | fm | file
    size: int
    csig: str

    def text(self) -> str:
        return f"{_TAG} {self.kind} {self.size} {self.csig}\n"


def kind_of(node) -> str:
    path = node.get_abspath()
    if path in MERGED_XML:
        return "fm"
    if getattr(node.attributes, "ffuforge_blocks", False):
        return "image"
    return "cab" if path.lower().endswith(".cab") else "file"


def signature(path: str, kind: str) -> str:
    """The content signature a record holds: a CAB's own (every byte), else the chunk signature
    (blocksig.file_signature, v2: every 128 KiB chunk's SHA-256, holes unread)."""
    if kind == "cab":
        from ..formats.cab import content_signature as cab_signature  # CABs only: not at import

        sig = cab_signature(path)
        if sig is not None:
            return sig
    return blocksig.file_signature(path)


def read_record(path: str) -> Record | None:
    """The record kept beside a cache entry, or None when it is missing or not ours."""
    try:
        with open(path + RECORD_SUFFIX, encoding="ascii") as fh:
            text = fh.read(256)
    except (OSError, UnicodeDecodeError):
        return None
    parts = text.split()
    if len(parts) != 4 or parts[0] != _TAG or not parts[2].isdigit():
        return None
    return Record(parts[1], int(parts[2]), parts[3])


def problem(path: str, kind: str, expected: Record | None, target: str) -> str | None:
    """What is wrong with the file at `path` as `target`'s bytes (None: good). `expected`: the
    record it must match (None when checking an output that is about to be stored)."""
    size = os.stat(path).st_size
    if expected is not None:
        if expected.kind != kind:
            return f"is recorded as a {expected.kind} entry, not a {kind}"
        if size != expected.size:
            return f"has {size} bytes, its record says {expected.size} (truncated or damaged)"
        if kind == "image":  # the check's read also gives the FFU writer its chunk digests
            signed = blocksig.sign_file(path)
            if signed.signature != expected.csig:
                return "does not match its content signature (damaged)"
            _CHECKED[path] = signed
        elif kind == "fm" and target in MERGED_XML:
            pass  # compared byte for byte below: also takes entries whose record holds a v1 signature
        elif signature(path, kind) != expected.csig:
            return "does not match its content signature (damaged)"
    if kind == "fm" and target in MERGED_XML:
        with open(path, "rb") as fh:
            if fh.read(len(MERGED_XML[target]) + 1) != MERGED_XML[target]:
                return "is not the merged FM this build computes"
    if kind == "cab":
        from ..signing import verify  # a cache retrieval only: not at import

        found = verify.consistency_problems(path)
        if found:
            return f"is not a consistent package ({found[0]})"
    return None


def output_record(node) -> tuple[Record | None, str | None]:
    """(record, None) for a just-built output that may be stored, or (None, what is wrong).
    The signature its action computed is taken while the file is unchanged since then."""
    path, kind = node.get_abspath(), kind_of(node)
    st = os.stat(path)
    known = PRESIGNED.get(path)
    csig = (
        known[2] if known is not None and known[:2] == (st.st_size, st.st_mtime_ns) else signature(path, kind)
    )
    found = problem(path, kind, None, path)
    return (None, found) if found else (Record(kind, st.st_size, csig), None)


def keep_digests(checked: str, target: str) -> None:
    """Once a checked image entry's copy `checked` is renamed onto `target`, leave the chunk
    digests its check read beside it (blocksig sidecar), so the FFU writer need not hash it again.
    The rename (and chmod) changed its ctime: bound to it anew only while the size, inode and
    mtime are still those the check read."""
    signed = _CHECKED.pop(checked, None)
    if signed is None or signed.binding is None:
        blocksig.sidecar_path(target).unlink(missing_ok=True)
        return
    now = blocksig.binding(os.stat(target))
    if now[:3] != signed.binding[:3]:
        blocksig.sidecar_path(target).unlink(missing_ok=True)
        return
    with contextlib.suppress(OSError):  # a full disk: the FFU hashes the image itself
        blocksig.write_sidecar(target, blocksig.Signed(signed.signature, signed.size, signed.digests, now))
