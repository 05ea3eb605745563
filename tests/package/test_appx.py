"""App packages: package family names against public vectors, manifests read, the test appx checked
by independent readers (7z, Python's zipfile + hashlib over the block map)."""

import base64
import hashlib
import io
import shutil
import subprocess
import zipfile

import pytest
from lxml import etree

from ffuforge.errors import ConfigError, FormatError
from ffuforge.package import appx

# Publisher -> publisher ID. The first is the vector; the others are the IDs of well-known
# public apps' family names (Microsoft.Windows.Cortana_cw5n1h2txyewy, Microsoft.SkypeApp_kzf8qxf38zg5c,
# russellbanks/package-family-name's test "Publisher Software"; the GUID publisher from the
# stackoverflow.com/questions/21568483 table), recomputed in ../shared/spec/provisioning.md §4.
VECTORS = [
    ("CN=Microsoft Corporation, O=Microsoft Corporation, L=Redmond, S=Washington, C=US", "8wekyb3d8bbwe"),
    ("CN=Microsoft Windows, O=Microsoft Corporation, L=Redmond, S=Washington, C=US", "cw5n1h2txyewy"),
    ("CN=Skype Software Sarl, O=Microsoft Corporation, L=Luxembourg, S=Luxembourg, C=LU", "kzf8qxf38zg5c"),
    ("CN=C357A519-CEE3-4675-9EF4-44DE1D99A5D6", "amge560j0aq9g"),
    ("Publisher Software", "zj75k085cmj1a"),
    # Store publishers (GUID subjects) from a public PublisherId test table
    ("CN=07AACB4D-E1D7-4606-AF0F-77713A7C52F6", "a2xxwqz7shah6"),
    ("CN=2180B9A4-DDFD-4BFD-8D7E-EADC9C394EF5", "54ggd3ev8bvz6"),
]
PUBLISHER = "CN=Contoso Test Code Signing (TEST ONLY), O=Contoso"


@pytest.mark.parametrize(("publisher", "expected"), VECTORS)
def test_publisher_id_vectors(publisher, expected):
    assert appx.publisher_id(publisher) == expected


def test_family_and_full_names():
    pub = VECTORS[0][0]
    assert appx.family_name("Microsoft.WindowsCalculator", pub) == "Microsoft.WindowsCalculator_8wekyb3d8bbwe"
    assert appx.full_name("Microsoft.VCLibs.140.00", "14.0.30704.0", "arm", pub) == (
        "Microsoft.VCLibs.140.00_14.0.30704.0_arm__8wekyb3d8bbwe"
    )


def test_publisher_id_is_the_exact_string():
    """The hash is over the manifest's text as written: spacing matters."""
    assert appx.publisher_id(VECTORS[0][0].replace(", ", ",")) != VECTORS[0][1]


@pytest.fixture
def test_appx(tmp_path):
    path = tmp_path / "Hello.appx"
    info = appx.make_test_appx(
        path,
        name="Contoso.Hello",
        publisher=PUBLISHER,
        version="1.2.3.4",
        arch="arm64",
        payload={"app.exe": bytes(range(256)) * 700, "logo.png": appx.TEST_LOGO},
        timestamp=1577836800,
    )
    return path, info


def test_test_appx_identity(test_appx):
    path, info = test_appx
    assert (info.name, info.version, info.architecture, info.app_ids) == (
        "Contoso.Hello",
        "1.2.3.4",
        "arm64",
        ("App",),
    )
    assert info.family_name == f"Contoso.Hello_{appx.publisher_id(PUBLISHER)}"
    assert info.aumid == info.family_name + "!App"
    assert appx.read_app(path) == info


