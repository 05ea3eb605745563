"""End to end, issue 15: a driver's INF warnings reach the user once per package build (and
packages.json), Include=/Needs= sections are installed from the included INF, and the driver
store folder follows the driver's files."""

import json
import re
import subprocess
from pathlib import Path

import pytest

from scons_util import built, copy_workspace, scons

pytestmark = pytest.mark.e2e
PKG = Path("bsp/ContosoBoard/Packages/ContosoBoard.Drv")
CAB = Path("build/arm64/packages/Contoso.ContosoBoard.Drv.cab")
UART = Path("bsp/ContosoBoard/Packages/ContosoBoard.UART/contosouart.inf")

WM = """<?xml version="1.0" encoding="utf-8"?>
<identity xmlns="urn:Microsoft.CompPlat/ManifestSchema.v1.00"
    owner="$(OEMNAME)" namespace="ContosoBoard" name="Drv" legacyName="$(OEMNAME).ContosoBoard.Drv">
  <onecorePackageInfo targetPartition="MainOS" releaseType="Production" ownerType="SiliconVendor" />
  <drivers>
    <driver>
      <inf source=".\\drv.inf" />
    </driver>
  </drivers>
</identity>
"""
DRV_INF = r"""[Version]
Signature   = "$WINDOWS NT$"
Class       = System
ClassGuid   = {4d36e97d-e325-11ce-bfc1-08002be10318}
Provider    = %P%
DriverVer   = 11/01/2026,1.0.0.0
PnpLockdown = 1
[DestinationDirs]
DefaultDestDir = 12
[SourceDisksNames]
1 = %P%,,,""
[SourceDisksFiles]
drv.sys = 1
[Manufacturer]
%P% = M,NTarm64
[M.NTarm64]
%D% = Dev, ACPI\CTSO0099
[Dev.NT]
CopyFiles = Drv_Files
Include = helper.inf, ks.inf
Needs = Helper.Install, KS.Registration
[Drv_Files]
drv.sys
[Dev.NT.Services]
AddService = drv, 0x2, Drv_Svc
Include = wudfrd.inf
Needs = WUDFRD.NT.Services
[Drv_Svc]
ServiceType   = 1
StartType     = 3
ErrorControl  = 1
ServiceBinary = %12%\drv.sys
[Strings]
P = "Contoso"
D = "Contoso test device"
"""
HELPER_INF = r"""[Version]
Signature = "$WINDOWS NT$"
Class     = System
ClassGuid = {4d36e97d-e325-11ce-bfc1-08002be10318}
Provider  = %P%
[DestinationDirs]
Helper_Files = 11
[SourceDisksNames]
1 = %P%,,,""
[SourceDisksFiles]
helper.dll = 1
[Helper.Install]
CopyFiles = Helper_Files
AddReg = Helper_Reg
[Helper_Files]
helper.dll
[Helper_Reg]
HKLM,Software\Contoso\Helper,From,,"%HS%"
[Strings]
P = "Contoso helper"
HS = "the helper's own strings"
"""


def _warnings(proc) -> list[str]:
    return [ln for ln in proc.stderr.splitlines() if ": warning: " in ln]


def _manifest(ws: Path) -> str:
    listing = subprocess.run(["cabextract", "-l", str(ws / CAB)], capture_output=True, text=True).stdout
    name = re.search(r"(arm64_dual_drv\.inf_\S+\.manifest)", listing).group(1)
    return subprocess.run(
        ["cabextract", "-p", "-F", name, str(ws / CAB)], capture_output=True, check=True
    ).stdout.decode("utf-8")


def _folder(manifest: str) -> str:
    folders = set(re.findall(r"drv\.inf_arm64_[0-9a-f]{16}", manifest))
    assert len(folders) == 1, folders
    return folders.pop()


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    ws = copy_workspace(tmp_path_factory.mktemp("ws"))
    (ws / PKG).mkdir()
    (ws / PKG / "ContosoBoard.Drv.wm.xml").write_text(WM)
    (ws / PKG / "drv.inf").write_text(DRV_INF.replace("\n", "\r\n"))
    (ws / PKG / "helper.inf").write_text(HELPER_INF.replace("\n", "\r\n"))
    (ws / PKG / "drv.sys").write_bytes(b"driver v1\n")
    (ws / PKG / "helper.dll").write_bytes(b"helper\n")
    return ws


def test_include_needs_and_warning_once(ws):
    proc = scons(ws, "packages")
    assert built(proc) and "Contoso.ContosoBoard.Drv.cab" in built(proc)
    warned = _warnings(proc)
    # the inbox ks.inf is applied on the device: one line naming it; WUDFRD.NT.Services is OS-owned
    assert len(warned) == 1, proc.stderr
    assert re.fullmatch(
        rf"{re.escape(str(PKG / 'drv.inf'))}:21: warning: \[Dev\.NT\] Needs \[KS\.Registration\] of ks\.inf, .*",
        warned[0],
    ), warned
    manifest = _manifest(ws)
    folder = _folder(manifest)
    # helper.inf's section ran with its own DestinationDirs (11) and strings
    assert 'name="helper.dll" destinationPath="$(runtime.system32)\\"' in manifest
    assert f'destinationPath="$(runtime.system32)\\DriverStore\\FileRepository\\{folder}\\"' in manifest
    assert 'keyName="HKEY_LOCAL_MACHINE\\Software\\Contoso\\Helper"' in manifest
    assert "the helper&apos;s own strings" in manifest or "the helper's own strings" in manifest
    lock = "HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Setup\\PnpLockdownFiles\\"
    assert f'keyName="{lock}%SystemRoot%/System32/drivers/drv.sys"' in manifest
    assert f'keyName="{lock}%SystemRoot%/System32/helper.dll"' in manifest
    assert 'name="FileSize" valueType="REG_QWORD"' in manifest
    # a no-op run builds and prints nothing
    again = scons(ws, "packages")
    assert built(again) == [] and _warnings(again) == [], again.stderr
    assert scons(ws, "-q", "packages", check=False).returncode == 0


