"""#18 "Checked by": the corpus' BSP boards through the BSP entry point, with a count.

Every `BSP/` tree in ../shared/corpus (the IoT add-on kit snapshots) is scanned as `env.BSP()` and
`ffuforge bsp build` scan it (ffuforge.features.bsptree): each board's FMs are merged in memory,
the CABs they name (Microsoft's skipped, as in an OEM-only image) are matched against the package
projects of the tree, and the OEMInput is resolved. A board whose every package is available
(built by a project of the tree) is built with `ffuforge bsp build` — one representative build per
distinct board name, to keep the time bounded on 2 cores; the others are resolve-only. Boards that
cannot build get one line each saying why; the test prints the count and fails if a board whose
packages are available does not build.
"""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import pytest
from test_bsp_tree import ffuforge

from ffuforge.errors import FFUError
from ffuforge.features import bsptree
from ffuforge.features import merge as features
from ffuforge.features.model import assume_available
from ffuforge.package import project as projmod
from ffuforge.package import variant

pytestmark = pytest.mark.e2e


def kit_roots(corpus: Path) -> list[Path]:
    """The kits' roots (holding `Common/` and `Source-<arch>/BSP/`): BSP FMs name packages of
    `Common/Packages` too, so the tree a board builds from is the whole kit."""
    bsps = [p for p in corpus.rglob("BSP") if p.is_dir() and any(p.glob("*/Packages/*FMFileList.xml"))]
    return sorted({p.parent.parent for p in bsps})


@functools.cache
def names_built(tree_root: Path, cpu: str) -> dict[str, Path]:
    tree = bsptree.scan(tree_root)
    opts = variant.BuildOptions(
        cpu=cpu, version="10.0.0.0", variables=(("OEMNAME", "Contoso"),), languages=(), build_type="fre"
    )
    out = {}
    for proj in tree.projects:
        try:
            out.setdefault(variant.package_name(projmod.load(proj, str(proj)), opts).casefold(), proj)
        except FFUError:
            continue
    return out


def why_not(tree: bsptree.Tree, board: Path, tmp: Path) -> str | None:
    """None when every CAB the board's FMs name is built by a project of the tree, else the reason."""
    try:
        cpu = tree.cpu(board) or "arm"
        tree.oeminput(board, "Test")
        built = names_built(tree.root, cpu)
        missing = []
        for fl in tree.lists_of(board):
            settings = features.MergeSettings(
                cpu=cpu,
                out_pkg_dir=tmp / "pkgs",
                variables={
                    "OEM_NAME": "Contoso",
                    "BSPPKG_DIR": str(tmp / "pkgs"),
                    "PKGBLD_DIR": str(tmp / "pkgs"),
                },
                top=tmp,
                fm_dirs=features.fm_search_path(fl),
            )
            res = features.merge(fl, settings, write=False, available=assume_available)
            for m in res.merged:
                for p in m.fm.packages:
                    if p.fip or "%" in p.name + p.path:
                        continue
                    stem = Path(p.name).stem.casefold()
                    if not any(bsptree.covers(b, stem) for b in built):
                        missing.append(p.name)
        missing.sort(key=lambda n: (n.startswith("Contoso."), n))  # vendor drops first
    except FFUError as exc:
        return str(exc).split("\n")[0]
    if missing:
        return f"{len(missing)} CABs its FMs name have no project in the tree (vendor binaries), e.g. {missing[0]}"
    return None


def test_corpus_bsp_boards(corpus, tmp_path, capsys):
    roots = kit_roots(corpus)
    assert roots, "no BSP trees in the corpus"
    lines, buildable, built_names, seen = [], [], set(), set()
    total = 0
    for root in roots:
        tree = bsptree.scan(root)
        for board in [b for b in tree.board_dirs() if "BSP" in b.parts and b not in seen]:
            seen.add(board)
            total += 1
            where = f"{board.relative_to(corpus)}"
            reason = why_not(tree, board, tmp_path)
            if reason is not None:
                lines.append(f"{where}: cannot build: {reason}")
                continue
            buildable.append(where)
            if board.name.casefold() in built_names:
                lines.append(f"{where}: packages available (resolve-only; {board.name} built once)")
                continue
            built_names.add(board.name.casefold())
            ws = tmp_path / f"ws{total}"
            # a copy: the corpus is read-only material, and the build must not depend on its path
            shutil.copytree(root, tmp_path / f"tree{total}")
            ffuforge(
                tmp_path,
                "bsp",
                "build",
                str(tmp_path / f"tree{total}"),
                "--board",
                board.name,
                "--out",
                str(ws),
            )
            assert list(ws.glob("build/*/*/Test/Flash.ffu"))
            lines.append(f"{where}: built")
    with capsys.disabled():
        print(f"\ncorpus BSP boards: {len(buildable)} of {total} have every package available and build")
        for line in lines:
            print("  " + line)
    assert total >= 10
