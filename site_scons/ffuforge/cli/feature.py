"""`ffuforge feature add|remove PRODUCT ID`: select or drop a feature in a product's OEMInputs
(``Add-IoTProductFeature`` / ``Remove-IoTProductFeature``). Idempotent, one line per file."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ..features import edit, templates
from .new import Workspace, oeminputs


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ffuforge feature", description="select or drop a feature in a product")
    ap.add_argument("action", choices=("add", "remove"))
    ap.add_argument("product")
    ap.add_argument("id")
    ap.add_argument(
        "--config", choices=templates.CONFIGS, help="only this config's OEMInput (default every one)"
    )
    ap.add_argument("--microsoft", action="store_true", help="a Microsoft feature (default an OEM one)")
    ap.add_argument("--top", default=".")
    try:
        args = ap.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:
        return int(exc.code or 0)
    ws = Workspace(args.top)
    group = "Microsoft" if args.microsoft else "OEM"
    for oi in oeminputs(ws, args.product, args.config):
        doc = ws.doc(oi)
        if args.action == "add":
            ws.edited(oi, edit.oeminput_add_feature(doc, args.id, group), f"{group} feature {args.id}")
        else:
            note = edit.oeminput_remove_feature(doc, args.id, group)
            if note is None:
                ws.changes.present.append(f"not present {ws.rel(oi)}: {group} feature {args.id}")
            else:
                ws.changes.edit(oi, doc.bytes(), note)
    return ws.finish()
