"""FM / FMFileList models, the Language/Resolution filter syntax, placeholders, implicit IDs."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ffuforge.errors import ConfigError, FFUError
from ffuforge.features import fm

from fmkit import XMLNS, fm_xml, pkg

# ------------------------------------------------------------------------------- filters


@pytest.mark.parametrize(
    "text,kind,items",
    [
        ("*", "all", ()),
        ("(en-US;zh-CN)", "only", ("en-US", "zh-CN")),
        ("!(en-US;zh-CN)", "except", ("en-US", "zh-CN")),
        (" ( en-US ; fr-FR ) ", "only", ("en-US", "fr-FR")),
        ("! (de-DE)", "except", ("de-DE",)),
    ],
)
def test_filter_parse(text, kind, items):
    f = fm.parse_filter(text, "language")
    assert (f.kind, f.items) == (kind, items)


def test_filter_resolution_parse():
    f = fm.parse_filter("(720x1280;768X1280)", "resolution")
    assert f.items == ("720x1280", "768X1280")


@pytest.mark.parametrize(
    "text,what,fragment",
    [
        ("en-US", "language", "parentheses"),
        ("()", "language", "empty item"),
        ("(en-US;)", "language", "empty item"),
        ("(en-US,zh-CN)", "language", "separated by ';'"),
        ("((en-US))", "language", "nested"),
        ("!*", "language", "parentheses"),
        ("(1024*768)", "resolution", "not a resolution"),
        ("(en-US)", "resolution", "not a resolution"),
        ("", "language", "parentheses"),
    ],
)
def test_filter_errors(text, what, fragment):
    with pytest.raises(FFUError) as exc:
        fm.parse_filter(text, what, "x/FM.xml", 7)
    assert fragment in str(exc.value) and str(exc.value).startswith("x/FM.xml:7: ")


def test_filter_select():
    only = fm.parse_filter("(en-US;zh-CN)")
    assert only.select(["en-us", "de-de"]) == (True, ("en-us",))
    assert only.select(["de-de"]) == (False, ())
    exc = fm.parse_filter("!(en-US;zh-CN)")
    assert exc.select(["de-de", "fr-fr"]) == (True, ("de-de", "fr-fr"))
    assert exc.select(["EN-us", "fr-fr"])[0] is False
    assert fm.parse_filter("*").select(["x-y"]) == (True, ("x-y",))
    assert exc.select([]) == (True, ())
    assert only.select([]) == (False, ())


LANGS = st.sampled_from(
    ["en-US", "en-us", "EN-GB", "fr-FR", "fr-ca", "es-ES", "es-MX", "zh-CN", "de-DE", "ja-JP"]
)
RESES = st.builds(
    lambda w, h, x: f"{w}{x}{h}", st.integers(1, 9999), st.integers(1, 9999), st.sampled_from("xX")
)


@given(items=st.lists(LANGS, min_size=1, max_size=5), image=st.lists(LANGS, max_size=5), negate=st.booleans())
def test_filter_semantics_property(items, image, negate):
    text = ("!" if negate else "") + "(" + ";".join(items) + ")"
    f = fm.parse_filter(text, "language")
    assert str(f) == text and fm.parse_filter(str(f)) == f
    wanted = {x.lower() for x in items}
    hit = any(v.lower() in wanted for v in image)
    assert f.select(image)[0] == (not hit if negate else hit)
    # case never matters
    swapped = fm.parse_filter(text.swapcase().replace("!", "!"), "language")
    assert swapped.select(image)[0] == f.select(image)[0]
    # only/except are complements
    other = fm.parse_filter(text[1:] if negate else "!" + text)
    assert f.select(image)[0] != other.select(image)[0]
    # the justification is always a subset of the image values
    assert set(f.select(image)[1]) <= set(image)


@given(items=st.lists(RESES, min_size=1, max_size=4), image=st.lists(RESES, max_size=3))
def test_resolution_filter_property(items, image):
    f = fm.parse_filter("(" + ";".join(items) + ")", "resolution")
    assert f.select(image)[0] == any(v.lower() in {i.lower() for i in items} for v in image)
    assert fm.parse_filter("*", "resolution").select(image)[0]


@settings(max_examples=300)
@given(st.text(alphabet="()!*;,xX-enUS 0123456789\t", max_size=20))
def test_filter_garbage_only_ffuerror(text):
    for what in ("language", "resolution"):
        try:
            f = fm.parse_filter(text, what)
        except FFUError:
            continue
        assert fm.parse_filter(str(f), what) == f


# --------------------------------------------------------------------------- placeholders


def test_expand_forms_and_case():
    v = fm.Variables({"PKGBLD_DIR": "/b/pkgs", "mspackageroot": "/ms", "cputype": "arm"})
    assert fm.expand(r"%pkgbld_dir%\x", v) == (r"/b/pkgs\x", [])
    assert fm.expand(r"$(MSPackageRoot)\Retail\$(cputype)\$(buildtype)", v) == (
        r"/ms\Retail\arm\$(buildtype)",
        ["$(buildtype)"],
    )


def test_expand_single_pass_and_literal_percent():
    v = {"A": "%B%", "B": "no"}
    assert fm.expand("%A%", v) == ("%B%", [])
    assert fm.expand("100% sure %A", v) == ("100% sure %A", [])
    assert fm.placeholders(r"%BSPPKG_DIR%\%OEM_NAME%.x.cab") == ["%BSPPKG_DIR%", "%OEM_NAME%"]


def test_ms_placeholders():
    assert fm.is_ms_placeholder("$(mspackageroot)") and fm.is_ms_placeholder("%MSPKG_DIR%")
    assert fm.is_ms_placeholder("%AKROOT%") and not fm.is_ms_placeholder("%PKGBLD_DIR%")


# ---------------------------------------------------------------------------- implicit IDs


def test_implicit_ids_oem_rule():
    assert fm.fm_implicit_id("OEM", "CUSTOM_CMD") == "OEM_CUSTOM_CMD"
    assert fm.fm_implicit_id("OEM", "OEM_CustomCmd") == "OEM_CustomCmd"
    assert fm.fm_implicit_id("OEM", "oem_lower") == "oem_lower"
    assert fm.input_implicit_id("OEM", "CustomCmd") == "OEM_CustomCmd"
    assert fm.input_implicit_id("OEM", "OEM_CustomCmd") == "OEM_OEM_CustomCmd"
    assert fm.fm_implicit_id("Microsoft", "IOT_SSH") == "MS_IOT_SSH"
    assert fm.input_implicit_id("Microsoft", "IOT_SSH") == "MS_IOT_SSH"


# --------------------------------------------------------------------------------- FM model

FULL = fm_xml(
    f"""
  <BasePackages>{pkg("Base.cab", Partition="EFIESP", ID="Contoso.Base", NoBasePackage="false")}</BasePackages>
  <Features>
    <Microsoft>{pkg("Ms.cab", "$(mspackageroot)", ("IOT_X",), CPUType="ARM")}</Microsoft>
    <MSFeatureGroups>
      <FeatureGroup Name="Pub" PublishingFeatureGroup="true">
        <FeatureIDs><FeatureID>BASE</FeatureID></FeatureIDs>
        <SubGroups><FeatureGroup Constraint="ZeroOrOne"><FeatureIDs><FeatureID>MS_A</FeatureID><FeatureID>MS_B</FeatureID></FeatureIDs></FeatureGroup></SubGroups>
      </FeatureGroup>
    </MSFeatureGroups>
    <OEM>
      {pkg("Cmd.cab", ids=("OEM_CustomCmd", "CUSTOM_CMD"), Language="(en-US;fr-FR)", Resolution="!(800x600)")}
      {pkg("Fip.cab", ids=("CUSTOM_CMD",), FeatureIdentifierPackage="true")}
    </OEM>
    <OEMFeatureGroups>
      <FeatureGroups>
        <FeatureGroup Constraint="OneAndOnlyOne"><FeatureIDs><FeatureID>OEM_CUS_DEVICE_INFO</FeatureID><FeatureID>MS_IOT_DEFAULT_POP</FeatureID></FeatureIDs></FeatureGroup>
      </FeatureGroups>
      <FeatureGroup Constraint="OneOrMore"><FeatureIDs><FeatureID>OEM_Q</FeatureID></FeatureIDs></FeatureGroup>
    </OEMFeatureGroups>
    <OEMConditionalFeatures><ConditionalFeature FeatureID="OEM_CUS_DEVICE_INFO" UpdateAction="NoUpdate"/></OEMConditionalFeatures>
  </Features>
  <ReleasePackages>{pkg("Rel.cab", ReleaseType="production")}</ReleasePackages>
  <PrereleasePackages>{pkg("Pre.cab", Type="Protected")}{pkg("Rep.cab", Type="replacement")}</PrereleasePackages>
  <SOCPackages>{pkg("Soc.cab", SOC="QC8016")}</SOCPackages>
  <SVPackages>{pkg("Sv.cab", SV="RASPBERRY PI")}</SVPackages>
  <DeviceSpecificPackages>{pkg("Dev.cab", Device="RPi2")}</DeviceSpecificPackages>
  <OEMDevicePlatformPackages>{pkg("Plat.cab", Device="RPi2")}</OEMDevicePlatformPackages>
  <DeviceLayoutPackages>{pkg("Layout.cab", SOC="RPi2", Partition="MainOS")}</DeviceLayoutPackages>
  <CPUPackages>{pkg("Cpu.cab", CPUType="ARM64")}</CPUPackages>
  <KeyboardPackages>{pkg("Kb.cab", Language="(ja-JP)")}</KeyboardPackages>
  <SpeechPackages>{pkg("Sp.cab", Language="*")}</SpeechPackages>
  <BootUILanguagePackageFile Path="$(mspackageroot)" Name="BootUI.cab"/>
  <BootLocalePackageFile Path="$(mspackageroot)" Name="BootLocale.cab" Partition="EFIESP"/>
