"""verify_cab / verify_pe / ffuforge verify: signed packages pass (and pass osslsigncode and signify
too); every kind of tampering fails and names the member or signature that broke."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest

from ffuforge.cli.verify import verify_files
from ffuforge.errors import FFUError, FormatError, SigningError
from ffuforge.formats import cab, catalog, pe
from ffuforge.signing import testpki, verify

from oracles import require_tool
from signing_util import (
    EPOCH,
    issue,
    needs_osslsigncode,
    ossl_verify,
    package_files,
    pkgbuild_package,
    read_members,
    repack,
    rsa_key,
    signify_ctl,
    signify_store,
    write_cert,
    write_key,
    write_package,
)

MANIFEST = "Contoso.Pkg.manifest"


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("pki")


@pytest.fixture(scope="module")
def signer(pki):
    return testpki.ensure_test_pki(pki)


@pytest.fixture(scope="module")
def root(pki, signer):
    return testpki.root_certificate(pki)


@pytest.fixture(scope="module")
def attacker(tmp_path_factory):
    """A self-consistent chain that does not lead to our root."""
    from ffuforge.signing.signers import load_key_signer

    d = tmp_path_factory.mktemp("attacker")
    key = rsa_key()
    cert = issue("Mallory Code Signing", key)
    return load_key_signer(write_cert(d / "m.crt", cert), write_key(d / "m.key", key)), cert


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return package_files(tmp_path_factory.mktemp("files"))


@pytest.fixture(scope="module")
def package(signer, files, tmp_path_factory) -> Path:
    return write_package(tmp_path_factory.mktemp("pkg") / "Contoso.Pkg.cab", files, signer)


@pytest.fixture(scope="module")
def built(signer, tmp_path_factory):
    """A package from ffuforge.package.build, catalog and CAB signed."""
    return pkgbuild_package(tmp_path_factory.mktemp("built"), signer)


def _flip(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0x01]) + data[offset + 1 :]


def _problems(path: Path, root) -> list[str]:
    return verify.verify_cab(path, trusted_roots=[root]).problems


# ----------------------------------------------------------------------------- good packages


def test_signed_packages_verify(package, built, root):
    for path in (package, built[0]):
        report = verify.verify_cab(path, trusted_roots=[root])
        assert report.ok, report.problems
        assert report.signers and all("TEST ONLY" in s for s in report.signers)
        assert verify.verify_cab(path).ok  # internal consistency only


@needs_osslsigncode
def test_osslsigncode_verifies_signed_packages(package, built, pki, tmp_path):
    for path in (package, built[0]):
        r = ossl_verify("-in", path, "-CAfile", pki / "root.crt")
        assert r.returncode == 0 and "Succeeded" in r.stdout, r.stdout + r.stderr
        members = read_members(path)
        cat = tmp_path / "update.cat"
        cat.write_bytes(members["update.cat"])
        r = ossl_verify("-in", cat, "-CAfile", pki / "root.crt")
        assert r.returncode == 0 and "Succeeded" in r.stdout, r.stdout + r.stderr
        for name, data in members.items():
            if pe.is_pe(data):
                f = tmp_path / name.split("\\")[-1]
                f.write_bytes(data)
                r = ossl_verify("-catalog", cat, "-CAfile", pki / "root.crt", "-in", f)
                assert r.returncode == 0 and "Succeeded" in r.stdout, (name, r.stdout + r.stderr)


def test_signify_checks_every_member_and_the_catalog_signature(package, built, root, attacker):
    signed_file = pytest.importorskip("signify.authenticode.signed_file")
    store = signify_store(root)
    for path in (package, built[0]):
        members = read_members(path)
        ctl = signify_ctl(members.pop("update.cat"))
        _, err = ctl.explain_verify(trusted_certificate_store=store)
        assert err is None, err
        assert len(members) >= 4
        for name, data in members.items():
            # signify hashes each member itself (PE: its fingerprinter; else the flat file) and
            # looks it up in the catalog, then verifies the catalog signature chain.
            f = signed_file.AuthenticodeFile.from_stream(io.BytesIO(data), allow_flat=True)
            f.add_catalog(ctl)
            _, err = f.explain_verify(signature_types="catalog", trusted_certificate_store=store)
            assert err is None, (name, err)
            digest = (
                pe.authenticode_digest(data)
                if pe.is_pe(data)
                else catalog.member_hashes(catalog.CatalogMember(name, data=data)).sha256
            )
            assert ctl.find_subject(digest) is not None, name
        # a member signify has never seen is not found
        stranger = signed_file.AuthenticodeFile.from_stream(io.BytesIO(b"stranger"), allow_flat=True)
        stranger.add_catalog(ctl)
        _, err = stranger.explain_verify(signature_types="catalog", trusted_certificate_store=store)
        assert err is not None
    _, err = ctl.explain_verify(trusted_certificate_store=signify_store(attacker[1]))
    assert err is not None


# ----------------------------------------------------------------------------- tampering


@pytest.mark.parametrize("member", ["drv.sys", "x86.dll", "data\\settings.bin", MANIFEST, "update.mum"])
def test_member_changed_and_cab_resigned(package, signer, root, tmp_path, member):
    """Someone repacks the CAB with a modified member and re-signs the CAB (even with our key):
    the catalog still catches it and names the member."""
    members = read_members(package)
    data = members[member]
    off = pe.pe_layout(data).checksum_offset - 8 if pe.is_pe(data) else len(data) // 2  # a hashed byte
    bad = repack(package, tmp_path / "bad.cab", signer, replace={member: _flip(data, off)})
    problems = _problems(bad, root)
    assert len(problems) == 1 and problems[0].startswith(f"{member}: not listed in update.cat"), problems


def _flip_stored_member_byte(path: Path, member: str, *, drop_checksum: bool) -> bytes:
    """The CAB's bytes with the middle byte of `member` flipped where it is stored (uncompressed,
    one folder); optionally with that block's CFDATA checksum zeroed, as an attacker would do so
    that the reader no longer notices."""
    raw = path.read_bytes()
    with cab.CabReader(path) as r:
        entry = next(m for m in r.members if m.name == member)
    target = entry.offset + entry.size // 2  # offset in the folder's uncompressed stream
    head = cab.CFHEADER.parse(raw)
    folder = cab.CFFOLDER.parse(raw[head.end : head.end + cab.CFFOLDER_SIZE])
    block, stream = folder.coffCabStart, 0
    for _ in range(folder.cCFData):
        cb_data = struct.unpack_from("<H", raw, block + 4)[0]
        if stream <= target < stream + cb_data:
            out = bytearray(_flip(raw, block + 8 + target - stream))
            if drop_checksum:
                out[block : block + 4] = bytes(4)
            return bytes(out)
        block, stream = block + 8 + cb_data, stream + cb_data
    raise AssertionError("member not found in the data blocks")


@pytest.mark.parametrize("drop_checksum", [True, False])
@pytest.mark.parametrize("member", ["drv.sys", "data\\settings.bin", MANIFEST, "update.mum"])
def test_member_patched_in_place(package, root, tmp_path, member, drop_checksum):
    """A byte flipped inside the stored (uncompressed) member: the CAB signature breaks; with the
    CFDATA checksum removed the catalog names the member, else the reader's checksum trips."""
    bad = tmp_path / "bad.cab"
    bad.write_bytes(_flip_stored_member_byte(package, member, drop_checksum=drop_checksum))
    assert read_members(bad)[member] != read_members(package)[member] if drop_checksum else True
    problems = _problems(bad, root)
    assert problems[0] == "CAB signature: signed digest does not match the file (modified after signing)"
    assert len(problems) == 2, problems
    if drop_checksum:
        assert problems[1].startswith(f"{member}: not listed in update.cat"), problems
    else:
        assert "checksum mismatch" in problems[1], problems


