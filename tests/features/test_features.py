"""Package-set resolution (OEMInput + FMs), FeatureMerger-style merging, `ffuforge features`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ffuforge.cli import features as features_cli
from ffuforge.errors import ConfigError, FFUError
from ffuforge.features import fm, model
from ffuforge.features import merge as features

import kit_layout
from fmkit import XMLNS, Workspace, board_fm, fm_xml, names, oeminput_xml, pkg, reasons


@pytest.fixture
def ws(tmp_path) -> Workspace:
    return Workspace(tmp_path)


def features_fm(extra: str = "") -> str:
    return board_fm(f"""
  <Features>
    <OEM>
      {pkg("Contoso.Custom.Cmd.cab", ids=("OEM_CustomCmd", "CUSTOM_CMD"))}
      {pkg("Contoso.RPi.Drivers.cab", ids=("RPi2_DRIVERS",))}
      {pkg("Contoso.Recovery.A.cab", ids=("RECOVERY_BCD",))}
      {pkg("Contoso.Recovery.B.cab", ids=("RECOVERY_BCD",))}
    </OEM>
    {extra}
  </Features>""")


# ---------------------------------------------------------------------------- basic rules


def test_base_layout_platform(ws):
    ws.cabs("Contoso.Base.cab", "Contoso.Layout.cab")
    res = ws.resolve(oeminput_xml(), board_fm(), available=None)
    assert names(res) == ["Contoso.Base", "Contoso.Layout"]
    r = reasons(res)
    assert r["Contoso.Base"] == ["base"]
    assert r["Contoso.Layout"] == ["device layout Board", "device platform Board"]  # one CAB, two sections
    assert res.device_layout.name == res.device_platform.name == "Contoso.Layout"
    assert res.device_layout.path == ws.pkgs / "Contoso.Layout.cab"
    assert res.skipped == [] and list(res.partitions) == ["MainOS"]
    assert {"RELEASE_TEST", "SOC_Board", "DEVICE_Board", "SV_Vendor", "BASE"} <= set(res.features)


def test_oem_prefix_rule(ws):
    res = ws.resolve(oeminput_xml(oem=("CustomCmd",)), features_fm())
    assert reasons(res)["Contoso.Custom.Cmd"] == ["feature OEM_CustomCmd"]
    res = ws.resolve(oeminput_xml(oem=("CUSTOM_CMD", "CustomCmd")))
    assert reasons(res)["Contoso.Custom.Cmd"] == ["feature OEM_CustomCmd", "feature OEM_CUSTOM_CMD"]
    res = ws.resolve(oeminput_xml(oem=("RECOVERY_BCD",)))
    assert {"Contoso.Recovery.A", "Contoso.Recovery.B"} <= set(names(res))
    with pytest.raises(FFUError) as exc:  # OEM_CustomCmd -> OEM_OEM_CustomCmd
        ws.resolve(oeminput_xml(oem=("OEM_CustomCmd",)))
    msg = str(exc.value)
    assert msg.startswith(str(ws.root / "Products/P/TestOEMInput.xml") + ":14: ")
    assert "unknown OEM feature OEM_CustomCmd (implicit ID OEM_OEM_CustomCmd)" in msg
    assert "selected by <Feature>CustomCmd</Feature>" in msg


def test_feature_case_insensitive_with_warning(ws):
    res = ws.resolve(oeminput_xml(oem=("RPI2_DRIVERS",)), features_fm())
    assert reasons(res)["Contoso.RPi.Drivers"] == ["feature OEM_RPi2_DRIVERS"]
    assert any("only case-insensitively" in w for w in res.warnings)


def test_unknown_feature_suggests(ws):
    with pytest.raises(FFUError, match=r"unknown OEM feature CUSTOM_CMDD .*did you mean CUSTOM_CMD\?"):
        ws.resolve(oeminput_xml(oem=("CUSTOM_CMDD",)), features_fm())


ALL_SECTIONS = board_fm(f"""
  <SOCPackages>{pkg("Soc.cab", SOC="board")}{pkg("OtherSoc.cab", SOC="Other")}</SOCPackages>
  <SVPackages>{pkg("Sv.cab", SV="Vendor")}</SVPackages>
  <DeviceSpecificPackages>{pkg("Dev.cab", Device="Board")}{pkg("OtherDev.cab", Device="X")}</DeviceSpecificPackages>
  <ReleasePackages>{pkg("RelTest.cab", ReleaseType="Test")}{pkg("RelProd.cab", ReleaseType="Production")}</ReleasePackages>
  <PrereleasePackages>{pkg("Prot.cab", Type="protected")}{pkg("Repl.cab", Type="replacement")}</PrereleasePackages>
  <CPUPackages>{pkg("CpuArm.cab", CPUType="ARM")}{pkg("CpuArm64.cab", CPUType="ARM64")}</CPUPackages>
  <KeyboardPackages>{pkg("KbJa.cab", Language="(ja-JP)")}{pkg("KbAny.cab")}</KeyboardPackages>
  <SpeechPackages>{pkg("SpFr.cab", Language="!(fr-FR)")}</SpeechPackages>
  <BootUILanguagePackageFile Path="%PKGBLD_DIR%" Name="BootUI.cab"/>
  <BootLocalePackageFile Path="%PKGBLD_DIR%" Name="BootLocale.cab"/>
