"""A new user's day, end to end: in a copy of the sample workspace, a driver (an INF and a .sys written
here), a file package, a registry package and a product are added with `ffuforge new` / `ffuforge
feature` only, then `scons PRODUCT=<new>` builds them into the image. The contents are checked in
partitions/MainOS.json, independently with ntfs-3g's ntfscat and hivex's hivexget on the partition
image, and with `ffuforge ls` / `ffuforge reg` where the tree has them."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scons_util import copy_workspace, scons

pytestmark = pytest.mark.e2e
OUT = Path("build/arm64/Widget/Test")
INF = """; widget.inf: a one-file kernel driver written by the new-user test
[Version]
Signature   = "$WINDOWS NT$"
Class       = System
ClassGuid   = {4d36e97d-e325-11ce-bfc1-08002be10318}
Provider    = %Mfg%
DriverVer   = 12/01/2026,1.0.0.0

[DestinationDirs]
DefaultDestDir = 12

[SourceDisksNames]
1 = %Disk%,,,""

[SourceDisksFiles]
widget.sys = 1

[Manufacturer]
%Mfg% = Std, NTarm64, NTamd64

[Std.NTarm64]
%Desc% = Widget_Device, ACPI\\WDGT0001

[Std.NTamd64]
%Desc% = Widget_Device, ACPI\\WDGT0001

[Widget_Device.NT]
CopyFiles = Widget_Copy

[Widget_Copy]
widget.sys

[Widget_Device.NT.Services]
AddService = widget, 0x00000002, Widget_Service

[Widget_Service]
DisplayName   = %Desc%
ServiceType   = 1
StartType     = 3
ErrorControl  = 1
ServiceBinary = %12%\\widget.sys