def test_member_added_after_cataloguing(package, signer, root, tmp_path):
    bad = repack(package, tmp_path / "bad.cab", signer, add={"extra.txt": b"sneaked in"})
    digest = catalog.member_hashes(catalog.CatalogMember("x", data=b"sneaked in")).sha256.hex()
    assert _problems(bad, root) == [
        f"extra.txt: not listed in update.cat (its flat SHA-256 {digest} is not catalogued; modified after cataloguing?)"
    ]


def test_member_removed_is_fine(package, signer, root, tmp_path):
    members = read_members(package)
    del members["x86.dll"]
    dst = tmp_path / "fewer.cab"
    cab.write_cab(tmp_path / "u.cab", [cab.CabMember(n, data=d) for n, d in members.items()], timestamp=EPOCH)
    signer.sign_cab(tmp_path / "u.cab", dst, epoch=EPOCH)
    assert _problems(dst, root) == []
    # but not for the build cache, which takes only the CAB the build wrote, whole
    assert verify.consistency_problems(dst) == [
        "update.cat: lists 1 member(s) the cabinet does not hold (removed?)"
    ]
    assert verify.consistency_problems(package) == []


def test_consistency_accepts_unsigned_and_catches_a_flipped_signature_byte(package, tmp_path):
    """An unsigned package (SIGN=none) is consistent; a signed one with a byte of its signature
    block changed is not (the cache must not take it)."""
    members = read_members(package)
    unsigned = tmp_path / "u.cab"
    cab.write_cab(unsigned, [cab.CabMember(n, data=d) for n, d in members.items()], timestamp=EPOCH)
    assert verify.consistency_problems(unsigned) == []
    data = bytearray(package.read_bytes())
    data[-40] ^= 1  # inside the PKCS#7 blob appended at the end
    bad = tmp_path / "bad.cab"
    bad.write_bytes(bytes(data))
    assert verify.consistency_problems(bad)