""")


def test_every_selector_section(ws):
    res = ws.resolve(oeminput_xml(keyboard=("ja-JP",), speech=("en-us",)), ALL_SECTIONS)
    r = reasons(res)
    assert r["Soc"] == ["SOC Board"] and "OtherSoc" not in r
    assert r["Sv"] == ["SV Vendor"]
    assert r["Dev"] == ["device Board"] and "OtherDev" not in r
    assert r["RelTest"] == ["release Test"] and "RelProd" not in r
    assert r["Prot"] == ["prerelease protected"] and "Repl" not in r
    assert r["CpuArm"] == ["CPU arm"] and "CpuArm64" not in r
    assert r["KbJa"] == ["keyboard ja-JP"] and r["KbAny"] == ["keyboard ja-JP"]
    assert r["SpFr"] == ["speech en-us"]
    assert r["BootUI"] == ["boot UI language en-us"] and r["BootLocale"] == ["boot locale en-us"]
    assert any("SOC='board'" in w and "case-insensitively" in w for w in res.warnings)

    res = ws.resolve(
        oeminput_xml(
            release="Production", extra="<ExcludePrereleaseFeatures>true</ExcludePrereleaseFeatures>", sv=None
        ),
        cpu="arm64",
    )
    r = reasons(res)
    assert r["RelProd"] == ["release Production"] and "RelTest" not in r
    assert r["Repl"] == ["prerelease replacement"] and "Prot" not in r
    assert r["CpuArm64"] == ["CPU arm64"] and "Sv" not in r
    assert "KbJa" not in r and "KbAny" not in r and "SpFr" not in r  # no keyboard/speech languages


def test_language_resolution_cpu_filters(ws):
    text = board_fm(f"""<Features><OEM>
      {pkg("Fr.cab", ids=("F",), Language="(fr-FR)")}
      {pkg("NotFr.cab", ids=("F",), Language="!(fr-FR)")}
      {pkg("AnyLang.cab", ids=("F",), Language="*")}
      {pkg("EnUS.cab", ids=("F",), Language="(EN-US;de-DE)")}
      {pkg("Small.cab", ids=("F",), Resolution="(800x600)")}
      {pkg("Big.cab", ids=("F",), Resolution="!(800x600)")}
      {pkg("Arm64Only.cab", ids=("F",), CPUType="ARM64")}
      {pkg("ArmOnly.cab", ids=("F",), CPUType="arm")}
    </OEM></Features>""")
    r = reasons(ws.resolve(oeminput_xml(oem=("F",), langs=("en-us", "es-ES")), text))
    assert "Fr" not in r and "Small" not in r and "Arm64Only" not in r
    assert r["NotFr"] == ["feature OEM_F", "language en-us;es-ES"]
    assert r["AnyLang"] == ["feature OEM_F", "language en-us;es-ES"]
    assert r["EnUS"] == ["feature OEM_F", "language en-us"]
    assert sum("matches EN-US" in w for w in ws.resolve(oeminput_xml(oem=("F",))).warnings) == 1
    assert r["Big"] == ["feature OEM_F", "resolution 1024x768"]
    assert r["ArmOnly"] == ["feature OEM_F", "CPU arm"]
    r = reasons(ws.resolve(oeminput_xml(oem=("F",), langs=("fr-FR",), res=("800X600",))))
    assert "NotFr" not in r and "EnUS" not in r and "Big" not in r
    assert r["Fr"] == ["feature OEM_F", "language fr-FR"] and r["Small"] == [
        "feature OEM_F",
        "resolution 800X600",
    ]


# ------------------------------------------------------------------- layout / platform


def test_layout_required(ws):
    with pytest.raises(FFUError) as exc:
        ws.resolve(oeminput_xml(soc="Nope"), board_fm())
    assert "no DeviceLayout package for SOC Nope" in str(exc.value) and exc.value.line == 4


def test_two_layouts_refused(ws):
    text = board_fm(f"<DeviceLayoutPackages>{pkg('Other.Layout.cab', SOC='board')}</DeviceLayoutPackages>")
    with pytest.raises(
        FFUError,
        match=r"2 DeviceLayout packages match SOC Board, exactly one is allowed: "
        r"Contoso.Layout .*Other.Layout",
    ):
        ws.resolve(oeminput_xml(), text)


def test_platform_required(ws):
    with pytest.raises(FFUError, match="no OEMDevicePlatform package for Device Other"):
        ws.resolve(oeminput_xml(device="Other"), board_fm())


# -------------------------------------------------------------------------------- groups


def groups_fm(constraint: str, ids=("OEM_A", "OEM_B")) -> str:
    fids = "".join(f"<FeatureID>{i}</FeatureID>" for i in ids)
    return board_fm(f"""<Features><OEM>{pkg("A.cab", ids=("A",))}{pkg("B.cab", ids=("B",))}</OEM>
      <OEMFeatureGroups><FeatureGroup Constraint="{constraint}"><FeatureIDs>{fids}</FeatureIDs></FeatureGroup>
      </OEMFeatureGroups></Features>""")


@pytest.mark.parametrize(
    "constraint,selected,error",
    [
        ("OneOrMore", (), "needs one of its features selected"),
        ("OneOrMore", ("A",), None),
        ("OneOrMore", ("A", "B"), None),
        ("ZeroOrOne", (), None),
        ("ZeroOrOne", ("B",), None),
        ("ZeroOrOne", ("A", "B"), "features OEM_A and OEM_B are mutually exclusive"),
        ("OneAndOnlyOne", (), "needs one of its features selected"),
        ("OneAndOnlyOne", ("A",), None),
        ("OneAndOnlyOne", ("A", "B"), "mutually exclusive"),
        ("ZeroOrMore", (), None),
        ("ZeroOrMore", ("A", "B"), None),
    ],
)
def test_group_constraints(ws, constraint, selected, error):
    oi = oeminput_xml(oem=selected)
    if error is None:
        res = ws.resolve(oi, groups_fm(constraint))
        assert {n for n in names(res) if n in ("A", "B")} == set(selected)
    else:
        with pytest.raises(FFUError) as exc:
            ws.resolve(oi, groups_fm(constraint))
        assert error in str(exc.value) and f"({constraint}: OEM_A, OEM_B)" in str(exc.value)
        assert "BoardFM.xml:" in str(exc.value)


@pytest.mark.parametrize(
    "ids,soc,ok",
    [
        (("SOC_Board", "SOC_Other"), "Board", True),
        (("SOC_X", "SOC_Other"), "Board", False),
        (("RELEASE_TEST", "RELEASE_PRODUCTION"), "Board", True),
        (("DEVICE_board", "OEM_A"), "Board", True),  # implicit IDs compare case-insensitively
    ],
)
def test_groups_on_implicit_ids(ws, ids, soc, ok):
    text = groups_fm("OneAndOnlyOne", ids)
    if ok:
        ws.resolve(oeminput_xml(soc=soc), text)
    else:
        with pytest.raises(FFUError, match="needs one of its features selected"):
            ws.resolve(oeminput_xml(soc=soc), text)


def test_feature_in_two_exclusive_groups_across_fms(ws):
    ws.write(
        "fms/G2FM.xml",
        fm_xml("""<Features><OEMFeatureGroups><FeatureGroup Constraint="ZeroOrOne">
      <FeatureIDs><FeatureID>OEM_A</FeatureID><FeatureID>OEM_C</FeatureID></FeatureIDs></FeatureGroup>
      </OEMFeatureGroups></Features>"""),
    )
    with pytest.raises(FFUError) as exc:
        ws.resolve(
            oeminput_xml(fms=("fms/BoardFM.xml", "fms/G2FM.xml"), oem=("A",)), groups_fm("OneAndOnlyOne")
        )
    assert "feature OEM_A is in two mutually exclusive feature groups" in str(exc.value)
    assert "G2FM.xml" in str(exc.value) and "BoardFM.xml" in str(exc.value)


def test_microsoft_ids_count_for_constraints(ws):
    text = board_fm(
        """<Features><OEM>"""
        + pkg("Info.cab", ids=("CUS_DEVICE_INFO",))
        + """</OEM>
      <OEMFeatureGroups><FeatureGroup Constraint="OneAndOnlyOne"><FeatureIDs>
      <FeatureID>OEM_CUS_DEVICE_INFO</FeatureID><FeatureID>MS_IOT_DEFAULT_POP</FeatureID></FeatureIDs>
      </FeatureGroup></OEMFeatureGroups>
      <OEMConditionalFeatures><ConditionalFeature FeatureID="OEM_CUS_DEVICE_INFO" UpdateAction="NoUpdate"/>
      </OEMConditionalFeatures></Features>"""
    )
    res = ws.resolve(oeminput_xml(ms=("IOT_DEFAULT_POP",)), text)
    assert "Info" not in names(res) and "MS_IOT_DEFAULT_POP" in res.features
    assert "Info" in names(ws.resolve(oeminput_xml(oem=("CUS_DEVICE_INFO",))))
    with pytest.raises(FFUError, match="OEM_CUS_DEVICE_INFO and MS_IOT_DEFAULT_POP are mutually exclusive"):
        ws.resolve(oeminput_xml(oem=("CUS_DEVICE_INFO",), ms=("IOT_DEFAULT_POP",)))


def test_conditional_feature_must_exist(ws):
    text = board_fm("""<Features><OEMConditionalFeatures>
      <ConditionalFeature FeatureID="OEM_MISSING" UpdateAction="NoUpdate"/></OEMConditionalFeatures></Features>""")
    with pytest.raises(FFUError) as exc:
        ws.resolve(oeminput_xml(), text)
    assert "ConditionalFeature OEM_MISSING" in str(exc.value) and exc.value.file.endswith("BoardFM.xml")


# ---------------------------------------------------------------------------- Microsoft

MS_PATH = r"$(mspackageroot)\Retail\$(cputype)\$(buildtype)"
MS_FM = fm_xml(
    "<Features><Microsoft>" + pkg("Microsoft-IoT-Ssh.cab", MS_PATH, ("IOT_SSH",)) + "</Microsoft></Features>"
)


def test_microsoft_features_skipped_without_root(ws):
    text = board_fm(f"<BasePackages>{pkg('RASPBERRYPI.RPi2.BootFirmware.cab', '%MSPKG_DIR%')}</BasePackages>")
    res = ws.resolve(
        oeminput_xml(
            ms=("IOT_SSH", "IOT_EFIESP"),
            fms=("fms/BoardFM.xml", r"%AKROOT%\FMFiles\arm\IoTUAPNonProductionPartnerShareFM.xml"),
        ),
        text,
    )
    kinds = {(s.kind, s.name) for s in res.skipped}
    assert ("feature", "MS_IOT_SSH") in kinds and ("feature", "MS_IOT_EFIESP") in kinds
    assert ("fm", r"%AKROOT%\FMFiles\arm\IoTUAPNonProductionPartnerShareFM.xml") in kinds
    assert ("package", "RASPBERRYPI.RPi2.BootFirmware") in kinds
    assert all(s.reason for s in res.skipped) and "RASPBERRYPI.RPi2.BootFirmware" not in names(res)
    assert {"MS_IOT_SSH", "MS_IOT_EFIESP"} <= set(res.features)


def test_microsoft_root(ws):
    ms = ws.root / "MSPackages"
    (ms / "Retail" / "arm" / "fre").mkdir(parents=True)
    ws.write("MSPackages/../FMFiles/arm/MsFM.xml", MS_FM)
    text = board_fm(f"<BasePackages>{pkg('RASPBERRYPI.RPi2.BootFirmware.cab', '%MSPKG_DIR%')}</BasePackages>")
    res = ws.resolve(
        oeminput_xml(ms=("IOT_SSH",), fms=("fms/BoardFM.xml", r"%AKROOT%\FMFiles\arm\MsFM.xml")),
        text,
        ms_root=ms,
    )
    assert res.skipped == []
    r = {p.name: p for p in res.packages()}
    assert r["Microsoft-IoT-Ssh"].reasons == ["feature MS_IOT_SSH"]
    assert r["Microsoft-IoT-Ssh"].path == ms / "Retail" / "arm" / "fre" / "Microsoft-IoT-Ssh.cab"
    assert (
        r["RASPBERRYPI.RPi2.BootFirmware"].path
        == ms / "Retail" / "arm" / "fre" / "RASPBERRYPI.RPi2.BootFirmware.cab"
    )
    with pytest.raises(FFUError, match="unknown Microsoft feature IOT_NOPE"):
        ws.resolve(oeminput_xml(ms=("IOT_NOPE",)), ms_root=ms)
    # an edition FM given as configuration
    res = ws.resolve(oeminput_xml(ms=("IOT_SSH",)), ms_root=ms, extra_fms=[ws.root / "FMFiles/arm/MsFM.xml"])
    assert "Microsoft-IoT-Ssh" in names(res)


def test_skipped_microsoft_bsp_fm(ws):
    """pkg.xml-era kits take the RPi2 BSP FM from Microsoft's kit: its features and layout are skipped."""
    ws.write("fms/OemFM.xml", fm_xml(f"<BasePackages>{pkg('Contoso.Base.cab')}</BasePackages>"))
    res = ws.resolve(
        oeminput_xml(fms=("fms/OemFM.xml", r"%AKROOT%\FMFiles\arm\RPi2FM.xml"), oem=("RPI2_DRIVERS",))
    )
    kinds = {s.kind for s in res.skipped}
    assert kinds == {"fm", "feature", "device layout", "device platform"}
    assert res.device_layout is None and names(res) == ["Contoso.Base"]


