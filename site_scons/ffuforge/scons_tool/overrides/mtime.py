"""Modification times with their sub-second part.

SCons keeps whole seconds (its own TODO in Node.FS.Base.getmtime), so with the content-timestamp
decider a file edited again within the second in which the last build saw it kept its recorded
second and was taken as unchanged: the build used the old content and said nothing.
"""

from __future__ import annotations

import SCons.Node.FS


def _getmtime(node):
    st = node.stat()
    return st.st_mtime if st else None


_BASE_GETMTIME = getattr(SCons.Node.FS.Base.getmtime, "ffuforge_original", SCons.Node.FS.Base.getmtime)


def install() -> None:
    _getmtime.ffuforge_original = _BASE_GETMTIME  # type: ignore[attr-defined]
    SCons.Node.FS.Base.getmtime = _getmtime
