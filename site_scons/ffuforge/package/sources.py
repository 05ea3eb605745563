"""Where a package project's input files are looked for, and where they may be.

Three rules, all applied while planning (so the emitter, the scanner and the action agree):

* **Base folders.** A relative `source=` is looked for, in order, in the explicit base folder
  (``Package(SOURCE_BASE=)`` / ``FFU_PKG_SOURCE_BASE``) when one is given, else in the WDK
  project's working folder, then in the project's own folder. The WDK convention: a Visual
  Studio package project (`.vcxproj`) lists its package projects as ``<PkgGen Include="x.wm.xml">``
  items and MSBuild runs pkggen with the `.vcxproj` folder as working folder, so BSP trees write
  sources relative to it, one level above the wm.xml (Microsoft's IoT Core driver guide shows the
  item, with ``<AdditionalOptions>/universalbsp</AdditionalOptions>``). We use a `.vcxproj` in the
  wm.xml's folder or the one above it whose `PkgGen` item names this project; of the item's
  metadata only ``/variables:`` in `AdditionalOptions` reaches planning (as defaults the build's
  variables override); other pkggen options there (``/universalbsp``, ``/onecore``) are how we
  build anyway. **Inferred**: that the lookup stops one folder up (the WDK targets are not
  public; every tree we know keeps the `.vcxproj` there).
* **Confinement.** An input must resolve, after symbolic links, inside the workspace (the
  SConstruct top) or a root the user declared (``FFU_SOURCE_ROOTS`` / ``SOURCE_ROOTS=``); a vendor
  tree cannot pull `/etc/shadow` or an SSH key into a signed CAB.
* **All at once.** Every missing input of a project is reported in one run: :class:`Problems`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, FFUError
from ..util import paths, xmlsafe

MSBUILD_NS = "http://schemas.microsoft.com/developer/msbuild/2003"


@dataclass(frozen=True)
class SourcePolicy:
    """`base`: explicit base folder for relative sources (absolute, or relative to the top).
    `roots`: folders besides the top inputs may resolve into; None: no confinement (the CLI).
    `report_missing`: False in a package action, which plans the whole project to build one of its
    CABs: another CAB's payload (a WOW binary) may not be built yet, and its own are read anyway."""

    base: str | None = None
    roots: tuple[str, ...] | None = ()
    report_missing: bool = True


UNCONFINED = SourcePolicy(roots=None)


def of_spec(spec: dict) -> SourcePolicy:
    """The policy a Package() spec carries (`source_base`, `source_roots`); confined always."""
    roots = tuple(spec.get("source_roots", ()))
    return SourcePolicy(spec.get("source_base") or None, roots, spec.get("report_missing", True))


class Problems(ConfigError):
    """Several located errors of one project, reported together (one line each)."""

    def __init__(self, errors: list[FFUError]):
        super().__init__(f"{len(errors)} problems", errors[0].file, errors[0].line)
        self.errors = errors

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)

    def __reduce__(self):  # raised in a worker process (scons -jN), re-raised in the parent
        return (Problems, (self.errors,))

    def at(self, file: str | None, line: int | None = None) -> FFUError:
        for e in self.errors:
            e.at(file, line)
        return self


# Set by the build system: does it make this (absent) file before the package is built? An input
# that is another target (a payload compiled in the same build) is not missing while planning.
GENERATED: list = []


def generated(path: Path) -> bool:
    return any(check(path) for check in GENERATED)


@dataclass
class PkgGenItem:
    vcxproj: Path
    line: int | None
    variables: dict[str, str]


def find_pkggen_item(project_path: Path, top: Path | None = None) -> PkgGenItem | None:
    """The `<PkgGen>` item of a `.vcxproj` in the project's folder or the one above naming it (not
    above `top`). The folders' states are recorded, so a `.vcxproj` added later re-plans the
    project, except the top's own (the build writes there; a `.vcxproj` added at the top is seen
    when the project is planned again)."""
    target = os.path.normcase(os.path.abspath(project_path)).lower()
    folders = [project_path.parent]
    if top is None or os.path.abspath(project_path.parent) != os.path.abspath(top):
        folders.append(project_path.parent.parent)
    for folder in folders:
        try:
            if top is None or os.path.abspath(folder) != os.path.abspath(top):
                paths.note_read(folder, os.stat(folder))
            names = sorted(n for n in os.listdir(folder) if n.lower().endswith(".vcxproj"))
        except OSError:
            continue
        for name in names:
            vcx = folder / name
            if paths.kind(vcx) != "f":
                continue
            item = _item_in(vcx, target)
            if item is not None:
                return item
    return None