def test_oem_prefixed_feature_is_flagged_when_skipped(ws):
    """#18 item 8: `<OEM><Feature>OEM_CustomCmd` becomes OEM_OEM_CustomCmd; with a skipped Microsoft
    FM it is not an error (it might be Microsoft's) but one warning naming the FM line of OEM_CustomCmd."""
    ws.write("fms/BoardFM.xml", features_fm())
    res = ws.resolve(
        oeminput_xml(
            fms=("fms/BoardFM.xml", r"%AKROOT%\FMFiles\arm\RPi2FM.xml"), oem=("OEM_CustomCmd", "Gone")
        )
    )
    [flag] = [w for w in res.warnings if "OEM_OEM_" in w]
    assert "OEM feature OEM_CustomCmd becomes OEM_OEM_CustomCmd" in flag
    assert "FM feature OEM_CustomCmd is at " in flag and "BoardFM.xml:" in flag
    assert flag.endswith("write <Feature>CustomCmd</Feature>")
    assert {s.name for s in res.skipped if s.kind == "feature"} == {"OEM_OEM_CustomCmd", "OEM_Gone"}


# ------------------------------------------------------------------- packages and paths


def test_dedupe_and_same_name_twice(ws):
    text = board_fm(f"<Features><OEM>{pkg('Contoso.Base.cab', ids=('X',))}</OEM></Features>")
    res = ws.resolve(oeminput_xml(oem=("X",)), text)
    assert reasons(res)["Contoso.Base"] == ["base", "feature OEM_X"]
    assert len(res.partitions["MainOS"][0].sources) == 2
    text = board_fm(
        f"<Features><OEM>{pkg('contoso.base.cab', path='elsewhere', ids=('X',))}</OEM></Features>"
    )
    with pytest.raises(FFUError) as exc:
        ws.resolve(oeminput_xml(oem=("X",)), text)
    msg = str(exc.value)
    assert "package contoso.base is listed twice with different paths" in msg
    assert "feature OEM_X" in msg and "BoardFM.xml" in msg


