"""Driver INF reading, so a driver package knows its payload without Windows.

pkggen opens every ``<inf source=...>`` and walks it (models -> install sections -> CopyFiles) to
decide which files go into the CAB and where they land on the device.  We need the same answer
twice: as SCons dependencies (rebuild when a .sys changes) and as CAB/manifest content.  INFs are
vendor-written, often UTF-16, and full of Windows leniencies, so the reader is permissive about
syntax, bounded in size and work, and strict (with file:line errors) only where a wrong guess
would put the wrong bytes in an image.
"""

from __future__ import annotations

import codecs
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import FFUError
from ..util.paths import open_regular

__all__ = [
    "ARCHES",
    "DIRID_MACROS",
    "DriverImport",
    "Inf",
    "InfFile",
    "InfLine",
    "InfSection",
    "InfService",
    "MAX_INF_BYTES",
    "MAX_LINE_CHARS",
    "import_driver",
    "parse_inf",
    "parse_inf_bytes",
    "parse_inf_text",
]

MAX_INF_BYTES = 16 * 1024 * 1024
MAX_LINE_CHARS = 64 * 1024
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

_WS = " \t\f\v\x00\x1a"  # \x1a: DOS end-of-file marker left in old INFs
_LINE_SPLIT = re.compile(r"\r\n|\r|\n")
_TOKEN = re.compile(r"%([^%]*)%")
_ARCH_TOKEN = re.compile(re.escape("$arch$"), re.IGNORECASE)
_DEFAULT_INSTALL = re.compile(r"defaultinstall\.nt[^.]*")
_NUMBER = re.compile(r"-?(?:0[xX][0-9a-fA-F]{1,8}|[0-9]{1,10})")
_BAD_NAME_CHARS = re.compile(r'[<>:"/\\|?*\x00-\x1f]')
_NON_FILE_LISTS = frozenset(
    {"version", "strings", "manufacturer", "destinationdirs", "sourcedisksfiles", "sourcedisksnames"}
)


def _latin1_fallback(exc: UnicodeError) -> tuple[str, int]:
    # cp1252 leaves 0x81/0x8D/0x8F/0x90/0x9D undefined; Windows maps them to the C1 controls.
    assert isinstance(exc, UnicodeDecodeError)
    return exc.object[exc.start : exc.end].decode("latin-1"), exc.end


codecs.register_error("ffuforge.inf.latin1", _latin1_fallback)


# --------------------------------------------------------------------------- data model


@dataclass(frozen=True, slots=True)
class InfLine:
    """One logical line after quote removal and %strings% substitution."""

    line: int  # 1-based physical line where the logical line starts
    key: str | None  # text before '=', or None for a bare value line
    values: tuple[str, ...]
    #: (value index, token) for each %token% with no [Strings] entry; index -1 is the key.
    unresolved: tuple[tuple[int, str], ...] = ()


@dataclass(slots=True)
class InfSection:
    name: str  # as first written
    line: int  # line of the first header (duplicate headers merge into this section)
    lines: list[InfLine] = field(default_factory=list)
    _index: dict[str, list[InfLine]] = field(default_factory=dict, repr=False)

    def get(self, key: str) -> InfLine | None:
        """First line whose key matches case-insensitively."""
        found = self._index.get(key.lower())
        return found[0] if found else None

    def get_all(self, key: str) -> list[InfLine]:
        return self._index.get(key.lower(), [])


@dataclass(slots=True)
class Inf:
    path: str  # name used in messages
    encoding: str
    sections: dict[str, InfSection]  # keyed by lower-cased name
    strings: dict[str, str]  # lower-cased token -> value (locale section already applied)

    def section(self, name: str) -> InfSection | None:
        return self.sections.get(name.lower())


@dataclass(frozen=True, slots=True)
class InfFile:
    source_name: str  # file name on the source disk
    source_subdir: str  # disk path + SourceDisksFiles subdir, backslash-joined, '' for the root
    dest_name: str
    dest_dir: str  # macro form, e.g. '$(runtime.drivers)' or '$(runtime.windows)\INF\sub'
    dirid: int
    section: str  # file-list section (or install section for CopyFiles=@file)
    line: int
    run_from_driver_store: bool = False  # dirid 13: the caller decides the real location
    flags: int = 0  # COPYFLG_* from the file-list entry


@dataclass(frozen=True, slots=True)
class InfService:
    name: str
    binary: str | None  # ServiceBinary as written after %strings%, e.g. '%12%\foo.sys'
    section: str  # service-install section
    line: int  # the AddService line