def test_test_appx_block_map_is_right(test_appx):
    """Every payload file's 64 KiB blocks, hashed independently, are the block map's; LfhSize is
    the local header's real size."""
    path, _ = test_appx
    data = path.read_bytes()
    with zipfile.ZipFile(path) as zf:
        bm = etree.fromstring(zf.read("AppxBlockMap.xml"))
        infos = {i.filename: i for i in zf.infolist()}
        files = bm.findall("{http://schemas.microsoft.com/appx/2010/blockmap}File")
        assert {f.get("Name") for f in files} == {"app.exe", "logo.png", "AppxManifest.xml"}
        for f in files:
            content = zf.read(f.get("Name"))
            hashes = [b.get("Hash") for b in f]
            want = [
                base64.b64encode(hashlib.sha256(content[i : i + 65536]).digest()).decode()
                for i in range(0, len(content), 65536)
            ]
            assert hashes == want
            info = infos[f.get("Name")]
            name_len, extra_len = (
                int.from_bytes(data[info.header_offset + 26 : info.header_offset + 28], "little"),
                int.from_bytes(data[info.header_offset + 28 : info.header_offset + 30], "little"),
            )
            assert int(f.get("LfhSize")) == 30 + name_len + extra_len
            assert int(f.get("Size")) == len(content)
        assert len(files[0]) == 3  # app.exe: 179200 bytes, three blocks
        types = etree.fromstring(zf.read("[Content_Types].xml"))
        assert {o.get("PartName") for o in types if o.get("PartName")} == {
            "/AppxManifest.xml",
            "/AppxBlockMap.xml",
        }


@pytest.mark.skipif(not shutil.which("7z"), reason="7z not installed")
def test_test_appx_7z_reads_it(test_appx):
    path, _ = test_appx
    out = subprocess.run(["7z", "t", str(path)], capture_output=True, text=True)
    assert out.returncode == 0 and "Everything is Ok" in out.stdout


def test_test_appx_is_reproducible(tmp_path, test_appx):
    path, _ = test_appx
    again = tmp_path / "again.appx"
    appx.make_test_appx(
        again,
        name="Contoso.Hello",
        publisher=PUBLISHER,
        version="1.2.3.4",
        arch="arm64",
        payload={"logo.png": appx.TEST_LOGO, "app.exe": bytes(range(256)) * 700},
        timestamp=1577836800,
    )
    assert again.read_bytes() == path.read_bytes()


