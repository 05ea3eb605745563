"""FM / OEMInput / FMFileList edits and the new-file templates, each checked by our own readers."""

from pathlib import Path

import pytest

from ffuforge.errors import ConfigError
from ffuforge.features import edit, oeminput, templates
from ffuforge.features.fm import load_fmfilelist, parse_fm_bytes
from ffuforge.image.layout import load_device_layout, load_device_platform
from ffuforge.util.xmledit import Doc

ROOT = Path(__file__).resolve().parents[2]
VARS = {
    "BLD_DIR": "build/arm64",
    "PKGBLD_DIR": "build/arm64/packages",
    "BSPPKG_DIR": "x",
    "OEM_NAME": "Contoso",
}


def _v(items) -> list[str]:
    return [i.value for i in items]


def _fm(name="packages/OEMFM.xml"):
    return Doc((ROOT / name).read_bytes(), name)


def _features_of(fm_bytes: bytes) -> dict[str, list[str]]:
    fm = parse_fm_bytes(fm_bytes, "fm.xml")
    return {p.name: list(p.feature_ids) for p in fm.packages if p.feature_ids}


def test_a_package_added_as_a_feature_is_read_back_by_the_fm_reader():
    doc = _fm()
    note = edit.fm_add_package(doc, "%PKGBLD_DIR%", "%OEM_NAME%.Drivers.X.cab", "DRIVERS_X")
    assert note == "+ %OEM_NAME%.Drivers.X.cab as feature DRIVERS_X"
    assert _features_of(doc.bytes())["%OEM_NAME%.Drivers.X.cab"] == ["DRIVERS_X"]
    before = doc.bytes()
    assert edit.fm_add_package(doc, "%PKGBLD_DIR%", "%oem_name%.drivers.x.CAB", "drivers_x") is None
    assert doc.bytes() == before
    with pytest.raises(ConfigError, match=r"OEMFM.xml:\d+: .*already in this FM \(DRIVERS_X\)"):
        edit.fm_add_package(doc, "%PKGBLD_DIR%", "%OEM_NAME%.Drivers.X.cab", "OTHER")


def test_base_packages_and_a_second_feature_on_a_package():
    doc = _fm("bsp/ContosoBoard/Packages/ContosoBoardFM.xml")
    edit.fm_add_package(doc, "%BSPPKG_DIR%", "%OEM_NAME%.B.cab", None)
    assert edit.fm_tag_feature(doc, "%OEM_NAME%.ContosoBoard.UART.cab", "SERIAL", "%BSPPKG_DIR%")
    fm = parse_fm_bytes(doc.bytes(), "fm.xml")
    assert "%OEM_NAME%.B.cab" in [p.name for p in fm.packages if not p.feature_ids]
    assert _features_of(doc.bytes())["%OEM_NAME%.ContosoBoard.UART.cab"] == ["CONTOSOBOARD_UART", "SERIAL"]
    with pytest.raises(ConfigError, match="only packages under <Features><OEM> carry feature IDs"):
        edit.fm_tag_feature(doc, "%OEM_NAME%.ContosoBoard.GPIO.cab", "X", "%BSPPKG_DIR%")


def test_oeminput_features_added_removed_and_fms_listed():
    doc = Doc((ROOT / "products/SampleA/TestOEMInput.xml").read_bytes(), "TestOEMInput.xml")
    assert edit.oeminput_add_feature(doc, "NEW_ONE") == "+ OEM feature NEW_ONE"
    assert edit.oeminput_add_feature(doc, "new_one") is None
    assert edit.oeminput_remove_feature(doc, "WOW_SAMPLE") == "- OEM feature WOW_SAMPLE"
    assert edit.oeminput_remove_feature(doc, "WOW_SAMPLE") is None
    assert edit.oeminput_add_feature(doc, "IOT_SHELL", "Microsoft")
    assert edit.oeminput_add_fm(doc, r"%BLD_DIR%\MergedFMs\OEMFM.xml") is None
    assert edit.oeminput_add_fm(doc, r"%BLD_DIR%\MergedFMs\NewFM.xml")
    oi = oeminput.parse_bytes(doc.bytes(), "TestOEMInput.xml", VARS)
    assert "NEW_ONE" in _v(oi.oem_features) and "WOW_SAMPLE" not in _v(oi.oem_features)
    assert "IOT_SHELL" in _v(oi.ms_features)
    assert [a.value for a in oi.additional_fms][-1] == r"%BLD_DIR%\MergedFMs\NewFM.xml"


def test_a_missing_features_section_is_created():
    raw = (ROOT / "products/SampleA/TestOEMInput.xml").read_text()
    start, end = raw.index("  <Features>"), raw.index("</Features>\n") + len("</Features>\n")
    doc = Doc((raw[:start] + raw[end:]).encode(), "oi.xml")
    edit.oeminput_add_feature(doc, "ONLY")
    assert _v(oeminput.parse_bytes(doc.bytes(), "oi.xml", VARS).oem_features) == ["ONLY"]


def test_filelist_lists_a_new_fm_once(tmp_path):
    doc = Doc((ROOT / "packages/OEMFMFileList.xml").read_bytes(), "l.xml")
    assert edit.filelist_add_fm(doc, "NEWFM", r"$(FMDirectory)\NewFM.xml")
    assert edit.filelist_add_fm(doc, "NEWFM", r"$(FMDirectory)\NewFM.xml") is None
    (tmp_path / "l.xml").write_bytes(doc.bytes())
    assert [e.id for e in load_fmfilelist(tmp_path / "l.xml").fms] == ["OEMFM", "NEWFM"]


@pytest.mark.parametrize("config", templates.CONFIGS)
def test_new_oeminputs_are_valid(config):
    data = templates.oeminput("P1", config, "SocX", "DevX", [r"%BLD_DIR%\MergedFMs\AFM.xml"], ["F1"])
    oi = oeminput.parse_bytes(data, "oi.xml", VARS)
    assert (oi.soc.value, oi.device.value, _v(oi.oem_features)) == ("SocX", "DevX", ["F1"])
    assert oi.release_type.value == ("Test" if config == "Test" else "Production")
    assert ("IOT_ENABLE_TESTSIGNING" in _v(oi.ms_features)) == (config == "Test")


def test_new_board_files_are_valid(tmp_path):
    fm = parse_fm_bytes(templates.board_fm("Fab"), "FabFM.xml")
    assert {p.name for p in fm.packages} == {"%OEM_NAME%.Fab.DeviceLayout.cab"}
    (tmp_path / "FabFMFileList.xml").write_bytes(templates.fmfilelist("FAB", "FabFM.xml"))
    assert [e.id for e in load_fmfilelist(tmp_path / "FabFMFileList.xml").fms] == ["FAB"]
    layout = load_device_layout(templates.device_layout(), "DeviceLayout.xml")
    assert [p.name for p in layout.partitions] == ["EFIESP", "MainOS", "Data"]
    assert load_device_platform(templates.device_platform("Contoso", "Fab"), "p.xml").platform_ids == (
        "Contoso.Fab",
    )
