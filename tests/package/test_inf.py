"""Tests for ffuforge.package.inf: lexing, strings, models/install walk, destinations, errors, corpus."""

from __future__ import annotations

import re
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ffuforge.errors import ConfigError, FFUError, FormatError
from ffuforge.package.inf import (
    ARCHES,
    DIRID_MACROS,
    MAX_INF_BYTES,
    MAX_LINE_CHARS,
    DriverImport,
    InfFile,
    import_driver,
    parse_inf,
    parse_inf_bytes,
    parse_inf_text,
)


def inf(text: str, name: str = "t.inf", **kw):
    return parse_inf_text(textwrap.dedent(text).lstrip("\n"), name, **kw)


def files_of(result: DriverImport) -> list[tuple[str, str, str]]:
    """(dest_dir, dest_name, source path) triples, the part the package builder consumes."""
    out = []
    for f in result.files:
        src = f"{f.source_subdir}\\{f.source_name}" if f.source_subdir else f.source_name
        out.append((f.dest_dir, f.dest_name, src))
    return out


def raises_at(line: int | None, pattern: str):
    """Context manager asserting an FFUError at t.inf:<line> whose message matches pattern."""

    class _Ctx:
        def __enter__(self):
            self._cm = pytest.raises(FFUError, match=pattern)
            self.info = self._cm.__enter__()
            return self.info

        def __exit__(self, *exc):
            handled = self._cm.__exit__(*exc)
            err = self.info.value
            assert err.file == "t.inf", str(err)
            assert err.line == line, str(err)
            return handled

    return _Ctx()


# A BSP-style driver INF exercising most of what real vendor INFs do.  Line numbers matter below.
BSP_INF = """\
;
; Demo BSP driver (synthetic, modelled on IoT Core BSP INFs)
;
[Version]
Signature   = "$WINDOWS NT$"
Class       = System
ClassGuid   = {4d36e97d-e325-11ce-bfc1-08002be10318}
Provider    = %ProviderName%
CatalogFile = demo.cat
CatalogFile.NTarm = demo_arm.cat
DriverVer   = 01/02/2019,1.0.0.1
PnpLockdown = 1

[SourceDisksNames]
1 = %DiskName%,,,""
2 = %DiskName%,,,"\\fw"

[SourceDisksNames.arm]
3 = %DiskName%,,,arm

[SourceDisksFiles]
demo.sys = 1
demo.dll = 1,umd
demo.fw  = 2
democo.dll = 1

[SourceDisksFiles.arm]
demo.sys = 3

[DestinationDirs]
DefaultDestDir = 13
Demo_Fw_Copy   = 11, firmware\\demo

[Manufacturer]
%ManufacturerName% = Standard,NT$ARCH$.10.0...16299

[Standard.NT$ARCH$.10.0...16299]
%Demo.DeviceDesc% = Demo_Device, ACPI\\DEMO0001
%Demo.DeviceDesc% = Demo_Device, ACPI\\DEMO0002   ; same install section twice

[Demo_Device.NT]
CopyFiles = Demo_Sys_Copy, Demo_Fw_Copy
Include   = wdmaudio.inf
Needs     = WDMAUDIO.Registration

[Demo_Device.NT.HW]
CopyFiles = Demo_Umd_Copy
Include   = wdmaudio.inf

[Demo_Device.NT.CoInstallers]
CopyFiles = @democo.dll

[Demo_Device.NT.Services]
AddService = demo, %SPSVCINST_ASSOCSERVICE%, Demo_Service_Inst

[Demo_Service_Inst]
DisplayName   = %Demo.SVCDESC%
ServiceType   = 1
StartType     = 3
ErrorControl  = 1
ServiceBinary = %13%\\demo.sys

[Demo_Sys_Copy]
demo.sys

[Demo_Fw_Copy]
demo.fw,,,0x4000

[Demo_Umd_Copy]
demo.dll

[Strings]
SPSVCINST_ASSOCSERVICE = 0x00000002
ProviderName     = "Contoso, Ltd."
ManufacturerName = "Contoso"
DiskName         = "Demo Installation Disk"
Demo.DeviceDesc  = "Démo device"
Demo.SVCDESC     = "Demo Service"
"""


def _bsp_arm_expected() -> list[tuple[str, str, str]]:
    return [
        ("$(runtime.drivers)", "demo.dll", "umd\\demo.dll"),
        ("$(runtime.drivers)", "demo.sys", "arm\\demo.sys"),
        ("$(runtime.drivers)", "democo.dll", "democo.dll"),
        ("$(runtime.system32)\\firmware\\demo", "demo.fw", "fw\\demo.fw"),
    ]


# --------------------------------------------------------------------------- encodings


def _encodings(text: str) -> dict[str, bytes]:
    crlf = text.replace("\n", "\r\n")
    return {
        "utf-16-le-bom": b"\xff\xfe" + crlf.encode("utf-16-le"),
        "utf-16-be-bom": b"\xfe\xff" + crlf.encode("utf-16-be"),
        "utf-16-le-nobom": crlf.encode("utf-16-le"),
        "utf-8-bom": b"\xef\xbb\xbf" + crlf.encode("utf-8"),
        "utf-8": text.encode("utf-8"),
        "cp1252": crlf.encode("cp1252"),
    }


