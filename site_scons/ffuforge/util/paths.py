"""Host-side resolution of Windows-authored paths (`.\\x`, `$(_RELEASEDIR)..\\y`, `Rpi2` vs `RPi2`).

Every look at the file system that planning a package makes goes through this module, so that
:func:`recording` can list them all (ffuforge.plancache reuses a plan while they still hold)."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path


def resolve(base: Path, win_path: str) -> Path:
    """Join a backslash path to `base`; fall back to case-insensitive matching per component."""
    text = win_path.strip().replace("\\", "/")
    joined = Path(text) if os.path.isabs(text) else base / text
    path = os.path.normpath(joined)
    log = getattr(_LOCAL, "log", None)
    if log is None:
        return Path(resolve_normalized(path))
    _LOCAL.log = None  # the answer is what counts, not how it was found (see Observations)
    try:
        found = resolve_normalized(path)
    finally:
        _LOCAL.log = log
    log.resolved(path, found)
    return Path(found)


def resolve_normalized(path: str) -> str:
    """`path` (absolute, normalised) if it exists, else its case-insensitive match if any."""
    if os.path.exists(path):
        return path
    return str(_case_insensitive(Path(path)))


def _case_insensitive(path: Path) -> Path:
    parts = path.parts
    current = Path(parts[0])
    for i, part in enumerate(parts[1:], 1):
        candidate = current / part
        if not candidate.exists() and current.is_dir():
            low = part.lower()
            try:
                matches = sorted(e for e in os.listdir(current) if e.lower() == low)
            except OSError:
                matches = []
            if matches:
                candidate = current / matches[0]
            else:
                return current.joinpath(*parts[i:])
        current = candidate
    return current


def kind(path: str | os.PathLike) -> str | None:
    """'f' (regular file), 'd' (directory), 'o' (anything else) or None (nothing there), following
    symbolic links like os.path.exists."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        st = None
    k = state_kind(st)
    log = getattr(_LOCAL, "log", None)
    if log is not None:
        log.seen(os.fspath(path), k)
    return k


def state_kind(st: os.stat_result | None) -> str | None:
    if st is None:
        return None
    return "f" if stat.S_ISREG(st.st_mode) else "d" if stat.S_ISDIR(st.st_mode) else "o"


def file_state(st: os.stat_result) -> tuple:
    """What says a file read earlier is unchanged (no content hashing): type, size, mtime_ns, inode."""
    return (state_kind(st), st.st_size, st.st_mtime_ns, st.st_ino)


def note_read(path: str | os.PathLike, st: os.stat_result) -> None:
    """`path`, in the state `st`, is about to be read (recorded when recording)."""
    log = getattr(_LOCAL, "log", None)
    if log is not None:
        log.seen(os.fspath(path), file_state(st))


def open_regular(path: str | os.PathLike) -> int:
    """`os.open` an input file for reading, refusing anything but a regular file without ever
    blocking: a FIFO in place of a source would hang the build (not even Ctrl-C stops a blocked
    open), a device would be read forever. Raises OSError, like open()."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        note_read(path, st)
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            raise OSError(errno.EISDIR, "is a directory, not a file", str(path))
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, "not a regular file (a FIFO, socket or device)", str(path))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


# ------------------------------------------------------------------ recording


class Observations:
    """What one thread saw of the file system: path -> kind or file_state, and what `resolve`
    answered for a normalised path (re-asked to check it still holds: a payload that appears
    under its exact name changes nothing, one that appears spelled differently does).
    `consistent` is False when one path was seen two ways (it changed while being looked at)."""

    def __init__(self) -> None:
        self.paths: dict[str, object] = {}
        self.resolutions: dict[str, str] = {}
        self.consistent = True

    def seen(self, path: str, state) -> None:
        old = self.paths.get(path, _UNSEEN)
        if old is _UNSEEN or old == state:
            self.paths[path] = state
        elif isinstance(state, tuple) and not isinstance(old, tuple) and old == state[0]:
            self.paths[path] = state  # first its existence, then its content
        elif not (isinstance(old, tuple) and not isinstance(state, tuple) and old[0] == state):
            self.consistent = False

    def resolved(self, path: str, found: str) -> None:
        if self.resolutions.setdefault(path, found) != found:
            self.consistent = False

    def merge(self, other: Observations) -> None:
        for path, state in other.paths.items():
            self.seen(path, state)
        for path, found in other.resolutions.items():
            self.resolved(path, found)
        self.consistent = self.consistent and other.consistent


_UNSEEN = object()
_LOCAL = threading.local()


@contextlib.contextmanager
def recording() -> Iterator[Observations]:
    """Record what this thread looks at inside the block (nested blocks also report outwards)."""
    outer = getattr(_LOCAL, "log", None)
    log = _LOCAL.log = Observations()
    try:
        yield log
    finally:
        _LOCAL.log = outer
        if outer is not None:
            outer.merge(log)
