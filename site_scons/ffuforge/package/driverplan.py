"""A wm.xml ``<driver>`` made concrete: the files, store folder and registry its INF installs.

The planner (:mod:`.variant`) hands in how sources are found (``resolve``), so this module only
puts :mod:`.inf`, :mod:`.infinclude`, :mod:`.infinstall` and :mod:`.driverstore` together: the
INF walk, its ``Include=``/``Needs=`` sections, the store folder (whose name folds in the files
when ``read_files``: the package action reads them; SConscript planning does not, since a
``.sys`` may be built by the same scons run) and the registry.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from ..util import paths
from . import driverstore, inf, infinclude, infinstall, macros
from .infmodel import InfFile, InfLine

__all__ = ["DriverContent", "plan_driver"]

#: (path as written in the INF, base directory) -> (host path, path shown in messages)
Resolve = Callable[[str, Path, str], tuple[Path, str]]  # (name, base folder, what it is: "" = optional)


@dataclass
class DriverContent:
    folder: str
    payload: list[tuple[Path, str, str, str, str]] = field(
        default_factory=list
    )  # src, shown, macro, dir, name
    registry: list[infinstall.InfValue] = field(default_factory=list)
    empty_keys: list[str] = field(default_factory=list)
    key_security: dict[str, str] = field(default_factory=dict)  # key -> SDDL
    warnings: list[str] = field(default_factory=list)  # 'file:line: warning: …', in INF order
    on_device: list[str] = field(default_factory=list)  # 'inf:section' Windows applies on the device
    inputs: list[Path] = field(default_factory=list)  # read but not shipped (Include= INFs)


def plan_driver(
    inf_path: Path,
    inf_shown: str,
    arch: str,
    import_dir: Path,
    overrides: dict[str, tuple[Path, str]],
    resolve: Resolve,
    package_files: dict[str, tuple[Path, str]],
    read_files: bool = False,
) -> DriverContent:
    """``overrides``: wm.xml ``<file>`` replacements by lower-case source name; ``package_files``:
    the project's own payload by lower-case file name (where an ``Include=`` INF may be)."""
    parsed = inf.parse_inf(inf_path, inf_shown)
    imported = inf.import_driver(parsed, arch)
    included: dict[str, Path] = {}

    def available(name: str, ln: InfLine) -> inf.Inf | None:
        if not name or any(c in name for c in '\\/:*?"<>|') or name in (".", ".."):
            raise ConfigError(f"Include {name!r} is not a plain INF file name; fix it", inf_shown, ln.line)
        found = package_files.get(name.lower())
        if found is None:
            cand = paths.resolve(inf_path.parent, name)
            if paths.kind(cand) != "f":
                return None
            found = (cand, os.path.join(os.path.dirname(inf_shown), cand.name))
        included[name.lower()] = found[0]
        return inf.parse_inf(found[0], found[1])

    needed, warnings = infinclude.resolve_needs(parsed, imported, available)
    out = DriverContent("", warnings=list(imported.warnings) + warnings)
    out.inputs = sorted(set(included.values()))
    files: list[tuple[InfFile, Path]] = [(f, import_dir) for f in imported.files]
    groups: dict[str, list[str]] = {}
    for need in needed:
        if need.inf is None:
            out.on_device.append(f"{need.inf_name}:{need.section}")
        elif need.decoration in ("", ".CoInstallers"):
            groups.setdefault(need.inf_name.lower(), []).append(need.section)
    for name, sections in groups.items():
        holder = next(n.inf for n in needed if n.inf_name.lower() == name and n.inf is not None)
        assert holder is not None
        more, w = inf.section_files(holder, arch, sections)
        base = included[name].parent if name else import_dir
        files += [(f, base) for f in more]
        out.warnings += w

    published = inf_path.name
    cat_src: tuple[Path, str] | None = None
    if imported.catalog_file:
        src, shown = resolve(imported.catalog_file, import_dir, "")  # optional: not a missing input
        if paths.kind(src) == "f":
            cat_src = (src, shown)
    located: list[tuple[InfFile, Path, str]] = []
    for f, base in files:
        if f.source_name.lower() in overrides:
            src, shown = overrides[f.source_name.lower()]
        else:
            src, shown = resolve("\\".join(x for x in (f.source_subdir, f.source_name) if x), base, "file")
        located.append((f, src, shown))
    inf_bytes = driverstore.read_source(inf_path, inf_shown)
    cat_bytes = driverstore.read_source(*cat_src) if cat_src else b""
    digests: dict[str, tuple[int, bytes]] = {}  # store-relative path (lower) -> (size, SHA-256)
    if read_files:
        for f, src, shown in located:
            rel = "\\".join(x for x in (f.source_subdir, f.source_name) if x)
            if rel.lower() not in digests:
                data = driverstore.read_source(src, shown)
                digests[rel.lower()] = (len(data), hashlib.sha256(data).digest())
    folder = driverstore.folder_name(
        published, imported.arch, inf_bytes, cat_bytes, [(k, d) for k, (_, d) in digests.items()]
    )
    out.folder = folder
    store = f"{driverstore.STORE_DIR}\\{folder}"
    out.payload.append((inf_path, inf_shown, "runtime.inf", "", published))
    out.payload.append((inf_path, inf_shown, "runtime.system32", store, published))
    if cat_src is not None and imported.catalog_file:
        out.payload.append((*cat_src, "runtime.system32", store, imported.catalog_file))
    lockdown: list[tuple[str, str, int]] = []
    for f, src, shown in located:
        in_store = "\\".join(x for x in (f.source_subdir, f.source_name) if x)
        if not f.run_from_driver_store:  # DIRID 13: the store copy is the one that runs
            macro, sub = macros.split_destination(f.dest_dir, inf_shown, f.line)
            out.payload.append((src, shown, macro, sub, f.dest_name))
            key = driverstore.lockdown_path(macro, sub, f.dest_name)
            if key is not None:
                lockdown.append((key, in_store, f.line))
        store_dir = "\\".join(x for x in (store, f.source_subdir) if x)
        out.payload.append((src, shown, "runtime.system32", store_dir, f.source_name))
    reg = infinstall.install_registry(parsed, imported, published, folder, needed)
    out.warnings += reg.warnings
    catalog = imported.catalog_file if cat_src is not None else None
    size = len(inf_bytes) + len(cat_bytes) + sum(s for s, _ in digests.values()) if read_files else None
    out.registry = reg.values + driverstore.database(
        parsed, imported, reg, published, folder, catalog, lockdown, size
    )
    out.empty_keys = [key for key, _ in reg.keys]
    out.key_security = dict(reg.key_security)
    out.warnings = list(dict.fromkeys(out.warnings))
    return out