def test_encodings_give_identical_results():
    reference = parse_inf_text(BSP_INF, "t.inf")
    assert reference.strings["demo.devicedesc"] == "Démo device"
    expected = {arch: import_driver(reference, arch) for arch in ("arm", "arm64")}
    seen = set()
    for label, data in _encodings(BSP_INF).items():
        parsed = parse_inf_bytes(data, "t.inf")
        seen.add(parsed.encoding)
        assert parsed.sections == reference.sections, label
        assert parsed.strings == reference.strings, label
        for arch, want in expected.items():
            assert import_driver(parsed, arch) == want, (label, arch)
    assert seen == {"utf-16-le", "utf-16-le-nobom", "utf-16-be", "utf-8", "cp1252"}


def test_encoding_detection_and_files(tmp_path):
    p = tmp_path / "demo.inf"
    p.write_bytes(_encodings(BSP_INF)["utf-16-le-bom"])
    parsed = parse_inf(p)
    assert parsed.encoding == "utf-16-le"
    assert parsed.path == str(p)
    assert parse_inf(p, "shown.inf").path == "shown.inf"
    # cp1252 bytes that are undefined in cp1252 (0x81) still decode instead of failing
    odd = parse_inf_bytes(b'[Strings]\r\nx = "a\x81\xe9"\r\n', "t.inf")
    assert odd.encoding == "cp1252"
    assert odd.strings["x"] == "a\x81é"
    # UTF-16 with an odd trailing byte (text-mode checkout) is still read
    tail = parse_inf_bytes(b"\xff\xfe" + "[A]\r\nk=v\r\n".encode("utf-16-le") + b"\n", "t.inf")
    assert tail.section("a").get("k").values == ("v",)


def test_missing_file_is_ffuerror(tmp_path):
    with pytest.raises(FFUError, match="cannot read INF") as info:
        parse_inf(tmp_path / "nope.inf", "nope.inf")
    assert info.value.file == "nope.inf"


# --------------------------------------------------------------------------- lexing


def test_comments_and_quotes():
    parsed = inf(
        '''
        junk before any section is ignored
        [A]
        k1 = "a;b" ; trailing comment
        k2 = "x, y", "  padded  " , plain value ,
        k3 = "say ""hi""", ""
        k4 = ab"c,d"ef
        ; whole-line comment
           bare1 , bare2
        k5 = "unterminated, still one value
        k6 = a = b
        '''
    )
    sec = parsed.section("A")
    assert sec.get("k1").values == ("a;b",)
    assert sec.get("k2").values == ("x, y", "  padded  ", "plain value", "")
    assert sec.get("k3").values == ('say "hi"', "")
    assert sec.get("k4").values == ("abc,def",)
    bare = [ln for ln in sec.lines if ln.key is None]
    assert [(ln.line, ln.values) for ln in bare] == [(8, ("bare1", "bare2"))]
    assert sec.get("k5").values == ("unterminated, still one value",)
    assert sec.get("k6").values == ("a = b",)
    assert [ln.line for ln in sec.lines] == [3, 4, 5, 6, 8, 9, 10]


def test_equals_after_comma_is_not_a_key():
    sec = inf('[AddReg]\nHKR,,Cmd,,a=b\nHKR,,"x=y",,1\n').section("addreg")
    assert [ln.key for ln in sec.lines] == [None, None]
    assert sec.lines[0].values == ("HKR", "", "Cmd", "", "a=b")
    assert sec.lines[1].values == ("HKR", "", "x=y", "", "1")


def test_line_continuation():
    parsed = inf(
        """
        [A]
        k1 = one,\\
             two, \\
             three
        k2 = "quoted\\" , next
        k3 = v ; comment \\
        k4 = w
        k5 = tail\\
        """
    )
    sec = parsed.section("a")
    assert sec.get("k1").values == ("one", "two", "three")
    assert sec.get("k1").line == 2
    assert sec.get("k2").values == ("quoted\\", "next")
    assert sec.get("k3").values == ("v",)  # a '\' inside a comment does not continue
    assert sec.get("k4").line == 7
    assert sec.get("k5").values == ("tail",)  # continuation at EOF


def test_crlf_cr_and_tabs():
    parsed = parse_inf_text("[A]\r\nk1\t=\tv1\rk2 = v2\n", "t.inf")
    sec = parsed.section("A")
    assert sec.get("k1").values == ("v1",)
    assert (sec.get("k2").line, sec.get("k2").values) == (3, ("v2",))


def test_strings_locale_override_and_percent_literal():
    text = """
        [Version]
        Provider = %Prov%
        Percent  = 100%%
        Mixed    = "%Prov% %%Prov%% %Unknown% %12%\\x.sys"
        Keyed    = %KEYNAME%
        [Data]
        %KEYNAME% = %DESC%
        [Strings]
        Prov    = "Contoso"
        KeyName = TheKey
        Desc    = "50%% off"
        [Strings.0409]
        Prov    = "Contoso US"
        [Strings.0407]
        Prov    = "Contoso DE"
        """
    us = inf(text)
    ver = us.section("version")
    assert ver.get("provider").values == ("Contoso US",)
    assert ver.get("percent").values == ("100%",)
    assert ver.get("mixed").values == ("Contoso US %Prov% %Unknown% %12%\\x.sys",)
    assert set(ver.get("mixed").unresolved) == {(0, "Unknown"), (0, "12")}
    assert ver.get("keyed").values == ("TheKey",)
    data = us.section("data")
    assert data.get("thekey").values == ("50% off",)  # keys are substituted too
    assert data.lines[0].key == "TheKey"
    assert inf(text, lcid=0x0407).section("version").get("provider").values == ("Contoso DE",)
    assert inf(text, lcid=0x0C0C).section("version").get("provider").values == ("Contoso",)
    # a primary-language section ([Strings.0009]) applies when no exact LCID section exists
    neutral = "[V]\nP=%P%\n[Strings]\nP=base\n[Strings.0009]\nP=english\n"
    assert parse_inf_text(neutral, "t.inf", lcid=0x0809).section("v").get("p").values == ("english",)


