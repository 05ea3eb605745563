"""Driver INF reading, so a driver package knows its payload without Windows.

pkggen opens every ``<inf source=...>`` and walks it (models -> install sections -> CopyFiles) to
decide which files go into the CAB and where they land on the device.  We need the same answer
twice: as SCons dependencies (rebuild when a .sys changes) and as CAB/manifest content.  INFs are
vendor-written, often UTF-16, and full of Windows leniencies, so the reader is permissive about
syntax, bounded in size and work, and strict (with file:line errors) only where a wrong guess
would put the wrong bytes in an image.

This module holds the import walk and is the facade of the INF reader: the data model lives in
:mod:`.infmodel` and lexing (decoding, sections, quoting, [Strings]) in :mod:`.inflex`; their
public names are re-exported here.
"""

from __future__ import annotations

import re

from ..errors import ConfigError, FFUError
from .inflex import MAX_INF_BYTES, MAX_LINE_CHARS, WS, parse_inf, parse_inf_bytes, parse_inf_text
from .infmodel import DriverImport, Inf, InfFile, InfLine, InfModel, InfSection, InfService

__all__ = [
    "ARCHES",
    "DIRID_MACROS",
    "DriverImport",
    "Inf",
    "InfFile",
    "InfLine",
    "InfModel",
    "InfSection",
    "InfService",
    "MAX_INF_BYTES",
    "MAX_LINE_CHARS",
    "import_driver",
    "parse_inf",
    "section_files",
    "parse_inf_bytes",
    "parse_inf_text",
    "stamped",
]

ARCHES = ("x86", "amd64", "arm", "arm64")

#: Device directory (macro form) for each installable dirid.  13 (run from driver store) maps to
#: the drivers directory by default; :attr:`InfFile.run_from_driver_store` tells callers apart.
DIRID_MACROS: dict[int, str] = {
    10: "$(runtime.windows)",
    11: "$(runtime.system32)",
    12: "$(runtime.drivers)",
    13: "$(runtime.drivers)",
    17: "$(runtime.windows)\\INF",
    18: "$(runtime.windows)\\Help",
    20: "$(runtime.windows)\\Fonts",
    24: "$(runtime.bootDrive)",
    30: "$(runtime.bootDrive)",
    50: "$(runtime.windows)\\system",
}
_DIRID_DEFAULT = 11  # setupapi.h: DIRID_DEFAULT == DIRID_SYSTEM

_ARCH_TOKEN = re.compile(re.escape("$arch$"), re.IGNORECASE)
_DEFAULT_INSTALL = re.compile(r"defaultinstall\.nt[^.]*")
_NUMBER = re.compile(r"-?(?:0[xX][0-9a-fA-F]{1,8}|[0-9]{1,10})")
_BAD_NAME_CHARS = re.compile(r'[<>:"/\\|?*\x00-\x1f]')
_NON_FILE_LISTS = frozenset(
    {"version", "strings", "manufacturer", "destinationdirs", "sourcedisksfiles", "sourcedisksnames"}
)


def import_driver(inf: Inf, arch: str) -> DriverImport:
    """Collect the files an INF installs for ``arch`` and where they go on the device."""
    if arch not in ARCHES:
        hint = " (x64 is spelled amd64 in INFs)" if arch.lower() in ("x64", "amd64") else ""
        raise ConfigError(f"unknown architecture {arch!r}; use one of {', '.join(ARCHES)}{hint}")
    return _Importer(inf, arch).run()


def section_files(inf: Inf, arch: str, sections: list[str]) -> tuple[list[InfFile], list[str]]:
    """What CopyFiles in ``sections`` of ``inf`` install (sections another INF Needs=), with the
    DestinationDirs and SourceDisksFiles of ``inf``; and the warnings."""
    imp = _Importer(inf, arch)
    for name in sections:
        sec = imp.find(name)
        for ln in sec.get_all("CopyFiles") if sec is not None else []:
            imp.copy_files(name, ln, {n.lower() for n in sections})
    return sorted(imp.files.values(), key=lambda f: (f.dest_dir.lower(), f.dest_name.lower())), imp.warnings


