"""`ffuforge bsp build` / env.BSP() on a BSP tree of our own making (#18: items 3, 7, 8, the entry point).

The tree (tests/bsptree_fixture.py) has two boards sharing WDK-style driver projects, each board
with its own UpdateOS package under one CAB name, and board B with its own variant of a shared
project. Each board's image builds from the tree as written, in place: the test checks that no
byte of the tree changed and nothing was added to it. Independent readers: ntfs-3g's `ntfsls`,
wimlib-imagex for UpdateOS.wim.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bsptree_fixture import make_bsp

pytestmark = pytest.mark.e2e

SITE = Path(__file__).resolve().parents[2] / "site_scons"


def ffuforge(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(SITE)}
    env.pop("SOURCE_DATE_EPOCH", None)
    proc = subprocess.run(
        [sys.executable, "-m", "ffuforge", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"ffuforge {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def errors(proc) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("scons: ***")]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bsptree")
    root = make_bsp(tmp / "VendorBSP")
    before = snapshot(root)
    procs = {
        b: ffuforge(tmp, "bsp", "build", "VendorBSP", "--board", b, "--out", out)
        for b, out in (("BoardA", "wsA"), ("boardb", "wsB"))
    }
    return tmp, root, before, procs


def files(ws: Path, board: str, part: str = "MainOS") -> dict[str, str]:
    doc = json.loads((ws / f"build/arm64/{board}/Test/partitions/{part}.json").read_text())
    return {f["path"].casefold(): f["package"] for f in doc["files"]}  # folder spelling: the first package's


def test_each_board_builds_from_the_tree_as_shipped(built):
    tmp, root, before, procs = built
    assert snapshot(root) == before  # not a byte changed, nothing added
    for ws, board in ((tmp / "wsA", "BoardA"), (tmp / "wsB", "BoardB")):
        assert (ws / "bsp").is_symlink() and (ws / "bsp").resolve() == root  # referenced, not copied
        assert (ws / f"build/arm64/{board}/Test/Flash.ffu").stat().st_size > 0
        verify = ffuforge(tmp, "ffu", "verify", str(ws / f"build/arm64/{board}/Test/Flash.ffu"))
        assert verify.returncode == 0
    a, b = files(tmp / "wsA", "BoardA"), files(tmp / "wsB", "BoardB")
    # shared projects built with the WDK working folder (Package/), the board's own variant on B (item 7)
    assert a["windows\\system32\\vendor\\settings\\i2c.dat"] == "Contoso.Vendor.I2C"
    assert a["windows\\system32\\vendor\\settings\\spi.dat"] == "Contoso.Vendor.SPI"
    assert b["windows\\system32\\vendor\\settings\\i2c-b.dat"] == "Contoso.Vendor.I2C"
    assert "windows\\system32\\vendor\\settings\\i2c.dat" not in b
    # only what the board's FMs name is built: board B has no SPI package
    assert not (tmp / "wsB/build/arm64/packages/Contoso.Vendor.SPI.cab").exists()
    # each board's own UpdateOS package (one CAB name in both boards) lands in its UpdateOS.wim
    for ws, board in ((tmp / "wsA", "BoardA"), (tmp / "wsB", "BoardB")):
        uos = files(ws, board, "UpdateOS")
        assert uos[f"windows\\system32\\{board}-update.txt".casefold()] == "SV.PlatExtensions.UpdateOS"


def test_mixed_case_dirids_merge_into_one_folder(built):
    tmp = built[0]
    if not shutil.which("ntfsls"):
        pytest.skip("ntfsls is not installed (./bootstrap --test installs it)")
    out = subprocess.run(
        ["ntfsls", "-p", "/Windows/System32", str(tmp / "wsA/build/arm64/BoardA/Test/partitions/MainOS.img")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert len([n for n in out if n.lower() == "vendor"]) == 1  # VENDOR, Vendor and vendor: one folder


def test_skipped_microsoft_features_are_counted(built):
    procs = built[3]
    line = "bsp/BoardA/OEMInputSamples/TestOEMInput.xml: 2 Microsoft features skipped without MSPACKAGE"
    assert f"{line} (an OEM-only image): MS_IOT_EFIESP, MS_IOT_SSH" in procs["BoardA"].stdout


def test_workspace_is_rewritten_identically_and_builds_nothing_again(built):
    tmp = built[0]
    first = (tmp / "wsA/SConstruct").read_bytes()
    proc = ffuforge(tmp, "bsp", "build", "VendorBSP", "--board", "BoardA", "--out", "wsA", "--", "-q")
    assert proc.returncode == 0 and (tmp / "wsA/SConstruct").read_bytes() == first


def test_unknown_board_and_foreign_workspace(built, tmp_path):
    tmp = built[0]
    proc = ffuforge(tmp, "bsp", "build", "VendorBSP", "--board", "BoardC", "--no-build", check=False)
    assert proc.returncode == 2 and proc.stderr.strip().endswith(
        "no board BoardC (boards with an *FMFileList.xml here: BoardA, BoardB)"
    )
    (tmp_path / "SConstruct").write_text("# mine\n")
    proc = ffuforge(
        tmp, "bsp", "build", "VendorBSP", "--board", "BoardA", "--out", str(tmp_path), check=False
    )
    assert proc.returncode == 2 and "was not written by ffuforge bsp build" in proc.stderr
    assert (tmp_path / "SConstruct").read_text() == "# mine\n"
    os.mkfifo(tmp_path / "fifo")  # a FIFO as the tree or the workspace: one line, nothing written
    for args in (("fifo",), ("VendorBSP", "--out", "fifo")):
        root = str(tmp_path / args[0]) if args[0] == "fifo" else str(tmp / args[0])
        proc = ffuforge(tmp_path, "bsp", "build", root, *args[1:], "--board", "BoardA", check=False)
        assert (
            proc.returncode == 2 and proc.stderr.count("\n") == 1 and "is a FIFO (named pipe)" in proc.stderr
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["SConstruct", "fifo"]


def test_everything_missing_in_one_run(tmp_path):
    root = make_bsp(tmp_path / "VendorBSP")
    (root / "Package/Drivers/vi2c.sys").unlink()
    (root / "Package/Data/spi.dat").unlink()
    fm = root / "BoardA/Packages/BoardAFM.xml"
    fm.write_text(
        fm.read_text().replace(
            "  </BasePackages>",
            '    <PackageFile Path="%BSPPKG_DIR%" Name="%OEM_NAME%.Vendor.GPIO.cab" />\n  </BasePackages>',
        )
    )
    proc = ffuforge(tmp_path, "bsp", "build", "VendorBSP", "--board", "BoardA", "--out", "ws", check=False)
    errs = errors(proc)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert errs[-1] == "scons: *** 3 problems; nothing was built"
    text = "\n".join(errs)
    assert (
        "Vendor.I2C.wm.xml:6: bsp/Package/Drivers/vi2c.inf: file bsp/Package/Drivers/vi2c.sys does not exist"
        in text
    )
    assert "Vendor.SPI.wm.xml:9: source file bsp/Package/Data/spi.dat does not exist" in text
    assert (
        "bsp/BoardA/Packages/BoardAFM.xml:6: package Contoso.Vendor.GPIO.cab is named by the FM, but no project "
        "under bsp builds it and build/arm64/packages/Contoso.Vendor.GPIO.cab does not exist" in text
    )
    assert not list((tmp_path / "ws/build").glob("**/*.cab"))


def test_alternative_projects_are_named_and_excluded(tmp_path):
    """#18 item 7: two projects outside the board's folder build one CAB: one line naming both;
    --exclude (EXCLUDE=) takes one out."""
    root = make_bsp(tmp_path / "VendorBSP")
    old = root / "Package/Old/Vendor.I2C"
    old.mkdir(parents=True)
    shutil.copy(root / "Package/Vendor.I2C/Vendor.I2C.wm.xml", old / "Vendor.I2C.wm.xml")
    proc = ffuforge(tmp_path, "bsp", "build", "VendorBSP", "--board", "BoardA", "--out", "ws", check=False)
    assert proc.returncode != 0 and errors(proc) == [
        "scons: *** bsp/Package/Old/Vendor.I2C/Vendor.I2C.wm.xml and bsp/Package/Vendor.I2C/Vendor.I2C.wm.xml "
        "both build Contoso.Vendor.I2C.cab for board BoardA; leave one out with EXCLUDE= (bsp build --exclude)"
    ]
    ffuforge(
        tmp_path, "bsp", "build", "VendorBSP", "--board", "BoardA", "--out", "ws", "--exclude", "Package/Old"
    )
    assert (tmp_path / "ws/build/arm64/BoardA/Test/Flash.ffu").is_file()


def test_fm_directory_as_input_fm_dir(tmp_path):
    """#18 item 3: an FM kept outside the FMFileList's folder is found through --fm-dir (FM_DIR=),
    as FeatureMerger's /InputFMDir; without it the error names the folders searched."""
    root = make_bsp(tmp_path / "VendorBSP")
    (root / "FMs").mkdir()
    (root / "BoardA/Packages/BoardAFM.xml").rename(root / "FMs/BoardAFM.xml")
    proc = ffuforge(tmp_path, "bsp", "build", "VendorBSP", "--board", "BoardA", "--out", "ws", check=False)
    assert (
        proc.returncode != 0
        and "BoardAFMFileList.xml:6: FM BoardA: $(FMDirectory)\\BoardAFM.xml not found" in proc.stderr
    )
    ffuforge(
        tmp_path, "bsp", "build", "VendorBSP", "--board", "BoardA", "--out", "ws", "--fm-dir", "VendorBSP/FMs"
    )
    assert (tmp_path / "ws/build/arm64/BoardA/Test/Flash.ffu").is_file()


