"""Signing: byte-for-byte agreement with osslsigncode, verification by osslsigncode and signify,
determinism, the test PKI, key loading errors and the external-command signer."""

from __future__ import annotations

import datetime
import os
import shutil
import stat
import struct
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID

from ffuforge.errors import ConfigError, FFUError, FormatError, SigningError, ToolError
from ffuforge.formats import cab, catalog, pe
from ffuforge.scons_tool import contentsig
from ffuforge.signing import testpki, verify
from ffuforge.signing.signers import CommandSigner, KeySigner, load_key_signer

from oracles import require_tool
from signing_util import (
    EPOCH,
    issue,
    needs_osslsigncode,
    ossl_verify,
    package_files,
    rsa_key,
    run,
    signify_ctl,
    signify_store,
    write_cert,
    write_key,
    write_package,
)

UTC = datetime.UTC
PASSWORD = "Sup3r-S3cret-Passw0rd!"


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("pki")


@pytest.fixture(scope="module")
def signer(pki) -> KeySigner:
    return testpki.ensure_test_pki(pki)


@pytest.fixture(scope="module")
def root(pki, signer) -> x509.Certificate:
    return testpki.root_certificate(pki)


@pytest.fixture(scope="module")
def chain_pem(pki, signer) -> Path:
    p = pki / "chain.pem"
    p.write_bytes((pki / "intermediate.crt").read_bytes() + (pki / "root.crt").read_bytes())
    return p


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    """A second, independent CA (cert, key) plus one spare leaf key, for the bad-input tests."""
    d = tmp_path_factory.mktemp("ca")
    key = rsa_key()
    cert = issue("Other CA (TEST ONLY)", key, ca=True)
    return {"dir": d, "cert": cert, "key": key, "leaf_key": rsa_key(), "root": write_cert(d / "ca.crt", cert)}


@pytest.fixture(scope="module")
def unsigned(tmp_path_factory):
    """Unsigned inputs: a catalog, a CAB without and one with the signature reserve, PE32/PE32+
    files and an odd-length PE (padding before the certificate table)."""
    d = tmp_path_factory.mktemp("unsigned")
    files = package_files(d)
    hashes_ = [catalog.member_hashes(catalog.CatalogMember(n, data=v)) for n, v in files.items()]
    cat = catalog.build_catalog_v2(
        hashes_,
        package_name="Contoso.Pkg",
        test_package=False,
        this_update=datetime.datetime(2023, 1, 1, tzinfo=UTC),
    )
    (d / "update.cat").write_bytes(cat)
    members = [cab.CabMember(n, data=v) for n, v in files.items()]
    cab.write_cab(d / "plain.cab", members, timestamp=EPOCH)
    cab.write_cab(d / "mszip.cab", members, timestamp=EPOCH, compression="mszip")
    cab.write_cab(d / "reserved.cab", members, timestamp=EPOCH, compression="mszip", reserve_signature=True)
    pe.make_minimal_pe(d / "arm64.sys", machine="arm64", kind="sys", payload=b"a64")
    pe.make_minimal_pe(d / "x86.dll", machine="x86", kind="dll", payload=b"x86")
    odd = pe.make_minimal_pe(None, machine="amd64", kind="exe", payload=b"odd") + b"overlay!!"  # 8n + 1
    (d / "odd.exe").write_bytes(odd)
    return d


def _sign(signer, kind: str, src: Path, dst: Path, epoch: int = EPOCH) -> bytes:
    if kind == "cat":
        dst.write_bytes(signer.sign_catalog(src.read_bytes(), epoch=epoch))
    elif kind == "cab":
        signer.sign_cab(src, dst, epoch=epoch)
    else:
        signer.sign_pe(src, dst, epoch=epoch)
    return dst.read_bytes()


INPUTS = [
    ("cat", "update.cat"),
    ("cab", "plain.cab"),
    ("cab", "reserved.cab"),
    ("pe", "arm64.sys"),
    ("pe", "x86.dll"),
    ("pe", "odd.exe"),
]


def _leftovers(directory: Path) -> list[str]:
    return sorted(
        p.name
        for p in directory.iterdir()
        if p.name.startswith(".") or "partial" in p.name or "tmp" in p.name or "reserve" in p.name
    )


# ----------------------------------------------------------------------------- independent tools


