"""What every command checks about the paths it is given, before it opens them.

`open()` on a FIFO blocks until a writer comes (not even Ctrl-C stops a blocked open), a directory
gives IsADirectoryError deep inside a reader, a device is read forever: so each path a command
expects to be a file is checked with `stat` first and refused in one line.
"""

from __future__ import annotations

import os
import stat

from ..errors import ConfigError


def kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISCHR(mode):
        return "a character device"
    return "not a regular file"


def input_file(path: str | os.PathLike, what: str = "a file") -> os.stat_result:
    """`path` must be an existing regular file (after symlinks); its stat, else ConfigError."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise ConfigError(f"cannot read file: {e.strerror}; give {what}", str(path)) from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"is {kind(st.st_mode)}, not a file; give {what}", str(path))
    return st


def input_files(paths, what: str = "a file") -> None:
    for p in paths or ():
        input_file(p, what)


def output_dir(path: str | os.PathLike) -> None:
    """`path` is a directory to write into: missing (it is created) or a directory."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        raise ConfigError(f"cannot use as output directory: {e.strerror}", str(path)) from None
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"is {kind(st.st_mode)}, not a directory; give an output directory", str(path))
