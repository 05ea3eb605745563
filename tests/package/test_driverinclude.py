"""Issue 15, the parts after the first landing: Include=/Needs=, UMDF's WUDF key, the store folder
following the driver files, PnpLockdownFiles and FileSize, INF warnings kept on the variant."""

import hashlib

import pytest
from lxml import etree

from ffuforge.errors import ConfigError
from ffuforge.package import driverstore, infinstall, project, variant
from ffuforge.package.build import BuildSettings, build_variant

from helpers import wm

ASM = "{urn:schemas-microsoft-com:asm.v3}"
SVC = infinstall.SERVICES
LOCK = driverstore.LOCKDOWN

MAIN = r"""[Version]
Signature = "$WINDOWS NT$"
Class     = System
ClassGuid = {4d36e97d-e325-11ce-bfc1-08002be10318}
Provider  = %P%
DriverVer = 11/01/2026,1.0.0.0
[DestinationDirs]
DefaultDestDir = 12
[SourceDisksNames]
1 = %P%,,,""
[SourceDisksFiles]
main.sys = 1
[Manufacturer]
%P% = M,NTarm64
[M.NTarm64]
%D% = Dev, ACPI\X1
[Dev.NT]
Include = helper.inf, ks.inf
Needs = Helper.Install, KS.Registration, Own.Extra
CopyFiles = Main_Files
AddReg = Main_Reg
[Dev.NT.HW]
Include = helper.inf
Needs = Helper.Hw
[Dev.NT.Services]
Include = helper.inf, WUDFRD.inf
Needs = Helper.Install.Services, WUDFRD.NT.Services
AddService = main, 0, Main_Svc
[Own.Extra]
AddReg = Own_Reg
[Own_Reg]
HKLM,Software\Contoso\Main,Own,,"%D%"
[Main_Files]
main.sys
[Main_Reg]
HKR,,FromMain,0x00010001,1
HKLM,Software\Contoso\Shared,Who,,"main wins"
[Main_Svc]
ServiceType = 1
StartType = 3
ErrorControl = 1
ServiceBinary = %12%\main.sys
[Strings]
P = "Contoso"
D = "Main device"
"""
HELPER = r"""[Version]
Signature = "$WINDOWS NT$"
Class     = System
ClassGuid = {4d36e97d-e325-11ce-bfc1-08002be10318}
Provider  = %P%
[DestinationDirs]
Helper_Files = 11,helper
[SourceDisksNames]
1 = %P%,,,"sub"
[SourceDisksFiles]
help.dll = 1
[Helper.Install]
CopyFiles = Helper_Files
AddReg = Helper_Reg
[Helper.Hw]
AddReg = Helper_HwReg
[Helper_Files]
help.dll
[Helper_Reg]
HKR,,FromHelper,,"%HS%"
HKLM,Software\Contoso\Shared,Who,,"helper"
HKLM,Software\Contoso\Helper,Path,0x00020000,"%11%\helper\help.dll"
[Helper_HwReg]
HKR,,HwValue,0x00010001,5
[Helper.Install.Services]
AddService = helpsvc, 0x2, Help_Svc
[Help_Svc]
DisplayName = %HS%
ServiceType = 1
StartType = 3
ErrorControl = 1
ServiceBinary = %12%\helpsvc.sys
AddReg = Help_SvcReg
[Help_SvcReg]
HKR,Parameters,Level,0x00010001,7
[Strings]
P = "Contoso helper"
HS = "Helper strings"
"""


def _write(tmp_path, main: str = MAIN, helper: str | None = HELPER):
    (tmp_path / "main.inf").write_text(main.replace("\n", "\r\n"))
    if helper is not None:
        (tmp_path / "Helper.INF").write_text(helper.replace("\n", "\r\n"))  # found case-insensitively
    (tmp_path / "main.sys").write_bytes(b"main driver")
    (tmp_path / "sub").mkdir(exist_ok=True)
    (tmp_path / "sub" / "help.dll").write_bytes(b"helper dll")
    return wm(tmp_path, '<drivers><driver><inf source="main.inf"/></driver></drivers>')


def _plan(path, driver_files: bool = True) -> variant.Variant:
    opts = variant.BuildOptions(cpu="arm64")
    return variant.plan(project.load(path, path.name), opts, "", top=path.parent, driver_files=driver_files)[
        0
    ]


def _values(v: variant.Variant) -> dict[tuple[str, str], bytes]:
    return {(r.key.lower(), r.name.lower()): r.data.data for r in v.registry}


def sz(text: str) -> bytes:
    return (text + "\0").encode("utf-16-le")


