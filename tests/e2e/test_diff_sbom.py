"""End to end: the SBOM written beside Flash.ffu (checked by spdx-tools, files by mtools and ntfs-3g,
CABs by hashlib), and `ffuforge diff` of the sample before and after one registry edit."""

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from scons_util import copy_workspace, scons

pytestmark = pytest.mark.e2e
OUT = Path("build/arm64/SampleA/Test")
SETTINGS = Path("packages/Registry.Settings/Registry.Settings.wm.xml")
OLD, NEW = 'value="0x00007530"', 'value="0x00009C40"'  # PollIntervalMs
KEEP = ("layout.json", "packages.json", "Flash.ffu", "Flash.spdx.json")


def _ffuforge(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(cwd / "site_scons"), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "ffuforge", *args], cwd=cwd, capture_output=True, text=True, env=env
    )


def _snapshot(ws: Path, dest: Path) -> Path:
    """What a build folder keeps besides the images (the partition images are not needed)."""
    src = ws / OUT
    (dest / "partitions").mkdir(parents=True)
    for name in KEEP:
        shutil.copy2(src / name, dest / name)
    for manifest in (src / "partitions").glob("*.json"):
        shutil.copy2(manifest, dest / "partitions" / manifest.name)
    return dest


@pytest.fixture(scope="module")
def edited(tmp_path_factory):
    """(workspace after the edit, snapshot of the build folder before it, the SBOM before it)."""
    ws = copy_workspace(tmp_path_factory.mktemp("ws"))
    scons(ws)
    before = _snapshot(ws, tmp_path_factory.mktemp("before") / "Test")
    wm = ws / SETTINGS
    text = wm.read_text()
    assert text.count(OLD) == 1
    wm.write_text(text.replace(OLD, NEW))
    scons(ws)
    return ws, before


# ---------------------------------------------------------------------------------------- SBOM


def _sbom(folder: Path) -> dict:
    return json.loads((folder / "Flash.spdx.json").read_text())


