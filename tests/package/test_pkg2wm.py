"""pkg.xml -> wm.xml (`ffuforge convert`): the kit's 29 pairs, the sample's legacy project, services."""

import csv
from pathlib import Path

import pytest

from ffuforge.errors import ConfigError
from ffuforge.formats import regvalue
from ffuforge.package import pkg2wm, project, wmwrite
from ffuforge.package.scaffold import check

from pairs_norm import summary

ROOT = Path(__file__).resolve().parents[2]
# Pairs whose two kit versions really differ (the same list as test_project's, and why).
CONTENT_CHANGED = {
    "COMPNAME.SUBNAME": "the 17134 wm.xml template gained registry examples the v3.2 pkg.xml template lacks",
    "Recovery.WinPE": "17134 moved the recovery files to MainOS\\RecoveryConfig; v3.2 put them on MMOS",
}


def _convert(path: Path) -> project.Project:
    data = wmwrite.render(pkg2wm.convert(project.load(path)))
    return check(data, path.name.replace(".pkg.xml", ".wm.xml"))


def test_every_kit_pair_converts_to_the_kits_wm_xml(corpus):
    rows = list(csv.reader(open(corpus / "pkg2wm_pairs.tsv"), delimiter="\t"))[1:]
    assert len(rows) == 29
    differ = {}
    for name, pkg, wm in rows:
        ours = summary(_convert(corpus / pkg))
        assert ours == summary(project.load(corpus / pkg)), f"{name}: conversion lost something"
        kit = summary(project.load(corpus / wm))
        if ours != kit:
            differ[name] = sorted(k for k in ours if ours[k] != kit[k])
    assert differ == {"COMPNAME.SUBNAME": ["registry"], "Recovery.WinPE": ["files", "partition"]}, differ
    assert set(differ) == set(CONTENT_CHANGED)


def test_the_kits_spellings(corpus):
    p = _convert(corpus / "addonkit/v3.2-15063-pkgxml/Common/Packages/Custom.Cmd/Custom.Cmd.pkg.xml")
    assert p.legacy_name == "$(OEMNAME).Custom.Cmd" and (p.namespace, p.name) == ("Custom", "Cmd")
    assert all("$(runtime.root)" not in (f.dest_dir or "") for f in p.files)
    assert all(f.dest_dir for f in p.files)  # a missing DestinationDir is written out


def test_sample_legacy_project_values_are_retyped_as_the_kit_writes_them():
    src = ROOT / "packages/Legacy.Tools/Legacy.Tools.pkg.xml"
    p = _convert(src)
    values = {v.name: v for k in p.regkeys for v in k.values}
    assert (values["Timeout"].type, values["Timeout"].value) == ("REG_DWORD", "0x00007530")
    assert values["Blob"].value == "12ABCDEF"
    assert values["Paths"].type == "REG_MULTI_SZ" and values["Paths"].value == "A"  # REG_HEX hex(7)
    assert values[None].value == "legacy tools"
    legacy = project.load(src)
    for k in legacy.regkeys:
        for v in k.values:
            old = regvalue.decode(v.type, v.value, legacy=True)
            new = values[v.name]
            assert regvalue.decode(new.type, new.value, legacy=False) == old
    assert [(f.dest_dir, f.name) for f in p.files] == [
        ("$(runtime.bootDrive)\\Tools", None),
        ("$(runtime.system32)", "tools-help.cmd"),
    ]


PKG = (
    '<Package xmlns="urn:Microsoft.WindowsPhone/PackageSchema.v8.00" Owner="Contoso" Component="Svc" '
    'SubComponent="Beat" OwnerType="OEM" ReleaseType="Production" Platform="arm">\n'
    "<Components>\n{}\n</Components>\n</Package>\n"
)


def test_a_service_with_executable_and_failure_actions(tmp_path):
    (tmp_path / "s.pkg.xml").write_text(
        PKG.format(
            '<Service Name="Beat" Start="Auto" Type="Win32OwnProcess" ErrorControl="Severe" DisplayName="B">\n'
            '  <Executable Source="beat.exe" DestinationDir="$(runtime.root)\\bin" />\n'
            '  <FailureActions ResetPeriod="60"><Action Type="RestartService" Delay="1000" /></FailureActions>\n'
            "</Service>"
        )
    )
    p = _convert(tmp_path / "s.pkg.xml")
    svc = p.services[0]
    assert svc.attrs == {
        "name": "Beat",
        "start": "auto",
        "type": "win32OwnProcess",
        "errorControl": "critical",
        "displayName": "B",
        "imagePath": "$(runtime.bootDrive)\\bin\\beat.exe",
    }
    assert svc.failure.actions == [("restartService", 1000)] and svc.failure.reset_period == "60"
    assert [(f.source, f.dest_dir) for f in p.files] == [("beat.exe", "$(runtime.bootDrive)\\bin")]


def test_language_groups_become_language_elements(tmp_path):
    (tmp_path / "l.pkg.xml").write_text(
        PKG.format(
            '<OSComponent><Files Language="*"><File Source="a.txt" /></Files>'
            '<Files Resolution="*"><File Source="b.png" /></Files></OSComponent>'
        )
    )
    p = _convert(tmp_path / "l.pkg.xml")
    assert [(f.source, f.filters.language, f.filters.resolution) for f in p.files] == [
        ("a.txt", "*", None),
        ("b.png", None, "*"),
    ]


@pytest.mark.parametrize(
    "body, message",
    [
        (
            '<OSComponent><RegKeys><RegKey KeyName="$(hklm.software)\\X">\n'
            '<RegValue Name="N" Type="REG_HEX" Value="hex(0):01,02" /></RegKey></RegKeys></OSComponent>',
            r"l.pkg.xml:4: REG_HEX value of type REG_NONE has no wm.xml form",
        ),
        (
            '<OSComponent><Files Language="(en-us;de-de)"><File Source="a.txt" /></Files></OSComponent>',
            r"l.pkg.xml:3: language filter '\(en-us;de-de\)' has no wm.xml form",
        ),
    ],
)
def test_what_wm_xml_cannot_say_is_refused_in_one_line(tmp_path, body, message):
    (tmp_path / "l.pkg.xml").write_text(PKG.format(body))
    with pytest.raises(ConfigError, match=message):
        _convert(tmp_path / "l.pkg.xml")


def test_converting_a_wm_xml_is_refused():
    with pytest.raises(ConfigError, match="already a wm.xml project"):
        pkg2wm.convert(project.load(ROOT / "packages/Custom.Files/Custom.Files.wm.xml"))
