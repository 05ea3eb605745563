"""End to end: packages are signed in the graph; signer identity rebuilds; retail needs a real cert."""

import datetime
import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ffuforge.formats.cab import content_signature
from ffuforge.signing import verify

from oracles import require_tool
from scons_util import built, copy_workspace, scons, stored_csigs

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    ws = copy_workspace(tmp_path_factory.mktemp("ws"))
    scons(ws, "packages", "features")
    return ws


def _oem_cert(directory, password: bytes | None = None):
    """A self-signed production-style code-signing certificate (no TEST ONLY)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Contoso Production Code Signing")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(datetime.datetime(2019, 1, 1))
        .not_valid_after(datetime.datetime(2049, 1, 1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .sign(key, hashes.SHA256())
    )
    (directory / "oem.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    enc = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    (directory / "oem.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)
    )
    return cert


def test_every_package_is_signed_with_the_test_chain(ws):
    root = verify.load_certificates([ws / "testcerts/root.crt"])
    cabs = sorted((ws / "build/arm64/packages").rglob("*.cab"))  # with packages/<Product>/ ($(PROD))
    assert len(cabs) > 15  # 15 packages and the feature identifier packages
    for cab in cabs:
        report = verify.verify_cab(cab, trusted_roots=root)
        assert report.ok, (cab.name, report.problems)
    require_tool("osslsigncode")
    r = subprocess.run(
        ["osslsigncode", "verify", "-in", str(cabs[0]), "-CAfile", str(ws / "testcerts/root.crt")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout


def test_signatures_scons_stores_are_those_of_the_bytes(ws):
    """CAB signatures come from the writer and payload ones from the package build (no second read):
    both must be what reading the file gives."""
    csigs = stored_csigs(ws)
    cabs = sorted((ws / "build/arm64/packages").rglob("*.cab"))  # with packages/<Product>/ ($(PROD))
    from_writer = 0
    for path in cabs:
        stored = csigs[str(path.relative_to(ws))]
        if stored == content_signature(path):
            from_writer += 1
        else:  # feature identifier packages are signed by SCons itself
            assert stored == hashlib.sha256(path.read_bytes()).hexdigest(), path.name
    assert from_writer >= 15
    infs = [k for k in csigs if k.endswith(".inf")]
    assert infs
    for rel in infs:
        assert csigs[rel] == hashlib.sha256((ws / rel).read_bytes()).hexdigest(), rel
    proc = scons(ws, "-q", "packages", "features", check=False)  # a new process: signatures read back
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_retail_refuses_to_start_without_a_certificate(ws):
    proc = scons(ws, "CONFIG=Retail", check=False)
    assert proc.returncode != 0
    assert "needs your own code-signing certificate" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_retail_with_user_certificate_and_identity_in_signature(ws, tmp_path):
    _oem_cert(tmp_path, password=b"s3cret-pass")
    env = {"FFU_SIGN_PASSWORD": "s3cret-pass"}
    args = (
        "packages",
        "CONFIG=Retail",
        f"SIGN_CERT={tmp_path / 'oem.crt'}",
        f"SIGN_KEY={tmp_path / 'oem.key'}",
    )
    proc = scons(ws, *args, env=env)
    assert len(built(proc)) == 16  # 15 packages, Registry.Settings once per product (SampleA, SampleB)
    out = ws / "build/arm64/retail-signed/packages"
    roots = verify.load_certificates([tmp_path / "oem.crt"])
    assert all(verify.verify_cab(c, trusted_roots=roots).ok for c in out.glob("*.cab"))
    # Same certificate: nothing to do. A wrong password: one clear line, no traceback.
    assert built(scons(ws, *args, env=env)) == []
    bad = scons(ws, *args, env={"FFU_SIGN_PASSWORD": "wrong"}, check=False)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "s3cret-pass" not in bad.stderr and "wrong" not in bad.stderr.replace("wrong password", "")
    # Key material and the password never reach SCons' database.
    for sconsign in ws.glob("build/.sconsign*"):
        data = sconsign.read_bytes()
        assert b"PRIVATE KEY" not in data and b"s3cret-pass" not in data
    # A new certificate (new identity) rebuilds every retail package.
    _oem_cert(tmp_path, password=b"s3cret-pass")
    assert len(built(scons(ws, *args, env=env))) == 16


def test_pe_payload_signing_is_switchable_per_package(tmp_path):
    from ffuforge.formats.cab import CabReader
    from ffuforge.formats.pe import pe_layout

    from test_scons_packages import _mini

    ws = _mini(tmp_path)
    from ffuforge.formats import pe

    pe.make_minimal_pe(ws / "pkg/tool.exe", machine="arm64", kind="exe", payload=b"x")
    (ws / "pkg/P.wm.xml").write_text(
        (ws / "pkg/P.wm.xml").read_text().replace("<files>", '<files><file source=".\\tool.exe"/>', 1)
    )
    shutil.copytree(Path(__file__).resolve().parents[2] / "testcerts", ws / "testcerts")

    def signed_pe(sconstruct_extra: str) -> bool:
        (ws / "SConstruct").write_text(
            "from ffuforge import scons_tool\n"
            "env = Environment(tools=[scons_tool.generate], FFU_CPU='arm64', FFU_LANGUAGES=['en-us'])\n"
            f"Default(env.Package('pkg/P.wm.xml'{sconstruct_extra}))\n"
        )
        scons(ws)
        with CabReader(ws / "build/arm64/packages/Contoso-T-P.cab") as cab:
            data = cab.read(next(m for m in cab.members if m.name.endswith("tool.exe")))
        return pe_layout(data).signed

    assert signed_pe("") is True  # FFU_SIGN_PE defaults to on
    assert signed_pe(", SIGN_PE=False") is False  # this package opts out
