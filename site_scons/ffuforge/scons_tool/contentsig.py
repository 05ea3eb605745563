"""Content signatures SCons records for the files ffuforge writes.

Partition images and FFUs are signed chunk by chunk, holes unread (:mod:`..formats.blocksig`);
their writers return that signature, so SCons takes it instead of reading the file again: the
partition action from its one read-back pass, the FFU writer from the FFU's hash table (its
header chunks hashed in memory). :func:`file_signature` recomputes the same value from the file
alone, for a file no action signed in this run and for the cache check.
"""

from __future__ import annotations

import os

from ..formats.blocksig import file_signature

__all__ = ["content_signature", "file_signature"]


def content_signature(path: str, *, cab_file: bool = False, known: str | None = None) -> tuple[int, int, str]:
    """(size, mtime_ns, content signature) of a file an action has just written. A CAB is signed
    by cab.content_signature (`known` when its writer computed it in passing: a signed CAB's comes
    from the Authenticode digest, so signing adds no hashing pass); other files, and what does not
    parse as a CAB, block by block (file_signature), or `known` when their writer computed it.
    Either depends on the bytes alone."""
    st = os.stat(path)
    if cab_file and known is None:
        from ..formats.cab import content_signature as cab_signature

        known = cab_signature(path)
    if known is None:
        known = file_signature(path)
    return st.st_size, st.st_mtime_ns, known