def test_sections_and_keys_are_case_insensitive_and_merge():
    parsed = inf(
        """
        [VERSION]
        CLASSGUID = {x}
        [Files]
        a.sys
        [files]
        b.sys
        [Version]
        classguid = {y}
        """
    )
    assert parsed.section("version").name == "VERSION"
    assert parsed.section("Version").line == 1
    assert [ln.values[0] for ln in parsed.section("FILES").lines] == ["a.sys", "b.sys"]
    assert [ln.values[0] for ln in parsed.section("version").get_all("ClassGuid")] == ["{x}", "{y}"]
    assert parsed.section("version").get("classGUID").values == ("{x}",)


def test_header_errors():
    with raises_at(2, r"missing '\]'"):
        inf("[A]\n[Broken\nk=v\n")
    with raises_at(1, "empty section name"):
        inf("[  ]\n")


def test_overlong_lines_are_refused():
    long_value = "x" * (MAX_LINE_CHARS + 1)
    with raises_at(3, "over the 65536 limit"):
        parse_inf_text(f"[A]\nk=v\nk2={long_value}\n", "t.inf")
    chunk = "y" * 40000
    with raises_at(2, "continued line"):
        parse_inf_text(f"[A]\nk={chunk}\\\n{chunk}\\\n{chunk}\n", "t.inf")


def test_oversized_files_are_refused(tmp_path):
    big = tmp_path / "big.inf"
    with big.open("wb") as fh:
        fh.truncate(MAX_INF_BYTES + 1)  # sparse; never read
    with pytest.raises(FFUError, match="over the 16777216-byte limit") as info:
        parse_inf(big, "big.inf")
    assert info.value.file == "big.inf"
    with pytest.raises(FFUError, match="limit"):
        parse_inf_bytes(b" " * (MAX_INF_BYTES + 1), "t.inf")


def test_error_kinds_of_unreadable_inf_text(tmp_path):
    """Text that cannot be an INF is a FormatError; a missing INF is the project's ConfigError."""
    with pytest.raises(FormatError, match="over the 16777216-byte limit"):
        parse_inf_bytes(b" " * (MAX_INF_BYTES + 1), "t.inf")
    with pytest.raises(FormatError, match=r"missing '\]'"):
        inf("[A]\n[Broken\nk=v\n")
    with pytest.raises(FormatError, match="over the 65536 limit"):
        parse_inf_text("[A]\nk=" + "x" * (MAX_LINE_CHARS + 1) + "\n", "t.inf")
    with pytest.raises(ConfigError, match="cannot read INF"):
        parse_inf(tmp_path / "absent.inf", "absent.inf")


# --------------------------------------------------------------------------- import walk


def test_bsp_inf_arm():
    result = import_driver(parse_inf_text(BSP_INF, "t.inf"), "arm")
    assert files_of(result) == _bsp_arm_expected()
    by_name = {f.dest_name: f for f in result.files}
    assert by_name["demo.sys"] == InfFile(
        source_name="demo.sys",
        source_subdir="arm",
        dest_name="demo.sys",
        dest_dir="$(runtime.drivers)",
        dirid=13,
        section="Demo_Sys_Copy",
        line=64,
        run_from_driver_store=True,
        flags=0,
    )
    assert by_name["demo.fw"].dirid == 11 and not by_name["demo.fw"].run_from_driver_store
    assert by_name["demo.fw"].flags == 0x4000
    assert by_name["democo.dll"].section == "Demo_Device.NT.CoInstallers"
    assert by_name["democo.dll"].line == 51
    assert result.catalog_file == "demo_arm.cat"
    assert result.includes == ["wdmaudio.inf"]
    assert result.needs == ["WDMAUDIO.Registration"]
    assert result.install_sections == ["Demo_Device.NT"]
    assert [(s.name, s.binary, s.section, s.line) for s in result.services] == [
        ("demo", "%13%\\demo.sys", "Demo_Service_Inst", 54)
    ]
    assert (result.inf_class, result.provider, result.driver_ver) == (
        "System",
        "Contoso, Ltd.",
        "01/02/2019,1.0.0.1",
    )
    assert result.class_guid == "{4d36e97d-e325-11ce-bfc1-08002be10318}"
    assert result.warnings == []


def test_bsp_inf_other_arches():
    parsed = parse_inf_text(BSP_INF, "t.inf")
    for arch in ("x86", "amd64", "arm64"):
        result = import_driver(parsed, arch)
        assert ("$(runtime.drivers)", "demo.sys", "demo.sys") in files_of(result)  # no .arm override
        assert result.catalog_file == "demo.cat"


def test_unknown_arch():
    with pytest.raises(FFUError, match="x64 is spelled amd64"):
        import_driver(parse_inf_text(BSP_INF, "t.inf"), "x64")


MINIMAL = """
[Version]
Signature = "$Windows NT$"
[DestinationDirs]
DefaultDestDir = 12
[Manufacturer]
%Mfg% = Models,{decorations}
{models}
[Inst]
CopyFiles = Files
[Files]
a.sys
[Strings]
Mfg = "Contoso"
"""


def _minimal(decorations: str, models: str) -> str:
    return MINIMAL.format(decorations=decorations, models=models)


