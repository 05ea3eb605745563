"""FeatureMerger and ImageApp's package-set resolution, as pure functions (no SCons).

* `merge(fmfilelist, settings)` — what FeatureMerger does for an FMFileList in IoT /ConvertToCBS
  mode: resolve every FM's placeholders, check each referenced CAB exists (or will be built),
  plan one feature identifier package (FIP) per feature/group and partition, and produce merged
  FMs (same file name) that reference the original packages plus the FIPs. An FM whose inputs
  did not change is not re-merged (its merged file carries a digest of its inputs).
* `resolve(oeminput, ...)` — OEMInput + FMs (+ optional Microsoft package root) -> the exact
  package set per partition with the reason each package is in (features-and-oeminput.md §7).
  Without a Microsoft package root, Microsoft features, FMs and packages are reported as
  skipped, never silently dropped.
* `features_main(argv)` — the `ffuforge features` subcommand.

Paths: values come from an explicit variable map (never the process environment); a Windows
path is resolved against `top` with case-insensitive fallback, as Windows would find it.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import FFUError
from ..util import paths
from . import fm as fmmod
from . import oeminput as oimod
from .fm import (
    EXCLUSIVE,
    REQUIRED,
    FeatureManifest,
    FMEntry,
    FMFileList,
    PackageFile,
    Variables,
    check_groups,
    expand,
    fm_implicit_id,
    fold,
    input_implicit_id,
    is_ms_placeholder,
    normalize_cpu,
    same,
)
from .oeminput import Item, OEMInput

DEFAULT_PARTITION = "MainOS"

#: IoTEnvSettings.xml DevFeatureIDs (17763 kit): warned about in Production images
DEV_FEATURES = frozenset(
    {
        "IOT_TOOLKIT",
        "IOT_SIREP",
        "IOT_CORTANA",
        "IOT_SSH",
        "IOT_WEBB_EXTN",
        "IOT_NANORDPSERVER",
        "IOT_CORTANA_OBSCURELAUNCH",
        "IOT_BERTHA",
        "IOT_UAP_DEFAULTAPP",
        "IOT_FTSER2K_MAKERDRIVER",
        "IOT_CP210X_MAKERDRIVER",
        "IOT_DMAP_DRIVER",
        "IOT_CONTAINERS",
    }
)
DEPRECATED_FEATURES = frozenset(
    {"IOT_NETCMD", "IOT_DISABLE_UMCI", "IOT_HWN_CLASS_EXTENSION", "IOT_SPEECHDATA_EN_US"}
)
NONPRODUCTION_FM = "iotuapnonproductionpartnersharefm.xml"

Available = Callable[[Path], bool] | Collection[str | Path] | None
PartitionOf = Callable[[Path], str | None] | None


class MissingFMError(FFUError):
    """An FM named by an OEMInput or FMFileList does not exist."""


def assume_available(_path: Path) -> bool:
    """`available=` for callers that only want the package list (nothing is checked)."""
    return True


def _key(path: Path | str) -> str:
    """Case-insensitive identity of a host path (Windows semantics)."""
    return os.path.normpath(str(path)).replace("\\", "/").casefold()


def _available(available: Available) -> Callable[[Path], bool]:
    """None: the file exists. A collection: listed (will be built) or exists. A callable: as is."""
    if available is None:
        return lambda p: p.is_file()
    if callable(available):
        return available
    known = {_key(p) for p in available}
    return lambda p: _key(p) in known or p.is_file()


def _package_name(p: PackageFile, file_name: str) -> str:
    if p.id:
        return p.id
    return re.sub(r"\.(cab|spkg)$", "", file_name, flags=re.IGNORECASE)


def _join(path_text: str, name_text: str) -> str:
    p = path_text.rstrip("\\/")
    return f"{p}\\{name_text}" if p else name_text


def _msg_pkg(p: PackageFile, name: str | None = None) -> str:
    who = name or p.name
    if p.feature_ids:
        return f"package {who}, feature {', '.join(p.implicit_ids())}"
    return f"package {who} in <{p.section}>"


# ---------------------------------------------------------------------------- result model


@dataclass
class ResolvedPackage:
    path: Path  # resolved CAB on the host
    name: str  # package name (ID= or the file name without .cab/.spkg)
    partition: str
    reasons: list[str]
    fm: str  # FM (or OEMInput) that first listed it
    line: int | None = None
    fip: bool = False  # a feature identifier package
    sources: list[str] = field(default_factory=list)  # every 'file:line' that listed it

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "path": str(self.path),
            "partition": self.partition,
            "reasons": list(self.reasons),
            "fip": self.fip,
            "sources": list(self.sources),
        }


@dataclass
class Skipped:
    kind: str  # 'feature' | 'fm' | 'package' | 'device layout' | 'device platform'
    name: str
    reason: str
    file: str | None = None
    line: int | None = None

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "name": self.name,
            "reason": self.reason,
            "file": self.file,
            "line": self.line,
        }

    def __str__(self) -> str:
        where = (
            f" ({self.file}:{self.line})"
            if self.file and self.line
            else f" ({self.file})"
            if self.file
            else ""
        )
        return f"{self.kind} {self.name}: {self.reason}{where}"


@dataclass
class Resolution:
    oeminput: str
    cpu: str
    soc: str
    device: str
    sv: str | None
    release_type: str
    build_type: str
    ui_languages: list[str]
    resolutions: list[str]
    partitions: dict[str, list[ResolvedPackage]]  # canonical partition name -> sorted packages
    features: list[str]  # selected implicit IDs (incl. skipped Microsoft ones)
    fms: list[str]  # FMs used, in order
    skipped: list[Skipped]
    warnings: list[str]
    device_layout: ResolvedPackage | None = None
    device_platform: ResolvedPackage | None = None

    def packages(self) -> list[ResolvedPackage]:
        return [p for pkgs in self.partitions.values() for p in pkgs]

    def to_json(self) -> dict:
        return {
            "oeminput": self.oeminput,
            "cpu": self.cpu,
            "soc": self.soc,
            "device": self.device,
            "sv": self.sv,
            "release_type": self.release_type,
            "build_type": self.build_type,
            "ui_languages": self.ui_languages,
            "resolutions": self.resolutions,
            "features": self.features,
            "fms": self.fms,
            "device_layout": self.device_layout.to_json() if self.device_layout else None,
            "device_platform": self.device_platform.to_json() if self.device_platform else None,
            "partitions": {k: [p.to_json() for p in v] for k, v in self.partitions.items()},
            "skipped": [s.to_json() for s in self.skipped],
            "warnings": list(self.warnings),
        }


# ------------------------------------------------------------------------------ variables


def image_variables(
    variables: Mapping[str, str] | None, cpu: str, build_type: str = "fre", ms_root: Path | str | None = None
) -> Variables:
    """The variable map FMs are expanded with: `$(cputype)`, `$(buildtype)` and, with a
    Microsoft package root (the MSPackages directory), `$(mspackageroot)`,
    `%MSPKG_DIR%` = <root>/Retail/<cpu>/<buildtype> and `%AKROOT%` = the root's parent (the kit
    root holding FMFiles/). Explicit `variables` win."""
    derived = {"cputype": cpu, "_cputype": cpu, "buildtype": build_type}
    if ms_root is not None:
        root = str(ms_root)
        derived.update(
            {
                "mspackageroot": root,
                "MSPKG_DIR": str(Path(root) / "Retail" / cpu / build_type),
                "AKROOT": str(Path(root).parent),
            }
        )
    return Variables(derived, variables)


def canon_cpu(cpu: str) -> str:
    c = normalize_cpu(cpu)
    if c is None:
        raise FFUError(f"CPU {cpu!r} is not one of arm, arm64, x86, amd64")
    return c


# ------------------------------------------------------------------------------- resolver


class _Partitions:
    def __init__(self, warnings: list[str]):
        self.names: dict[str, str] = {}
        self.warnings = warnings

    def canon(self, name: str, where: str) -> str:
        k = fold(name)
        if k not in self.names:
            self.names[k] = name
        elif self.names[k] != name:
            self.warnings.append(
                f"{where}: partition {name!r} differs in case from {self.names[k]!r} (same partition)"
            )
        return self.names[k]


class _Resolver:
    def __init__(
        self,
        oi: OEMInput,
        cpu: str,
        variables: Variables,
        ms_root,
        top: Path,
        fms,
        extra_fms,
        available,
        partition_of,
        files_of,
    ):
        self.oi = oi
        self.cpu = cpu
        self.vars = variables
        self.ms_root = ms_root
        self.top = top
        self.preloaded = {_key(k): v for k, v in (fms or {}).items()}
        self.extra_fms = list(extra_fms)
        self.available = _available(available)
        self.partition_of = partition_of
        self.files_of = files_of
        self.warnings: list[str] = list(oi.warnings)
        self.skipped: list[Skipped] = []
        self.parts = _Partitions(self.warnings)
        self._warned: set[tuple] = set()

    def warn_once(self, key: tuple, text: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.warnings.append(text)

    def err(self, message: str, line: int | None = None) -> FFUError:
        return FFUError(message, self.oi.file, line)

    # -- FMs
    def load_fms(self) -> list[FeatureManifest]:
        out: list[FeatureManifest] = []
        seen: dict[str, Item] = {}
        own = _key(self.oi.path.resolve()) if self.oi.path else None
        for item in self.oi.additional_fms:
            text, missing = expand(item.value, self.vars)
            if missing:
                if self.ms_root is None and all(is_ms_placeholder(t) for t in missing):
                    self.skipped.append(
                        Skipped(
                            "fm",
                            item.value,
                            f"Microsoft FM (under {missing[0]}); no Microsoft package root given",
                            self.oi.file,
                            item.line,
                        )
                    )
                    continue
                raise self.err(
                    f"AdditionalFM {item.value}: undefined variable {missing[0]}; "
                    "pass it in the build variables",
                    item.line,
                )
            host = paths.resolve(self.top, text)
            k = _key(host)
            if k in seen:
                raise self.err(
                    f"AdditionalFM {item.value} is listed twice (also line {seen[k].line})", item.line
                )
            seen[k] = item
            if own is not None and _key(host.resolve()) == own:
                raise self.err(
                    f"AdditionalFM {item.value} is this OEMInput itself (cyclic reference)", item.line
                )
            if k in self.preloaded:
                out.append(self.preloaded[k])
                continue
            if not host.is_file():
                raise MissingFMError(
                    f"AdditionalFM {item.value}: cannot read {host}: no such file", self.oi.file, item.line
                )
            try:
                out.append(fmmod.load_fm(host, str(host)))
            except FFUError as exc:
                raise self.err(f"AdditionalFM {item.value} is unusable: {exc}", item.line) from None
        for extra in self.extra_fms:
            if isinstance(extra, FeatureManifest):
                out.append(extra)
            else:
                out.append(fmmod.load_fm(extra, str(extra)))
        check_groups(out)
        return out

    # -- features
    def select_features(self, fms: list[FeatureManifest]) -> dict[str, str]:
        oi = self.oi
        defined: dict[str, tuple[str, FeatureManifest]] = {}
        for f in fms:
            for k, spelled in f.implicit_ids().items():
                defined.setdefault(k, (spelled, f))
        self.defined = defined
        selected: dict[str, str] = {}  # folded -> spelled
        rel = oi.release_type.value
        selected[fold("RELEASE_" + rel.upper())] = "RELEASE_" + rel.upper()
        for prefix, item in (("SOC_", oi.soc), ("SV_", oi.sv), ("DEVICE_", oi.device)):
            if item is not None:
                selected[fold(prefix + item.value)] = prefix + item.value
        selected[fold("BASE")] = "BASE"
        self.active: dict[str, str] = {}  # features whose packages are added
        fms_skipped = [s for s in self.skipped if s.kind == "fm"]
        for item in oi.oem_features:
            iid = input_implicit_id("OEM", item.value)
            hit = defined.get(fold(iid))
            if hit is None:
                if fms_skipped:
                    self.skipped.append(
                        Skipped(
                            "feature",
                            iid,
                            "OEM feature not defined by the loaded FMs; it may "
                            "come from a skipped Microsoft FM ("
                            f"{', '.join(s.name for s in fms_skipped)})",
                            oi.file,
                            item.line,
                        )
                    )
                    selected[fold(iid)] = iid
                    continue
                raise self.err(self.unknown_message("OEM", item.value, iid, fms), item.line)
            if hit[0] != iid:
                self.warnings.append(
                    str(
                        FFUError(
                            f"OEM feature {item.value} matches FM feature {hit[0]} "
                            f"({hit[1].file}) only case-insensitively",
                            oi.file,
                            item.line,
                        )
                    )
                )
            selected[fold(iid)] = hit[0]
            self.active[fold(iid)] = hit[0]
        for item in oi.ms_features:
            iid = input_implicit_id("Microsoft", item.value)
            selected[fold(iid)] = iid
            if self.ms_root is None:
                self.skipped.append(
                    Skipped(
                        "feature",
                        iid,
                        "Microsoft feature; no Microsoft package root (MSPACKAGE) given",
                        oi.file,
                        item.line,
                    )
                )
                continue
            hit = defined.get(fold(iid))
            if hit is None:
                raise self.err(self.unknown_message("Microsoft", item.value, iid, fms), item.line)
            selected[fold(iid)] = hit[0]
            self.active[fold(iid)] = hit[0]
        return selected

    def unknown_message(self, owner: str, value: str, iid: str, fms: list[FeatureManifest]) -> str:
        tag = "OEM" if owner == "OEM" else "Microsoft"
        prefix = "OEM_" if owner == "OEM" else "MS_"
        msg = f"unknown {tag} feature {value} (implicit ID {iid}): no referenced FM defines it"
        if value.upper().startswith(prefix) and fold(value) in self.defined:
            msg += (
                f"; the FM feature {self.defined[fold(value)][0]} is selected by "
                f"<Feature>{value[len(prefix) :]}</Feature> (the OEMInput side always adds {prefix})"
            )
        else:
            names = sorted(
                {
                    spelled[len(prefix) :] if spelled.upper().startswith(prefix) else spelled
                    for spelled, _ in self.defined.values()
                    if spelled.upper().startswith(prefix)
                }
            )
            close = difflib.get_close_matches(value, names, n=1, cutoff=0.75)
            if close:
                msg += f"; did you mean {close[0]}?"
        if not fms:
            msg += " (no FMs were loaded)"
        else:
            msg += f" (searched {len(fms)} FMs: {', '.join(Path(f.file).name for f in fms)})"
        return msg

    def check_constraints(self, fms: list[FeatureManifest], selected: dict[str, str]) -> None:
        lines = {
            fold(input_implicit_id(o, it.value)): it.line
            for o, items in (("OEM", self.oi.oem_features), ("Microsoft", self.oi.ms_features))
            for it in items
        }
        for f in fms:
            for top in f.groups:
                for g in top.walk():
                    if g.constraint == "ZeroOrMore":
                        continue
                    hits = [fid for fid in g.feature_ids if fold(fid) in selected]
                    label = (
                        f"FeatureGroup {g.name + ' ' if g.name else ''}({g.constraint}: "
                        f"{', '.join(g.feature_ids)}) at {f.file}:{g.line}"
                    )
                    if g.constraint in REQUIRED and not hits:
                        raise self.err(f"{label} needs one of its features selected; none is", self.oi.line)
                    if g.constraint in EXCLUSIVE and len(hits) > 1:
                        line = next((lines[fold(h)] for h in hits if fold(h) in lines), self.oi.line)
                        raise self.err(f"features {' and '.join(hits)} are mutually exclusive: {label}", line)

    def check_conditionals(self, fms: list[FeatureManifest]) -> None:
        for f in fms:
            for c in f.conditional_features:
                if fold(c.feature_id) in self.defined:
                    continue
                if c.feature_id.upper().startswith("MS_") and self.ms_root is None:
                    self.skipped.append(
                        Skipped(
                            "feature",
                            c.feature_id,
                            "conditional Microsoft feature not checked; no Microsoft package root given",
                            f.file,
                            c.line,
                        )
                    )
                    continue
                raise FFUError(
                    f"ConditionalFeature {c.feature_id} is defined, but no FM of this image defines the "
                    "feature itself (imaging would fail: 'the corresponding Feature is missing')",
                    f.file,
                    c.line,
                )

    # -- packages
    def section_reasons(self, f: FeatureManifest, p: PackageFile) -> list[str] | None:
        oi = self.oi
        s = p.section
        if s == "BasePackages":
            return ["base"]
        if s in ("Microsoft", "OEM"):
            hits = [self.active[fold(i)] for i in p.implicit_ids() if fold(i) in self.active]
            return [f"feature {h}" for h in dict.fromkeys(hits)] or None
        if s in ("SOCPackages", "DeviceLayoutPackages"):
            if not self.match(f, p, oi.soc.value, "SOC"):
                return None
            return [f"SOC {oi.soc.value}" if s == "SOCPackages" else f"device layout {oi.soc.value}"]
        if s in ("DeviceSpecificPackages", "OEMDevicePlatformPackages"):
            if not self.match(f, p, oi.device.value, "Device"):
                return None
            return [
                f"device {oi.device.value}"
                if s == "DeviceSpecificPackages"
                else f"device platform {oi.device.value}"
            ]
        if s == "SVPackages":
            if oi.sv is None or not self.match(f, p, oi.sv.value, "SV"):
                return None
            return [f"SV {oi.sv.value}"]
        if s == "ReleasePackages":
            return [f"release {p.selector}"] if p.selector == oi.release_type.value else None
        if s == "PrereleasePackages":
            want = "replacement" if oi.exclude_prerelease_features else "protected"
            return [f"prerelease {p.selector}"] if p.selector == want else None
        if s == "CPUPackages":
            return [f"CPU {self.cpu}"] if normalize_cpu(p.selector or "") == self.cpu else None
        if s in ("KeyboardPackages", "SpeechPackages"):
            langs = [
                i.value for i in (oi.keyboard_languages if s == "KeyboardPackages" else oi.speech_languages)
            ]
            flt = p.language or fmmod.Filter("all")
            ok, hits = flt.select(langs)
            if not ok or not hits:
                return None
            return [f"{'keyboard' if s == 'KeyboardPackages' else 'speech'} {';'.join(hits)}"]
        if s == "BootUILanguagePackageFile":
            return [f"boot UI language {oi.boot_ui_language.value}"]
        if s == "BootLocalePackageFile":
            return [f"boot locale {oi.boot_locale.value}"]
        raise AssertionError(s)

    def match(self, f: FeatureManifest, p: PackageFile, value: str, what: str) -> bool:
        if not same(p.selector, value):
            return False
        if p.selector != value:
            self.warn_once(
                (f.file, p.line),
                f"{f.file}:{p.line}: {what}={p.selector!r} of package {p.name} "
                f"matches the OEMInput's {value!r} only case-insensitively",
            )
        return True

    def filter_reasons(self, p: PackageFile) -> list[str] | None:
        oi = self.oi
        extra: list[str] = []
        if p.cpu_type is not None and p.section != "CPUPackages":
            if normalize_cpu(p.cpu_type) != self.cpu:
                return None
            extra.append(f"CPU {self.cpu}")
        if p.language is not None and p.section not in ("KeyboardPackages", "SpeechPackages"):
            ok, hits = p.language.select([i.value for i in oi.ui_languages])
            if not ok:
                return None
            if p.language.kind == "only":
                for h in hits:
                    if h not in p.language.items:
                        spelled = next(x for x in p.language.items if fold(x) == fold(h))
                        self.warn_once(
                            ("lang", p.name, h),
                            f"language {h} of the OEMInput matches {spelled} in "
                            f"Language={p.language} of package {p.name} only case-insensitively",
                        )
            extra.append(f"language {';'.join(hits) if hits else p.language}")
        if p.resolution is not None:
            ok, hits = p.resolution.select([i.value for i in oi.resolutions])
            if not ok:
                return None
            extra.append(f"resolution {';'.join(hits) if hits else p.resolution}")
        return extra

    def run(self) -> Resolution:
        oi = self.oi
        fms = self.load_fms()
        selected = self.select_features(fms)
        self.check_constraints(fms, selected)
        self.check_conditionals(fms)
        self.by_key: dict[str, ResolvedPackage] = {}
        self.by_name: dict[str, ResolvedPackage] = {}
        layout: dict[str, ResolvedPackage] = {}
        platform: dict[str, ResolvedPackage] = {}
        skipped_layout: list[str] = []
        skipped_platform: list[str] = []
        unmerged: list[str] = []
        for f in fms:
            used = False
            for p in f.packages:
                reasons = self.section_reasons(f, p)
                if reasons is None:
                    continue
                more = self.filter_reasons(p)
                if more is None:
                    continue
                reasons += more
                rp = self.add_fm_package(f, p, reasons)
                used = True
                if rp is None:
                    if p.section == "DeviceLayoutPackages":
                        skipped_layout.append(p.name)
                    elif p.section == "OEMDevicePlatformPackages":
                        skipped_platform.append(p.name)
                    continue
                if p.fip:
                    continue  # a FIP identifies the layout/platform group; it is not the layout
                if p.section == "DeviceLayoutPackages":
                    layout.setdefault(_key(rp.path), rp)
                elif p.section == "OEMDevicePlatformPackages":
                    platform.setdefault(_key(rp.path), rp)
            if used and f.packages and not any(p.fip for p in f.packages):
                unmerged.append(f.file)
        for item in oi.package_files:
            self.add_input_package(item)
        dl = self.one_of(
            layout, skipped_layout, "device layout", "DeviceLayout", "SOC", oi.soc, "DeviceLayoutPackages"
        )
        dp = self.one_of(
            platform,
            skipped_platform,
            "device platform",
            "OEMDevicePlatform",
            "Device",
            oi.device,
            "OEMDevicePlatformPackages",
        )
        for fname in unmerged:
            self.warnings.append(
                f"{fname}: FM has no feature identifier packages (not merged by FeatureMerger or "
                "ffuforge merge); ImageApp rejects CBS features without a FIP"
            )
        self.check_available()
        self.check_files()
        self.image_warnings(fms)
        partitions: dict[str, list[ResolvedPackage]] = {}
        for rp in self.by_key.values():
            partitions.setdefault(rp.partition, []).append(rp)
        for v in partitions.values():
            v.sort(key=lambda r: (r.name.casefold(), str(r.path)))
        partitions = dict(sorted(partitions.items(), key=lambda kv: kv[0].casefold()))
        return Resolution(
            oeminput=oi.file,
            cpu=self.cpu,
            soc=oi.soc.value,
            device=oi.device.value,
            sv=oi.sv.value if oi.sv else None,
            release_type=oi.release_type.value,
            build_type=oi.build_type.value,
            ui_languages=[i.value for i in oi.ui_languages],
            resolutions=[i.value for i in oi.resolutions],
            partitions=partitions,
            features=sorted(selected.values(), key=str.casefold),
            fms=[f.file for f in fms],
            skipped=self.skipped,
            warnings=self.warnings,
            device_layout=dl,
            device_platform=dp,
        )

    def one_of(
        self,
        found: dict[str, ResolvedPackage],
        skipped: list[str],
        kind: str,
        what: str,
        attr: str,
        item: Item,
        section: str,
    ) -> ResolvedPackage | None:
        if len(found) == 1:
            return next(iter(found.values()))
        if len(found) > 1:
            cands = "; ".join(f"{r.name} ({r.fm}:{r.line})" for r in found.values())
            raise self.err(
                f"{len(found)} {what} packages match {attr} {item.value}, exactly one is allowed: {cands}",
                item.line,
            )
        fms_skipped = [s.name for s in self.skipped if s.kind == "fm"]
        if skipped or fms_skipped:
            why = (
                f"its package {skipped[0]} is a Microsoft package"
                if skipped
                else f"not in the loaded FMs; it may come from a skipped Microsoft FM ({', '.join(fms_skipped)})"
            )
            self.skipped.append(Skipped(kind, f"{attr} {item.value}", why, self.oi.file, item.line))
            return None
        raise self.err(
            f"no {what} package for {attr} {item.value}: no <{section}> entry in the FMs has "
            f'{attr}="{item.value}"; exactly one is required',
            item.line,
        )

    def add_fm_package(
        self, f: FeatureManifest, p: PackageFile, reasons: list[str]
    ) -> ResolvedPackage | None:
        path_text, m1 = expand(p.path, self.vars)
        name_text, m2 = expand(p.name, self.vars)
        missing = m1 + m2
        if missing:
            if self.ms_root is None and all(is_ms_placeholder(t) for t in missing):
                self.skipped.append(
                    Skipped(
                        "package",
                        _package_name(p, name_text),
                        f"Microsoft package ({', '.join(reasons)}; under {missing[0]}); "
                        "no Microsoft package root given",
                        f.file,
                        p.line,
                    )
                )
                return None
            raise FFUError(
                f"undefined variable {missing[0]} in the path of {_msg_pkg(p)}; "
                "pass it in the build variables",
                f.file,
                p.line,
            )
        host = paths.resolve(self.top, _join(path_text, name_text))
        where = f"{f.file}:{p.line}" if p.line else f.file
        partition = p.partition
        if partition is None:
            partition = (self.partition_of(host) if self.partition_of else None) or DEFAULT_PARTITION
        return self.add(
            host,
            _package_name(p, host.name),
            partition,
            reasons,
            f.file,
            p.line,
            p.fip,
            where,
            explicit=p.partition is not None,
        )

    def add_input_package(self, item: Item) -> None:
        text, missing = expand(item.value, self.vars)
        if missing:
            if self.ms_root is None and all(is_ms_placeholder(t) for t in missing):
                self.skipped.append(
                    Skipped(
                        "package",
                        item.value,
                        "Microsoft package (OEMInput PackageFile); no Microsoft package root given",
                        self.oi.file,
                        item.line,
                    )
                )
                return
            raise self.err(
                f"PackageFile {item.value}: undefined variable {missing[0]}; pass it in the build variables",
                item.line,
            )
        if self.oi.release_type.value == "Production":
            self.warnings.append(
                str(
                    FFUError(
                        f"<PackageFile>{item.value}</PackageFile> in a Production image; "
                        "OEMInput PackageFiles are for pre-retail images only",
                        self.oi.file,
                        item.line,
                    )
                )
            )
        host = paths.resolve(self.top, text)
        partition = (self.partition_of(host) if self.partition_of else None) or DEFAULT_PARTITION
        self.add(
            host,
            re.sub(r"\.(cab|spkg)$", "", host.name, flags=re.IGNORECASE),
            partition,
            ["OEMInput PackageFile"],
            self.oi.file,
            item.line,
            False,
            f"{self.oi.file}:{item.line}",
            explicit=False,
        )

    def add(
        self,
        host: Path,
        name: str,
        partition: str,
        reasons: list[str],
        file: str,
        line,
        fip: bool,
        where: str,
        explicit: bool,
    ) -> ResolvedPackage:
        k = _key(host)
        rp = self.by_key.get(k)
        if rp is not None:
            for r in reasons:
                if r not in rp.reasons:
                    rp.reasons.append(r)
            if where not in rp.sources:
                rp.sources.append(where)
            if explicit and fold(partition) != fold(rp.partition):
                raise FFUError(
                    f"package {name} is assigned to partition {partition} here but to {rp.partition} at "
                    f"{rp.sources[0]}",
                    file,
                    line,
                )
            rp.fip = rp.fip or fip
            return rp
        other = self.by_name.get(fold(name))
        if other is not None:
            raise FFUError(
                f"package {name} is listed twice with different paths: {host} ({', '.join(reasons)}) and "
                f"{other.path} ({', '.join(other.reasons)}, {other.sources[0]})",
                file,
                line,
            )
        rp = ResolvedPackage(
            host, name, self.parts.canon(partition, where), list(reasons), file, line, fip, [where]
        )
        self.by_key[k] = rp
        self.by_name[fold(name)] = rp
        return rp

    def check_available(self) -> None:
        missing = [rp for rp in self.by_key.values() if not self.available(rp.path)]
        if missing:
            rp = missing[0]
            more = f" (and {len(missing) - 1} more missing)" if len(missing) > 1 else ""
            raise FFUError(
                f"missing package {rp.path} (package {rp.name}, {', '.join(rp.reasons)}); build it or fix "
                f"the FM{more}",
                rp.fm,
                rp.line,
            )

    def check_files(self) -> None:
        if self.files_of is None:
            return
        owners: dict[tuple[str, str], ResolvedPackage] = {}
        for rp in sorted(self.by_key.values(), key=lambda r: (r.name.casefold(), str(r.path))):
            for dest in self.files_of(rp.path) or ():
                k = (fold(rp.partition), fold(dest.replace("/", "\\")))
                prev = owners.get(k)
                if prev is not None and prev is not rp:
                    raise FFUError(
                        f"packages {prev.name} ({', '.join(prev.reasons)}, {prev.sources[0]}) and "
                        f"{rp.name} ({', '.join(rp.reasons)}) both install {dest} on partition "
                        f"{rp.partition}",
                        rp.fm,
                        rp.line,
                    )
                owners[k] = rp

    def image_warnings(self, fms: list[FeatureManifest]) -> None:
        oi = self.oi
        if oi.release_type.value != "Production":
            return
        for item in oi.ms_features:
            if item.value.upper() in DEV_FEATURES:
                self.warnings.append(
                    str(FFUError(f"developer feature {item.value} in a Production image", oi.file, item.line))
                )
        for item in oi.additional_fms:
            if item.value.replace("/", "\\").split("\\")[-1].casefold() == NONPRODUCTION_FM:
                self.warnings.append(
                    str(
                        FFUError(
                            f"{item.value} (test features) is referenced by a Production image",
                            oi.file,
                            item.line,
                        )
                    )
                )


def _image_checks(oi: OEMInput) -> list[str]:
    out = []
    for item in oi.ms_features:
        if item.value.upper() in DEPRECATED_FEATURES:
            out.append(str(FFUError(f"feature {item.value} is deprecated", oi.file, item.line)))
    return out


def _expand_item(item: Item, vars_: Variables, what: str, file: str) -> Item:
    text, missing = expand(item.value, vars_)
    if missing:
        raise FFUError(
            f"<{what}>{item.value}</{what}>: undefined variable {missing[0]}; define it in the "
            "build variables",
            file,
            item.line,
        )
    return Item(text, item.line)


def resolve(
    oeminput: OEMInput | str | Path,
    *,
    cpu: str,
    variables: Mapping[str, str] | None = None,
    ms_root: str | Path | None = None,
    top: str | Path | None = None,
    fms: Mapping[str | Path, FeatureManifest] | None = None,
    extra_fms: Sequence[str | Path | FeatureManifest] = (),
    available: Available = None,
    partition_of: PartitionOf = None,
    files_of: Callable[[Path], Iterable[str] | None] | None = None,
) -> Resolution:
    """Resolve an OEMInput to its package set.

    cpu: arm|arm64|x86|amd64. variables: %VAR%/$(var) values (OEMInput and FM placeholders:
    BLD_DIR, PKGBLD_DIR, OEM_NAME, BSPPKG_DIR, ...). ms_root: the Microsoft package root
    (MSPackages); without it Microsoft features/FMs/packages are reported in `skipped`.
    top: base of relative paths (default: the current directory). fms: FMs already in memory
    (e.g. `merge(..., write=False)` output), keyed by the host path an AdditionalFM resolves to.
    extra_fms: FMs implied by the product (the edition FM). available: which CABs exist or will
    be built (None: on disk; a collection of paths; or a callable). partition_of: target
    partition of a CAB without Partition= (None/returns None: MainOS). files_of: device paths a
    CAB installs, to refuse two packages claiming the same file.
    """
    cpu_c = canon_cpu(cpu)
    top_p = Path(top) if top is not None else Path(".")
    if isinstance(oeminput, OEMInput):
        oi = oeminput
    else:
        oi = oimod.load(oeminput, str(oeminput), variables=Variables(variables))
    user_vars = Variables(variables)
    bt = _expand_item(oi.build_type, user_vars, "BuildType", oi.file)
    if bt.value.lower() not in oimod.BUILD_TYPES:
        raise FFUError(f"<BuildType>{bt.value}</BuildType> must be fre or chk", oi.file, bt.line)
    rel = _expand_item(oi.release_type, user_vars, "ReleaseType", oi.file)
    canon = fmmod.RELEASE_TYPES.get(rel.value.lower())
    if canon is None:
        raise FFUError(
            f"<ReleaseType>{rel.value}</ReleaseType> must be Test or Production", oi.file, rel.line
        )
    oi = replace(
        oi,
        build_type=Item(bt.value.lower(), bt.line),
        release_type=Item(canon, rel.line),
        soc=_expand_item(oi.soc, user_vars, "SOC", oi.file),
        device=_expand_item(oi.device, user_vars, "Device", oi.file),
    )
    vars_ = image_variables(variables, cpu_c, oi.build_type.value, ms_root)
    r = _Resolver(oi, cpu_c, vars_, ms_root, top_p, fms, extra_fms, available, partition_of, files_of)
    r.warnings.extend(_image_checks(oi))
    return r.run()


# ------------------------------------------------------------------------------- merging


@dataclass(frozen=True)
class FIP:
    """A feature identifier package FeatureMerger generates (to be built as a CBS CAB)."""

    name: str  # <Owner>.<ImplicitID>.<FM ID>.<Partition>
    partition: str
    feature_ids: tuple[str, ...]  # implicit IDs it identifies
    group: str  # implicit ID used in the name: BASE, OEM_X, DEVICELAYOUT_<SOC>, ...
    section: str  # FM section the FIP is listed in
    selector: str | None  # SOC / Device / ReleaseType ... of that section
    owner: str
    owner_type: str
    fm_id: str
    fm_file: str
    version: str
    cpu: str
    release_type: str
    cab: Path

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "partition": self.partition,
            "feature_ids": list(self.feature_ids),
            "group": self.group,
            "section": self.section,
            "selector": self.selector,
            "owner": self.owner,
            "owner_type": self.owner_type,
            "fm_id": self.fm_id,
            "fm_file": self.fm_file,
            "version": self.version,
            "cpu": self.cpu,
            "release_type": self.release_type,
            "cab": str(self.cab),
        }


_NAME_BAD = re.compile(r"[^A-Za-z0-9_.\-]")


def default_fip_name(owner: str, implicit_id: str, fm_id: str, partition: str) -> str:
    """`<OwnerName>.<ImplicitID>.<FM ID>.<Partition>` (observed: TESTNAME.BASE.OEMCOMMON.MainOS)."""
    return ".".join(_NAME_BAD.sub("_", x) for x in (owner, implicit_id, fm_id, partition))


@dataclass(frozen=True)
class MergeSettings:
    cpu: str  # arm | arm64 | x86 | amd64
    out_pkg_dir: Path  # where FIP CABs go (FeatureMerger <OutPkgDir>)
    version: str = "10.0.0.0"  # FIP version (FeatureMerger <Version>)
    variables: Mapping[str, str] = field(default_factory=dict)  # PKGBLD_DIR, OEM_NAME, BSPPKG_DIR, ...
    owner_name: str | None = None  # replaces the bare OEM_NAME token (default: OEM_NAME variable)
    fm_dirs: tuple[Path, ...] = ()  # $(FMDirectory) search path (default: the FMFileList's dir)
    ms_root: Path | None = None
    top: Path = Path(".")
    build_type: str = "fre"
    package_root_replacement: str | None = None  # /MergePackageRootReplacement: replaces out_pkg_dir in paths


@dataclass
class MergedFM:
    entry: FMEntry
    source: Path
    fm: FeatureManifest  # expanded, FIPs added (file/lines of the source FM)
    fips: list[FIP]
    xml: bytes
    digest: str  # of every input of this merge
    out_path: Path | None = None
    remerged: bool = True  # False: the existing merged file already had this digest


@dataclass
class MergeResult:
    fmfilelist: str
    merged: list[MergedFM]
    skipped: list[Skipped]
    warnings: list[str]

    @property
    def fips(self) -> list[FIP]:
        return [f for m in self.merged for f in m.fips]

    def by_path(self) -> dict[Path, FeatureManifest]:
        """{merged FM path: FM} for `resolve(fms=...)`."""
        return {m.out_path: m.fm for m in self.merged if m.out_path is not None}


_DIGEST_RE = re.compile(rb"ffuforge-merge sha256=([0-9a-f]{64})")


def _fip_groups(p: PackageFile) -> list[tuple[str, str | None]]:
    s, sel = p.section, p.selector
    if s == "BasePackages":
        return [("BASE", None)]
    if s in ("Microsoft", "OEM"):
        return [(i, None) for i in p.implicit_ids()]
    table = {
        "DeviceLayoutPackages": lambda v: "DEVICELAYOUT_" + v.upper(),
        "OEMDevicePlatformPackages": lambda v: "OEMDEVICEPLATFORM_" + v.upper(),
        "DeviceSpecificPackages": lambda v: "DEVICE_" + v,
        "SOCPackages": lambda v: "SOC_" + v,
        "SVPackages": lambda v: "SV_" + v,
        "ReleasePackages": lambda v: "RELEASE_" + v.upper(),
        "PrereleasePackages": lambda v: "PRERELEASE_" + v.upper(),
        "CPUPackages": lambda v: "CPU_" + v.upper(),
    }
    if s in table and sel:
        return [(table[s](sel), sel)]
    return []  # keyboard / speech / boot language packages: no FIP (Microsoft internal)


def _locate_fm(fl: FMFileList, entry: FMEntry, settings: MergeSettings) -> Path:
    base = fl.path.parent if fl.path else Path(".")
    raw = entry.path.strip()
    m = re.match(r"^\$\(FMDirectory\)[\\/]*", raw, flags=re.IGNORECASE)
    if m:
        rest = raw[m.end() :]
        rest, missing = expand(rest, settings.variables)
        if missing:
            raise FFUError(
                f"FM {entry.id}: undefined variable {missing[0]} in Path={raw!r}", fl.file, entry.line
            )
        dirs = list(settings.fm_dirs) or [base]
        for d in dirs:
            cand = paths.resolve(Path(d), rest)
            if cand.is_file():
                return cand
        raise MissingFMError(
            f"FM {entry.id}: {raw} not found in $(FMDirectory) = {', '.join(str(d) for d in dirs)}",
            fl.file,
            entry.line,
        )
    text, missing = expand(raw, settings.variables)
    if missing:
        raise FFUError(f"FM {entry.id}: undefined variable {missing[0]} in Path={raw!r}", fl.file, entry.line)
    cand = paths.resolve(base, text)
    if not cand.is_file():
        raise MissingFMError(f"FM {entry.id}: cannot read {cand}: no such file", fl.file, entry.line)
    return cand


def _entry_cpu(fl: FMFileList, entry: FMEntry, cpu: str) -> None:
    if entry.cpu_type is None:
        return
    raw = entry.cpu_type.strip()
    value = cpu if raw == "CPU_TYPE" else normalize_cpu(raw)
    if value is None:
        raise FFUError(
            f"FM {entry.id}: CPUType={raw!r} is not one of ARM, ARM64, X86, AMD64 (an unfilled template?)",
            fl.file,
            entry.line,
        )
    if value != cpu:
        raise FFUError(
            f"FM {entry.id} is listed for CPUType {raw} but this merge is for {cpu}", fl.file, entry.line
        )


def merge(
    fmfilelist: FMFileList | str | Path,
    settings: MergeSettings,
    *,
    out_fm_dir: str | Path | None = None,
    write: bool = True,
    available: Available = None,
    partition_of: PartitionOf = None,
    fip_name: Callable[[str, str, str, str], str] = default_fip_name,
) -> MergeResult:
    """FeatureMerger <FMFileList> <OutPkgDir> <Version> <OutFMDir> /ConvertToCBS, as data.

    Each FM of the list is loaded from $(FMDirectory) (settings.fm_dirs), its placeholders are
    expanded (Microsoft ones stay when no ms_root is given; those packages are reported in
    `skipped`, not checked), every other CAB must be `available`, and one FIP per feature/group
    and partition is planned unless the group already marks a FeatureIdentifierPackage. With
    `out_fm_dir`, merged FMs get the source's file name there and are written (when `write`)
    only if their input digest changed.
    """
    from ..util import toolsig

    fl = (
        fmfilelist
        if isinstance(fmfilelist, FMFileList)
        else fmmod.load_fmfilelist(fmfilelist, str(fmfilelist))
    )
    cpu = canon_cpu(settings.cpu)
    avail = _available(available)
    vars_ = image_variables(settings.variables, cpu, settings.build_type, settings.ms_root)
    owner_default = settings.owner_name or (vars_["OEM_NAME"] if "OEM_NAME" in vars_ else None)
    result = MergeResult(fl.file, [], [], list(fl.warnings))
    out_dir = Path(out_fm_dir) if out_fm_dir is not None else None
    own = _key(fl.path.resolve()) if fl.path else None
    sources: dict[str, FMEntry] = {}
    outputs: dict[str, FMEntry] = {}
    names: dict[str, tuple[Path, str]] = {}
    loaded: list[tuple[FMEntry, Path, FeatureManifest]] = []
    for entry in fl.fms:
        _entry_cpu(fl, entry, cpu)
        src = _locate_fm(fl, entry, settings)
        k = _key(src.resolve())
        if own is not None and k == own:
            raise FFUError(f"FM {entry.id} is this FMFileList itself (cyclic reference)", fl.file, entry.line)
        if k in sources:
            raise FFUError(
                f"FM {entry.id}: {src} is already listed as FM {sources[k].id} (line {sources[k].line})",
                fl.file,
                entry.line,
            )
        sources[k] = entry
        if fold(src.name) in outputs:
            o = outputs[fold(src.name)]
            raise FFUError(
                f"FMs {o.id} and {entry.id} would both be merged into {src.name}; merged FMs keep their "
                "file name, so FM file names must be unique in an FMFileList",
                fl.file,
                entry.line,
            )
        outputs[fold(src.name)] = entry
        try:
            f = fmmod.load_fm(src, str(src))
        except FFUError as exc:
            raise FFUError(f"FM {entry.id} is unusable: {exc}", fl.file, entry.line) from None
        result.warnings.extend(f.warnings)
        loaded.append((entry, src, f))
    check_groups([f for _, _, f in loaded])
    code = toolsig.fingerprint("features.merge")
    for entry, src, f in loaded:
        owner = entry.owner_name
        if owner is None or owner.strip() == "OEM_NAME":
            owner = owner_default
        else:
            owner, missing = expand(owner, vars_)
            if missing:
                raise FFUError(
                    f"FM {entry.id}: undefined variable {missing[0]} in OwnerName", fl.file, entry.line
                )
        if not owner:
            raise FFUError(
                f"FM {entry.id}: no owner name for its feature identifier packages; set OwnerName= or "
                "the OEM_NAME variable",
                fl.file,
                entry.line,
            )
        result.merged.append(
            _merge_one(
                fl,
                entry,
                src,
                f,
                settings,
                cpu,
                vars_,
                owner,
                avail,
                partition_of,
                fip_name,
                out_dir,
                write,
                code,
                names,
                result,
            )
        )
    return result


def _merge_one(
    fl,
    entry,
    src,
    f,
    settings,
    cpu,
    vars_,
    owner,
    avail,
    partition_of,
    fip_name,
    out_dir,
    write,
    code,
    names,
    result,
) -> MergedFM:
    new_packages: list[PackageFile] = []
    group_parts: dict[tuple[str, str], dict] = {}
    replacement = settings.package_root_replacement
    out_pkg = str(settings.out_pkg_dir).replace("\\", "/")
    for p in f.packages:
        path_text, m1 = expand(p.path, vars_)
        name_text, m2 = expand(p.name, vars_)
        missing = m1 + m2
        ms_left = bool(missing) and all(is_ms_placeholder(t) for t in missing) and settings.ms_root is None
        if missing and not ms_left:
            raise FFUError(
                f"undefined variable {missing[0]} in the path of {_msg_pkg(p)}; pass it in the variables",
                f.file,
                p.line,
            )
        partition = p.partition
        if ms_left:
            result.skipped.append(
                Skipped(
                    "package",
                    _package_name(p, name_text),
                    f"Microsoft package (under {missing[0]}) not checked; no Microsoft package root given",
                    f.file,
                    p.line,
                )
            )
        else:
            host = paths.resolve(settings.top, _join(path_text, name_text))
            if not avail(host):
                raise FFUError(
                    f"Missing package: {host} ({_msg_pkg(p, name_text)}); build it or fix the FM",
                    f.file,
                    p.line,
                )
            other = names.get(fold(host.name))
            if other is not None and _key(other[0]) != _key(host):
                raise FFUError(
                    f"package {host.name} is listed twice with different paths: {host} and {other[0]} "
                    f"({other[1]})",
                    f.file,
                    p.line,
                )
            names.setdefault(fold(host.name), (host, f"{f.file}:{p.line}"))
            if partition is None:
                partition = (partition_of(host) if partition_of else None) or DEFAULT_PARTITION
        emitted = path_text.replace("\\", "/")
        if replacement is not None and emitted.startswith(out_pkg):
            emitted = replacement + emitted[len(out_pkg) :]
        new_packages.append(replace(p, path=emitted, name=name_text))
        for group, sel in _fip_groups(p):
            g = group_parts.setdefault(
                (p.section, fold(group)),
                {"group": group, "sel": sel, "parts": {}, "explicit": False, "ids": []},
            )
            g["explicit"] = g["explicit"] or p.fip
            part = partition or DEFAULT_PARTITION
            g["parts"].setdefault(fold(part), part)
            if p.owner:
                for fid in p.feature_ids:
                    if fold(fm_implicit_id(p.owner, fid)) == fold(group) and fid not in g["ids"]:
                        g["ids"].append(fid)
    fips: list[FIP] = []
    fip_pkgs: list[PackageFile] = []
    fip_dir = replacement if replacement is not None else out_pkg
    for (section, _), g in group_parts.items():
        if g["explicit"]:
            continue
        for part in sorted(g["parts"].values(), key=str.casefold):
            name = fip_name(owner, g["group"], entry.id, part)
            cab = settings.out_pkg_dir / f"{name}.cab"
            fips.append(
                FIP(
                    name,
                    part,
                    (g["group"],),
                    g["group"],
                    section,
                    g["sel"],
                    owner,
                    entry.owner_type or "OEM",
                    entry.id,
                    f.file,
                    settings.version,
                    cpu,
                    entry.release_type or "Production",
                    cab,
                )
            )
            fip_pkgs.append(
                PackageFile(
                    section=section,
                    path=fip_dir,
                    name=f"{name}.cab",
                    line=None,
                    feature_ids=tuple(g["ids"]) if section in ("Microsoft", "OEM") else (),
                    selector=g["sel"],
                    partition=part,
                    fip=True,
                )
            )
    seen_fip: dict[str, FIP] = {}
    for x in fips:
        if fold(x.name) in seen_fip:
            raise FFUError(
                f"two feature identifier packages would be written to {x.cab} (groups "
                f"{seen_fip[fold(x.name)].group} and {x.group}); make the feature IDs differ beyond case "
                "and punctuation",
                f.file,
            )
        seen_fip[fold(x.name)] = x
    merged = fmmod.with_packages(f, new_packages + fip_pkgs, warnings=[])
    used = sorted(
        {
            fmmod.placeholder_name(t).casefold()
            for p in f.packages
            for t in fmmod.placeholders(p.path) + fmmod.placeholders(p.name)
        }
    )
    h = hashlib.sha256()
    for part in (
        code,
        repr(entry),
        src.read_bytes().hex(),
        cpu,
        settings.version,
        owner,
        repr([(k, vars_[k] if k in vars_ else None) for k in used]),
        out_pkg,
        repr(replacement),
        getattr(fip_name, "__qualname__", repr(fip_name)),
        repr([(p.name, p.partition) for p in merged.packages]),
    ):
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    digest = h.hexdigest()
    xml = fmmod.write_fm(
        merged, comment=f"merged by ffuforge from {src.name} (FM {entry.id}); ffuforge-merge sha256={digest}"
    )
    out_path = out_dir / src.name if out_dir is not None else None
    remerged = True
    if out_path is not None:
        try:
            with open(out_path, "rb") as fh:
                m = _DIGEST_RE.search(fh.read(4096))
            remerged = not (m and m.group(1).decode() == digest)
        except OSError:
            remerged = True
        if remerged and write:
            from ..util.atomic import write_bytes

            write_bytes(out_path, xml)
    return MergedFM(entry, src, merged, fips, xml, digest, out_path, remerged)
