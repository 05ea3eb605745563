"""End to end with a Microsoft package root: `scons MSPACKAGE=…` resolves the sample's Microsoft
features through a kit FM to a Microsoft-form CAB (files only in its component manifests), and the
built MainOS carries them — read back from the NTFS image by ntfs-3g's ntfscat, not by us. A DCM
manifest in that CAB stops the build with one line naming the CAB and the member."""

import json
import subprocess
from pathlib import Path

import pytest

from fmkit import fm_xml, pkg
from mscab import EXPECTED, KEY_B, NAME, PAYLOAD, PKT, VER, ms_cab
from oracles import needs
from scons_util import copy_workspace, scons

pytestmark = pytest.mark.e2e
OUT = Path("build/arm64/SampleA/Test")
MS_FEATURES = ("IOT_EFIESP", "IOT_UAP_OOBE", "IOT_CRT140", "IOT_ENABLE_TESTSIGNING", "IOT_TOOLKIT", "IOT_SSH")


def kit(ws: Path, **cab_args) -> str:
    """A Microsoft kit beside the workspace's products: MSPackages/Retail/arm64/fre/<cab> and
    FMFiles/arm64/MsFM.xml giving every Microsoft feature the sample asks for; the OEMInput names it."""
    fre = ws / "kit/MSPackages/Retail/arm64/fre"
    fre.mkdir(parents=True, exist_ok=True)
    ms_cab(fre, name=f"{NAME}.cab", **cab_args)
    fms = ws / "kit/FMFiles/arm64"
    fms.mkdir(parents=True, exist_ok=True)
    path = r"$(mspackageroot)\Retail\$(cputype)\$(buildtype)"
    body = f"<Features><Microsoft>{pkg(f'{NAME}.cab', path, MS_FEATURES)}</Microsoft></Features>"
    (fms / "MsFM.xml").write_text(fm_xml(body))
    oi = ws / "products/SampleA/TestOEMInput.xml"
    text = oi.read_text()
    if "MsFM.xml" not in text:
        extra = "    <AdditionalFM>%AKROOT%\\FMFiles\\arm64\\MsFM.xml</AdditionalFM>\n  </AdditionalFMs>"
        oi.write_text(text.replace("  </AdditionalFMs>", extra, 1))
    return "MSPACKAGE=kit/MSPackages"


@needs("ntfscat")
def test_microsoft_form_package_lands_in_mainos(tmp_path):
    ws = copy_workspace(tmp_path / "ws")
    proc = scons(ws, kit(ws))
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