@pytest.mark.parametrize(
    ("decorations", "models", "arch", "expected_models"),
    [
        ("NTarm64", "[Models.NTarm64]\nd = Inst, HW", "arm64", "Models.NTarm64"),
        (
            "NTARM64.10.0...17763",
            "[models.ntarm64.10.0...17763]\nd = Inst, HW",
            "arm64",
            "Models.NTarm64.10.0...17763",
        ),
        ("NT$ARCH$", "[Models.NT$ARCH$]\nd = Inst, HW", "amd64", "Models.NTamd64"),
        (
            "NT$ARCH$",
            "[Models.NTarm]\nd = Inst, HW",
            "arm",
            "Models.NTarm",
        ),  # stamped sections, raw decoration
        ("NTx86, NTamd64", "[Models.NTx86]\nd = Inst\n[Models.NTamd64]\nd = Inst", "amd64", "Models.NTamd64"),
    ],
)
def test_models_decorations(decorations, models, arch, expected_models):
    result = import_driver(inf(_minimal(decorations, models)), arch)
    assert files_of(result) == [("$(runtime.drivers)", "a.sys", "a.sys")]
    assert result.install_sections == ["Inst"]


def test_models_best_version_wins():
    text = _minimal(
        "NTarm64, NTarm64.10.0...16299, NTarm64.6.3",
        "[Models.NTarm64]\nd = Old\n[Models.NTarm64.10.0...16299]\nd = Inst\n[Models.NTarm64.6.3]\nd = Old\n"
        "[Old]\nCopyFiles = OldFiles\n[OldFiles]\nold.sys",
    )
    assert files_of(import_driver(inf(text), "arm64")) == [("$(runtime.drivers)", "a.sys", "a.sys")]


def test_undecorated_models_are_x86_only():
    text = _minimal("", "[Models]\nd = Inst")
    assert len(import_driver(inf(text.replace("Models,", "Models")), "x86").files) == 1
    with raises_at(6, r"no models section for arm \(decorations: none\); add NTarm"):
        import_driver(inf(text.replace("Models,", "Models")), "arm")


def test_archless_nt_decoration_is_x86_only():
    text = _minimal("NT", "[Models.NT]\nd = Inst")
    assert len(import_driver(inf(text), "x86").files) == 1
    with raises_at(6, r"no models section for amd64 \(decorations: NT\)"):
        import_driver(inf(text), "amd64")


def test_missing_arch_decoration_error():
    text = _minimal("NTx86", "[Models.NTx86]\nd = Inst")
    with raises_at(
        6, r"\[Manufacturer\] has no models section for arm \(decorations: NTx86\); add NTarm or use"
    ):
        import_driver(inf(text), "arm")
    # the rendered message is file:line: message
    with pytest.raises(FFUError) as info:
        import_driver(inf(text), "arm64")
    assert str(info.value).startswith("t.inf:6: [Manufacturer] has no models section for arm64")


def test_missing_models_and_install_sections():
    with raises_at(6, r"models section \[Models.NTarm\], which does not exist"):
        import_driver(inf(_minimal("NTarm", "")), "arm")
    with raises_at(8, r"install section \[Nope\] used by \[Models.NTarm\] is missing for arm"):
        import_driver(inf(_minimal("NTarm", "[Models.NTarm]\nd = Nope, HW")), "arm")
    with raises_at(8, "names no install section"):
        import_driver(inf(_minimal("NTarm", "[Models.NTarm]\nd = , HW")), "arm")


def test_install_section_decoration_preference():
    text = """
        [DestinationDirs]
        DefaultDestDir = 12
        [Manufacturer]
        M = Models, NTarm, NTamd64, NTx86
        [Models.NTarm]
        d = Inst
        [Models.NTamd64]
        d = Inst
        [Models.NTx86]
        d = Inst
        [Inst]
        CopyFiles = Plain
        [Inst.NT]
        CopyFiles = Nt
        [Inst.NTamd64]
        CopyFiles = Amd
        [Inst.NTamd64.Services]
        CopyFiles = AmdSvc
        [Inst.NT.Services]
        CopyFiles = NtSvc
        [Plain]
        plain.sys
        [Nt]
        nt.sys
        [Amd]
        amd.sys
        [AmdSvc]
        amdsvc.sys
        [NtSvc]
        ntsvc.sys
        """
    parsed = inf(text)
    assert [f.dest_name for f in import_driver(parsed, "amd64").files] == ["amd.sys", "amdsvc.sys"]
    assert [f.dest_name for f in import_driver(parsed, "arm").files] == ["nt.sys", "ntsvc.sys"]
    plain = inf(text.replace("[Inst.NT]", "[Unused1]").replace("[Inst.NT.Services]", "[Unused2]"))
    assert [f.dest_name for f in import_driver(plain, "x86").files] == ["plain.sys"]


