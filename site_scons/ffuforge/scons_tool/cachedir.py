"""The shared cache (CACHE=): entries checked before use and before storing, sparse, never fatal.

SCons' CacheDir copied an entry straight onto the output's name and trusted it: one damaged entry
on network storage reached every checkout and every device. Here an entry is copied beside the
output (`.<name>.cache-<pid>.partial`, removed by the next action if killed), checked against the
record stored with it (:mod:`.cachecheck`), and renamed onto the output only when it passes; a bad
entry is reported in one line and treated as a miss, so the output is built and stored again.

An output is stored only after the same checks, copied to a temp name inside the cache folder,
checked again there (a short write on a full disk), its record written, then renamed: no entry
under its final name is ever partial. The cache is an optimisation, so a read-only cache folder or
a full disk never fails the build: one warning line, and the run stores nothing more.
Partition images stay sparse both ways (a plain copy wrote 8 GiB of zeros for the Data image).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
import tempfile
import threading

import SCons.Action
import SCons.CacheDir
import SCons.Errors

from ..util import atomic
from ..util.atomic import sparse_copy
from . import cachecheck
from .nodes import relative_message
from .state import PRESIGNED


def _warn(text: str) -> None:
    sys.stderr.write(f"scons: warning: {relative_message(text)}\n")


def _unlink(*paths: str) -> None:
    for p in paths:
        with contextlib.suppress(OSError):
            os.unlink(p)


class SparseCacheDir(SCons.CacheDir.CacheDir):
    """CacheDir that checks entries both ways and keeps partition images sparse."""

    def __init__(self, path) -> None:
        self._lock = threading.Lock()
        self._push_failed = False
        try:
            super().__init__(path)
        except (SCons.Errors.SConsEnvironmentError, OSError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            _warn(f"cache {path} cannot be used ({reason}); building without it")
            self.path = None

    def _readconfig(self, path: str) -> None:
        """SCons locks the cache's config file to read it, creating a lock file: on a read-only
        share (developers with --cache-readonly) that failed and the cache went unused. Nobody can
        be writing the config there, so it is read without the lock."""
        try:
            super()._readconfig(path)
        except (SCons.Errors.SConsEnvironmentError, OSError):
            config = os.path.join(path, "config")
            if not os.path.isfile(config):
                raise
            try:
                with open(config, encoding="utf-8") as fh:
                    self.config = json.load(fh)
            except ValueError:
                raise SCons.Errors.SConsEnvironmentError(f"{config}: not a cache configuration") from None
            if not isinstance(self.config, dict) or not isinstance(self.config.get("prefix_len"), int):
                raise SCons.Errors.SConsEnvironmentError(f"{config}: not a cache configuration") from None

    @classmethod
    def copy_from_cache(cls, env, src, dst) -> str:
        sparse_copy(src, dst)
        return dst

    @classmethod
    def copy_to_cache(cls, env, src, dst) -> str:
        sparse_copy(src, dst)
        os.chmod(dst, os.stat(dst).st_mode | 0o200)
        return dst

    def retrieve(self, node) -> bool:
        if not self.is_enabled():
            return False
        if not SCons.Action.execute_actions:  # -n: SCons copies nothing
            return super().retrieve(node)
        with self._lock:
            self.requests += 1
        _, entry = self.cachepath(node)
        if not os.path.exists(entry):
            return False
        target = node.get_abspath()
        kind = cachecheck.kind_of(node)
        tmp = os.path.join(
            os.path.dirname(target), f".{os.path.basename(target)}.cache-{os.getpid()}.partial"
        )
        try:
            record = cachecheck.read_record(entry)
            if record is None:
                found: str | None = (
                    f"has no valid record ({cachecheck.RECORD_SUFFIX}): stored by another tool or cut short"
                )
            else:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                self.copy_from_cache(node.get_build_env(), entry, tmp)
                found = cachecheck.problem(tmp, kind, record, target)
        except OSError as exc:
            found = f"cannot be read ({exc.strerror or exc})"
        if found:
            _unlink(tmp)
            _warn(f"cache entry {entry} for {node.get_internal_path()} {found}; not used, building it")
            return False
        os.chmod(tmp, stat.S_IMODE(os.stat(tmp).st_mode) | stat.S_IWRITE)
        atomic.replace(tmp, target)  # an old Precious image is freed in the background
        if kind == "image":
            cachecheck.keep_digests(tmp, target)  # for the FFU writer: the check read every chunk
        with contextlib.suppress(OSError):
            os.utime(entry)
        assert record is not None
        if kind in ("cab", "image"):  # SCons takes the checked signature instead of reading it again
            st = os.stat(target)
            PRESIGNED[target] = (st.st_size, st.st_mtime_ns, record.csig)
        with self._lock:
            self.hits += 1
        if SCons.CacheDir.cache_show:  # --cache-show: the command that would have built it
            node.build(presub=0, execute=0)
        elif SCons.Action.print_actions:
            sys.stdout.write(f"Retrieved `{node.get_internal_path()}' from cache\n")
        return True

    def push(self, node):
        if self.is_readonly() or not self.is_enabled() or self._push_failed or node.nocache:
            return None
        if not SCons.Action.execute_actions or not node.exists():
            return None
        cachedir, entry = self.cachepath(node)
        record, found = cachecheck.output_record(node)
        if record is None:
            _warn(f"{node.get_internal_path()} {found}; not stored in the cache")
            return None
        if self._stored(entry, record):
            return None
        tmp = ""
        try:
            os.makedirs(cachedir, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(entry)}.", suffix=".partial", dir=cachedir)
            os.close(fd)
            self.copy_to_cache(node.get_build_env(), node.get_abspath(), tmp)
            if os.stat(tmp).st_size != record.size or cachecheck.signature(tmp, record.kind) != record.csig:
                raise OSError(f"the copy of {node.get_internal_path()} in the cache differs from the output")
            with open(tmp + cachecheck.RECORD_SUFFIX, "w", encoding="ascii") as fh:
                fh.write(record.text())
            os.replace(tmp + cachecheck.RECORD_SUFFIX, entry + cachecheck.RECORD_SUFFIX)
            os.replace(tmp, entry)
        except OSError as exc:
            _unlink(tmp, tmp + cachecheck.RECORD_SUFFIX)
            with self._lock:
                first, self._push_failed = not self._push_failed, True
            if first:
                _warn(
                    f"cannot store in the cache {self.path} ({exc.strerror or exc}); the build goes on, storing nothing more"
                )
        return None

    @staticmethod
    def _stored(entry: str, record: cachecheck.Record) -> bool:
        """An entry already there (another builder's) that holds exactly these bytes."""
        if cachecheck.read_record(entry) != record:
            return False
        try:
            return (
                os.stat(entry).st_size == record.size
                and cachecheck.signature(entry, record.kind) == record.csig
            )
        except OSError:
            return False
