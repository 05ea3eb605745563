"""Nodes, paths and messages at SConscript time: relative to the top of the tree, one line to stop.

Signatures and messages name paths relative to the top of the tree (`#`), never the checkout's
absolute path, so a shared cache works across checkouts and messages read as the user typed them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import SCons.Node.FS
import SCons.Node.Python

from ..errors import ConfigError, FFUError
from . import plancache
from .state import DECLARED, PACKAGES, PRODUCT_CABS


def source_file(env, path, what: str):
    """The source File node for `path`, or a one-line stop when a directory stands there."""
    try:
        return env.File(path).srcnode()
    except TypeError:  # SCons: "Tried to lookup Dir … as a File"
        fail(f"{rel_path(env, str(path))}: is a directory, not {what}")


def fail(message: str) -> NoReturn:
    """Stop at SConscript time with one line (SCons' UserError adds a Python frame line)."""
    sys.stderr.write(f"scons: *** {relative_message(message)}\n")
    raise SystemExit(2)


def relative_message(message: str) -> str:
    """Paths in messages relative to the top of the tree, as the user typed them."""
    top = SCons.Node.FS.get_default_fs().Top.get_abspath()
    return message.replace(top + os.sep, "") if top != os.sep else message


def rel_path(env, node_or_path) -> str:
    """Path relative to the top of the SCons tree, for stable messages and signatures."""
    path = getattr(node_or_path, "abspath", None) or os.path.abspath(str(node_or_path))
    try:
        return os.path.relpath(path, env.Dir("#").abspath)
    except ValueError:
        return path


@contextmanager
def stop_on_error(where: str | None = None) -> Iterator[None]:
    """A user mistake found while reading SConscripts stops the build with one line, located at
    `where` (a workspace-relative file) unless the error names its own file."""
    try:
        yield
    except FFUError as exc:
        fail(str(exc.at(where) if where else exc))


def top_file(env, path):
    """A File node for a path that is absolute or relative to the top of the tree."""
    text = str(path)
    return env.File(text if os.path.isabs(text) else "#" + text)


def available(path) -> bool:
    p = os.path.abspath(str(path))
    return p in PACKAGES or p in PRODUCT_CABS or os.path.isfile(p)


def partition_of(path) -> str | None:
    """Target partition of a CAB: from the graph for CABs this build makes (a CAB built per product:
    from its copies), else its update.mum."""
    p = os.path.abspath(str(path))
    copies = PRODUCT_CABS.get(p)
    rec = PACKAGES.get(next(iter(copies.values())) if copies else p)
    if rec is not None:
        return rec.partition
    if os.path.isfile(str(path)):
        from ..image import install

        return install.read_package_info(Path(path)).partition
    return None


def relative_paths(data, top: str):
    """The same JSON with paths below `top` made relative (reports must not name the checkout)."""
    if isinstance(data, dict):
        return {k: relative_paths(v, top) for k, v in data.items()}
    if isinstance(data, list):
        return [relative_paths(v, top) for v in data]
    if isinstance(data, str) and data.startswith(top + os.sep):
        return data[len(top) + 1 :]
    return data


def progress_bar(label: str):
    """A progress callback drawing a bar on a terminal (None when stdout is not one)."""
    if not sys.stdout.isatty():
        return None
    state = {"last": -1}

    def report(done: int, total: int) -> None:
        pct = int(100 * done / total) if total else 100
        if pct != state["last"]:
            state["last"] = pct
            bar = "#" * (pct // 4)
            sys.stdout.write(f"\r  {label} [{bar:<25}] {pct:3d}%")
            if pct >= 100:
                sys.stdout.write("\n")
            sys.stdout.flush()

    return report


def print_warnings(warnings: list[str]) -> None:
    """A package's INF warnings (``file:line: warning: …``) on stderr, each once: the package action
    prints them when it builds the CAB, so a no-op run (or a cache hit) stays quiet."""
    for line in dict.fromkeys(warnings):
        sys.stderr.write(relative_message(line) + "\n")
    sys.stderr.flush()


def layout_source(env, cab: Path, which: str) -> bytes:
    """DeviceLayout.xml / OEMDevicePlatform.xml at SConscript time: from the project's source
    file for a CAB this build makes, else from the (vendor) CAB itself."""
    rec = PACKAGES.get(os.path.abspath(str(cab)))
    if rec is not None:
        for name, src in rec.layout_files:
            if name == which:
                return Path(src).read_bytes()
        raise ConfigError(f"package {rec.name} ({rec.origin}) installs no \\Windows\\ImageUpdate\\{which}")
    from ..image import cabfacts  # not before: its imports cost a no-op build tens of milliseconds
    from ..image import stages as image

    facts = cabfacts.cache(plancache.cache_file(env, cabfacts.FILENAME))
    read = lambda: image.read_layout_files(Path(cab))  # noqa: E731
    files = facts.get(Path(cab), "layout", read) if facts else read()
    if which not in files:
        raise ConfigError(f"package {Path(cab).name} carries no \\Windows\\ImageUpdate\\{which}")
    return files[which]


class SpecValue(SCons.Node.Python.Value):
    """A Value carrying a target's JSON spec, named by a short stable label ("spec of <target>") in
    `--debug=explain` and the .sconsign instead of by the JSON itself (kilobytes per CAB): its content
    signature is still the whole JSON, so what rebuilds is unchanged."""

    def __str__(self) -> str:
        return self.name

    def str_for_display(self) -> str:
        return self.name


def spec_value(env, target, text: str, origin: str = ""):
    """The spec Value of `target` (a node), labelled with the file it comes from when there is one:
    SCons reads the label back from the .sconsign through ValueWithMemo(label), which finds this
    node, so explain compares the old and new specs under one stable name."""
    label = f"spec of {rel_path(env, target)}" + (f" (from {origin})" if origin else "")
    node = SpecValue(text, name=label)
    SCons.Node.Python._memo_lookup_map[hash((label, None))] = node
    return node


def declare_once(
    env, target, spec: str, make: Callable[[], list], same: Callable[[str, str], bool] | None = None
):
    """Declare `target` (a node) once per graph: a package SConscript read for a second configuration
    (Test and Retail in one graph) names the same outputs again, which SCons would warn about (two
    environments, one target). The same spec (`same(old, new)`, default: equal) returns the first
    declaration's nodes; another spec is one line: two settings cannot make one file."""
    path = target.abspath
    known = DECLARED.get(path)
    if known is not None:
        if (same or str.__eq__)(known[0], spec):
            return known[1]
        fail(f"{rel_path(env, target)}: declared twice with different settings; give each its own target")
    nodes = make()
    DECLARED[path] = (spec, nodes)
    return nodes
