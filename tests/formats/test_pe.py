"""PE helpers, checked against independent tools: osslsigncode (signing, verification, PE
checksum, its embedded Authenticode digest) and signify (PE parsing, signature verification)."""

from __future__ import annotations

import datetime
import hashlib
import io
import struct
import subprocess
from pathlib import Path

import pytest
from asn1crypto import cms
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ffuforge.errors import ConfigError, FFUError, FormatError
from ffuforge.formats.pe import (
    MACHINES,
    NT_HEADERS,
    OPTIONAL_HEADER32,
    OPTIONAL_HEADER64,
    SECTION_HEADER,
    authenticode_digest,
    authenticode_digests,
    is_pe,
    make_minimal_pe,
    pe_layout,
)

from oracles import needs, require_tool

KINDS = ("sys", "dll", "exe")
MATRIX = [(m, k) for m in MACHINES for k in KINDS]
needs_osslsigncode = needs("osslsigncode")


# ----------------------------------------------------------------------------- helpers


def make_pki(directory: Path) -> dict[str, Path]:
    """Throwaway root (CA:TRUE) -> code-signing leaf, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def usage(**on):
        flags = dict.fromkeys(
            (
                "digital_signature content_commitment key_encipherment data_encipherment key_agreement "
                "key_cert_sign crl_sign encipher_only decipher_only"
            ).split(),
            False,
        )
        return x509.KeyUsage(**{**flags, **on})

    start = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root = (
        x509.CertificateBuilder()
        .subject_name(name("ffuforge Test Root (TEST ONLY)"))
        .issuer_name(name("ffuforge Test Root (TEST ONLY)"))
        .public_key(root_key.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=365 * 30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage(key_cert_sign=True, crl_sign=True), critical=True)
        .sign(root_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name("ffuforge Test Leaf (TEST ONLY)"))
        .issuer_name(root.subject)
        .public_key(leaf_key.public_key())
        .serial_number(2)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=365 * 29))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    out = {"root": directory / "root.pem", "leaf": directory / "leaf.pem", "key": directory / "leaf.key"}
    out["root"].write_bytes(root.public_bytes(serialization.Encoding.PEM))
    out["leaf"].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    out["key"].write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    out["leaf_obj"], out["leaf_key_obj"] = leaf, leaf_key
    return out


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    return make_pki(tmp_path_factory.mktemp("pki"))


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, check=False)


def ossl_sign(pki, src: Path, dst: Path, algo: str = "sha256") -> None:
    r = run("osslsigncode", "sign", "-certs", pki["leaf"], "-key", pki["key"], "-h", algo,
            "-time", "1700000000", "-in", src, "-out", dst)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr


def embedded_digest(signed: bytes) -> tuple[str, bytes]:
    """(algorithm, digest) of the SpcIndirectDataContent in a signed PE's certificate table,
    located from the raw header fields, decoded with asn1crypto (no ffuforge code)."""
    pe = struct.unpack_from("<I", signed, 0x3C)[0]
    magic = struct.unpack_from("<H", signed, pe + 24)[0]
    certdir = pe + 24 + (96 if magic == 0x10B else 112) + 32
    offset, size = struct.unpack_from("<II", signed, certdir)
    length, revision, cert_type = struct.unpack_from("<IHH", signed, offset)
    assert (revision, cert_type) == (0x0200, 0x0002)  # WIN_CERT_REVISION_2_0, PKCS_SIGNED_DATA
    ci = cms.ContentInfo.load(signed[offset + 8 : offset + length])
    content = ci["content"]["encap_content_info"]["content"]
    # Once signify is imported (other test modules), asn1crypto already decodes the content type.
    content = content.parsed if hasattr(content, "parsed") else content
    # SpcIndirectDataContent ::= SEQUENCE { data, messageDigest DigestInfo }
    digest_info = content[1]
    oid = digest_info[0][0].dotted
    return {"2.16.840.1.101.3.4.2.1": "sha256", "1.3.14.3.2.26": "sha1"}[oid], digest_info[1].native


def reference_digest(data: bytes, algo: str = "sha256") -> bytes:
    """The Authenticode PE digest (Microsoft's Authenticode PE specification) written out naively on an in-memory image."""
    pe = struct.unpack_from("<I", data, 0x3C)[0]
    opt = pe + 24
    magic = struct.unpack_from("<H", data, opt)[0]
    checksum = opt + 64
    certdir = opt + (96 if magic == 0x10B else 112) + 32
    offset, size = struct.unpack_from("<II", data, certdir)
    end = offset if size else len(data)
    blob = data[:checksum] + data[checksum + 4 : certdir] + data[certdir + 8 : end]
    if not size:
        blob += b"\0" * ((-len(data)) % 8)
    return hashlib.new(algo, blob).digest()


def reference_checksum(data: bytes, checksum_offset: int) -> int:
    """Per-word end-around-carry loop, as in the classic CheckSumMappedFile description."""
    buf = bytearray(data)
    buf[checksum_offset : checksum_offset + 4] = bytes(4)
    if len(buf) % 2:
        buf.append(0)
    s = 0
    for (word,) in struct.iter_unpack("<H", buf):
        s += word
        s = (s & 0xFFFF) + (s >> 16)
    return (s + len(data)) & 0xFFFFFFFF


def headers(data: bytes):
    pe = struct.unpack_from("<I", data, 0x3C)[0]
    nt = NT_HEADERS.parse(data[pe : pe + 24])
    magic = struct.unpack_from("<H", data, pe + 24)[0]
    opt_struct = OPTIONAL_HEADER64 if magic == 0x20B else OPTIONAL_HEADER32
    opt = opt_struct.parse(data[pe + 24 :])
    sec_off = pe + 24 + nt.SizeOfOptionalHeader
    sections = [SECTION_HEADER.parse(data[sec_off + 40 * i :]) for i in range(nt.NumberOfSections)]
    return pe, nt, opt, sections


# ----------------------------------------------------------------------------- generator


@pytest.mark.parametrize(("machine", "kind"), MATRIX)
def test_minimal_pe_headers(machine, kind, tmp_path):
    out = tmp_path / f"f.{kind}"
    data = make_minimal_pe(out, machine=machine, kind=kind, payload=b"payload", timestamp=0x5F000000)
    assert out.read_bytes() == data
    pe, nt, opt, sections = headers(data)
    plus = machine in ("amd64", "arm64")
    assert nt.Machine == {"x86": 0x14C, "amd64": 0x8664, "arm": 0x1C4, "arm64": 0xAA64}[machine]
    assert nt.TimeDateStamp == 0x5F000000
    assert opt.Magic == (0x20B if plus else 0x10B)
    assert nt.SizeOfOptionalHeader == (240 if plus else 224)
    assert opt.Subsystem == {"sys": 1, "dll": 2, "exe": 3}[kind]
    assert bool(nt.Characteristics & 0x2000) == (kind == "dll")
    assert nt.Characteristics & 0x0002  # executable image
    assert (opt.FileAlignment, opt.SectionAlignment) == (0x200, 0x1000)
    assert [s.Name for s in sections] == [".text", ".rdata"]
    assert opt.SizeOfHeaders == 0x200 == sections[0].PointerToRawData
    last = sections[-1]
    assert opt.SizeOfImage == last.VirtualAddress + 0x1000
    assert len(data) == last.PointerToRawData + last.SizeOfRawData
    rdata = sections[1]
    assert data[rdata.PointerToRawData : rdata.PointerToRawData + rdata.VirtualSize] == b"payload"
    assert opt.SizeOfCode == sections[0].SizeOfRawData
    assert sections[0].VirtualAddress <= opt.AddressOfEntryPoint < sections[0].VirtualAddress + 0x1000
    assert opt.CheckSum == reference_checksum(data, pe + 24 + 64) != 0
    assert is_pe(data) and is_pe(out)


def test_minimal_pe_deterministic_and_payload_sensitive():
    a = make_minimal_pe(None, machine="arm", kind="sys", payload=b"one")
    assert a == make_minimal_pe(None, machine="arm", kind="sys", payload=b"one")
    assert a != make_minimal_pe(None, machine="arm", kind="sys", payload=b"two")
    assert a != make_minimal_pe(None, machine="arm", kind="sys", payload=b"one", timestamp=1)
    bare = make_minimal_pe(None, machine="arm64", kind="exe")
    assert [s.Name for s in headers(bare)[3]] == [".text"]
    big = make_minimal_pe(None, machine="amd64", kind="dll", payload=bytes(range(256)) * 5000)
    _, _, opt, sections = headers(big)
    assert opt.SizeOfImage == sections[1].VirtualAddress + (256 * 5000 + 0xFFF) // 0x1000 * 0x1000


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(machine="mips", kind="sys"),
        dict(machine="arm", kind="efi"),
        dict(machine="arm", kind="sys", timestamp=-1),
        dict(machine="arm", kind="sys", timestamp=1 << 32),
    ],
)
def test_minimal_pe_rejects_bad_arguments(kwargs):
    with pytest.raises(FFUError):
        make_minimal_pe(None, **kwargs)


