"""End to end: real scons on the sample workspace — outputs, independent readers, incrementality."""

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from oracles import require_tool
from scons_util import built, copy_workspace, scons

pytestmark = pytest.mark.e2e

EXPECTED = sorted(
    [
        "Contoso.Appx.HelloApp.cab",
        "Contoso.COM.Sample.cab",
        "Contoso.Custom.BCD.cab",
        "Contoso.Custom.Files.cab",
        "Contoso.Custom.Files.Resources_Lang_de-de.cab",
        "Contoso.Custom.Files.Resources_Lang_en-us.cab",
        "Contoso.Legacy.Tools.cab",
        "Contoso.Provisioning.Auto.cab",
        "Contoso.Services.Heartbeat.cab",
        "Contoso.Test.Diagnostics.cab",
        "Contoso.Wow.Sample.cab",
        "Contoso.Wow.Sample_Wow_arm64.arm.cab",
        "Contoso.ContosoBoard.BootLoader.cab",
        "Contoso.ContosoBoard.DeviceLayout.cab",
        "Contoso.ContosoBoard.GPIO.cab",
        "Contoso.ContosoBoard.UART.cab",
        "SV.PlatExtensions.UpdateOS.cab",
    ]
)


# Uses $(PROD): one CAB per product of the workspace (SampleA, SampleB), in packages/<product>/.
PER_PRODUCT = "Contoso.Registry.Settings.cab"
EVERY_BUILD = sorted(EXPECTED + [PER_PRODUCT] * 2)


@pytest.fixture(scope="module")
def built_ws(tmp_path_factory):
    ws = copy_workspace(tmp_path_factory.mktemp("ws"))
    proc = scons(ws, "packages")
    return ws, proc


def _cabs(ws: Path) -> Path:
    return ws / "build" / "arm64" / "packages"


def test_full_build_produces_every_cab(built_ws):
    ws, proc = built_ws
    assert built(proc) == EVERY_BUILD
    assert sorted(p.name for p in _cabs(ws).iterdir() if p.suffix == ".cab") == EXPECTED
    per_product = [
        p for p in _cabs(ws).glob("*/*.cab") if p.parent.name != ".ffuforge-extract"
    ]  # not entries
    assert sorted(p.relative_to(_cabs(ws)).as_posix() for p in per_product) == [
        f"SampleA/{PER_PRODUCT}",
        f"SampleB/{PER_PRODUCT}",
    ]
    assert "Traceback" not in proc.stderr


def _mum_hashes(mum: bytes) -> dict[str, str]:
    """cabpath -> SHA-256 of every payload file listed in update.mum."""
    return {
        a.decode().replace("\\", "/").lower(): h.decode().lower()
        for a, h in re.findall(rb'cabpath="([^"]+)"[^>]*?hash="([0-9A-Fa-f]+)"', mum)
    }


@pytest.mark.parametrize("tool", ["cabextract", "7z", "gcab"])
def test_independent_readers_list_and_extract(built_ws, tmp_path, tool):
    require_tool(tool)
    ws, _ = built_ws
    for cab in sorted(_cabs(ws).glob("*.cab")):
        listing = {
            "cabextract": ["cabextract", "-l", str(cab)],
            "7z": ["7z", "l", str(cab)],
            "gcab": ["gcab", "-l", str(cab)],
        }[tool]
        out = subprocess.run(listing, capture_output=True, text=True, check=True).stdout
        assert "update.mum" in out and "update.cat" in out and ".manifest" in out, cab.name
        dest = tmp_path / tool / cab.stem
        dest.mkdir(parents=True)
        extract = {
            "cabextract": ["cabextract", "-q", "-d", str(dest), str(cab)],
            "7z": ["7z", "x", "-y", f"-o{dest}", str(cab)],
            "gcab": ["gcab", "-x", "-C", str(dest), str(cab)],
        }[tool]
        subprocess.run(extract, capture_output=True, check=True)
        files = {
            str(p.relative_to(dest)).replace("\\", "/").lower(): p for p in dest.rglob("*") if p.is_file()
        }
        mum = files["update.mum"].read_bytes()
        hashes = _mum_hashes(mum)
        payload = {k for k in files if k not in ("update.mum", "update.cat") and not k.endswith(".manifest")}
        assert payload == set(hashes), cab.name
        for cabpath, digest in hashes.items():
            assert hashlib.sha256(files[cabpath].read_bytes()).hexdigest() == digest, (cab.name, cabpath)


