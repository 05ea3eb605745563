"""Fingerprints of ffuforge's own code, so that editing the tool rebuilds what it produced.

SCons signs a Python function action by its bytecode only (edits in called helpers go
unnoticed, and a new Python version rebuilds everything). Instead each action is signed by a
digest of the source of the modules it can reach, named relative to the package: stable
across machines and checkouts, so a shared cache keeps working.
"""

from __future__ import annotations

import hashlib
import re
from functools import cache
from pathlib import Path

from . import __version__

PKG_DIR = Path(__file__).resolve().parent


# Every `from .x import …`, `from . import a, b` and `from ffuforge.x import …`, found by text:
# parsing whole modules cost more than half a second of every build, no-op included. A match in a
# comment or string only adds a module (a broader fingerprint), never loses one.
_FROM = re.compile(rb"\bfrom[ \t]*(?:\.(?!\.)|ffuforge\.)([\w.]*)[ \t]*import\b[ \t]*(\([^)]*\)|(?:[^\n;\\]|\\\n)*)")


@cache
def _imports(module: str) -> frozenset[str]:
    found = set()
    for m in _FROM.finditer((PKG_DIR / f"{module}.py").read_bytes()):
        target, names = m.group(1).decode(), m.group(2).decode()
        if target:
            found.add(target.split(".")[0])
        else:
            for item in names.strip("()").replace("\\\n", " ").split(","):
                words = item.split()
                if words:
                    found.add(words[0])
    return frozenset(m for m in found if (PKG_DIR / f"{m}.py").is_file())


@cache
def closure(module: str) -> tuple[str, ...]:
    seen, todo = set(), [module]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(_imports(m))
    return tuple(sorted(seen))


@cache
def fingerprint(module: str) -> str:
    """Hex digest of ffuforge's version and the source of `module` and what it imports."""
    h = hashlib.sha256(f"ffuforge {__version__}\n".encode())
    for m in closure(module):
        h.update(f"{m}\n".encode())
        h.update(hashlib.sha256((PKG_DIR / f"{m}.py").read_bytes()).digest())
    return h.hexdigest()
