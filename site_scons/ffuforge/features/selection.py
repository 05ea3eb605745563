"""The first half of OEMInput resolution: load the image's FMs and select its features.

:class:`FeatureSelector` holds the resolver's state and the steps that decide *which features* an
image has (AdditionalFMs loaded, OEM/Microsoft features matched to FM implicit IDs, FeatureGroup
constraints and ConditionalFeatures checked); :mod:`.resolve` subclasses it with the steps that
turn those features into packages. Separate only to keep each module readable.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from ..errors import ConfigError, FFUError
from ..util import paths
from . import fm as fmmod
from .fm import (
    EXCLUSIVE,
    REQUIRED,
    FeatureManifest,
    Variables,
    check_groups,
    expand,
    fold,
    input_implicit_id,
    is_ms_placeholder,
)
from .model import MissingFMError, Skipped, availability, key
from .oeminput import Item, OEMInput


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


class FeatureSelector:
    """One resolution's state and its feature-selection steps (the package steps: `resolve._Resolver`)."""

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
        self.preloaded = {key(k): v for k, v in (fms or {}).items()}
        self.extra_fms = list(extra_fms)
        self.available = availability(available)
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

    def err(self, message: str, line: int | None = None) -> ConfigError:
        return ConfigError(message, self.oi.file, line)

    # -- FMs
    def load_fms(self) -> list[FeatureManifest]:
        out: list[FeatureManifest] = []
        seen: dict[str, Item] = {}
        own = key(self.oi.path.resolve()) if self.oi.path else None
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
            k = key(host)
            if k in seen:
                raise self.err(
                    f"AdditionalFM {item.value} is listed twice (also line {seen[k].line})", item.line
                )
            seen[k] = item
            if own is not None and key(host.resolve()) == own:
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
                if item.value.upper().startswith("OEM_"):
                    self.warnings.append(self.double_prefix(item, iid))
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

    def double_prefix(self, item, iid: str) -> str:
        """`<OEM><Feature>OEM_X` becomes OEM_OEM_X (the OEMInput side always adds OEM_): one line
        naming the OEMInput line and the FM line that defines OEM_X, when one does."""
        where = ""
        hit = self.defined.get(fold(item.value))
        if hit is not None:
            line = next(
                (p.line for p in hit[1].packages if fold(item.value) in map(fold, p.implicit_ids())), None
            )
            where = f"; FM feature {hit[0]} is at {hit[1].file}" + (f":{line}" if line else "")
        return str(
            FFUError(
                f"OEM feature {item.value} becomes {iid} (the OEMInput side always adds OEM_), which no "
                f"loaded FM defines{where}; write <Feature>{item.value[4:]}</Feature>",
                self.oi.file,
                item.line,
            )
        )

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
                raise ConfigError(
                    f"ConditionalFeature {c.feature_id} is defined, but no FM of this image defines the "
                    "feature itself (imaging would fail: 'the corresponding Feature is missing')",
                    f.file,
                    c.line,
                )