def test_partitions(ws):
    text = board_fm(f"""<BasePackages>{pkg("Efi.cab", Partition="EFIESP")}{pkg("Efi2.cab", Partition="efiesp")}
      {pkg("Data.cab")}</BasePackages>""")
    res = ws.resolve(oeminput_xml(), text, partition_of=lambda p: "Data" if p.name == "Data.cab" else None)
    assert list(res.partitions) == ["Data", "EFIESP", "MainOS"]
    assert names(res, "EFIESP") == ["Efi", "Efi2"] and names(res, "Data") == ["Data"]
    assert any("differs in case" in w for w in res.warnings)
    text = board_fm(
        f"<Features><OEM>{pkg('Contoso.Base.cab', ids=('X',), Partition='EFIESP')}</OEM></Features>"
    )
    with pytest.raises(FFUError, match="assigned to partition EFIESP here but to MainOS"):
        ws.resolve(oeminput_xml(oem=("X",)), text)


def test_missing_cab(ws):
    ws.cabs("Contoso.Base.cab", "Contoso.Layout.cab")
    with pytest.raises(FFUError) as exc:
        ws.resolve(oeminput_xml(oem=("CUSTOM_CMD",)), features_fm(), available=None)
    e = exc.value
    assert e.file.endswith("BoardFM.xml") and e.line == 10
    assert "missing package" in e.message and "Contoso.Custom.Cmd" in e.message
    assert "feature OEM_CUSTOM_CMD" in e.message
    # "going to be built" counts as available
    res = ws.resolve(oeminput_xml(oem=("CUSTOM_CMD",)), available=[ws.pkgs / "Contoso.Custom.Cmd.cab"])
    assert "Contoso.Custom.Cmd" in names(res)


def test_undefined_placeholder(ws):
    text = board_fm(f"<BasePackages>{pkg('X.cab', '%NOPE_DIR%')}</BasePackages>")
    with pytest.raises(FFUError) as exc:
        ws.resolve(oeminput_xml(), text)
    assert "undefined variable %NOPE_DIR%" in str(exc.value) and "package X.cab" in str(exc.value)
    assert exc.value.file.endswith("BoardFM.xml")


def test_additional_fm_errors(ws):
    ws.write("fms/BoardFM.xml", board_fm())
    with pytest.raises(model.MissingFMError) as exc:
        ws.resolve(oeminput_xml(fms=("fms/BoardFM.xml", r"fms\Missing.xml")))
    assert exc.value.line == 13 and "no such file" in str(exc.value)
    with pytest.raises(FFUError, match="is this OEMInput itself"):
        ws.resolve(oeminput_xml(fms=("fms/BoardFM.xml", r"Products\P\TestOEMInput.xml")))
    with pytest.raises(FFUError, match="listed twice"):
        ws.resolve(oeminput_xml(fms=("fms/BoardFM.xml", r"FMS\boardfm.xml")))
    ws.write("fms/List.xml", f"<FMCollectionManifest {XMLNS}><FMs/></FMCollectionManifest>")
    with pytest.raises(FFUError) as exc:
        ws.resolve(oeminput_xml(fms=("fms/BoardFM.xml", "fms/List.xml")))
    assert "is unusable" in str(exc.value) and "this is an FMFileList" in str(exc.value)
    assert exc.value.file.endswith("TestOEMInput.xml")
    ws.write("fms/Broken.xml", "<FeatureManifest")
    with pytest.raises(FFUError, match=r"Broken.xml:1: malformed XML"):
        ws.resolve(oeminput_xml(fms=("fms/BoardFM.xml", "fms/Broken.xml")))
    with pytest.raises(FFUError, match=r"undefined variable %WHERE%"):
        ws.resolve(oeminput_xml(fms=("fms/BoardFM.xml", r"%WHERE%\X.xml")))


