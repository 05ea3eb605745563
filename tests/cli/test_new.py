"""`ffuforge new|feature|convert` in a copy of the sample workspace (no build: tests/e2e/test_new_user.py
builds what they make). Idempotent, never overwriting, one line per file, nothing written on refusal."""

import shutil
from pathlib import Path

import pytest

from ffuforge.cli import main
from ffuforge.cli import new as newcli
from ffuforge.features import oeminput
from ffuforge.features.fm import parse_fm_bytes
from ffuforge.package import project

ROOT = Path(__file__).resolve().parents[2]
INF = """; a small driver INF for the authoring tests
[Version]
Signature = "$WINDOWS NT$"
Class = System
ClassGuid = {4d36e97d-e325-11ce-bfc1-08002be10318}
Provider = %Mfg%
DriverVer = 12/01/2026,1.0.0.0

[DestinationDirs]
DefaultDestDir = 12

[SourceDisksNames]
1 = %Disk%,,,""
2 = %Disk%,,,"sub"

[SourceDisksFiles]
probe.sys = 1
probehelp.dll = 2

[Manufacturer]
%Mfg% = Std, NTarm64

[Std.NTarm64]
%Desc% = Probe_Device, ACPI\\PRB0001

[Probe_Device.NT]
CopyFiles = Probe_Copy, Probe_Help

[Probe_Copy]
probe.sys

[Probe_Help]
probehelp.dll

[Probe_Device.NT.Services]
AddService = probe, 0x00000002, Probe_Service

[Probe_Service]
ServiceType = 1
StartType = 3
ErrorControl = 1
ServiceBinary = %12%\\probe.sys

[Strings]
Mfg = "Contoso"
Disk = "Probe disk"
Desc = "Contoso Probe"
"""


@pytest.fixture
def ws(tmp_path, monkeypatch):
    for part in ("packages", "bsp", "products"):
        shutil.copytree(ROOT / part, tmp_path / part)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def run(capsys, *argv):
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out.splitlines(), out.err


@pytest.fixture
def driver_src(tmp_path_factory):
    src = tmp_path_factory.mktemp("src")
    (src / "probe.inf").write_text(INF, encoding="utf-8-sig")
    (src / "probe.sys").write_bytes(b"MZ probe")
    (src / "sub").mkdir()
    (src / "sub/probehelp.dll").write_bytes(b"MZ help")
    return src


def test_new_driver_creates_the_project_payload_fm_entry_and_selection(ws, capsys, driver_src):
    rc, out, err = run(capsys, "new", "driver", str(driver_src / "probe.inf"), "--product", "SampleA")
    assert rc == 0, err
    assert out == [
        f"created packages/Drivers.probe/probe.inf: from {driver_src}/probe.inf",
        f"created packages/Drivers.probe/probe.sys: from {driver_src}/probe.sys",
        f"created packages/Drivers.probe/sub/probehelp.dll: from {driver_src}/sub/probehelp.dll",
        "created packages/Drivers.probe/Drivers.probe.wm.xml: driver package Drivers.probe",
        "updated packages/OEMFM.xml: + %OEM_NAME%.Drivers.probe.cab as feature DRIVERS_PROBE",
        "updated products/SampleA/TestOEMInput.xml: + OEM feature DRIVERS_PROBE",
        "updated products/SampleA/RetailOEMInput.xml: + OEM feature DRIVERS_PROBE",
    ]
    p = project.load(ws / "packages/Drivers.probe/Drivers.probe.wm.xml")
    assert (p.owner, p.namespace, p.name, p.legacy_name) == (
        "$(OEMNAME)",
        "Drivers",
        "probe",
        "$(OEMNAME).Drivers.probe",
    )
    assert [d.inf for d in p.drivers] == [".\\probe.inf"]
    fm = parse_fm_bytes((ws / "packages/OEMFM.xml").read_bytes(), "OEMFM.xml")
    assert [list(x.feature_ids) for x in fm.packages if x.name == "%OEM_NAME%.Drivers.probe.cab"] == [
        ["DRIVERS_PROBE"]
    ]
    oi = oeminput.load(ws / "products/SampleA/RetailOEMInput.xml")
    assert oi.oem_features[-1].value == "DRIVERS_PROBE"

    before = _snapshot(ws)
    rc, out, _ = run(capsys, "new", "driver", str(driver_src / "probe.inf"), "--product", "SampleA")
    assert rc == 0 and out and all(line.startswith("already present ") for line in out), out
    assert _snapshot(ws) == before