def _expand_arch(text: str, arch: str) -> str:
    return _ARCH_TOKEN.sub(arch, text) if "$" in text else text


def stamped(inf: Inf, arch: str) -> Inf:
    """Replace $ARCH$ everywhere, as stampinf does when the WDK builds an unstamped source INF."""

    def has(text: str | None) -> bool:
        return text is not None and "$" in text and _ARCH_TOKEN.search(text) is not None

    if not any(
        has(sec.name) or any(has(ln.key) or any(has(v) for v in ln.values) for ln in sec.lines)
        for sec in inf.sections.values()
    ):
        return inf
    sections: dict[str, InfSection] = {}
    for sec in inf.sections.values():
        name = _expand_arch(sec.name, arch)
        new = sections.get(name.lower())
        if new is None:  # '[X.NT$ARCH$]' and '[X.NTarm]' both present: merge like duplicate headers
            new = sections[name.lower()] = InfSection(name, sec.line)
        for ln in sec.lines:
            key = _expand_arch(ln.key, arch) if ln.key is not None else None
            values = tuple(_expand_arch(v, arch) for v in ln.values)
            out = InfLine(ln.line, key, values, ln.unresolved, ln.refs)
            new.lines.append(out)
            if key is not None:
                new.index.setdefault(key.lower(), []).append(out)
    return Inf(inf.path, inf.encoding, sections, inf.strings)


def _key_token(ln: InfLine) -> str | None:
    return next((t for i, t in ln.refs if i == -1), None)


