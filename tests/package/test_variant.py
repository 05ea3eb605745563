"""Making a project concrete: names, filters, macros, languages, WOW, drivers, collisions."""

import hashlib

import pytest

from ffuforge.errors import ConfigError, FFUError
from ffuforge.package import variant

from helpers import plan, wm


def test_names_follow_pkggen(tmp_path):
    (tmp_path / "a.txt").write_text("a")
    body = '<files><file source=".\\a.txt"/></files>'
    assert [v.cab_name for v in plan(wm(tmp_path, body))] == ["Contoso-Test-Pkg.cab"]
    legacy = wm(tmp_path, body, name="L", extra=' legacyName="$(OEMNAME).Test.L"')
    assert [v.cab_name for v in plan(legacy, variables={"OEMNAME": "Fabrikam"})] == ["Fabrikam.Test.L.cab"]


def test_languages_and_wow(tmp_path):
    for lang in ("en-us", "fr-fr"):
        (tmp_path / lang).mkdir()
        (tmp_path / lang / "s.txt").write_text(lang)
    (tmp_path / "tool.exe").write_text("x")
    body = (
        '<files><file source=".\\tool.exe"/></files>'
        '<language><files><file source=".\\$(LANGID)\\s.txt" destinationDir="$(runtime.system32)\\$(LANGID)"/>'
        "</files></language>"
    )
    p = wm(tmp_path, body, extra=' buildWow="true"')
    vs = plan(p, languages=("fr-FR", "en-us"))
    names = [v.cab_name for v in vs]
    # Languages are matched case-insensitively and emitted in sorted order.
    assert names == [
        "Contoso-Test-Pkg.cab",
        "Contoso-Test-Pkg.Resources_Lang_en-us.cab",
        "Contoso-Test-Pkg.Resources_Lang_fr-fr.cab",
        "Contoso-Test-Pkg_Wow_arm64.arm.cab",
    ]
    base, en, fr, wow = vs
    assert [x.device_path for x in base.payload] == [r"$(runtime.system32)\tool.exe"]
    assert [x.device_path for x in en.payload] == [r"$(runtime.system32)\en-us\s.txt"]
    assert en.language == "en-us" and base.language == "neutral"
    assert wow.arch == "arm64.arm"
    with pytest.raises(FFUError, match="needs a 64-bit CPU"):
        plan(p, cpu="arm")


def test_language_filters_pick_languages(tmp_path):
    (tmp_path / "a.txt").write_text("a")
    body = '<language culture="de-DE"><files><file source=".\\a.txt" name="de.txt"/></files></language>'
    names = [v.cab_name for v in plan(wm(tmp_path, body), languages=("en-us", "de-de"))]
    assert names == ["Contoso-Test-Pkg.cab", "Contoso-Test-Pkg.Resources_Lang_de-de.cab"]


def test_build_filters_select_content(tmp_path):
    (tmp_path / "a.txt").write_text("a")
    body = (
        '<files buildFilter="build.arch = arm"><file source=".\\a.txt" name="arm.txt"/></files>'
        '<files><file source=".\\a.txt" name="all.txt"/>'
        '<file source=".\\a.txt" name="x64.txt" buildFilter="build.arch = amd64 and not build.isWow"/></files>'
    )
    p = wm(tmp_path, body)
    assert [x.name for x in plan(p, cpu="arm")[0].payload] == ["all.txt", "arm.txt"]
    assert [x.name for x in plan(p, cpu="amd64")[0].payload] == ["all.txt", "x64.txt"]


def test_registry_encodings(tmp_path):
    body = (
        '<regKeys><regKey keyName="$(HKLM.SOFTWARE)\\Contoso">'
        '<regValue type="REG_SZ" value="d"/>'
        '<regValue name="dw" type="REG_DWORD" value="1"/>'
        '<regValue name="qw" type="REG_QWORD" value="000000000001005C"/>'
        '<regValue name="bin" type="REG_BINARY" value="12abCDef"/>'
        '<regValue name="multi" type="REG_MULTI_SZ" value="a;b;$(runtime.system32)\\x.exe\\0"/>'
        '<regValue name="exp" type="REG_EXPAND_SZ" value="%SystemRoot%\\x"/>'
        "</regKey></regKeys>"
    )
    v = plan(wm(tmp_path, body))[0]
    regs = {r.name: r for r in v.registry}
    assert regs[""].key == r"HKEY_LOCAL_MACHINE\Software\Contoso"
    assert regs["dw"].data.data == b"\x01\x00\x00\x00"
    assert regs["qw"].data.data == (0x1005C).to_bytes(8, "little")
    assert regs["bin"].data.data == bytes.fromhex("12abcdef")
    # runtime variables stay for the installer, which expands them as CSI does (pkggen keeps them too)
    assert regs["multi"].data.data == "a\0b\0$(runtime.system32)\\x.exe\0\0".encode("utf-16-le")
    assert regs["multi"].data.warning
    assert regs["exp"].data.type == 2


