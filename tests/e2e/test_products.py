"""End to end: every product of the sample in one graph, `scons -c`, failed builds, explain.

The sample declares SampleA and SampleB (Test; Retail only with a signer). Registry.Settings names
$(PROD), so each product gets its own copy of that CAB and nothing else is built twice.
"""

import hashlib
import os
import re
from pathlib import Path

import pytest

from scons_util import built, copy_workspace, scons

pytestmark = pytest.mark.e2e

A = "build/arm64/SampleA/Test"
B = "build/arm64/SampleB/Test"
PER_PRODUCT = "Contoso.Registry.Settings.cab"
SETTINGS = "packages/Registry.Settings/Registry.Settings.wm.xml"
PLATFORM = "bsp/ContosoBoard/Packages/ContosoBoard.DeviceLayout/OEMDevicePlatform.xml"


def _steps(proc) -> list[str]:
    return sorted(
        re.findall(
            r"^(?:Package|Partition|Layout|FFU|SBOM|Resolve|FeatureMerge|StandIn\w+) (\S+)", proc.stdout, re.M
        )
    )


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _registry(ws: Path, out: str) -> dict:
    import json

    manifest = json.loads((ws / out / "partitions/MainOS.json").read_text())
    return {(v["key"], v["name"]): v for v in manifest["registry"]}


def _edit(ws: Path, rel: str, old: str, new: str) -> None:
    f = ws / rel
    text = f.read_text()
    assert old in text, (rel, old)
    f.write_text(text.replace(old, new))


def _files(ws: Path) -> set[str]:
    return {
        p.relative_to(ws).as_posix()
        for p in ws.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts  # Python's own, not the build's
    }


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return copy_workspace(tmp_path_factory.mktemp("products") / "ws")


def test_switching_products_back_and_forth(ws):
    scons(ws)  # the default: SampleA, Test
    a_outputs = {p: p.stat().st_mtime_ns for p in (ws / A).rglob("*") if p.is_file()}
    proc = scons(ws, "PRODUCT=SampleB")
    # only SampleB's own copy of the $(PROD) package, its version package and its image
    assert built(proc) == [PER_PRODUCT]
    assert "Package Contoso.SampleB.Registry.Version.cab (generated)" in proc.stdout
    assert {p: p.stat().st_mtime_ns for p in (ws / A).rglob("*") if p.is_file()} == a_outputs
    assert _steps(scons(ws, "PRODUCT=SampleA")) == []  # back to SampleA: nothing to do
    assert scons(ws, "-q", check=False).returncode == 0
    assert scons(ws, "-q", "PRODUCT=SampleB", check=False).returncode == 0
    cabs = ws / "build/arm64/packages"
    assert not (cabs / PER_PRODUCT).exists()
    for product, out in (("SampleA", A), ("SampleB", B)):
        value = _registry(ws, out)[(f"HKEY_LOCAL_MACHINE\\Software\\Contoso\\{product}", "Product")]
        assert bytes.fromhex(value["data"]).decode("utf-16-le") == product + "\0"
        assert f"build/arm64/packages/{product}/{PER_PRODUCT}" in (ws / out / "packages.json").read_text()
    # SampleB has no WOW sample: each product's own package set
    assert "Contoso.Wow.Sample" in (ws / A / "packages.json").read_text()
    assert "Contoso.Wow.Sample" not in (ws / B / "packages.json").read_text()


def test_all_and_a_product_by_its_path(ws):
    proc = scons(ws, "all")
    assert _steps(proc) == []
    assert "Retail images not declared: give SIGN_CERT= or SIGN_COMMAND=" in proc.stdout
    assert scons(ws, "-q", "all", check=False).returncode == 0
    (ws / B / "Flash.ffu").unlink()
    proc = scons(ws, f"{B}/Flash.ffu")
    assert _steps(proc) == [f"{B}/Flash.ffu"]
    assert scons(ws, "-q", "all", check=False).returncode == 0


def test_retail_images_are_declared_with_a_signer(ws):
    certs = ws / "testcerts"
    signer = [
        f"SIGN_CERT={certs / 'leaf.crt'}",
        f"SIGN_KEY={certs / 'leaf.key'}",
        f"SIGN_CHAIN={certs / 'intermediate.crt'}",
    ]
    proc = scons(ws, "-n", "all", *signer)
    ffus = re.findall(r"^FFU (\S+)$", proc.stdout, re.M)
    # SampleB has no RetailOEMInput.xml; packages signed with the certificate live apart per config
    assert sorted(ffus) == [
        "build/arm64/SampleA/Retail/Flash.ffu",
        "build/arm64/SampleA/Test/Flash.ffu",
        "build/arm64/SampleB/Test/Flash.ffu",
    ]
    assert "Retail images not declared" not in proc.stdout


def _reasons(text: str) -> dict[str, list[str]]:
    """--debug=explain: target -> the reasons SCons gives, one per line."""
    out: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        m = re.match(r"^scons: (?:re)?building `([^']+)' because:?\s*(.*)$", line)
        if m:
            current = m.group(1)
            out[current] = [m.group(2)] if m.group(2) else []
        elif current and line.startswith(" " * 11):
            out[current].append(line.strip())
        else:
            current = None
    return out