def _dedupe(items: list[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for item in items:
        if item and item.lower() not in seen:
            seen.add(item.lower())
            out.append(item)
    return out


def _version_key(parts: list[str]) -> tuple[int, int, int]:
    def num(i: int) -> int:
        if i < len(parts) and parts[i].strip().isascii() and parts[i].strip().isdigit():
            return int(parts[i].strip()[:9])
        return 0

    # NT<arch>.<major>.<minor>.<productType>.<suiteMask>.<build>
    return num(0), num(1), num(4)


class _Importer:
    def __init__(self, inf: Inf, arch: str):
        self.inf = stamped(inf, arch)
        self.arch = arch
        self.name = inf.path
        self.warnings: list[str] = []
        self.files: dict[tuple[str, str, bool], InfFile] = {}
        self.dest_cache: dict[str, tuple[int, str, str]] = {}
        self.done_lists: set[str] = set()
        self._disk_index: dict[str, InfLine] | None = None
        self.models_names: list[str] = []
        self.models: list[InfModel] = []

    # -- helpers
    def find(self, name: str) -> InfSection | None:
        return self.inf.sections.get(name.lower())

    def err(self, message: str, line: int | None = None) -> ConfigError:
        return ConfigError(message, self.name, line)

    def warn(self, message: str, line: int | None = None) -> None:
        self.warnings.append(str(FFUError(f"warning: {message}", self.name, line)))

    # -- main walk
    def run(self) -> DriverImport:
        roots = self.install_roots()
        structural = {name.lower() for name, _ in roots}
        # Models and subsections are also "not file lists": referencing them from CopyFiles is a cycle.
        structural |= {n.lower() for n in self.models_names}
        subsections: list[tuple[str, InfSection]] = []
        for name, sec in roots:
            subsections.append((name, sec))
            for suffix in (".Services", ".HW", ".CoInstallers"):
                sub = self.find(name + suffix)
                if sub is not None:
                    subsections.append((name + suffix, sub))
                    structural.add((name + suffix).lower())
        includes: list[str] = []
        needs: list[str] = []
        copy_infs: list[str] = []
        services: list[InfService] = []
        for sname, sec in subsections:
            is_services = sname.lower().endswith(".services")
            for ln in sec.lines:
                k = (ln.key or "").lower()
                if k == "copyfiles":
                    self.copy_files(sname, ln, structural)
                elif k == "include":
                    includes.extend(ln.values)
                elif k == "needs":
                    needs.extend(ln.values)
                elif k == "copyinf":
                    for index, value in enumerate(ln.values):
                        if value:
                            self.check_name(value, "CopyINF file name", ln, index)
                            copy_infs.append(value)
                elif k == "addservice" and is_services:
                    svc = self.service(ln)
                    if svc is not None:
                        services.append(svc)
        version = self.find("Version")

        def ver(key: str) -> str | None:
            ln = version.get(key) if version is not None else None
            return ",".join(ln.values) if ln is not None else None

        files = sorted(self.files.values(), key=lambda f: (f.dest_dir.lower(), f.dest_name.lower(), f.dirid))
        return DriverImport(
            arch=self.arch,
            files=files,
            catalog_file=self.catalog(version),
            includes=_dedupe(includes),
            needs=_dedupe(needs),
            copy_infs=_dedupe(copy_infs),
            services=services,
            install_sections=[name for name, _ in roots],
            inf_class=ver("Class"),
            class_guid=ver("ClassGuid"),
            provider=ver("Provider"),
            driver_ver=ver("DriverVer"),
            models=self.models,
            warnings=self.warnings,
        )

    def install_roots(self) -> list[tuple[str, InfSection]]:
        """Install sections reachable from [Manufacturer] (or DefaultInstall), decorated name first."""
        man = self.find("Manufacturer")
        if man is None or not man.lines:
            return self.default_install(man)
        decorations: list[str] = []
        models: list[tuple[str, InfSection]] = []
        makers: dict[str, InfLine] = {}  # models section -> its [Manufacturer] line
        for ln in man.lines:
            base = ln.values[0] if ln.values else ""
            if not base:
                raise self.err(
                    "[Manufacturer] entry names no models section; write 'Name = Models,NT<arch>'", ln.line
                )
            decs = [d for d in ln.values[1:] if d]
            decorations.extend(decs)
            best: tuple[tuple[int, int, int], str] | None = None
            for dec in decs:
                parts = dec.lower().split(".")
                head = parts[0]
                if not head.startswith("nt"):
                    continue
                dec_arch = head[2:]
                if dec_arch != self.arch and not (dec_arch == "" and self.arch == "x86"):
                    continue
                vkey = _version_key(parts[1:])
                if best is None or vkey > best[0]:
                    best = (vkey, f"{base}.{dec}")
            if best is not None:
                target = best[1]
            elif self.arch == "x86" and (not decs or self.find(base) is not None):
                target = base  # undecorated models sections only ever applied to x86
            else:
                continue
            sec = self.find(target)
            if sec is None:
                raise self.err(
                    f"[Manufacturer] points to models section [{target}], which does not exist; "
                    "add the section or fix the decoration",
                    ln.line,
                )
            self.models_names.append(target)
            models.append((target, sec))
            makers.setdefault(target.lower(), ln)
        if not models:
            shown = ", ".join(_dedupe(decorations)) or "none"
            raise self.err(
                f"[Manufacturer] has no models section for {self.arch} (decorations: {shown}); "
                f"add NT{self.arch} or use the right INF",
                man.lines[0].line,
            )
        roots: list[tuple[str, InfSection]] = []
        seen: set[str] = set()
        for mname, msec in _unique_sections(models):
            for ln in msec.lines:
                inst = ln.values[0] if ln.values else ""
                if not inst:
                    raise self.err(
                        f"model entry in [{mname}] names no install section; "
                        "write 'Description = InstallSection, HardwareId'",
                        ln.line,
                    )
                name, sec = self.best_install(inst, f"[{mname}]", ln.line)
                maker = makers[mname.lower()]
                self.models.append(
                    InfModel(
                        ln.key or "",
                        _key_token(ln),
                        maker.key or "",
                        _key_token(maker),
                        name,
                        tuple(i.strip(WS) for i in ln.values[1:] if i.strip(WS)),
                        ln.line,
                    )
                )
                if name.lower() not in seen:
                    seen.add(name.lower())
                    roots.append((name, sec))
        return roots

    def best_install(self, base: str, where: str, line: int) -> tuple[str, InfSection]:
        candidates = [f"{base}.NT{self.arch}", f"{base}.NT", base]
        for cand in candidates:
            sec = self.find(cand)
            if sec is not None:
                return cand, sec
        raise self.err(
            f"install section [{base}] used by {where} is missing for {self.arch} "
            f"(looked for {', '.join(candidates)}); add one of them",
            line,
        )

    def default_install(self, man: InfSection | None) -> list[tuple[str, InfSection]]:
        base = "DefaultInstall"
        for cand in (f"{base}.NT{self.arch}", f"{base}.NT", base):
            sec = self.find(cand)
            if sec is not None:
                return [(cand, sec)]
        others = sorted(s.name for k, s in self.inf.sections.items() if _DEFAULT_INSTALL.fullmatch(k))
        line = man.line if man is not None else None
        if others:
            raise self.err(
                f"no DefaultInstall section for {self.arch} (found: {', '.join(others)}); "
                f"add [DefaultInstall.NT{self.arch}] or use the right INF",
                line,
            )
        what = "an empty [Manufacturer]" if man is not None else "no [Manufacturer]"
        raise self.err(
            f"INF has {what} and no [DefaultInstall] section, so it installs nothing; "
            f"add [Manufacturer] with an NT{self.arch} models section",
            line,
        )

    # -- CopyFiles
    def copy_files(self, owner: str, ln: InfLine, structural: set[str]) -> None:
        for index, value in enumerate(ln.values):
            if not value:
                continue
            if value.startswith("@"):
                fname = value[1:].strip(WS)
                self.check_name(fname, "CopyFiles=@ file name", ln, index)
                dirid, dest_dir, _ = self.dest_dir("DefaultDestDir", ln.line)
                self.add(
                    InfFile(
                        *self.source_of(fname, ln.line), fname, dest_dir, dirid, owner, ln.line, dirid == 13
                    )
                )
                continue
            target, key = value, value.lower()
            if key in structural or key in _NON_FILE_LISTS or key == owner.lower():
                raise self.err(
                    f"CopyFiles in [{owner}] references [{target}], which is an install, models or "
                    "header section, not a file list (a cyclic reference); point CopyFiles at a "
                    "section that lists files",
                    ln.line,
                )
            if key in self.done_lists:
                continue
            sec = self.find(target)
            if sec is None:
                raise self.err(
                    f"CopyFiles in [{owner}] references [{target}], which does not exist; "
                    "add the file-list section or fix the name",
                    ln.line,
                )
            self.done_lists.add(key)
            self.file_list(target, sec)

    def file_list(self, list_name: str, sec: InfSection) -> None:
        for ln in sec.lines:
            if ln.key is not None:
                raise self.err(
                    f"file-list section [{list_name}] has a 'key = value' line; entries are "
                    "'dest[,source[,,flags]]' - remove the '=' or fix the CopyFiles reference",
                    ln.line,
                )
            dest = ln.values[0] if ln.values else ""
            source = ln.values[1] if len(ln.values) > 1 and ln.values[1] else dest
            has_source = len(ln.values) > 1 and bool(ln.values[1])
            self.check_name(dest, "destination file name", ln, 0)
            self.check_name(source, "source file name", ln, 1 if has_source else 0)
            flags = 0
            if len(ln.values) > 3 and ln.values[3]:
                flags = self.number(ln.values[3], f"copy flags in [{list_name}]", ln.line)
            dirid, dest_dir, _ = self.dest_dir(list_name, ln.line)
            name, subdir = self.source_of(source, ln.line)
            self.add(InfFile(name, subdir, dest, dest_dir, dirid, list_name, ln.line, dirid == 13, flags))

    def add(self, f: InfFile) -> None:
        key = (f.dest_dir.lower(), f.dest_name.lower(), f.run_from_driver_store)
        old = self.files.get(key)
        if old is None:
            self.files[key] = f
            return
        if (old.source_subdir.lower(), old.source_name.lower()) != (
            f.source_subdir.lower(),
            f.source_name.lower(),
        ):

            def src(x: InfFile) -> str:
                return f"{x.source_subdir}\\{x.source_name}" if x.source_subdir else x.source_name

            raise self.err(
                f"{f.dest_dir}\\{f.dest_name} is copied from two different sources: {src(old)} "
                f"([{old.section}] line {old.line}) and {src(f)} ([{f.section}]); "
                "rename one destination or drop one CopyFiles reference",
                f.line,
            )

    def check_name(self, name: str, what: str, ln: InfLine, index: int) -> None:
        line = ln.line
        missing = [tok for i, tok in ln.unresolved if i == index]
        if missing:
            raise self.err(
                f"{what} {name!r} uses %{missing[0]}%, which [Strings] does not define; "
                "define it in [Strings] or write the name literally",
                line,
            )
        if not name:
            raise self.err(f"empty {what}; every entry needs a file name", line)
        if name in (".", "..") or _BAD_NAME_CHARS.search(name):
            raise self.err(
                f"{what} {name!r} is not a plain file name (no paths, wildcards or control "
                "characters); put subdirectories in [SourceDisksFiles] / [DestinationDirs]",
                line,
            )

    def number(self, text: str, what: str, line: int) -> int:
        t = text.strip(WS)
        if not _NUMBER.fullmatch(t):
            raise self.err(f"{what} is {text!r}, not a number; write a decimal or 0x number", line)
        return int(t, 16) if "x" in t.lower() else int(t, 10)

    # -- destinations
    def dest_dir(self, list_name: str, use_line: int) -> tuple[int, str, str]:
        cached = self.dest_cache.get(list_name.lower())
        if cached is not None:
            return cached
        dd = self.find("DestinationDirs")
        entry = dd.get(list_name) if dd is not None else None
        if entry is None and dd is not None:
            entry = dd.get("DefaultDestDir")
        if entry is None:
            what = "CopyFiles=@file" if list_name == "DefaultDestDir" else f"[{list_name}]"
            self.warn(
                f"no [DestinationDirs] entry for {what} and no DefaultDestDir; using dirid "
                f"{_DIRID_DEFAULT} like Windows (add 'DefaultDestDir = 13' to be explicit)",
                use_line,
            )
            result = (_DIRID_DEFAULT, DIRID_MACROS[_DIRID_DEFAULT], "")
        else:
            raw = entry.values[0] if entry.values else ""
            dirid = self.number(raw, f"[DestinationDirs] dirid for {entry.key}", entry.line)
            subdir = self.subdir(entry.values[1] if len(entry.values) > 1 else "", entry, 1)
            base = self.dirid_macro(dirid, entry.line)
            result = (dirid, f"{base}\\{subdir}" if subdir else base, subdir)
        self.dest_cache[list_name.lower()] = result
        return result

    def dirid_macro(self, dirid: int, line: int) -> str:
        found = DIRID_MACROS.get(dirid)
        if found is not None:
            return found
        if dirid == 1:
            why = "dirid 01 is the directory the INF was installed from, which does not exist in an image"
        elif dirid == -1:
            why = "dirid -1 (absolute path) cannot be placed in a package"
        elif dirid >= 16384:
            why = f"dirid {dirid} is a shell folder (e.g. Program Files), which packages cannot target"
        else:
            why = f"dirid {dirid} is not supported"
        known = ", ".join(str(d) for d in DIRID_MACROS)
        raise self.err(f"{why}; use one of {known} (13 = driver store) with an optional subdirectory", line)

    def subdir(self, text: str, ln: InfLine, index: int) -> str:
        if not text:
            return ""
        missing = [tok for i, tok in ln.unresolved if i == index]
        if missing:
            raise self.err(
                f"subdirectory {text!r} uses %{missing[0]}%, which [Strings] does not define; define it",
                ln.line,
            )
        parts = [p for p in text.replace("/", "\\").split("\\") if p.strip(WS) not in ("", ".")]
        for p in parts:
            if p.strip(WS) == ".." or _BAD_NAME_CHARS.search(p):
                raise self.err(
                    f"subdirectory {text!r} must be a relative path without '..', drive letters or "
                    "wildcards; fix the entry",
                    ln.line,
                )
        return "\\".join(p.strip(WS) for p in parts)

    # -- sources
    def source_of(self, name: str, line: int | None = None) -> tuple[str, str]:
        entry = None
        for sname in (f"SourceDisksFiles.{self.arch}", "SourceDisksFiles"):
            sec = self.find(sname)
            if sec is not None:
                entry = sec.get(name)
                if entry is not None:
                    break
        if entry is None:
            self.warn(f"{name} is not listed in [SourceDisksFiles]; expecting it beside the INF", line)
            return name, ""
        diskid = entry.values[0] if entry.values else ""
        disk_path = ""
        disk = self.disk(diskid)
        if disk is None:
            self.warn(
                f"[SourceDisksFiles] puts {name} on disk {diskid!r}, which [SourceDisksNames] lacks",
                entry.line,
            )
        elif len(disk.values) > 3:
            disk_path = self.subdir(disk.values[3], disk, 3)
        sub = self.subdir(entry.values[1], entry, 1) if len(entry.values) > 1 else ""
        return name, "\\".join(p for p in (disk_path, sub) if p)

    def disk(self, diskid: str) -> InfLine | None:
        if self._disk_index is None:
            self._disk_index = {}
            for sname in (f"SourceDisksNames.{self.arch}", "SourceDisksNames"):
                sec = self.find(sname)
                if sec is None:
                    continue
                for ln in sec.lines:
                    if ln.key is not None:
                        self._disk_index.setdefault(_disk_key(ln.key), ln)
        return self._disk_index.get(_disk_key(diskid))

    # -- misc
    def service(self, ln: InfLine) -> InfService | None:
        if not ln.values or not ln.values[0]:
            return None  # null service (AddService = ,2)
        inst = ln.values[2] if len(ln.values) > 2 else ""
        binary = None
        if inst:
            sec = self.find(inst)
            if sec is None:
                self.warn(f"AddService {ln.values[0]} names [{inst}], which does not exist", ln.line)
            else:
                b = sec.get("ServiceBinary")
                binary = b.values[0] if b is not None and b.values else None
        return InfService(ln.values[0], binary, inst, ln.line)

    def catalog(self, version: InfSection | None) -> str | None:
        if version is None:
            return None
        for key in (f"CatalogFile.NT{self.arch}", "CatalogFile.NT", "CatalogFile"):
            ln = version.get(key)
            if ln is not None and ln.values and ln.values[0]:
                self.check_name(ln.values[0], "CatalogFile", ln, 0)
                return ln.values[0]
        return None


def _disk_key(text: str) -> str:
    t = text.strip(WS)
    return str(int(t)) if t.isascii() and t.isdigit() and len(t) < 12 else t.lower()


def _unique_sections(items: list[tuple[str, InfSection]]) -> list[tuple[str, InfSection]]:
    seen: set[int] = set()
    out: list[tuple[str, InfSection]] = []
    for name, sec in items:
        if id(sec) not in seen:
            seen.add(id(sec))
            out.append((name, sec))
    return out