def test_payload_bytes_match_sources(built_ws, tmp_path):
    ws, _ = built_ws
    dest = tmp_path / "x"
    subprocess.run(
        ["cabextract", "-q", "-d", str(dest), str(_cabs(ws) / "Contoso.Custom.Files.cab")], check=True
    )
    got = {p.name: p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    assert got["README.txt"] == (ws / "packages/Custom.Files/readme.txt").read_bytes()
    assert got["oemcustomization.cmd"] == (ws / "packages/Custom.Files/oemcustomization.cmd").read_bytes()


def test_noop_is_up_to_date(built_ws):
    ws, _ = built_ws
    assert scons(ws, "packages", "-q", check=False).returncode == 0
    assert built(scons(ws, "packages")) == []


def test_editing_one_payload_rebuilds_that_package(built_ws):
    ws, _ = built_ws
    f = ws / "packages/Custom.Files/settings.json"
    f.write_text(f.read_text() + " ")
    proc = scons(ws, "packages", "--debug=explain")
    assert built(proc) == ["Contoso.Custom.Files.cab"]
    assert "rebuilding `build/arm64/packages/Contoso.Custom.Files.cab'" in proc.stdout
    assert scons(ws, "packages", "-q", check=False).returncode == 0


def test_editing_an_inf_rebuilds_its_driver_package(built_ws):
    ws, _ = built_ws
    inf = ws / "bsp/ContosoBoard/Packages/ContosoBoard.GPIO/contosogpio.inf"
    text = inf.read_bytes().decode("utf-16")
    inf.write_bytes(
        b"\xff\xfe"
        + text.replace('Contoso GPIO Controller"', 'Contoso GPIO Controller v2"').encode("utf-16-le")
    )
    assert built(scons(ws, "packages")) == ["Contoso.ContosoBoard.GPIO.cab"]


def test_comment_only_project_edit_rebuilds_nothing(built_ws):
    ws, _ = built_ws
    p = ws / "packages/Registry.Settings/Registry.Settings.wm.xml"
    p.write_text(p.read_text() + "<!-- reviewed -->\n")
    assert built(scons(ws, "packages")) == []


def test_product_variable_rebuilds_only_packages_using_it(built_ws):
    ws, _ = built_ws
    # every product's copy is in the graph: switching products rebuilds nothing
    assert built(scons(ws, "packages", "PRODUCT=SampleB")) == []
    assert scons(ws, "packages", "-q", "PRODUCT=SampleA", check=False).returncode == 0
    # and an edit to the package rebuilds each product's copy, nothing else
    p = ws / "packages/Registry.Settings/Registry.Settings.wm.xml"
    p.write_text(p.read_text().replace('value="Contoso sample device"', 'value="Contoso device"'))
    assert built(scons(ws, "packages", "PRODUCT=SampleB")) == [PER_PRODUCT] * 2
    a, b = (_cabs(ws) / product / PER_PRODUCT for product in ("SampleA", "SampleB"))
    assert a.read_bytes() != b.read_bytes()  # each carries its own $(PROD)


def test_version_change_rebuilds_every_package(built_ws):
    ws, _ = built_ws
    assert built(scons(ws, "packages", "VERSION=10.0.2.0")) == EVERY_BUILD
    assert built(scons(ws, "packages")) == EVERY_BUILD


MINI_SCONSTRUCT = """
from ffuforge import scons_tool
env = Environment(tools=[scons_tool.generate], FFU_CPU="arm64", FFU_LANGUAGES=["en-us", "fr-fr"])
Default(env.Package("pkg/P.wm.xml"))
"""
MINI_WM = """<identity xmlns="urn:Microsoft.CompPlat/ManifestSchema.v1.00" owner="Contoso" namespace="T" name="P">
  <files><file source=".\\\\a.txt"/></files>
  <language{culture}><files><file source=".\\\\$(LANGID).txt"/></files></language>
  {extra}
</identity>
"""


def _mini(tmp_path: Path) -> Path:
    ws = tmp_path / "mini"
    (ws / "pkg").mkdir(parents=True)
    shutil.copytree(
        Path(__file__).resolve().parents[2] / "site_scons",
        ws / "site_scons",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    (ws / "SConstruct").write_text(MINI_SCONSTRUCT)
    for name in ("a.txt", "en-us.txt", "fr-fr.txt"):
        (ws / "pkg" / name).write_text(name)
    (ws / "pkg/P.wm.xml").write_text(MINI_WM.format(culture=' culture="en-us"', extra=""))
    return ws


def test_adding_a_language_builds_exactly_the_new_cab(tmp_path):
    ws = _mini(tmp_path)
    assert built(scons(ws)) == ["Contoso-T-P.Resources_Lang_en-us.cab", "Contoso-T-P.cab"]
    # Dropping the culture restriction makes the language content apply to every requested language.
    (ws / "pkg/P.wm.xml").write_text(MINI_WM.format(culture="", extra=""))
    assert built(scons(ws)) == ["Contoso-T-P.Resources_Lang_fr-fr.cab"]
    assert scons(ws, "-q", check=False).returncode == 0


def test_tool_code_change_rebuilds_packages(tmp_path):
    ws = _mini(tmp_path)
    scons(ws)
    cbs = ws / "site_scons/ffuforge/package/cbs.py"
    cbs.write_text(cbs.read_text() + "\n# tool change\n")
    assert len(built(scons(ws))) == 2
    # the glue that defines the package action counts too
    actions = ws / "site_scons/ffuforge/scons_tool/actions.py"
    actions.write_text(actions.read_text() + "\n# glue change\n")
    assert len(built(scons(ws))) == 2
    # a module the package builder does not reach rebuilds nothing
    ffu = ws / "site_scons/ffuforge/formats/ffu/__init__.py"
    if not ffu.exists():
        ffu = ws / "site_scons/ffuforge/formats/ffu.py"
    ffu.write_text(ffu.read_text() + "\n# unrelated change\n")
    assert built(scons(ws)) == []


@pytest.mark.parametrize(
    "extra,fragment",
    [
        ("<bogus/>", "pkg/P.wm.xml:4: <bogus> is not allowed inside <identity>"),
        ('<files><file source="$(UNDEFINED)\\x"/></files>', "pkg/P.wm.xml:4: undefined macro $(UNDEFINED)"),
        (
            '<files><file source=".\\\\missing.bin"/></files>',
            "pkg/P.wm.xml:4: source file pkg/missing.bin does not exist",
        ),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, extra, fragment):
    ws = _mini(tmp_path)
    (ws / "pkg/P.wm.xml").write_text(MINI_WM.format(culture="", extra=extra))
    proc = scons(ws, check=False)
    assert proc.returncode != 0
    assert fragment in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and 'File "' not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("scons: ***")]
    assert len(errors) == 1
    assert not list((ws / "build").rglob("*.cab")) if (ws / "build").exists() else True
