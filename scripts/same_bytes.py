"""Show that a change keeps the sample's outputs byte-identical to another revision's.

    python scripts/same_bytes.py [--base REV] [scons options…]

Builds the sample workspace from a clean checkout of REV (default: HEAD) and from the working tree,
each in its own temporary copy, and compares the SHA-256 of every CAB, partition image and FFU.
Merged FMs are reported but not compared: they record the tool's code fingerprint on purpose.
Exit status 0 when every compared output is the same, 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMPARED = (".cab", ".img", ".ffu")


def _digests(ws: Path) -> dict[str, str]:
    out = {}
    for f in sorted((ws / "build").rglob("*")):
        if f.is_file() and f.suffix in COMPARED + (".xml",) and ".ffuforge" not in f.parts:
            h = hashlib.sha256()
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            out[str(f.relative_to(ws))] = h.hexdigest()
    return out


def _build(ws: Path, options: list[str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SOURCE_DATE_EPOCH", "PYTHONPATH")}
    scons = Path(sys.executable).parent / "scons"
    proc = subprocess.run([str(scons), "-Q", *options], cwd=ws, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"scons failed in {ws}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return _digests(ws)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default="HEAD", help="revision to compare with (default HEAD)")
    args, options = ap.parse_known_args()
    with tempfile.TemporaryDirectory(prefix="ffuforge-same-bytes-") as tmp:
        base, work = Path(tmp) / "base", Path(tmp) / "work"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(base), args.base], check=True
        )
        try:
            ignore = shutil.ignore_patterns(".git", ".venv", "build", "__pycache__", ".sconsign*")
            shutil.copytree(ROOT, work, ignore=ignore)
            before, after = _build(base, options), _build(work, options)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], check=False)
    same = True
    for name in sorted(set(before) | set(after)):
        a, b = before.get(name), after.get(name)
        compared = name.endswith(COMPARED)
        state = "same" if a == b else ("DIFFERENT" if compared else "differs (not compared)")
        if a is None or b is None:
            state = "MISSING" if compared else "missing (not compared)"
        same &= not compared or a == b
        print(f"{state:24} {name}")
    print(f"{args.base} vs working tree: {'byte-identical' if same else 'outputs differ'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
