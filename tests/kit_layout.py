"""How the IoT add-on kit's scripts feed a corpus OEMInput: variables and in-memory merged FMs.

Mirrors the kit layouts (17763 `Workspace/`, the cmd-era `Source-<arch>/` and the pkg.xml-era
raw FMs): `%BLD_DIR%\\MergedFMs\\X.xml` is what FeatureMerger makes from the kit's
FMFileLists, `%SRC_DIR%`, `%COMMON_DIR%`, `%BSPSRC_DIR%` are source folders, and `%AKROOT%`
(Microsoft's kit) is deliberately absent: Microsoft FMs and features are reported as skipped.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from ffuforge.features import fm, model
from ffuforge.features import merge as features
from ffuforge.features import resolve as resolver

ARCHES = {"arm": "arm", "arm64": "arm64", "x64": "amd64", "x86": "x86"}


def layout(oeminput: Path) -> tuple[Path, str, str] | None:
    """(source root holding Source-<arch>/ and Common/, kit arch name, cpu) or None (templates)."""
    parts = oeminput.parts
    for i, part in enumerate(parts):
        if part.startswith("Source-") and part[7:] in ARCHES:
            return Path(*parts[:i]), part[7:], ARCHES[part[7:]]
    return None


def variables(root: Path, arch: str, bld: Path) -> dict[str, str]:
    src = root / f"Source-{arch}"
    return {
        "SRC_DIR": str(src),
        "COMMON_DIR": str(root / "Common"),
        "BSPSRC_DIR": str(src / "BSP"),
        "BLD_DIR": str(bld),
        "PKGBLD_DIR": str(bld / "pkgs"),
        "BSPPKG_DIR": str(bld / "pkgs"),
        "OEM_NAME": "Contoso",
    }


@cache
def merged_fms(root: Path, arch: str, cpu: str, bld: Path) -> dict[Path, fm.FeatureManifest]:
    """Every FMFileList of this layout merged in memory into <bld>/MergedFMs (nothing written)."""
    src = root / f"Source-{arch}"
    lists = sorted(src.glob("Packages/*FMFileList.xml")) + sorted(src.glob("BSP/*/Packages/*FMFileList.xml"))
    out: dict[Path, fm.FeatureManifest] = {}
    for lst in lists:
        settings = features.MergeSettings(
            cpu=cpu,
            out_pkg_dir=bld / "pkgs",
            variables=variables(root, arch, bld),
            owner_name="Contoso",
            fm_dirs=(lst.parent, root / "Common" / "Packages", src / "Packages"),
        )
        res = features.merge(
            lst, settings, out_fm_dir=bld / "MergedFMs", write=False, available=model.assume_available
        )
        out.update(res.by_path())
    return out


def resolve(oeminput: Path, bld: Path) -> model.Resolution:
    where = layout(oeminput)
    assert where is not None
    root, arch, cpu = where
    return resolver.resolve(
        oeminput,
        cpu=cpu,
        variables=variables(root, arch, bld),
        fms=merged_fms(root, arch, cpu, bld),
        available=model.assume_available,
    )