@needs_osslsigncode
@pytest.mark.parametrize(("machine", "kind"), MATRIX)
def test_osslsigncode_signs_and_verifies_and_agrees_on_digest(machine, kind, pki, tmp_path):
    src, dst = tmp_path / f"in.{kind}", tmp_path / f"out.{kind}"
    make_minimal_pe(src, machine=machine, kind=kind, payload=f"{machine}-{kind}".encode())
    # osslsigncode's own PE checksum agrees with ours (it prints "Calculated ..." on mismatch).
    r = run("osslsigncode", "verify", "-in", src)
    assert "PE checksum" in r.stdout and "Calculated PE checksum" not in r.stdout, r.stdout
    ossl_sign(pki, src, dst)
    r = run("osslsigncode", "verify", "-in", dst, "-CAfile", pki["root"])
    assert r.returncode == 0 and "Succeeded" in r.stdout, r.stdout + r.stderr
    signed = dst.read_bytes()
    assert embedded_digest(signed) == ("sha256", authenticode_digest(src))
    assert authenticode_digest(dst) == authenticode_digest(src)
    layout = pe_layout(signed)
    assert layout.signed and layout.cert_offset + layout.cert_size == len(signed)


@needs_osslsigncode
@pytest.mark.parametrize("machine", ["x86", "arm64"])
def test_sha1_digest_matches_osslsigncode(machine, pki, tmp_path):
    src, dst = tmp_path / "in.sys", tmp_path / "out.sys"
    make_minimal_pe(src, machine=machine, kind="sys", payload=b"sha1")
    ossl_sign(pki, src, dst, algo="sha1")
    assert embedded_digest(dst.read_bytes()) == ("sha1", authenticode_digest(src, "sha1"))
    assert authenticode_digest(dst, "sha1") == authenticode_digest(src, "sha1")


