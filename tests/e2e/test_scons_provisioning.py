"""End to end (issue 20): the sample's app (AppInstall route) and provisioning package (compiled
.ppkg) reach MainOS where IoT Core looks for them; independent tools read what is there; the
kit's projects fail with the one-line "setting not supported" error."""

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ffuforge.package import appx

from scons_util import copy_workspace, scons

pytestmark = pytest.mark.e2e
OUT = Path("build/arm64/SampleA/Test")
PUBLISHER = "CN=Contoso Test Code Signing (TEST ONLY), O=Contoso"
NTFS = pytest.mark.skipif(not shutil.which("ntfscat"), reason="ntfs-3g tools not installed")


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    ws = copy_workspace(tmp_path_factory.mktemp("ws"))
    proc = scons(ws)
    ws.joinpath("build.log").write_text(proc.stdout)
    return ws


def _mainos_files(ws) -> dict[str, dict]:
    return {f["path"]: f for f in json.loads((ws / OUT / "partitions/MainOS.json").read_text())["files"]}


def test_routes_in_build_output_and_packages_json(ws):
    log = (ws / "build.log").read_text()
    assert re.search(
        r"^AppInstall Appx\.HelloApp\.appinstall \(route: script; .*UniversalAppInstall", log, re.M
    )
    assert re.search(
        r"^Provisioning Provisioning\.Auto\.ppkg \(route: ppkg; compiled: Accounts/ComputerAccount", log, re.M
    )
    prov = {p["package"]: p for p in json.loads((ws / OUT / "packages.json").read_text())["provisioning"]}
    assert prov["Contoso.Appx.HelloApp"]["route"] == "script"
    assert "UniversalAppInstall/UserContextApp/Application" in prov["Contoso.Appx.HelloApp"]["script"]
    assert prov["Contoso.Provisioning.Auto"]["route"] == "ppkg"
    assert prov["Contoso.Provisioning.Auto"]["path"] == "build/arm64/payload/ppkgs/Provisioning.Auto.ppkg"
    assert scons(ws, "-q", check=False).returncode == 0  # up to date


@NTFS
def test_files_where_the_device_looks(ws, tmp_path):
    files = _mainos_files(ws)
    img = ws / OUT / "partitions/MainOS.img"
    ppkg = files["Windows\\Provisioning\\Packages\\ProvAuto.ppkg"]
    assert ppkg["package"] == "Contoso.Provisioning.Auto"
    listing = subprocess.run(
        ["ntfsls", "-p", "/Windows/Provisioning/Packages", str(img)], capture_output=True, text=True
    )
    assert "ProvAuto.ppkg" in listing.stdout.split()
    data = subprocess.run(
        ["ntfscat", str(img), "/Windows/Provisioning/Packages/ProvAuto.ppkg"], capture_output=True, check=True
    ).stdout
    assert hashlib.sha256(data).hexdigest() == ppkg["sha256"]
    assert data == (ws / "build/arm64/payload/ppkgs/Provisioning.Auto.ppkg").read_bytes()
    got = tmp_path / "ProvAuto.ppkg"
    got.write_bytes(data)
    if shutil.which("file"):
        assert (
            "Windows provisioning package"
            in subprocess.run(["file", "-b", str(got)], capture_output=True, text=True).stdout
        )
    if shutil.which("wimlib-imagex"):
        info = subprocess.run(
            ["wimlib-imagex", "info", str(got)], capture_output=True, text=True, check=True
        ).stdout
        assert re.search(r"^Name:\s+SampleAProv$", info, re.M) and re.search(
            r"^Compression:\s+XPRESS$", info, re.M
        )

    folder = "AppInstall\\HelloAppProv\\"
    assert {p for p in files if p.startswith(folder)} == {
        folder + n for n in ("AppInstall.cmd", "HelloApp.appx", "root.cer")
    }
    assert {files[folder + n]["package"] for n in ("AppInstall.cmd", "HelloApp.appx")} == {
        "Contoso.Appx.HelloApp"
    }
    listing = subprocess.run(
        ["ntfsls", "-p", "/AppInstall/HelloAppProv", str(img)], capture_output=True, text=True
    )
    assert {"AppInstall.cmd", "HelloApp.appx", "root.cer"} <= set(listing.stdout.split())
    app = tmp_path / "HelloApp.appx"
    app.write_bytes(
        subprocess.run(
            ["ntfscat", str(img), "/AppInstall/HelloAppProv/HelloApp.appx"], capture_output=True, check=True
        ).stdout
    )
    info = appx.read_app(app)
    assert (
        info.family_name == "Contoso.HelloApp_" + appx.publisher_id(PUBLISHER)
        and info.architecture == "arm64"
    )
    assert info.signed  # by the build's (test) signer, whose subject is the manifest's Publisher
    if shutil.which("osslsigncode"):
        root = str(ws / "testcerts/root.crt")
        proc = subprocess.run(
            ["osslsigncode", "verify", "-in", str(app), "-CAfile", root], capture_output=True, text=True
        )
        assert proc.returncode == 0 and "Succeeded" in proc.stdout, proc.stdout + proc.stderr
    script = subprocess.run(
        ["ntfscat", str(img), "/AppInstall/HelloAppProv/AppInstall.cmd"], capture_output=True, check=True
    ).stdout.decode()
    assert f"iotstartup.exe add headed {info.aumid}" in script
    assert 'deployappx.exe install force "%HERE%HelloApp.appx"' in script
    hook = subprocess.run(
        ["ntfscat", str(img), "/Windows/System32/oemcustomization.cmd"], capture_output=True, check=True
    ).stdout.decode()
    assert "\\AppInstall\\*" in hook and "AppInstall.cmd" in hook


