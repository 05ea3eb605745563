"""End to end on a BSP-shaped fixture of our own making (#18 items 2, 4, 5, 6; #17 Deliver 3).

`bsp/Fabrikam/Package/` is laid out as a Visual Studio package project: `Package.vcxproj` lists the
package projects one folder below it as `<PkgGen>` items, and their relative sources are written
against the `.vcxproj` folder (MSBuild's working folder), as WDK-built BSPs do. Its two driver INFs
copy into `system32\\drivers` / `System32\\drivers` and `fabrikam` / `FABRIKAM`; a legacy pkg.xml
carries a `<ServiceDll>`. Nothing in the BSP folder is edited for the build; the sample's SConscript
and FM only name the fixture's projects and CABs.

Independent readers: ntfs-3g's `ntfsls`/`ntfscat` for the NTFS partition, hivex for the SYSTEM and
SOFTWARE hives."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bsptree_fixture import INF

from scons_util import copy_workspace, scons

pytestmark = pytest.mark.e2e

BSP = "bsp/Fabrikam/Package"
OUT = "build/arm64/SampleA/Test"

VCXPROJ = """<?xml version="1.0" encoding="utf-8"?>
<Project DefaultTargets="Build" ToolsVersion="15.0" xmlns="http://schemas.microsoft.com/developer/msbuild/2003">
  <ItemGroup Label="ProjectConfigurations">
    <ProjectConfiguration Include="Release|ARM64"><Configuration>Release</Configuration><Platform>ARM64</Platform></ProjectConfiguration>
  </ItemGroup>
  <ItemGroup>
    <PkgGen Include="Fabrikam.I2C\\Fabrikam.I2C.wm.xml"><AdditionalOptions>/universalbsp</AdditionalOptions></PkgGen>
    <PkgGen Include="Fabrikam.SPI\\Fabrikam.SPI.wm.xml">
      <AdditionalOptions>/universalbsp /variables:"SPIDATA=spi.dat"</AdditionalOptions>
    </PkgGen>
    <PkgGen Include="Fabrikam.Svc\\Fabrikam.Svc.pkg.xml" />
  </ItemGroup>
</Project>
"""

WM = """<?xml version="1.0" encoding="utf-8"?>
<identity xmlns="urn:Microsoft.CompPlat/ManifestSchema.v1.00"
    owner="$(OEMNAME)" namespace="Fabrikam" name="{name}" legacyName="$(OEMNAME).Fabrikam.{name}">
  <onecorePackageInfo targetPartition="MainOS" releaseType="Production" ownerType="SiliconVendor" />
  <drivers>
    <driver><inf source="Drivers\\{inf}" /></driver>
  </drivers>
  <files>
    <file source="Data\\{data}" destinationDir="$(runtime.system32)\\{folder}\\Settings" />
  </files>
</identity>
"""

PKG = """<?xml version="1.0" encoding="utf-8"?>
<Package xmlns="urn:Microsoft.WindowsPhone/PackageSchema.v8.00" Owner="$(OEMNAME)" Component="Fabrikam"
    SubComponent="Svc" OwnerType="SiliconVendor" ReleaseType="Production" Platform="$(BSPARCH)">
  <Components>
    <Service Name="FabrikamSvc" Start="Auto" Type="Win32ShareProcess" ErrorControl="Normal"
        SvcHostGroupName="FabrikamGroup" DisplayName="Fabrikam board service">
      <ServiceDll Source="Drivers\\fabsvc.dll" />
    </Service>
  </Components>
