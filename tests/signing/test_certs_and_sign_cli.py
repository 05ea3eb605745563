"""`ffuforge certs new` (an OEM PKI like New-IoTOEMCerts) and the path/time rules of signing.

OpenSSL checks the chains independently; the kit's names, key sizes and EKUs are the reference."""

import shutil
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ffuforge.cli import main as cli_main
from ffuforge.scons_tool.configure import top_relative
from ffuforge.signing.signers import load_key_signer

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl missing")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    assert cli_main(["certs", "new", "--production", str(d), "--oem", "Fabrikam"]) == 0
    return d


def _cert(path):
    data = path.read_bytes()
    return (
        x509.load_der_x509_certificate(data)
        if path.suffix == ".cer"
        else x509.load_pem_x509_certificate(data)
    )


def _cn(c):
    return c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def test_the_kits_set_of_certificates(pki):
    certs = {p.stem.removeprefix("Fabrikam-"): _cert(p) for p in pki.glob("Fabrikam-*.cer")}
    assert sorted(certs) == sorted(["Root", "CA", "PCA", "KMCI", "UMCI", "RootPK", "KEK", "DRA"])
    assert _cn(certs["PCA"]).startswith("Fabrikam Production PCA 20")
    for name in ("Root", "CA", "PCA", "RootPK"):
        assert certs[name].extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert certs[name].public_key().key_size == 4096
    for name in ("KMCI", "UMCI"):
        c = certs[name]
        assert c.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.CODE_SIGNING]
        )
        assert c.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
        assert c.issuer == certs["PCA"].subject and c.public_key().key_size == 2048
        assert "TEST ONLY" not in _cn(c)
    dra = certs["DRA"].extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert [o.dotted_string for o in dra] == ["1.3.6.1.4.1.311.67.1.2"]
    assert certs["KEK"].issuer == certs["RootPK"].subject
    # the private parts, and the files the Retail commands take; keys are private to the owner
    for name in certs:
        bundle = pkcs12.load_pkcs12((pki / "private" / f"Fabrikam-{name}.pfx").read_bytes(), None)
        assert bundle.cert.certificate == certs[name]
        assert (pki / "private" / f"Fabrikam-{name}.pfx").stat().st_mode & 0o077 == 0
    assert _cert(pki / "oem.crt") == certs["UMCI"] and (pki / "oem.key").stat().st_mode & 0o077 == 0
    signer = load_key_signer(pki / "oem.crt", pki / "oem.key", [pki / "intermediate.crt"])
    assert not signer.is_test and [_cn(c) for c in signer.certificates][1:] == [
        _cn(certs["PCA"]),
        "Fabrikam CA",
    ]
    assert load_key_signer(pki / "oem.pfx", password="").identity.startswith(signer.identity)


@needs_openssl
def test_openssl_accepts_the_chains(pki):
    def ok(*args):
        r = subprocess.run(["openssl", "verify", *map(str, args)], capture_output=True, text=True)
        return r.returncode == 0 and ": OK" in r.stdout

    assert ok("-CAfile", pki / "root.crt", "-untrusted", pki / "intermediate.crt", pki / "oem.crt")
    assert not ok("-CAfile", pki / "root.crt", pki / "oem.crt")  # the intermediates are needed


def test_test_pki_is_marked_encrypted_and_nothing_is_overwritten(pki, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FFU_SIGN_PASSWORD", "pw-123456")  # the build's password encrypts the keys
    assert cli_main(["certs", "new", "--test", str(tmp_path)]) == 0
    assert b"ENCRYPTED PRIVATE KEY" in (tmp_path / "oem.key").read_bytes()
    assert "pw-123456" not in capsys.readouterr().out
    signer = load_key_signer(tmp_path / "oem.pfx", password="pw-123456")
    assert signer.is_test and all("(TEST ONLY)" in _cn(c) for c in signer.certificates)
    before = {p: p.read_bytes() for p in pki.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert cli_main(["certs", "new", "--production", str(pki), "--oem", "Fabrikam"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "already exists" in err and "choose an empty folder" in err
    assert {p: p.read_bytes() for p in pki.rglob("*") if p.is_file()} == before
    assert not [p for p in pki.iterdir() if p.name.startswith(".certs-new-")]


def test_command_line_paths_are_relative_to_the_top(tmp_path):
    top, launch = tmp_path / "top", tmp_path / "top/sub"
    launch.mkdir(parents=True)
    (launch / "only-here.pfx").write_bytes(b"x")
    (top / "both.pfx").write_bytes(b"x")
    (launch / "both.pfx").write_bytes(b"x")
    assert top_relative("oem.pfx", str(top), str(top)) == "#oem.pfx"
    assert top_relative("both.pfx", str(top), str(launch)) == "#both.pfx"  # the top wins
    assert top_relative("only-here.pfx", str(top), str(launch)) == "#sub/only-here.pfx"
    assert top_relative("/abs/x.pfx", str(top), str(launch)) == "/abs/x.pfx"
    assert top_relative("#keys/x.pfx", str(top), str(launch)) == "#keys/x.pfx"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "k.pfx").write_bytes(b"x")
    assert top_relative("k.pfx", str(top), str(outside)) == str(outside / "k.pfx")