@dataclass(slots=True)
class DriverImport:
    arch: str
    files: list[InfFile]
    catalog_file: str | None
    includes: list[str]  # Include= INFs (inbox; recorded, not followed)
    needs: list[str]  # Needs= sections in those INFs
    copy_infs: list[str]  # CopyINF= extra INFs the package must also carry
    services: list[InfService]
    install_sections: list[str]  # install sections used, decorated name as looked up
    inf_class: str | None = None
    class_guid: str | None = None
    provider: str | None = None
    driver_ver: str | None = None
    warnings: list[str] = field(default_factory=list)  # 'file:line: message' strings


# --------------------------------------------------------------------------- lexing


def parse_inf(path: str | Path, display_name: str | None = None, *, lcid: int = 0x0409) -> Inf:
    """Read and lex an INF file; errors name ``display_name`` (default: the path)."""
    name = display_name if display_name is not None else str(path)
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_INF_BYTES:
            raise _too_big(size, name)
        with os.fdopen(open_regular(p), "rb") as fh:
            data = fh.read(MAX_INF_BYTES + 1)
    except OSError as exc:
        raise FFUError(f"cannot read INF ({exc.strerror or exc}); check the inf source path", name) from exc
    return parse_inf_bytes(data, name, lcid=lcid)


def parse_inf_bytes(data: bytes, name: str, *, lcid: int = 0x0409) -> Inf:
    if len(data) > MAX_INF_BYTES:
        raise _too_big(len(data), name)
    text, encoding = _decode(data)
    return parse_inf_text(text, name, lcid=lcid, encoding=encoding)


def parse_inf_text(text: str, name: str, *, lcid: int = 0x0409, encoding: str = "text") -> Inf:
    if len(text) > MAX_INF_BYTES:
        raise _too_big(len(text), name)
    raw = _lex(text, name)
    strings = _strings_table(raw, lcid)
    sections: dict[str, InfSection] = {}
    for key, (sname, sline, rlines) in raw.items():
        sec = InfSection(sname, sline)
        is_strings = key == "strings" or key.startswith("strings.")
        for lineno, rkey, rvalues in rlines:
            if is_strings:
                ln = InfLine(lineno, rkey, tuple(rvalues))
            else:
                ln = _substitute(lineno, rkey, rvalues, strings)
            sec.lines.append(ln)
            if ln.key is not None:
                sec._index.setdefault(ln.key.lower(), []).append(ln)
        sections[key] = sec
    return Inf(name, encoding, sections, strings)


def _too_big(size: int, name: str) -> FFUError:
    return FFUError(
        f"INF is {size} bytes, over the {MAX_INF_BYTES}-byte limit; this is not a driver INF "
        "(or is corrupt) - point <inf source> at the real INF",
        name,
    )


def _decode(data: bytes) -> tuple[str, str]:
    if data.startswith(b"\xff\xfe"):
        enc, body = "utf-16-le", data[2:]
    elif data.startswith(b"\xfe\xff"):
        enc, body = "utf-16-be", data[2:]
    elif data.startswith(b"\xef\xbb\xbf"):
        enc, body = "utf-8", data[3:]
    else:
        sniffed = _sniff_utf16(data)
        if sniffed is None:
            try:
                return data.decode("utf-8"), "utf-8"
            except UnicodeDecodeError:
                return data.decode("cp1252", errors="ffuforge.inf.latin1"), "cp1252"
        enc, body = sniffed, data
    # A BOM promises the encoding; stray bytes (e.g. an odd trailing LF added by a text-mode
    # checkout) become U+FFFD instead of failing the whole INF.
    return body.decode(enc, errors="replace"), enc


def _sniff_utf16(data: bytes) -> str | None:
    sample = data[:4096]
    pairs = len(sample) // 2
    if pairs < 2:
        return None
    even = sample[0 : pairs * 2 : 2].count(0)
    odd = sample[1 : pairs * 2 : 2].count(0)
    if odd >= pairs * 0.3 and even <= pairs * 0.05:
        return "utf-16-le"
    if even >= pairs * 0.3 and odd <= pairs * 0.05:
        return "utf-16-be"
    return None


_RawLine = tuple[int, str | None, list[str]]


