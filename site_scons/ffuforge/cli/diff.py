"""`ffuforge diff A B [--json]`: what differs between two images (build folders or FFUs).

Exit status as diff(1): 0 the same, 1 different, 2 trouble (an unreadable input: one line).
What each kind of input gives is described in :mod:`ffuforge.image.inventory`; a build folder
compared with an FFU is compared through the folder's own Flash.ffu.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import FormatError
from ..image import inventory
from .files import input_file

TITLES = {
    "packages": "packages",
    "files": "files",
    "registry": "registry values",
    "partitions": "partitions",
    "layout": "layout",
}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="ffuforge diff",
        description="compare two images: build folders (build/<cpu>/<Product>/<Config>) or FFUs; "
        "exit 0 same, 1 different, 2 error",
    )
    ap.add_argument("a", help="the old image: a build folder or an FFU")
    ap.add_argument("b", help="the new image: a build folder or an FFU")
    ap.add_argument("--json", action="store_true", help="machine-readable output")
    args = ap.parse_args(argv)
    for path in (args.a, args.b):  # a build folder, else a file (never a FIFO or a device)
        if not os.path.isdir(path):
            input_file(path, "a build folder or an FFU")
    a, b = inventory.load(args.a), inventory.load(args.b)
    if a["kind"] != b["kind"]:
        a, b = (_as_ffu(x) for x in (a, b))
    result = inventory.compare(a, b)
    different = inventory.differs(result)
    if args.json:
        print(json.dumps(result | {"different": different}, indent=1, sort_keys=True))
    else:
        print("\n".join(format_result(result)))
    return 1 if different else 0


def _as_ffu(inv: dict) -> dict:
    if inv["kind"] == "ffu":
        return inv
    ffu = Path(inv["source"]) / inventory.FFU_NAME
    if not ffu.is_file():
        raise FormatError(
            "compared with an FFU, a build folder is read through its Flash.ffu, which it lacks; "
            "build the image or give two build folders",
            inv["source"],
        )
    return inventory.from_ffu(ffu)


def format_result(result: dict) -> list[str]:
    """Human output: one line per difference, `+` added, `-` removed, `~` changed."""
    lines = [f"--- {result['a']}", f"+++ {result['b']}"]
    for section in inventory.SECTIONS:
        if section not in result:
            continue
        r = result[section]
        if not (r["added"] or r["removed"] or r["changed"]):
            continue
        lines.append(f"{TITLES[section]}:")
        for rec in r["added"]:
            lines.append(f"  + {_describe(section, rec)}")
        for rec in r["removed"]:
            lines.append(f"  - {_describe(section, rec)}")
        for key, ch in r["changed"].items():
            lines.append(f"  ~ {_label(section, key, ch['record'])}: {_changes(section, ch)}")
    if len(lines) == 2:
        lines.append("no differences")
    if result["not_compared"]:
        lines.append(
            f"not compared: {', '.join(result['not_compared'])} (not readable from an FFU alone; "
            "give the build folders)"
        )
    return lines


def _label(section: str, key: str, rec: dict) -> str:
    if section == "registry":
        return f"{rec['key']} [{rec['name'] or '(Default)'}]"
    if section == "layout":
        return key
    return rec.get("name") or rec.get("path") or key


def _describe(section: str, rec: dict) -> str:
    if section == "packages":
        extra = f", sha256 {rec['sha256'][:16]}…" if rec.get("sha256") else ""
        return f"{rec['name']} {rec['version']} ({rec['partition']}, {rec['release']}{extra})"
    if section == "files":
        return f"{rec['path']} ({rec['size']} bytes, sha256 {rec['sha256'][:16]}…, {rec['package']})"
    if section == "registry":
        value = inventory.registry_text(rec["type"], rec["data"])
        return f"{_label(section, '', rec)} = {value} ({rec['package']})"
    if section == "partitions":
        return f"{rec['name']} at sector {rec['first_sector']}, {rec['sectors']} sectors"
    return json.dumps(rec, sort_keys=True)


def _changes(section: str, ch: dict) -> str:
    rec, changes = ch["record"], dict(ch["changes"])
    if section == "registry" and ({"type", "data"} & set(changes)):
        old_type, _ = changes.pop("type", [rec["type"], rec["type"]])
        old_data, _ = changes.pop("data", [rec["data"], rec["data"]])
        text = f"{inventory.registry_text(old_type, old_data)} → {inventory.registry_text(rec['type'], rec['data'])}"
        rest = [text] + [f"{f} {o} → {n}" for f, (o, n) in sorted(changes.items())]
        return "; ".join(rest) + f" ({rec['package']})"
    parts = []
    for field, (old, new) in sorted(changes.items()):
        if field in ("sha256", "content") and old and new:
            old, new = f"{old[:16]}…", f"{new[:16]}…"
        parts.append(f"{field} {old} → {new}")
    owner = f" ({rec['package']})" if section == "files" else ""
    return "; ".join(parts) + owner


if __name__ == "__main__":
    sys.exit(main())