def test_default_install_without_manufacturer():
    text = """
        [Version]
        Signature = "$Windows NT$"
        [DestinationDirs]
        DefaultDestDir = 11
        [DefaultInstall.NTamd64]
        CopyFiles = Amd
        [DefaultInstall.NTamd64.Services]
        AddService = svc,,SvcInst
        [DefaultInstall]
        CopyFiles = Any
        [SvcInst]
        ServiceBinary = %11%\\amd.dll
        [Amd]
        amd.dll
        [Any]
        any.dll
        """
    parsed = inf(text)
    amd = import_driver(parsed, "amd64")
    assert files_of(amd) == [("$(runtime.system32)", "amd.dll", "amd.dll")]
    assert amd.services[0].binary == "%11%\\amd.dll"
    assert files_of(import_driver(parsed, "arm")) == [("$(runtime.system32)", "any.dll", "any.dll")]
    only_amd = inf(text.replace("[DefaultInstall]", "[Other]"))
    with raises_at(None, r"no DefaultInstall section for arm \(found: DefaultInstall.NTamd64\)"):
        import_driver(only_amd, "arm")
    with raises_at(None, r"no \[Manufacturer\] and no \[DefaultInstall\]"):
        import_driver(inf("[Version]\nSignature=x\n"), "arm")
    with raises_at(1, r"empty \[Manufacturer\]"):
        import_driver(inf("[Manufacturer]\n[Version]\nSignature=x\n"), "arm")


def test_source_disks_decorated_and_subdirs():
    text = """
        [SourceDisksNames]
        1 = disk,,,"\\common\\"   ; quoted: a bare trailing backslash would continue the line
        [SourceDisksNames.arm]
        1 = disk,,,/armdisk/
        [SourceDisksFiles]
        a.sys = 1, sub\\dir
        b.sys = 01
        [SourceDisksFiles.arm]
        a.sys = 1, armsub
        [DestinationDirs]
        DefaultDestDir = 12
        [Manufacturer]
        M = Models, NTarm, NTx86
        [Models.NTarm]
        d = Inst
        [Models.NTx86]
        d = Inst
        [Inst]
        CopyFiles = Files
        [Files]
        a.sys
        b.sys
        """
    parsed = inf(text)
    assert files_of(import_driver(parsed, "x86")) == [
        ("$(runtime.drivers)", "a.sys", "common\\sub\\dir\\a.sys"),
        ("$(runtime.drivers)", "b.sys", "common\\b.sys"),
    ]
    # arm: [SourceDisksFiles.arm] wins for a.sys and [SourceDisksNames.arm] wins for disk 1
    assert files_of(import_driver(parsed, "arm")) == [
        ("$(runtime.drivers)", "a.sys", "armdisk\\armsub\\a.sys"),
        ("$(runtime.drivers)", "b.sys", "armdisk\\b.sys"),
    ]


def test_unlisted_source_file_warns():
    result = import_driver(inf(_minimal("NTarm", "[Models.NTarm]\nd = Inst")), "arm")
    assert files_of(result) == [("$(runtime.drivers)", "a.sys", "a.sys")]
    assert result.warnings == [
        "t.inf:12: warning: a.sys is not listed in [SourceDisksFiles]; expecting it beside the INF"
    ]


def test_file_list_entries_rename_and_flags():
    text = _minimal("NTarm", "[Models.NTarm]\nd = Inst").replace(
        "[Files]\na.sys", '[Files]\nnew.sys, old.sys\nflag.sys,,,0x00004004\n"spaced name.dll"\n,\n'
    )
    with raises_at(15, "empty destination file name"):
        import_driver(inf(text), "arm")
    result = import_driver(inf(text.replace("\n,\n", "\n")), "arm")
    assert [(f.dest_name, f.source_name, f.flags) for f in result.files] == [
        ("flag.sys", "flag.sys", 0x4004),
        ("new.sys", "old.sys", 0),
        ("spaced name.dll", "spaced name.dll", 0),
    ]


def test_destination_dirs_per_section_and_default():
    text = """
        [DestinationDirs]
        DefaultDestDir = 12
        FwFiles        = 30, efi\\boot
        InfFiles       = 17
        [Manufacturer]
        M = Models, NTarm
        [Models.NTarm]
        d = Inst
        [Inst]
        CopyFiles = SysFiles, FwFiles, InfFiles, @direct.dll
        [SysFiles]
        a.sys
        [FwFiles]
        boot.efi
        [InfFiles]
        extra.inf
        """
    assert files_of(import_driver(inf(text), "arm")) == [
        ("$(runtime.bootDrive)\\efi\\boot", "boot.efi", "boot.efi"),
        ("$(runtime.drivers)", "a.sys", "a.sys"),
        ("$(runtime.drivers)", "direct.dll", "direct.dll"),
        ("$(runtime.windows)\\INF", "extra.inf", "extra.inf"),
    ]
    no_default = inf(text.replace("DefaultDestDir = 12", ""))
    result = import_driver(no_default, "arm")
    assert ("$(runtime.system32)", "a.sys", "a.sys") in files_of(result)  # DIRID_DEFAULT == 11
    assert any("no [DestinationDirs] entry for [SysFiles]" in w for w in result.warnings)


@pytest.mark.parametrize(("dirid", "macro"), sorted(DIRID_MACROS.items()))
def test_dirid_table(dirid, macro):
    text = _minimal("NTarm", "[Models.NTarm]\nd = Inst").replace(
        "DefaultDestDir = 12", f"DefaultDestDir = {dirid}, sub"
    )
    (f,) = import_driver(inf(text), "arm").files
    assert (f.dirid, f.dest_dir, f.run_from_driver_store) == (dirid, macro + "\\sub", dirid == 13)


def test_dirid_table_values():
    assert DIRID_MACROS[10] == "$(runtime.windows)"
    assert DIRID_MACROS[11] == "$(runtime.system32)"
    assert DIRID_MACROS[12] == DIRID_MACROS[13] == "$(runtime.drivers)"
    assert DIRID_MACROS[17] == "$(runtime.windows)\\INF"
    assert DIRID_MACROS[24] == DIRID_MACROS[30] == "$(runtime.bootDrive)"
    assert DIRID_MACROS[50] == "$(runtime.windows)\\system"