def test_case_insensitive_paths(ws):
    ws.write("fms/BoardFM.xml", board_fm())
    res = ws.resolve(oeminput_xml(fms=(r"FMs\boardFM.XML",)))
    assert names(res) == ["Contoso.Base", "Contoso.Layout"]


def test_same_destination_file(ws):
    files = {
        "Contoso.Base.cab": ["\\Windows\\System32\\a.dll"],
        "Contoso.Layout.cab": ["\\windows\\system32\\A.DLL"],
    }
    with pytest.raises(FFUError) as exc:
        ws.resolve(oeminput_xml(), board_fm(), files_of=lambda p: files.get(p.name))
    assert "both install" in str(exc.value) and "Contoso.Base" in str(exc.value)
    assert "Contoso.Layout" in str(exc.value) and "partition MainOS" in str(exc.value)


def test_oeminput_package_files_and_production_warnings(ws):
    ws.cabs("Adhoc.cab")
    res = ws.resolve(
        oeminput_xml(
            release="Production",
            ms=("IOT_SSH", "IOT_NETCMD"),
            fms=("fms/BoardFM.xml", r"%AKROOT%\FMFiles\arm\IoTUAPNonProductionPartnerShareFM.xml"),
            extra=r"<PackageFiles><PackageFile>%PKGBLD_DIR%\Adhoc.cab</PackageFile></PackageFiles>",
        ),
        board_fm(),
    )
    assert reasons(res)["Adhoc"] == ["OEMInput PackageFile"]
    w = "\n".join(res.warnings)
    assert "developer feature IOT_SSH in a Production image" in w
    assert "IOT_NETCMD is deprecated" in w and "test features" in w and "pre-retail" in w


def test_deterministic_json(ws):
    a = ws.resolve(oeminput_xml(oem=("CUSTOM_CMD", "RECOVERY_BCD")), features_fm()).to_json()
    b = ws.resolve(oeminput_xml(oem=("RECOVERY_BCD", "CUSTOM_CMD"))).to_json()
    assert a["partitions"] == b["partitions"]
    assert json.loads(json.dumps(a)) == a


# -------------------------------------------------------------------------------- merge

FMLIST = f"""<?xml version="1.0" encoding="utf-8"?>
<FMCollectionManifest {XMLNS} Product="IoTUAP">
  <IsBuildFeatureEnabled>true</IsBuildFeatureEnabled>
  <FMs>
    <FM ID="OEMCOMMON" Path="$(FMDirectory)\\OEMCommonFM.xml" ReleaseType="Production" OwnerName="OEM_NAME" OwnerType="OEM" CPUType="ARM" Critical="true"/>
    <FM ID="Board" Path="$(FMDirectory)\\BoardFM.xml" ReleaseType="Production" OwnerName="OEM_NAME" OwnerType="OEM" CPUType="CPU_TYPE" Critical="true"/>
  </FMs>
  <SupportedResolutions><Resolution>1024x768</Resolution></SupportedResolutions>
  <SupportedLanguages><Language>en-US</Language></SupportedLanguages>
  <SupportedLocales><Locale>en-US</Locale></SupportedLocales>
</FMCollectionManifest>
"""

COMMON_FM = fm_xml(f"""<BasePackages>{pkg("Contoso.Version.cab")}{pkg("Contoso.Efi.cab", Partition="EFIESP")}</BasePackages>
  <Features><OEM>{pkg("Contoso.Custom.Cmd.cab", ids=("OEM_CustomCmd", "CUSTOM_CMD"))}
  {pkg("Contoso.Recovery.cab", ids=("RECOVERY_BCD",))}</OEM></Features>""")


def setup_merge(ws: Workspace, board: str | None = None, fmlist: str = FMLIST):
    ws.write("common/OEMCommonFM.xml", COMMON_FM)
    ws.write(
        "bsp/BoardFM.xml",
        board
        or board_fm(
            f"<Features><OEM>{pkg('Board.Drivers.cab', '%BSPPKG_DIR%', ('BOARD_DRIVERS',))}</OEM></Features>"
        ),
    )
    lst = ws.write("bsp/BoardFMFileList.xml", fmlist)
    settings = features.MergeSettings(
        cpu="arm",
        out_pkg_dir=ws.pkgs,
        version="10.0.1.0",
        variables={**ws.variables, "BSPPKG_DIR": str(ws.pkgs)},
        fm_dirs=(ws.root / "bsp", ws.root / "common"),
        top=ws.root,
    )
    return lst, settings


def test_merge_fips(ws):
    lst, settings = setup_merge(ws)
    res = features.merge(
        lst,
        settings,
        available=model.assume_available,
        partition_of=lambda p: "Data" if "Recovery" in p.name else None,
    )
    assert [m.entry.id for m in res.merged] == ["OEMCOMMON", "Board"]
    fips = {f.name: f for f in res.fips}
    assert set(fips) == {
        "Contoso.BASE.OEMCOMMON.EFIESP",
        "Contoso.BASE.OEMCOMMON.MainOS",
        "Contoso.OEM_CustomCmd.OEMCOMMON.MainOS",
        "Contoso.OEM_CUSTOM_CMD.OEMCOMMON.MainOS",
        "Contoso.OEM_RECOVERY_BCD.OEMCOMMON.Data",
        "Contoso.BASE.Board.MainOS",
        "Contoso.DEVICELAYOUT_BOARD.Board.MainOS",
        "Contoso.OEMDEVICEPLATFORM_BOARD.Board.MainOS",
        "Contoso.OEM_BOARD_DRIVERS.Board.MainOS",
    }
    f = fips["Contoso.OEM_RECOVERY_BCD.OEMCOMMON.Data"]
    assert (f.partition, f.feature_ids, f.section, f.owner, f.fm_id, f.version, f.cpu) == (
        "Data",
        ("OEM_RECOVERY_BCD",),
        "OEM",
        "Contoso",
        "OEMCOMMON",
        "10.0.1.0",
        "arm",
    )
    assert f.cab == ws.pkgs / "Contoso.OEM_RECOVERY_BCD.OEMCOMMON.Data.cab"
    assert fips["Contoso.DEVICELAYOUT_BOARD.Board.MainOS"].selector == "Board"
    merged = res.merged[0].fm
    fip_pkgs = [p for p in merged.packages if p.fip]
    assert len(fip_pkgs) == 5 and all(p.partition for p in fip_pkgs)
    cmd_fip = next(p for p in fip_pkgs if p.name == "Contoso.OEM_CUSTOM_CMD.OEMCOMMON.MainOS.cab")
    assert cmd_fip.feature_ids == ("CUSTOM_CMD",) and cmd_fip.section == "OEM"
    assert all("%" not in p.path for p in merged.packages)


