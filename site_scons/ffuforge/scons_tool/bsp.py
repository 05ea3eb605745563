"""env.BSP(root, board=…): a vendor's BSP tree to an OEM-only board image with no SConstruct glue (#18).

What is found, by the conventions of Microsoft's BSP layout (the IoT add-on kit's `BSP/<Board>/`
folders, WDK package projects), and without editing or copying anything in the tree:

* a board is a folder holding an `*FMFileList.xml`, directly or in its `Packages/` folder; `board=`
  names it (any case);
* its FMs are the FMFileLists' FMs, `$(FMDirectory)` being FM_DIR= (else FFU_FM_DIR) and then the
  list's folder, as FeatureMerger's /InputFMDir;
* its OEMInput is `<Config>OEMInput.xml` below the board folder (OEMINPUT= picks another);
* package projects are the `*.wm.xml` / `*.pkg.xml` below the root (boards share driver projects),
  less EXCLUDE= globs (relative to the root) and less those inside another board's folder. Of these,
  only the projects whose CABs the board's FMs name are declared: the FM's package name decides.
  Alternative projects of one CAB (#18 item 7) resolve to the one inside the board's folder; two left
  are one line naming both and EXCLUDE=.

Everything missing is reported in one run (CHECK_ALL is on inside BSP()): every chosen project's
missing inputs and every CAB the FMs name that no project builds and no file provides. A project
that cannot even be named (a template, a macro only another build defines) is one warning line and
left out: if the board needs its CAB, the missing-CAB line says so.

The conventions are read from the IoT add-on kit's BSP folders (corpus) and public vendor BSPs; no
Microsoft tool defines a "BSP tree" (the kit's scripts hard-code `BSP/<Board>/Packages`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import FFUError
from ..features import bsptree
from ..features.bsptree import covers, fold, inside
from . import checks
from .checks import fm_dirs
from .configure import configured
from .nodes import fail, rel_path, relative_message, stop_on_error


def warn(text: str) -> None:
    sys.stderr.write(f"scons: warning: {relative_message(text)}\n")


def referenced(env, lists: list[Path], given_fm_dir) -> dict[str, tuple[str, str, Path]]:
    """{folded CAB stem: (file:line of the FM entry, CAB name, CAB path)} of every package the
    board's FMs name (Microsoft's, left unexpanded without MSPACKAGE, and FIPs excluded)."""
    from ..features import merge as features
    from ..features.model import assume_available
    from .methods import feature_variables

    top = Path(env.Dir("#").abspath)
    out: dict[str, tuple[str, str, Path]] = {}
    for fl in lists:
        rel = rel_path(env, str(fl))
        with stop_on_error(rel):
            settings = features.MergeSettings(
                cpu=env.subst("$FFU_CPU").lower(),
                out_pkg_dir=Path(rel_path(env, env.Dir(env.subst("$FFU_PKG_DIR")))),
                variables=feature_variables(env),
                top=top,
                build_type=env.subst("$FFU_BUILD_TYPE"),
                fm_dirs=features.fm_search_path(fl, fm_dirs(env, given_fm_dir)),
            )
            result = features.merge(fl, settings, write=False, available=assume_available)
        for m in result.merged:
            for p in m.fm.packages:
                if p.fip or "%" in p.name or "%" in p.path or "$(" in p.path:
                    continue
                cab = top / Path(p.path.replace("\\", "/")) / p.name
                out.setdefault(
                    fold(Path(p.name).stem), (f"{rel_path(env, str(m.source))}:{p.line}", p.name, cab)
                )
    return out


def choose(env, root: Path, board_dir: Path, others: list[Path], projects: list[Path], wanted, exclude):
    """{project: CAB base name} of the projects to declare (see the module docstring)."""
    from ..package import project as projmod
    from ..package import variant

    opts = variant.BuildOptions(
        cpu=env.subst("$FFU_CPU").lower(),
        version=env.subst("$FFU_VERSION"),
        variables=tuple(sorted((str(k), str(v)) for k, v in env.get("FFU_VARIABLES", {}).items())),
        languages=(),
        build_type=env.subst("$FFU_BUILD_TYPE"),
    )
    top = Path(env.Dir("#").abspath)
    by_base: dict[str, list[tuple[Path, str]]] = {}
    for proj in projects:
        if bsptree.excluded(str(proj.relative_to(root)), exclude):
            continue
        if any(inside(proj, o) and not inside(proj, board_dir) for o in others):
            continue  # another board's own project
        rel = rel_path(env, str(proj))
        try:
            name = variant.package_name(projmod.load(proj, rel), opts, top)
        except FFUError as exc:  # a template or another CPU's project must not stop this board
            exc.at(rel)
            warn(f"{exc}; left out of board {board_dir.name}")
            continue
        if any(covers(fold(name), stem) for stem in wanted):
            by_base.setdefault(fold(name), []).append((proj, name))
    chosen: dict[Path, str] = {}
    for _, alts in sorted(by_base.items()):
        if len(alts) > 1:
            alts = [a for a in alts if inside(a[0], board_dir)] or alts
        if len(alts) > 1:
            names = " and ".join(rel_path(env, str(a[0])) for a in alts)
            fail(
                f"{names} both build {alts[0][1]}.cab for board {board_dir.name}; leave one out with "
                "EXCLUDE= (bsp build --exclude)"
            )
        chosen[alts[0][0]] = alts[0][1]
    return chosen


def BSP(env, root, board, PRODUCT=None, CONFIG=None, OEMINPUT=None, EXCLUDE=(), FM_DIR=None, OUTDIR=None):
    """Declare a board's packages, merged FMs and OEM-only image from a BSP tree; returns the FFU
    nodes (aliases `packages`, `features` and `bsp-<board>` too)."""
    configured(env)
    root_node = env.Dir(root)
    top = Path(root_node.abspath)
    where = rel_path(env, root_node)
    if not top.is_dir():
        fail(f"{where}: no such folder; give BSP() the BSP tree's root")
    with stop_on_error():
        tree = bsptree.scan(top, Path(env.Dir("#build").abspath))
        board_dir = tree.board(board)
        config = CONFIG or env["FFU_CONFIG"] or "Test"
        oi = Path(env.File(OEMINPUT).abspath) if OEMINPUT else tree.oeminput(board_dir, config)
    mine, others, projects = tree.lists_of(board_dir), tree.other_boards(board_dir), tree.projects
    wanted = referenced(env, mine, FM_DIR)
    saved = env["FFU_CHECK_ALL"]
    env["FFU_CHECK_ALL"] = True  # every project's problems, then the missing CABs, in one report
    try:
        chosen = choose(env, top, board_dir, others, projects, wanted, EXCLUDE)
        cabs = []
        for proj in sorted(chosen):
            cabs += env.Package(env.File(str(proj)))
    finally:
        env["FFU_CHECK_ALL"] = saved
    bases = [fold(b) for b in chosen.values()]
    for stem, (at, name, cab) in sorted(wanted.items()):
        if not any(covers(b, stem) for b in bases) and not cab.is_file():
            checks.DEFERRED.append(
                f"{at}: package {name} is named by the FM, but no project under {where} builds it and "
                f"{rel_path(env, str(cab))} does not exist; add its project or the CAB"
            )
    merged = []
    for fl in mine:
        merged += env.FeatureMerge(env.File(str(fl)), FM_DIR=FM_DIR)
    image = env.Image(env.File(str(oi)), PRODUCT=PRODUCT or board_dir.name, CONFIG=config, OUTDIR=OUTDIR)
    env.Alias("packages", cabs)
    env.Alias("features", merged)
    env.Alias(f"bsp-{board_dir.name}".lower(), image)
    return image