def test_needs_sections_run_with_the_included_infs_strings_and_dirids(tmp_path):
    v = _plan(_write(tmp_path))
    folder = v.drivers[0].folder
    vals = _values(v)
    # a .Services need installs the helper's service, owned by the published INF
    assert vals[(f"{SVC}\\helpsvc".lower(), "displayname")] == sz("@helper.inf,%HS%;Helper strings")
    assert vals[(f"{SVC}\\helpsvc".lower(), "owners")] == sz("main.inf") + b"\0\0"
    assert vals[(f"{SVC}\\helpsvc\\parameters".lower(), "level")] == (7).to_bytes(4, "little")
    # HKLM from a DDInstall need, its strings and DIRIDs; the including INF's own line wins
    assert vals[(r"hkey_local_machine\software\contoso\helper", "path")] == sz(
        r"C:\Windows\System32\helper\help.dll"
    )
    assert vals[(r"hkey_local_machine\software\contoso\shared", "who")] == sz("main wins")
    assert vals[(r"hkey_local_machine\software\contoso\main", "own")] == sz("Main device")  # own-INF need
    # HKR of a DDInstall / .HW need goes where the including section's device values go
    conf = f"{driverstore.DATABASE}\\DriverPackages\\{folder}\\Configurations\\Dev.NT".lower()
    assert vals[(conf + "\\driver", "fromhelper")] == sz("Helper strings")
    assert vals[(conf + "\\driver", "frommain")] == (1).to_bytes(4, "little")
    assert vals[(conf + "\\device", "hwvalue")] == (5).to_bytes(4, "little")
    # the need's SPSVCINST_ASSOCSERVICE service is the configuration's service
    assert vals[(conf, "service")] == sz("helpsvc")
    # the helper's file: its DestinationDirs (11,helper), its source folder, and in the store
    paths = {p.device_path: p.source for p in v.payload}
    assert paths[r"$(runtime.system32)\helper\help.dll"] == tmp_path / "sub" / "help.dll"
    store = rf"$(runtime.system32)\DriverStore\FileRepository\{folder}"
    assert paths[rf"{store}\sub\help.dll"] == tmp_path / "sub" / "help.dll"
    # read, not shipped: the included INF is an input of the CAB (rebuilds on edit)
    assert tmp_path / "Helper.INF" in v.inputs()
    assert not any(p.name.lower() == "helper.inf" for p in v.payload)
    # the inbox ks.inf is recorded and warned about once; WUDFRD.NT.Services is OS-owned: silent
    assert v.drivers[0].on_device == ["ks.inf:KS.Registration", "WUDFRD.inf:WUDFRD.NT.Services"]
    warned = [w for w in v.warnings if "ks.inf" in w]
    assert len(warned) == 1 and warned[0].startswith("main.inf:19: warning: [Dev.NT] Needs [KS.Registration]")
    assert not any("WUDFRD" in w for w in v.warnings)
    assert all(": warning: " in w for w in v.warnings)


def test_a_need_in_no_available_inf_is_an_error(tmp_path):
    main = MAIN.replace("Needs = Helper.Hw", "Needs = Helper.Hww").replace(", ks.inf", "")
    main = (
        main.replace(", KS.Registration", "").replace(", WUDFRD.inf", "").replace(", WUDFRD.NT.Services", "")
    )
    path = _write(tmp_path, main)  # every included INF is there: a need found nowhere is an error
    with pytest.raises(ConfigError) as info:
        _plan(path)
    assert str(info.value).startswith("main.inf:24: [Dev.NT.HW] Needs [Helper.Hww], which is neither")


def test_an_unavailable_include_is_recorded_not_followed(tmp_path):
    v = _plan(_write(tmp_path, helper=None))
    assert "helper.inf:Helper.Install" in v.drivers[0].on_device
    assert not any("helpsvc" in r.key.lower() for r in v.registry)
    assert sum("helper.inf" in w for w in v.warnings) == 3  # one per need, each naming the INF


def test_nested_include_is_warned(tmp_path):
    helper = HELPER.replace("[Helper.Hw]\n", "[Helper.Hw]\nInclude = other.inf\nNeeds = Other.X\n")
    v = _plan(_write(tmp_path, helper=helper))
    assert any("has Include/Needs of its own" in w for w in v.warnings)