@needs_osslsigncode
@pytest.mark.parametrize("overlay", [1, 3, 5, 7, 8])
def test_padding_rule_matches_osslsigncode(overlay, pki, tmp_path):
    src, dst = tmp_path / "in.dll", tmp_path / "out.dll"
    data = make_minimal_pe(None, machine="amd64", kind="dll", payload=b"p" * 1000) + b"\xaa" * overlay
    src.write_bytes(data)
    ossl_sign(pki, src, dst)
    ours = authenticode_digest(src)
    assert embedded_digest(dst.read_bytes()) == ("sha256", ours)
    assert authenticode_digest(dst) == ours  # signed file: hash up to the certificate table
    layout = pe_layout(data)
    unpadded = hashlib.sha256(b"".join(data[a:b] for a, b in layout.hashed_ranges())).digest()
    assert (ours == unpadded) == (len(data) % 8 == 0)


def test_signify_parses_signed_and_agrees(pki, tmp_path):
    signed_file = pytest.importorskip("signify.authenticode.signed_file")
    x509 = pytest.importorskip("signify.x509")
    require_tool("osslsigncode")
    root = x509.Certificate.from_pem(pki["root"].read_bytes())
    store = x509.CertificateStore([root], trusted=True)
    for machine in MACHINES:
        src, dst = tmp_path / f"{machine}.sys", tmp_path / f"{machine}.signed.sys"
        make_minimal_pe(src, machine=machine, kind="sys", payload=b"signify")
        ossl_sign(pki, src, dst)
        with dst.open("rb") as f:
            spe = signed_file.SignedPEFile(f)
            (sig,) = list(spe.signatures)
            assert sig.indirect_data.digest == authenticode_digest(src)
            # signify's fingerprinter stops at the certificate table: same as ours for signed files
            assert spe.get_fingerprint(hashlib.sha256) == authenticode_digest(dst)
            result, err = spe.explain_verify(trusted_certificate_store=store)
            assert err is None, err