def test_changed_driver_file_changes_the_store_folder(ws):
    scons(ws, "packages")
    before = _folder(_manifest(ws))
    (ws / PKG / "drv.sys").write_bytes(b"driver v2, longer\n")
    proc = scons(ws, "packages")
    assert built(proc) == ["Contoso.ContosoBoard.Drv.cab"]
    after = _folder(_manifest(ws))
    assert after != before
    manifest = _manifest(ws)
    assert before not in manifest
    assert len(_warnings(proc)) == 1  # printed again: the CAB was built again
    again = scons(ws, "packages")
    assert built(again) == [] and _warnings(again) == []
    assert scons(ws, "-q", "packages", check=False).returncode == 0


def test_warning_in_packages_json(ws):
    inf = ws / UART  # UTF-16 LE with a BOM, CRLF
    text = inf.read_bytes().decode("utf-16")
    text = text.replace(
        "[UART_Device.NT]\r\n", "[UART_Device.NT]\r\nInclude = ks.inf\r\nNeeds = KS.Registration\r\n"
    )
    inf.write_bytes(text.encode("utf-16"))
    line = text.splitlines().index("Needs = KS.Registration") + 1
    proc = scons(ws)
    expect = f"{UART}:{line}: warning: [UART_Device.NT] Needs [KS.Registration] of ks.inf"
    warned = [w for w in _warnings(proc) if w.startswith(str(UART))]
    assert len(warned) == 1 and warned[0].startswith(expect), proc.stderr
    report = json.loads((ws / "build/arm64/SampleA/Test/packages.json").read_text())
    pkgs = {p["name"]: p for ps in report["partitions"].values() for p in ps}
    assert pkgs["Contoso.ContosoBoard.UART"]["warnings"] == warned
    assert pkgs["Contoso.ContosoBoard.GPIO"]["warnings"] == []
    again = scons(ws)
    assert _warnings(again) == [] and built(again) == []


UMDF_INF = r"""[Version]
Signature = "$WINDOWS NT$"
Class     = System
ClassGuid = {4d36e97d-e325-11ce-bfc1-08002be10318}
Provider  = %P%
DriverVer = 11/01/2026,1.0.0.0
[DestinationDirs]
DefaultDestDir = 13
[SourceDisksNames]
1 = %P%,,,""
[SourceDisksFiles]
ud.dll = 1
[Manufacturer]
%P% = M,NTarm64
[M.NTarm64]
%P% = Dev, ACPI\CTSO0098
[Dev.NT]
CopyFiles = UFiles
[UFiles]
ud.dll
[Dev.NT.Services]
Include = WUDFRD.inf
Needs = WUDFRD.NT.Services
[Dev.NT.Wdf]
UmdfService = ud, Umdf_Sect
UmdfServiceOrder = ud
[Umdf_Sect]
UmdfLibraryVersion = 2.15.0
ServiceBinary = %13%\ud.dll
[Strings]
P = "Contoso"
"""


def test_needs_lockdown_and_umdf_in_the_image(ws):
    """The Drv package in the image: the helper's value, PnpLockdownFiles and the WUDF key's
    descriptor reach MainOS (partitions/MainOS.json records what was installed)."""
    from ffuforge.package import infinstall

    fm = ws / "bsp/ContosoBoard/Packages/ContosoBoardFM.xml"
    gpio = '<PackageFile Path="%BSPPKG_DIR%" Name="%OEM_NAME%.ContosoBoard.GPIO.cab" />'
    fm.write_text(fm.read_text().replace(gpio, gpio + gpio.replace("GPIO", "Drv")))
    (ws / PKG / "umdf.inf").write_text(UMDF_INF.replace("\n", "\r\n"))
    (ws / PKG / "ud.dll").write_bytes(b"umdf driver")
    wm = ws / PKG / "ContosoBoard.Drv.wm.xml"
    wm.write_text(
        wm.read_text().replace("</drivers>", '<driver><inf source=".\\umdf.inf" /></driver></drivers>')
    )
    proc = scons(ws)
    umdf = [w for w in _warnings(proc) if "umdf.inf" in w]
    assert len(umdf) == 1 and "Umdf* values" in umdf[0], proc.stderr  # WUDFRD.NT.Services: silent
    main = json.loads((ws / "build/arm64/SampleA/Test/partitions/MainOS.json").read_text())
    values = {(r["key"].lower(), r["name"].lower()): r for r in main["registry"]}
    helper = values[(r"hkey_local_machine\software\contoso\helper", "from")]
    assert helper["package"] == "Contoso.ContosoBoard.Drv"
    assert bytes.fromhex(helper["data"]).decode("utf-16-le") == "the helper's own strings\0"
    lock = r"hkey_local_machine\software\microsoft\windows\currentversion\setup\pnplockdownfiles"
    assert bytes.fromhex(
        values[(lock + r"\%systemroot%/system32/drivers/drv.sys", "class")]["data"]
    ) == bytes([4, 0, 0, 0])
    keys = {s["key"]: s["sddl"] for s in main["security"] if "key" in s}
    assert keys[infinstall.WUDF] == infinstall.WUDF_SDDL
    again = scons(ws)
    assert _warnings(again) == [] and built(again) == []