@pytest.mark.parametrize(
    "body,fragment",
    [
        ('<files><file source="$(NOPE)\\a.txt"/></files>', "x.wm.xml:2: undefined macro $(NOPE)"),
        (
            '<files><file source=".\\a.txt" destinationDir="C:\\Windows"/></files>',
            "must start with a device path macro",
        ),
        (
            '<files><file source=".\\a.txt" destinationDir="$(runtime.system32)\\..\\..\\.."/></files>',
            "escapes its root",
        ),
        ('<files><file source=".\\a.txt" destinationDir="$(hklm.software)"/></files>', "device path macro"),
        ('<files><file source=".\\a.txt"/><file source=".\\b.txt" name="A.TXT"/></files>', "already used by"),
        ('<regKeys><regKey keyName="HKEY_LOCAL_MACHINE\\x"/></regKeys>', "must start with a registry macro"),
        (
            '<regKeys><regKey keyName="$(hklm.software)\\x"><regValue name="v" type="REG_DWORD" value="0xZZ"/>'
            "</regKey></regKeys>",
            "x.wm.xml:2: REG_DWORD value '0xZZ' is not hexadecimal",
        ),
        (
            '<regKeys><regKey keyName="$(hklm.software)\\x"><regValue name="v" type="REG_DWORD" value="0x100000000"/>'
            "</regKey></regKeys>",
            "does not fit in 32 bits",
        ),
        (
            '<regKeys><regKey keyName="$(hklm.software)\\x"><regValue name="v" type="REG_BINARY" value="ABC"/>'
            "</regKey></regKeys>",
            "odd number of hex digits",
        ),
        (
            '<regKeys><regKey keyName="$(hklm.software)\\x"><regValue name="v" type="REG_HEX" value="hex(7):00"/>'
            "</regKey></regKeys>",
            "only valid in legacy",
        ),
        (
            '<macros><macro id="a" value="$(b)"/><macro id="b" value="$(a)"/></macros>'
            '<files><file source="$(a)"/></files>',
            "macro recursion",
        ),
        ('<macros><macro id="runtime.system32" value="x"/></macros>', "redefines a global macro"),
    ],
)
def test_user_mistakes(tmp_path, body, fragment):
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "b.txt").write_text("b")
    p = wm(tmp_path, body, filename="x.wm.xml")
    with pytest.raises(FFUError) as exc:
        plan(p)
    assert fragment in str(exc.value)
    assert str(exc.value).startswith("x.wm.xml:")


def test_driver_files_come_from_the_inf(tmp_path):
    inf = (
        '[Version]\nSignature="$WINDOWS NT$"\nClass=System\n[Manufacturer]\n%M%=S,NTarm64\n'
        "[S.NTarm64]\n%D%=Inst,ACPI\\X\n[Inst.NT]\nCopyFiles=Drv\n[Drv]\nx.sys\n"
        '[DestinationDirs]\nDefaultDestDir=12\n[SourceDisksNames]\n1=%M%,,,""\n[SourceDisksFiles]\nx.sys=1\n'
        '[Strings]\nM="Contoso"\nD="X"\n'
    )
    (tmp_path / "x.inf").write_bytes(b"\xff\xfe" + inf.encode("utf-16-le"))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x.sys").write_bytes(b"MZ")
    p = wm(tmp_path, '<drivers><driver defaultImportPath=".\\out"><inf source="x.inf"/></driver></drivers>')
    v = plan(p)[0]
    store = (
        "$(runtime.system32)\\DriverStore\\FileRepository\\x.inf_arm64_"
        + (hashlib.sha256((tmp_path / "x.inf").read_bytes()).hexdigest()[:16])
    )
    assert sorted(x.device_path for x in v.payload) == sorted(
        [r"$(runtime.drivers)\x.sys", r"$(runtime.inf)\x.inf", store + r"\x.inf", store + r"\x.sys"]
    )
    assert {x.source for x in v.payload if x.name == "x.sys"} == {tmp_path / "out" / "x.sys"}
    assert {x.driver for x in v.payload} == {"x.inf"}
    with pytest.raises(FFUError, match="no models section for x86|NTx86|x86"):
        plan(p, cpu="x86")


def test_case_insensitive_source_lookup(tmp_path):
    (tmp_path / "Rpi2").mkdir()
    (tmp_path / "Rpi2" / "File.TXT").write_text("x")
    v = plan(wm(tmp_path, '<files><file source=".\\RPi2\\file.txt"/></files>'))[0]
    assert v.payload[0].source == tmp_path / "Rpi2" / "File.TXT"
    assert v.payload[0].name == "File.TXT"


def test_error_kinds_are_config_errors(tmp_path):
    """Bad build options, macros and device paths are the user's settings: ConfigError."""
    with pytest.raises(ConfigError, match="CPU='x64' is not supported"):
        variant.BuildOptions(cpu="x64")
    (tmp_path / "a.txt").write_text("a")
    p = wm(tmp_path, '<files><file source="$(NOPE)\\a.txt"/></files>', filename="x.wm.xml")
    with pytest.raises(ConfigError, match="undefined macro"):
        plan(p)
    p = wm(tmp_path, '<files><file source=".\\a.txt" destinationDir="C:\\x"/></files>', filename="y.wm.xml")
    with pytest.raises(ConfigError, match="must start with a device path macro"):
        plan(p)
    p = wm(tmp_path, '<regKeys><regKey keyName="HKEY_LOCAL_MACHINE\\x"/></regKeys>', filename="z.wm.xml")
    with pytest.raises(ConfigError, match="must start with a registry macro"):
        plan(p)