# ----------------------------------------------------------------------------- hashing details


def test_digest_streams_large_files_and_accepts_bytes(tmp_path):
    payload = hashlib.shake_256(b"big").digest(3 * 1024 * 1024 + 17)
    data = make_minimal_pe(None, machine="arm64", kind="sys", payload=payload) + b"tail!"
    p = tmp_path / "big.sys"
    p.write_bytes(data)
    both = authenticode_digests(p)
    assert both == {"sha256": reference_digest(data), "sha1": reference_digest(data, "sha1")}
    assert authenticode_digest(data) == both["sha256"] == authenticode_digest(str(p))
    with pytest.raises(ValueError):
        authenticode_digest(p, "md5")


def test_signed_layout_hashes_up_to_certificate_table():
    data = bytearray(make_minimal_pe(None, machine="x86", kind="dll", payload=b"x" * 11))
    layout = pe_layout(bytes(data))
    table = b"\x10\x00\x00\x00\x00\x02\x02\x00" + b"\x30\x00" + bytes(6)
    struct.pack_into("<II", data, layout.certdir_offset, len(data), len(table))
    signed = bytes(data) + table
    assert authenticode_digest(signed) == reference_digest(signed)
    # Changing the certificate entry or the table does not change the image hash.
    assert authenticode_digest(signed[:-1] + b"\x01") == authenticode_digest(signed)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"MZ",
        b"hello world, not a PE at all" * 4,
        b"MZ" + bytes(58) + struct.pack("<I", 0xFFFFFFF0) + bytes(100),  # e_lfanew out of range
        b"MZ" + bytes(58) + struct.pack("<I", 64) + b"NE\0\0" + bytes(100),  # not a PE signature
    ],
)
def test_non_pe_is_not_pe(data, tmp_path):
    assert not is_pe(data)
    assert pe_layout(data) is None
    p = tmp_path / "f.bin"
    p.write_bytes(data)
    with pytest.raises(FFUError) as e:
        authenticode_digest(p)
    assert str(p) in str(e.value)


def _mutate(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


BASE = make_minimal_pe(None, machine="amd64", kind="sys", payload=b"hostile")
_L = pe_layout(BASE)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (BASE[: _L.pe_offset + 10], "file header truncated"),
        (BASE[: _L.pe_offset + 24 + 50], "past end of file"),
        (_mutate(BASE, _L.pe_offset + 24, "<H", 0x107), "magic"),
        (_mutate(BASE, _L.pe_offset + 20, "<H", 100), "SizeOfOptionalHeader"),
        (_mutate(BASE, _L.pe_offset + 24 + 108, "<I", 4), "NumberOfRvaAndSizes"),
        (_mutate(BASE, _L.certdir_offset, "<I", 0x400), "inconsistent"),
        (
            _mutate(_mutate(BASE, _L.certdir_offset, "<I", 0x400), _L.certdir_offset + 4, "<I", 0x10000),
            "outside",
        ),
        (_mutate(_mutate(BASE, _L.certdir_offset, "<I", 16), _L.certdir_offset + 4, "<I", 8), "outside"),
        (
            _mutate(_mutate(BASE, _L.certdir_offset, "<I", 0xFFFFFFFF), _L.certdir_offset + 4, "<I", 8),
            "outside",
        ),
    ],
)
def test_claims_pe_but_malformed_raises(data, why, tmp_path):
    p = tmp_path / "hostile.sys"
    p.write_bytes(data)
    assert is_pe(p)
    with pytest.raises(FFUError) as e:
        authenticode_digest(p)
    assert why in str(e.value)
    assert str(e.value).startswith(f"{p}: malformed PE image")


