"""End to end with a Microsoft package root: `scons MSPACKAGE=…` resolves the sample's Microsoft
features through a kit FM to a Microsoft-form, LZX-compressed CAB (files only in its component
manifests), and the built MainOS carries them — read back from the NTFS image by ntfs-3g's ntfscat, not by us. A DCM
manifest in that CAB stops the build with one line naming the CAB and the member."""

import json
import subprocess
from pathlib import Path

import pytest

from fmkit import fm_xml, pkg
from mscab import EXPECTED, KEY_A, KEY_B, NAME, PAYLOAD, PKT, VER, ms_cab, signed_ms_cab
from oracles import needs, require_tool
from scons_util import copy_workspace, scons

pytestmark = pytest.mark.e2e
OUT = Path("build/arm64/SampleA/Test")
MS_FEATURES = ("IOT_EFIESP", "IOT_UAP_OOBE", "IOT_CRT140", "IOT_ENABLE_TESTSIGNING", "IOT_TOOLKIT", "IOT_SSH")


def kit(ws: Path, signer=None, **cab_args) -> str:
    """A Microsoft kit beside the workspace's products: MSPackages/Retail/arm64/fre/<cab> and
    FMFiles/arm64/MsFM.xml giving every Microsoft feature the sample asks for; the OEMInput names it.
    With `signer`, the CAB is signed as Microsoft ships packages (signed_ms_cab)."""
    fre = ws / "kit/MSPackages/Retail/arm64/fre"
    fre.mkdir(parents=True, exist_ok=True)
    if signer is not None:
        signed_ms_cab(fre, signer, name=f"{NAME}.cab", **cab_args)
    else:
        ms_cab(fre, name=f"{NAME}.cab", **cab_args)
    fms = ws / "kit/FMFiles/arm64"
    fms.mkdir(parents=True, exist_ok=True)
    path = r"$(mspackageroot)\Retail\$(cputype)\$(buildtype)"
    body = f"<Features><Microsoft>{pkg(f'{NAME}.cab', path, MS_FEATURES)}</Microsoft></Features>"
    (fms / "MsFM.xml").write_text(fm_xml(body))
    for oi in ws.glob("products/*/*OEMInput.xml"):  # every product is declared: each names the kit's FM
        text = oi.read_text()
        if "MsFM.xml" not in text:
            extra = "    <AdditionalFM>%AKROOT%\\FMFiles\\arm64\\MsFM.xml</AdditionalFM>\n  </AdditionalFMs>"
            oi.write_text(text.replace("  </AdditionalFMs>", extra, 1))
    return "MSPACKAGE=kit/MSPackages"


@needs("ntfscat")
def test_microsoft_form_package_lands_in_mainos(tmp_path):
    ws = copy_workspace(tmp_path / "ws")
    proc = scons(ws, kit(ws, compression="lzx"))  # LZX: what Microsoft's packaging writes by default
    assert "blocks stored" in proc.stdout
    doc = json.loads((ws / OUT / "partitions/MainOS.json").read_text())
    files = {f["path"]: f for f in doc["files"]}
    assert {"name": NAME, "cab": f"{NAME}.cab", "version": VER, "release": "Production"} in doc["packages"]
    assert files[f"Windows\\servicing\\Packages\\{NAME}~{PKT}~arm64~~{VER}.mum"]["package"] == NAME
    img = ws / OUT / "partitions/MainOS.img"
    for path, member in EXPECTED.items():
        assert files[path]["package"] == NAME and files[path]["size"] == len(PAYLOAD[member])
        got = subprocess.run(
            ["ntfscat", str(img), "/" + path.replace("\\", "/")], capture_output=True, check=True
        ).stdout
        assert got == PAYLOAD[member], path
    regs = {(r["key"], r["name"]): r for r in doc["registry"]}
    module = regs[("HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\IoTTest", "Module")]
    assert bytes.fromhex(module["data"]).decode("utf-16-le") == "%SystemRoot%\\System32\\mstest.dll\0"


def test_dcm_manifest_stops_the_build_in_one_line(tmp_path):
    ws = copy_workspace(tmp_path / "ws")
    proc = scons(ws, kit(ws, b=b"DCM\x01PA30" + bytes(32)), check=False)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if "DCM" in line]
    assert len(lines) == 1, proc.stderr
    assert f"{NAME}.cab:{KEY_B}.manifest: delta-compressed (DCM) manifest" in lines[0]
    assert "not supported" in lines[0] and "Traceback" not in proc.stderr
    assert not (ws / OUT / "Flash.ffu").exists()


def test_microsoft_packages_verify_against_declared_roots(tmp_path):
    """MSPACKAGE_ROOTS: a Microsoft CAB signed by a chain to a declared root builds; one with a
    member left out of its catalog, or signed by another root, stops the build before any image
    work, in one line naming the CAB and the problem."""
    from ffuforge.signing import testpki

    ws = copy_workspace(tmp_path / "ws")
    signer = testpki.ensure_test_pki(ws / "testcerts")
    ms = kit(ws, signer=signer)
    if require_tool("osslsigncode"):  # the fixture is validly signed, for an independent checker
        cab = ws / f"kit/MSPackages/Retail/arm64/fre/{NAME}.cab"
        r = subprocess.run(
            ["osslsigncode", "verify", "-in", str(cab), "-CAfile", str(ws / "testcerts/root.crt")],
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, r.stdout + r.stderr
    proc = scons(ws, ms, "MSPACKAGE_ROOTS=testcerts/root.crt")
    assert "blocks stored" in proc.stdout
    assert scons(ws, ms, "MSPACKAGE_ROOTS=testcerts/root.crt", "-q", check=False).returncode == 0

    altered = f"{KEY_A}\\mstest.dll"
    kit(ws, signer=signer, uncatalogued=(altered,))
    proc = scons(ws, ms, "MSPACKAGE_ROOTS=testcerts/root.crt", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "MSPACKAGE_ROOTS" in line]
    assert len(lines) == 1, proc.stderr
    assert f"{NAME}.cab: {altered}: not listed in update.cat" in lines[0]

    other = testpki.ensure_test_pki(tmp_path / "other", oem_name="Fabrikam")
    kit(ws, signer=other)
    proc = scons(ws, ms, "MSPACKAGE_ROOTS=testcerts/root.crt", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    line = next(line for line in proc.stderr.splitlines() if "MSPACKAGE_ROOTS" in line)
    assert f"1 Microsoft package(s) do not verify against MSPACKAGE_ROOTS: {NAME}.cab:" in line
    proc = scons(ws, ms, "MSPACKAGE_ROOTS=nowhere.crt", check=False)
    assert proc.returncode != 0 and "MSPACKAGE_ROOTS: nowhere.crt: no such certificate file" in proc.stderr