[Strings]
Mfg  = "Contoso"
Disk = "Widget disk"
Desc = "Contoso Widget"
"""
SYS = b"MZ" + bytes(range(256)) * 4  # payload bytes the image must carry unchanged


def _ffuforge(ws: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(ws / "site_scons"), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "ffuforge", *args], cwd=ws, capture_output=True, text=True, env=env
    )


def _ok(ws: Path, *args: str) -> list[str]:
    proc = _ffuforge(ws, *args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_a_new_user_adds_a_driver_files_registry_and_a_product_then_builds(tmp_path):
    ws = copy_workspace(tmp_path / "ws")
    src = tmp_path / "src"
    src.mkdir()
    (src / "widget.inf").write_text(INF, encoding="utf-16")  # UTF-16 with BOM, as most real INFs
    (src / "widget.sys").write_bytes(SYS)
    (src / "welcome.txt").write_text("Welcome to the Widget\n")

    _ok(ws, "new", "product", "Widget")
    _ok(ws, "new", "driver", str(src / "widget.inf"), "--product", "Widget")
    _ok(ws, "new", "file", str(src / "welcome.txt"), "--dest", "\\OEM\\Widget", "--product", "Widget")
    _ok(ws, "new", "registry", "HKLM\\SOFTWARE\\Contoso\\NewUser", "Mode=SZ:fast", "Level=REG_DWORD:0x2a",
        "--product", "Widget")  # fmt: skip
    _ok(ws, "feature", "add", "Widget", "CONTOSOBOARD_UART")
    again = _ok(ws, "new", "driver", str(src / "widget.inf"), "--product", "Widget")
    assert again and all(line.startswith("already present") for line in again)

    scons(ws, "PRODUCT=Widget")
    main = json.loads((ws / OUT / "partitions/MainOS.json").read_text())
    files = {f["path"]: f for f in main["files"]}
    assert files["Windows\\System32\\drivers\\widget.sys"]["package"] == "Contoso.Drivers.widget"
    assert files["OEM\\Widget\\welcome.txt"]["package"] == "Contoso.Files.welcome"
    values = {(r["key"], r["name"]): r for r in main["registry"]}
    mode = values[("HKEY_LOCAL_MACHINE\\Software\\Contoso\\NewUser", "Mode")]
    assert (mode["type"], bytes.fromhex(mode["data"])) == (1, "fast\0".encode("utf-16-le"))
    assert mode["package"] == "Contoso.Registry.NewUser"
    assert ("HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Services\\widget", "ImagePath") in values
    packages = {p["name"] for p in main["packages"]}
    assert {"Contoso.Drivers.widget", "Contoso.Files.welcome", "Contoso.Registry.NewUser"} <= packages
    assert "Contoso.ContosoBoard.UART" in packages

    img = ws / OUT / "partitions/MainOS.img"
    if shutil.which("ntfscat") and shutil.which("hivexget"):
        cat = subprocess.run(
            ["ntfscat", str(img), "/Windows/System32/drivers/widget.sys"], capture_output=True, check=True
        )
        assert cat.stdout == SYS
        cat = subprocess.run(
            ["ntfscat", str(img), "/OEM/Widget/welcome.txt"], capture_output=True, check=True
        )
        assert cat.stdout == b"Welcome to the Widget\n"
        hive = tmp_path / "SOFTWARE"
        with open(hive, "wb") as fh:
            subprocess.run(["ntfscat", str(img), "/Windows/System32/config/SOFTWARE"], stdout=fh, check=True)
        get = subprocess.run(
            ["hivexget", str(hive), "\\Contoso\\NewUser", "Level"], capture_output=True, text=True
        )
        assert get.stdout.strip() == "42"

    if (ws / "site_scons/ffuforge/cli/ls.py").exists():  # ffuforge ls/reg (#19 Deliver 2) in this tree
        ffu = str(OUT / "Flash.ffu")
        listing = "\n".join(_ok(ws, "ls", ffu, "OEM"))
        assert "OEM\\Widget\\welcome.txt" in listing and "Contoso.Files.welcome" in listing
        reg = "\n".join(_ok(ws, "reg", ffu, "HKLM\\SOFTWARE\\Contoso\\NewUser"))
        assert "Mode" in reg and "REG_SZ" in reg and "fast" in reg and "0x2a" in reg


def _installed(ws: Path, package: str) -> tuple[list, list]:
    """What `package` puts in MainOS (files but its servicing record, and registry values)."""
    main = json.loads((ws / "build/arm64/SampleA/Test/partitions/MainOS.json").read_text())
    files = [f for f in main["files"] if f["package"] == package and "\\servicing\\" not in f["path"]]
    return files, [r for r in main["registry"] if r["package"] == package]


def test_a_converted_legacy_project_installs_the_same(tmp_path):
    ws = copy_workspace(tmp_path / "ws")
    scons(ws)
    cab = ws / "build/arm64/packages/Contoso.Legacy.Tools.cab"
    shutil.copy2(cab, tmp_path / "old.cab")
    before = _installed(ws, "Contoso.Legacy.Tools")
    assert len(before[0]) == 2 and len(before[1]) == 4
    out = _ok(ws, "convert", "packages/Legacy.Tools/Legacy.Tools.pkg.xml")
    assert out == [
        "created packages/Legacy.Tools/Legacy.Tools.wm.xml: from packages/Legacy.Tools/Legacy.Tools.pkg.xml"
    ]
    (ws / "packages/Legacy.Tools/Legacy.Tools.pkg.xml").unlink()
    scons(ws)
    assert _installed(ws, "Contoso.Legacy.Tools") == before  # same paths, bytes, value types and data
    if shutil.which("cabextract"):  # independently: the CABs differ only in the kit's macro spelling
        trees = []
        for name, path in (("old", tmp_path / "old.cab"), ("new", cab)):
            subprocess.run(
                ["cabextract", "-q", "-d", str(tmp_path / name), str(path)], check=True, capture_output=True
            )
            root = tmp_path / name
            trees.append({str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()})
        old, new = trees
        assert old.keys() == new.keys()
        manifests = [k for k in old if k.endswith(".manifest")]
        assert any(old[k] != new[k] for k in manifests)
        assert all(old[k].replace(b"$(runtime.root)", b"$(runtime.bootDrive)") == new[k] for k in manifests)
        payload = [k for k in old if k.endswith("tools.cmd")]
        assert payload and all(old[k] == new[k] for k in payload)
        # update.mum names the manifest's size and the file's device path; update.cat its hashes
        assert old["update.mum"].replace(b"$(runtime.root)", b"$(runtime.bootDrive)") != old["update.mum"]