def test_catalog_ctl_changed(package, signer, root, files, tmp_path):
    """A byte inside the CTL (a member's SHA-256 subject identifier): the catalog signature fails,
    and that member is no longer listed."""
    der = read_members(package)["update.cat"]
    digest = catalog.member_hashes(catalog.CatalogMember("m", data=files[MANIFEST])).sha256
    pos = der.find(digest)
    assert pos > 0
    bad = repack(package, tmp_path / "bad.cab", signer, replace={"update.cat": _flip(der, pos + 5)})
    problems = _problems(bad, root)
    assert (
        "update.cat: messageDigest does not match the signed content (content modified after signing)"
        in problems
    )
    assert any(p.startswith(f"{MANIFEST}: not listed in update.cat") for p in problems)
    assert not any(p.startswith("CAB signature") for p in problems)


def test_catalog_signature_changed(package, signer, root, tmp_path):
    der = read_members(package)["update.cat"]
    (si,) = catalog.signed_data_parts(der).signed_data["signer_infos"]
    sig = si["signature"].native
    pos = der.find(sig)
    bad = repack(package, tmp_path / "bad.cab", signer, replace={"update.cat": _flip(der, pos + 100)})
    problems = _problems(bad, root)
    assert problems == [
        "update.cat: signature does not verify with the signer certificate "
        "'Contoso Test Code Signing (TEST ONLY)'"
    ]


def _sig_area(path: Path) -> tuple[int, int]:
    raw = path.read_bytes()
    return struct.unpack_from("<II", raw, cab.SIG_OFFSET_POS)


def test_cab_signature_blob_changed(package, root, tmp_path):
    raw = package.read_bytes()
    off, length = _sig_area(package)
    blob = raw[off : off + length]
    # 1. a byte of the RSA signature (last 256 bytes of the DER)
    end = verify._strip_padding(blob)
    bad = tmp_path / "sig.cab"
    bad.write_bytes(_flip(raw, off + len(end) - 50))
    assert _problems(bad, root) == [
        "CAB signature: signature does not verify with the signer certificate "
        "'Contoso Test Code Signing (TEST ONLY)'"
    ]
    # 2. a byte of the signed CAB digest inside SpcIndirectDataContent
    digest = cab.cab_hash(package)
    pos = blob.find(digest)
    assert pos > 0
    bad.write_bytes(_flip(raw, off + pos))
    problems = _problems(bad, root)
    assert "CAB signature: signed digest does not match the file (modified after signing)" in problems
    assert (
        "CAB signature: messageDigest does not match the signed content (content modified after signing)"
        in problems
    )
    # 3. garbage instead of DER
    bad.write_bytes(raw[:off] + b"\x01" * length)
    assert [p.split(":")[0:2] for p in _problems(bad, root)] == [["CAB signature", " malformed signature"]]


def test_cab_header_changed(package, root, tmp_path):
    raw = package.read_bytes()
    bad = tmp_path / "hdr.cab"
    bad.write_bytes(_flip(raw, 32))  # setID: hashed header field the reader does not care about
    assert _problems(bad, root) == [
        "CAB signature: signed digest does not match the file (modified after signing)"
    ]


