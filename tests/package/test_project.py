"""Package project loading: every real corpus file, pkg.xml/wm.xml pairs, schema errors."""

import csv
from pathlib import Path

import pytest

from ffuforge.errors import ConfigError, FFUError
from ffuforge.package import project

from pairs_norm import summary

# Pairs whose content really differs between the two kit versions (not a conversion matter).
CONTENT_CHANGED = {
    "COMPNAME.SUBNAME": "the 17134 wm.xml template gained registry examples the v3.2 pkg.xml template lacks",
    "Recovery.WinPE": "17134 moved the recovery files to MainOS\\RecoveryConfig; v3.2 put them on MMOS",
}


def _corpus_projects(corpus: Path):
    return sorted(list(corpus.rglob("*.wm.xml")) + list(corpus.rglob("*.pkg.xml")))


def test_every_corpus_project_loads_or_fails_clearly(corpus):
    loaded, rejected = 0, []
    for path in _corpus_projects(corpus):
        try:
            project.load(path)
            loaded += 1
        except FFUError as exc:
            rejected.append((path.name, str(exc)))
    assert loaded >= 370
    # Only unfilled templates and the known malformed file are refused, each with a located message.
    for name, msg in rejected:
        assert "Template" in name, (name, msg)
        assert ":" in msg and ("template" in msg or "malformed XML" in msg), msg
    assert any("DrvTemplate1.pkg.xml:7: malformed XML" in m for _, m in rejected)
    assert sum("unfilled template" in m for _, m in rejected) == 4


def _pairs(corpus):
    rows = list(csv.reader(open(corpus / "pkg2wm_pairs.tsv"), delimiter="\t"))[1:]
    return [(r[0], corpus / r[1], corpus / r[2]) for r in rows]


def test_pkg2wm_pairs_are_equivalent(corpus):
    pairs = _pairs(corpus)
    assert len(pairs) == 29
    for name, pkg, wm in pairs:
        a, b = summary(project.load(pkg)), summary(project.load(wm))
        assert a["owner"] and b["owner"]
        if name in CONTENT_CHANGED:
            assert a != b, f"{name} was expected to differ: {CONTENT_CHANGED[name]}"
            continue
        assert a == b, name


def test_models_capture_corpus_features(corpus):
    p = project.load(
        corpus / "addonkit/17763-v7/Workspace/Source-arm/Packages/AzureDM.Services/AzureDM.Services.wm.xml"
    )
    svc = p.services[0]
    assert svc.failure.reset_period == "86400"
    assert [a[0] for a in svc.failure.actions] == ["restartService"] * 3 + ["none"]
    fo = corpus / "FactoryOrchestrator/eng/build/FactoryOrchestratorServiceTemplate.wm.xml"
    if fo.exists():
        with pytest.raises(FFUError, match="unfilled template"):
            project.load(fo)
    bcd = project.load(corpus / "addonkit/17763-v7/Workspace/Common/Packages/Custom.BCD/Custom.BCD.wm.xml")
    assert bcd.partition == "EFIESP" and bcd.bcd.source == r".\Custom.BCD.xml"


WM = '<identity xmlns="urn:Microsoft.CompPlat/ManifestSchema.v1.00" owner="C" namespace="N" name="X">\n{}\n</identity>'
PKG = (
    '<Package xmlns="urn:Microsoft.WindowsPhone/PackageSchema.v8.00" Owner="C" Component="N" SubComponent="X" '
    'OwnerType="OEM" ReleaseType="Production" Platform="arm">\n{}\n</Package>'
)


def _load(tmp_path, body, template=WM, name="x.wm.xml"):
    f = tmp_path / name
    f.write_text(template.format(body))
    return project.load(f, name)


@pytest.mark.parametrize(
    "body,fragment",
    [
        ("<bogus/>", "x.wm.xml:2: <bogus> is not allowed inside <identity>"),
        ("<accounts/>", "x.wm.xml:2: <accounts> is valid wm.xml but ffuforge does not implement it"),
        ("<files><file/></files>", "x.wm.xml:2: <file> needs a source attribute"),
        ('<files buildFilter="build.arch = "><file source="a"/></files>', "invalid buildFilter"),
        ('<onecorePackageInfo releaseType="Beta"/>', "releaseType='Beta' is not valid"),
        ("<onecorePackageInfo/><onecorePackageInfo/>", "may appear only once"),
        (
            '<regKeys><regKey keyName="$(hklm.software)\\x"><regValue name="" type="REG_SZ"/></regKey></regKeys>',
            'name=""> is not allowed',
        ),
        ('<service name="s" start="sometimes" type="win32OwnProcess"/>', "service start='sometimes'"),
        (
            '<service name="s" start="auto" type="win32OwnProcess"><failureActions resetPeriod="x"><actions>'
            '<action type="none" delay="0"/></actions></failureActions></service>',
            "must be decimal seconds",
        ),
        ('<onecorePackageInfo binaryPartition="true"/>', "needs a <binaryPartition"),
        ('<x:files xmlns:x="urn:other"/>', "namespace 'urn:other'"),
    ],
)
def test_wm_schema_errors(tmp_path, body, fragment):
    with pytest.raises(FFUError) as exc:
        _load(tmp_path, body)
    assert fragment in str(exc.value)
    assert str(exc.value).startswith("x.wm.xml:")


@pytest.mark.parametrize(
    "body,fragment",
    [
        (
            "<Components><Application/></Components>",
            "<Application> is valid pkg.xml but ffuforge does not implement",
        ),
        ("<Components/><Macros/>", "out of order"),
        (
            '<Components><OSComponent><Files Language="*" Resolution="*"/></OSComponent></Components>',
            "mutually exclusive",
        ),
        ('<Components><OSComponent><Files CpuFilter="arm"/></OSComponent></Components>', "upper case"),
    ],
)
def test_pkg_schema_errors(tmp_path, body, fragment):
    with pytest.raises(FFUError) as exc:
        _load(tmp_path, body, PKG, "x.pkg.xml")
    assert fragment in str(exc.value)


def test_xml_attacks_are_refused(tmp_path):
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        '<identity xmlns="urn:Microsoft.CompPlat/ManifestSchema.v1.00" owner="&b;" name="x"/>'
    )
    (tmp_path / "bomb.wm.xml").write_text(bomb)
    with pytest.raises(FFUError, match="DOCTYPE"):
        project.load(tmp_path / "bomb.wm.xml")
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET")
    xxe = (
        f'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY s SYSTEM "file://{secret}">]>'
        '<identity xmlns="urn:Microsoft.CompPlat/ManifestSchema.v1.00" owner="C" name="&s;"/>'
    )
    (tmp_path / "xxe.wm.xml").write_text(xxe)
    with pytest.raises(FFUError) as exc:
        project.load(tmp_path / "xxe.wm.xml")
    assert "TOPSECRET" not in str(exc.value)


def test_malformed_and_foreign_roots(tmp_path):
    (tmp_path / "bad.wm.xml").write_text("<identity>\n<files>\n</identity>")
    with pytest.raises(FFUError, match=r"bad.wm.xml:3: malformed XML"):
        project.load(tmp_path / "bad.wm.xml", "bad.wm.xml")
    (tmp_path / "fm.xml").write_text(
        '<FeatureManifest xmlns="http://schemas.microsoft.com/embedded/2004/10/ImageUpdate"/>'
    )
    with pytest.raises(FFUError, match="is not a package project"):
        project.load(tmp_path / "fm.xml")
    with pytest.raises(FFUError, match="cannot read package project"):
        project.load(tmp_path / "missing.wm.xml")


def test_error_kinds_are_config_errors(tmp_path):
    """Schema mistakes in either reader, a bad buildFilter, a foreign root and a missing project are
    ConfigErrors, not bare FFUErrors."""
    with pytest.raises(ConfigError, match="releaseType='Beta' is not valid"):
        _load(tmp_path, '<onecorePackageInfo releaseType="Beta"/>')
    with pytest.raises(ConfigError, match="invalid buildFilter") as exc:
        _load(tmp_path, '<files buildFilter="build.arch = "><file source="a"/></files>')
    assert str(exc.value).startswith("x.wm.xml:2:")
    with pytest.raises(ConfigError, match="out of order"):
        _load(tmp_path, "<Components/><Macros/>", PKG, "x.pkg.xml")
    (tmp_path / "fm.xml").write_text(
        '<FeatureManifest xmlns="http://schemas.microsoft.com/embedded/2004/10/ImageUpdate"/>'
    )
    with pytest.raises(ConfigError, match="is not a package project"):
        project.load(tmp_path / "fm.xml")
    with pytest.raises(ConfigError, match="cannot read package project"):
        project.load(tmp_path / "missing.wm.xml")


def test_utf8_bom_and_single_quotes(tmp_path):
    f = tmp_path / "b.wm.xml"
    f.write_bytes(
        b"\xef\xbb\xbf<?xml version='1.0' encoding='utf-8' standalone='yes'?>\r\n"
        + WM.format('<files><file source=".\\a.txt"/></files>').encode()
    )
    assert project.load(f).files[0].source == ".\\a.txt"
