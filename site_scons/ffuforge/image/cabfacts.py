"""What layout re-evaluation reads from each CAB, kept from one build to the next.

The layout is re-evaluated whenever a CAB changes: the release policy of every package, the
payload sizes of every partition (each CAB's update.mum) and the layout files. At 334 CABs that
was 0.4 s of CAB reading on every edit, for one changed CAB. Each CAB's facts are kept by its
path and (size, mtime_ns, inode), as the plan cache keys the files it read: CABs are written
by rename, so a rebuilt CAB is a new inode and misses. Facts of a CAB written within the last
seconds are not kept (a same-size rewrite in one timestamp tick would go unseen) unless this
build wrote it: its writer recorded the (size, mtime_ns) it left, with the content signature
SCons records for it, so the facts are kept on the same terms as SCons' own decision about that
CAB (`written`); what the writer itself knew of a CAB is put in as it is written (:meth:`put`:
the SBOM's identity of each package). Errors are never kept. One file beside the plan cache (``build/.ffuforge/cabfacts``), loaded once per process,
replaced (temp + rename) at exit when something changed, dropped when ffuforge's code changes
(toolsig); a missing, unreadable or foreign file only costs one slower run.
"""

from __future__ import annotations

import atexit
import marshal
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from ..util import toolsig

FILENAME = "cabfacts"  # beside the plan cache
FORMAT = 1
RACY_NS = 2_000_000_000  # as the plan cache: FAT keeps 2 s timestamps
T = TypeVar("T")


class CabFacts:
    def __init__(self, file: str) -> None:
        self.file = file
        self.written: Mapping[str, tuple] = {}  # path -> (size, mtime_ns, …) of CABs this build wrote
        self.code = (
            f"{toolsig.fingerprint('image.cabfacts')} {sys.implementation.cache_tag} {marshal.version}"
        )
        self.entries: dict[str, tuple[tuple[int, int, int], dict[str, Any]]] = self._load()
        self.dirty = False
        self.hits = self.misses = 0
        self.lock = threading.Lock()

    def _load(self) -> dict:
        try:
            with open(self.file, "rb") as fh:
                fmt, code, entries = marshal.loads(fh.read())
            if fmt == FORMAT and code == self.code and isinstance(entries, dict):
                return entries
        except Exception:  # noqa: BLE001 - missing, truncated or foreign: read afresh
            pass
        return {}

    def get(self, cab: Path, what: str, compute: Callable[[], T]) -> T:
        """`compute()` (what it reads from `cab`, under the name `what`), or the value kept from
        an earlier run while the CAB is the same file."""
        path = os.path.abspath(cab)
        st = os.stat(path)
        state = (st.st_size, st.st_mtime_ns, st.st_ino)
        entry = self.entries.get(path)
        if entry is not None and tuple(entry[0]) == state and what in entry[1]:
            self.hits += 1
            return entry[1][what]
        self.misses += 1
        value = compute()
        ours = tuple(self.written.get(path, ())[:2]) == state[:2]
        if ours or st.st_mtime_ns < time.time_ns() - RACY_NS:
            with self.lock:
                facts = dict(entry[1]) if entry is not None and tuple(entry[0]) == state else {}
                facts[what] = value
                self.entries[path] = (state, facts)
                self.dirty = True
        return value

    def put(self, cab: str | Path, what: str, value: Any, written: tuple) -> None:
        """Keep `value` (under `what`) for a CAB this build just wrote, as its writer knew it
        (the SBOM identity: package action), while the file is still the (size, mtime_ns)
        `written` the writer left; a CAB changed since is left to :meth:`get`."""
        path = os.path.abspath(cab)
        try:
            st = os.stat(path)
        except OSError:
            return
        state = (st.st_size, st.st_mtime_ns, st.st_ino)
        if state[:2] != tuple(written[:2]):
            return
        with self.lock:
            entry = self.entries.get(path)
            facts = dict(entry[1]) if entry is not None and tuple(entry[0]) == state else {}
            facts[what] = value
            self.entries[path] = (state, facts)
            self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        from ..util.atomic import write_bytes

        with self.lock:
            entries = {p: e for p, e in self.entries.items() if os.path.isfile(p)}  # CABs gone: dropped
            try:
                write_bytes(self.file, marshal.dumps((FORMAT, self.code, entries)))
                self.dirty = False
            except Exception:  # noqa: BLE001 - a read-only or full build directory: read again next time
                pass


_CACHES: dict[str, CabFacts] = {}


def cache(file: str, written: Mapping[str, tuple] | None = None) -> CabFacts | None:
    """The process's cache kept in `file` (absolute; '' = none), saved at exit. `written`: the
    CABs this build wrote, path -> (size, mtime_ns, …) as their writer left them."""
    if not file:
        return None
    found = _CACHES.get(file)
    if found is None:
        if not _CACHES:
            atexit.register(_save_all, os.getpid())
        found = _CACHES[file] = CabFacts(file)
    if written is not None:
        found.written = written
    return found


def _save_all(pid: int) -> None:
    if os.getpid() != pid:  # a forked child exiting
        return
    try:
        for c in _CACHES.values():
            c.save()
            if os.environ.get("FFUFORGE_PLAN_STATS"):
                print(f"ffuforge CAB facts: {c.hits} kept, {c.misses} read", file=sys.stderr)
    except KeyboardInterrupt:  # Ctrl-C while exiting: the cache is only not updated
        pass