""",
    ' Revision="1" SchemaVersion="1.2"',
)


def load_text(tmp_path: Path, text: str, name: str = "X_FM.xml") -> fm.FeatureManifest:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return fm.load_fm(p, name)


def test_every_section_and_attribute(tmp_path):
    f = load_text(tmp_path, FULL)
    assert (f.revision, f.schema_version) == ("1", "1.2")
    by = {p.name: p for p in f.packages}
    assert by["Base.cab"].partition == "EFIESP" and by["Base.cab"].id == "Contoso.Base"
    assert by["Base.cab"].no_base_package is False
    assert by["Ms.cab"].section == "Microsoft" and by["Ms.cab"].implicit_ids() == ("MS_IOT_X",)
    assert by["Ms.cab"].cpu_type == "ARM"
    assert by["Cmd.cab"].implicit_ids() == ("OEM_CustomCmd", "OEM_CUSTOM_CMD")
    assert str(by["Cmd.cab"].language) == "(en-US;fr-FR)" and by["Cmd.cab"].resolution.kind == "except"
    assert by["Fip.cab"].fip
    assert by["Rel.cab"].selector == "Production"  # canonical spelling
    assert by["Pre.cab"].selector == "protected" and by["Rep.cab"].selector == "replacement"
    assert by["Soc.cab"].selector == "QC8016" and by["Sv.cab"].selector == "RASPBERRY PI"
    assert by["Dev.cab"].section == "DeviceSpecificPackages" and by["Plat.cab"].selector == "RPi2"
    assert by["Layout.cab"].section == "DeviceLayoutPackages"
    assert by["Cpu.cab"].selector == "ARM64"
    assert by["Kb.cab"].section == "KeyboardPackages" and by["Sp.cab"].language.kind == "all"
    assert by["BootUI.cab"].section == "BootUILanguagePackageFile"
    assert by["BootLocale.cab"].partition == "EFIESP"
    groups = {g.constraint: g for top in f.groups for g in top.walk()}
    assert groups["ZeroOrMore"].publishing and groups["ZeroOrMore"].name == "Pub"
    assert groups["ZeroOrOne"].owner == "Microsoft" and groups["OneAndOnlyOne"].owner == "OEM"
    assert groups["OneOrMore"].feature_ids == ("OEM_Q",)
    assert f.conditional_features[0].feature_id == "OEM_CUS_DEVICE_INFO"
    assert f.conditional_features[0].update_action == "NoUpdate"
    assert any("differs in case" in w for w in f.warnings)  # Type="Protected", ReleaseType="production"
    assert set(f.features("OEM")) == {"oem_customcmd", "oem_custom_cmd"}


def test_write_fm_round_trip(tmp_path):
    f = load_text(tmp_path, FULL)
    again = fm.parse_fm_bytes(fm.write_fm(f, comment="x -- y"), "again.xml")

    def strip(pkgs):
        return [
            (
                p.section,
                p.path,
                p.name,
                p.feature_ids,
                p.selector,
                p.language,
                p.resolution,
                p.partition,
                p.id,
                p.cpu_type,
                p.fip,
                p.no_base_package,
            )
            for p in pkgs
        ]

    assert strip(again.packages) == strip(f.packages)
    assert [(g.owner, g.constraint, g.feature_ids, g.name, len(g.subgroups)) for g in again.groups] == [
        (g.owner, g.constraint, g.feature_ids, g.name, len(g.subgroups)) for g in f.groups
    ]
    assert [(c.feature_id, c.update_action) for c in again.conditional_features] == [
        (c.feature_id, c.update_action) for c in f.conditional_features
    ]


def test_empty_containers(tmp_path):
    f = load_text(
        tmp_path,
        fm_xml(
            "<BasePackages /><Features><Microsoft /><MSFeatureGroups /><OEM /><OEMFeatureGroups /></Features>"
        ),
    )
    assert f.packages == [] and f.groups == []


BAD_FMS = [
    (fm_xml("<Basepackages/>"), "did you mean <BasePackages>? (names are case-sensitive)"),
    (fm_xml("<Foo/>"), "<Foo> is not allowed inside <FeatureManifest>"),
    (fm_xml(f"<Features><OEM>{pkg('A.cab')}</OEM></Features>"), "needs exactly one <FeatureIDs>"),
    (
        fm_xml(
            "<Features><OEM><PackageFile Path='x' Name='A.cab'><FeatureIDs/></PackageFile></OEM></Features>"
        ),
        "empty <FeatureIDs>",
    ),
    (fm_xml(f"<BasePackages>{pkg('A.cab', ids=('X',))}</BasePackages>"), "only allowed on feature packages"),
    (fm_xml("<BasePackages><PackageFile Name='A.cab'/></BasePackages>"), "needs Path="),
    (fm_xml("<BasePackages><PackageFile Path='x'/></BasePackages>"), "needs Name="),
    (fm_xml(f"<DeviceLayoutPackages>{pkg('L.cab')}</DeviceLayoutPackages>"), "needs SOC="),
    (fm_xml(f"<DeviceLayoutPackages>{pkg('L.cab', Device='B')}</DeviceLayoutPackages>"), "it has Device="),
    (fm_xml(f"<ReleasePackages>{pkg('R.cab', ReleaseType='Retail')}</ReleasePackages>"), "Production, Test"),
    (
        fm_xml(f"<PrereleasePackages>{pkg('R.cab', Type='other')}</PrereleasePackages>"),
        "protected, replacement",
    ),
    (fm_xml(f"<CPUPackages>{pkg('C.cab')}</CPUPackages>"), "needs CPUType="),
    (fm_xml(f"<BasePackages>{pkg('C.cab', CPUType='mips')}</BasePackages>"), "not one of ARM"),
    (fm_xml(f"<BasePackages>{pkg('C.cab', path='x', Language='en-US')}</BasePackages>"), "Language='en-US'"),
    (
        fm_xml(f"<BasePackages>{pkg('C.cab', Partiton='EFIESP')}</BasePackages>"),
        "unknown attribute Partiton= on <PackageFile>; did you mean Partition?",
    ),
    (
        fm_xml(f"<BasePackages>{pkg('C.cab', partition='EFIESP')}</BasePackages>"),
        "did you mean Partition? (names are case-sensitive)",
    ),
    (fm_xml(f"<BasePackages>{pkg('C.cab', FeatureIdentifierPackage='yes')}</BasePackages>"), "true or false"),
    (
        fm_xml(
            "<Features><OEMFeatureGroups><FeatureGroup Constraint='ExactlyOne'><FeatureIDs><FeatureID>A"
            "</FeatureID></FeatureIDs></FeatureGroup></OEMFeatureGroups></Features>"
        ),
        "not one of OneOrMore",
    ),
    (
        fm_xml(
            "<Features><OEMFeatureGroups><FeatureGroup Constraint='ZeroOrOne'><FeatureIDs><FeatureID>OEM_A"
            "</FeatureID><FeatureID>OEM_B</FeatureID></FeatureIDs></FeatureGroup><FeatureGroup "
            "Constraint='OneAndOnlyOne'><FeatureIDs><FeatureID>oem_a</FeatureID></FeatureIDs></FeatureGroup>"
            "</OEMFeatureGroups></Features>"
        ),
        "two mutually exclusive feature groups",
    ),
    (
        fm_xml(
            "<Features><MSFeatureGroups><FeatureGroup Name='G'/></MSFeatureGroups><OEMFeatureGroups>"
            "<FeatureGroup Name='g'/></OEMFeatureGroups></Features>"
        ),
        "cannot override Microsoft groups",
    ),
    (
        fm_xml("<Features><OEMConditionalFeatures><ConditionalFeature/></OEMConditionalFeatures></Features>"),
        "needs FeatureID=",
    ),
    (f"<OEMInput {XMLNS}/>", "this is an OEMInput, not a feature manifest"),
    (
        f"<FMCollectionManifest {XMLNS}/>",
        "this is an FMFileList (FMCollectionManifest), not a feature manifest",
    ),
    ("<FeatureManifest/>", "add xmlns="),
    ('<FeatureManifest xmlns="https://schemas.microsoft.com/embedded/2004/10/ImageUpdate"/>', "use http://"),
    ('<FeatureManifest xmlns="urn:other"/>', "expected 'http://schemas.microsoft.com"),
    (fm_xml("<BasePackages>"), "malformed XML"),
    (f'<!DOCTYPE x [<!ENTITY a "b">]><FeatureManifest {XMLNS}/>', "DOCTYPE"),
]


@pytest.mark.parametrize("text,fragment", BAD_FMS)
def test_bad_fm(tmp_path, text, fragment):
    with pytest.raises(FFUError) as exc:
        load_text(tmp_path, text, "bad/BadFM.xml".replace("/", "_"))
    msg = str(exc.value)
    assert fragment in msg
    assert msg.startswith("bad_BadFM.xml:")


def test_bad_fm_names_line_and_package(tmp_path):
    text = fm_xml(
        f"<BasePackages>\n{pkg('Ok.cab')}\n{pkg('Broken.cab', Language='(en-US,fr-FR)')}\n</BasePackages>"
    )
    with pytest.raises(FFUError) as exc:
        load_text(tmp_path, text)
    assert exc.value.line == 5 and exc.value.file == "X_FM.xml"


def test_unreadable_fm(tmp_path):
    with pytest.raises(FFUError, match="cannot read file"):
        fm.load_fm(tmp_path / "nope.xml")


# ----------------------------------------------------------------------------- FMFileList

FL = f"""<?xml version="1.0" encoding="utf-8"?>
<FMCollectionManifest {XMLNS} Product="IoTUAP">
  <IsBuildFeatureEnabled>true</IsBuildFeatureEnabled>
  <FMs>
    <FM ID="OEMCOMMON" Path="$(FMDirectory)\\OEMCommonFM.xml" ReleaseType="Production" OwnerName="OEM_NAME"
        OwnerType="OEM" CPUType="ARM" Critical="true"/>
    <FM ID="OEMFM" Path="$(FMDirectory)\\OEMFM.xml" ReleaseType="test" OwnerName="OEM_NAME" OwnerType="OEM"
        CPUType="CPU_TYPE" Critical="true"/>
  </FMs>
  <SupportedResolutions><Resolution>1024x768</Resolution></SupportedResolutions>
  <SupportedLanguages><Language>en-US</Language></SupportedLanguages>
  <SupportedLocales><Locale>en-US</Locale></SupportedLocales>
