"""Release policy: Production images refuse test, TEST ONLY-signed and unsigned packages."""

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ffuforge.errors import ConfigError, FFUError
from ffuforge.image import policy
from ffuforge.package.build import BuildSettings, build_variant
from ffuforge.signing import testpki
from ffuforge.signing.signers import load_key_signer

from helpers import plan, wm


def _production_signer(tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Contoso Production")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime.datetime(2019, 1, 1))
        .not_valid_after(datetime.datetime(2049, 1, 1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "p.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "p.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return load_key_signer(tmp_path / "p.crt", tmp_path / "p.key")


def _cab(tmp_path, name, release="Production", signer=None):
    d = tmp_path / name
    d.mkdir()
    (d / "a.txt").write_text(name)
    v = plan(
        wm(
            d,
            f'<onecorePackageInfo releaseType="{release}"/><files><file source=".\\a.txt"/></files>',
            name=name,
        )
    )[0]
    out = tmp_path / "cabs" / v.cab_name
    build_variant(v, out, BuildSettings(signer=signer))
    return out


def test_production_image_policy(tmp_path):
    prod = _production_signer(tmp_path)
    test_signer = testpki.ensure_test_pki(tmp_path / "pki")
    good = _cab(tmp_path, "Good", signer=prod)
    test_pkg = _cab(tmp_path, "TestPkg", release="Test", signer=prod)
    test_signed = _cab(tmp_path, "TestSigned", signer=test_signer)
    unsigned = _cab(tmp_path, "Unsigned")
    assert policy.package_problems(good, "Production") == []
    assert policy.package_problems(test_pkg, "Production") == ["release type Test"]
    assert policy.package_problems(test_signed, "Production") == ["signed by a TEST ONLY certificate"]
    assert policy.package_problems(unsigned, "Production") == ["CAB not signed", "catalog not signed"]
    with pytest.raises(FFUError) as exc:
        policy.check_release([good, test_pkg, test_signed, unsigned], "Production", "RetailOEMInput.xml")
    msg = str(exc.value)
    assert msg.startswith("RetailOEMInput.xml: a Production image refuses 3 package(s)")
    for name in ("Contoso-Test-TestPkg.cab", "Contoso-Test-TestSigned.cab", "Contoso-Test-Unsigned.cab"):
        assert name in msg
    assert "Contoso-Test-Good.cab" not in msg
    # Test images accept all of them.
    policy.check_release([good, test_pkg, test_signed, unsigned], "Test", "TestOEMInput.xml")


def test_policy_violation_is_a_config_error(tmp_path):
    unsigned = _cab(tmp_path, "Unsigned")
    with pytest.raises(ConfigError, match="a Production image refuses 1 package"):
        policy.check_release([unsigned], "Production", "RetailOEMInput.xml")
