"""A payload edited while scons runs: the build fails naming it instead of recording other bytes.

SCons signs a payload when it decides what to build (that signature is in the CAB's build
signature, its cache key and its database record); the package build reads the file again, later,
to put it in the CAB. An edit in between gave a CAB holding the new bytes under the signature of
the old ones: pushed to the cache under the old key, and taken as up to date by the next build
while the sources held something else. The package build returns the SHA-256 of the bytes it
read (the file unchanged during the read, :func:`..package.build._record_source`); they must be the
bytes SCons signed, or the action fails and nothing is recorded or stored. The CAB writer reads
each payload a second time, so the file must also be unchanged (size, modification time) after
the CAB is written: an edit between the reads gave a member that does not match its own
update.mum and update.cat.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..errors import FFUError

if TYPE_CHECKING:
    from ..package.build import SourceDigests


def check_read(target, read: SourceDigests) -> None:
    """Raise when a payload the build read is not the one SCons signed for `target`, or changed
    after the package build first read it."""
    signed = {}
    for n in target.implicit or ():
        csig = getattr(n.get_ninfo(), "csig", None)
        if csig is not None:
            signed[n.get_abspath()] = (csig, n)
    for path in sorted(read):
        known = signed.get(path)
        try:
            st = os.stat(path)
            now = (st.st_size, st.st_mtime_ns)
        except OSError:
            now = None
        if now != read[path][:2]:
            shown = known[1].get_internal_path() if known is not None else path
            raise FFUError(f"{shown}: changed while the build read it; build again")
        if known is not None and known[0] != read[path][2]:
            raise FFUError(
                f"{known[1].get_internal_path()}: changed while the build ran (after scons signed it, "
                "before the package build read it); build again"
            )