def test_store_folder_follows_the_driver_files(tmp_path):
    path = _write(tmp_path)
    first = _plan(path).drivers[0].folder
    # SConscript planning does not read the files (they may be built in the same run)
    assert (
        _plan(path, driver_files=False)
        .drivers[0]
        .folder.endswith(hashlib.sha256((tmp_path / "main.inf").read_bytes()).hexdigest()[:16])
    )
    (tmp_path / "sub" / "help.dll").write_bytes(b"helper dll, v2")
    second = _plan(path).drivers[0].folder
    assert second != first and second.startswith("main.inf_arm64_")
    files = [
        ("main.sys", hashlib.sha256(b"main driver").digest()),
        ("sub\\help.dll", hashlib.sha256(b"helper dll, v2").digest()),
    ]
    assert second == driverstore.folder_name(
        "main.inf", "arm64", (tmp_path / "main.inf").read_bytes(), b"", files
    )
    # FileSize: INF + files of the store folder
    size = (tmp_path / "main.inf").stat().st_size + len(b"main driver") + len(b"helper dll, v2")
    pkg = f"{driverstore.DATABASE}\\DriverPackages\\{second}".lower()
    assert _values(_plan(path))[(pkg, "filesize")] == size.to_bytes(8, "little")
    assert (pkg, "filesize") not in _values(_plan(path, driver_files=False))


def test_pnp_lockdown_files(tmp_path):
    v = _plan(_write(tmp_path, MAIN.replace("DriverVer =", "PnpLockdown = 1\nDriverVer =")))
    folder = v.drivers[0].folder
    vals = _values(v)
    key = f"{LOCK}\\%SystemRoot%/System32/drivers/main.sys".lower()
    assert vals[(key, "source")] == sz(rf"%SystemRoot%\System32\DriverStore\FileRepository\{folder}\main.sys")
    assert vals[(key, "owners")] == sz("main.inf") + b"\0\0"
    assert vals[(key, "class")] == (4).to_bytes(4, "little")
    helper = f"{LOCK}\\%SystemRoot%/System32/helper/help.dll".lower()
    assert vals[(helper, "source")].decode("utf-16-le").endswith(rf"{folder}\sub\help.dll" + "\0")
    v = _plan(_write(tmp_path))  # no PnpLockdown=1: class 5
    assert _values(v)[(key, "class")] == (5).to_bytes(4, "little")


UMDF = r"""[Version]
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
%P% = Dev, ACPI\U1
[Dev.NT]
CopyFiles = UFiles
Include = WUDFRD.inf
Needs = WUDFRD.NT
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


def test_umdf_parameters_key_and_wudf_descriptor_in_the_driver_manifest(tmp_path):
    (tmp_path / "u.inf").write_text(UMDF.replace("\n", "\r\n"))
    (tmp_path / "ud.dll").write_bytes(b"umdf driver")
    v = _plan(wm(tmp_path, '<drivers><driver><inf source="u.inf"/></driver></drivers>'))
    drv = v.drivers[0]
    assert f"{infinstall.WUDF}\\Services\\ud" in drv.empty_keys
    assert drv.key_security == {infinstall.WUDF: infinstall.WUDF_SDDL}
    assert drv.on_device == ["WUDFRD.inf:WUDFRD.NT", "WUDFRD.inf:WUDFRD.NT.Services"]
    assert any("Umdf* values" in w for w in v.warnings)
    assert sum("WUDFRD" in w for w in v.warnings) == 1  # WUDFRD.NT (device-side) only
    out = tmp_path / "out" / v.cab_name
    build_variant(v, out, BuildSettings(epoch=1577836800))
    from ffuforge.formats.cab import CabReader

    with CabReader(out) as cab:
        dual = next(
            m for m in cab.members if m.name.startswith("arm64_dual_u.inf_") and m.name.endswith(".manifest")
        )
        root = etree.fromstring(cab.read(dual, 1 << 20))
    name = hashlib.sha1(infinstall.WUDF.encode()).hexdigest().upper()
    key = next(k for k in root.iter(f"{ASM}registryKey") if k.get("keyName") == infinstall.WUDF)
    assert key.find(f"{ASM}securityDescriptor").get("name") == name
    defs = root.findall(
        f"{ASM}trustInfo/{ASM}security/{ASM}accessControl/{ASM}securityDescriptorDefinitions/"
        f"{ASM}securityDescriptorDefinition"
    )
    assert [(d.get("name"), d.get("sddl")) for d in defs] == [(name, infinstall.WUDF_SDDL)]
    keys = {k.get("keyName") for k in root.iter(f"{ASM}registryKey")}
    assert f"{infinstall.WUDF}\\Services\\ud" in keys


def test_include_of_a_sibling_section_serves_a_need(tmp_path):
    """Include= written once in DDInstall also serves Needs= in .Services (one appended INF handle)."""
    main = MAIN.replace("Include = helper.inf, WUDFRD.inf\n", "Include = WUDFRD.inf\n")
    v = _plan(_write(tmp_path, main))
    assert any(r.key.lower().endswith("\\services\\helpsvc") for r in v.registry)
    assert v.drivers[0].on_device == ["ks.inf:KS.Registration", "WUDFRD.inf:WUDFRD.NT.Services"]