def test_a_file_with_other_content_is_never_overwritten_and_nothing_is_written(ws, capsys, driver_src):
    target = ws / "packages/Drivers.probe/Drivers.probe.wm.xml"
    target.parent.mkdir()
    target.write_text("mine")
    before = _snapshot(ws)
    rc, out, err = run(capsys, "new", "driver", str(driver_src / "probe.inf"), "--product", "SampleA")
    assert rc == 2 and out == []
    assert err.splitlines() == [
        "ffuforge: error: packages/Drivers.probe/Drivers.probe.wm.xml: exists with other content; not "
        "overwriting it (move it away or choose another name)"
    ]
    assert _snapshot(ws) == before


def test_a_missing_driver_file_is_refused(ws, capsys, driver_src):
    (driver_src / "sub/probehelp.dll").unlink()
    before = _snapshot(ws)
    rc, _, err = run(capsys, "new", "driver", str(driver_src / "probe.inf"))
    assert rc == 2 and "sub\\probehelp.dll, which the INF copies, is not beside it" in err
    assert _snapshot(ws) == before


def test_new_file_and_registry(ws, capsys, tmp_path):
    (tmp_path / "motd.txt").write_text("hi")
    rc, out, err = run(
        capsys, "new", "file", str(tmp_path / "motd.txt"), "--dest", "\\OEM\\Info", "--name", "Contoso.Motd"
    )
    assert rc == 0, err
    p = project.load(ws / "packages/Contoso.Motd/Contoso.Motd.wm.xml")
    assert [(f.source, f.dest_dir) for f in p.files] == [(".\\motd.txt", "$(runtime.bootDrive)\\OEM\\Info")]
    assert out[-1] == "updated packages/OEMFM.xml: + %OEM_NAME%.Contoso.Motd.cab as feature CONTOSO_MOTD"

    rc, out, err = run(
        capsys, "new", "registry", "HKLM\\Software\\Contoso\\Probe", "@=SZ:probe", "Level=DWORD:42",
        "List=REG_MULTI_SZ:a;b", "--base",
    )  # fmt: skip
    assert rc == 0, err
    p = project.load(ws / "packages/Registry.Probe/Registry.Probe.wm.xml")
    assert p.regkeys[0].key_name == "$(hklm.software)\\Contoso\\Probe"
    assert [(v.name, v.type, v.value) for v in p.regkeys[0].values] == [
        (None, "REG_SZ", "probe"),
        ("Level", "REG_DWORD", "42"),
        ("List", "REG_MULTI_SZ", "a;b"),
    ]
    assert out[-1] == "updated packages/OEMFM.xml: + base package %OEM_NAME%.Registry.Probe.cab"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["registry", "HKLM\\Software\\X", "N=REG_DWROD:1"], "type 'REG_DWROD' is not one of REG_SZ"),
        (["registry", "HKLM\\Software\\X", "N=DWORD:lots"], "REG_DWORD"),
        (["registry", "HKXX\\Software\\X"], "does not start with a key ffuforge can write"),
        (["file", "motd.txt", "--dest", "\\CON"], "reserved"),
        (["file", "motd.txt", "--dest", "relative\\dir"], "is not a device folder"),
        (["file", "nul.txt", "--dest", "\\OEM"], "file name 'nul.txt' (a source's own name) is not a valid"),
        (["registry", "HKLM\\Software\\X", "--name", "Bad Name.X"], "is not a package name part"),
        (["registry", "HKLM\\Software\\X", "--fm", "nope.xml"], "FM nope.xml does not exist"),
        (["registry", "HKLM\\Software\\X", "--product", "Nope"], "product 'Nope' has no TestOEMInput.xml"),
        (["product", "P2", "--board", "Nope"], "no board 'Nope' under bsp/"),
    ],
)
def test_bad_arguments_are_one_line_and_change_nothing(ws, capsys, argv, message):
    (ws / "motd.txt").write_text("hi")
    (ws / "nul.txt").write_text("hi")
    before = _snapshot(ws)
    rc, out, err = run(capsys, "new", *argv)
    assert rc == 2 and out == [] and len(err.splitlines()) == 1 and message in err, err
    assert _snapshot(ws) == before