def _lex(text: str, name: str) -> dict[str, tuple[str, int, list[_RawLine]]]:
    """Split into sections of (line, key, values) with quotes removed, no substitution yet."""
    if text.startswith("\ufeff"):
        text = text[1:]
    sections: dict[str, tuple[str, int, list[_RawLine]]] = {}
    current: list[_RawLine] | None = None
    pending: list[str] = []
    pending_len = 0
    start = 0
    for lineno, phys in enumerate(_LINE_SPLIT.split(text), 1):
        if len(phys) > MAX_LINE_CHARS:
            raise FFUError(
                f"line is {len(phys)} characters long, over the {MAX_LINE_CHARS} limit; "
                "the INF is corrupt or not an INF",
                name,
                lineno,
            )
        body, open_quote = _strip_comment(phys)
        body = body.rstrip(_WS)
        if not pending:
            start = lineno
        if not open_quote and body.endswith("\\"):
            pending.append(body[:-1])
            pending_len += len(body)
            if pending_len > MAX_LINE_CHARS:
                raise FFUError(
                    f"continued line ('\\' at line ends) exceeds {MAX_LINE_CHARS} characters; "
                    "the INF is corrupt or not an INF",
                    name,
                    start,
                )
            continue
        pending.append(body)
        logical = "".join(pending).strip(_WS)
        pending.clear()
        pending_len = 0
        if not logical:
            continue
        if logical[0] == "[":
            end = logical.find("]")
            if end < 0:
                raise FFUError("section header is missing ']'; write it as [SectionName]", name, start)
            sname = logical[1:end].strip(_WS)
            if not sname:
                raise FFUError(
                    "empty section name '[]'; give the section a name or delete the line", name, start
                )
            entry = sections.get(sname.lower())
            if entry is None:  # duplicate headers merge, as in setupapi
                entry = sections[sname.lower()] = (sname, start, [])
            current = entry[2]
            continue
        if current is None:
            continue  # text before the first section is ignored by Windows
        key, values = _split_fields(logical)
        current.append((start, key, values))
    if pending:
        logical = "".join(pending).strip(_WS)
        if logical and current is not None and logical[0] != "[":
            key, values = _split_fields(logical)
            current.append((start, key, values))
    return sections


def _strip_comment(line: str) -> tuple[str, bool]:
    """Cut a ';' comment outside quotes; also report whether a quote is still open at the end."""
    if '"' not in line:
        cut = line.find(";")
        return (line if cut < 0 else line[:cut]), False
    in_q = False
    for i, ch in enumerate(line):
        if ch == '"':
            in_q = not in_q
        elif ch == ";" and not in_q:
            return line[:i], False
    return line, in_q


def _split_fields(s: str) -> tuple[str | None, list[str]]:
    """'key = v1, "v,2" , v3' -> ('key', ['v1', 'v,2', 'v3']); bare lines give key None."""
    if '"' not in s:
        eq = s.find("=")
        comma = s.find(",")
        key = None
        if eq >= 0 and (comma < 0 or eq < comma):
            key, s = s[:eq].strip(_WS), s[eq + 1 :]
        return key, [f.strip(_WS) for f in s.split(",")]

    key: str | None = None
    fields: list[str] = []
    buf: list[str] = []
    lo: int | None = None  # buf index of the first quoted char of this field
    hi = 0  # buf index just past the last quoted char

    def finish() -> str:
        text = "".join(buf)
        if lo is None:
            return text.strip(_WS)
        return text[:lo].lstrip(_WS) + text[lo:hi] + text[hi:].rstrip(_WS)

    i, n, in_q = 0, len(s), False
    while i < n:
        ch = s[i]
        if in_q:
            if ch == '"':
                if i + 1 < n and s[i + 1] == '"':
                    buf.append('"')
                    hi = len(buf)
                    i += 2
                    continue
                in_q = False
            else:
                buf.append(ch)
                hi = len(buf)
        elif ch == '"':
            in_q = True
            if lo is None:
                lo = len(buf)
            hi = len(buf)
        elif ch == "=" and key is None and not fields:
            key = finish()
            buf, lo, hi = [], None, 0
        elif ch == ",":
            fields.append(finish())
            buf, lo, hi = [], None, 0
        else:
            buf.append(ch)
        i += 1
    fields.append(finish())
    return key, fields


