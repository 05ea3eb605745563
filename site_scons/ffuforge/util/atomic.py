"""Atomic output files: a build that dies mid-write never leaves a valid-looking output.

Replaced big outputs are removed off the caller's path (:func:`defer_removals`): freeing a
file's extents is synchronous (ext4 frees a 1.4 GiB partition image in ~0.3 s inside unlink() or
the rename() that drops its last link), and a build's critical path should not wait for it. The
old file is first given a second name `.<name>.old-<pid>-<n>` beside it (a hard link, so the
output's own name never goes missing: the rename replaces it), and a background thread unlinks
that name; the process joins the thread at exit. A process killed meanwhile leaves only
`.old-*` files, which :func:`sweep_old` (the build tool, on its next run and on `scons -c`)
removes.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import queue
import re
import shutil
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_CREATE_MODE = 0o666 & ~_umask()  # what open() would give: mkstemp's 0600 kept FFUs from the lab


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[BinaryIO]:
    """Yield a temp file beside `path`; rename it over `path` only if the block succeeds. The
    result has the permissions of a file created with open() (0666 less the umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        os.fchmod(fd, _CREATE_MODE)
        with os.fdopen(fd, "wb") as fh:
            yield fh
        replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_output(path) as fh:
        fh.write(data)


@contextlib.contextmanager
def atomic_path(path: str | Path, mode: int | None = None) -> Iterator[Path]:
    """Yield a temp path beside `path` for tools that write by name; renamed over `path` only if
    the block succeeds, removed otherwise. `mode`: permissions of the result (mkstemp gives 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    try:
        if mode is not None:
            os.chmod(tmp, mode)
        yield Path(tmp)
        replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# ------------------------------------------------------------ deferred removal of old outputs

DEFER_MIN_BYTES = 1 << 20  # allocated bytes from which replacing a file defers freeing the old one
OLD_NAME = re.compile(r"^\..+\.old-(\d+)-\d+$")  # .<name>.old-<pid>-<n>


class _Remover:
    """One background thread per process unlinking queued paths; joined at exit."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self.counter = itertools.count()
        self.thread = threading.Thread(target=self._run, name="ffuforge-remove-old", daemon=True)
        self.thread.start()
        atexit.register(self.join)

    def _run(self) -> None:
        while (path := self.queue.get()) is not None:
            _remove(path)

    def join(self) -> None:
        if os.getpid() != self.pid or not self.thread.is_alive():
            return
        self.queue.put(None)
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C at exit: the next build sweeps them
            self.thread.join()


_REMOVER: _Remover | None = None
_REMOVER_LOCK = threading.Lock()


def defer_removals() -> None:
    """From now on, in this process only (a forked worker exits without atexit), replaced and
    retired files are freed by a background thread joined at exit."""
    global _REMOVER
    with _REMOVER_LOCK:
        if _REMOVER is None or _REMOVER.pid != os.getpid():
            _REMOVER = _Remover()


def _remover() -> _Remover | None:
    r = _REMOVER
    return r if r is not None and r.pid == os.getpid() else None


def _old_name(path: str, remover: _Remover) -> str:
    directory, name = os.path.split(path)
    return os.path.join(directory, f".{name}.old-{remover.pid}-{next(remover.counter)}")


def replace(tmp: str | Path, path: str | Path) -> None:
    """os.replace(tmp, path); with deferred removals on, a big file it replaces is kept under an
    `.old-*` name until the background thread unlinks it (the rename then only drops a link)."""
    remover, old = _remover(), None
    if remover is not None:
        try:
            st = os.lstat(path)
        except OSError:
            st = None
        if st is not None and stat.S_ISREG(st.st_mode) and st.st_blocks * 512 >= DEFER_MIN_BYTES:
            old = _old_name(os.fspath(path), remover)
            try:
                os.link(path, old)
            except OSError:  # no hard links here (or a race): replace as usual
                old = None
    try:
        os.replace(tmp, path)
    finally:
        if old is not None:
            remover.queue.put(old)  # type: ignore[union-attr]


def _set_aside(path: str | Path, is_kind) -> bool:
    """With deferred removals on: rename `path` (if `is_kind(st_mode)`) to an `.old-*` name and queue
    it for the background thread; whether it was. A missing path counts as done."""
    remover = _remover()
    if remover is None:
        return False
    old = _old_name(os.fspath(path), remover)
    try:
        if not is_kind(os.lstat(path).st_mode):
            return False
        os.rename(path, old)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    remover.queue.put(old)
    return True


def retire(path: str | Path) -> None:
    """Remove `path` (before its writer runs again, as SCons would): with deferred removals on, a
    regular file is renamed to an `.old-*` name and freed in the background."""
    if not _set_aside(path, stat.S_ISREG):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _remove(path: str) -> None:
    """Unlink a file, or remove a directory tree (a discarded scratch tree)."""
    try:
        if stat.S_ISDIR(os.lstat(path).st_mode):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    except OSError:
        pass


def discard_tree(path: str | Path) -> None:
    """Remove a scratch directory tree: with deferred removals on, renamed to an `.old-*` name and
    removed by the background thread (a partition's staged tree is thousands of links, and
    removing them was on the build's critical path); otherwise at once."""
    if not _set_aside(path, stat.S_ISDIR):
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def scratch_dir(prefix: str, directory: str | Path) -> Iterator[str]:
    """A temporary directory in `directory`, discarded after the block (:func:`discard_tree`)."""
    path = tempfile.mkdtemp(prefix=prefix, dir=directory)
    try:
        yield path
    finally:
        discard_tree(path)


def sweep_old(directory: str | Path) -> None:
    """Remove the `.old-*` files other processes left in `directory` (killed before their
    background removal ran): in the background when deferred removals are on."""
    remover = _remover()
    try:
        entries = os.listdir(directory)
    except OSError:
        return
    for entry in entries:
        m = OLD_NAME.match(entry)
        if m is None or (remover is not None and int(m.group(1)) == remover.pid):
            continue
        full = os.path.join(directory, entry)
        if remover is not None:
            remover.queue.put(full)
        else:
            _remove(full)


def sparse_copy(src: str | Path, dst: str | Path) -> None:
    """Copy a file keeping its holes (partition images are mostly holes; a plain copy would
    write gigabytes of zeros, and an FFU made from it would store them all)."""
    import shutil

    with open(src, "rb") as fin, open(dst, "wb") as fout:
        size = os.fstat(fin.fileno()).st_size
        pos = 0
        while pos < size:
            try:
                start = os.lseek(fin.fileno(), pos, os.SEEK_DATA)
            except OSError:  # ENXIO: no data after pos
                break
            end = os.lseek(fin.fileno(), start, os.SEEK_HOLE)
            fin.seek(start)
            fout.seek(start)
            remaining = end - start
            while remaining:
                chunk = fin.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                fout.write(chunk)
                remaining -= len(chunk)
            pos = end
        fout.truncate(size)
    shutil.copystat(src, dst)