def test_explicit_fip_suppresses_generation(ws):
    board = board_fm(
        f"<Features><OEM>{pkg('A.cab', ids=('F',), FeatureIdentifierPackage='true')}"
        f"{pkg('B.cab', ids=('F',))}</OEM></Features>"
    )
    lst, settings = setup_merge(ws, board)
    res = features.merge(lst, settings, available=model.assume_available)
    assert "Contoso.OEM_F.Board.MainOS" not in {f.name for f in res.fips}
    assert "Contoso.BASE.Board.MainOS" in {f.name for f in res.fips}


def test_merge_write_incremental_and_resolve(ws):
    lst, settings = setup_merge(ws)
    out = ws.root / "build" / "arm" / "MergedFMs"
    res = features.merge(lst, settings, out_fm_dir=out, available=model.assume_available)
    assert all(m.remerged for m in res.merged)
    files = sorted(p.name for p in out.iterdir())
    assert files == ["BoardFM.xml", "OEMCommonFM.xml"]
    stamp = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = features.merge(lst, settings, out_fm_dir=out, available=model.assume_available)
    assert [m.remerged for m in again.merged] == [False, False]
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamp
    ws.write(
        "bsp/BoardFM.xml",
        board_fm(
            f"<Features><OEM>{pkg('Board.Drivers.cab', ids=('BOARD_DRIVERS',))}"
            f"{pkg('Board.Extra.cab', '%BSPPKG_DIR%', ('BOARD_DRIVERS',))}</OEM></Features>"
        ),
    )
    third = features.merge(lst, settings, out_fm_dir=out, available=model.assume_available)
    assert [m.remerged for m in third.merged] == [False, True]
    assert (out / "OEMCommonFM.xml").stat().st_mtime_ns == stamp["OEMCommonFM.xml"]
    # a variable only the board FM uses re-merges only the board FM
    s2 = features.MergeSettings(
        **{**settings.__dict__, "variables": {**settings.variables, "BSPPKG_DIR": "x"}}
    )
    assert [
        m.remerged
        for m in features.merge(lst, s2, out_fm_dir=out, write=False, available=model.assume_available).merged
    ] == [False, True]
    # a changed setting re-merges everything
    fourth = features.merge(
        lst,
        features.MergeSettings(**{**settings.__dict__, "version": "10.0.2.0"}),
        out_fm_dir=out,
        available=model.assume_available,
    )
    assert all(m.remerged for m in fourth.merged)

    # the merged FMs on disk resolve like the in-memory ones, FIPs included
    oi = oeminput_xml(
        fms=(r"%BLD_DIR%\MergedFMs\BoardFM.xml", r"%BLD_DIR%\MergedFMs\OEMCommonFM.xml"),
        oem=("CUSTOM_CMD", "BOARD_DRIVERS"),
    )
    disk = ws.resolve(oi)
    memory = ws.resolve(oi, fms=fourth.by_path())
    assert [(p.name, p.partition, p.reasons, p.fip) for p in disk.packages()] == [
        (p.name, p.partition, p.reasons, p.fip) for p in memory.packages()
    ]
    r = {p.name: p for p in memory.packages()}
    assert r["Contoso.OEM_CUSTOM_CMD.OEMCOMMON.MainOS"].fip
    assert r["Contoso.OEM_CUSTOM_CMD.OEMCOMMON.MainOS"].reasons == ["feature OEM_CUSTOM_CMD"]
    assert "Contoso.OEM_CustomCmd.OEMCOMMON.MainOS" not in r  # that feature is not selected
    assert names(memory, "EFIESP") == ["Contoso.BASE.OEMCOMMON.EFIESP", "Contoso.Efi"]
    assert memory.device_layout.name == "Contoso.Layout"  # the FIP is not a second layout
    assert not any("no feature identifier packages" in w for w in memory.warnings)
    # FIPs are "going to be built": the caller lists them as available
    real = [p.path for p in memory.packages() if not p.fip]
    ws.resolve(oi, fms=fourth.by_path(), available=real + [f.cab for f in fourth.fips])


def test_merge_missing_cab(ws):
    lst, settings = setup_merge(ws)
    with pytest.raises(FFUError) as exc:
        features.merge(
            lst, settings, available=[ws.pkgs / "Contoso.Version.cab", ws.pkgs / "Contoso.Efi.cab"]
        )
    e = exc.value
    assert e.file.endswith("OEMCommonFM.xml") and e.line == 4
    assert e.message.startswith("Missing package: ") and "Contoso.Custom.Cmd.cab" in e.message
    assert "package Contoso.Custom.Cmd.cab, feature OEM_CustomCmd, OEM_CUSTOM_CMD" in e.message


def test_merge_microsoft_packages_not_checked(ws):
    board = board_fm(
        f"<BasePackages>{pkg('RASPBERRYPI.RPi2.BootFirmware.cab', '%MSPKG_DIR%')}</BasePackages>"
    )
    lst, settings = setup_merge(ws, board)
    res = features.merge(lst, settings, available=model.assume_available)
    assert [s.name for s in res.skipped] == ["RASPBERRYPI.RPi2.BootFirmware"]
    kept = [p for p in res.merged[1].fm.packages if p.name == "RASPBERRYPI.RPi2.BootFirmware.cab"]
    assert kept[0].path == "%MSPKG_DIR%"  # resolved later, when a Microsoft root is known