def _zip(path, members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    path.write_bytes(buf.getvalue())


def test_bundle_identity(tmp_path):
    manifest = (
        '<Bundle xmlns="http://schemas.microsoft.com/appx/2013/bundle" SchemaVersion="1.0">'
        '<Identity Name="Contoso.Big" Publisher="CN=Contoso" Version="2.0.0.0"/>'
        '<Packages><Package Type="application" Architecture="arm" FileName="a.appx" Version="2.0.0.0"/>'
        '<Package Type="application" Architecture="x64" FileName="b.appx" Version="2.0.0.0"/>'
        '<Package Type="resource" FileName="r.appx" Version="2.0.0.0"/></Packages></Bundle>'
    )
    inner = tmp_path / "a.appx"
    appx.make_test_appx(
        inner,
        name="Contoso.Big",
        publisher="CN=Contoso",
        version="2.0.0.0",
        arch="arm",
        payload={},
        timestamp=0,
    )
    path = tmp_path / "Big.appxbundle"
    _zip(path, {"AppxMetadata/AppxBundleManifest.xml": manifest, "a.appx": inner.read_bytes()})
    info = appx.read_app(path)
    assert info.bundle and info.architectures == ("arm", "x64")
    assert info.app_ids == ("App",) and info.aumid == info.family_name + "!App"  # from a.appx inside
    assert info.family_name == "Contoso.Big_" + appx.publisher_id("CN=Contoso")


def test_bad_app_packages(tmp_path):
    junk = tmp_path / "junk.appx"
    junk.write_bytes(b"not a zip")
    with pytest.raises(FormatError, match="junk.appx: cannot read the app package as a ZIP"):
        appx.read_app(junk)
    empty = tmp_path / "empty.msix"
    _zip(empty, {"x.txt": "x"})
    with pytest.raises(FormatError, match="has no AppxManifest.xml"):
        appx.read_app(empty)
    with pytest.raises(ConfigError, match="not an app package name"):
        appx.read_app(tmp_path / "app.zip")
    noname = tmp_path / "noname.appx"
    _zip(noname, {"AppxManifest.xml": '<Package><Identity Publisher="CN=x" Version="1.0.0.0"/></Package>'})
    with pytest.raises(ConfigError, match="Identity has no Name"):
        appx.read_app(noname)
    bomb = tmp_path / "dtd.appx"
    _zip(bomb, {"AppxManifest.xml": '<!DOCTYPE x [<!ENTITY a "a">]><Package/>'})
    with pytest.raises(Exception, match="DOCTYPE"):
        appx.read_app(bomb)


ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


def _signer():
    from ffuforge.signing.signers import load_key_signer

    certs = ROOT / "testcerts"
    return load_key_signer(certs / "leaf.crt", certs / "leaf.key", [certs / "intermediate.crt"])


def _signed(tmp_path, name="Signed.appx"):
    path = tmp_path / name
    info = appx.make_test_appx(
        path,
        name="Contoso.Signed",
        publisher=PUBLISHER,
        version="1.0.0.0",
        arch="arm64",
        payload={"app.exe": b"MZ" * 5000, "logo.png": appx.TEST_LOGO},
        timestamp=1577836800,
        signer=_signer(),
    )
    return path, info


def test_signed_appx_layout(tmp_path):
    path, info = _signed(tmp_path)
    assert info.signed
    with zipfile.ZipFile(path) as zf:
        last = zf.infolist()[-1]
        assert last.filename == "AppxSignature.p7x" and last.compress_type == zipfile.ZIP_DEFLATED
        p7x = zf.read(last)
        assert p7x[:4] == b"PKCX"
        assert b"/AppxSignature.p7x" in zf.read("[Content_Types].xml")
    from asn1crypto import cms

    content = cms.ContentInfo.load(p7x[4:])
    signed = content["content"]
    assert signed["encap_content_info"]["content_type"].dotted == "1.3.6.1.4.1.311.2.1.4"
    # the digest names the content types and block map as the signed package holds them
    with zipfile.ZipFile(path) as zf:
        for tag, member in ((b"AXCT", "[Content_Types].xml"), (b"AXBM", "AppxBlockMap.xml")):
            assert tag + hashlib.sha256(zf.read(member)).digest() in p7x
    assert b"APPXAXPC" in p7x
    assert _signed(tmp_path, "again.appx")[0].read_bytes() == path.read_bytes()  # reproducible


@pytest.mark.skipif(not shutil.which("osslsigncode"), reason="osslsigncode not installed")
def test_signed_appx_verifies_with_osslsigncode(tmp_path):
    path, _ = _signed(tmp_path)
    root = str(ROOT / "testcerts/root.crt")
    ok = subprocess.run(
        ["osslsigncode", "verify", "-in", str(path), "-CAfile", root], capture_output=True, text=True
    )
    assert ok.returncode == 0 and "Succeeded" in ok.stdout, ok.stdout + ok.stderr
    tampered = tmp_path / "tampered.appx"
    data = bytearray(path.read_bytes())
    data[data.find(b"MZMZ") + 1] ^= 1
    tampered.write_bytes(bytes(data))
    bad = subprocess.run(
        ["osslsigncode", "verify", "-in", str(tampered), "-CAfile", root], capture_output=True, text=True
    )
    assert bad.returncode != 0 and "MISMATCH" in bad.stdout


def test_command_signer_cannot_sign_an_appx(tmp_path):
    from ffuforge.errors import SigningError
    from ffuforge.signing.signers import CommandSigner

    with pytest.raises(SigningError, match="cannot sign app packages"):
        appx.make_test_appx(
            tmp_path / "x.appx",
            name="A",
            publisher="CN=A",
            version="1.0.0.0",
            arch="arm",
            payload={},
            timestamp=1577836800,
            signer=CommandSigner("true"),
        )
    assert not (tmp_path / "x.appx").exists()
    path, _ = _signed(tmp_path)
    with pytest.raises(ConfigError, match="signed already"):
        appx.sign_appx(path.read_bytes(), _signer(), 1577836800)
