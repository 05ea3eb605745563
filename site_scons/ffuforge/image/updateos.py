"""UpdateOS: the packages ImgGen installs into ``MainOS:\\PROGRAMS\\UpdateOS\\UpdateOS.wim``.

What Microsoft's imaging does (``../shared/spec/updateos-chunk0.md`` §A; IUT ``Imaging.cs``
``StageImage``/``CommitImage``/``ProcessMinFreeSectors``, DD2 ``updatedll.dll`` strings):

* ``UpdateOS`` is a pseudo-partition: packages whose ``targetPartition`` is UpdateOS (any case)
  never reach the DeviceLayout; ImgGen creates a fresh Windows tree, installs them into it and
  captures it as one **LZX**, **bootable** (boot index 1) WIM image, on every new image, also when
  no package targets UpdateOS;
* the WIM is copied to ``MainOS\\PROGRAMS\\UpdateOS\\UpdateOS.wim`` and its size, rounded up to
  MainOS's cluster, is counted in MainOS's content before MainOS is sized;
* UpdateDLL's ``Rule_ValidateUpdateOSPackages`` refuses non-Microsoft UpdateOS packages unless
  their name is on its list (:data:`ALLOWED_OEM_NAMES`).

What ffuforge does, and what is inferred:

* The skeleton is ffuforge's new-image skeleton, the one MainOS gets (:func:`.partition.stage`):
  ``\\Windows\\System32\\config\\SYSTEM`` with ``Select`` and ``ControlSet001`` (UpdateOS is one of
  the three "hive partitions", IUT ``PkgConstants.cs``), plus the hives the packages write, plus
  each package's servicing record ``\\Windows\\servicing\\Packages\\<name>~…``. Windows'
  ``CreateNewWindows`` (private flags 0x2A|0x40) lays down more (the full directory skeleton, the
  other default hives): not reproduced, not known in detail. Microsoft's UpdateOS packages
  (``MSPACKAGE=``) supply the rest of a bootable UpdateOS, as for MainOS.
* The tree is written as an NTFS volume (the same writer as MainOS: WRP descriptors, ARCHIVE,
  the build epoch as every time) and captured from it, so the WIM records Windows attributes
  and descriptors as a capture on Windows would [inf: Windows captures a folder on an NTFS
  volume].
* The image is named ``UpdateOS`` [inf: ImgGen's capture name is not known].
* "Microsoft owned" [inf]: Microsoft's key token ``31bf3856ad364e35`` or ``phoneOwnerType``
  Microsoft in the update.mum; names are compared without case [inf].
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from ..errors import ConfigError
from ..formats import fsimage, wim
from ..formats.cab import CabReader
from ..util.atomic import write_bytes
from . import install, partition

NAME = "UpdateOS"
OWNER = f"<{NAME}>"  # the owner partition manifests give UpdateOS.wim (the image build writes it)
WIM_PATH = ("PROGRAMS", "UpdateOS", "UpdateOS.wim")  # IUT ToolsCommon/DevicePaths.cs
MICROSOFT_TOKEN = "31bf3856ad364e35"
ALLOWED_OEM_NAMES = (  # DD2 updatedll.dll, next to Rule_ValidateUpdateOSPackages
    "SV.PlatExtensions.UpdateOS",
    "OEM.HalExtensions.UpdateOS",
    "OEM-HalExtensions-UpdateOS",
    "OEM.UpdateOS.ImageCustomization.RegistryCustomization",
    "Qualcomm.M8X60SOC.scm_updateos",
    "Qualcomm.M8X60SOC.ssd_updateos",
    "Qualcomm.QC8909.qcspmi.UpdateOS",
    "Qualcomm.QC8916.qcspmi.UpdateOS",
)
_ALLOWED = {n.lower() for n in ALLOWED_OEM_NAMES}
# the image's WINDOWS/ARCH in the WIM's XML: PROCESSOR_ARCHITECTURE_* (winnt.h), as DISM records it
ARCH = {"x86": 0, "arm": 5, "amd64": 9, "arm64": 12}
_MIN_VOLUME = 64 << 20


def is_updateos(partition_name: str) -> bool:
    return partition_name.lower() == NAME.lower()


def _owner_type(cab_path: Path) -> str:
    with CabReader(cab_path) as cab:
        mum = install.read_mum(cab, cab_path)
    phone = mum.find(f"{install.ASM}package/{install.ASM}customInformation/{install.ASM}phoneInformation")
    return (phone.get("phoneOwnerType") or "") if phone is not None else ""


def refusal(name: str, cab_name: str, microsoft: bool) -> str | None:
    """Why UpdateDLL would refuse this UpdateOS package (None: it would not)."""
    if microsoft or name.lower() in _ALLOWED:
        return None
    return (
        f"package {name} ({cab_name}) targets UpdateOS, which takes non-Microsoft packages only named "
        f"{', '.join(ALLOWED_OEM_NAMES)}; rename it (legacyName) or target MainOS"
    )


def problem_of(cab: Path) -> str | None:
    """:func:`refusal` for a built CAB, from its update.mum."""
    info = install.read_package_info(cab)
    microsoft = info.token == MICROSOFT_TOKEN or _owner_type(cab).lower() == "microsoft"
    return refusal(info.name, cab.name, microsoft)


def check_packages(cabs: list[Path], generated: list[Path] = ()) -> None:  # type: ignore[assignment]
    """Refuse a non-Microsoft UpdateOS package whose name UpdateDLL does not allow. `generated`:
    feature identifier packages (FeatureMerger's), exempt [inf: BSPs whose FMs list an UpdateOS
    package in a feature build with Microsoft's tools, so UpdateDLL cannot refuse their FIPs]."""
    exempt = {Path(c) for c in generated}
    for cab in cabs:
        if Path(cab) not in exempt and (problem := problem_of(Path(cab))):
            raise ConfigError(problem)


def build_wim(
    cabs: list[Path],
    out_wim: Path,
    out_manifest: Path,
    *,
    epoch: int,
    cpu: str,
    generated: list[Path] = (),  # type: ignore[assignment]
    cache_dir: Path | None = None,
    jobs: int = 1,
) -> wim.WimResult:
    """Install `cabs` into a new skeleton, capture it as UpdateOS.wim and write its manifest."""
    check_packages(cabs, generated)
    with tempfile.TemporaryDirectory(prefix=f".{out_wim.name}.stage-", dir=out_wim.parent) as tmp:
        st = partition.stage(NAME, cabs, Path(tmp) / "stage", epoch=epoch, cache_dir=cache_dir, jobs=jobs)
        if st.raw_image is not None:
            raise ConfigError(
                f"package {st.raw_image[1]} is a binary partition package; UpdateOS holds files"
            )
        content = partition.content_bytes(st)
        size = max(_MIN_VOLUME, -(-(content * 2 + (len(st.files) + 64) * 8192) // (1 << 20)) << 20)
        volume = fsimage.write_ntfs(
            st.root,
            Path(tmp) / "updateos.ntfs",
            size_bytes=size,
            label=NAME,
            timestamp=epoch,
            security={rel.replace("\\", "/"): sddl for rel, sddl, _ in st.security.values()},
        )
        result = wim.write_wim(
            out_wim,
            volume,
            ntfs=True,
            image_name=NAME,
            timestamp=epoch,
            compression="lzx",
            boot=True,
            image_properties={"WINDOWS/ARCH": str(ARCH[cpu.lower()])},
        )
        manifest = st.manifest() | {"wim": {"path": "\\".join(WIM_PATH), "size": result.size}}
        write_bytes(out_manifest, json.dumps(manifest, indent=1, sort_keys=True).encode() + b"\n")
    return result


def mainos_bytes(wim_path: Path, cluster_size: int) -> int:
    """What the WIM adds to MainOS's content: its size rounded up to the cluster (ImgGen)."""
    size = wim_path.stat().st_size
    return -(-size // cluster_size) * cluster_size


def place_in(st: install.Staging, wim_path: Path) -> None:
    """Put the WIM into MainOS's staged tree at its fixed path (a package may not install there)."""
    rel = "\\".join(WIM_PATH)
    if rel.lower() in st.files:
        raise ConfigError(
            f"package {st.files[rel.lower()].package} installs \\{rel}, which ffuforge builds from the "
            "UpdateOS packages; remove that file from the package"
        )
    out = st.root.joinpath(*WIM_PATH)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        out.hardlink_to(wim_path)
    except OSError:
        import shutil

        shutil.copyfile(wim_path, out)
    partition.record(st, rel, out, OWNER)