@pytest.mark.parametrize(
    ("value", "pattern"),
    [
        ("16422", "dirid 16422 is a shell folder"),
        ("01", "dirid 01 is the directory the INF was installed from"),
        ("-1", r"dirid -1 \(absolute path\)"),
        ("21", "dirid 21 is not supported"),
        ("twelve", "not a number"),
        ("12, ..\\escape", "without '..'"),
        ("12, c:\\x", "drive letters"),
    ],
)
def test_bad_destination_dirs(value, pattern):
    text = _minimal("NTarm", "[Models.NTarm]\nd = Inst").replace(
        "DefaultDestDir = 12", f"DefaultDestDir = {value}"
    )
    with raises_at(4, pattern):
        import_driver(inf(text), "arm")


def test_unused_bad_destination_is_not_an_error():
    text = _minimal("NTarm", "[Models.NTarm]\nd = Inst").replace(
        "DefaultDestDir = 12", "DefaultDestDir = 12\nX = 16422"
    )
    assert len(import_driver(inf(text), "arm").files) == 1


def test_error_kinds_of_the_import_walk():
    """A lexable INF whose content cannot be packaged, or a bad arch setting, is a ConfigError."""
    with pytest.raises(ConfigError, match="x64 is spelled amd64"):
        import_driver(parse_inf_text(BSP_INF, "t.inf"), "x64")
    text = _minimal("NTarm", "[Models.NTarm]\nd = Inst").replace(
        "CopyFiles = Files", "CopyFiles = Files, Missing"
    )
    with pytest.raises(ConfigError, match="which does not exist"):
        import_driver(inf(text), "arm")
    with pytest.raises(ConfigError, match="no models section for arm64"):
        import_driver(inf(_minimal("NTarm", "[Models.NTarm]\nd = Inst")), "arm64")


def test_copyfiles_to_unknown_section():
    text = _minimal("NTarm", "[Models.NTarm]\nd = Inst").replace(
        "CopyFiles = Files", "CopyFiles = Files, Missing"
    )
    with raises_at(10, r"CopyFiles in \[Inst\] references \[Missing\], which does not exist"):
        import_driver(inf(text), "arm")


@pytest.mark.parametrize("target", ["Inst", "Models.NTarm", "Inst.Services", "Manufacturer", "Strings"])
def test_cyclic_copyfiles_reference(target):
    text = _minimal("NTarm", "[Models.NTarm]\nd = Inst").replace(
        "CopyFiles = Files", f"CopyFiles = Files, {target}"
    )
    text += "[Inst.Services]\nAddService = x,2,Nothing\n"
    with raises_at(10, r"not a file list \(a cyclic reference\)"):
        import_driver(inf(text), "arm")


def test_file_list_with_key_is_an_error():
    text = _minimal("NTarm", "[Models.NTarm]\nd = Inst").replace(
        "[Files]\na.sys", "[Files]\na.sys\nCopyFiles = Files"
    )
    with raises_at(13, "has a 'key = value' line"):
        import_driver(inf(text), "arm")


def test_unknown_token_in_file_name():
    text = _minimal("NTarm", "[Models.NTarm]\nd = Inst").replace(
        "[Files]\na.sys", "[Files]\ndrv_%Variant%.sys"
    )
    with raises_at(
        12, r"destination file name 'drv_%Variant%.sys' uses %Variant%, which \[Strings\] does not define"
    ):
        import_driver(inf(text), "arm")
    fixed = text + "Variant = pro\n"
    assert [f.dest_name for f in import_driver(inf(fixed), "arm").files] == ["drv_pro.sys"]
    with raises_at(10, "uses %NoSuch%"):
        import_driver(inf(text.replace("CopyFiles = Files", "CopyFiles = @%NoSuch%.sys")), "arm")


@pytest.mark.parametrize("name", ["..\\evil.sys", "dir/evil.sys", "a*.sys", ".."])
def test_path_like_file_names_are_rejected(name):
    text = _minimal("NTarm", "[Models.NTarm]\nd = Inst").replace("[Files]\na.sys", f'[Files]\n"{name}"')
    with raises_at(12, "not a plain file name"):
        import_driver(inf(text), "arm")


def test_same_file_twice_is_one_entry_and_conflicts_are_errors():
    text = """
        [DestinationDirs]
        DefaultDestDir = 12
        [SourceDisksNames]
        1 = d
        [SourceDisksFiles]
        a.sys = 1
        b.sys = 1, other
        [Manufacturer]
        M = Models, NTarm
        [Models.NTarm]
        d1 = Inst1
        d2 = Inst2
        [Inst1]
        CopyFiles = L1, L1, @a.sys
        [Inst2]
        CopyFiles = L2, L1
        [L1]
        a.sys
        [L2]
        A.SYS
        """
    result = import_driver(inf(text), "arm")
    assert files_of(result) == [("$(runtime.drivers)", "a.sys", "a.sys")]
    assert (result.files[0].section, result.files[0].line) == ("L1", 18)
    conflict = inf(text.replace("A.SYS", "a.sys, b.sys"))
    with raises_at(
        20, r"\$\(runtime.drivers\)\\a.sys is copied from two different sources: a.sys \(\[L1\] line 18\)"
    ):
        import_driver(conflict, "arm")


