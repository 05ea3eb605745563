"""What a BSP tree holds, by the conventions of Microsoft's BSP layout (#18's BSP entry point).

The IoT add-on kit's `BSP/<Board>/Packages/<Board>FMFileList.xml` and vendor BSPs (Raspberry Pi,
NXP i.MX) share these: a board is a folder holding an `*FMFileList.xml`, directly or in its
`Packages/` folder; its OEMInputs (`TestOEMInput.xml`, `RetailOEMInput.xml`, often under
`OEMInputSamples/`) lie below it; package projects (`*.wm.xml`, legacy `*.pkg.xml`) anywhere in the
tree, shared by boards. Used by `env.BSP()` and `ffuforge bsp build`; nothing here reads SCons.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from .fm.filelist import load_fmfilelist
from .model import canon_cpu

PROJECT_SUFFIXES = (".wm.xml", ".pkg.xml")


def fold(text: str) -> str:
    return text.casefold()


def board_dir(fmfilelist: Path) -> Path:
    return fmfilelist.parent.parent if fold(fmfilelist.parent.name) == "packages" else fmfilelist.parent


def inside(path: Path, folder: Path) -> bool:
    return folder == path or folder in path.parents


@dataclass
class Tree:
    root: Path
    fmfilelists: list[Path] = field(default_factory=list)
    projects: list[Path] = field(default_factory=list)
    oeminputs: list[Path] = field(default_factory=list)

    def board_dirs(self) -> list[Path]:
        return sorted({board_dir(p) for p in self.fmfilelists})

    def board(self, name: str) -> Path:
        found = [d for d in self.board_dirs() if fold(d.name) == fold(name)]
        if len(found) > 1:
            where = ", ".join(str(d.relative_to(self.root)) for d in found)
            raise ConfigError(
                f"{self.root}: board {name} is in {where}; give the folder that holds one as the root"
            )
        if not found:
            known = ", ".join(sorted({d.name for d in self.board_dirs()})) or "none"
            raise ConfigError(f"{self.root}: no board {name} (boards with an *FMFileList.xml here: {known})")
        return found[0]

    def lists_of(self, board: Path) -> list[Path]:
        return [p for p in self.fmfilelists if board_dir(p) == board]

    def other_boards(self, board: Path) -> list[Path]:
        return [d for d in self.board_dirs() if d != board]

    def oeminput(self, board: Path, config: str) -> Path:
        """`<config>OEMInput.xml` below the board (else the one name starting with the config)."""
        mine = [p for p in self.oeminputs if inside(p, board)]
        exact = [p for p in mine if fold(p.name) == fold(f"{config}OEMInput.xml")]
        starts = exact or [p for p in mine if fold(p.name).startswith(fold(config))]
        if len(starts) == 1:
            return starts[0]
        names = ", ".join(str(p.relative_to(board)) for p in mine) or "none"
        raise ConfigError(
            f"board {board.name}: no single {config} OEMInput (found: {names}); name one (OEMINPUT=, "
            "--oeminput) or choose the configuration (CONFIG=, --config)",
            str(board),
        )

    def cpu(self, board: Path) -> str | None:
        """The CPU the board's FMFileLists declare (CPUType=), None when they leave it open."""
        cpus = set()
        for fl in self.lists_of(board):
            for e in load_fmfilelist(fl, str(fl)).fms:
                if e.cpu_type and e.cpu_type.strip() != "CPU_TYPE":
                    cpus.add(canon_cpu(e.cpu_type.strip()))
        return cpus.pop() if len(cpus) == 1 else None


def scan(root: Path, skip: Path | None = None) -> Tree:
    """Every FMFileList, package project and OEMInput below root, sorted; hidden folders and `skip`
    (a workspace's build folder) left out."""
    tree = Tree(root)
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and Path(folder, d) != skip)
        for f in files:
            low, p = fold(f), Path(folder, f)
            if low.endswith("fmfilelist.xml"):
                tree.fmfilelists.append(p)
            elif low.endswith(PROJECT_SUFFIXES):
                tree.projects.append(p)
            elif low.endswith(".xml") and "oeminput" in low:
                tree.oeminputs.append(p)
    for items in (tree.fmfilelists, tree.projects, tree.oeminputs):
        items.sort()
    return tree


def excluded(rel: str, patterns) -> bool:
    """`rel` (relative to the root) matches a glob of `patterns` or lies in a folder one names."""
    rel = rel.replace("\\", "/").casefold()
    for pat in patterns:
        pat = str(pat).replace("\\", "/").casefold().rstrip("/")
        if fnmatch.fnmatch(rel, pat) or rel.startswith(pat + "/"):
            return True
    return False


def covers(base: str, stem: str) -> bool:
    """A project whose base CAB is `base` builds the CAB `stem` (base, language or WOW package);
    both folded."""
    return stem == base or stem.startswith((base + ".resources_lang_", base + "_lang_", base + "_wow_"))