def test_kit_appx_project_fails_with_one_line(ws, corpus, tmp_path):
    """The kit's Appx project as it is (its .ppkg from $(BLDDIR)\\ppkgs): the app settings are
    named in one line, before anything is built."""
    w = copy_workspace(tmp_path / "w")
    src = corpus / "addonkit/17134/Source-arm/Packages/Appx.IoTOnboardingTask"
    shutil.copytree(src, w / "packages/Appx.IoTOnboardingTask")
    proc = scons(w, "packages", check=False)
    assert proc.returncode == 2
    err = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(err) == 1, proc.stderr
    assert err[0].startswith(
        "scons: *** packages/Appx.IoTOnboardingTask/customizations.xml:15: setting not supported: "
    )
    names = set(re.findall(r"([A-Za-z/]+) \(line \d+\)", err[0]))
    assert names == {
        "Policies/ApplicationManagement/AllowAllTrustedApps",
        "Certificates/RootCertificates/RootCertificate",
        "StartupBackgroundTasks/ToAdd/Add",
        "UniversalAppInstall/UserContextApp/Application",
    }
    assert not (w / "build/arm64/packages").exists() or not list((w / "build/arm64/packages").glob("*.cab"))


def test_explicit_provisioning_package_of_a_kit_product(corpus, tmp_path):
    """env.ProvisioningPackage(): the kit's Products/SampleA/prov compiles except its policies."""
    w = copy_workspace(tmp_path / "w")
    prov = w / "products/SampleA/prov"
    prov.mkdir()
    shutil.copy(corpus / "addonkit/17134/Source-arm/Products/SampleA/prov/customizations.xml", prov)
    sconstruct = w / "SConstruct"
    sconstruct.write_text(
        sconstruct.read_text()
        + '\nenv.Alias("prov", env.ProvisioningPackage("#build/ppkgs/SampleAProv.ppkg", "products/SampleA/prov/customizations.xml"))\n'
    )
    proc = scons(w, "prov", check=False)
    assert proc.returncode == 2
    assert re.fullmatch(
        r"scons: \*\*\* products/SampleA/prov/customizations.xml:15: setting not supported: "
        r"Policies/ApplicationManagement/AllowAllTrustedApps \(line 15\), Policies/Connectivity/AllowBluetooth "
        r"\(line 18\), Policies/Connectivity/AllowNFC \(line 19\), Policies/Connectivity/AllowUSBConnection "
        r"\(line 20\); .*",
        proc.stderr.strip(),
    ), proc.stderr
    text = (prov / "customizations.xml").read_text(encoding="utf-8-sig")
    (prov / "customizations.xml").write_text(
        re.sub(
            r"<Policies>.*</Policies>",
            "<Accounts><ComputerAccount><ComputerName>A</ComputerName></ComputerAccount></Accounts>",
            text,
            flags=re.S,
        )
    )
    proc = scons(w, "prov")
    assert "Provisioning SampleAProv.ppkg (route: ppkg; compiled: Accounts/ComputerAccount)" in proc.stdout
    assert (w / "build/ppkgs/SampleAProv.ppkg").read_bytes()[:8] == b"MSWIM\0\0\0"


PREBUILT_WM = """<?xml version="1.0" encoding="utf-8"?>
<identity xmlns="urn:Microsoft.CompPlat/ManifestSchema.v1.00" name="Prov" namespace="Vendor" owner="$(OEMNAME)" legacyName="$(OEMNAME).Vendor.Prov">
  <onecorePackageInfo targetPartition="MainOS" releaseType="Production" ownerType="OEM" />
  <files>
    <file source="$(BLDDIR)\\ppkgs\\Vendor.ppkg" destinationDir="$(runtime.windows)\\Provisioning\\Packages" />
  </files>
</identity>
"""


def test_a_ppkg_made_elsewhere_is_used_as_it_is(tmp_path):
    """No customizations.xml beside the project: its .ppkg (e.g. exported by Windows Configuration
    Designer) goes in unchanged; one that is not a WIM is refused in one line."""
    from ffuforge.formats import wim

    w = copy_workspace(tmp_path / "w")
    (w / "packages/Vendor.Prov").mkdir()
    (w / "packages/Vendor.Prov/Vendor.Prov.wm.xml").write_text(PREBUILT_WM)
    made = w / "build/arm64/payload/ppkgs/Vendor.ppkg"
    wim.write_wim(
        made,
        [wim.WimEntry("Multivariant/Multivariant.xml", b"<x/>")],
        image_name="V",
        timestamp=0,
        compression="xpress",
    )
    scons(w, "build/arm64/packages/Contoso.Vendor.Prov.cab")
    from ffuforge.formats.cab import reader

    with reader.CabReader(w / "build/arm64/packages/Contoso.Vendor.Prov.cab") as cab:
        names = [m.name for m in cab.members]
    assert any(n.lower().endswith("vendor.ppkg") for n in names), names
    made.write_bytes(b"PK\x03\x04 not a WIM")
    proc = scons(w, "build/arm64/packages/Contoso.Vendor.Prov.cab", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "scons: *** build/arm64/payload/ppkgs/Vendor.ppkg: not a provisioning package (a .ppkg is a WIM "
        "image, starting with MSWIM); rebuild it"
    )