def test_arch_token_everywhere():
    text = """
        [Version]
        CatalogFile.NT$ARCH$ = demo_$ARCH$.cat
        [DestinationDirs]
        DefaultDestDir = 13
        [SourceDisksNames]
        1 = d
        [SourceDisksFiles.$ARCH$]
        demo.sys = 1, $ARCH$
        [Manufacturer]
        M = Models, NT$ARCH$.10.0...17763
        [Models.NT$ARCH$.10.0...17763]
        d = Inst
        [Inst.NT$ARCH$]
        CopyFiles = Files
        [Files]
        demo.sys
        """
    result = import_driver(inf(text), "arm64")
    assert files_of(result) == [("$(runtime.drivers)", "demo.sys", "arm64\\demo.sys")]
    assert result.install_sections == ["Inst.NTarm64"]
    assert result.catalog_file == "demo_arm64.cat"  # stamped everywhere, like stampinf
    assert import_driver(inf(text), "x86").catalog_file == "demo_x86.cat"
    # the parsed INF itself stays arch-neutral
    assert inf(text).section("Models.NT$ARCH$.10.0...17763") is not None


def test_copyinf_recorded():
    text = _minimal("NTarm", "[Models.NTarm]\nd = Inst").replace(
        "CopyFiles = Files", "CopyFiles = Files\nCopyINF = ext.inf, comp.inf\nInclude = ks.inf, KS.INF"
    )
    result = import_driver(inf(text), "arm")
    assert result.copy_infs == ["ext.inf", "comp.inf"]
    assert result.includes == ["ks.inf"]


def test_file_list_referenced_many_times_is_processed_once():
    refs = ", ".join(["Files"] * 50)
    text = _minimal("NTarm", "[Models.NTarm]\nd1 = Inst\nd2 = Inst.NT\n[Inst.NT]\nCopyFiles = " + refs)
    result = import_driver(inf(text.replace("CopyFiles = Files", "CopyFiles = " + refs)), "arm")
    assert files_of(result) == [("$(runtime.drivers)", "a.sys", "a.sys")]
    # a.sys is not in [SourceDisksFiles]: one warning proves one pass over [Files]
    assert len(result.warnings) == 1, result.warnings


def test_large_inf_is_linear():
    n = 20000
    lines = ["[DestinationDirs]", "DefaultDestDir = 12", "[SourceDisksNames]", "1 = d", "[SourceDisksFiles]"]
    lines += [f"f{i}.sys = 1" for i in range(n)]
    lines += ["[Manufacturer]", "M = Models, NTarm", "[Models.NTarm]"]
    lines += [f"d{i} = Inst{i % 100}, HW{i}" for i in range(n)]
    for j in range(100):
        lines += [f"[Inst{j}]", "CopyFiles = Big, " + ", ".join(["Big"] * 9)]
    lines += ["[Big]"] + [f"f{i}.sys" for i in range(n)]
    start = time.monotonic()
    result = import_driver(parse_inf_text("\n".join(lines), "t.inf"), "arm")
    elapsed = time.monotonic() - start
    assert len(result.files) == n
    assert len(result.install_sections) == 100
    assert elapsed < 10, elapsed  # ~0.2 s when linear; re-walking [Big] per reference takes minutes


# --------------------------------------------------------------------------- robustness


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text())
def test_lexer_only_raises_ffuerror_on_text(text):
    try:
        parse_inf_text(text, "t.inf")
    except FFUError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_lexer_only_raises_ffuerror_on_bytes(data):
    try:
        parse_inf_bytes(data, "t.inf")
    except FFUError:
        pass


_FRAGMENTS = st.sampled_from(
    [
        "[Manufacturer]",
        "[Models.NTarm]",
        "[Models.NT$ARCH$]",
        "[Models]",
        "[Inst]",
        "[Inst.NT]",
        "[Inst.NT.Services]",
        "[Files]",
        "[DestinationDirs]",
        "[SourceDisksFiles]",
        "[SourceDisksNames]",
        "[Strings]",
        "[DefaultInstall]",
        "[Version]",
        "M = Models, NTarm, NTx86, NT$ARCH$",
        "M = Models",
        "= Models,",
        "d = Inst, hw",
        "d = Inst.NT",
        "d = , hw",
        "CopyFiles = Files, Inst, @a.sys, , Missing",
        "CopyFiles = Files",
        "AddService = s,2,Inst",
        "ServiceBinary = %12%\\a.sys",
        "DefaultDestDir = 12",
        "DefaultDestDir = 13, sub",
        "Files = 16422",
        "Files = x",
        "a.sys",
        "b.sys, a.sys,,0x4000",
        "%X%.sys",
        "a.sys = 1, sub",
        "1 = d,,,\\path",
        'X = "q""uote"',
        "CatalogFile = c.cat",
        "\\",
        '"',
        ";",
        "%",
        "",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_FRAGMENTS, max_size=40))
def test_import_only_raises_ffuerror(fragments):
    text = "\n".join(fragments)
    try:
        parsed = parse_inf_text(text, "t.inf")
    except FFUError:
        return
    for arch in ARCHES:
        try:
            result = import_driver(parsed, arch)
        except FFUError as exc:
            assert exc.file == "t.inf"
            continue
        keys = [(f.dest_dir.lower(), f.dest_name.lower(), f.run_from_driver_store) for f in result.files]
        assert len(keys) == len(set(keys))


# --------------------------------------------------------------------------- real corpus


def _corpus_infs(corpus: Path) -> list[Path]:
    return sorted(p for p in corpus.rglob("*") if p.suffix.lower() == ".inf" and p.is_file())


