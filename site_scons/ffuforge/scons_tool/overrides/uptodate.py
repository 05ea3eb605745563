"""Targets whose bytes SCons never recorded are rebuilt.

SCons trusts a target whose sources are unchanged, whatever bytes lie under its name. A build
killed after writing a target but before SCons saved its signatures (SIGKILL, OOM, power loss)
leaves bytes SCons never recorded, e.g. from an edit since reverted. An ffuforge target whose size
or modification time differs from what SCons recorded when it built it is rebuilt.
"""

from __future__ import annotations

import os

import SCons.Node.FS

from ..actions import SignedFunctionAction


def _is_up_to_date(node) -> bool:
    if not _FILE_IS_UP_TO_DATE(node):
        return False
    if not isinstance(getattr(node.get_builder(), "action", None), SignedFunctionAction):
        return True
    ninfo = getattr(node.get_stored_info(), "ninfo", None)
    stamp, size = getattr(ninfo, "timestamp", None), getattr(ninfo, "size", None)
    try:
        st = os.stat(node.get_abspath())
    except OSError:
        return True  # not here (Repository, CacheDir): SCons decided
    if stamp is None or size is None:
        return True
    return st.st_size == size and (
        st.st_mtime == stamp or (isinstance(stamp, int) and stamp == int(st.st_mtime))
    )


_FILE_IS_UP_TO_DATE = getattr(
    SCons.Node.FS.File.is_up_to_date, "ffuforge_original", SCons.Node.FS.File.is_up_to_date
)


def install() -> None:
    """Replace File.is_up_to_date (once; a second generate() keeps the first original)."""
    _is_up_to_date.ffuforge_original = _FILE_IS_UP_TO_DATE  # type: ignore[attr-defined]
    SCons.Node.FS.File.is_up_to_date = _is_up_to_date