def test_explain_names_only_what_changed(ws):
    scons(ws)
    _edit(ws, SETTINGS, 'value="0x00007530"', 'value="0x00009c40"')
    proc = scons(ws, "--debug=explain")
    reasons = _reasons(proc.stdout)
    cab = f"build/arm64/packages/SampleA/{PER_PRODUCT}"
    assert reasons[cab] == [f"`spec of {cab} (from {SETTINGS})' changed"]
    assert reasons[f"{A}/layout.json"] == [f"`{cab}' changed"]
    assert reasons[f"{A}/partitions/MainOS.img"] == [f"`{cab}' changed"]
    assert reasons[f"{A}/Flash.ffu"] == [f"`{A}/partitions/MainOS.img' changed"]
    assert "{" not in proc.stdout and max(len(line) for line in proc.stdout.splitlines()) < 300
    _edit(ws, SETTINGS, 'value="0x00009c40"', 'value="0x00007530"')
    scons(ws)


@pytest.fixture
def failing_mkntfs(tmp_path) -> dict[str, str]:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "mkntfs").write_text('#!/bin/sh\necho "mkntfs: simulated failure" >&2\nexit 1\n')
    (fake / "mkntfs").chmod(0o755)
    return {"PATH": f"{fake}{os.pathsep}{os.environ['PATH']}"}


def test_failed_partition_stage_leaves_no_previous_ffu(ws, failing_mkntfs):
    scons(ws)
    good = _sha(ws / A / "Flash.ffu")
    _edit(ws, SETTINGS, 'value="Contoso sample device"', 'value="Contoso device"')
    proc = scons(ws, env=failing_mkntfs, check=False)
    assert proc.returncode != 0 and "mkntfs failed" in proc.stderr
    out = ws / A
    assert (out / "packages.json").exists() and (out / "layout.json").exists()  # this build's
    for gone in ("Flash.ffu", "Flash.spdx.json", "partitions/MainOS.img", "partitions/MainOS.json"):
        assert not (out / gone).exists(), gone
    assert scons(ws, "-q", check=False).returncode != 0
    _edit(ws, SETTINGS, 'value="Contoso device"', 'value="Contoso sample device"')
    scons(ws)
    assert _sha(out / "Flash.ffu") == good
    assert scons(ws, "-q", check=False).returncode == 0


def test_failed_layout_stage_leaves_no_previous_image(ws):
    good = _sha(ws / A / "Flash.ffu")
    _edit(ws, PLATFORM, "<MinSectorCount>15269888</MinSectorCount>", "<MinSectorCount>65536</MinSectorCount>")
    proc = scons(ws, check=False)
    assert proc.returncode != 0 and "the layout does not fit the disk" in proc.stderr
    out = ws / A
    assert (out / "packages.json").exists()
    left = sorted(
        p.relative_to(out).as_posix()
        for p in out.rglob("*")
        if p.is_file() and ".ffuforge-extract" not in p.parts
    )
    # the package report, the version package and UpdateOS.wim (+ its manifest) are not image outputs
    assert left == [
        "packages.json",
        "packages/Contoso.SampleA.Registry.Version.cab",
        "partitions/UpdateOS.json",
        "partitions/UpdateOS.wim",
    ]
    _edit(ws, PLATFORM, "<MinSectorCount>65536</MinSectorCount>", "<MinSectorCount>15269888</MinSectorCount>")
    scons(ws)
    assert _sha(out / "Flash.ffu") == good
    assert scons(ws, "-q", check=False).returncode == 0


def test_all_in_a_fresh_clone_then_clean(tmp_path):
    ws = copy_workspace(tmp_path / "ws")
    before = _files(ws)
    proc = scons(ws, "all", "CACHE=cache")
    assert sorted(re.findall(r"^FFU (\S+)$", proc.stdout, re.M)) == [f"{A}/Flash.ffu", f"{B}/Flash.ffu"]
    cabs = built(proc)
    assert cabs.count(PER_PRODUCT) == 2 and len(cabs) == len(set(cabs)) + 1  # every other CAB once
    written = _files(ws) - before
    assert any(f.startswith("build/.ffuforge/") for f in written)
    assert any("/.ffuforge-extract/" in f for f in written)
    # what a signed build wrote (simulated: a real one needs an OEM certificate) goes too, signer or not
    for rel in ("build/arm64/SampleA/Retail/Flash.ffu", "build/arm64/retail-signed/packages/X.cab"):
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws / rel).write_bytes(b"old")
    (ws / A / ".Flash.ffu.old-1-0").write_bytes(b"old")  # a killed build's replaced FFU (util.atomic)
    scons(ws, "-c", "CACHE=cache")
    left = _files(ws) - before
    # what remains: SCons' own database (it records the clean) and the CacheDir, kept on purpose
    assert {f for f in left if not f.startswith("cache/")} == {
        next(iter(ws.glob("build/.sconsign*"))).relative_to(ws).as_posix()
    }
    assert any(f.startswith("cache/") for f in left)
