"""``Include=`` / ``Needs=`` in a driver's install sections, resolved the way setupapi does.

An INF may reuse sections of another INF: ``Include = other.inf`` opens it beside the first (setupapi
appends it to the INF handle, ``SetupOpenAppendInfFile``), and ``Needs = Section[, …]`` runs the named
sections as if they were part of the including section: CopyFiles, AddReg/DelReg from a
``DDInstall`` (or ``.CoInstallers``/``.HW``) need, AddService from a ``.Services`` need, the WDF
directives from a ``.Wdf`` need. Each needed section keeps the strings, DIRIDs, DestinationDirs and
SourceDisksFiles of the INF that holds it. Sources (facts only): the INF DDInstall section page
(Include/Needs entries, decorated sections carry their own Include/Needs) and "Using Include and
Needs directives" (learn.microsoft.com); Wine's setupapi does not follow them, so the tests check a
needed section by running it from its own INF (tests/package/test_infinstall_wine.py).

Decisions and inferences [I]:

* A needed section is looked up in the including INF first, then in each ``Include`` INF in order,
  those of its own section before those of the sibling decorations (append semantics: setupapi
  opens them into one INF handle, whose own sections come first).
* An included INF is *available* when it lies beside the including INF (case-insensitively, as
  Windows finds it) or when the project ships a payload file of that name. It is read, not shipped
  by this driver: ship it with its own ``<driver>`` package (or a file) if PnP must re-run the
  include on the device.
* The files a needed section copies go to their destinations and into the including driver's
  DriverStore folder, like its own files (the store must hold every file its install copies).
* An unavailable INF (an inbox one: ``WUDFRD.inf``, ``ks.inf``, ``wdmaudio.inf``, …) is applied by
  Windows on the device when it installs the device; drivers.md names no place where pkggen's
  import records it, so it is recorded in the package description and reported as a warning,
  except ``WUDFRD.NT.Services`` (the OS owns the WUDFRd reflector service; pkggen drops it,
  drivers.md §4.3).
* Include/Needs inside a needed section are not followed (warned).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import ConfigError, FFUError
from .inf import stamped
from .inflex import WS
from .infmodel import DriverImport, Inf, InfLine

__all__ = ["DECORATIONS", "OS_OWNED", "Needed", "resolve_needs", "warning"]

#: install-section decorations that may carry their own Include/Needs, and what a need there runs
DECORATIONS = ("", ".CoInstallers", ".HW", ".Services", ".Wdf")
#: needs Windows applies that pkggen's import leaves out on purpose: no warning for these
OS_OWNED = frozenset({"wudfrd.nt.services"})


@dataclass(frozen=True, slots=True)
class Needed:
    root: str  # the DDInstall section (decorated, as looked up) the need belongs to
    decoration: str  # one of DECORATIONS
    section: str  # the needed section, as written
    line: int  # the Needs line in the including INF
    inf: Inf | None  # the INF holding the section (stamped); None: not available here
    inf_name: str  # that INF's file name ('' for the including INF itself)


def warning(message: str, file: str, line: int | None) -> str:
    """``file:line: warning: message``, the form every INF warning is reported in."""
    return str(FFUError(f"warning: {message}", file, line))


def resolve_needs(
    inf: Inf, imp: DriverImport, available: Callable[[str, InfLine], Inf | None]
) -> tuple[list[Needed], list[str]]:
    """Every Needs of the install sections ``imp`` walked, with the INF that holds it, and the
    warnings (unavailable inbox INFs, nesting). ``available(name, line)`` parses an Include INF
    or returns None when it is not beside the INF nor in the package."""
    inf = stamped(inf, imp.arch)
    out: list[Needed] = []
    warnings: list[str] = []
    opened: dict[str, Inf | None] = {}
    for root in imp.install_sections:
        sections = [(deco, s) for deco in DECORATIONS if (s := inf.section(root + deco)) is not None]
        by_deco = {
            deco: [(v.strip(WS), ln) for ln in sec.get_all("Include") for v in ln.values if v.strip(WS)]
            for deco, sec in sections
        }
        for deco, sec in sections:
            # this section's Include= first, then its siblings' (setupapi appends to one INF handle)
            includes = by_deco[deco] + [i for d, inc in by_deco.items() if d != deco for i in inc]
            for name, ln in includes:
                if name.lower() not in opened:
                    found = available(name, ln)
                    opened[name.lower()] = stamped(found, imp.arch) if found is not None else None
            for ln in sec.get_all("Needs"):
                for value in (v.strip(WS) for v in ln.values):
                    if value:
                        out.append(_one(inf, root, deco, value, ln, includes, opened, warnings))
    for need in out:
        if need.inf is not None and need.inf_name:
            held = need.inf.section(need.section)
            if held is not None and (held.get("Include") or held.get("Needs")):
                warnings.append(
                    warning(
                        f"[{need.section}] of {need.inf_name} has Include/Needs of its own, which "
                        "ffuforge does not follow; what they name is missing from the image",
                        inf.path,
                        need.line,
                    )
                )
    return out, warnings


def _one(
    inf: Inf,
    root: str,
    deco: str,
    section: str,
    ln: InfLine,
    includes: list[tuple[str, InfLine]],
    opened: dict[str, Inf | None],
    warnings: list[str],
) -> Needed:
    if inf.section(section) is not None:
        return Needed(root, deco, section, ln.line, inf, "")
    first: dict[str, str] = {}
    for name, _ in includes:
        first.setdefault(name.lower(), name)
    names = list(first.values())
    for name in names:
        other = opened[name.lower()]
        if other is not None and other.section(section) is not None:
            return Needed(root, deco, section, ln.line, other, name)
    missing = [name for name in names if opened[name.lower()] is None]
    if not missing:
        shown = ", ".join(names) or "no Include= in the section"
        raise ConfigError(
            f"[{root}{deco}] Needs [{section}], which is neither in this INF nor in its included "
            f"INFs ({shown}); fix the name or add the Include= INF",
            inf.path,
            ln.line,
        )
    stem = [n for n in missing if section.lower().startswith(n.lower().removesuffix(".inf") + ".")]
    owner = (stem or missing)[0] if len(stem or missing) == 1 else ", ".join(stem or missing)
    if section.lower() not in OS_OWNED:
        warnings.append(
            warning(
                f"[{root}{deco}] Needs [{section}] of {owner}, which is neither beside this INF nor in "
                "the package (an inbox INF): Windows applies it on the device when it installs the "
                "device; nothing of it is in the image",
                inf.path,
                ln.line,
            )
        )
    return Needed(root, deco, section, ln.line, None, owner)
