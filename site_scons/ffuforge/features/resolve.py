"""ImageApp's package-set resolution as a pure function (no SCons).

`resolve(oeminput, ...)` — OEMInput + FMs (+ optional Microsoft package root) -> the exact
package set per partition with the reason each package is in. Without a Microsoft package root,
Microsoft features, FMs and packages are reported as skipped, never silently dropped.
Feature selection is in :mod:`.selection`; here the selected features become packages.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from ..errors import ConfigError, FFUError
from ..util import paths
from . import fm as fmmod
from . import oeminput as oimod
from .fm import FeatureManifest, PackageFile, Variables, expand, fold, is_ms_placeholder, normalize_cpu, same
from .model import (
    DEFAULT_PARTITION,
    Available,
    PartitionOf,
    Resolution,
    ResolvedPackage,
    Skipped,
    canon_cpu,
    image_variables,
    join,
    key,
    msg_pkg,
    package_name,
)
from .oeminput import Item, OEMInput
from .selection import FeatureSelector

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


class _Resolver(FeatureSelector):
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
                    layout.setdefault(key(rp.path), rp)
                elif p.section == "OEMDevicePlatformPackages":
                    platform.setdefault(key(rp.path), rp)
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
                        package_name(p, name_text),
                        f"Microsoft package ({', '.join(reasons)}; under {missing[0]}); "
                        "no Microsoft package root given",
                        f.file,
                        p.line,
                    )
                )
                return None
            raise ConfigError(
                f"undefined variable {missing[0]} in the path of {msg_pkg(p)}; "
                "pass it in the build variables",
                f.file,
                p.line,
            )
        host = paths.resolve(self.top, join(path_text, name_text))
        where = f"{f.file}:{p.line}" if p.line else f.file
        partition = p.partition
        if partition is None:
            partition = (self.partition_of(host) if self.partition_of else None) or DEFAULT_PARTITION
        return self.add(
            host,
            package_name(p, host.name),
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
        k = key(host)
        rp = self.by_key.get(k)
        if rp is not None:
            for r in reasons:
                if r not in rp.reasons:
                    rp.reasons.append(r)
            if where not in rp.sources:
                rp.sources.append(where)
            if explicit and fold(partition) != fold(rp.partition):
                raise ConfigError(
                    f"package {name} is assigned to partition {partition} here but to {rp.partition} at "
                    f"{rp.sources[0]}",
                    file,
                    line,
                )
            rp.fip = rp.fip or fip
            return rp
        other = self.by_name.get(fold(name))
        if other is not None:
            raise ConfigError(
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
            raise ConfigError(
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
                    raise ConfigError(
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
        raise ConfigError(
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
        raise ConfigError(f"<BuildType>{bt.value}</BuildType> must be fre or chk", oi.file, bt.line)
    rel = _expand_item(oi.release_type, user_vars, "ReleaseType", oi.file)
    canon = fmmod.RELEASE_TYPES.get(rel.value.lower())
    if canon is None:
        raise ConfigError(
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