def test_missing_file_is_ffuerror(tmp_path):
    with pytest.raises(FFUError) as e:
        is_pe(tmp_path / "nope.sys")
    assert "nope.sys" in str(e.value)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    e_lfanew=st.integers(0, 400),
    tail=st.binary(min_size=0, max_size=600),
    patch=st.lists(st.tuples(st.integers(0, 900), st.binary(min_size=1, max_size=8)), max_size=6),
)
def test_hostile_headers_only_raise_ffuerror(e_lfanew, tail, patch):
    """Random bytes around a PE signature: either a digest or an FFUError, never a crash."""
    data = bytearray(b"MZ" + bytes(58) + struct.pack("<I", e_lfanew) + tail)
    if e_lfanew + 4 <= len(data):
        data[e_lfanew : e_lfanew + 4] = b"PE\0\0"
    for off, blob in patch:
        data[off : off + len(blob)] = blob
    data = bytes(data)
    try:
        layout = pe_layout(data)
    except FFUError:
        return
    if layout is None:
        assert not is_pe(data)
        return
    assert authenticode_digest(data) == reference_digest(data)


@settings(max_examples=300, deadline=None)
@given(
    patch=st.lists(st.tuples(st.integers(0, 0x1FF), st.binary(min_size=1, max_size=8)), max_size=4),
    cut=st.integers(0, len(BASE) + 64),
)
def test_mutated_real_pe_only_raises_ffuerror(patch, cut):
    data = bytearray(BASE)
    for off, blob in patch:
        data[off : off + len(blob)] = blob
    data = bytes(data[:cut]) if cut <= len(BASE) else bytes(data) + bytes(cut - len(BASE))
    try:
        layout = pe_layout(data)
    except FFUError:
        return
    if layout is not None:
        assert authenticode_digest(data) == reference_digest(data)


def test_in_memory_and_stream_sources_agree():
    data = make_minimal_pe(None, machine="x86", kind="exe", payload=b"abc") + b"z"
    assert (
        authenticode_digest(memoryview(data))
        == authenticode_digest(bytearray(data))
        == reference_digest(data)
    )
    assert is_pe(io.BytesIO(data).getvalue())


# ----------------------------------------------------------------------------- error kinds


@pytest.mark.parametrize(
    "data",
    [
        BASE[: _L.pe_offset + 10],
        _mutate(BASE, _L.pe_offset + 24, "<H", 0x107),
        _mutate(BASE, _L.certdir_offset, "<I", 0x400),
    ],
)
def test_malformed_pe_is_a_format_error(data):
    with pytest.raises(FormatError, match="malformed PE image"):
        authenticode_digest(data)


def test_not_a_pe_and_unreadable_files_are_format_errors(tmp_path):
    with pytest.raises(FormatError, match="not a PE image"):
        authenticode_digest(b"hello world, not a PE at all" * 4)
    with pytest.raises(FormatError, match="cannot read file"):
        is_pe(tmp_path / "nope.sys")


@pytest.mark.parametrize(
    "kwargs", [dict(machine="mips", kind="sys"), dict(machine="arm", kind="efi"), dict(timestamp=-1)]
)
def test_bad_sample_pe_arguments_are_config_errors(kwargs):
    args = dict(machine="arm", kind="sys") | kwargs
    with pytest.raises(ConfigError):
        make_minimal_pe(None, **args)
