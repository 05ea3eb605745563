"""Fingerprints of ffuforge's own code, so that editing the tool rebuilds what it produced.

SCons signs a Python function action by its bytecode only (edits in called helpers go
unnoticed, and a new Python version rebuilds everything). Instead each action is signed by a
digest of the source of the modules it can reach, named relative to the package: stable
across machines and checkouts, so a shared cache keeps working.
"""

from __future__ import annotations

import ast
import hashlib
from functools import cache
from pathlib import Path

from . import __version__

PKG_DIR = Path(__file__).resolve().parent


def _imports(module: str) -> set[str]:
    tree = ast.parse((PKG_DIR / f"{module}.py").read_bytes())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ffuforge."):
            found.add(node.module.split(".")[1])
    return {m for m in found if (PKG_DIR / f"{m}.py").is_file()}


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
