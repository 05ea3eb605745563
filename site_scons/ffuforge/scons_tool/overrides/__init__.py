"""Small, documented replacements of SCons internals, each in its own module with its reason.

`install()` applies them all; it is idempotent (each keeps SCons' original, and a second call
from another environment's generate() does not wrap the replacement again).
"""

from __future__ import annotations

from . import csig, exitsignal, explain, mtime, uptodate


def install() -> None:
    uptodate.install()  # targets a killed build left unrecorded are rebuilt
    mtime.install()  # sub-second modification times
    csig.install()  # block / writer-computed content signatures
    exitsignal.install()  # no traceback for Ctrl-C while scons exits
    explain.install()  # --debug=explain asks the deciders as the build does