@pytest.mark.parametrize(
    "edit,fragment,missing_fm",
    [
        (
            lambda t: t.replace(r"$(FMDirectory)\BoardFM.xml", r"$(FMDirectory)\NoSuchFM.xml"),
            "not found in",
            True,
        ),
        (
            lambda t: t.replace(r"$(FMDirectory)\BoardFM.xml", r"$(FMDirectory)\BoardFMFileList.xml"),
            "cyclic",
            False,
        ),
        (
            lambda t: t.replace(r"$(FMDirectory)\BoardFM.xml", r"$(FMDirectory)\oemcommonfm.xml"),
            "already listed",
            False,
        ),
        (
            lambda t: t.replace(r"$(FMDirectory)\BoardFM.xml", r"$(FMDirectory)\Other\OEMCommonFM.xml"),
            "would both be merged into OEMCommonFM.xml",
            False,
        ),
        (
            lambda t: t.replace(r"$(FMDirectory)\BoardFM.xml", r"$(FMDirectory)\OI.xml"),
            "this is an OEMInput, not a feature manifest",
            False,
        ),
        (
            lambda t: t.replace('CPUType="ARM"', 'CPUType="ARM64"'),
            "listed for CPUType ARM64 but this merge is for arm",
            False,
        ),
        (lambda t: t.replace('CPUType="ARM"', 'CPUType="{ARCH}"'), "an unfilled template", False),
    ],
)
def test_merge_errors(ws, edit, fragment, missing_fm):
    ws.write("bsp/OI.xml", oeminput_xml())
    ws.write("bsp/Other/OEMCommonFM.xml", COMMON_FM)
    lst, settings = setup_merge(ws, fmlist=edit(FMLIST))
    with pytest.raises(FFUError) as exc:
        features.merge(lst, settings, available=model.assume_available)
    assert fragment in str(exc.value) and exc.value.file.endswith("BoardFMFileList.xml") and exc.value.line
    assert isinstance(exc.value, model.MissingFMError) == missing_fm


def test_merge_same_package_two_paths(ws):
    board = board_fm(f"<BasePackages>{pkg('Contoso.Version.cab', 'elsewhere')}</BasePackages>")
    lst, settings = setup_merge(ws, board)
    with pytest.raises(FFUError, match="Contoso.Version.cab is listed twice with different paths"):
        features.merge(lst, settings, available=model.assume_available)


def test_merge_owner_and_replacement(ws):
    lst, settings = setup_merge(ws)
    s2 = features.MergeSettings(
        **{**settings.__dict__, "variables": {"PKGBLD_DIR": str(ws.pkgs), "BSPPKG_DIR": str(ws.pkgs)}}
    )
    with pytest.raises(FFUError, match="no owner name"):
        features.merge(lst, s2, available=model.assume_available)
    s3 = features.MergeSettings(
        **{
            **s2.__dict__,
            "owner_name": "Fabrikam",
            "package_root_replacement": "%PKGS%",
            "variables": {**s2.variables, "OEM_NAME": "Fabrikam"},
        }
    )
    res = features.merge(lst, s3, available=model.assume_available)
    assert all(f.owner == "Fabrikam" and f.name.startswith("Fabrikam.") for f in res.fips)
    assert {p.path for p in res.merged[0].fm.packages} == {"%PKGS%"}


def test_fip_name_collision(ws):
    board = board_fm(
        f"<Features><OEM>{pkg('A.cab', ids=('X Y',))}{pkg('B.cab', ids=('X_Y',))}</OEM></Features>"
    )
    lst, settings = setup_merge(ws, board)
    with pytest.raises(FFUError, match="two feature identifier packages would be written to"):
        features.merge(lst, settings, available=model.assume_available)


# --------------------------------------------------------------------------- error kinds


def test_resolve_errors_are_config_errors(ws):
    with pytest.raises(ConfigError, match="unknown OEM feature CUSTOM_CMDD"):
        ws.resolve(oeminput_xml(oem=("CUSTOM_CMDD",)), features_fm())
    ws.cabs("Contoso.Base.cab", "Contoso.Layout.cab")
    with pytest.raises(ConfigError, match="missing package"):
        ws.resolve(oeminput_xml(oem=("CUSTOM_CMD",)), features_fm(), available=None)
    with pytest.raises(ConfigError, match="is not one of arm, arm64, x86, amd64"):
        model.canon_cpu("mips")


def test_missing_fm_is_a_config_error(ws):
    ws.write("fms/BoardFM.xml", board_fm())
    with pytest.raises(ConfigError, match="no such file") as exc:
        ws.resolve(oeminput_xml(fms=("fms/BoardFM.xml", r"fms\Missing.xml")))
    assert isinstance(exc.value, model.MissingFMError)


def test_merge_errors_are_config_errors(ws):
    lst, settings = setup_merge(ws)
    with pytest.raises(ConfigError, match="Missing package: "):
        features.merge(lst, settings, available=[ws.pkgs / "Contoso.Version.cab"])
    s2 = features.MergeSettings(
        **{**settings.__dict__, "variables": {"PKGBLD_DIR": str(ws.pkgs), "BSPPKG_DIR": str(ws.pkgs)}}
    )
    with pytest.raises(ConfigError, match="no owner name"):
        features.merge(lst, s2, available=model.assume_available)


# ---------------------------------------------------------------------------------- CLI


def cli_workspace(ws: Workspace) -> Path:
    setup_merge(ws)
    return ws.write(
        "products/SampleA/TestOEMInput.xml",
        oeminput_xml(
            fms=(r"%BLD_DIR%\MergedFMs\BoardFM.xml", r"%BLD_DIR%\MergedFMs\OEMCommonFM.xml"),
            oem=("CUSTOM_CMD",),
            ms=("IOT_SSH",),
        ),
    )


