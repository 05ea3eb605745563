"""Building CBS CABs directly (no SCons): contents, manifests, catalog, determinism, errors."""

import base64
import copy
import hashlib
import re
import subprocess

import pytest
from lxml import etree

from ffuforge.errors import FFUError
from ffuforge.formats import catalog, pe
from ffuforge.formats.cab import CabReader
from ffuforge.package.build import BuildSettings, build_variant

from helpers import plan, wm
from oracles import needs, require_tool

ASM = "{urn:schemas-microsoft-com:asm.v3}"


def _sample(tmp_path):
    (tmp_path / "a.txt").write_text("alpha\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.bin").write_bytes(bytes(range(256)) * 300)
    pe.make_minimal_pe(tmp_path / "tool.exe", machine="arm64", kind="exe", payload=b"tool")
    body = (
        '<files><file source=".\\a.txt" destinationDir="$(runtime.bootDrive)\\Contoso"/>'
        '<file source=".\\sub\\b.bin"/><file source=".\\tool.exe"/>'
        '<file source=".\\a.txt" destinationDir="$(runtime.windows)" name="a.txt"/></files>'
        '<regKeys><regKey keyName="$(hklm.software)\\Contoso"><regValue name="v" type="REG_DWORD" value="0x2A"/>'
        "</regKey></regKeys>"
    )
    return wm(tmp_path, body)


def _build(tmp_path, path, **settings):
    v = plan(path)[0]
    out = tmp_path / "out" / v.cab_name
    build_variant(v, out, BuildSettings(**settings))
    return v, out


@pytest.mark.parametrize("compression", ["none", "mszip"])
def test_cab_contents_and_manifests(tmp_path, compression):
    v, out = _build(tmp_path, _sample(tmp_path), compression=compression)
    with CabReader(out) as cab:
        names = [m.name for m in cab.members]
        assert names[:2] == ["update.mum", "update.cat"]
        assert sum(n.endswith(".manifest") for n in names) == 2
        payload = {n.split("\\")[-1]: n for n in names[4:]}
        # Two payloads named a.txt in different device folders get distinct CAB paths.
        assert len(names) == 8 and len([n for n in names if n.endswith("a.txt")]) == 2
        assert cab.read(payload["b.bin"]) == (tmp_path / "sub" / "b.bin").read_bytes()
        mum = etree.fromstring(cab.read("update.mum"))
        comp_name = next(n for n in names if "-component_" in n and n.endswith(".manifest"))
        comp = etree.fromstring(cab.read(comp_name))
        cat = catalog.parse_catalog(cab.read("update.cat"))
        members = {m.name: cab.read(m.name) for m in cab.members if m.name != "update.cat"}
        cab_cat = cab.read("update.cat")
    # Key-form folder = component manifest name.
    assert all(n.startswith(comp_name[: -len(".manifest")]) for n in names[4:])
    # Component manifest digests are SHA-256 of each payload.
    for f in comp.iter(f"{ASM}file"):
        digest = f.find(".//{http://www.w3.org/2000/09/xmldsig#}DigestValue").text
        src = next(
            p.source
            for p in v.payload
            if p.name == f.get("name") and p.device_dir + "\\" == f.get("destinationPath")
        )
        assert base64.b64decode(digest) == hashlib.sha256(src.read_bytes()).digest()
    reg = comp.find(f".//{ASM}registryValue")
    assert reg.get("valueType") == "REG_DWORD" and reg.get("value") == "0x0000002A"
    listed = list(mum.iter(f"{ASM}file"))
    files = {f.get("cabpath"): f for f in listed}
    assert set(names) <= set(files)
    # pkggen's customInformation (IUT PkgManifest.GenerateCustomInformation): update.mum lists itself
    # first, at its size before customInformation, then its catalog named after it, at the size of
    # the unsigned catalog; the root package's entries have no sourcePackage, manifests and their
    # files carry the package's name, attributes in pkggen's order.
    assert [f.get("cabpath") for f in listed[:2]] == ["update.mum", "update.cat"]
    assert list(listed[0].attrib) == ["name", "size", "staged", "compressed", "sourcePackage", "cabpath"]
    working = copy.deepcopy(mum)
    custom = working.find(f"{ASM}package/{ASM}customInformation")
    custom.getparent().remove(custom)
    working_bytes = etree.tostring(
        working, xml_declaration=True, encoding="utf-8", standalone=True, pretty_print=True
    )
    assert int(files["update.mum"].get("size")) == len(working_bytes)
    assert files["update.cat"].get("name") == (
        r"$(runtime.system32)\catroot\{F750E6C3-38EE-11D1-85E5-00C04FC295EE}\update.cat"
    )
    # Unsigned here, so the listed size is the catalog's own (same members, same hash lengths).
    assert int(files["update.cat"].get("size")) == len(cab_cat)
    assert files["update.mum"].get("sourcePackage") == files["update.cat"].get("sourcePackage") == ""
    assert {files[n].get("sourcePackage") for n in names[2:]} == {"Contoso-Test-Pkg"}
    # Every member except the catalog is in the catalog, PE files by their Authenticode hash.
    assert cat.package_name == "Contoso-Test-Pkg"
    for name, data in members.items():
        mh = catalog.member_hashes(catalog.CatalogMember(name, None, data))
        assert cat.has_member(mh), name
        if name.endswith("tool.exe"):
            assert mh.kind == "pe"


def test_identical_inputs_give_identical_bytes(tmp_path):
    p = _sample(tmp_path)
    _, out = _build(tmp_path, p)
    first = out.read_bytes()
    out.unlink()
    _, out = _build(tmp_path, p)
    assert out.read_bytes() == first
    _, out2 = _build(tmp_path, p, epoch=1700000000)
    assert out2.read_bytes() != first  # the epoch reaches the catalog time and the CAB dates


