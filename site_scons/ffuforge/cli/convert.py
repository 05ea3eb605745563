"""`ffuforge convert X.pkg.xml [-o Y.wm.xml]`: a legacy project as wm.xml (``Convert-IoTPkg2Wm``).

The conversion rules are :mod:`ffuforge.package.pkg2wm`'s; the output is read back by our wm.xml
reader before it is written, is never written over another file, and a second run says "already
present".
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError
from ..package import pkg2wm, project, scaffold, wmwrite
from ..util.changeset import ChangeSet


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="ffuforge convert", description="convert a .pkg.xml project to .wm.xml")
    ap.add_argument("source", help="the .pkg.xml project")
    ap.add_argument("-o", "--output", help="the .wm.xml to write (default beside the source)")
    try:
        args = ap.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:
        return int(exc.code or 0)
    src = Path(args.source)
    if args.output:
        out = Path(args.output)
    elif src.name.lower().endswith(".pkg.xml"):
        out = src.with_name(src.name[: -len(".pkg.xml")] + ".wm.xml")
    else:
        raise ConfigError("is not named *.pkg.xml; give -o OUTPUT.wm.xml", args.source)
    data = wmwrite.render(pkg2wm.convert(project.load(src, args.source)))
    scaffold.check(data, str(out))
    changes = ChangeSet(Path.cwd())
    changes.create(out, data, f"from {args.source}")
    for line in changes.apply():
        print(line)
    return 0