@needs_osslsigncode
@pytest.mark.parametrize("kind,name", [i for i in INPUTS if i[1] != "reserved.cab"] + [("cab", "mszip.cab")])
def test_identical_to_osslsigncode(signer, unsigned, pki, chain_pem, tmp_path, kind, name):
    """osslsigncode 2.9 with -time gives exactly our bytes: same structure, attributes, certificate
    order, reserve insertion, PE padding, WIN_CERTIFICATE and checksum."""
    ours = _sign(signer, kind, unsigned / name, tmp_path / f"ours-{name}")
    theirs = tmp_path / f"ossl-{name}"
    r = run(
        "osslsigncode",
        "sign",
        "-certs",
        pki / "leaf.crt",
        "-ac",
        chain_pem,
        "-key",
        pki / "leaf.key",
        "-h",
        "sha256",
        "-time",
        EPOCH,
        "-in",
        unsigned / name,
        "-out",
        theirs,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert ours == theirs.read_bytes()


@needs_osslsigncode
@pytest.mark.parametrize("kind,name", INPUTS)
def test_osslsigncode_verifies(signer, unsigned, pki, ca, tmp_path, kind, name):
    out = tmp_path / f"signed-{name}"
    _sign(signer, kind, unsigned / name, out)
    r = ossl_verify("-in", out, "-CAfile", pki / "root.crt")
    assert r.returncode == 0 and "Succeeded" in r.stdout, r.stdout + r.stderr
    r = ossl_verify("-in", out, "-CAfile", ca["root"])  # a root that did not issue the chain
    assert r.returncode != 0


@needs_osslsigncode
def test_osslsigncode_verifies_pe_members_against_our_catalog(signer, unsigned, pki, tmp_path):
    cat = tmp_path / "signed.cat"
    _sign(signer, "cat", unsigned / "update.cat", cat)
    for name, data in package_files(tmp_path / "m").items():
        if name.endswith((".sys", ".dll")):
            (tmp_path / name).write_bytes(data)
            r = ossl_verify("-catalog", cat, "-CAfile", pki / "root.crt", "-in", tmp_path / name)
            assert r.returncode == 0 and "Succeeded" in r.stdout, (name, r.stdout + r.stderr)
    r = ossl_verify("-catalog", cat, "-CAfile", pki / "root.crt", "-in", unsigned / "arm64.sys")
    assert r.returncode != 0  # not a member


def test_signify_verifies_catalog_and_finds_members(signer, unsigned, root, ca, tmp_path):
    der = signer.sign_catalog((unsigned / "update.cat").read_bytes(), epoch=EPOCH)
    ctl = signify_ctl(der)
    for name, data in package_files(tmp_path).items():
        digest = (
            pe.authenticode_digest(data)
            if pe.is_pe(data)
            else catalog.member_hashes(catalog.CatalogMember(name, data=data)).sha256
        )
        assert ctl.find_subject(digest) is not None, name
    assert ctl.find_subject(b"\0" * 32) is None
    _, err = ctl.explain_verify(trusted_certificate_store=signify_store(root))
    assert err is None, err
    _, err = ctl.explain_verify(trusted_certificate_store=signify_store(ca["cert"]))
    assert err is not None


@pytest.mark.parametrize("name", ["arm64.sys", "x86.dll", "odd.exe"])
def test_signify_verifies_signed_pe(signer, unsigned, root, ca, tmp_path, name):
    signed_file = pytest.importorskip("signify.authenticode.signed_file")
    out = tmp_path / name
    signer.sign_pe(unsigned / name, out, epoch=EPOCH)
    with open(out, "rb") as f:
        _, err = signed_file.AuthenticodeFile.from_stream(f).explain_verify(
            trusted_certificate_store=signify_store(root)
        )
    assert err is None, err
    with open(out, "rb") as f:
        _, err = signed_file.AuthenticodeFile.from_stream(f).explain_verify(
            trusted_certificate_store=signify_store(ca["cert"])
        )
    assert err is not None


# ----------------------------------------------------------------------------- structure


def test_catalog_signature_structure(signer, unsigned):
    from asn1crypto import cms

    unsigned_der = (unsigned / "update.cat").read_bytes()
    der = signer.sign_catalog(unsigned_der, epoch=EPOCH)
    assert catalog.ctl_der(der) == catalog.ctl_der(unsigned_der)
    parts = catalog.signed_data_parts(der)
    (si,) = parts.signed_data["signer_infos"]
    assert si["version"].native == "v1" and si["sid"].name == "issuer_and_serial_number"
    attrs = {a["type"].dotted: a["values"][0] for a in si["signed_attrs"]}
    assert attrs["1.2.840.113549.1.9.3"].dump() == bytes.fromhex("06092b0601040182370a01")  # szOID_CTL
    assert (
        attrs["1.2.840.113549.1.9.4"].native
        == __import__("hashlib").sha256(catalog.signed_content(der)).digest()
    )
    assert cms.Time.load(attrs["1.2.840.113549.1.9.5"].dump()).native == datetime.datetime.fromtimestamp(
        EPOCH, UTC
    )
    certs = [c.chosen.dump() for c in parts.signed_data["certificates"]]
    assert sorted(certs) == sorted(c.public_bytes(serialization.Encoding.DER) for c in signer.certificates)
    assert catalog.parse_catalog(der).signed


def test_signing_time_outside_utctime_uses_generalized_time(signer, unsigned, tmp_path):
    late = int(datetime.datetime(2049, 12, 31, 23, 0, tzinfo=UTC).timestamp())
    der = signer.sign_catalog((unsigned / "update.cat").read_bytes(), epoch=late)
    assert b"\x17\x0d491231230000Z" in der  # still UTCTime in 2049
    with pytest.raises(FFUError, match="not a Unix time"):
        signer.sign_catalog((unsigned / "update.cat").read_bytes(), epoch=-1)


def test_signed_pe_layout(signer, unsigned, tmp_path):
    src = (unsigned / "odd.exe").read_bytes()
    signer.sign_pe(unsigned / "odd.exe", tmp_path / "o.exe", epoch=EPOCH)
    out = (tmp_path / "o.exe").read_bytes()
    layout = pe.pe_layout(out)
    assert layout.signed and layout.cert_offset == len(src) + 7 and layout.cert_offset % 8 == 0
    assert layout.cert_offset + layout.cert_size == len(out)
    length, rev, typ = struct.unpack_from("<IHH", out, layout.cert_offset)
    assert (length, rev, typ) == (layout.cert_size, 0x0200, 2)
    assert pe.authenticode_digest(out) == pe.authenticode_digest(src)
    checksum = struct.unpack_from("<I", out, layout.checksum_offset)[0]
    assert checksum == pe.pe_checksum(out, layout.checksum_offset) != 0
    assert verify.verify_pe(tmp_path / "o.exe").ok


def test_already_signed_pe_is_left_intact(signer, ca, unsigned, tmp_path):
    signer.sign_pe(unsigned / "x86.dll", tmp_path / "once.dll", epoch=EPOCH)
    once = (tmp_path / "once.dll").read_bytes()
    signer.sign_pe(tmp_path / "once.dll", tmp_path / "twice.dll", epoch=EPOCH + 1)
    assert (tmp_path / "twice.dll").read_bytes() == once
    signer.sign_pe(tmp_path / "once.dll", tmp_path / "once.dll", epoch=EPOCH)  # in place
    assert (tmp_path / "once.dll").read_bytes() == once


def test_cab_written_with_reserve_signs_like_one_without(signer, unsigned, tmp_path):
    """osslsigncode cannot sign a CAB that already has the (empty) reserve; ours can, and the result
    is what signing the same CAB without reserve gives."""
    a = _sign(signer, "cab", unsigned / "reserved.cab", tmp_path / "a.cab")
    assert a == _sign(signer, "cab", unsigned / "mszip.cab", tmp_path / "b.cab")


def test_resigning_a_cab_replaces_its_signature(signer, unsigned, tmp_path):
    first = _sign(signer, "cab", unsigned / "plain.cab", tmp_path / "a.cab", EPOCH)
    again = _sign(signer, "cab", tmp_path / "a.cab", tmp_path / "b.cab", EPOCH + 60)
    fresh = _sign(signer, "cab", unsigned / "plain.cab", tmp_path / "c.cab", EPOCH + 60)
    assert again == fresh != first
    signer.sign_cab(tmp_path / "a.cab", tmp_path / "a.cab", epoch=EPOCH + 60)  # in place
    assert (tmp_path / "a.cab").read_bytes() == fresh
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("compression", ["none", "mszip"])
def test_cab_content_signature_of_the_writer_is_the_readers(signer, tmp_path, compression):
    """The build tool's signature of a signed CAB comes from the writer (no second hashing pass);
    read back from the file it is the same, and any byte of the file, the parts the Authenticode
    digest skips included, changes it."""
    members = [cab.CabMember(f"f{i}.bin", data=os.urandom(40_000 * i + 7)) for i in range(1, 4)]
    out = tmp_path / "s.cab"
    info = cab.write_cab(
        out,
        members,
        compression=compression,
        timestamp=EPOCH,
        reserve_signature=True,
        authenticode=lambda d: signer.cab_signature(d, epoch=EPOCH),
    )
    assert info.content_signature is not None
    assert cab.content_signature(out) == info.content_signature
    data = out.read_bytes()
    sig_offset, sig_len = struct.unpack_from("<II", data, cab.SIG_OFFSET_POS)
    assert sig_offset + sig_len == len(data)
    seen = {info.content_signature}
    for pos in (5, 35, 41, cab.SIG_OFFSET_POS + 1, 100, len(data) // 2, sig_offset + 10, len(data) - 1):
        bad = tmp_path / f"bad{pos}.cab"
        flipped = bytearray(data)
        flipped[pos] ^= 0x01
        bad.write_bytes(bytes(flipped))
        sig = cab.content_signature(bad) or contentsig.file_signature(bad)  # as scons_tool does
        assert sig not in seen, pos
        seen.add(sig)
    (tmp_path / "longer.cab").write_bytes(data + bytes(8))
    assert cab.content_signature(tmp_path / "longer.cab") not in seen
    plain = tmp_path / "plain.cab"  # unsigned: the whole file's SHA-256, from the writer when uncompressed
    written = cab.write_cab(plain, members, compression=compression).content_signature
    assert cab.content_signature(plain) == (written or cab.content_signature(plain)) not in seen
    assert (written is None) == (compression == "mszip")
    plain.write_bytes(plain.read_bytes() + b"\0")
    assert cab.content_signature(plain) != written
    assert cab.content_signature(tmp_path / "none.cab") is None
    ran = []
    info = cab.write_cab(
        tmp_path / "f.cab",
        members,
        compression=compression,
        reserve_signature=True,
        authenticode=lambda d: signer.cab_signature(d, epoch=EPOCH),
        finish=ran.append,
    )
    assert ran and info.content_signature is None  # the file may have changed after the writer


# ----------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("kind,name", INPUTS)
def test_deterministic(signer, unsigned, tmp_path, kind, name):
    a = _sign(signer, kind, unsigned / name, tmp_path / "a")
    b = _sign(signer, kind, unsigned / name, tmp_path / "b")
    c = _sign(signer, kind, unsigned / name, tmp_path / "c", EPOCH + 1)
    assert a == b
    assert c != a


def test_same_key_in_another_process_gives_same_bytes(signer, pki, unsigned, tmp_path):
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from ffuforge.signing import signers as signing;"
        "s = signing.load_key_signer(sys.argv[2], sys.argv[3], [sys.argv[4], sys.argv[5]]);"
        "s.sign_cab(sys.argv[6], sys.argv[7], epoch=int(sys.argv[8]))"
    )
    site = Path(__file__).resolve().parents[2] / "site_scons"
    r = run(
        sys.executable,
        "-c",
        code,
        site,
        pki / "leaf.crt",
        pki / "leaf.key",
        pki / "intermediate.crt",
        pki / "root.crt",
        unsigned / "plain.cab",
        tmp_path / "p.cab",
        EPOCH,
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "p.cab").read_bytes() == _sign(
        signer, "cab", unsigned / "plain.cab", tmp_path / "q.cab"
    )


# ----------------------------------------------------------------------------- test PKI


def test_test_pki_files_and_certificates(pki, signer, root):
    assert {p.name for p in pki.iterdir()} >= {
        "README.txt",
        "intermediate.crt",
        "leaf.crt",
        "leaf.key",
        "root.crt",
    }
    assert stat.S_IMODE((pki / "leaf.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((pki / "root.crt").stat().st_mode) == 0o644
    assert "TEST ONLY" in (pki / "README.txt").read_text()
    leaf, inter, root_ = signer.certificates
    assert root_ == root
    cns = [c.subject.rfc4514_string() for c in signer.certificates]
    assert cns == [
        "CN=Contoso Test Code Signing (TEST ONLY),O=Contoso",
        "CN=Contoso Test Intermediate (TEST ONLY),O=Contoso",
        "CN=Contoso Test Root (TEST ONLY),O=Contoso",
    ]
    assert signer.is_test
    for c in (inter, root_):
        bc = c.extensions.get_extension_for_class(x509.BasicConstraints)
        assert bc.critical and bc.value.ca
        ku = c.extensions.get_extension_for_class(x509.KeyUsage).value
        assert ku.key_cert_sign and ku.crl_sign and not ku.digital_signature
    ku = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature
    assert (
        ExtendedKeyUsageOID.CODE_SIGNING
        in leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    )
    for c in signer.certificates:
        assert c.serial_number > 0
        assert c.not_valid_before_utc <= datetime.datetime(2020, 1, 1, tzinfo=UTC)
        assert c.not_valid_after_utc >= datetime.datetime(2049, 12, 31, tzinfo=UTC)
    leaf.verify_directly_issued_by(inter)
    inter.verify_directly_issued_by(root_)
    # Reused, not regenerated.
    before = {n: (pki / n).read_bytes() for n in testpki.FILES}
    again = testpki.ensure_test_pki(pki, oem_name="Fabrikam")
    assert again.identity == signer.identity
    assert {n: (pki / n).read_bytes() for n in testpki.FILES} == before


def test_test_pki_interrupted_run_is_redone(tmp_path):
    first = testpki.ensure_test_pki(tmp_path / "p", oem_name="Fabrikam")
    assert "Fabrikam Test Root (TEST ONLY)" in first.certificates[-1].subject.rfc4514_string()
    (tmp_path / "p" / "README.txt").unlink()  # as if killed before the chain was complete
    (tmp_path / "p" / "leaf.key").unlink()
    second = testpki.ensure_test_pki(tmp_path / "p", oem_name="Fabrikam")
    assert second.identity != first.identity
    assert [p.name for p in (tmp_path / "p").iterdir() if "partial" in p.name] == []


def _pki_identity(directory: str) -> str:
    return testpki.ensure_test_pki(directory).identity


def test_test_pki_concurrent_runs_share_one_chain(tmp_path):
    with ProcessPoolExecutor(4) as pool:
        identities = set(pool.map(_pki_identity, [str(tmp_path / "c")] * 4))
    assert len(identities) == 1


def test_root_certificate_missing(tmp_path):
    with pytest.raises(FFUError, match="cannot read the test root"):
        testpki.root_certificate(tmp_path)


# ----------------------------------------------------------------------------- loading keys


def _pfx(path: Path, key, cert, extra=(), password: str | None = PASSWORD) -> Path:
    enc = (
        serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
    )
    path.write_bytes(pkcs12.serialize_key_and_certificates(b"x", key, cert, list(extra) or None, enc))
    return path


def _good_leaf(ca, **kw):
    return issue("Good Leaf (TEST ONLY)", ca["leaf_key"], (ca["cert"], ca["key"]), **kw)


def test_load_pem_pfx_and_combined(ca, tmp_path):
    leaf = _good_leaf(ca)
    a = load_key_signer(
        write_cert(tmp_path / "l.crt", leaf),
        write_key(tmp_path / "l.key", ca["leaf_key"]),
        chain=[ca["root"]],
    )
    b = load_key_signer(_pfx(tmp_path / "l.pfx", ca["leaf_key"], leaf, [ca["cert"]]), password=PASSWORD)
    c = load_key_signer(
        _pfx(tmp_path / "e.p12", ca["leaf_key"], leaf, [ca["cert"]], password=None), password=""
    )
    combined = tmp_path / "all.pem"
    combined.write_bytes(
        (tmp_path / "l.crt").read_bytes() + ca["root"].read_bytes() + (tmp_path / "l.key").read_bytes()
    )
    d = load_key_signer(combined)
    e = load_key_signer(
        tmp_path / "l.crt",
        write_key(tmp_path / "enc.key", ca["leaf_key"], PASSWORD),
        chain=[ca["root"]],
        password=PASSWORD,
    )
    assert a.identity == b.identity == c.identity == d.identity == e.identity
    assert a.identity.startswith("key:sha256=") and len(a.certificates) == 2 and a.is_test


def test_self_signed_leaf_needs_no_chain(tmp_path, ca):
    key = ca["leaf_key"]
    cert = issue("Self Signed Dev Cert", key)
    s = load_key_signer(write_cert(tmp_path / "s.crt", cert), write_key(tmp_path / "s.key", key))
    assert s.certificates == (cert,) and not s.is_test


def _bad_inputs(ca, tmp_path) -> dict[str, tuple[dict, str, str]]:
    """name -> (load_key_signer kwargs, expected message fragment, file the message must name)."""
    t = tmp_path
    leaf = _good_leaf(ca)
    leaf_crt = write_cert(t / "leaf.crt", leaf)
    leaf_key = write_key(t / "leaf.key", ca["leaf_key"])
    expired = write_cert(
        t / "expired.crt",
        _good_leaf(
            ca, start=datetime.datetime(2015, 1, 1, tzinfo=UTC), end=datetime.datetime(2021, 1, 1, tzinfo=UTC)
        ),
    )
    future = write_cert(t / "future.crt", _good_leaf(ca, start=datetime.datetime(2040, 1, 1, tzinfo=UTC)))
    no_eku = write_cert(t / "noeku.crt", _good_leaf(ca, eku=[ExtendedKeyUsageOID.SERVER_AUTH]))
    no_ds = write_cert(t / "nods.crt", _good_leaf(ca, digital_signature=False))
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_crt = write_cert(t / "ec.crt", issue("EC leaf", ec_key, (ca["cert"], ca["key"])))
    (t / "garbage.crt").write_bytes(b"not a certificate")
    return {
        "wrong pfx password": (
            dict(cert=_pfx(t / "l.pfx", ca["leaf_key"], leaf, [ca["cert"]]), password="wrong-" + PASSWORD),
            "wrong password",
            "l.pfx",
        ),
        "pfx without password": (dict(cert=t / "l.pfx"), "needs a password", "l.pfx"),
        "wrong key password": (
            dict(
                cert=leaf_crt,
                key=write_key(t / "enc.key", ca["leaf_key"], PASSWORD),
                chain=[ca["root"]],
                password=PASSWORD[::-1],
            ),
            "wrong password",
            "enc.key",
        ),
        "encrypted key, no password": (
            dict(cert=leaf_crt, key=t / "enc.key", chain=[ca["root"]]),
            "encrypted",
            "enc.key",
        ),
        "expired": (dict(cert=expired, key=leaf_key, chain=[ca["root"]]), "has expired", "expired.crt"),
        "not yet valid": (dict(cert=future, key=leaf_key, chain=[ca["root"]]), "not yet valid", "future.crt"),
        "no code signing EKU": (
            dict(cert=no_eku, key=leaf_key, chain=[ca["root"]]),
            "Code Signing",
            "noeku.crt",
        ),
        "no digitalSignature": (
            dict(cert=no_ds, key=leaf_key, chain=[ca["root"]]),
            "digitalSignature",
            "nods.crt",
        ),
        "key mismatch": (
            dict(cert=leaf_crt, key=write_key(t / "other.key", ca["key"]), chain=[ca["root"]]),
            "does not match",
            "other.key",
        ),
        "missing chain": (dict(cert=leaf_crt, key=leaf_key), "is missing", "leaf.crt"),
        "unrelated chain": (
            dict(cert=leaf_crt, key=leaf_key, chain=[t / "expired.crt"]),
            "is missing",
            "leaf.crt",
        ),
        "unreadable cert": (dict(cert=t / "nope.crt", key=leaf_key), "cannot read", "nope.crt"),
        "unreadable key": (
            dict(cert=leaf_crt, key=t / "nope.key", chain=[ca["root"]]),
            "cannot read",
            "nope.key",
        ),
        "garbage cert": (dict(cert=t / "garbage.crt", key=leaf_key), "not a PEM or DER", "garbage.crt"),
        "no key": (dict(cert=leaf_crt, chain=[ca["root"]]), "no private key", "leaf.crt"),
        "ec key": (
            dict(cert=ec_crt, key=write_key(t / "ec.key", ec_key), chain=[ca["root"]]),
            "only RSA",
            "ec.key",
        ),
        "weak rsa": (
            dict(
                cert=write_cert(
                    t / "weak.crt", issue("Weak", weak := rsa_key(1024), (ca["cert"], ca["key"]))
                ),
                key=write_key(t / "weak.key", weak),
                chain=[ca["root"]],
            ),
            "too weak",
            "weak.key",
        ),
    }


BAD = [
    "wrong pfx password",
    "pfx without password",
    "wrong key password",
    "encrypted key, no password",
    "expired",
    "not yet valid",
    "no code signing EKU",
    "no digitalSignature",
    "key mismatch",
    "missing chain",
    "unrelated chain",
    "unreadable cert",
    "unreadable key",
    "garbage cert",
    "no key",
    "ec key",
    "weak rsa",
]


@pytest.fixture(scope="module")
def bad_inputs(ca, tmp_path_factory):
    return _bad_inputs(ca, tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize("case", BAD)
def test_bad_key_inputs(bad_inputs, case):
    kwargs, fragment, filename = bad_inputs[case]
    with pytest.raises(FFUError) as exc:
        load_key_signer(**kwargs)
    msg = str(exc.value)
    assert fragment in msg and "\n" not in msg
    assert exc.value.file is not None and Path(exc.value.file).name == filename, msg
    _assert_no_secret(exc.value)


def _assert_no_secret(e: BaseException, *extra: str) -> None:
    chain: list[BaseException | None] = [e]
    while chain[-1] is not None and len(chain) < 10:
        chain.append(chain[-1].__cause__ or chain[-1].__context__)
    for x in filter(None, chain):
        for text in (str(x), repr(x), *map(str, x.args)):
            assert PASSWORD not in text and PASSWORD[::-1] not in text
            for s in extra:
                assert s not in text


def test_secrets_never_leak(ca, tmp_path, unsigned):
    """Neither the password nor any PEM key text reaches exception messages, identity, repr or output."""
    leaf = _good_leaf(ca)
    key_path = write_key(tmp_path / "k.key", ca["leaf_key"], PASSWORD)
    key_lines = [ln for ln in key_path.read_text().splitlines() if not ln.startswith("-----")]
    plain_lines = [
        ln
        for ln in write_key(tmp_path / "p.key", ca["leaf_key"]).read_text().splitlines()
        if not ln.startswith("-----")
    ]
    pfx = _pfx(tmp_path / "k.pfx", ca["leaf_key"], leaf, [ca["cert"]])
    attempts = [
        dict(cert=pfx, password="x" + PASSWORD),
        dict(
            cert=write_cert(tmp_path / "l.crt", leaf),
            key=key_path,
            password=PASSWORD + "x",
            chain=[ca["root"]],
        ),
        dict(cert=key_path, password=PASSWORD),  # a key where the certificate should be
        dict(
            cert=tmp_path / "l.crt", key=tmp_path / "p.key", password=PASSWORD
        ),  # unencrypted key + password
    ]
    for kw in attempts:
        with pytest.raises(FFUError) as exc:
            load_key_signer(**kw)
        _assert_no_secret(exc.value, *key_lines[:3], *plain_lines[:3])
    s = load_key_signer(pfx, password=PASSWORD)
    d = ca["leaf_key"].private_numbers().d
    d_bytes = d.to_bytes((d.bit_length() + 7) // 8, "big")
    for text in (s.identity, repr(s), str(vars(s).get("origin"))):
        assert PASSWORD not in text and all(ln not in text for ln in key_lines + plain_lines)
    out = s.sign_catalog((unsigned / "update.cat").read_bytes(), epoch=EPOCH)
    assert d_bytes[:16] not in out and PASSWORD.encode() not in out
    with pytest.raises(FFUError) as exc:  # signing-time error
        s.sign_catalog((unsigned / "update.cat").read_bytes(), epoch=-1)
    _assert_no_secret(exc.value, *key_lines[:3], *plain_lines[:3])


def test_signing_time_outside_validity_is_the_chains_start(ca, tmp_path, unsigned):
    """A certificate issued after SOURCE_DATE_EPOCH signs at its notBefore: deterministic, so
    reproducible, and inside the validity, so it verifies. An epoch inside the validity is kept."""
    start = datetime.datetime(2024, 6, 1, tzinfo=UTC)
    leaf = _good_leaf(ca, start=start)
    s = load_key_signer(
        write_cert(tmp_path / "l.crt", leaf),
        write_key(tmp_path / "l.key", ca["leaf_key"]),
        chain=[ca["root"]],
    )
    assert s.signing_epoch(EPOCH) == int(start.timestamp()) > EPOCH
    assert s.signing_epoch(EPOCH + 20_000_000) == EPOCH + 20_000_000
    out = tmp_path / "out"
    out.mkdir()
    s.sign_cab(unsigned / "plain.cab", out / "a.cab", epoch=EPOCH)
    s.sign_cab(unsigned / "plain.cab", out / "b.cab", epoch=EPOCH)
    assert (out / "a.cab").read_bytes() == (out / "b.cab").read_bytes()
    roots = verify.load_certificates([ca["root"]])
    assert verify.cab_signature_problems(out / "a.cab", roots) == []
    cat = s.sign_catalog((unsigned / "update.cat").read_bytes(), epoch=0)
    assert verify.catalog_signature_problems(cat, roots) == []


@needs_osslsigncode
def test_signing_time_rule_matches_osslsigncode_at_not_before(ca, tmp_path, unsigned):
    """Independent oracle: osslsigncode told `-time <notBefore>` writes our bytes exactly."""
    start = datetime.datetime(2024, 6, 1, tzinfo=UTC)
    leaf_crt = write_cert(tmp_path / "l.crt", _good_leaf(ca, start=start))
    leaf_key = write_key(tmp_path / "l.key", ca["leaf_key"])
    s = load_key_signer(leaf_crt, leaf_key, chain=[ca["root"]])
    s.sign_cab(unsigned / "plain.cab", tmp_path / "ours.cab", epoch=EPOCH)
    r = run(
        "osslsigncode", "sign", "-certs", leaf_crt, "-ac", ca["root"], "-key", leaf_key, "-h", "sha256",
        "-time", int(start.timestamp()), "-in", unsigned / "plain.cab", "-out", tmp_path / "theirs.cab",
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "ours.cab").read_bytes() == (tmp_path / "theirs.cab").read_bytes()


def test_bad_files_to_sign(signer, unsigned, tmp_path):
    (tmp_path / "x.cab").write_bytes(b"MZ not a cab")
    (tmp_path / "x.sys").write_bytes(b"not a PE at all")
    with pytest.raises(FFUError, match="not a cabinet"):
        signer.sign_cab(tmp_path / "x.cab", tmp_path / "out" / "x.cab", epoch=EPOCH)
    with pytest.raises(FFUError, match="not a PE image"):
        signer.sign_pe(tmp_path / "x.sys", tmp_path / "out" / "x.sys", epoch=EPOCH)
    with pytest.raises(FFUError, match="not a valid catalog"):
        signer.sign_catalog(b"\x30\x03\x02\x01\x01", epoch=EPOCH)
    with pytest.raises(FFUError, match="cannot read"):
        signer.sign_pe(tmp_path / "missing.sys", tmp_path / "out" / "m.sys", epoch=EPOCH)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


# ----------------------------------------------------------------------------- external command


@pytest.fixture(scope="module")
def ossl_command(pki, chain_pem, tmp_path_factory):
    """A `sign.cmd`-like script: osslsigncode signs the file given as last argument in place."""
    require_tool("osslsigncode")
    script = tmp_path_factory.mktemp("cmd") / "sign.sh"
    script.write_text(
        "#!/bin/sh\nset -e\n"
        f'osslsigncode sign -certs "{pki / "leaf.crt"}" -ac "{chain_pem}" -key "{pki / "leaf.key"}" '
        f'-h sha256 -time {EPOCH} -in "$1" -out "$1.signed" >/dev/null\n'
        'if [ -n "$TAMPER" ]; then printf X | dd of="$1.signed" bs=1 seek=$TAMPER conv=notrunc 2>/dev/null; fi\n'
        'mv "$1.signed" "$1"\n'
    )
    script.chmod(0o755)
    return script


@pytest.mark.parametrize("kind,name", [i for i in INPUTS if i[1] != "reserved.cab"])  # osslsigncode can't
def test_command_signer_matches_key_signer(ossl_command, signer, unsigned, tmp_path, kind, name):
    cmd = CommandSigner(f"sh {ossl_command}")
    assert cmd.identity == f"command:sh {ossl_command}" and cmd.certificates == () and not cmd.is_test
    assert _sign(cmd, kind, unsigned / name, tmp_path / "c") == _sign(
        signer, kind, unsigned / name, tmp_path / "k"
    )
    assert _leftovers(tmp_path) == []


def _command_failures() -> dict[str, tuple[CommandSigner, str]]:
    """Commands that fail in each way a signing tool can: none of them is osslsigncode."""
    return {
        "false": (CommandSigner("false"), "failed (exit status 1)"),
        "stderr": (
            CommandSigner("sh -c 'echo first >&2; echo \"last words\" >&2; exit 3' sh"),
            "failed (exit status 3): last words",
        ),
        "unsigned": (CommandSigner("true"), "did not sign"),
        "missing": (CommandSigner("no-such-signing-tool-xyz --flag"), "cannot run signing command"),
        "timeout": (CommandSigner("sh -c 'sleep 5' sh", timeout=0.3), "timed out after 0.3 s"),
        "truncates": (CommandSigner("sh -c ': > \"$1\"' sh"), ""),
    }


@pytest.mark.parametrize("case", ["false", "stderr", "unsigned", "missing", "timeout", "truncates"])
@pytest.mark.parametrize("kind,name", [("cat", "update.cat"), ("cab", "plain.cab"), ("pe", "x86.dll")])
def test_command_signer_failures(unsigned, tmp_path, case, kind, name):
    signer, fragment = _command_failures()[case]
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(FFUError) as exc:
        _sign(signer, kind, unsigned / name, out / name)
    msg = str(exc.value)
    assert fragment in msg and "\n" not in msg, msg
    assert list(out.iterdir()) == []


@pytest.mark.parametrize(
    "kind,name,offset", [("cab", "plain.cab", 200), ("pe", "x86.dll", 0x400), ("cat", "update.cat", 200)]
)
def test_command_signer_rejects_changed_content(
    ossl_command, unsigned, tmp_path, monkeypatch, kind, name, offset
):
    monkeypatch.setenv("TAMPER", str(offset))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(FFUError, match="changed the .* content|unreadable catalog") as exc:
        _sign(CommandSigner(f"sh {ossl_command}"), kind, unsigned / name, out / name)
    assert "\n" not in str(exc.value)
    assert list(out.iterdir()) == []


def test_command_signer_rejects_bad_signature(ossl_command, unsigned, tmp_path, monkeypatch):
    """A signature that is there but does not verify (a byte of the RSA signature flipped)."""
    signed = tmp_path / "probe.cab"
    shutil.copy(unsigned / "plain.cab", signed)
    subprocess.run(["sh", str(ossl_command), str(signed)], check=True)
    size = signed.stat().st_size
    monkeypatch.setenv("TAMPER", str(size - 40))  # inside the RSA signature at the end of the blob
    with pytest.raises(FFUError, match="bad signature: CAB signature: signature does not verify"):
        CommandSigner(f"sh {ossl_command}").sign_cab(unsigned / "plain.cab", tmp_path / "o.cab", epoch=EPOCH)
    assert not (tmp_path / "o.cab").exists()


def test_command_signer_leaves_signed_pe_alone(signer, unsigned, tmp_path):
    signer.sign_pe(unsigned / "x86.dll", tmp_path / "s.dll", epoch=EPOCH)
    CommandSigner("false").sign_pe(tmp_path / "s.dll", tmp_path / "t.dll", epoch=EPOCH)  # never runs
    assert (tmp_path / "t.dll").read_bytes() == (tmp_path / "s.dll").read_bytes()


def test_command_signer_bad_command():
    with pytest.raises(FFUError, match="empty"):
        CommandSigner("  ")
    with pytest.raises(FFUError, match="cannot parse"):
        CommandSigner("sign 'unterminated")


# ----------------------------------------------------------------------------- package


def test_signed_package_verifies(signer, root, tmp_path):
    path = write_package(tmp_path / "p.cab", package_files(tmp_path / "src"), signer)
    report = verify.verify_cab(path, trusted_roots=[root])
    assert report.ok, report.problems
    # The signature is zero-padded to 8 bytes and ends the file; the CAB before it has any length
    # (it varies with the per-session test certificates' lengths, so `file size % 8` is not a rule).
    sig_offset, sig_len = struct.unpack_from("<II", path.read_bytes(), cab.SIG_OFFSET_POS)
    assert sig_len % 8 == 0 and sig_offset + sig_len == os.path.getsize(path)


# ----------------------------------------------------------------------------- signing while writing


@pytest.mark.parametrize("compression", ["none", "mszip"])
def test_cab_signed_while_written_equals_signed_after(signer, tmp_path, compression):
    """write_cab(authenticode=…) hashes an uncompressed CAB as it writes it (and re-reads a
    compressed one): the result equals writing the CAB and signing it afterwards, byte for byte."""
    members = [
        cab.CabMember("update.mum", data=b"<assembly/>" * 50),
        cab.CabMember("a.bin", data=os.urandom(200_000)),
        cab.CabMember("b\\c.txt", data=b"text " * 30_000),
    ]
    after = tmp_path / "after.cab"
    cab.write_cab(after, members, compression=compression, reserve_signature=True, max_blocks_per_folder=8)
    signer.sign_cab_in_place(after, epoch=EPOCH)
    during = tmp_path / "during.cab"
    cab.write_cab(
        during,
        members,
        compression=compression,
        reserve_signature=True,
        max_blocks_per_folder=8,
        authenticode=lambda digest: signer.cab_signature(digest, epoch=EPOCH),
    )
    assert during.read_bytes() == after.read_bytes()
    assert verify.cab_signature_problems(during) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["after.cab", "during.cab"]


def test_cab_sha256_computed_while_written(signer, tmp_path):
    """CabInfo.sha256 (the SBOM's checksum of a CAB) is the file's SHA-256 (sha256sum: the oracle)
    whenever write_cab gives it: unsigned uncompressed always, signed uncompressed when the
    signature has the size predicted (an RSA signer's last one); otherwise None, never wrong."""
    members = [
        cab.CabMember("update.mum", data=b"<assembly/>" * 50),
        cab.CabMember("a", data=os.urandom(90_000)),
    ]

    def sha256sum(path: Path) -> str:
        return subprocess.run(["sha256sum", path], capture_output=True, text=True, check=True).stdout.split()[
            0
        ]

    plain = cab.write_cab(tmp_path / "plain.cab", members, max_blocks_per_folder=4)
    assert plain.sha256 == sha256sum(tmp_path / "plain.cab") and plain.signature_size is None
    sign = lambda digest: signer.cab_signature(digest, epoch=EPOCH)  # noqa: E731
    kw = dict(reserve_signature=True, authenticode=sign)
    first = cab.write_cab(tmp_path / "a.cab", members, **kw)
    assert first.sha256 is None and first.signature_size  # nothing predicted
    hit = cab.write_cab(tmp_path / "b.cab", members[:1], signature_size_hint=first.signature_size, **kw)
    assert hit.sha256 == sha256sum(tmp_path / "b.cab")
    miss = cab.write_cab(tmp_path / "c.cab", members, signature_size_hint=first.signature_size + 8, **kw)
    assert miss.sha256 is None
    assert (tmp_path / "c.cab").read_bytes() == (tmp_path / "a.cab").read_bytes()  # the hint changes no byte
    packed = cab.write_cab(tmp_path / "d.cab", members, compression="mszip", signature_size_hint=8, **kw)
    assert packed.sha256 is None


def test_cab_signer_failure_leaves_nothing(tmp_path):
    def fail(digest: bytes) -> bytes:
        raise FFUError("the signer refused", "key.pem")

    with pytest.raises(FFUError, match="refused"):
        cab.write_cab(
            tmp_path / "x.cab", [cab.CabMember("a", data=b"a")], reserve_signature=True, authenticode=fail
        )
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- error kinds


@pytest.mark.parametrize("case", BAD)
def test_bad_key_inputs_are_signing_errors(bad_inputs, case):
    kwargs, _fragment, _filename = bad_inputs[case]
    with pytest.raises(SigningError):
        load_key_signer(**kwargs)


def test_error_kinds_of_key_signing(signer, unsigned, tmp_path):
    (tmp_path / "x.cab").write_bytes(b"MZ not a cab")
    (tmp_path / "x.sys").write_bytes(b"not a PE at all")
    with pytest.raises(FormatError, match="not a cabinet"):
        signer.sign_cab(tmp_path / "x.cab", tmp_path / "out" / "x.cab", epoch=EPOCH)
    with pytest.raises(FormatError, match="not a PE image"):
        signer.sign_pe(tmp_path / "x.sys", tmp_path / "out" / "x.sys", epoch=EPOCH)
    with pytest.raises(ConfigError, match="not a Unix time"):
        signer.sign_catalog((unsigned / "update.cat").read_bytes(), epoch=-1)
    with pytest.raises(SigningError, match="cannot read"):
        signer.sign_pe(tmp_path / "missing.sys", tmp_path / "out" / "m.sys", epoch=EPOCH)


def test_error_kinds_of_the_command_signer(unsigned, tmp_path):
    with pytest.raises(ConfigError, match="empty"):
        CommandSigner("  ")
    with pytest.raises(ConfigError, match="timeout must be positive"):
        CommandSigner("true", timeout=0)
    with pytest.raises(ToolError, match=r"failed \(exit status 1\)"):
        CommandSigner("false").sign_pe(unsigned / "x86.dll", tmp_path / "f.dll", epoch=EPOCH)
    with pytest.raises(ToolError, match="cannot run signing command"):
        CommandSigner("no-such-signing-tool-xyz").sign_pe(
            unsigned / "x86.dll", tmp_path / "m.dll", epoch=EPOCH
        )
    with pytest.raises(SigningError, match="did not sign"):
        CommandSigner("true").sign_pe(unsigned / "x86.dll", tmp_path / "t.dll", epoch=EPOCH)


def test_error_kinds_of_the_test_pki(tmp_path):
    with pytest.raises(ConfigError, match="invalid OEM name"):
        testpki.ensure_test_pki(tmp_path / "pki", oem_name="Con\ntoso")
    with pytest.raises(SigningError, match="cannot read the test root"):
        testpki.root_certificate(tmp_path)
    (tmp_path / "root.crt").write_bytes(b"-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n")
    with pytest.raises(SigningError, match="not a PEM certificate"):
        testpki.root_certificate(tmp_path)
