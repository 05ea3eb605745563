"""Feature manifests (FM) and FMFileLists: models, loaders, writer, filters and placeholders.

An FM (`<FeatureManifest>`) lists CBS packages by section (base, features, SOC/device/release
specific, layout, platform, ...); an FMFileList (`<FMCollectionManifest>`) lists the FMs one
FeatureMerger run merges. Both live in the ImageUpdate namespace. Element names are
case-sensitive; values (feature IDs, SOC/Device names, partitions, languages) compare
case-insensitively (see features-and-oeminput.md §1, §2, §4.1, §5).

Nothing here resolves a path against the file system: `expand` substitutes placeholders from
an explicit variable map, and the resolver in `features.py` decides what a leftover means.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from lxml import etree

from ...errors import FFUError
from ...util import xmlsafe

NS = "http://schemas.microsoft.com/embedded/2004/10/ImageUpdate"
_NS_HTTPS = "https://schemas.microsoft.com/embedded/2004/10/ImageUpdate"

# ------------------------------------------------------------------------------- small helpers


def fold(text: str) -> str:
    """The comparison key for case-insensitive values (feature IDs, SOC, partitions, ...)."""
    return text.casefold()


def same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and fold(a) == fold(b)


def parse_bool(text: str | None, file: str, line: int | None, what: str) -> bool | None:
    if text is None:
        return None
    value = text.strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise FFUError(f"{what} must be true or false, not {text!r}", file, line)


CPU_TYPES = {"arm": "ARM", "arm64": "ARM64", "x86": "X86", "amd64": "AMD64"}
_CPU_ALIASES = {"x64": "amd64"}


def normalize_cpu(text: str) -> str | None:
    """'ARM', 'arm', 'x64', 'AMD64' -> 'arm' / 'amd64' ...; None when not a CPU type."""
    value = text.strip().lower()
    value = _CPU_ALIASES.get(value, value)
    return value if value in CPU_TYPES else None


def _hint_name(name: str, known: Iterable[str]) -> str:
    for k in known:
        if k.lower() == name.lower():
            return f" (element names are case-sensitive: write <{k}>)"
    return ""


# ----------------------------------------------------------------------------- filters (§2)

LANG_RE = re.compile(r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$")
RES_RE = re.compile(r"^[0-9]{1,6}[xX][0-9]{1,6}$")


@dataclass(frozen=True)
class Filter:
    """A Language/Resolution filter: `*`, `(a;b)` or `!(a;b)`."""

    kind: str  # 'all' | 'only' | 'except'
    items: tuple[str, ...] = ()  # as written
    what: str = "language"  # 'language' | 'resolution'

    def __str__(self) -> str:
        if self.kind == "all":
            return "*"
        body = "(" + ";".join(self.items) + ")"
        return "!" + body if self.kind == "except" else body

    def select(self, values: Iterable[str]) -> tuple[bool, tuple[str, ...]]:
        """(included, the image values that justify it) for an image with `values`."""
        values = tuple(values)
        wanted = {fold(x) for x in self.items}
        if self.kind == "all":
            return True, values
        hits = tuple(v for v in values if fold(v) in wanted)
        if self.kind == "only":
            return bool(hits), hits
        return not hits, tuple(v for v in values if fold(v) not in wanted)


def parse_filter(
    text: str, what: str = "language", file: str | None = None, line: int | None = None
) -> Filter:
    """Parse `*`, `(a;b)`, `!(a;b)`; languages must look like `en-US`, resolutions like `1024x768`."""
    attr = "Language" if what == "language" else "Resolution"
    raw = text.strip()

    def bad(msg: str) -> FFUError:
        return FFUError(f"{attr}={text!r}: {msg}; write '*', '(a;b)' or '!(a;b)'", file, line)

    if raw == "*":
        return Filter("all", (), what)
    kind = "only"
    if raw.startswith("!"):
        kind, raw = "except", raw[1:].strip()
    if not (raw.startswith("(") and raw.endswith(")")):
        raise bad("the list must be in parentheses")
    body = raw[1:-1]
    if "(" in body or ")" in body:
        raise bad("nested parentheses")
    items = tuple(x.strip() for x in body.split(";"))
    if not body.strip() or any(not x for x in items):
        raise bad("empty item in the list")
    check = LANG_RE if what == "language" else RES_RE
    for item in items:
        if not check.match(item):
            sample = "en-US" if what == "language" else "1024x768"
            raise bad(f"{item!r} is not a {what} like {sample} (items are separated by ';')")
    return Filter(kind, items, what)


# ------------------------------------------------------------------------- placeholders (§5)

_PLACEHOLDER = re.compile(r"%([A-Za-z_][A-Za-z0-9_]*)%|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")

#: placeholders that point into Microsoft's kit (MSPackages / FMFiles); without a Microsoft
#: package root, what depends on them is reported as skipped instead of failing.
MS_PLACEHOLDERS = frozenset({"mspackageroot", "mspkg_dir", "akroot", "kitsroot", "wpdkcontentroot"})


class Variables(Mapping[str, str]):
    """A case-insensitive variable map (Windows environment semantics)."""

    def __init__(self, *maps: Mapping[str, str] | None):
        self._d: dict[str, tuple[str, str]] = {}
        for m in maps:
            for k, v in (m or {}).items():
                self._d[k.casefold()] = (k, str(v))

    def __getitem__(self, key: str) -> str:
        return self._d[key.casefold()][1]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.casefold() in self._d

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self._d.values())

    def __len__(self) -> int:
        return len(self._d)


def placeholders(text: str) -> list[str]:
    """The placeholders in `text`, as written (`%PKGBLD_DIR%`, `$(cputype)`)."""
    return [m.group(0) for m in _PLACEHOLDER.finditer(text)]


def placeholder_name(token: str) -> str:
    return token[1:-1] if token.startswith("%") else token[2:-1]


def expand(text: str, variables: Mapping[str, str]) -> tuple[str, list[str]]:
    """Substitute `%VAR%` and `$(var)` once (no recursion); return (text, unresolved tokens)."""
    vars_ = variables if isinstance(variables, Variables) else Variables(variables)
    missing: list[str] = []

    def sub(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        if name in vars_:
            return vars_[name]
        missing.append(m.group(0))
        return m.group(0)

    return _PLACEHOLDER.sub(sub, text), missing


def is_ms_placeholder(token: str) -> bool:
    return placeholder_name(token).casefold() in MS_PLACEHOLDERS


# ------------------------------------------------------------------------ implicit IDs (§3)


def fm_implicit_id(owner: str, feature_id: str) -> str:
    """FM side: `X` -> `OEM_X` (or `MS_X`), unless it already starts with that prefix."""
    prefix = "OEM_" if owner == "OEM" else "MS_"
    return feature_id if feature_id.upper().startswith(prefix) else prefix + feature_id


def input_implicit_id(owner: str, feature: str) -> str:
    """OEMInput side: `<OEM><Feature>X` always becomes `OEM_X` (`MS_X` for Microsoft)."""
    return ("OEM_" if owner == "OEM" else "MS_") + feature


# --------------------------------------------------------------------------------- FM model

#: section -> the PackageFile attribute selecting it (None: no selector)
SECTIONS: dict[str, str | None] = {
    "BasePackages": None,
    "Microsoft": None,  # Features/Microsoft
    "OEM": None,  # Features/OEM
    "ReleasePackages": "ReleaseType",
    "PrereleasePackages": "Type",
    "SOCPackages": "SOC",
    "SVPackages": "SV",
    "DeviceSpecificPackages": "Device",
    "OEMDevicePlatformPackages": "Device",
    "DeviceLayoutPackages": "SOC",
    "CPUPackages": "CPUType",
    "KeyboardPackages": None,
    "SpeechPackages": None,
    "BootUILanguagePackageFile": None,
    "BootLocalePackageFile": None,
}
TOP_SECTIONS = [s for s in SECTIONS if s not in ("Microsoft", "OEM")] + ["Features"]
SINGLE_SECTIONS = ("BootUILanguagePackageFile", "BootLocalePackageFile")
_SELECTOR_ATTRS = ("SOC", "Device", "SV", "ReleaseType", "Type")
_PF_ATTRS = {
    "Path",
    "Name",
    "Resolution",
    "Language",
    "Partition",
    "ID",
    "NoBasePackage",
    "FeatureIdentifierPackage",
    "CPUType",
    *_SELECTOR_ATTRS,
}
RELEASE_TYPES = {"production": "Production", "test": "Test"}
PRERELEASE_TYPES = {"protected": "protected", "replacement": "replacement"}
CONSTRAINTS = {
    "oneormore": "OneOrMore",
    "zeroorone": "ZeroOrOne",
    "oneandonlyone": "OneAndOnlyOne",
    "zeroormore": "ZeroOrMore",
}
EXCLUSIVE = ("ZeroOrOne", "OneAndOnlyOne")
REQUIRED = ("OneOrMore", "OneAndOnlyOne")


@dataclass(frozen=True)
class PackageFile:
    """One `<PackageFile>` (or Boot*PackageFile) of an FM, values as written."""

    section: str  # key of SECTIONS
    path: str
    name: str
    line: int | None = None
    feature_ids: tuple[str, ...] = ()  # Features/Microsoft and Features/OEM only
    selector: str | None = None  # value of SECTIONS[section] (canonical for enums)
    language: Filter | None = None
    resolution: Filter | None = None
    partition: str | None = None
    id: str | None = None
    cpu_type: str | None = None
    fip: bool = False  # FeatureIdentifierPackage="true"
    no_base_package: bool | None = None
    extra_selectors: tuple[tuple[str, str], ...] = ()  # selector attributes outside their section

    @property
    def owner(self) -> str | None:
        return self.section if self.section in ("Microsoft", "OEM") else None

    def implicit_ids(self) -> tuple[str, ...]:
        if self.owner is None:
            return ()
        return tuple(fm_implicit_id(self.owner, f) for f in self.feature_ids)

    @property
    def location(self) -> str:
        """`Path\\Name` as written."""
        p = self.path.rstrip("\\/")
        return f"{p}\\{self.name}" if p else self.name


@dataclass(frozen=True)
class FeatureGroup:
    owner: str  # 'Microsoft' | 'OEM'
    constraint: str  # canonical CONSTRAINTS value
    feature_ids: tuple[str, ...]  # implicit IDs (OEM_X, MS_X, SOC_x, BASE, ...)
    name: str | None = None
    publishing: bool = False
    subgroups: tuple[FeatureGroup, ...] = ()
    line: int | None = None
    constraint_written: bool = True  # False: attribute absent (ZeroOrMore default)

    def walk(self) -> Iterator[FeatureGroup]:
        yield self
        for g in self.subgroups:
            yield from g.walk()


@dataclass(frozen=True)
class ConditionalFeature:
    feature_id: str
    update_action: str | None = None
    line: int | None = None
    attributes: tuple[tuple[str, str], ...] = ()  # any other attribute, kept for round trips


@dataclass
class FeatureManifest:
    file: str  # display name used in messages
    packages: list[PackageFile] = field(default_factory=list)
    groups: list[FeatureGroup] = field(default_factory=list)
    conditional_features: list[ConditionalFeature] = field(default_factory=list)
    revision: str | None = None
    schema_version: str | None = None
    present_sections: tuple[str, ...] = ()  # sections present (even empty), for writing back
    warnings: list[str] = field(default_factory=list)
    path: Path | None = None

    def section(self, name: str) -> list[PackageFile]:
        return [p for p in self.packages if p.section == name]

    def features(self, owner: str) -> dict[str, list[PackageFile]]:
        """implicit feature ID (folded) -> packages, for 'Microsoft' or 'OEM'."""
        out: dict[str, list[PackageFile]] = {}
        for p in self.packages:
            if p.section == owner:
                for fid in p.implicit_ids():
                    out.setdefault(fold(fid), []).append(p)
        return out

    def implicit_ids(self) -> dict[str, str]:
        """folded -> spelled implicit ID of every feature defined here."""
        out: dict[str, str] = {}
        for p in self.packages:
            for fid in p.implicit_ids():
                out.setdefault(fold(fid), fid)
        return out


def _root_kind(root) -> str:
    return {"FeatureManifest": "FM", "FMCollectionManifest": "FMFileList", "OEMInput": "OEMInput"}.get(
        xmlsafe.localname(root), ""
    )


def check_root(root, expected: str, file: str) -> None:
    """Refuse a file whose root is not `expected` (in the ImageUpdate namespace), clearly."""
    name = xmlsafe.localname(root)
    if name != expected:
        kind = _root_kind(root)
        what = {
            "FM": "a feature manifest (FM)",
            "FMFileList": "an FMFileList (FMCollectionManifest)",
            "OEMInput": "an OEMInput",
        }.get(kind, f"a <{name}> document")
        want = {
            "FeatureManifest": "a feature manifest (<FeatureManifest>)",
            "FMCollectionManifest": "an FMFileList (<FMCollectionManifest>)",
            "OEMInput": "an OEMInput (<OEMInput>)",
        }[expected]
        raise FFUError(f"this is {what}, not {want}", file, root.sourceline)
    ns = xmlsafe.namespace(root)
    if ns != NS:
        if ns == _NS_HTTPS:
            hint = "the documentation's https:// spelling is wrong; use http://"
        elif ns is None:
            hint = f'add xmlns="{NS}"'
        else:
            hint = f"expected {NS!r}"
        raise FFUError(f"<{expected}> has namespace {ns!r}; {hint}", file, root.sourceline)


class XmlLoader:
    def __init__(self, file: str):
        self.file = file
        self.warnings: list[str] = []

    def err(self, el, message: str) -> FFUError:
        return FFUError(message, self.file, el.sourceline if el is not None else None)

    def warn(self, el, message: str) -> None:
        self.warnings.append(str(FFUError(message, self.file, el.sourceline if el is not None else None)))

    def children(self, el) -> list:
        out = []
        for c in xmlsafe.elements(el):
            if xmlsafe.namespace(c) != NS:
                raise self.err(
                    c, f"<{xmlsafe.localname(c)}> has namespace {xmlsafe.namespace(c)!r}; expected {NS!r}"
                )
            out.append(c)
        return out

    def unknown(self, el, parent: str, allowed: Iterable[str]) -> FFUError:
        name = xmlsafe.localname(el)
        allowed = list(allowed)
        return self.err(
            el,
            f"<{name}> is not allowed inside <{parent}>{_hint_name(name, allowed)}; "
            f"expected one of: {', '.join(allowed)}",
        )

    def text(self, el, what: str, required: bool = True) -> str:
        if self.children(el):
            raise self.err(el, f"<{what}> must contain text only")
        value = (el.text or "").strip()
        if required and not value:
            raise self.err(el, f"<{what}> is empty")
        return value

    def check_attrs(self, el, allowed: Iterable[str]) -> None:
        allowed = set(allowed)
        for a in el.attrib:
            q = etree.QName(a)
            if q.namespace:  # xsi:*, xml:* ...
                continue
            if q.localname not in allowed:
                hint = next(
                    (
                        f" (attribute names are case-sensitive: write {k})"
                        for k in allowed
                        if k.lower() == q.localname.lower()
                    ),
                    "",
                )
                raise self.err(
                    el, f"attribute {q.localname}= is not allowed on <{xmlsafe.localname(el)}>{hint}"
                )


class _FMLoader(XmlLoader):
    def load(self, root) -> FeatureManifest:
        check_root(root, "FeatureManifest", self.file)
        self.check_attrs(root, {"Revision", "SchemaVersion"})
        fm = FeatureManifest(
            self.file, revision=root.get("Revision"), schema_version=root.get("SchemaVersion")
        )
        present: list[str] = []
        for sec in self.children(root):
            name = xmlsafe.localname(sec)
            if name not in TOP_SECTIONS:
                raise self.unknown(sec, "FeatureManifest", TOP_SECTIONS)
            if name not in present:
                present.append(name)
            if name == "Features":
                self.features(fm, sec, present)
            elif name in SINGLE_SECTIONS:
                if self.children(sec):  # tolerated container form
                    for pf in self.children(sec):
                        if xmlsafe.localname(pf) != "PackageFile":
                            raise self.unknown(pf, name, ["PackageFile"])
                        fm.packages.append(self.package(pf, name))
                else:
                    fm.packages.append(self.package(sec, name))
            else:
                self.check_attrs(sec, ())
                for pf in self.children(sec):
                    if xmlsafe.localname(pf) != "PackageFile":
                        raise self.unknown(pf, name, ["PackageFile"])
                    fm.packages.append(self.package(pf, name))
        fm.present_sections = tuple(present)
        fm.warnings = self.warnings
        self.check_groups_local(fm)
        return fm

    def features(self, fm: FeatureManifest, el, present: list[str]) -> None:
        allowed = ["Microsoft", "OEM", "MSFeatureGroups", "OEMFeatureGroups", "OEMConditionalFeatures"]
        self.check_attrs(el, ())
        for sub in self.children(el):
            name = xmlsafe.localname(sub)
            if name not in allowed:
                raise self.unknown(sub, "Features", allowed)
            self.check_attrs(sub, ())
            key = "Features/" + name
            if key not in present:
                present.append(key)
            if name in ("Microsoft", "OEM"):
                for pf in self.children(sub):
                    if xmlsafe.localname(pf) != "PackageFile":
                        raise self.unknown(pf, name, ["PackageFile"])
                    fm.packages.append(self.package(pf, name))
            elif name in ("MSFeatureGroups", "OEMFeatureGroups"):
                owner = "Microsoft" if name == "MSFeatureGroups" else "OEM"
                for g in self.children(sub):
                    gname = xmlsafe.localname(g)
                    if gname == "FeatureGroups":  # documented wrapper
                        self.check_attrs(g, ())
                        for gg in self.children(g):
                            if xmlsafe.localname(gg) != "FeatureGroup":
                                raise self.unknown(gg, "FeatureGroups", ["FeatureGroup"])
                            fm.groups.append(self.group(gg, owner))
                    elif gname == "FeatureGroup":
                        fm.groups.append(self.group(g, owner))
                    else:
                        raise self.unknown(g, name, ["FeatureGroup", "FeatureGroups"])
            else:
                for c in self.children(sub):
                    if xmlsafe.localname(c) != "ConditionalFeature":
                        raise self.unknown(c, name, ["ConditionalFeature"])
                    fm.conditional_features.append(self.conditional(c))

    def feature_ids(self, el, where: str) -> tuple[str, ...]:
        self.check_attrs(el, ())
        ids: list[str] = []
        for c in self.children(el):
            if xmlsafe.localname(c) != "FeatureID":
                raise self.unknown(c, "FeatureIDs", ["FeatureID"])
            fid = self.text(c, "FeatureID")
            if any(fold(fid) == fold(x) for x in ids):
                self.warn(c, f"FeatureID {fid} is listed twice {where}")
                continue
            ids.append(fid)
        return tuple(ids)

    def group(self, el, owner: str) -> FeatureGroup:
        self.check_attrs(el, {"Constraint", "Name", "PublishingFeatureGroup"})
        raw = el.get("Constraint")
        written = raw is not None
        constraint = "ZeroOrMore"
        if raw is not None:
            constraint = CONSTRAINTS.get(raw.strip().lower(), "")
            if not constraint:
                raise self.err(
                    el, f"FeatureGroup Constraint={raw!r} is not one of {', '.join(CONSTRAINTS.values())}"
                )
            if constraint != raw.strip():
                self.warn(el, f"Constraint={raw!r} differs in case from {constraint}")
        ids: tuple[str, ...] = ()
        subs: list[FeatureGroup] = []
        seen_ids = False
        for c in self.children(el):
            cname = xmlsafe.localname(c)
            if cname == "FeatureIDs":
                if seen_ids:
                    raise self.err(c, "FeatureGroup has two <FeatureIDs>")
                seen_ids = True
                ids = self.feature_ids(c, "in this FeatureGroup")
            elif cname == "SubGroups":
                self.check_attrs(c, ())
                for s in self.children(c):
                    if xmlsafe.localname(s) != "FeatureGroup":
                        raise self.unknown(s, "SubGroups", ["FeatureGroup"])
                    subs.append(self.group(s, owner))
            else:
                raise self.unknown(c, "FeatureGroup", ["FeatureIDs", "SubGroups"])
        if constraint != "ZeroOrMore" and not ids:
            raise self.err(el, f"FeatureGroup with Constraint={constraint} lists no <FeatureIDs>")
        publishing = (
            parse_bool(el.get("PublishingFeatureGroup"), self.file, el.sourceline, "PublishingFeatureGroup")
            or False
        )
        return FeatureGroup(
            owner, constraint, ids, el.get("Name"), publishing, tuple(subs), el.sourceline, written
        )

    def conditional(self, el) -> ConditionalFeature:
        fid = el.get("FeatureID")
        if fid is None or not fid.strip():
            raise self.err(el, "ConditionalFeature needs FeatureID=")
        extra = tuple(
            sorted(
                (k, v)
                for k, v in el.attrib.items()
                if k not in ("FeatureID", "UpdateAction") and not etree.QName(k).namespace
            )
        )
        if self.children(el):
            self.warn(el, "children of <ConditionalFeature> are not interpreted by ffuforge (kept as is)")
        return ConditionalFeature(fid.strip(), el.get("UpdateAction"), el.sourceline, extra)

    def package(self, el, section: str) -> PackageFile:
        tag = xmlsafe.localname(el)
        self.check_attrs(el, _PF_ATTRS)
        path, name = el.get("Path"), el.get("Name")
        for attr, value in (("Path", path), ("Name", name)):
            if value is None:
                raise self.err(el, f"<{tag}> in <{section}> needs {attr}=")
        if not name.strip():
            raise self.err(el, f"<{tag}> in <{section}> has an empty Name=")
        sel_attr = SECTIONS[section]
        selector = None
        if sel_attr and sel_attr != "CPUType":
            raw = el.get(sel_attr)
            if raw is None or not raw.strip():
                hint = ""
                other = [a for a in _SELECTOR_ATTRS if a != sel_attr and el.get(a) is not None]
                if other:
                    hint = (
                        f" (it has {other[0]}={el.get(other[0])!r}, which <{section}> does not use; "
                        "DeviceLayoutPackages/SOCPackages select by SOC, OEMDevicePlatformPackages/"
                        "DeviceSpecificPackages by Device)"
                    )
                raise self.err(el, f"<PackageFile Name={name!r}> in <{section}> needs {sel_attr}={hint}")
            selector = raw.strip()
            table = (
                RELEASE_TYPES
                if sel_attr == "ReleaseType"
                else PRERELEASE_TYPES
                if sel_attr == "Type"
                else None
            )
            if table is not None:
                canon = table.get(selector.lower())
                if canon is None:
                    raise self.err(
                        el, f"{sel_attr}={raw!r} on package {name} is not one of {', '.join(table.values())}"
                    )
                if canon != selector:
                    self.warn(el, f"{sel_attr}={raw!r} on package {name} differs in case from {canon}")
                selector = canon
        cpu = el.get("CPUType")
        if cpu is not None:
            if normalize_cpu(cpu) is None:
                raise self.err(el, f"CPUType={cpu!r} on package {name} is not one of ARM, ARM64, X86, AMD64")
            if sel_attr == "CPUType":
                selector = cpu.strip()
        elif sel_attr == "CPUType":
            raise self.err(el, f"<PackageFile Name={name!r}> in <CPUPackages> needs CPUType=")
        extra = []
        for a in _SELECTOR_ATTRS:
            if a != sel_attr and el.get(a) is not None:
                self.warn(el, f"{a}= on package {name} has no effect in <{section}> (ignored)")
                extra.append((a, el.get(a)))
        ids: tuple[str, ...] = ()
        kids = self.children(el)
        if section in ("Microsoft", "OEM"):
            fids = [k for k in kids if xmlsafe.localname(k) == "FeatureIDs"]
            others = [k for k in kids if xmlsafe.localname(k) != "FeatureIDs"]
            if others:
                raise self.unknown(others[0], "PackageFile", ["FeatureIDs"])
            if len(fids) != 1:
                raise self.err(
                    el,
                    f"feature package {name} in <Features><{section}> needs exactly one "
                    "<FeatureIDs> with at least one <FeatureID>",
                )
            ids = self.feature_ids(fids[0], f"on package {name}")
            if not ids:
                raise self.err(fids[0], f"feature package {name} has an empty <FeatureIDs>")
        elif kids:
            raise self.err(
                kids[0],
                f"<{xmlsafe.localname(kids[0])}> is only allowed on feature packages "
                f"(<Features><OEM>), not in <{section}>",
            )
        lang = el.get("Language")
        res = el.get("Resolution")
        partition = el.get("Partition")
        if partition is not None and not partition.strip():
            raise self.err(el, f"Partition= on package {name} is empty")
        return PackageFile(
            section=section,
            path=path.strip(),
            name=name.strip(),
            line=el.sourceline,
            feature_ids=ids,
            selector=selector,
            language=parse_filter(lang, "language", self.file, el.sourceline) if lang is not None else None,
            resolution=parse_filter(res, "resolution", self.file, el.sourceline) if res is not None else None,
            partition=partition.strip() if partition else None,
            id=el.get("ID"),
            cpu_type=cpu,
            fip=parse_bool(
                el.get("FeatureIdentifierPackage"), self.file, el.sourceline, "FeatureIdentifierPackage"
            )
            or False,
            no_base_package=parse_bool(el.get("NoBasePackage"), self.file, el.sourceline, "NoBasePackage"),
            extra_selectors=tuple(extra),
        )

    def check_groups_local(self, fm: FeatureManifest) -> None:
        check_groups([fm])


def check_groups(fms: Iterable[FeatureManifest]) -> None:
    """Definitions that can never be satisfied: a feature in two exclusive groups, an OEM group
    reusing a Microsoft group's name."""
    exclusive: dict[str, tuple[FeatureManifest, FeatureGroup]] = {}
    ms_names: dict[str, tuple[FeatureManifest, FeatureGroup]] = {}
    fms = list(fms)
    for fm in fms:
        for top in fm.groups:
            for g in top.walk():
                if g.owner == "Microsoft" and g.name:
                    ms_names.setdefault(fold(g.name), (fm, g))
    for fm in fms:
        for top in fm.groups:
            for g in top.walk():
                if g.owner == "OEM" and g.name and fold(g.name) in ms_names:
                    ofm, og = ms_names[fold(g.name)]
                    raise FFUError(
                        f"OEM FeatureGroup {g.name!r} has the name of the Microsoft group defined at "
                        f"{ofm.file}:{og.line}; OEM groups cannot override Microsoft groups",
                        fm.file,
                        g.line,
                    )
                if g.constraint not in EXCLUSIVE:
                    continue
                for fid in g.feature_ids:
                    prev = exclusive.get(fold(fid))
                    if prev is not None and prev[1] is not g:
                        pfm, pg = prev
                        raise FFUError(
                            f"feature {fid} is in two mutually exclusive feature groups: this "
                            f"{g.constraint} group and the {pg.constraint} group at {pfm.file}:{pg.line}; "
                            "a feature may belong to only one ZeroOrOne/OneAndOnlyOne group",
                            fm.file,
                            g.line,
                        )
                    exclusive[fold(fid)] = (fm, g)