</Package>
"""

CABS = ("Fabrikam.I2C", "Fabrikam.SPI", "Fabrikam.Svc")


def _fixture(ws: Path) -> Path:
    pkg = ws / BSP
    (pkg / "Drivers").mkdir(parents=True)
    (pkg / "Data").mkdir()
    (pkg / "Package.vcxproj").write_text(VCXPROJ)
    for name, inf, drivers, extra, data, folder, hwid in (
        ("I2C", "fabi2c.inf", r"10,system32\drivers", "11,fabrikam", "i2c.dat", "Fabrikam", "0001"),
        ("SPI", "fabspi.inf", "12", "11,FABRIKAM", "$(SPIDATA)", "FABRIKAM", "0002"),
    ):
        stem = inf[:-4]
        (pkg / f"Fabrikam.{name}").mkdir()
        (pkg / f"Fabrikam.{name}/Fabrikam.{name}.wm.xml").write_text(
            WM.format(name=name, inf=inf, data=data, folder=folder)
        )
        (pkg / "Drivers" / inf).write_text(
            INF.format(stem=stem, drivers=drivers, extra=extra, hwid=hwid, provider="Fabrikam", tag="FABR")
        )
        (pkg / "Drivers" / f"{stem}.sys").write_bytes(f"{stem} driver bytes\n".encode())
        (pkg / "Drivers" / f"{stem}.bin").write_bytes(f"{stem} extra bytes\n".encode())
        (pkg / "Data" / data.replace("$(SPIDATA)", "spi.dat")).write_text(f"{name} settings\n")
    (pkg / "Fabrikam.Svc").mkdir()
    (pkg / "Fabrikam.Svc/Fabrikam.Svc.pkg.xml").write_text(PKG)
    (pkg / "Drivers/fabsvc.dll").write_bytes(b"fabrikam service dll bytes\n")
    # the workspace names the fixture's projects and CABs (the BSP's own files stay as shipped)
    sconscript = ws / "bsp/SConscript"
    sconscript.write_text(
        sconscript.read_text().replace(
            'Return("cabs")',
            'for project in sorted(Glob("Fabrikam/Package/*/*.wm.xml") + Glob("Fabrikam/Package/*/*.pkg.xml"), key=str):\n'
            "    cabs += env.Package(project)\n"
            'Return("cabs")',
        )
    )
    fm = ws / "bsp/ContosoBoard/Packages/ContosoBoardFM.xml"
    extra = "".join(f'    <PackageFile Path="%BSPPKG_DIR%" Name="%OEM_NAME%.{c}.cab" />\n' for c in CABS)
    fm.write_text(fm.read_text().replace("  </BasePackages>", extra + "  </BasePackages>"))
    return ws


@pytest.fixture(scope="module")
def bsp_ws(tmp_path_factory):
    ws = _fixture(copy_workspace(tmp_path_factory.mktemp("bsp")))
    proc = scons(ws)
    return ws, proc


def _need(tool: str) -> None:
    if not shutil.which(tool):
        pytest.skip(f"{tool} is not installed (./bootstrap --test installs it)")


def _ls(img: Path, path: str) -> list[str]:
    out = subprocess.run(["ntfsls", "-a", "-p", path, str(img)], capture_output=True, text=True, check=True)
    return sorted(n for n in out.stdout.split() if not n.startswith("$") and n not in (".", ".."))


def test_the_bsp_builds_as_shipped(bsp_ws):
    ws, proc = bsp_ws
    assert "Traceback" not in proc.stderr
    cabs = ws / "build/arm64/packages"
    for c in CABS:
        assert (cabs / f"Contoso.{c}.cab").is_file()
    files = {f["path"]: f for f in json.loads((ws / OUT / "partitions/MainOS.json").read_text())["files"]}
    # sources found in the .vcxproj folder (Drivers\, Data\), the item's /variables applied
    assert files["Windows\\System32\\FABRIKAM\\Settings\\spi.dat"]["package"] == "Contoso.Fabrikam.SPI"
    assert files["Windows\\System32\\FABRIKAM\\Settings\\i2c.dat"]["package"] == "Contoso.Fabrikam.I2C"


def test_mixed_case_directories_are_one_folder_in_the_image(bsp_ws):
    ws, _ = bsp_ws
    _need("ntfsls")
    main = ws / OUT / "partitions/MainOS.img"
    system32 = _ls(main, "/Windows/System32")
    assert [n for n in system32 if n.lower() == "fabrikam"] == ["FABRIKAM"]
    assert [n for n in system32 if n.lower() == "drivers"] == ["drivers"]
    assert _ls(main, "/Windows/System32/FABRIKAM") == ["Settings", "fabi2c.bin", "fabspi.bin"]
    assert {"fabi2c.sys", "fabspi.sys"} <= set(_ls(main, "/Windows/System32/drivers"))
    cat = subprocess.run(
        ["ntfscat", str(main), "/Windows/System32/FABRIKAM/fabi2c.bin"], capture_output=True, check=True
    )
    assert cat.stdout == b"fabi2c extra bytes\n"


def _hive(ws: Path, tmp_path: Path, name: str) -> Path:
    _need("ntfscat")
    out = tmp_path / name
    out.write_bytes(
        subprocess.run(
            ["ntfscat", str(ws / OUT / "partitions/MainOS.img"), f"/Windows/System32/config/{name}"],
            capture_output=True,
            check=True,
        ).stdout
    )
    return out


def _hivexget(hive: Path, key: str, value: str) -> str:
    _need("hivexget")
    return subprocess.run(
        ["hivexget", str(hive), key, value], capture_output=True, text=True, check=True
    ).stdout


def test_service_dll_in_the_image(bsp_ws, tmp_path):
    ws, _ = bsp_ws
    system = _hive(ws, tmp_path, "SYSTEM")
    key = "\\ControlSet001\\Services\\FabrikamSvc"
    assert (
        _hivexget(system, key + "\\Parameters", "ServiceDll").strip() == r"%SystemRoot%\System32\fabsvc.dll"
    )
    assert (
        _hivexget(system, key, "ImagePath").strip() == r"%SystemRoot%\System32\svchost.exe -k FabrikamGroup"
    )
    software = _hive(ws, tmp_path, "SOFTWARE")
    group = _hivexget(software, "\\Microsoft\\Windows NT\\CurrentVersion\\SvcHost", "FabrikamGroup")
    assert group.strip() == "FabrikamSvc"
    cat = subprocess.run(
        ["ntfscat", str(ws / OUT / "partitions/MainOS.img"), "/Windows/System32/fabsvc.dll"],
        capture_output=True,
        check=True,
    )
    assert cat.stdout == b"fabrikam service dll bytes\n"


def _errors(proc) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("scons: ***")]


def test_every_missing_input_in_one_run(tmp_path):
    ws = _fixture(copy_workspace(tmp_path / "ws"))
    pkg = ws / BSP
    for gone in ("Drivers/fabi2c.sys", "Drivers/fabi2c.bin", "Data/i2c.dat", "Drivers/fabspi.sys"):
        (pkg / gone).unlink()
    proc = scons(ws, "packages", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    i2c = f"{BSP}/Fabrikam.I2C/Fabrikam.I2C.wm.xml"
    assert _errors(proc) == [
        f"scons: *** {i2c}:6: {BSP}/Drivers/fabi2c.inf: file {BSP}/Drivers/fabi2c.bin does not exist; "
        "create it or fix the source path",
        f"scons: *** {i2c}:6: {BSP}/Drivers/fabi2c.inf: file {BSP}/Drivers/fabi2c.sys does not exist; "
        "create it or fix the source path",
        f"scons: *** {i2c}:9: source file {BSP}/Data/i2c.dat does not exist (looked in {BSP}, "
        f"{BSP}/Fabrikam.I2C); create it or fix the source path",
        "scons: *** 3 problems; nothing was built",
    ]
    assert not list((ws / "build").glob("**/*.cab"))
    # CHECK_ALL=1: every project of the tree, then stop (the SPI project's missing driver too)
    proc = scons(ws, "packages", "CHECK_ALL=1", check=False)
    errors = _errors(proc)
    assert (
        proc.returncode != 0 and len(errors) == 5 and errors[-1] == "scons: *** 4 problems; nothing was built"
    )
    assert (
        f"Fabrikam.SPI.wm.xml:6: {BSP}/Drivers/fabspi.inf: file {BSP}/Drivers/fabspi.sys does not exist"
        in errors[3]
    )
    assert not list((ws / "build").glob("**/*.cab"))


def test_a_source_outside_the_workspace_needs_a_declared_root(tmp_path):
    ws = _fixture(copy_workspace(tmp_path / "ws"))
    drops = tmp_path / "vendor-drops"
    drops.mkdir()
    (drops / "calib.bin").write_bytes(b"calibration\n")
    wm = ws / BSP / "Fabrikam.SPI/Fabrikam.SPI.wm.xml"
    wm.write_text(
        wm.read_text().replace("  </files>", f'    <file source="{drops}\\calib.bin" />\n  </files>')
    )
    proc = scons(ws, "packages", check=False)
    assert proc.returncode != 0 and _errors(proc) == [
        f'scons: *** {BSP}/Fabrikam.SPI/Fabrikam.SPI.wm.xml:10: source "{drops}\\calib.bin" resolves to '
        f"{drops}/calib.bin, outside the workspace and the declared source roots; move it into the tree or "
        "declare its folder in FFU_SOURCE_ROOTS (SOURCE_ROOTS=)"
    ]
    proc = scons(ws, "packages", f"SOURCE_ROOTS={drops}")
    assert (ws / "build/arm64/packages/Contoso.Fabrikam.SPI.cab").is_file()


def test_a_payload_turned_into_a_host_symlink_after_a_build_is_refused(tmp_path):
    """The plan cache keeps plans by file state; the package action plans again and confines again,
    so a payload replaced by a symlink to a host file never reaches a CAB."""
    ws = _fixture(copy_workspace(tmp_path / "ws"))
    scons(ws, "packages")
    cab = ws / "build/arm64/packages/Contoso.Fabrikam.I2C.cab"
    before = cab.read_bytes()
    data = ws / BSP / "Data/i2c.dat"
    data.unlink()
    data.symlink_to("/etc/passwd")
    proc = scons(ws, "packages", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    # refused by planning, or, when the stored plan is reused (the file's type and spelling are
    # unchanged; a plan is only stored once its inputs are 2 s old), by the package action's own plan
    [error] = _errors(proc)
    assert re.fullmatch(
        r"scons: \*\*\* (\[build/arm64/packages/Contoso\.Fabrikam\.I2C\.cab\] )?"
        + re.escape(
            f'{BSP}/Fabrikam.I2C/Fabrikam.I2C.wm.xml:9: source "Data\\i2c.dat" resolves to /etc/passwd, '
            "outside the workspace and the declared source roots; move it into the tree or declare its "
            "folder in FFU_SOURCE_ROOTS (SOURCE_ROOTS=)"
        ),
        error,
    )
    assert not cab.exists() or cab.read_bytes() == before
