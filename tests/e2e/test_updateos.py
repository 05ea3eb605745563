"""End to end: UpdateOS packages become MainOS:\\PROGRAMS\\UpdateOS\\UpdateOS.wim (spec/updateos-chunk0.md §A).

The sample board carries SV.PlatExtensions.UpdateOS (an SD host driver); the WIM is read back out of
the MainOS volume with ntfs-3g's ntfscat and opened with wimlib-imagex, 7-Zip and hivex."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ffuforge.errors import ConfigError
from ffuforge.image import stages, updateos

from scons_util import copy_workspace, scons

pytestmark = pytest.mark.e2e
OUT = Path("build/arm64/SampleA/Test")
PKG = Path("bsp/ContosoBoard/Packages/SV.PlatExtensions.UpdateOS")


def need(*tools):
    for t in tools:
        if not shutil.which(t):
            pytest.skip(f"{t} not installed (./bootstrap --test)")


def run(*argv) -> str:
    return subprocess.run([str(a) for a in argv], check=True, capture_output=True, text=True).stdout


def _steps(proc) -> list[str]:
    return sorted(re.findall(r"^((?:Package|Partition|Layout|FFU|UpdateOS) \S+)", proc.stdout, re.M))


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    ws = copy_workspace(tmp_path_factory.mktemp("ws"))
    scons(ws)
    return ws


@pytest.fixture(scope="module")
def wim_from_mainos(ws, tmp_path_factory) -> Path:
    need("ntfscat")
    out = tmp_path_factory.mktemp("x") / "UpdateOS.wim"
    with open(out, "wb") as fh:
        subprocess.run(
            ["ntfscat", str(ws / OUT / "partitions/MainOS.img"), "/PROGRAMS/UpdateOS/UpdateOS.wim"],
            check=True,
            stdout=fh,
        )
    return out


def test_wim_is_in_mainos_and_holds_the_packages(ws, wim_from_mainos):
    need("wimlib-imagex")
    assert wim_from_mainos.read_bytes() == (ws / OUT / "partitions/UpdateOS.wim").read_bytes()
    info = run("wimlib-imagex", "info", wim_from_mainos)
    assert re.search(r"Compression:\s+LZX", info) and re.search(r"Boot Index:\s+1", info)
    assert re.search(r"Image Count:\s+1", info) and re.search(r"Architecture:\s+ARM64", info)
    listing = set(run("wimlib-imagex", "dir", wim_from_mainos, 1).split())
    assert {
        "/Windows/System32/drivers/contososdhc.sys",
        "/Windows/INF/contososdhc.inf",
        "/Windows/System32/config/SYSTEM",
    } <= listing
    assert any(
        re.match(r"/Windows/servicing/Packages/SV\.PlatExtensions\.UpdateOS~.*\.mum$", p) for p in listing
    )
    # nothing of MainOS leaks in, and the MainOS tree does not get the UpdateOS files
    assert not any("heartbeat" in p.lower() for p in listing)
    mainos = json.loads((ws / OUT / "partitions/MainOS.json").read_text())
    paths = {f["path"]: f["package"] for f in mainos["files"]}
    assert paths["PROGRAMS\\UpdateOS\\UpdateOS.wim"] == "<UpdateOS>"
    assert not any("contososdhc" in p.lower() for p in paths)
    # the UpdateOS manifest names the packages and the WIM
    manifest = json.loads((ws / OUT / "partitions/UpdateOS.json").read_text())
    assert manifest["partition"] == "UpdateOS"
    assert "SV.PlatExtensions.UpdateOS" in {p["name"] for p in manifest["packages"]}
    assert manifest["wim"]["size"] == wim_from_mainos.stat().st_size
    # no UpdateOS partition on the disk
    layout = json.loads((ws / OUT / "layout.json").read_text())
    assert "UpdateOS" not in layout["text"]


def test_driver_registered_in_the_updateos_hive(ws, wim_from_mainos, tmp_path):
    need("wimlib-imagex", "hivexget")
    run(
        "wimlib-imagex",
        "extract",
        wim_from_mainos,
        1,
        "/Windows/System32/config/SYSTEM",
        f"--dest-dir={tmp_path}",
    )
    system = tmp_path / "SYSTEM"
    assert run("hivexget", system, "\\ControlSet001\\Services\\contososdhc", "Start").strip() == "0"
    assert run("hivexget", system, "\\Select", "Current").strip() == "1"


def test_7zip_reads_the_wim(wim_from_mainos):
    need("7z")
    out = run("7z", "l", wim_from_mainos)
    assert "contososdhc.sys" in out


def test_wim_counts_in_mainos_size(ws, tmp_path):
    """ImgGen adds the WIM (cluster-rounded) to MainOS's content before sizing it."""
    res = json.loads((ws / OUT / "packages.json").read_text())
    parts = {n: [ws / p["path"] for p in pkgs] for n, pkgs in res["partitions"].items() if n != "UpdateOS"}
    cab = ws / res["device_layout"]["path"]
    big = tmp_path / "big.wim"
    with open(big, "wb") as fh:
        fh.truncate(100 << 20)

    def mainos_sectors(wim) -> int:
        disk = stages.build_layout(
            cab, cab, parts, tmp_path / "l.json", release_type="Test", where="t", updateos_wim=wim
        )
        return disk.partition("MainOS").sector_count

    small = mainos_sectors(ws / OUT / "partitions/UpdateOS.wim")
    assert mainos_sectors(big) * 512 - small * 512 >= (100 << 20) - stages.CONTENT_GRANULARITY
    assert updateos.mainos_bytes(big, 4096) == 100 << 20
    assert updateos.mainos_bytes(ws / OUT / "partitions/UpdateOS.wim", 4096) % 4096 == 0