def load_fm(path: str | Path, display: str | None = None) -> FeatureManifest:
    """Load one FM; FFUError (file, line) for anything that is not a valid FM."""
    name = display or str(path)
    root = xmlsafe.parse_file(path, name)
    fm = _FMLoader(name).load(root)
    fm.path = Path(path)
    return fm


def parse_fm_bytes(data: bytes, display: str) -> FeatureManifest:
    return _FMLoader(display).load(xmlsafe.parse_bytes(data, display))


# ---------------------------------------------------------------------------- FM writer


def _filter_attr(f: Filter | None) -> str | None:
    return None if f is None else str(f)


def write_fm(fm: FeatureManifest, comment: str | None = None) -> bytes:
    """Serialize an FM deterministically (UTF-8, no BOM); `load_fm` reads it back equal."""
    E = f"{{{NS}}}"
    root = etree.Element(
        E + "FeatureManifest",
        nsmap={
            None: NS,
            "xsi": "http://www.w3.org/2001/XMLSchema-instance",
            "xsd": "http://www.w3.org/2001/XMLSchema",
        },
    )
    if fm.revision is not None:
        root.set("Revision", fm.revision)
    if fm.schema_version is not None:
        root.set("SchemaVersion", fm.schema_version)
    if comment:
        root.append(etree.Comment(" " + comment.replace("--", "- -") + " "))
    order = list(fm.present_sections)
    for p in fm.packages:
        key = "Features/" + p.section if p.section in ("Microsoft", "OEM") else p.section
        if key not in order:
            order.append(key)
        if key.startswith("Features/") and "Features" not in order:
            order.append("Features")
    if (fm.groups or fm.conditional_features) and "Features" not in order:
        order.append("Features")
    for g in fm.groups:
        key = "Features/" + ("MSFeatureGroups" if g.owner == "Microsoft" else "OEMFeatureGroups")
        if key not in order:
            order.append(key)
    if fm.conditional_features and "Features/OEMConditionalFeatures" not in order:
        order.append("Features/OEMConditionalFeatures")

    def pf_el(parent, p: PackageFile, tag: str = "PackageFile"):
        el = etree.SubElement(parent, E + tag)
        sel = SECTIONS[p.section]
        attrs = [("Path", p.path), ("Name", p.name)]
        if sel and sel != "CPUType":
            attrs.append((sel, p.selector))
        attrs += [
            ("CPUType", p.cpu_type),
            ("Language", _filter_attr(p.language)),
            ("Resolution", _filter_attr(p.resolution)),
            ("Partition", p.partition),
            ("ID", p.id),
            ("FeatureIdentifierPackage", "true" if p.fip else None),
            ("NoBasePackage", None if p.no_base_package is None else str(p.no_base_package).lower()),
        ]
        attrs += list(p.extra_selectors)
        for k, v in attrs:
            if v is not None:
                el.set(k, v)
        if p.feature_ids:
            ids = etree.SubElement(el, E + "FeatureIDs")
            for fid in p.feature_ids:
                etree.SubElement(ids, E + "FeatureID").text = fid
        return el

    def group_el(parent, g: FeatureGroup):
        el = etree.SubElement(parent, E + "FeatureGroup")
        if g.name is not None:
            el.set("Name", g.name)
        if g.constraint_written:
            el.set("Constraint", g.constraint)
        if g.publishing:
            el.set("PublishingFeatureGroup", "true")
        if g.feature_ids:
            ids = etree.SubElement(el, E + "FeatureIDs")
            for fid in g.feature_ids:
                etree.SubElement(ids, E + "FeatureID").text = fid
        if g.subgroups:
            subs = etree.SubElement(el, E + "SubGroups")
            for s in g.subgroups:
                group_el(subs, s)

    features_el = None
    for key in order:
        if key.startswith("Features"):
            if features_el is None:
                features_el = etree.SubElement(root, E + "Features")
            if key == "Features":
                continue
            sub = etree.SubElement(features_el, E + key.split("/", 1)[1])
            name = key.split("/", 1)[1]
            if name in ("Microsoft", "OEM"):
                for p in fm.packages:
                    if p.section == name:
                        pf_el(sub, p)
            elif name in ("MSFeatureGroups", "OEMFeatureGroups"):
                owner = "Microsoft" if name == "MSFeatureGroups" else "OEM"
                for g in fm.groups:
                    if g.owner == owner:
                        group_el(sub, g)
            else:
                for c in fm.conditional_features:
                    el = etree.SubElement(sub, E + "ConditionalFeature")
                    el.set("FeatureID", c.feature_id)
                    if c.update_action is not None:
                        el.set("UpdateAction", c.update_action)
                    for k, v in c.attributes:
                        el.set(k, v)
        elif key in SINGLE_SECTIONS:
            for p in fm.packages:
                if p.section == key:
                    pf_el(root, p, key)
        else:
            sec = etree.SubElement(root, E + key)
            for p in fm.packages:
                if p.section == key:
                    pf_el(sec, p)
    etree.indent(root, space="  ")
    return etree.tostring(root, xml_declaration=True, encoding="utf-8", pretty_print=True)


