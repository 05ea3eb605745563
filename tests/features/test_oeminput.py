"""OEMInput model: every element, any order, the real files' quirks, clear errors."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from ffuforge.errors import ConfigError, FFUError
from ffuforge.features import oeminput

from fmkit import XMLNS, oeminput_xml


def load(tmp_path, text, variables=None, name="TestOEMInput.xml"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return oeminput.load(p, name, variables=variables)


def test_real_sample(corpus):
    oi = oeminput.load(corpus / "addonkit/17763-v7/Workspace/Source-arm/Products/SampleA/TestOEMInput.xml")
    assert (oi.soc.value, oi.sv.value, oi.device.value) == ("RPi2", "RASPBERRY PI", "RPi2")
    assert (oi.release_type.value, oi.build_type.value) == ("Test", "fre")
    assert [i.value for i in oi.ui_languages] == ["en-us"]
    assert [i.value for i in oi.keyboard_languages] == ["en-us"] == [i.value for i in oi.speech_languages]
    assert (oi.boot_ui_language.value, oi.boot_locale.value) == ("en-us", "en-us")
    assert [i.value for i in oi.resolutions] == ["1024x768"]
    assert oi.additional_fms[0].value == r"%BLD_DIR%\MergedFMs\RPi2FM.xml" and oi.additional_fms[0].line == 30
    assert len(oi.additional_fms) == 4
    assert oi.ms_features[0].value == "IOT_EFIESP" and "IOT_ALLJOYN_APP" not in {
        i.value for i in oi.ms_features
    }
    assert [i.value for i in oi.oem_features] == ["RPI2_DRIVERS", "RPI3_DRIVERS", "CUSTOM_CMD", "PROV_AUTO"]
    assert oi.product.value == "Windows 10 IoT Core"
    assert oi.warnings == []


def test_every_element(tmp_path):
    extra = """<PackageFiles><PackageFile>%BLD_DIR%\\x\\Adhoc.cab</PackageFile></PackageFiles>
      <FormatDPP>true</FormatDPP><ExcludePrereleaseFeatures>false</ExcludePrereleaseFeatures>
      <OEMDevicePlatform>Plat</OEMDevicePlatform><UserStoreMapData SourceDir="a" UserStoreDir="b"/>"""
    oi = load(
        tmp_path,
        oeminput_xml(extra=extra, keyboard=("fr-FR",), speech=("es-ES", "es-MX"), langs=("en-US", "fr-CA")),
    )
    assert oi.package_files[0].value == r"%BLD_DIR%\x\Adhoc.cab"
    assert oi.format_dpp is True and oi.exclude_prerelease_features is False
    assert oi.oem_device_platform.value == "Plat" and oi.user_store_map[0][:2] == ("a", "b")
    assert [i.value for i in oi.speech_languages] == ["es-ES", "es-MX"]
    assert [i.value for i in oi.ui_languages] == ["en-US", "fr-CA"]


def test_any_order(tmp_path):
    text = oeminput_xml(oem=("A", "B"), ms=("IOT_X",))
    base = load(tmp_path, text)
    root = etree.fromstring(text.encode())
    kids = list(root)
    rng = random.Random(7)
    for i in range(5):
        rng.shuffle(kids)
        for k in kids:
            root.remove(k)
        for k in kids:
            root.append(k)
        oi = load(tmp_path, etree.tostring(root).decode(), name=f"shuffled{i}.xml")
        assert [x.value for x in oi.oem_features] == [x.value for x in base.oem_features]
        assert [x.value for x in (oi.soc, oi.device, oi.release_type)] == ["Board", "Board", "Test"]
        assert [x.value for x in oi.additional_fms] == [x.value for x in base.additional_fms]


def test_empty_package_files_and_features(tmp_path):
    oi = load(tmp_path, oeminput_xml(extra="<PackageFiles />"))
    assert oi.package_files == () and oi.ms_features == () and oi.oem_features == ()


def test_release_type_case_and_build_type_variable(tmp_path):
    oi = load(tmp_path, oeminput_xml(release="production", build="%BUILDTYPE%"))
    assert oi.release_type.value == "Production"
    assert any("differs in case" in w for w in oi.warnings)
    assert oi.build_type.value == "%BUILDTYPE%"  # no variable map: kept as written
    oi = load(tmp_path, oeminput_xml(build="%BUILDTYPE%"), variables={"buildtype": "CHK"})
    assert oi.build_type.value == "chk"
    with pytest.raises(FFUError, match=r"undefined variable %BUILDTYPE%"):
        load(tmp_path, oeminput_xml(build="%BUILDTYPE%"), variables={})


def test_warnings(tmp_path):
    text = oeminput_xml(oem=("A", "a")).replace("<Description>test image</Description>", "")
    text = text.replace("<Resolutions><Resolution>1024x768</Resolution></Resolutions>", "")
    oi = load(tmp_path, text)
    assert [i.value for i in oi.oem_features] == ["A"]
    joined = "\n".join(oi.warnings)
    assert "listed twice" in joined and "no <Description>" in joined and "no <Resolutions>" in joined


def _drop(tag):
    return lambda t: t.replace(t[t.index(f"<{tag}>") : t.index(f"</{tag}>") + len(tag) + 3], "")


@pytest.mark.parametrize(
    "edit,fragment",
    [
        (_drop("SOC"), "no <SOC>; it is required"),
        (_drop("Device"), "no <Device>"),
        (_drop("ReleaseType"), "no <ReleaseType>"),
        (_drop("BuildType"), "no <BuildType>"),
        (_drop("BootLocale"), "no <BootLocale>"),
        (lambda t: t.replace("<SOC>Board</SOC>", "<SOC>Board</SOC><SOC>Other</SOC>"), "<SOC> appears twice"),
        (
            lambda t: t.replace("<SOC>Board</SOC>", "<Soc>Board</Soc>"),
            "did you mean <SOC>? (names are case-sensitive)",
        ),
        (lambda t: t.replace("<SOC>Board</SOC>", "<SOC></SOC>"), "<SOC> is empty"),
        (
            lambda t: t.replace("<SOC>Board</SOC>", "<Color>red</Color>"),
            "<Color> is not allowed inside <OEMInput>",
        ),
        (lambda t: t.replace("<ReleaseType>Test", "<ReleaseType>Retail"), "must be Test or Production"),
        (lambda t: t.replace("<BuildType>fre", "<BuildType>debug"), "must be fre or chk"),
        (lambda t: t.replace("<Resolution>1024x768", "<Resolution>1024*768"), "not a resolution"),
        (lambda t: t.replace("<BootLocale>en-us", "<BootLocale>en_US"), "not a language tag"),
        (
            lambda t: t.replace(
                "<UserInterface><Language>en-us</Language></UserInterface>", "<UserInterface/>"
            ),
            "needs <UserInterface>",
        ),
        (
            lambda t: t.replace(
                "<OEM><Feature>A</Feature>", "<OEM><Feature>A</Feature><Feature><x/></Feature>"
            ),
            "text only",
        ),
        (lambda t: t.replace("<Microsoft>", "<MS>").replace("</Microsoft>", "</MS>"), "<MS> is not allowed"),
        (lambda t: t.replace("<Product>", "<FormatDPP>yes</FormatDPP><Product>"), "must be true or false"),
        (
            lambda t: t.replace("OEMInput", "FeatureManifest"),
            "this is a feature manifest (FM), not an OEMInput",
        ),
        (lambda t: t.replace(XMLNS, 'xmlns="urn:x"'), "has namespace 'urn:x'"),
        (lambda t: t.replace("</OEMInput>", ""), "malformed XML"),
    ],
)
def test_bad_oeminput(tmp_path, edit, fragment):
    text = edit(oeminput_xml(oem=("A",)))
    with pytest.raises(FFUError) as exc:
        load(tmp_path, text)
    assert fragment in str(exc.value)
    assert str(exc.value).startswith("TestOEMInput.xml:")


@pytest.mark.parametrize(
    "edit,fragment",
    [
        (_drop("SOC"), "no <SOC>; it is required"),
        (lambda t: t.replace("<ReleaseType>Test", "<ReleaseType>Retail"), "must be Test or Production"),
        (lambda t: t.replace("<BuildType>fre", "<BuildType>debug"), "must be fre or chk"),
        (lambda t: t.replace("<BootLocale>en-us", "<BootLocale>en_US"), "not a language tag"),
    ],
)
def test_bad_oeminput_is_a_config_error(tmp_path, edit, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load(tmp_path, edit(oeminput_xml(oem=("A",))))


def test_undefined_variable_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"undefined variable %BUILDTYPE%"):
        load(tmp_path, oeminput_xml(build="%BUILDTYPE%"), variables={})


def test_corpus_oeminputs_load(corpus):
    files = sorted(corpus.rglob("*OEMInput*.xml"))
    assert len(files) >= 300
    langs = set()
    for p in files:
        oi = oeminput.load(p, str(p))
        assert oi.soc.value and oi.device.value and oi.ui_languages
        langs.update(i.value for i in oi.ui_languages)
    assert {"en-us", "en-US"} <= langs  # both spellings occur; compared case-insensitively


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_mutated_oeminput_only_ffuerror(tmp_path_factory, data):
    text = oeminput_xml(oem=("A", "B"), ms=("IOT_X",), keyboard=("fr-FR",))
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(text) - 1))
        j = data.draw(st.integers(i, min(len(text), i + 12)))
        text = (
            text[:i]
            + data.draw(st.sampled_from(["", "<", ">", "x", "%V%", "</SOC>", "<Feature/>"]))
            + text[j:]
        )
    p = tmp_path_factory.mktemp("o") / "O.xml"
    p.write_text(text, encoding="utf-8")
    try:
        oeminput.load(p, "O.xml", variables=data.draw(st.sampled_from([None, {}, {"V": "fre"}])))
    except FFUError as exc:
        assert str(exc).startswith("O.xml")
