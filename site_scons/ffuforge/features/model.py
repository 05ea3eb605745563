"""What the feature resolver and FeatureMerger share: result records, variables, path helpers.

`features.resolve` (OEMInput -> package set) and `features.merge` (FMFileList -> merged FMs and
FIPs) report skipped items alike, expand FM placeholders with the same variable map and find CABs
on the host the same way; this module holds that common ground, so neither imports the other.

Paths: values come from an explicit variable map (never the process environment); a Windows
path is resolved against `top` with case-insensitive fallback, as Windows would find it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from .fm import PackageFile, Variables, normalize_cpu

DEFAULT_PARTITION = "MainOS"

Available = Callable[[Path], bool] | Collection[str | Path] | None
PartitionOf = Callable[[Path], str | None] | None


class MissingFMError(ConfigError):
    """An FM named by an OEMInput or FMFileList does not exist."""


def assume_available(_path: Path) -> bool:
    """`available=` for callers that only want the package list (nothing is checked)."""
    return True


def key(path: Path | str) -> str:
    """Case-insensitive identity of a host path (Windows semantics)."""
    return os.path.normpath(str(path)).replace("\\", "/").casefold()


def availability(available: Available) -> Callable[[Path], bool]:
    """None: the file exists. A collection: listed (will be built) or exists. A callable: as is."""
    if available is None:
        return lambda p: p.is_file()
    if callable(available):
        return available
    known = {key(p) for p in available}
    return lambda p: key(p) in known or p.is_file()


def package_name(p: PackageFile, file_name: str) -> str:
    if p.id:
        return p.id
    return re.sub(r"\.(cab|spkg)$", "", file_name, flags=re.IGNORECASE)


def join(path_text: str, name_text: str) -> str:
    p = path_text.rstrip("\\/")
    return f"{p}\\{name_text}" if p else name_text


def msg_pkg(p: PackageFile, name: str | None = None) -> str:
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
    warnings: list[str] = field(default_factory=list)  # 'file:line: warning: …' of building it (INFs)

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "path": str(self.path),
            "partition": self.partition,
            "reasons": list(self.reasons),
            "fip": self.fip,
            "sources": list(self.sources),
            "warnings": list(self.warnings),
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
        raise ConfigError(f"CPU {cpu!r} is not one of arm, arm64, x86, amd64")
    return c