def test_cli_table_and_json(ws, capsys, monkeypatch):
    cli_workspace(ws)
    monkeypatch.chdir(ws.root)
    args = [
        "products/SampleA/TestOEMInput.xml",
        "--cpu",
        "arm",
        "--fm-dir",
        "common",
        "--variables",
        "BSPPKG_DIR=build/arm/packages",
    ]
    assert features_cli.main(args) == 0
    out = capsys.readouterr().out
    assert "Partition MainOS" in out and "Contoso.Custom.Cmd" in out and "feature OEM_CUSTOM_CMD" in out
    assert "Partition EFIESP" in out and "feature MS_IOT_SSH" in out and "[FIP]" in out
    assert features_cli.main(args + ["--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["device_layout"]["name"] == "Contoso.Layout"
    mainos = {p["name"]: p for p in data["partitions"]["MainOS"]}
    assert mainos["Contoso.Custom.Cmd"]["reasons"] == ["feature OEM_CUSTOM_CMD"]
    assert {"kind": "feature", "name": "MS_IOT_SSH"}.items() <= data["skipped"][0].items()
    assert mainos["Contoso.Custom.Cmd"]["path"] == os.path.join(
        "build", "arm", "packages", "Contoso.Custom.Cmd.cab"
    )


def test_cli_errors(ws, capsys, monkeypatch):
    cli_workspace(ws)
    monkeypatch.chdir(ws.root)
    base = [
        "products/SampleA/TestOEMInput.xml",
        "--cpu",
        "arm",
        "--fm-dir",
        "common",
        "--variables",
        "BSPPKG_DIR=build/arm/packages",
    ]
    assert features_cli.main(base + ["--check-cabs"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        "ffuforge: error: common/OEMCommonFM.xml:3: Missing package"
    )
    assert features_cli.main(["nope.xml"]) == 2
    assert "cannot read file" in capsys.readouterr().err
    assert features_cli.main(base[:1] + ["--cpu", "mips"]) == 2
    assert "not one of arm" in capsys.readouterr().err
    assert features_cli.main(["--bogus"]) == 2
    ws.write("bad.xml", oeminput_xml(oem=("NOPE",)))
    assert (
        features_cli.main(
            ["bad.xml", "--cpu", "arm", "--fmfilelist", "bsp/BoardFMFileList.xml", "--fm-dir", "common"]
        )
        == 2
    )
    assert "fms/BoardFM.xml: no such file" in capsys.readouterr().err


# ------------------------------------------------------------------------------- corpus


def test_corpus_resolution(corpus, tmp_path):
    """Every OEMInput of the corpus resolves or fails with a clear FFUError; Microsoft features
    are always reported as skipped (no Microsoft package root)."""
    bld = tmp_path / "Build"
    resolved, missing_fm, refused, all_microsoft = [], [], [], []
    for p in sorted(corpus.rglob("*OEMInput*.xml")):
        if kit_layout.layout(p) is None:
            continue  # Templates/ (no Source-<arch>)
        try:
            res = kit_layout.resolve(p, bld)
        except model.MissingFMError as exc:
            missing_fm.append((p, str(exc)))
            continue
        except FFUError as exc:
            refused.append((p, str(exc)))
            continue
        if not any(s.kind != "fm" for s in res.skipped) or not res.fms:
            all_microsoft.append(p)  # every FM it names is Microsoft's: nothing to list
            continue
        resolved.append((p, res))
        oi_ms = {f"MS_{f.value}".casefold() for f in fm_oi(p).ms_features}
        assert oi_ms == {
            s.name.casefold() for s in res.skipped if s.kind == "feature" and s.name.startswith("MS_")
        }
        assert res.packages() or any(s.kind == "package" for s in res.skipped)
        assert res.device_layout is not None or any(s.kind == "device layout" for s in res.skipped)
    assert len(resolved) >= 190, (len(resolved), missing_fm[:3], refused[:3])
    assert len(all_microsoft) <= 10
    for _p, msg in refused:
        # the OEM_ prefix rule (IoT add-on kit): <Feature>OEM_CustomCmd</Feature> becomes OEM_OEM_CustomCmd
        assert "unknown OEM feature" in msg, msg
    assert sum("(implicit ID OEM_OEM_" in m for _, m in refused) >= 70
    for _p, msg in missing_fm:
        assert "no such file" in msg  # a BSP FM that is not part of that corpus snapshot
    # one typical image in detail
    res = dict(resolved)[corpus / "addonkit/17763-v7/Workspace/Source-x86/Products/SampleA/TestOEMInput.xml"]
    r = {p.name: p for p in res.packages()}
    assert r["Contoso.Custom.Cmd"].reasons == ["feature OEM_CUSTOM_CMD"]
    assert r["Intel.BYT.GPIO"].reasons == ["feature OEM_MBM_DRIVERS"]
    assert r["Contoso.BASE.OEMCOMMON.MainOS"].fip
    assert res.device_layout.name == res.device_platform.name == "Contoso.DeviceLayout.GPT4GB"
    assert any(s.kind == "fm" and "IoTUAPNonProductionPartnerShareFM" in s.name for s in res.skipped)


def fm_oi(p: Path):
    from ffuforge.features import oeminput

    return oeminput.load(p)


def test_corpus_merge_all_fmfilelists(corpus, tmp_path):
    """Every non-template FMFileList of the kit merges (with nothing built: availability assumed)."""
    merged = 0
    for lst in sorted(corpus.rglob("*FMFileList.xml")):
        where = kit_layout.layout(lst)
        if where is None:
            continue
        root, arch, cpu = where
        src = root / f"Source-{arch}"
        settings = features.MergeSettings(
            cpu=cpu,
            out_pkg_dir=tmp_path / "pkgs",
            variables=kit_layout.variables(root, arch, tmp_path),
            owner_name="Contoso",
            fm_dirs=(lst.parent, root / "Common" / "Packages", src / "Packages"),
        )
        res = features.merge(
            lst,
            settings,
            out_fm_dir=tmp_path / "MergedFMs" / str(merged),
            write=True,
            available=model.assume_available,
        )
        for m in res.merged:
            again = fm.load_fm(m.out_path)
            assert len(again.packages) == len(m.fm.packages)
            assert any(p.fip for p in again.packages)
        merged += 1
    assert merged >= 45
