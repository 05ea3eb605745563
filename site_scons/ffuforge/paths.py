"""Host-side resolution of Windows-authored paths (`.\\x`, `$(_RELEASEDIR)..\\y`, `Rpi2` vs `RPi2`)."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path


def resolve(base: Path, win_path: str) -> Path:
    """Join a backslash path to `base`; fall back to case-insensitive matching per component."""
    text = win_path.strip().replace("\\", "/")
    path = Path(text) if os.path.isabs(text) else base / text
    path = Path(os.path.normpath(path))
    if path.exists():
        return path
    return _case_insensitive(path)


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


def open_regular(path: str | os.PathLike) -> int:
    """`os.open` an input file for reading, refusing anything but a regular file without ever
    blocking: a FIFO in place of a source would hang the build (not even Ctrl-C stops a blocked
    open), a device would be read forever. Raises OSError, like open()."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise OSError(errno.EISDIR, "is a directory, not a file", str(path))
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, "not a regular file (a FIFO, socket or device)", str(path))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd
