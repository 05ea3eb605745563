"""`ffuforge new app`: the project, its customizations.xml and the FM feature, read back by the
parsers the build uses; nothing written on a mistake."""

import shutil
from pathlib import Path

import pytest

from ffuforge import cli
from ffuforge.features.fm.manifest import load_fm
from ffuforge.package import appx, project
from ffuforge.package.provisioning import approute, customizations

ROOT = Path(__file__).resolve().parents[2]
PUBLISHER = "CN=Contoso Test Code Signing (TEST ONLY), O=Contoso"


def _app(path: Path, name: str, arch: str = "arm") -> Path:
    appx.make_test_appx(
        path,
        name=name,
        publisher=PUBLISHER,
        version="2.0.1.0",
        arch=arch,
        payload={"app.exe": b"MZ", "logo.png": appx.TEST_LOGO},
        timestamp=1577836800,
    )
    return path


@pytest.fixture
def ws(tmp_path, monkeypatch):
    (tmp_path / "packages").mkdir()
    shutil.copy(ROOT / "packages/OEMFM.xml", tmp_path / "packages/OEMFM.xml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_new_app_writes_a_project_the_build_reads(ws, capsys):
    app = _app(ws / "Blinky.appx", "Contoso.Blinky")
    dep = _app(ws / "Framework.appx", "Contoso.Framework")
    rc = cli.main(
        [
            "new",
            "app",
            str(app),
            "--dependency",
            str(dep),
            "--cert",
            str(ROOT / "testcerts/root.crt"),
            "--startup",
            "headless",
        ]
    )
    assert rc == 0
    folder = ws / "packages/Appx.Blinky"
    assert sorted(p.name for p in folder.iterdir()) == [
        "Appx.Blinky.wm.xml",
        "Blinky.appx",
        "Framework.appx",
        "customizations.xml",
        "root.cer",
    ]
    c = customizations.load(folder / "customizations.xml")
    info = appx.read_app(app)
    assert c.version == "2.0.1.0" and c.name == "BlinkyProv"
    app_setting = next(s for s in c.settings if s.path.startswith("UniversalAppInstall"))
    assert app_setting.attrs["PackageFamilyName"] == info.family_name
    bg = next(s for s in c.settings if s.path == "StartupBackgroundTasks/ToAdd/Add")
    assert bg.attrs["PackageName"] == info.aumid
    cert = next(s for s in c.settings if s.path.startswith("Certificates"))
    import hashlib

    assert (
        cert.attrs["CertificateName"] == hashlib.sha1((folder / "root.cer").read_bytes()).hexdigest().upper()
    )
    assert (folder / "root.cer").read_bytes()[:1] == b"\x30"  # DER, from the PEM given
    proj = project.load(folder / "Appx.Blinky.wm.xml")
    assert proj is not None
    wm = (folder / "Appx.Blinky.wm.xml").read_text()
    assert "Appx.Blinky.appinstall\\OEMCustomization.cmd" in wm  # no other package installs one
    route = approute.plan_route(c)
    assert set(route.files) == {"Blinky.appx", "Framework.appx", "root.cer"}
    fm = load_fm(ws / "packages/OEMFM.xml")
    assert "APPX_BLINKY" in (ws / "packages/OEMFM.xml").read_text()
    assert fm is not None
    assert info.family_name in capsys.readouterr().out


def test_new_app_mistakes_write_nothing(ws, capsys):
    app = _app(ws / "Blinky.appx", "Contoso.Blinky")
    before = (ws / "packages/OEMFM.xml").read_bytes()
    assert cli.main(["new", "app", str(app), "--license", "x.xml"]) == 2
    assert "UserContextAppLicense" in capsys.readouterr().err
    (ws / "junk.appx").write_bytes(b"junk")
    assert cli.main(["new", "app", str(ws / "junk.appx")]) == 2
    assert "junk.appx: cannot read the app package as a ZIP" in capsys.readouterr().err
    assert not (ws / "packages/Appx.Blinky").exists()
    assert (ws / "packages/OEMFM.xml").read_bytes() == before
    assert cli.main(["new", "app", str(app)]) == 0
    assert cli.main(["new", "app", str(app)]) == 2
    assert "pass --force" in capsys.readouterr().err
    assert cli.main(["new", "app", str(app), "--force"]) == 0
    assert (ws / "packages/OEMFM.xml").read_text().count("APPX_BLINKY") == 1


def test_new_app_with_the_workspaces_own_oemcustomization(ws, capsys):
    own = ws / "packages/Custom.Cmd"
    own.mkdir()
    (own / "Custom.Cmd.wm.xml").write_text('<file source=".\\oemcustomization.cmd" />')
    assert cli.main(["new", "app", str(_app(ws / "Blinky.appx", "Contoso.Blinky"))]) == 0
    out = capsys.readouterr().out
    assert approute.HOOK in out and "Custom.Cmd.wm.xml" in out
    assert (
        "appinstall\\OEMCustomization.cmd" not in (ws / "packages/Appx.Blinky/Appx.Blinky.wm.xml").read_text()
    )
