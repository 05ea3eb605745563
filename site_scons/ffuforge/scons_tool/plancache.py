"""Package plans kept from one scons run to the next, so that a no-op build does not re-plan
(re-parse, expand, filter) every package project in its SConscript phase.

A plan depends only on the project, its build options, ffuforge's code and what planning saw
of the file system, which :func:`ffuforge.paths.recording` lists: every file read (type, size,
mtime_ns, inode), every path looked for (its type, or its absence) and every answer of the
case-insensitive path resolution (asked again). A stored plan is reused while all still hold.
A failed plan is never stored (its error is reported again on every run), nor one that read a
file modified within the last seconds (a same-size edit in the same timestamp tick would go
unseen). One file per checkout, loaded once per process and replaced (temp + rename) at exit
when something changed; an unreadable or foreign one is ignored. FFUFORGE_PLAN_STATS=1 prints
how many plans were reused.
"""

from __future__ import annotations

import atexit
import json
import marshal
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from ..package import security, variant
from ..util import paths, toolsig

DEFAULT_FILE = "#build/.ffuforge/plans"
FORMAT = 1
RACY_NS = 2_000_000_000  # FAT keeps 2 s timestamps
KEEP_GENERATIONS = 32  # an entry unused in this many saves is dropped
_SPEC_UNUSED = ("compression", "epoch")  # build options that do not reach planning


class Planned(NamedTuple):
    """What the graph declares for one package of a project (see scons_tool.Package)."""

    cab_name: str
    name: str
    partition: str
    release_type: str
    content: dict  # variant.describe() (+ "security": package.security's description)
    layout_files: tuple[tuple[str, str], ...]  # (devicelayout.xml|oemdeviceplatform.xml, source)
    warnings: tuple[str, ...] = ()  # INF warnings, for packages.json (the package action prints them)


def summarize(variants: list[variant.Variant], top: Path) -> list[Planned]:
    out = []
    for v in variants:
        content = variant.describe(v, top)
        sec = security.for_variant(v)
        if sec:  # only then: the signatures of CABs without descriptors stay what they were
            content["security"] = sec.describe()
        layout_files = tuple(
            sorted(
                (pl.name.lower(), str(pl.source))
                for pl in v.payload
                if pl.name.lower() in ("devicelayout.xml", "oemdeviceplatform.xml")
                and pl.dest_rel.lower().endswith("imageupdate")
            )
        )
        out.append(
            Planned(
                v.cab_name,
                v.name,
                v.partition,
                v.project.release_type,
                content,
                layout_files,
                tuple(dict.fromkeys(v.warnings)),
            )
        )
    return out


