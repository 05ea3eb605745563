"""FeatureMerger as a pure function (no SCons).

`merge(fmfilelist, settings)` — what FeatureMerger does for an FMFileList in IoT /ConvertToCBS
mode: resolve every FM's placeholders, check each referenced CAB exists (or will be built),
plan one feature identifier package (FIP) per feature/group and partition, and produce merged
FMs (same file name) that reference the original packages plus the FIPs. An FM whose inputs
did not change is not re-merged (its merged file carries a digest of its inputs).
The resolver that reads merged FMs is :mod:`.resolve`; what both share is in :mod:`.model`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import ConfigError, FFUError
from ..util import paths
from . import fm as fmmod
from .fm import (
    FeatureManifest,
    FMEntry,
    FMFileList,
    PackageFile,
    check_groups,
    expand,
    fm_implicit_id,
    fold,
    is_ms_placeholder,
    normalize_cpu,
)
from .model import (
    DEFAULT_PARTITION,
    Available,
    MissingFMError,
    PartitionOf,
    Skipped,
    availability,
    canon_cpu,
    image_variables,
    join,
    key,
    msg_pkg,
    package_name,
)


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


def fm_search_path(fmfilelist: str | Path, fm_dirs: Sequence[str | Path] = ()) -> tuple[Path, ...]:
    """$(FMDirectory) for one FMFileList: the given folders (FeatureMerger's /InputFMDir), in order,
    then the FMFileList's own folder (where BSP kits keep their FMs). Shared by `ffuforge features
    --fm-dir` and `env.FeatureMerge(FM_DIR=)` so both find the same FM."""
    own = Path(fmfilelist).parent
    out: list[Path] = []
    for d in (*fm_dirs, own):
        p = Path(d)
        if p not in out:
            out.append(p)
    return tuple(out)


def _locate_fm(fl: FMFileList, entry: FMEntry, settings: MergeSettings) -> Path:
    base = fl.path.parent if fl.path else Path(".")
    raw = entry.path.strip()
    m = re.match(r"^\$\(FMDirectory\)[\\/]*", raw, flags=re.IGNORECASE)
    if m:
        rest = raw[m.end() :]
        rest, missing = expand(rest, settings.variables)
        if missing:
            raise ConfigError(
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
        raise ConfigError(
            f"FM {entry.id}: undefined variable {missing[0]} in Path={raw!r}", fl.file, entry.line
        )
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
        raise ConfigError(
            f"FM {entry.id}: CPUType={raw!r} is not one of ARM, ARM64, X86, AMD64 (an unfilled template?)",
            fl.file,
            entry.line,
        )
    if value != cpu:
        raise ConfigError(
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
    avail = availability(available)
    vars_ = image_variables(settings.variables, cpu, settings.build_type, settings.ms_root)
    owner_default = settings.owner_name or (vars_["OEM_NAME"] if "OEM_NAME" in vars_ else None)
    result = MergeResult(fl.file, [], [], list(fl.warnings))
    out_dir = Path(out_fm_dir) if out_fm_dir is not None else None
    own = key(fl.path.resolve()) if fl.path else None
    sources: dict[str, FMEntry] = {}
    outputs: dict[str, FMEntry] = {}
    names: dict[str, tuple[Path, str]] = {}
    loaded: list[tuple[FMEntry, Path, FeatureManifest]] = []
    for entry in fl.fms:
        _entry_cpu(fl, entry, cpu)
        src = _locate_fm(fl, entry, settings)
        k = key(src.resolve())
        if own is not None and k == own:
            raise ConfigError(
                f"FM {entry.id} is this FMFileList itself (cyclic reference)", fl.file, entry.line
            )
        if k in sources:
            raise ConfigError(
                f"FM {entry.id}: {src} is already listed as FM {sources[k].id} (line {sources[k].line})",
                fl.file,
                entry.line,
            )
        sources[k] = entry
        if fold(src.name) in outputs:
            o = outputs[fold(src.name)]
            raise ConfigError(
                f"FMs {o.id} and {entry.id} would both be merged into {src.name}; merged FMs keep their "
                "file name, so FM file names must be unique in an FMFileList",
                fl.file,
                entry.line,
            )
        outputs[fold(src.name)] = entry
        try:
            f = fmmod.load_fm(src, str(src))
        except FFUError as exc:
            raise ConfigError(f"FM {entry.id} is unusable: {exc}", fl.file, entry.line) from None
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
                raise ConfigError(
                    f"FM {entry.id}: undefined variable {missing[0]} in OwnerName", fl.file, entry.line
                )
        if not owner:
            raise ConfigError(
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
            raise ConfigError(
                f"undefined variable {missing[0]} in the path of {msg_pkg(p)}; pass it in the variables",
                f.file,
                p.line,
            )
        partition = p.partition
        if ms_left:
            result.skipped.append(
                Skipped(
                    "package",
                    package_name(p, name_text),
                    f"Microsoft package (under {missing[0]}) not checked; no Microsoft package root given",
                    f.file,
                    p.line,
                )
            )
        else:
            host = paths.resolve(settings.top, join(path_text, name_text))
            if not avail(host):
                raise ConfigError(
                    f"Missing package: {host} ({msg_pkg(p, name_text)}); build it or fix the FM",
                    f.file,
                    p.line,
                )
            other = names.get(fold(host.name))
            if other is not None and key(other[0]) != key(host):
                raise ConfigError(
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
            raise ConfigError(
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