# --------------------------------------------------------------------------- FMFileList model


@dataclass(frozen=True)
class FMEntry:
    id: str
    path: str  # as written, e.g. $(FMDirectory)\OEMFM.xml
    line: int | None = None
    release_type: str | None = None
    owner_name: str | None = None
    owner_type: str | None = None
    cpu_type: str | None = None
    critical: bool | None = None

    @property
    def file_name(self) -> str:
        return re.split(r"[\\/]", self.path.strip())[-1]


@dataclass
class FMFileList:
    file: str
    fms: list[FMEntry] = field(default_factory=list)
    product: str | None = None
    is_build_feature_enabled: bool | None = None
    resolutions: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    locales: tuple[str, ...] = ()
    warnings: list[str] = field(default_factory=list)
    path: Path | None = None


class _FMFileListLoader(XmlLoader):
    ALLOWED = [
        "IsBuildFeatureEnabled",
        "FMs",
        "SupportedResolutions",
        "SupportedLanguages",
        "SupportedLocales",
    ]

    def load(self, root) -> FMFileList:
        check_root(root, "FMCollectionManifest", self.file)
        self.check_attrs(root, {"Product"})
        fl = FMFileList(self.file, product=root.get("Product"))
        seen: set[str] = set()
        for el in self.children(root):
            name = xmlsafe.localname(el)
            if name not in self.ALLOWED:
                raise self.unknown(el, "FMCollectionManifest", self.ALLOWED)
            if name in seen:
                raise self.err(el, f"<{name}> appears twice in the FMFileList")
            seen.add(name)
            self.check_attrs(el, ())
            if name == "IsBuildFeatureEnabled":
                fl.is_build_feature_enabled = parse_bool(self.text(el, name), self.file, el.sourceline, name)
            elif name == "FMs":
                for fm in self.children(el):
                    if xmlsafe.localname(fm) != "FM":
                        raise self.unknown(fm, "FMs", ["FM"])
                    fl.fms.append(self.entry(fm))
            else:
                item = {
                    "SupportedResolutions": "Resolution",
                    "SupportedLanguages": "Language",
                    "SupportedLocales": "Locale",
                }[name]
                values = []
                for c in self.children(el):
                    if xmlsafe.localname(c) != item:
                        raise self.unknown(c, name, [item])
                    v = self.text(c, item)
                    if item == "Resolution" and not RES_RE.match(v):
                        raise self.err(c, f"<Resolution>{v}</Resolution> is not WxH like 1024x768")
                    if item != "Resolution" and not LANG_RE.match(v):
                        raise self.err(c, f"<{item}>{v}</{item}> is not a language tag like en-US")
                    values.append(v)
                setattr(
                    fl,
                    {"Resolution": "resolutions", "Language": "languages", "Locale": "locales"}[item],
                    tuple(values),
                )
        if "FMs" not in seen:
            raise self.err(root, "FMFileList has no <FMs>")
        ids: dict[str, FMEntry] = {}
        for e in fl.fms:
            if fold(e.id) in ids:
                raise FFUError(
                    f"FM ID {e.id!r} is used twice (also line {ids[fold(e.id)].line}); "
                    "FM IDs name the generated packages and must be unique",
                    self.file,
                    e.line,
                )
            ids[fold(e.id)] = e
        fl.warnings = self.warnings
        return fl

    def entry(self, el) -> FMEntry:
        self.check_attrs(el, {"ID", "Path", "ReleaseType", "OwnerName", "OwnerType", "CPUType", "Critical"})
        fid, path = el.get("ID"), el.get("Path")
        if not fid or not fid.strip():
            raise self.err(el, "<FM> needs ID=")
        if not path or not path.strip():
            raise self.err(el, f"<FM ID={fid!r}> needs Path=")
        if len(fid.strip()) > 8:
            self.warn(el, f"FM ID {fid!r} is longer than the documented 8 characters (accepted)")
        rel = el.get("ReleaseType")
        if rel is not None:
            canon = RELEASE_TYPES.get(rel.strip().lower())
            if canon is None:
                raise self.err(el, f"FM {fid}: ReleaseType={rel!r} is not Production or Test")
            if canon != rel.strip():
                self.warn(el, f"FM {fid}: ReleaseType={rel!r} differs in case from {canon}")
            rel = canon
        owner_type = el.get("OwnerType")
        if owner_type is not None and owner_type.strip().lower() not in ("oem", "microsoft"):
            raise self.err(el, f"FM {fid}: OwnerType={owner_type!r} is not OEM or Microsoft")
        return FMEntry(
            fid.strip(),
            path.strip(),
            el.sourceline,
            rel,
            el.get("OwnerName"),
            owner_type,
            el.get("CPUType"),
            parse_bool(el.get("Critical"), self.file, el.sourceline, "Critical"),
        )


def load_fmfilelist(path: str | Path, display: str | None = None) -> FMFileList:
    name = display or str(path)
    fl = _FMFileListLoader(name).load(xmlsafe.parse_file(path, name))
    fl.path = Path(path)
    return fl


def document_kind(path: str | Path, display: str | None = None) -> str:
    """'FM', 'FMFileList', 'OEMInput' or '' for another XML document (FFUError if unreadable)."""
    return _root_kind(xmlsafe.parse_file(path, display or str(path)))


def with_packages(fm: FeatureManifest, packages: list[PackageFile], **changes) -> FeatureManifest:
    return replace(fm, packages=packages, **changes)