def test_new_board_product_and_feature(ws, capsys):
    rc, out, err = run(capsys, "new", "board", "Fabrikam")
    assert rc == 0, err
    assert len(out) == 5 and all(line.startswith("created bsp/Fabrikam/Packages/") for line in out)
    rc, _, err = run(capsys, "new", "product", "Gadget")
    assert rc == 2 and "choose --board: one of ContosoBoard, Fabrikam" in err
    rc, out, err = run(capsys, "new", "product", "Gadget", "--board", "Fabrikam", "--feature", "CUSTOM_BCD")
    assert rc == 0 and out == [
        "created products/Gadget/TestOEMInput.xml: Test image of Gadget on Fabrikam",
        "created products/Gadget/RetailOEMInput.xml: Retail image of Gadget on Fabrikam",
    ]
    oi = oeminput.load(ws / "products/Gadget/TestOEMInput.xml")
    assert (oi.soc.value, oi.device.value) == ("Fabrikam", "Fabrikam")
    assert [a.value for a in oi.additional_fms] == [
        "%BLD_DIR%\\MergedFMs\\FabrikamFM.xml",
        "%BLD_DIR%\\MergedFMs\\OEMFM.xml",
    ]

    rc, out, err = run(
        capsys,
        "new",
        "feature",
        "TOOLS",
        "--package",
        "Custom.BCD",
        "--package",
        "COM.Sample",
        "--product",
        "Gadget",
        "--config",
        "Test",
    )
    assert rc == 0, err
    assert out == [
        "updated packages/OEMFM.xml: + feature TOOLS on %OEM_NAME%.Custom.BCD.cab; + feature TOOLS on %OEM_NAME%.COM.Sample.cab",
        "updated products/Gadget/TestOEMInput.xml: + OEM feature TOOLS",
    ]
    rc, _, err = run(capsys, "new", "feature", "X", "--package", "No.Such")
    assert rc == 2 and "--package No.Such: no project in packages/No.Such" in err

    rc, out, _ = run(capsys, "feature", "remove", "Gadget", "CUSTOM_BCD")
    assert rc == 0 and out == [
        "updated products/Gadget/TestOEMInput.xml: - OEM feature CUSTOM_BCD",
        "updated products/Gadget/RetailOEMInput.xml: - OEM feature CUSTOM_BCD",
    ]
    rc, out, _ = run(capsys, "feature", "remove", "Gadget", "CUSTOM_BCD", "--config", "Retail")
    assert rc == 0 and out == ["not present products/Gadget/RetailOEMInput.xml: OEM feature CUSTOM_BCD"]
    rc, out, _ = run(capsys, "feature", "add", "Gadget", "IOT_SHELL", "--microsoft", "--config", "Retail")
    assert rc == 0 and out == ["updated products/Gadget/RetailOEMInput.xml: + Microsoft feature IOT_SHELL"]


def test_convert_writes_beside_the_source_once(ws, capsys):
    src = ws / "packages/Legacy.Tools/Legacy.Tools.pkg.xml"
    rc, out, err = run(capsys, "convert", str(src))
    assert rc == 0, err
    dst = ws / "packages/Legacy.Tools/Legacy.Tools.wm.xml"
    rel = "packages/Legacy.Tools/Legacy.Tools"
    assert out == [f"created {rel}.wm.xml: from {src}"]
    assert project.load(dst).legacy_name == "$(OEMNAME).Legacy.Tools"
    rc, out, _ = run(capsys, "convert", str(src))
    assert rc == 0 and out == [f"already present {rel}.wm.xml (from {src})"]
    rc, _, err = run(capsys, "convert", str(src), "-o", str(ws / "packages/OEMFM.xml"))
    assert rc == 2 and "exists with other content; not overwriting it" in err


def test_a_second_module_registers_a_noun(monkeypatch, capsys):
    seen = []
    monkeypatch.setitem(
        newcli.NOUNS, "thing", newcli.Noun("a test noun", lambda argv: seen.append(argv) or 0)
    )
    assert main(["new", "thing", "--x"]) == 0 and seen == [["--x"]]
    assert main(["new", "--help"]) == 0
    assert "thing" in capsys.readouterr().out


def test_a_driver_whose_files_are_built_elsewhere_takes_an_import_path(ws, capsys, driver_src):
    (driver_src / "probe.sys").unlink()
    rc, out, err = run(
        capsys, "new", "driver", str(driver_src / "probe.inf"), "--import-path", "$(BLDDIR)\\drivers"
    )
    assert rc == 0, err
    assert [line.split(":")[0] for line in out] == [
        "created packages/Drivers.probe/probe.inf",
        "created packages/Drivers.probe/Drivers.probe.wm.xml",
        "updated packages/OEMFM.xml",
    ]
    p = project.load(ws / "packages/Drivers.probe/Drivers.probe.wm.xml")
    assert [(d.inf, d.default_import_path) for d in p.drivers] == [(".\\probe.inf", "$(BLDDIR)\\drivers")]