</FMCollectionManifest>
"""


def test_fmfilelist(tmp_path):
    p = tmp_path / "OEMFMFileList.xml"
    p.write_text(FL)
    fl = fm.load_fmfilelist(p, "OEMFMFileList.xml")
    assert fl.product == "IoTUAP" and fl.is_build_feature_enabled
    assert [e.id for e in fl.fms] == ["OEMCOMMON", "OEMFM"]
    assert fl.fms[0].file_name == "OEMCommonFM.xml" and fl.fms[0].critical is True
    assert fl.fms[1].release_type == "Test" and fl.fms[1].cpu_type == "CPU_TYPE"
    assert fl.resolutions == ("1024x768",) and fl.languages == ("en-US",) and fl.locales == ("en-US",)
    assert any("longer than the documented 8" in w for w in fl.warnings)  # OEMCOMMON is 9
    assert any("differs in case" in w for w in fl.warnings)


@pytest.mark.parametrize(
    "edit,fragment",
    [
        (lambda t: t.replace('ID="OEMFM"', 'ID="oemcommon"'), "is used twice"),
        (lambda t: t.replace('ReleaseType="test"', 'ReleaseType="Retail"'), "not Production or Test"),
        (
            lambda t: t.replace('OwnerType="OEM" CPUType="ARM"', 'OwnerType="SV" CPUType="ARM"'),
            "not OEM or Microsoft",
        ),
        (lambda t: t.replace(' ID="OEMFM"', ""), "needs ID="),
        (lambda t: t.replace("<Resolution>1024x768", "<Resolution>big"), "not WxH"),
        (
            lambda t: t.replace("<FMs>", "<FMS>").replace("</FMs>", "</FMS>"),
            "did you mean <FMs>? (names are case-sensitive)",
        ),
        (lambda t: t.replace("FMCollectionManifest", "FeatureManifest"), "this is a feature manifest (FM)"),
    ],
)
def test_bad_fmfilelist(tmp_path, edit, fragment):
    p = tmp_path / "L.xml"
    p.write_text(edit(FL))
    with pytest.raises(FFUError) as exc:
        fm.load_fmfilelist(p, "L.xml")
    assert fragment in str(exc.value) and str(exc.value).startswith("L.xml:")


# --------------------------------------------------------------------------- error kinds


def test_bad_filter_is_a_config_error():
    with pytest.raises(ConfigError, match="separated by ';'"):
        fm.parse_filter("(en-US,zh-CN)", "language", "x/FM.xml", 7)


def test_bad_fm_content_is_a_config_error(tmp_path):
    text = fm_xml(
        "<Features><MSFeatureGroups><FeatureGroup Name='G'/></MSFeatureGroups><OEMFeatureGroups>"
        "<FeatureGroup Name='g'/></OEMFeatureGroups></Features>"
    )
    with pytest.raises(ConfigError, match="cannot override Microsoft groups"):
        load_text(tmp_path, text)
    with pytest.raises(ConfigError, match="this is an OEMInput, not a feature manifest"):
        load_text(tmp_path, f"<OEMInput {XMLNS}/>")


def test_bad_fmfilelist_is_a_config_error(tmp_path):
    p = tmp_path / "L.xml"
    p.write_text(FL.replace('ID="OEMFM"', 'ID="oemcommon"'))
    with pytest.raises(ConfigError, match="is used twice"):
        fm.load_fmfilelist(p, "L.xml")


# -------------------------------------------------------------------------------- corpus

#: corpus templates that are really broken: SOC and Device swapped between
#: DeviceLayoutPackages and OEMDevicePlatformPackages
BROKEN_FMS = {
    "addonkit/v1.0-10586-pkgxml/Templates/bsp/BSPFMTemplate.xml",
    "addonkit/v2.0-14393-pkgxml/Templates/bsp/BSPFMTemplate.xml",
    "addonkit/_history-union/Source-arm/Templates/SampleFM.xml",
    "addonkit/_history-union/Source-x64/Templates/SampleFM.xml",
    "addonkit/_history-union/Source-x86/Templates/SampleFM.xml",
}


def test_corpus_fms_load(corpus):
    ok, failed = 0, {}
    for p in sorted(corpus.rglob("*FM*.xml")):
        if "FMFileList" in p.name:
            continue
        rel = p.relative_to(corpus).as_posix()
        try:
            f = fm.load_fm(p, rel)
        except FFUError as exc:
            failed[rel] = str(exc)
            continue
        ok += 1
        again = fm.parse_fm_bytes(fm.write_fm(f), rel)
        assert [(x.section, x.name, x.feature_ids, x.selector) for x in again.packages] == [
            (x.section, x.name, x.feature_ids, x.selector) for x in f.packages
        ]
    assert set(failed) == BROKEN_FMS, failed
    for rel, msg in failed.items():
        assert msg.startswith(rel + ":22: ") and "needs SOC=" in msg and "it has Device=" in msg
    assert ok >= 120


def test_corpus_fmfilelists_load(corpus):
    lists = [p for p in corpus.rglob("*FMFileList*.xml")]
    assert len(lists) >= 65
    for p in lists:
        fl = fm.load_fmfilelist(p, str(p))
        assert fl.fms and fl.languages


def test_corpus_quirks(corpus):
    # the arm64 FMFileList names OEMCOMMONFM.xml for OEMCommonFM.xml (Windows is case-insensitive)
    fl = fm.load_fmfilelist(corpus / "addonkit/17763-v7/Workspace/Source-arm64/Packages/OEMFMFileList.xml")
    assert [e.file_name for e in fl.fms] == ["OEMFM.xml", "OEMCOMMONFM.xml"]
    # feature groups with Microsoft implicit IDs, conditional features
    f = fm.load_fm(corpus / "addonkit/17763-v7/Tools/Templates/ocpupdate/OCPUpdateFM.xml")
    assert f.conditional_features[0].feature_id == "OEM_CUS_DEVICE_INFO"
    f = fm.load_fm(corpus / "addonkit/17134/Templates/ocpupdate/OCPUpdateFM.xml")
    assert f.groups[0].constraint == "OneAndOnlyOne"
    assert f.groups[0].feature_ids == ("OEM_CUS_DEVICE_INFO", "MS_IOT_DEFAULT_POP")
    # publishing groups (no constraint) with SubGroups
    f = fm.load_fm(corpus / "addonkit/_history-union/Source-arm/BSP/Rpi2/IoTUAPRPi2FM.xml")
    assert f.groups[0].publishing and f.groups[0].constraint == "ZeroOrMore"
    # the same CAB in DeviceLayoutPackages and OEMDevicePlatformPackages
    f = fm.load_fm(corpus / "addonkit/17763-v7/Workspace/Source-arm/BSP/CustomRpi2/Packages/CustomRPi2FM.xml")
    assert {p.name for p in f.section("DeviceLayoutPackages")} == {
        p.name for p in f.section("OEMDevicePlatformPackages")
    }
    # RECOVERY_BCD on three packages
    f = fm.load_fm(corpus / "addonkit/17763-v7/Workspace/Common/Packages/OEMCommonFM.xml")
    assert len(f.features("OEM")["oem_recovery_bcd"]) == 3


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_mutated_fm_only_ffuerror(tmp_path_factory, data):
    """Random damage to a valid FM: it loads, or fails with an FFUError naming the file."""
    text = FULL
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(text) - 1))
        j = data.draw(st.integers(i, min(len(text), i + 12)))
        text = (
            text[:i] + data.draw(st.sampled_from(["", "<", ">", '"', "x", "Name", "/>", "OEM_"])) + text[j:]
        )
    p = tmp_path_factory.mktemp("m") / "M_FM.xml"
    p.write_text(text, encoding="utf-8")
    try:
        f = fm.load_fm(p, "M_FM.xml")
    except FFUError as exc:
        assert str(exc).startswith("M_FM.xml")
        return
    fm.parse_fm_bytes(fm.write_fm(f), "again.xml")


def test_conditional_feature_takes_only_its_two_attributes(tmp_path):
    text = fm_xml(
        '<Features><OEMConditionalFeatures><ConditionalFeature FeatureID="OEM_X" UpdateActoin="NoUpdate"/>'
        "</OEMConditionalFeatures></Features>"
    )
    with pytest.raises(
        FFUError, match=r"unknown attribute UpdateActoin= on <ConditionalFeature>; did you mean "
    ):
        load_text(tmp_path, text, "CondFM.xml")