def _declared_arches(parsed) -> set[str]:
    man = parsed.section("Manufacturer")
    found = set()
    for ln in man.lines if man is not None else []:
        for dec in ln.values[1:]:
            head = dec.lower().split(".")[0]
            if head.startswith("nt") and head[2:] in ARCHES:
                found.add(head[2:])
    return found


def test_corpus_infs_parse_and_import(corpus):
    infs = _corpus_infs(corpus)
    assert len(infs) >= 30, "expected the 32 iaiogpio.inf copies"
    for path in infs:
        rel = str(path.relative_to(corpus))
        parsed = parse_inf(path, rel)
        assert parsed.encoding == "utf-16-le", rel
        arches = _declared_arches(parsed)
        assert arches, rel
        has_copyfiles = any(
            ln.key and ln.key.lower() == "copyfiles" for s in parsed.sections.values() for ln in s.lines
        )
        for arch in arches:
            result = import_driver(parsed, arch)
            if has_copyfiles:
                assert result.files, (rel, arch)
            names = {f.dest_name.lower() for f in result.files}
            for svc in result.services:
                if svc.binary:
                    assert re.split(r"[\\/]", svc.binary)[-1].lower() in names, (rel, arch, svc)
            assert result.warnings == [], (rel, arch)


IAIOGPIO_X86 = [("$(runtime.drivers)", "iaiogpio.sys", "iaiogpio.sys")]


@pytest.mark.parametrize(
    ("relpath", "inf_class"),
    [
        (
            "addonkit/17763-v7/Workspace/Source-x86/BSP/CustomMBM/Packages/CustomMBM.GPIO/iaiogpio.inf",
            "System",
        ),
        ("addonkit/17134/Source-arm/BSP/CustomRpi2/Packages/CustomRPi2.GPIO/iaiogpio.inf", "User"),
        ("addonkit/v1.0-10586-pkgxml/Source-x86/Updates/Update2/Drivers.GPIO/iaiogpio.inf", None),
    ],
)
def test_corpus_iaiogpio_exact(corpus, relpath, inf_class):
    path = corpus / relpath
    parsed = parse_inf(path, path.name)
    result = import_driver(parsed, "x86")
    assert files_of(result) == IAIOGPIO_X86
    (f,) = result.files
    assert (f.dirid, f.section, f.line, f.run_from_driver_store, f.flags) == (12, "Drivers_Dir", 54, False, 0)
    assert result.catalog_file == "iaiogpio.cat"
    assert result.install_sections == ["GPIO_Device.NT"]
    assert [(s.name, s.binary, s.section, s.line) for s in result.services] == [
        ("GPIO", "%12%\\iaiogpio.sys", "GPIO_Service_Inst", 58)
    ]
    assert result.provider == "Intel Corporation"
    assert result.driver_ver == "09/10/2015,1.1.1.1004"
    assert (result.includes, result.needs, result.copy_infs) == ([], [], [])
    if inf_class is not None:
        assert result.inf_class == inf_class
    assert parsed.section("strings").get("GPIO.DeviceDesc1").values == ("GPIO Controller",)
    assert parsed.section("intel.ntx86").lines[0].key == "GPIO Controller"


def _package_arch(project: Path) -> str:
    text = project.read_text(encoding="utf-8-sig", errors="replace")
    m = re.search(r'Platform="([^"]+)"', text)
    if m:
        return m.group(1).lower()
    m = re.search(r"Source-(arm64|arm|x64|x86)", str(project))
    assert m, project
    return {"x64": "amd64"}.get(m.group(1), m.group(1))


def test_corpus_packages_referencing_infs(corpus):
    """Import each referenced INF for its package's arch: only the x86 packages can succeed."""
    outcomes: dict[str, int] = {}
    projects = sorted(p for p in corpus.rglob("*.xml") if p.name.lower().endswith((".wm.xml", ".pkg.xml")))
    checked = 0
    for project in projects:
        text = project.read_text(encoding="utf-8-sig", errors="replace")
        for src in re.findall(r'(?:<inf source|InfSource)="([^"]+)"', text):
            # '$(PRJDIR)\\Packages\\X\\iaiogpio.inf' in old pkg.xml: the INF sits beside the project
            inf_path = project.parent / src.replace("\\", "/").split("/")[-1]
            if not inf_path.is_file():
                continue  # templates (DRIVER_NAME.inf)
            arch = _package_arch(project)
            parsed = parse_inf(inf_path, inf_path.name)
            checked += 1
            if arch == "x86":
                assert files_of(import_driver(parsed, arch)) == IAIOGPIO_X86, project
                outcomes["ok"] = outcomes.get("ok", 0) + 1
            else:
                with pytest.raises(FFUError) as info:
                    import_driver(parsed, arch)
                assert str(info.value) == (
                    f"iaiogpio.inf:42: [Manufacturer] has no models section for {arch} "
                    f"(decorations: NTx86); add NT{arch} or use the right INF"
                )
                outcomes[arch] = outcomes.get(arch, 0) + 1
    assert checked >= 35
    assert outcomes.keys() == {"ok", "arm", "amd64"}, outcomes


def test_corpus_rpi2_gpio_is_a_clear_error(corpus):
    path = (
        corpus / "addonkit/17763-v7/Workspace/Source-arm/BSP/CustomRpi2/Packages/CustomRPi2.GPIO/iaiogpio.inf"
    )
    parsed = parse_inf(path, "iaiogpio.inf")
    with pytest.raises(FFUError) as info:
        import_driver(parsed, "arm")
    assert (info.value.file, info.value.line) == ("iaiogpio.inf", 42)
    assert "no models section for arm (decorations: NTx86); add NTarm" in info.value.message