def test_unsigned(files, signer, root, tmp_path):
    plain = write_package(tmp_path / "plain.cab", files, None)
    problems = _problems(plain, root)
    assert problems == ["CAB signature: not signed", "update.cat: not signed"]
    half = write_package(tmp_path / "half.cab", files, signer, sign_cab=False)
    assert _problems(half, root) == ["CAB signature: not signed"]


def test_missing_catalog(files, signer, root, tmp_path):
    members = [cab.CabMember(n, data=d) for n, d in files.items()]
    cab.write_cab(tmp_path / "u.cab", members, timestamp=EPOCH)
    signer.sign_cab(tmp_path / "u.cab", tmp_path / "s.cab", epoch=EPOCH)
    assert _problems(tmp_path / "s.cab", root) == ["update.cat: missing from the cabinet"]


def test_untrusted_signer(package, attacker, root, tmp_path, files):
    """Re-signed (catalog and CAB) by a consistent but untrusted chain: fine without roots,
    a chain problem for both signatures with our root."""
    evil_signer, _ = attacker
    evil = write_package(tmp_path / "evil.cab", files, evil_signer)
    assert verify.verify_cab(evil).ok
    problems = _problems(evil, root)
    assert len(problems) == 2
    assert problems[0].startswith(
        "CAB signature: certificate chain of 'Mallory Code Signing' does not lead to a trusted root"
    )
    assert problems[1].startswith("update.cat: certificate chain of 'Mallory Code Signing'")
    # trusting the attacker's root instead flips the result
    assert (
        verify.verify_cab(package, trusted_roots=[attacker[1]]).problems[0].startswith("CAB signature: cert")
    )


def test_corrupt_file(tmp_path, root):
    (tmp_path / "x.cab").write_bytes(b"MSCF" + b"\0" * 10)
    problems = _problems(tmp_path / "x.cab", root)
    assert len(problems) == 1 and problems[0].startswith("cannot read the cabinet")


# ----------------------------------------------------------------------------- PE and CLI