def _strings_table(raw: dict[str, tuple[str, int, list[_RawLine]]], lcid: int) -> dict[str, str]:
    def load(lines: list[_RawLine]) -> dict[str, str]:
        table: dict[str, str] = {}
        for _, key, values in lines:
            if key is not None:
                table.setdefault(key.lower(), ",".join(values).replace("%%", "%"))
        return table

    table = load(raw["strings"][2]) if "strings" in raw else {}
    exact: list[_RawLine] | None = None
    primary: list[_RawLine] | None = None
    for key, (_, _, lines) in raw.items():
        if not key.startswith("strings."):
            continue
        deco = key[len("strings.") :]
        try:
            value = int(deco, 16)
        except ValueError:
            continue
        if value == lcid:
            exact = lines
        elif value == (lcid & 0x3FF) and primary is None:
            primary = lines
    override = exact if exact is not None else primary
    if override is not None:
        table.update(load(override))
    return table


def _substitute(lineno: int, key: str | None, values: list[str], strings: dict[str, str]) -> InfLine:
    unresolved: list[tuple[int, str]] = []

    def sub(text: str, index: int) -> str:
        if "%" not in text:
            return text

        def repl(m: re.Match[str]) -> str:
            tok = m.group(1)
            if not tok:
                return "%"
            found = strings.get(tok.lower())
            if found is None:
                unresolved.append((index, tok))
                return m.group(0)
            return found

        return _TOKEN.sub(repl, text)

    new_key = sub(key, -1) if key is not None else None
    new_values = tuple(sub(v, i) for i, v in enumerate(values))
    return InfLine(lineno, new_key, new_values, tuple(unresolved))


# --------------------------------------------------------------------------- import


def import_driver(inf: Inf, arch: str) -> DriverImport:
    """Collect the files an INF installs for ``arch`` and where they go on the device."""
    if arch not in ARCHES:
        hint = " (x64 is spelled amd64 in INFs)" if arch.lower() in ("x64", "amd64") else ""
        raise FFUError(f"unknown architecture {arch!r}; use one of {', '.join(ARCHES)}{hint}")
    return _Importer(inf, arch).run()


def _expand_arch(text: str, arch: str) -> str:
    return _ARCH_TOKEN.sub(arch, text) if "$" in text else text


def _stamped(inf: Inf, arch: str) -> Inf:
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
            stamped = InfLine(ln.line, key, values, ln.unresolved)
            new.lines.append(stamped)
            if key is not None:
                new._index.setdefault(key.lower(), []).append(stamped)
    return Inf(inf.path, inf.encoding, sections, inf.strings)


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
        self.inf = _stamped(inf, arch)
        self.arch = arch
        self.name = inf.path
        self.warnings: list[str] = []
        self.files: dict[tuple[str, str, bool], InfFile] = {}
        self.dest_cache: dict[str, tuple[int, str, str]] = {}
        self.done_lists: set[str] = set()
        self._disk_index: dict[str, InfLine] | None = None
        self.models_names: list[str] = []

    # -- helpers
    def find(self, name: str) -> InfSection | None:
        return self.inf.sections.get(name.lower())

    def err(self, message: str, line: int | None = None) -> FFUError:
        return FFUError(message, self.name, line)

    def warn(self, message: str, line: int | None = None) -> None:
        self.warnings.append(str(FFUError(message, self.name, line)))

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
            warnings=self.warnings,
        )

    def install_roots(self) -> list[tuple[str, InfSection]]:
        """Install sections reachable from [Manufacturer] (or DefaultInstall), decorated name first."""
        man = self.find("Manufacturer")
        if man is None or not man.lines:
            return self.default_install(man)
        decorations: list[str] = []
        models: list[tuple[str, InfSection]] = []
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
                fname = value[1:].strip(_WS)
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
        t = text.strip(_WS)
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
        parts = [p for p in text.replace("/", "\\").split("\\") if p.strip(_WS) not in ("", ".")]
        for p in parts:
            if p.strip(_WS) == ".." or _BAD_NAME_CHARS.search(p):
                raise self.err(
                    f"subdirectory {text!r} must be a relative path without '..', drive letters or "
                    "wildcards; fix the entry",
                    ln.line,
                )
        return "\\".join(p.strip(_WS) for p in parts)

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
    t = text.strip(_WS)
    return str(int(t)) if t.isascii() and t.isdigit() and len(t) < 12 else t.lower()


def _unique_sections(items: list[tuple[str, InfSection]]) -> list[tuple[str, InfSection]]:
    seen: set[int] = set()
    out: list[tuple[str, InfSection]] = []
    for name, sec in items:
        if id(sec) not in seen:
            seen.add(id(sec))
            out.append((name, sec))
    return out