def test_sbom_validates_with_spdx_tools_offline(edited):
    ws, before = edited
    tool = Path(sys.executable).with_name("pyspdxtools")
    if not tool.exists():
        pytest.skip("spdx-tools not installed (pip install -e '.[test]')")
    offline = ["unshare", "-n"] if subprocess.run(["unshare", "-n", "true"]).returncode == 0 else []
    for doc in (ws / OUT / "Flash.spdx.json", before / "Flash.spdx.json"):
        proc = subprocess.run([*offline, str(tool), "-i", str(doc)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "invalid" not in (proc.stdout + proc.stderr).lower()


def test_sbom_lists_every_package_and_file(edited):
    ws, _ = edited
    doc = _sbom(ws / OUT)
    assert doc["spdxVersion"] == "SPDX-2.3" and doc["creationInfo"]["created"] == "2020-01-01T00:00:00Z"
    pkgs = {p["name"]: p for p in doc["packages"] if p["SPDXID"] != "SPDXRef-Image"}
    rels = {
        (r["spdxElementId"], r["relationshipType"], r["relatedSpdxElement"]) for r in doc["relationships"]
    }
    assert ("SPDXRef-DOCUMENT", "DESCRIBES", "SPDXRef-Image") in rels
    files = {f["fileName"]: f for f in doc["files"]}
    leaf = x509.load_pem_x509_certificate((ws / "testcerts/leaf.crt").read_bytes()).subject.rfc4514_string()
    manifests = sorted((ws / OUT / "partitions").glob("*.json"))
    listed = 0
    for manifest in manifests:
        m = json.loads(manifest.read_text())
        for pk in m["packages"]:
            p = pkgs.pop(pk["name"])
            cab = next(
                c
                for c in (
                    ws / "build/arm64/packages" / pk["cab"],
                    ws / "build/arm64/packages/SampleA" / pk["cab"],  # a $(PROD) package: the product's copy
                    ws / OUT / "packages" / pk["cab"],
                )
                if c.exists()
            )
            assert p["checksums"] == [
                {"algorithm": "SHA256", "checksumValue": hashlib.sha256(cab.read_bytes()).hexdigest()}
            ]
            assert (p["versionInfo"], p["packageFileName"], p["supplier"]) == (
                pk["version"],
                pk["cab"],
                "Organization: Contoso",
            )
            assert f"release type: {pk['release']}\n" in p["comment"]
            assert f"partition: {m['partition']}\n" in p["comment"]
            assert p["comment"].endswith(f"signer: {leaf}")  # the sample's TEST ONLY leaf
            assert ("SPDXRef-Image", "CONTAINS", p["SPDXID"]) in rels
            assert "TEST ONLY" in leaf.upper()
        for f in m["files"]:
            s = files.pop(f"./{m['partition']}/{f['path'].replace(chr(92), '/')}")
            sums = {c["algorithm"]: c["checksumValue"] for c in s["checksums"]}
            assert (sums["SHA256"], sums["SHA1"]) == (f["sha256"], f["sha1"])
            owner = (
                "SPDXRef-Image"
                if f["package"] in ("<registry>", "<UpdateOS>")  # written by the image build itself
                else next(p["SPDXID"] for p in doc["packages"] if p["name"] == f["package"])
            )
            assert (owner, "CONTAINS", s["SPDXID"]) in rels
            listed += 1
    assert pkgs == {} and files == {} and listed > 60
    release = {p["name"]: p["comment"] for p in doc["packages"]}
    assert "release type: Test" in release["Contoso.Test.Diagnostics"]


def test_sbom_file_hashes_match_the_images(edited):
    """Independent readers: mtools (FAT EFIESP) and ntfs-3g (NTFS MainOS) give the bytes."""
    ws, _ = edited
    if not (shutil.which("mcopy") and shutil.which("ntfscat")):
        pytest.skip("mtools / ntfs-3g not installed")
    files = {
        f["fileName"]: {c["algorithm"]: c["checksumValue"] for c in f["checksums"]}
        for f in _sbom(ws / OUT)["files"]
    }
    parts = ws / OUT / "partitions"
    got = {
        "./EFIESP/EFI/Microsoft/Boot/BCD": subprocess.run(
            ["mcopy", "-n", "-i", str(parts / "EFIESP.img"), "::/EFI/Microsoft/Boot/BCD", "-"],
            capture_output=True,
            check=True,
            env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"},
        ).stdout
    }
    for path in (
        "Windows/System32/heartbeat.exe",
        "Windows/System32/config/SOFTWARE",
        "ProgramData/Contoso/settings.json",
    ):
        got[f"./MainOS/{path}"] = subprocess.run(
            ["ntfscat", str(parts / "MainOS.img"), "/" + path], capture_output=True, check=True
        ).stdout
    for name, data in got.items():
        assert files[name] == {
            "SHA1": hashlib.sha1(data).hexdigest(),
            "SHA256": hashlib.sha256(data).hexdigest(),
        }, name


def test_sbom_is_reproducible_and_named_by_content(edited):
    ws, before = edited
    sbom = ws / OUT / "Flash.spdx.json"
    first = sbom.read_bytes()
    sbom.unlink()
    scons(ws, str(OUT / "Flash.spdx.json"))
    assert sbom.read_bytes() == first
    old, new = _sbom(before), _sbom(ws / OUT)
    assert old["documentNamespace"] != new["documentNamespace"]  # another image, another namespace
    assert old["documentNamespace"].startswith("https://ffuforge.invalid/spdx/SampleA-Test-arm64-Flash.ffu-")


# ---------------------------------------------------------------------------------------- diff


SVC_CAT = (
    "MainOS\\Windows\\servicing\\Packages\\Contoso.Registry.Settings~628844477771337a~arm64~~10.0.1.0.cat"
)
SOFTWARE = "MainOS\\Windows\\System32\\config\\SOFTWARE"


def _changed(result: dict, section: str) -> dict:
    r = result[section]
    assert r["added"] == [] and r["removed"] == [], (section, r)
    return {key: sorted(ch["changes"]) for key, ch in r["changed"].items()}


def test_diff_of_one_registry_edit(edited):
    """Exactly the edited value, and what necessarily follows from it: its package's CAB (same
    version, new SHA-256), that package's catalog in the servicing store, the SOFTWARE hive, and
    MainOS's stored blocks in the FFU. Nothing else (no other package, file, value or partition;
    the layout and the FFU's size are the same)."""
    ws, before = edited
    proc = _ffuforge("diff", "--json", str(before), str(ws / OUT), cwd=ws)
    assert proc.returncode == 1, proc.stderr
    result = json.loads(proc.stdout)
    assert result["different"] is True and result["not_compared"] == []
    assert _changed(result, "registry") == {
        "hkey_local_machine\\software\\contoso\\samplea\\pollintervalms": ["data"]
    }
    value = result["registry"]["changed"]["hkey_local_machine\\software\\contoso\\samplea\\pollintervalms"]
    assert value["changes"]["data"] == ["30750000", "409c0000"]
    assert (value["record"]["package"], value["record"]["type"]) == ("Contoso.Registry.Settings", 4)
    assert _changed(result, "packages") == {"contoso.registry.settings": ["sha256"]}
    pkg = result["packages"]["changed"]["contoso.registry.settings"]["record"]
    assert (pkg["version"], pkg["release"], pkg["owner"]) == ("10.0.1.0", "Production", "Contoso")
    assert _changed(result, "files") == {SVC_CAT.lower(): ["sha256"], SOFTWARE.lower(): ["sha256"]}
    assert result["files"]["changed"][SOFTWARE.lower()]["record"]["package"] == "<registry>"
    assert _changed(result, "partitions") == {"mainos": ["content"]}
    assert _changed(result, "layout") == {}

    human = _ffuforge("diff", str(before), str(ws / OUT), cwd=ws)
    assert human.returncode == 1
    lines = [ln for ln in human.stdout.splitlines() if ln.startswith("  ")]
    assert lines[0].startswith("  ~ Contoso.Registry.Settings: sha256 ")
    assert (
        "  ~ HKEY_LOCAL_MACHINE\\Software\\Contoso\\SampleA [PollIntervalMs]: REG_DWORD 0x00007530 → "
        "REG_DWORD 0x00009c40 (Contoso.Registry.Settings)"
    ) in lines
    assert len(lines) == 5, human.stdout  # package, 2 files, the value, MainOS


def test_diff_of_the_ffus(edited):
    """From the FFUs alone: the partition table, and MainOS's stored blocks differ."""
    ws, before = edited
    proc = _ffuforge("diff", "--json", str(before / "Flash.ffu"), str(ws / OUT / "Flash.ffu"), cwd=ws)
    assert proc.returncode == 1, proc.stderr
    result = json.loads(proc.stdout)
    assert result["not_compared"] == ["packages", "files", "registry"]
    assert _changed(result, "partitions") == {"mainos": ["content"]}
    assert _changed(result, "layout") == {}
    # the FFU's own partition table is the one the build placed (layout.json)
    layout = json.loads((ws / OUT / "layout.json").read_text())["layout"]
    part = result["partitions"]["changed"]["mainos"]["record"]
    placed = next(p for p in layout["partitions"] if p["name"] == "MainOS")
    assert (part["first_sector"], part["sectors"], part["id"]) == (
        placed["first_sector"],
        placed["sector_count"],
        placed["id"],
    )
    # a build folder against an FFU is compared through the folder's Flash.ffu
    mixed = _ffuforge("diff", str(before), str(ws / OUT / "Flash.ffu"), cwd=ws)
    assert mixed.returncode == 1 and "  ~ MainOS: content " in mixed.stdout


def test_diff_exit_status_same_and_error(edited, tmp_path):
    ws, before = edited
    same = _ffuforge("diff", str(ws / OUT), str(ws / OUT), cwd=ws)
    assert (same.returncode, same.stdout.splitlines()[2]) == (0, "no differences")
    assert _ffuforge("diff", str(before / "Flash.ffu"), str(before / "Flash.ffu"), cwd=ws).returncode == 0
    junk = tmp_path / "junk.ffu"
    junk.write_bytes(b"x" * 4096)
    bad = _ffuforge("diff", str(before), str(junk), cwd=ws)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and "not a build folder" in bad.stderr and str(junk) in bad.stderr
    truncated = tmp_path / "Test"
    shutil.copytree(before, truncated)
    (truncated / "partitions" / "MainOS.json").write_text("{")
    bad = _ffuforge("diff", str(before), str(truncated), cwd=ws)
    assert bad.returncode == 2 and "MainOS.json: not JSON" in bad.stderr and bad.stderr.count("\n") == 1


def test_diff_without_an_sbom_compares_no_package_hashes(edited, tmp_path):
    """A folder without Flash.spdx.json (an older build) has no CAB hashes: the package is not
    reported changed from a hash of today's CABs, the files and the value still are."""
    ws, before = edited
    old = shutil.copytree(before, tmp_path / "Test")
    (old / "Flash.spdx.json").unlink()
    result = json.loads(_ffuforge("diff", "--json", str(old), str(ws / OUT), cwd=ws).stdout)
    assert _changed(result, "packages") == {}
    assert _changed(result, "files") == {SVC_CAT.lower(): ["sha256"], SOFTWARE.lower(): ["sha256"]}
    assert list(_changed(result, "registry")) == [
        "hkey_local_machine\\software\\contoso\\samplea\\pollintervalms"
    ]
