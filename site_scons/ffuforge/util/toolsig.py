"""Fingerprints of ffuforge's own code, so that editing the tool rebuilds what it produced.

SCons signs a Python function action by its bytecode only (edits in called helpers go
unnoticed, and a new Python version rebuilds everything). Instead each action is signed by a
digest of the source of the modules it can reach, named relative to the package (`image.install`):
stable across machines and checkouts, so a shared cache keeps working.

Importing `a.b.c` runs the `__init__` of `a` and `a.b` as well, so those count too; the root
package (`ffuforge/__init__.py`, which holds the version) is in every fingerprint.
"""

from __future__ import annotations

import hashlib
import re
from functools import cache
from pathlib import Path

from .. import __version__

PKG_DIR = Path(__file__).resolve().parent.parent


# Every `from .x import …`, `from ..a.b import …`, `from . import a, b` and `from ffuforge.x import …`,
# found by text: parsing whole modules cost more than half a second of every build, no-op included.
# A match in a comment or string only adds a module (a broader fingerprint), never loses one.
_FROM = re.compile(
    rb"\bfrom[ \t]*(?:(\.+)|ffuforge\b\.?)([\w.]*)[ \t]*import\b[ \t]*(\([^)]*\)|(?:[^\n;\\]|\\\n)*)"
)


@cache
def source_file(module: str) -> Path | None:
    """The file of dotted `module` ('' is the root package), or None when there is none."""
    base = PKG_DIR.joinpath(*module.split(".")) if module else PKG_DIR
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if module and base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def modules() -> list[str]:
    """Every module of the library, as dotted names relative to the package ('' is the root)."""
    out = []
    for f in sorted(PKG_DIR.rglob("*.py")):
        parts = list(f.relative_to(PKG_DIR).with_suffix("").parts)
        out.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return out


def _package(module: str) -> str:
    """The package a module's relative imports start from."""
    f = source_file(module)
    if f is not None and f.name == "__init__.py":
        return module
    return module.rpartition(".")[0]


def _with_parents(module: str) -> set[str]:
    parts = module.split(".") if module else []
    return {".".join(parts[:i]) for i in range(len(parts) + 1)}


@cache
def imports(module: str) -> frozenset[str]:
    """The ffuforge modules `module` imports directly, with the packages they sit in."""
    f = source_file(module)
    if f is None:
        return frozenset()
    found: set[str] = set()
    for m in _FROM.finditer(f.read_bytes()):
        dots, target, names = m.group(1), m.group(2).decode(), m.group(3).decode()
        if dots:
            base = _package(module).split(".") if _package(module) else []
            up = len(dots) - 1
            if up > len(base):
                continue  # beyond the root package: not ours
            base = base[: len(base) - up]
            stem = ".".join([*base, *([target] if target else [])])
        else:
            stem = target
        if source_file(stem) is None:
            continue
        found |= _with_parents(stem)
        for item in names.strip("()").replace("\\\n", " ").replace("\n", " ").split(","):
            words = item.split("#")[0].split()
            if words:
                sub = f"{stem}.{words[0]}" if stem else words[0]
                if source_file(sub) is not None:
                    found.add(sub)
    found.discard(module)
    return frozenset(found)


@cache
def closure(module: str) -> tuple[str, ...]:
    """`module`, every ffuforge module it can reach, and their packages, sorted."""
    seen: set[str] = set()
    todo = list(_with_parents(module))
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(imports(m))
    return tuple(sorted(seen))


@cache
def source_digest(module: str) -> str:
    """Hex digest of `module`'s own source (not what it imports)."""
    f = source_file(module)
    if f is None:
        raise ValueError(f"no ffuforge module {module!r}")
    return hashlib.sha256(f.read_bytes()).hexdigest()


@cache
def fingerprint(module: str) -> str:
    """Hex digest of ffuforge's version and the source of `module` and what it imports."""
    if source_file(module) is None:
        raise ValueError(f"no ffuforge module {module!r}")
    h = hashlib.sha256(f"ffuforge {__version__}\n".encode())
    for m in closure(module):
        f = source_file(m)
        assert f is not None
        h.update(f"{m}\n".encode())
        h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()
