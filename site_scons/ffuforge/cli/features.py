"""`ffuforge features OEMINPUT`: an OEMInput resolved into the image's package set, with reasons."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import FFUError
from ..features import fm as fmmod
from ..features import oeminput as oimod
from ..features.fm import FeatureManifest, Variables, expand
from ..features.merge import MergeSettings, fm_search_path, merge
from ..features.model import Resolution, Skipped, assume_available, canon_cpu
from ..features.resolve import resolve
from ..util import paths
from ..util.assignments import parse_assignments
from .files import input_file, input_files


def default_variables(cpu: str, oem_name: str, top: Path) -> dict[str, str]:
    """ffuforge's workspace layout in IoT add-on kit terms (relative to `top`)."""
    bld = f"build/{cpu}"
    return {
        "BLD_DIR": bld,
        "PKGBLD_DIR": f"{bld}/packages",
        "BSPPKG_DIR": f"{bld}/packages",
        "SRC_DIR": ".",
        "COMMON_DIR": ".",
        "BSPSRC_DIR": "bsp",
        "OEM_NAME": oem_name,
    }


def _discover_fmfilelists(top: Path) -> list[Path]:
    out = []
    for root, dirs, files in os.walk(top):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in ("build", "node_modules"))
        for f in sorted(files):
            if f.lower().endswith("fmfilelist.xml"):
                out.append(Path(root) / f)
    return out


def format_table(res: Resolution) -> str:
    lines = [
        f"OEMInput {res.oeminput}",
        f"  SOC {res.soc}  Device {res.device}  SV {res.sv or '-'}  {res.release_type}  {res.build_type}  "
        f"CPU {res.cpu}",
        f"  languages {';'.join(res.ui_languages)}  resolutions {';'.join(res.resolutions) or '-'}",
        f"  device layout   {res.device_layout.name if res.device_layout else '(skipped)'}",
        f"  device platform {res.device_platform.name if res.device_platform else '(skipped)'}",
    ]
    for part, pkgs in res.partitions.items():
        lines.append(f"\nPartition {part} ({len(pkgs)} packages)")
        width = max((len(p.name) for p in pkgs), default=0)
        for p in pkgs:
            fip = " [FIP]" if p.fip else ""
            lines.append(f"  {p.name:<{width}}  {', '.join(p.reasons)}{fip}  {p.path}")
    if res.skipped:
        lines.append(f"\nSkipped ({len(res.skipped)})")
        groups: dict[tuple[str, str], list[Skipped]] = {}
        for s in res.skipped:
            groups.setdefault((s.kind, s.reason), []).append(s)
        for (kind, reason), items in groups.items():

            def where(s: Skipped) -> str:
                if s.file == res.oeminput and s.line:
                    return f" (line {s.line})"
                return f" ({s.file}:{s.line})" if s.file and s.line else ""

            if len(items) == 1:
                lines.append(f"  {kind} {items[0].name}: {reason}{where(items[0])}")
            else:
                lines.append(f"  {len(items)} {kind}s: {reason}")
                lines += [f"    {s.name}{where(s)}" for s in items]
    if res.warnings:
        lines.append(f"\nWarnings ({len(res.warnings)})")
        lines += [f"  {w}" for w in res.warnings]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """`ffuforge features OEMINPUT`: print the package set per partition (table or --json)."""
    ap = argparse.ArgumentParser(
        prog="ffuforge features", description="resolve an OEMInput to its packages per partition"
    )
    ap.add_argument("oeminput")
    ap.add_argument("--cpu", default="arm64", help="arm, arm64, x86 or amd64 (default arm64)")
    ap.add_argument("--oem-name", default="Contoso", help="OEM_NAME (default Contoso)")
    ap.add_argument("--variables", help="'NAME=VALUE;...' (BLD_DIR, PKGBLD_DIR, BSPPKG_DIR, SRC_DIR, ...)")
    ap.add_argument(
        "--ms-root",
        metavar="MSPACKAGE",
        help="Microsoft package root (MSPackages); without it Microsoft features are reported as skipped",
    )
    ap.add_argument("--fm", action="append", default=[], metavar="FM", help="extra (edition) FM")
    ap.add_argument(
        "--fmfilelist",
        action="append",
        default=[],
        help="merge this FMFileList in memory into %%BLD_DIR%%/MergedFMs (default: every "
        "*FMFileList.xml under --top, outside build/)",
    )
    ap.add_argument(
        "--fm-dir",
        action="append",
        default=[],
        help="$(FMDirectory), as FeatureMerger's /InputFMDir (repeatable; searched before the FMFileList's folder)",
    )
    ap.add_argument("--top", default=".", help="workspace top; relative paths start here")
    ap.add_argument("--version", default="10.0.0.0", help="version of generated FIPs")
    ap.add_argument("--check-cabs", action="store_true", help="fail when a selected CAB does not exist")
    ap.add_argument("--json", action="store_true")
    try:
        args = ap.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        input_file(args.oeminput, "an OEMInput XML file")
        input_files(args.fm, "an FM XML file")
        input_files(args.fmfilelist, "an FMFileList XML file")
        cpu = canon_cpu(args.cpu)
        top = Path(args.top)
        variables = default_variables(cpu, args.oem_name, top)
        variables.update(parse_assignments(args.variables, "--variables"))
        vars_ = Variables(variables)
        oi = oimod.load(args.oeminput, args.oeminput, variables=vars_)
        merged: dict[Path, FeatureManifest] = {}
        fips: list[Path] = []
        lists = [Path(x) for x in args.fmfilelist] or _discover_fmfilelists(top)
        bld = paths.resolve(top, vars_["BLD_DIR"]) if "BLD_DIR" in vars_ else None
        needed = any(
            bld is not None and not paths.resolve(top, expand(i.value, vars_)[0]).is_file()
            for i in oi.additional_fms
            if not expand(i.value, vars_)[1]
        )
        if bld is not None and (args.fmfilelist or needed):
            for lst in lists:
                fl = fmmod.load_fmfilelist(lst, str(lst))
                settings = MergeSettings(
                    cpu=cpu,
                    out_pkg_dir=paths.resolve(top, vars_["PKGBLD_DIR"])
                    if "PKGBLD_DIR" in vars_
                    else bld / "packages",
                    version=args.version,
                    variables=variables,
                    owner_name=args.oem_name,
                    fm_dirs=fm_search_path(lst, args.fm_dir),
                    ms_root=Path(args.ms_root) if args.ms_root else None,
                    top=top,
                )
                mr = merge(
                    fl,
                    settings,
                    out_fm_dir=bld / "MergedFMs",
                    write=False,
                    available=None if args.check_cabs else assume_available,
                )
                merged.update(mr.by_path())
                fips += [f.cab for f in mr.fips]  # built by the merge step: "going to be built"
        res = resolve(
            oi,
            cpu=cpu,
            variables=variables,
            ms_root=args.ms_root,
            top=top,
            fms=merged,
            extra_fms=args.fm,
            available=fips if args.check_cabs else assume_available,
        )
    except FFUError as exc:
        print(f"ffuforge: error: {exc}", file=sys.stderr)
        return 2
    try:
        print(json.dumps(res.to_json(), indent=2) if args.json else format_table(res))
    except BrokenPipeError:
        return 1
    return 0