def _item_in(vcx: Path, target: str) -> PkgGenItem | None:
    paths.note_read(vcx, os.stat(vcx))
    root = xmlsafe.parse_file(vcx, str(vcx))
    for el in root.iter(f"{{{MSBUILD_NS}}}PkgGen"):
        include = (el.get("Include") or "").strip()
        if not include or "$(" in include or "*" in include:
            continue  # MSBuild properties and wildcards: not a plain path we can match
        for one in include.split(";"):
            full = os.path.normpath(os.path.join(vcx.parent, one.strip().replace("\\", "/")))
            if full.lower() == target:
                return PkgGenItem(vcx, el.sourceline, _variables(el))
    return None


def _variables(item) -> dict[str, str]:
    """``/variables:"A=1;B=2"`` from the item's AdditionalOptions (pkggen's syntax)."""
    out: dict[str, str] = {}
    for el in item:
        if xmlsafe.localname(el) != "AdditionalOptions" or not el.text:
            continue
        for m in re.finditer(r'/variables:(?:"([^"]*)"|(\S+))', el.text, re.IGNORECASE):
            for pair in (m.group(1) or m.group(2) or "").split(";"):
                key, sep, value = pair.partition("=")
                if sep and key.strip() and "$(" not in value:
                    out[key.strip()] = value.strip()
    return out


class Resolver:
    """Resolves one project's sources; knows which folders it tried."""

    def __init__(self, project_path: Path, policy: SourcePolicy, top: Path | None):
        self.top = top
        self.policy = policy
        self.item = find_pkggen_item(project_path, top)
        bases: list[Path] = []
        if policy.base:
            base = policy.base
            if base.startswith("#"):
                base = base[1:].lstrip("\\/")
            bases.append(Path(os.path.normpath(os.path.join(top or project_path.parent, base))))
        elif self.item is not None:
            bases.append(self.item.vcxproj.parent)
        if project_path.parent not in bases:
            bases.append(project_path.parent)
        self.bases = bases
        self.roots: list[str] | None = None
        if policy.roots is not None and top is not None:
            self.roots = [os.path.realpath(top)] + [
                os.path.realpath(os.path.join(top, r[1:].lstrip("\\/") if r.startswith("#") else r))
                for r in policy.roots
            ]

    def resolve(self, text: str, base: Path | None = None) -> tuple[Path, list[Path]]:
        """The path `text` names (first base where it exists, else in the first base) and the
        folders tried. An explicit `base` (an INF's import folder) is the only one tried."""
        bases = [base] if base is not None else self.bases
        if os.path.isabs(text.strip().replace("\\", "/")):
            return paths.resolve(bases[0], text), []
        if len(bases) == 1:  # nothing to choose: not looked at here (see variant.source_path)
            return paths.resolve(bases[0], text), bases
        found = None
        for b in bases:
            path = paths.resolve(b, text)
            if found is None:
                found = path
            if generated(path) or paths.kind(path) is not None:
                return path, bases
        assert found is not None
        return found, bases

    def confine(self, path: Path, written: str, where) -> None:
        """Refuse an input that resolves outside the workspace and the declared roots (`written`:
        the source as the project gives it, macros expanded)."""
        if self.roots is None:
            return
        real = os.path.realpath(path)
        for root in self.roots:
            if real == root or real.startswith(root.rstrip(os.sep) + os.sep):
                return
        raise where.error(
            f'source "{written}" resolves to {real}, outside the workspace and the declared source '
            "roots; move it into the tree or declare its folder in FFU_SOURCE_ROOTS (SOURCE_ROOTS=)"
        )

    def tried(self, bases: list[Path], display_dir: str, project_dir: Path) -> str:
        if len(bases) < 2:
            return ""
        shown = []
        for b in bases:
            rel = os.path.relpath(b, project_dir)
            shown.append(os.path.normpath(os.path.join(display_dir, rel)) if not os.path.isabs(rel) else rel)
        return f" (looked in {', '.join(shown)})"
