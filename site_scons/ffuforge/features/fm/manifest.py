"""Feature manifests (FM, `<FeatureManifest>`): the model, the loader and FeatureGroup checks.

An FM lists CBS packages by section (base, features, SOC/device/release specific, layout,
platform, ...). Element names are case-sensitive; values (feature IDs, SOC/Device names,
partitions, languages) compare case-insensitively.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from lxml import etree

from ...errors import ConfigError
from ...util import xmlsafe
from .loader import XmlLoader, check_root
from .text import Filter, fm_implicit_id, fold, normalize_cpu, parse_bool, parse_filter

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
    attributes: tuple[tuple[str, str], ...] = ()  # other attributes (none pass the loader), written back


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
        self.check_attrs(el, ("FeatureID", "UpdateAction"))  # the schema's two (features-and-oeminput.md)
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
                    raise ConfigError(
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
                        raise ConfigError(
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


def with_packages(fm: FeatureManifest, packages: list[PackageFile], **changes) -> FeatureManifest:
    return replace(fm, packages=packages, **changes)