def test_oem_prefixed_feature_is_one_warning_naming_the_fm_line(tmp_path):
    """#18 item 8: `<OEM><Feature>OEM_VENDOR_SPI` becomes OEM_OEM_VENDOR_SPI; with a Microsoft FM
    skipped (no MSPACKAGE) the build goes on, and says so in one warning naming the FM line."""
    root = make_bsp(tmp_path / "VendorBSP")
    oi = root / "BoardA/OEMInputSamples/TestOEMInput.xml"
    oi.write_text(
        oi.read_text()
        .replace(
            "  </AdditionalFMs>",
            "    <AdditionalFM>%AKROOT%\\FMFiles\\arm64\\IoTUAPNonProductionPartnerShareFM.xml</AdditionalFM>\n"
            "  </AdditionalFMs>",
        )
        .replace("<Feature>VENDOR_SPI</Feature>", "<Feature>OEM_VENDOR_SPI</Feature>")
    )
    proc = ffuforge(tmp_path, "bsp", "build", "VendorBSP", "--board", "BoardA", "--out", "ws")
    [warning] = [line for line in proc.stderr.splitlines() if "OEM_OEM_" in line]
    assert warning == (
        "scons: warning: bsp/BoardA/OEMInputSamples/TestOEMInput.xml:27: OEM feature OEM_VENDOR_SPI becomes "
        "OEM_OEM_VENDOR_SPI (the OEMInput side always adds OEM_), which no loaded FM defines; FM feature "
        "OEM_VENDOR_SPI is at bsp/BoardA/Packages/BoardAFM.xml:14; write <Feature>VENDOR_SPI</Feature>"
    )
    assert not (
        tmp_path / "ws/build/arm64/packages/Contoso.Vendor.SPI.cab"
    ).exists()  # skipped, as ImageApp would


def test_a_project_that_cannot_be_named_is_a_warning(tmp_path):
    """A template in the tree (an identity macro no build defines) does not stop a board that does
    not need it: one warning line, and the image builds."""
    root = make_bsp(tmp_path / "VendorBSP")
    (root / "Templates").mkdir()
    (root / "Templates/Template.wm.xml").write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<identity xmlns="urn:Microsoft.CompPlat/ManifestSchema.v1.00" owner="$(OEMNAME)" namespace="X"\n'
        '    name="$(COMPONENT)">\n'
        '  <onecorePackageInfo targetPartition="MainOS" releaseType="Production" ownerType="OEM" />\n'
        "</identity>\n"
    )
    proc = ffuforge(tmp_path, "bsp", "build", "VendorBSP", "--board", "BoardB", "--out", "ws")
    [warning] = [line for line in proc.stderr.splitlines() if "Template.wm.xml" in line]
    assert warning.startswith("scons: warning: bsp/Templates/Template.wm.xml:3: ") and warning.endswith(
        "; left out of board BoardB"
    )
    assert (tmp_path / "ws/build/arm64/BoardB/Test/Flash.ffu").is_file()