class PlanCache:
    def __init__(self, file: str, top: str):
        self.file, self.top = file, top
        self.code = (
            f"{toolsig.fingerprint('scons_tool.plancache')} {sys.implementation.cache_tag} {marshal.version}"
        )
        self.generation, self.entries = self._load()
        self.dirty = False
        self.reused = self.planned = 0

    def _load(self) -> tuple[int, dict]:
        directory, name = os.path.split(self.file)
        try:  # what a build killed while saving left (atomic.write_bytes' temp files)
            for entry in os.listdir(directory):
                if entry.startswith(f".{name}.") and entry.endswith(".partial"):
                    os.unlink(os.path.join(directory, entry))
        except OSError:
            pass
        try:
            with open(self.file, "rb") as fh:
                fmt, top, code, generation, entries = marshal.loads(fh.read())
            if fmt == FORMAT and top == self.top and code == self.code and isinstance(entries, dict):
                return int(generation) + 1, entries
        except Exception:  # noqa: BLE001 - missing, truncated or foreign: planned afresh
            pass
        return 1, {}

    def plans(self, project_rel: str, spec: dict, plan: Callable[[], list[variant.Variant]]) -> list[Planned]:
        """The stored plan of `project_rel` for `spec` if still valid, else `plan()`'s, stored."""
        key = (
            project_rel
            + "\n"
            + json.dumps({k: v for k, v in spec.items() if k not in _SPEC_UNUSED}, sort_keys=True)
        )
        entry = self.entries.get(key)
        if entry is not None:
            try:
                if self._valid(entry[1], entry[2]):
                    result = [Planned(*p) for p in entry[3]]
                    self.entries[key] = (self.generation, *entry[1:])
                    self.reused += 1
                    return result
            except Exception:  # noqa: BLE001 - a malformed entry is a miss
                pass
        self.planned += 1
        started = time.time_ns()
        with paths.recording() as seen:
            result = summarize(plan(), Path(self.top))
        racy = any(isinstance(s, tuple) and s[2] > started - RACY_NS for s in seen.paths.values())
        if seen.consistent and not racy:
            self.entries[key] = (
                self.generation,
                tuple(seen.paths.items()),
                tuple(seen.resolutions.items()),
                tuple(tuple(p) for p in result),
            )
            self.dirty = True
        elif self.entries.pop(key, None) is not None:
            self.dirty = True
        return result

    @staticmethod
    def _valid(states, resolutions) -> bool:
        for path, state in states:
            try:
                st = os.stat(path)
            except (OSError, ValueError):
                st = None
            if isinstance(state, tuple):
                if st is None or paths.file_state(st) != state:
                    return False
            elif paths.state_kind(st) != state:
                return False
        return all(paths.resolve_normalized(path) == found for path, found in resolutions)

    def save(self) -> None:
        if not self.dirty:
            return
        oldest = self.generation - KEEP_GENERATIONS
        try:
            from ..util.atomic import write_bytes

            entries = {k: e for k, e in self.entries.items() if _generation(e) > oldest}
            write_bytes(self.file, marshal.dumps((FORMAT, self.top, self.code, self.generation, entries)))
            self.dirty = False
        except Exception:  # noqa: BLE001 - a read-only or full build directory, a malformed entry: planned again
            pass


def _generation(entry) -> int:
    try:
        return int(entry[0])
    except Exception:  # noqa: BLE001 - malformed: dropped
        return -1


_CACHES: dict[str, PlanCache] = {}


def cache_file(env, name: str = "", cleaning: bool = True) -> str:
    """The plan cache's absolute path (FFU_PLAN_CACHE), or with `name` a file beside it (the CAB
    facts of image.cabfacts); '' when the cache is off, and while `scons -c` removes it (unless
    `cleaning` is False: where it is)."""
    file = env.get("FFU_PLAN_CACHE", DEFAULT_FILE)
    file = env.subst(file) if "$" in file else file
    if not file or (cleaning and _cleaning()):
        return ""
    top = env.Dir("#").abspath
    file = os.path.join(top, file[1:].lstrip("/")) if file.startswith("#") else os.path.join(top, file)
    return os.path.join(os.path.dirname(file), name) if name else file


def _cleaning() -> bool:
    try:
        from SCons.Script import GetOption
    except ImportError:  # pragma: no cover - outside scons
        return False
    return bool(GetOption("clean"))


def plans(
    file: str, top: str, project_rel: str, spec: dict, plan: Callable[[], list[variant.Variant]]
) -> list[Planned]:
    """Plans of one project through the cache in `file` (absolute; '' = no cache)."""
    if not file:
        return summarize(plan(), Path(top))
    cache = _CACHES.get(file)
    if cache is None:
        if not _CACHES:
            atexit.register(_save_all, os.getpid())
        cache = _CACHES[file] = PlanCache(file, top)
    return cache.plans(project_rel, spec, plan)


def _save_all(pid: int) -> None:
    if os.getpid() != pid:  # a forked child exiting
        return
    try:
        for cache in _CACHES.values():
            cache.save()
            if os.environ.get("FFUFORGE_PLAN_STATS"):
                print(f"ffuforge plan cache: {cache.reused} reused, {cache.planned} planned", file=sys.stderr)
    except KeyboardInterrupt:  # Ctrl-C while exiting: no traceback; the cache is only not updated
        pass