def test_editing_an_updateos_package_rebuilds_the_wim_and_mainos_only(tmp_path):
    ws = copy_workspace(tmp_path / "ws")
    scons(ws)
    inf = ws / PKG / "contososdhc.inf"
    text = inf.read_bytes().decode("utf-16")
    inf.write_bytes(
        text.replace("DriverVer   = 11/01/2026,10.0.0.0", "DriverVer   = 11/02/2026,10.0.0.1").encode(
            "utf-16"
        )
    )
    proc = scons(ws)
    assert _steps(proc) == [
        "FFU build/arm64/SampleA/Test/Flash.ffu",
        "Layout build/arm64/SampleA/Test/layout.json",  # re-evaluated, unchanged: nothing else follows
        "Package SV.PlatExtensions.UpdateOS.cab",
        "Partition build/arm64/SampleA/Test/partitions/MainOS.img",
        "UpdateOS build/arm64/SampleA/Test/partitions/UpdateOS.wim",
    ], proc.stdout
    assert scons(ws, "-q", check=False).returncode == 0
    # and the result is a clean build's
    clean = copy_workspace(tmp_path / "clean")
    shutil.copy2(inf, clean / PKG / "contososdhc.inf")
    scons(clean)
    for rel in ("partitions/UpdateOS.wim", "partitions/MainOS.img", "Flash.ffu"):
        assert (ws / OUT / rel).read_bytes() == (clean / OUT / rel).read_bytes(), rel


def test_a_name_updatedll_does_not_allow_is_refused(tmp_path):
    ws = copy_workspace(tmp_path / "ws")
    wm = ws / PKG / "SV.PlatExtensions.UpdateOS.wm.xml"
    wm.write_text(
        wm.read_text().replace(
            'legacyName="SV.PlatExtensions.UpdateOS"', 'legacyName="Contoso.HalExtensions.UpdateOS"'
        )
    )
    fm = ws / "bsp/ContosoBoard/Packages/ContosoBoardFM.xml"
    fm.write_text(
        fm.read_text().replace(
            'Name="SV.PlatExtensions.UpdateOS.cab"', 'Name="Contoso.HalExtensions.UpdateOS.cab"'
        )
    )
    proc = scons(ws, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("scons: ***")]
    assert len(errors) == 1, proc.stderr
    # refused while reading the SConstructs, at the FM line that lists it: nothing is built
    assert errors[0].startswith(
        "scons: *** bsp/ContosoBoard/Packages/ContosoBoardFM.xml:7: package Contoso.HalExtensions.UpdateOS "
        "(Contoso.HalExtensions.UpdateOS.cab) targets UpdateOS"
    ), errors[0]
    assert "SV.PlatExtensions.UpdateOS, OEM.HalExtensions.UpdateOS" in errors[0]
    assert "rename it (legacyName) or target MainOS" in errors[0]
    assert not (ws / OUT / "partitions/UpdateOS.wim").exists()
    assert not (ws / OUT / "Flash.ffu").exists()
    assert not (ws / "build/arm64/packages").exists()


def test_the_wim_action_checks_the_cabs_again(ws):
    """CABs not made by this build (prebuilt, another tree) are checked from their update.mum."""
    fip = ws / "build/arm64/packages/Contoso.BASE.CONTOSOB.UpdateOS.cab"
    ok = ws / "build/arm64/packages/SV.PlatExtensions.UpdateOS.cab"
    updateos.check_packages([ok, fip], generated=[fip])
    with pytest.raises(ConfigError, match=r"package Contoso\.BASE\.CONTOSOB\.UpdateOS \(Contoso\.BASE"):
        updateos.check_packages([ok, fip])
    assert updateos.refusal("oem.haLextensions.updateos", "x.cab", False) is None  # case-insensitive [inf]
    assert updateos.refusal("Contoso.X", "x.cab", True) is None  # Microsoft's: any name
    assert "rename it" in updateos.refusal("Contoso.X", "x.cab", False)
