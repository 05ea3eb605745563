"""`ffuforge bsp build ROOT --board NAME`: a BSP tree as shipped to a board's OEM-only image.

Writes a ready workspace (default `./<board>`): an `SConstruct` calling `env.BSP()` and `bsp`, a
symbolic link to ROOT, so the tree is built in place, never copied or edited (ROOT is declared in
FFU_SOURCE_ROOTS, so its files pass the source confinement). Then runs scons there (`--no-build`
only writes it); arguments after `--` go to scons (`-- CONFIG=Retail SIGN_CERT=oem.pfx`, `-j2`).
Writing it again with the same arguments gives the same bytes; a workspace whose SConstruct
ffuforge did not write is refused.
"""

from __future__ import annotations

import argparse
import os
import stat
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError
from ..features import bsptree
from ..util.atomic import write_bytes
from .files import input_file, kind, output_dir

MARK = "# Written by `ffuforge bsp build`"

SCONSTRUCT = """{mark}: board {board} of the BSP tree bsp/ (-> {root}), built in place.
# Run that command again to rewrite this file; scons' options (scons -h) work as usual.
import sys

sys.path.insert(0, {site!r})  # the ffuforge that wrote this workspace
from ffuforge import scons_tool

DefaultEnvironment(tools=[])
env = Environment(
    tools=[scons_tool.generate],
    FFU_CPU={cpu!r},
    FFU_PRODUCT={product!r},
    FFU_CONFIG={config!r},
    FFU_SOURCE_ROOTS=[{root!r}],  # the BSP's files are read where they are
)
scons_tool.configure(env, strict_arguments=True)
env.Decider("content-timestamp")
Default(env.BSP("bsp", board={board!r}, OEMINPUT={oeminput!r}, EXCLUDE={exclude!r}, FM_DIR={fm_dir!r}))
"""


def workspace(args) -> Path:
    try:
        mode = os.stat(args.root).st_mode
    except OSError as e:
        raise ConfigError(f"cannot read folder: {e.strerror}; give the BSP tree's root", args.root) from None
    if not stat.S_ISDIR(mode):
        raise ConfigError(f"is {kind(mode)}, not a folder; give the BSP tree's root", args.root)
    if args.oeminput:
        input_file(args.oeminput, "an OEMInput XML file")
    output_dir(args.out or ".")
    root = Path(args.root).resolve()
    tree = bsptree.scan(root)
    board = tree.board(args.board)
    cpu = args.cpu or tree.cpu(board)
    if cpu is None:
        raise ConfigError(f"board {board.name}: its FMFileLists leave the CPU open (CPU_TYPE); pass --cpu")
    tree.oeminput(board, args.config) if not args.oeminput else None  # fails early, in one line
    out = Path(args.out or board.name)
    sconstruct = out / "SConstruct"
    if sconstruct.exists() and not sconstruct.read_text(errors="replace").startswith(MARK):
        raise ConfigError(f"{sconstruct}: exists and was not written by ffuforge bsp build; choose --out")
    link = out / "bsp"
    if (link.exists() or link.is_symlink()) and not (link.is_symlink() and link.resolve() == root):
        raise ConfigError(f"{link}: exists and is not a link to {root}; choose --out")
    out.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        os.symlink(root, link)
    text = SCONSTRUCT.format(
        mark=MARK,
        board=board.name,
        root=str(root),
        site=str(Path(__file__).resolve().parents[2]),
        cpu=cpu,
        product=args.product or board.name,
        config=args.config,
        oeminput=str(Path(args.oeminput).resolve()) if args.oeminput else None,
        exclude=sorted(args.exclude),
        fm_dir=[str(Path(d).resolve()) for d in args.fm_dir] or None,
    )
    write_bytes(sconstruct, text.encode())
    return out


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(argv if argv is not None else sys.argv[1:])
    scons_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(prog="ffuforge bsp", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="action", required=True)
    b = sub.add_parser("build", help="write a workspace for one board of a BSP tree and build its image")
    b.add_argument("root", help="the BSP tree (as unpacked from the vendor, or a Visual Studio BSP solution)")
    b.add_argument("--board", required=True, help="the board: a folder with an *FMFileList.xml (any case)")
    b.add_argument("--product", help="product name (default: the board's)")
    b.add_argument("--config", default="Test", choices=("Test", "Retail"), help="image configuration")
    b.add_argument("--cpu", help="target CPU (default: the FMFileList's CPUType)")
    b.add_argument("--oeminput", help="the OEMInput (default: <config>OEMInput.xml below the board)")
    b.add_argument(
        "--exclude", action="append", default=[], help="glob of projects to leave out (repeatable)"
    )
    b.add_argument(
        "--fm-dir", action="append", default=[], help="$(FMDirectory), as FeatureMerger's /InputFMDir"
    )
    b.add_argument("--out", help="workspace folder (default: ./<board>)")
    b.add_argument("--no-build", action="store_true", help="only write the workspace")
    try:
        args = ap.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    if args.cpu:
        from ..features.model import canon_cpu

        args.cpu = canon_cpu(args.cpu)
    out = workspace(args)
    print(f"{out}/SConstruct: board {args.board} of {Path(args.root).resolve()}")
    if args.no_build:
        return 0
    return subprocess.run([sys.executable, "-m", "SCons", "-C", str(out), *scons_args]).returncode