@pytest.fixture(scope="module")
def signed_pe(signer, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("pe")
    pe.make_minimal_pe(d / "u.sys", machine="arm", kind="sys", payload=b"arm driver")
    signer.sign_pe(d / "u.sys", d / "s.sys", epoch=EPOCH)
    return d


def test_verify_pe(signed_pe, root, attacker, tmp_path):
    assert verify.verify_pe(signed_pe / "s.sys", trusted_roots=[root]).ok
    assert verify.verify_pe(signed_pe / "u.sys").problems == ["signature: not signed"]
    raw = (signed_pe / "s.sys").read_bytes()
    (tmp_path / "t.sys").write_bytes(_flip(raw, 0x210))  # in .text: hashed
    problems = verify.verify_pe(tmp_path / "t.sys", trusted_roots=[root]).problems
    assert "signature: signed digest does not match the file (modified after signing)" in problems
    assert "signature: PE checksum does not match the file" in problems
    (tmp_path / "c.sys").write_bytes(_flip(raw, pe.pe_layout(raw).checksum_offset))  # not hashed
    assert verify.verify_pe(tmp_path / "c.sys").problems == ["signature: PE checksum does not match the file"]
    assert not verify.verify_pe(signed_pe / "s.sys", trusted_roots=[attacker[1]]).ok


def test_verify_main(package, signed_pe, pki, root, tmp_path, capsys):
    bad = tmp_path / "bad.cab"
    raw = package.read_bytes()
    bad.write_bytes(_flip(raw, 32))
    cat = tmp_path / "update.cat"
    cat.write_bytes(read_members(package)["update.cat"])
    assert verify_files([package, signed_pe / "s.sys", cat], [pki / "root.crt"]) == 0
    lines = capsys.readouterr().out.splitlines()
    out = [ln for ln in lines if not ln.startswith(" ")]
    assert out == [f"OK {package}", f"OK {signed_pe / 's.sys'}", f"OK {cat}"]
    # who signed, the chain, TEST ONLY and the package's release type follow each verdict
    details = lines[1 : lines.index(f"OK {signed_pe / 's.sys'}")]
    assert details[0].startswith("  signer: CN=") and "TEST ONLY" in details[0]
    assert details[1].startswith("    chain: CN=") and details[1].count(" <- ") >= 1
    assert details[2] == "    test only: yes (TEST ONLY certificate)"
    assert details[-1].startswith("  release type: ")  # this fixture's update.mum is minimal: unknown
    assert any(ln.startswith("  catalog signer: CN=") for ln in details)
    assert verify_files([package, bad, tmp_path / "missing.cab"], None) == 1
    out = [ln for ln in capsys.readouterr().out.splitlines() if not ln.startswith(" ")]
    assert out[0] == f"OK {package}"
    assert out[1] == f"{bad}: CAB signature: signed digest does not match the file (modified after signing)"
    assert out[2].startswith(f"{tmp_path / 'missing.cab'}: cannot read")
    with pytest.raises(FFUError, match="cannot read certificate file"):
        verify_files([package], [tmp_path / "nope.crt"])


def test_verify_accepts_osslsigncode_output(files, pki, root, tmp_path):
    """The verifier is not tied to our signer: a package signed by osslsigncode passes."""
    require_tool("osslsigncode")
    import subprocess

    chain = tmp_path / "chain.pem"
    chain.write_bytes((pki / "intermediate.crt").read_bytes() + (pki / "root.crt").read_bytes())

    def ossl_sign(src: Path, dst: Path) -> None:
        subprocess.run(
            [
                "osslsigncode",
                "sign",
                "-certs",
                str(pki / "leaf.crt"),
                "-ac",
                str(chain),
                "-key",
                str(pki / "leaf.key"),
                "-h",
                "sha256",
                "-in",
                str(src),
                "-out",
                str(dst),
            ],
            check=True,
            capture_output=True,
        )

    unsigned_cat = read_members(write_package(tmp_path / "u.cab", files, None))["update.cat"]
    (tmp_path / "u.cat").write_bytes(unsigned_cat)
    ossl_sign(tmp_path / "u.cat", tmp_path / "s.cat")  # real current signing time, not -time
    pkg = write_package(tmp_path / "p.cab", files, None, catalog_der=(tmp_path / "s.cat").read_bytes())
    ossl_sign(pkg, tmp_path / "s.cab")
    assert verify.verify_cab(tmp_path / "s.cab", trusted_roots=[root]).problems == []


def test_error_kinds(tmp_path):
    (tmp_path / "x.cab").write_bytes(b"MZ not a cabinet file at all, but long enough to read a header")
    (tmp_path / "x.sys").write_bytes(b"not a PE image at all")
    (tmp_path / "bad.crt").write_bytes(b"not a certificate")
    with pytest.raises(FormatError, match="not a cabinet file"):
        verify.cab_signature(tmp_path / "x.cab")
    with pytest.raises(FormatError, match="cannot read"):
        verify.cab_signature(tmp_path / "missing.cab")
    with pytest.raises(FormatError, match="not a PE image"):
        verify.pe_signature(tmp_path / "x.sys")
    with pytest.raises(SigningError, match="not a PEM or DER certificate"):
        verify.load_certificates([tmp_path / "bad.crt"])
    with pytest.raises(SigningError, match="cannot read certificate file"):
        verify.load_certificates([tmp_path / "missing.crt"])


def test_content_signature_covers_every_byte_of_a_signed_cab(package, tmp_path):
    """The signature SCons records for a CAB (and the shared cache checks entries with) changes
    with any byte: the header, every member, and the whole signature block at the end."""
    data = package.read_bytes()
    cb_cabinet = struct.unpack_from("<I", data, 8)[0]
    assert cb_cabinet < len(data)  # the PKCS#7 blob lies after cbCabinet
    from ffuforge.scons_tool.contentsig import content_signature  # falls back to blocks if not a CAB

    good = content_signature(str(package), cab_file=True)[2]
    assert good == cab.content_signature(package)
    tail = range(cb_cabinet, len(data))
    offsets = sorted({*range(0, 64), *tail[:64], *tail[-64:], *tail[::5], *range(64, cb_cabinet, 61)})
    copy = tmp_path / "x.cab"
    for off in offsets:
        bad = bytearray(data)
        bad[off] ^= 0x01
        copy.write_bytes(bytes(bad))
        assert content_signature(str(copy), cab_file=True)[2] != good, off
