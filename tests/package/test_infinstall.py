"""Tests for ffuforge.package.infinstall: services, AddReg/DelReg, KMDF, bad INFs (file:line)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ffuforge.errors import FFUError
from ffuforge.package.inf import import_driver, parse_inf, parse_inf_bytes, parse_inf_text
from ffuforge.package.infinstall import SERVICES, install_registry

HEAD = """\
[Version]
Signature="$WINDOWS NT$"
Class=System
ClassGuid={4d36e97d-e325-11ce-bfc1-08002be10318}
Provider=%P%
DriverVer=11/01/2026,1.0.0.0
[Manufacturer]
%P%=M,NTarm64,NTamd64
[M.NTarm64]
%D%=Dev, ACPI\\X1
[M.NTamd64]
%D%=Dev_amd, ACPI\\X1
[Dev_amd.NT]
"""
ROOT = Path(__file__).resolve().parents[2]
STRINGS = '[Strings]\nP="Contoso"\nD="Test Device"\nSVC="Test Service"\n'


def run(body: str, arch: str = "arm64", name: str = "t.inf"):
    parsed = parse_inf_text(HEAD + textwrap.dedent(body).lstrip("\n") + STRINGS, name)
    return install_registry(parsed, import_driver(parsed, arch), name)


def vals(result) -> dict[tuple[str, str], tuple[int, bytes]]:
    return {(v.key, v.name): (v.data.type, v.data.data) for v in result.values}


def sz(text: str) -> bytes:
    return (text + "\0").encode("utf-16-le")


def multi(*items: str) -> bytes:
    return b"".join(sz(i) for i in items) + b"\0\0"


def dw(n: int) -> tuple[int, bytes]:
    return 4, n.to_bytes(4, "little")


SERVICE = """
[Dev.NT]
[Dev.NT.Services]
AddService = tsvc, 0x00000002, Svc_Inst, Ev_Inst, Application, TsvcSource
[Svc_Inst]
DisplayName    = %SVC%
Description    = "literal text"
ServiceType    = 1
StartType      = 0
ErrorControl   = 3
ServiceBinary  = %12%\\sub\\t.sys
LoadOrderGroup = Base
Dependencies   = +Boot Bus Extender, acpi, +Core
StartName      = \\Driver\\tsvc
BootFlags      = 0x4
AddReg         = Svc_AddReg
[Svc_AddReg]
HKR,Parameters,Str,,"hello"
HKR,Parameters,Exp,0x00020000,"%%SystemRoot%%\\x"
HKR,Parameters,Multi,0x00010000,"a","b c"
HKR,Parameters,Multi,0x00010008,"d","a"
HKR,Parameters,Dw,0x00010001,0x12345678
HKR,Parameters,DwBytes,0x00010001,01,00,00,80
HKR,Parameters,Bin,0x00000001,01,02,ff
HKR,Parameters,None,0x00020001
HKR,Parameters,Qw,0x000b0001,01,00,00,00,00,00,00,80
HKR,Parameters,Keep,,"first"
HKR,Parameters,Keep,0x00000002,"second"
HKR,Parameters,Gone,,"x"
HKR,Parameters,Gone,0x00000004
HKR,Parameters,Sys,,"%11%\\t.dll"
HKR,Parameters\\Bare,,0x00000010
HKR,Parameters\\Empty
HKLM,SYSTEM\\CurrentControlSet\\Control\\Contoso,Val,,"x"
[Ev_Inst]
AddReg = Ev_AddReg
[Ev_AddReg]
HKR,,TypesSupported,0x00010001,7
[Dev.NT.Wdf]
KmdfService = tsvc, Wdf_Sect
[Wdf_Sect]
KmdfLibraryVersion = 1.15
"""


def test_service_fields_and_addreg():
    r = run(SERVICE)
    v = vals(r)
    k = f"{SERVICES}\\tsvc"
    p = f"{k}\\Parameters"
    expected = {
        (k, "Type"): dw(1),
        (k, "Start"): dw(0),
        (k, "ErrorControl"): dw(3),
        (k, "ImagePath"): (2, sz(r"\SystemRoot\System32\drivers\sub\t.sys")),
        (k, "DisplayName"): (1, sz("@t.inf,%SVC%;Test Service")),  # indirect form, token as written
        (k, "Description"): (1, sz("literal text")),
        (k, "Group"): (1, sz("Base")),
        (k, "DependOnService"): (7, multi("acpi")),
        (k, "DependOnGroup"): (7, multi("Boot Bus Extender", "Core")),
        (k, "ObjectName"): (1, sz(r"\Driver\tsvc")),
        (k, "BootFlags"): dw(4),
        (k, "Owners"): (7, multi("t.inf")),
        (p, "Str"): (1, sz("hello")),
        (p, "Exp"): (2, sz(r"%SystemRoot%\x")),
        (p, "Multi"): (7, multi("a", "b c", "d")),  # FLG_ADDREG_APPEND adds only new strings
        (p, "Dw"): dw(0x12345678),
        (p, "DwBytes"): dw(0x80000001),
        (p, "Bin"): (3, b"\x01\x02\xff"),
        (p, "None"): (0, b""),
        (p, "Qw"): (11, (0x8000000000000001).to_bytes(8, "little")),
        (p, "Keep"): (1, sz("first")),  # FLG_ADDREG_NOCLOBBER
        (p, "Sys"): (1, sz(r"C:\Windows\System32\t.dll")),
        (f"{p}\\Empty", ""): (1, sz("")),
        (r"HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Control\Contoso", "Val"): (1, sz("x")),
        (f"{SERVICES}\\EventLog\\Application\\TsvcSource", "TypesSupported"): dw(7),
        (f"{k}\\Parameters\\Wdf", "KmdfLibraryVersion"): (1, sz("1.15")),
    }
    assert v == expected
    assert [key for key, _ in r.keys] == [f"{p}\\Bare"]
    assert r.services == ["tsvc"]
    # every value names the INF line that set it
    line = {(x.key, x.name): x.line for x in r.values}
    assert (
        line[(p, "Str")]
        == HEAD.count("\n") + SERVICE.lstrip("\n").split("\n").index('HKR,Parameters,Str,,"hello"') + 1
    )


def test_win32_service_and_amd64_sections():
    body = """
    [Dev.NT]
    [Dev_amd.NT.Services]
    AddService = w, 0, W_Inst
    [W_Inst]
    ServiceType = 0x10
    StartType = 2
    ErrorControl = 1
    ServiceBinary = %11%\\w.exe
    DelayedAutoStart = 1
    """
    assert run(body, "arm64").values == []
    v = vals(run(body, "amd64"))
    assert v[(f"{SERVICES}\\w", "ImagePath")] == (2, sz(r"%SystemRoot%\System32\w.exe"))
    assert v[(f"{SERVICES}\\w", "DelayedAutostart")] == dw(1)


def test_device_key_hkr_is_deferred_not_written():
    r = run(
        """
        [Dev.NT]
        AddReg = Drv_AddReg
        [Dev.NT.HW]
        AddReg = Hw_AddReg
        [Drv_AddReg]
        HKR,,DriverValue,0x00010001,1
        HKLM,SOFTWARE\\Contoso,Global,,"g"
        [Hw_AddReg]
        HKR,,DeviceValue,,"d"
        """
    )
    assert vals(r) == {(r"HKEY_LOCAL_MACHINE\SOFTWARE\Contoso", "Global"): (1, sz("g"))}
    assert [(d[0], d[1], d[3]) for d in r.deferred] == [
        ("Driver", "Dev.NT", "DriverValue"),
        ("Device", "Dev.NT", "DeviceValue"),
    ]
    assert not any("\\Enum\\" in v.key or "\\Control\\Class\\" in v.key for v in r.values)


def test_delreg_and_wudfrd_and_umdf():
    r = run(
        """
        [Dev.NT]
        [Dev.NT.Services]
        AddService = WUDFRd, 0x000001fa, Wudf_Inst
        AddService = u, 0x2, U_Inst
        [Wudf_Inst]
        ServiceType = 1
        StartType = 3
        ErrorControl = 1
        ServiceBinary = %12%\\WUDFRd.sys
        [U_Inst]
        ServiceType = 1
        StartType = 3
        ErrorControl = 1
        ServiceBinary = %12%\\u.sys
        AddReg = U_Add
        DelReg = U_Del
        [U_Add]
        HKR,Parameters,A,,"a"
        HKR,Parameters,B,,"b"
        [U_Del]
        HKR,Parameters,A
        [Dev.NT.Wdf]
        UmdfService = ud, Umdf_Sect
        [Umdf_Sect]
        UmdfLibraryVersion = 2.15.0
        ServiceBinary = %13%\\ud.dll
        """
    )
    v = vals(r)
    assert not any("wudfrd" in k.lower() for k, _ in v)  # OS-owned: pkggen drops it
    assert (f"{SERVICES}\\u\\Parameters", "B") in v
    assert (f"{SERVICES}\\u\\Parameters", "A") in v  # DelReg runs before AddReg, as setupapi does
    assert r.umdf == [("ud", "Umdf_Sect", r.umdf[0][2])]
    assert any("UMDF" in w for w in r.warnings)


def _err(body: str, arch: str = "arm64", data: bytes | None = None):
    with pytest.raises(FFUError) as info:
        if data is not None:
            parsed = parse_inf_bytes(data, "t.inf")
            install_registry(parsed, import_driver(parsed, arch), "t.inf")
        else:
            run(body, arch)
    return info.value


SVC_TAIL = """
[Dev.NT]
[Dev.NT.Services]
AddService = s, 2, S_Inst
[S_Inst]
ServiceType = 1
StartType = 3
ErrorControl = 1
"""


@pytest.mark.parametrize(
    ("binary", "line_text"),
    [
        ("C:\\drivers\\s.sys", "ServiceBinary = C:\\drivers\\s.sys"),
        ("%1%\\s.sys", "ServiceBinary = %1%\\s.sys"),
        ("%16422%\\Contoso\\s.exe", "ServiceBinary = %16422%\\Contoso\\s.exe"),
        ("%12%\\..\\s.sys", "ServiceBinary = %12%\\..\\s.sys"),
    ],
)
def test_service_binary_outside_dirids(binary, line_text):
    body = SVC_TAIL + line_text + "\n"
    err = _err(body)
    assert err.file == "t.inf"
    assert err.line == (HEAD + textwrap.dedent(body).lstrip("\n")).split("\n").index(line_text) + 1
    assert "ServiceBinary" in err.message


def test_bad_inf_lines():
    # missing [Version]
    text = HEAD.split("[Manufacturer]", 1)[1]
    err = _err("", data=("[Manufacturer]" + text + "[Dev.NT]\n").encode())
    assert (err.file, err.line) == ("t.inf", 1) and "[Version]" in err.message
    # UTF-16 without a byte-order mark (readable, but Windows does not sniff)
    full = HEAD + "[Dev.NT]\n" + STRINGS
    err = _err("", data=full.replace("\n", "\r\n").encode("utf-16-le"))
    assert (err.file, err.line) == ("t.inf", 1) and "byte-order mark" in err.message
    with_bom = parse_inf_bytes(b"\xff\xfe" + full.encode("utf-16-le"), "t.inf")
    assert install_registry(with_bom, import_driver(with_bom, "arm64"), "t.inf").values == []
    # no models for the CPU
    err = _err("[Dev.NT]\n", arch="arm")
    assert err.file == "t.inf" and err.line == 8 and "no models section for arm" in err.message
    # missing required AddService field
    err = _err(SVC_TAIL.replace("StartType = 3\n", "") + "ServiceBinary=%12%\\s.sys\n")
    assert err.file == "t.inf" and "StartType" in err.message and err.line is not None
    # boot start for a Win32 service
    err = _err(
        SVC_TAIL.replace("ServiceType = 1", "ServiceType = 0x10").replace("StartType = 3", "StartType = 0")
        + "ServiceBinary=%11%\\s.exe\n"
    )
    assert "only for kernel drivers" in err.message
    # unsupported directive that would silently weaken the image
    err = _err(SVC_TAIL + 'ServiceBinary=%12%\\s.sys\nSecurity="D:P(A;;GA;;;SY)"\n')
    assert "Security" in err.message and err.line is not None
    # an empty item inside a REG_MULTI_SZ ends the list on Windows
    err = _err(SVC_TAIL + 'ServiceBinary=%12%\\s.sys\nAddReg=R\n[R]\nHKR,,M,0x00010000,"a","","b"\n')
    assert "empty item" in err.message
    # KmdfService for a service the INF does not install
    err = _err("[Dev.NT]\n[Dev.NT.Wdf]\nKmdfService = nope, W\n[W]\nKmdfLibraryVersion = 1.15\n")
    assert "nope" in err.message and err.line is not None


def test_sample_infs():
    uart = ROOT / "bsp/ContosoBoard/Packages/ContosoBoard.UART/contosouart.inf"
    parsed = parse_inf(uart, "contosouart.inf")
    r = install_registry(parsed, import_driver(parsed, "arm64"), "contosouart.inf")
    v = vals(r)
    k = f"{SERVICES}\\contosouart"
    assert v[(k, "ImagePath")] == (2, sz(r"\SystemRoot\System32\drivers\contosouart.sys"))
    assert v[(k, "Start")] == dw(3) and v[(k, "Type")] == dw(1) and v[(k, "ErrorControl")] == dw(1)
    assert v[(k + "\\Parameters", "BaudRate")] == dw(115200)
    assert v[(k + "\\Parameters\\Wdf", "KmdfLibraryVersion")] == (1, sz("1.15"))


def test_locale_strings_and_coinstallers():
    text = (
        HEAD
        + textwrap.dedent(
            """
            [Dev.NT]
            [Dev.NT.CoInstallers]
            AddReg = Co_AddReg
            [Co_AddReg]
            HKR,,CoInstallers32,0x00010000,"WdfCoInstaller01015.dll,WdfCoInstaller"
            [Dev.NT.Services]
            AddService = s, 2, S_Inst
            [S_Inst]
            DisplayName = %SVC%
            ServiceType = 1
            StartType = 3
            ErrorControl = 1
            ServiceBinary = %12%\\s.sys
            [Strings.0407]
            SVC="Testdienst"
            [Strings.0409]
            SVC="US service"
            """
        )
        + STRINGS
    )
    for lcid, shown in ((0x0409, "US service"), (0x0407, "Testdienst"), (0x0411, "Test Service")):
        parsed = parse_inf_text(text, "t.inf", lcid=lcid)
        r = install_registry(parsed, import_driver(parsed, "arm64"), "t.inf")
        assert vals(r)[(f"{SERVICES}\\s", "DisplayName")] == (1, sz(f"@t.inf,%SVC%;{shown}"))
        # the co-installer's HKR is the device's software key: kept for the driver database
        assert [(d[0], d[1], d[3]) for d in r.deferred] == [("Driver", "Dev.NT", "CoInstallers32")]