def test_test_release_type_marks_catalog(tmp_path):
    (tmp_path / "a.txt").write_text("a")
    p = wm(tmp_path, '<onecorePackageInfo releaseType="Test"/><files><file source=".\\a.txt"/></files>')
    _, out = _build(tmp_path, p)
    with CabReader(out) as cab:
        assert catalog.parse_catalog(cab.read("update.cat")).package_name == "DebugPackage"
        mum = cab.read("update.mum").decode()
    assert 'phoneRelease="Test"' in mum


@needs("cabextract")
def test_cabextract_reads_our_package(tmp_path):
    v, out = _build(tmp_path, _sample(tmp_path))
    listing = subprocess.run(
        ["cabextract", "-l", str(out)], capture_output=True, text=True, check=True
    ).stdout
    assert "update.mum" in listing and "tool.exe" in listing
    dest = tmp_path / "x"
    subprocess.run(["cabextract", "-q", "-d", str(dest), str(out)], check=True)
    extracted = {p.name: p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    assert extracted["tool.exe"] == (tmp_path / "tool.exe").read_bytes()


@pytest.mark.parametrize(
    "setup,body,fragment",
    [
        (
            lambda t: None,
            '<files><file source=".\\missing.txt"/></files>',
            "x.wm.xml:2: source file missing.txt does not exist",
        ),
        (
            lambda t: (t / "e.txt").write_bytes(b""),
            '<files><file source=".\\e.txt"/></files>',
            "x.wm.xml:2: source file e.txt is empty",
        ),
        (
            lambda t: (t / "b.xml").write_text("<NotBcd/>"),
            '<bcdStore source=".\\b.xml"/>',
            "is not a <BootConfigurationDatabase",
        ),
        (
            lambda t: (t / "b.xml").write_text("<broken>"),
            '<bcdStore source=".\\b.xml"/>',
            "b.xml:1: malformed XML",
        ),
    ],
)
def test_build_errors_leave_no_cab(tmp_path, setup, body, fragment):
    setup(tmp_path)
    p = wm(tmp_path, body, filename="x.wm.xml")
    out = tmp_path / "out" / "x.cab"
    with pytest.raises(FFUError) as exc:
        v = plan(p)[0]  # a missing source is found by planning, the rest by the build
        out = tmp_path / "out" / v.cab_name
        build_variant(v, out)
    assert fragment in str(exc.value)
    assert not out.exists()
    assert not list((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else True


def test_binary_partition_package(tmp_path):
    (tmp_path / "fw.bin").write_bytes(b"\x7fFW" * 1000)
    p = wm(
        tmp_path,
        '<onecorePackageInfo targetPartition="BOOTLOADER" binaryPartition="true">'
        '<binaryPartition imageSource=".\\fw.bin"/></onecorePackageInfo>',
    )
    v, out = _build(tmp_path, p)
    with CabReader(out) as cab:
        mum = cab.read("update.mum").decode()
        image = next(m for m in cab.members if m.name.endswith("BOOTLOADER.bin"))
        assert cab.read(image) == (tmp_path / "fw.bin").read_bytes()
    assert 'binaryPartition="true"' in mum and 'targetPartition="BOOTLOADER"' in mum
    assert re.search(r'<binaryPartition cabpath="[^"]+BOOTLOADER\.bin"', mum)


# ------------------------------------------------------------------------------- signing


@pytest.fixture(scope="module")
def test_signer(tmp_path_factory):
    from ffuforge.signing import testpki

    d = tmp_path_factory.mktemp("pki")
    return testpki.ensure_test_pki(d), testpki.root_certificate(d), d


def test_signed_package_verifies(tmp_path, test_signer):
    from ffuforge.signing import verify

    signer, root, pki_dir = test_signer
    project_file = _sample(tmp_path)
    v, out = _build(tmp_path, project_file, signer=signer, sign_pe=True)
    report = verify.verify_cab(out, trusted_roots=[root])
    assert report.ok, report.problems
    with CabReader(out) as cab:
        exe = next(m for m in cab.members if m.name.endswith("tool.exe"))
        signed_pe = cab.read(exe)
        signed_cat = cab.read("update.cat")
        assert catalog.parse_catalog(signed_cat).signed
        listed = etree.fromstring(cab.read("update.mum")).find(f".//{ASM}file[@cabpath='update.cat']")
    # update.mum lists the unsigned catalog's size (pkggen's order): less than the signed one's.
    assert 0 < int(listed.get("size")) < len(signed_cat)
    assert signed_pe != (tmp_path / "tool.exe").read_bytes()  # the payload itself got signed
    (tmp_path / "x.exe").write_bytes(signed_pe)
    assert verify.verify_pe(tmp_path / "x.exe", trusted_roots=[root]).ok
    require_tool("osslsigncode")
    for target in (out, tmp_path / "x.exe"):
        r = subprocess.run(
            ["osslsigncode", "verify", "-in", str(target), "-CAfile", str(pki_dir / "root.crt")],
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, r.stdout + r.stderr
    # Same inputs, key and epoch: byte-identical signed CAB.
    first = out.read_bytes()
    out.unlink()
    _build(tmp_path, project_file, signer=signer, sign_pe=True)
    assert out.read_bytes() == first


def test_failing_signer_leaves_nothing(tmp_path):
    from ffuforge.signing.signers import CommandSigner

    p = _sample(tmp_path)
    v = plan(p)[0]
    out = tmp_path / "out" / v.cab_name
    with pytest.raises(FFUError, match="false"):
        build_variant(v, out, BuildSettings(signer=CommandSigner("false")))
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
