"""Catalog builder/reader, checked against independent tools: signify parses our unsigned
catalogs and finds every member; osslsigncode signs them and then verifies PE members against
them (`verify -catalog`), which exercises our PE hashing and CTL structure end to end."""

from __future__ import annotations

import datetime
import hashlib
import io
import subprocess
from pathlib import Path

import pytest
from asn1crypto import algos, cms
from asn1crypto import core as asn1
from asn1crypto import x509 as asn1_x509
from hypothesis import given, settings
from hypothesis import strategies as st

from ffuforge.errors import ConfigError, FFUError, FormatError
from ffuforge.formats.catalog import (
    CatalogContentInfo,
    CatalogMember,
    MemberHash,
    attach_signature,
    attach_signature_der,
    build_catalog_v1,
    build_catalog_v2,
    ctl_der,
    member_hashes,
    parse_catalog,
    signed_content,
    signed_data_parts,
)
from ffuforge.formats.pe import MACHINES, authenticode_digest, make_minimal_pe

from oracles import needs, require_tool
from test_pe import make_pki  # one throwaway code-signing PKI for the PE and catalog tests

UTC = datetime.UTC
WHEN = datetime.datetime(2024, 5, 1, 12, 30, 45, tzinfo=UTC)
PE_DATA = bytes.fromhex("300a030205a0a004a2028000")
FLAT_DATA = bytes.fromhex("a2028000")
OSATTR = "2:6.1,2:6.0,2:5.2,2:5.1"
needs_osslsigncode = needs("osslsigncode")


# ----------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """A package-like member set: PE drivers for every machine, text files, an empty file,
    a duplicate, and a PE with an odd length (padding rule)."""
    d = tmp_path_factory.mktemp("pkg")
    files = {}
    for machine in MACHINES:
        for kind in ("sys", "dll"):
            p = d / f"{machine}.{kind}"
            make_minimal_pe(p, machine=machine, kind=kind, payload=f"drv {machine} {kind}".encode())
            files[p.name] = p
    odd = d / "odd.sys"
    odd.write_bytes(make_minimal_pe(None, machine="arm", kind="sys", payload=b"odd") + b"123")
    files[odd.name] = odd
    texts = {
        "update.mum": b'<?xml version="1.0"?><assembly/>',
        "x.manifest": b"\xef\xbb\xbf<assembly manifestVersion='1.0'/>",
        "copy.txt": b'<?xml version="1.0"?><assembly/>',  # same bytes as update.mum
        "mz.txt": b"MZ but not a PE, just text",
        "empty.bin": b"",
    }
    for name, data in texts.items():
        (d / name).write_bytes(data)
        files[name] = d / name
    members = [CatalogMember(n, path=p) for n, p in sorted(files.items())]
    hashes = [member_hashes(m) for m in members]
    return {"dir": d, "files": files, "members": members, "hashes": hashes}


def v2(hashes, **kw):
    args = dict(package_name="Contoso.Drivers.Sample", test_package=False, this_update=WHEN)
    args.update(kw)
    return build_catalog_v2(hashes, **args)


def signify_ctl(der: bytes):
    signed_file = pytest.importorskip("signify.authenticode.signed_file")
    f = signed_file.AuthenticodeFile.from_stream(io.BytesIO(der))
    return f.ctl


# ----------------------------------------------------------------------------- member hashing


def test_member_hashes_kinds(package):
    by_name = dict(zip((m.name for m in package["members"]), package["hashes"], strict=True))
    files = package["files"]
    for name in ("arm64.sys", "x86.dll", "odd.sys"):
        h = by_name[name]
        assert h.kind == "pe"
        assert h.sha256 == authenticode_digest(files[name])
        assert h.sha1 == authenticode_digest(files[name], "sha1")
        assert h.sha256 != hashlib.sha256(files[name].read_bytes()).digest()
    for name in ("update.mum", "mz.txt", "empty.bin"):
        data = files[name].read_bytes()
        assert by_name[name] == MemberHash("flat", hashlib.sha256(data).digest(), hashlib.sha1(data).digest())
        assert by_name[name].size == len(data)
    # path and in-memory members hash alike
    data = files["arm.sys"].read_bytes()
    assert member_hashes(CatalogMember("mem", data=data)) == by_name["arm.sys"]


def test_member_hashes_errors(tmp_path):
    with pytest.raises(FFUError) as e:
        member_hashes(CatalogMember("gone", path=tmp_path / "gone.sys"))
    assert "gone.sys" in str(e.value)
    bad = bytearray(make_minimal_pe(None, machine="x86", kind="sys"))
    bad[0x80 + 24] = 0x77  # optional header magic
    with pytest.raises(FFUError) as e:
        member_hashes(CatalogMember("drivers/bad.sys", data=bytes(bad)))
    assert str(e.value).startswith("drivers/bad.sys: malformed PE image")
    with pytest.raises(ValueError):
        CatalogMember("x")


# ----------------------------------------------------------------------------- v2 structure


def test_signify_finds_every_member(package):
    der = v2(package["hashes"])
    ctl = signify_ctl(der)
    assert ctl.is_catalog
    assert ctl.subject_algorithm == hashlib.sha256
    assert ctl.list_identifier == parse_catalog(der).list_identifier
    assert ctl.this_update == WHEN
    for m in package["members"]:
        data = Path(m.path).read_bytes()
        if not data:
            assert ctl.find_subject(hashlib.sha256(data).digest()) is None
            continue
        is_driver = m.name.endswith((".sys", ".dll"))
        key = authenticode_digest(m.path) if is_driver else hashlib.sha256(data).digest()
        subject = ctl.find_subject(key)
        assert subject is not None, m.name
        assert set(subject.attributes) == {"microsoft_cat_memberinfo2", "microsoft_spc_indirect_data_content"}


def test_subjects_sorted_unique_and_shaped(package):
    hashes = package["hashes"]
    der = v2(hashes)
    cat = parse_catalog(der)
    unique = {h.sha256 for h in hashes if h.size}
    assert len(unique) == len(hashes) - 2  # empty file skipped, duplicate merged
    assert len(cat.subjects) == 2 * len(unique)
    assert list(cat.subject_order) == sorted(cat.subject_order)
    assert {len(i) for i in cat.subject_order} == {20, 32}
    for h in hashes:
        if not h.size:
            assert h.sha256 not in cat.subjects and h.sha1 not in cat.subjects
            continue
        assert cat.has_member(h)
        big, small = cat.subjects[h.sha256], cat.subjects[h.sha1]
        assert big.member_info2 == small.member_info2 == (b"\x80\x00" if h.kind == "pe" else b"\x82\x00")
        assert big.spc_data == (
            ("1.3.6.1.4.1.311.2.1.15", PE_DATA) if h.kind == "pe" else ("1.3.6.1.4.1.311.2.1.25", FLAT_DATA)
        )
        assert (big.digest_algorithm, big.digest) == ("sha256", h.sha256)
        assert (small.digest, small.spc_data, small.sip_guid) == (None, None, None)

    # Attribute SETs are DER-sorted; SHA-1 subjects carry exactly one attribute.
    ctl = signed_data_parts(der).ctl
    for ts in ctl["trusted_subjects"]:
        encoded = [a.dump() for a in ts["attributes"]]
        assert encoded == sorted(encoded)
        assert len(encoded) == (2 if len(ts["subject_identifier"].native) == 32 else 1)


def test_catalog_attributes_and_envelope(package):
    der = v2(package["hashes"])
    cat = parse_catalog(der)
    assert cat.version == 2 and not cat.signed
    assert cat.attributes == {"OSAttr": OSATTR, "PackageName": "Contoso.Drivers.Sample"}
    assert cat.package_name == "Contoso.Drivers.Sample"
    assert cat.this_update == WHEN
    # NameValue: BMPString name, flags 0x00010001, UTF-16LE value + NUL NUL
    nv = b"\x1e\x0c" + "OSAttr".encode("utf-16-be") + b"\x02\x03\x01\x00\x01"
    assert nv + b"\x04\x30" + OSATTR.encode("utf-16-le") + b"\0\0" in der
    assert "Contoso.Drivers.Sample".encode("utf-16-le") + b"\0\0" in der
    assert b"\x17\x0d240501123045Z" in der  # UTCTime
    parts = signed_data_parts(der)
    sd = parts.signed_data
    assert sd["version"].native == 1
    assert sd["digest_algorithms"].dump() == b"\x31\x00"
    assert sd["signer_infos"].dump() == b"\x31\x00"
    assert isinstance(sd["certificates"], asn1.Void)
    # eContent is an [0] EXPLICIT SEQUENCE, not an OCTET STRING; ctl_der is that SEQUENCE.
    ctl = ctl_der(der)
    assert ctl[0] == 0x30
    oid_ctl = bytes.fromhex("06092b0601040182370a01")
    i = der.index(oid_ctl) + len(oid_ctl)
    assert der[i] == 0xA0 and der.endswith(ctl + b"\x31\x00")
    assert CatalogContentInfo.load(der).dump(force=True) == der  # canonical DER


def test_debug_package_for_test_packages(package):
    cat = parse_catalog(v2(package["hashes"], test_package=True))
    assert cat.package_name == "DebugPackage"
    assert cat.attributes["OSAttr"] == OSATTR


def test_deterministic(package):
    hashes = package["hashes"]
    a = v2(hashes)
    assert a == v2(list(reversed(hashes)))
    naive = WHEN.replace(tzinfo=None, microsecond=999)
    assert a == v2(hashes, this_update=naive)
    assert a == v2(hashes, this_update=WHEN.astimezone(datetime.timezone(datetime.timedelta(hours=2))))
    assert a != v2(hashes, this_update=WHEN + datetime.timedelta(seconds=1))
    lid = parse_catalog(a).list_identifier
    assert len(lid) == 16
    assert parse_catalog(v2(hashes[:-3])).list_identifier != lid
    assert parse_catalog(v2(hashes, package_name="Other")).list_identifier != lid
    assert parse_catalog(v2(hashes, test_package=True)).list_identifier != lid
    fixed = bytes(range(16))
    assert parse_catalog(v2(hashes, list_identifier=fixed)).list_identifier == fixed
    with pytest.raises(FFUError):
        v2(hashes, list_identifier=b"short")
    with pytest.raises(FFUError):
        v2(hashes, this_update=datetime.datetime(2050, 1, 1, tzinfo=UTC))


def test_empty_and_duplicate_members():
    data = b"same"
    h = MemberHash("flat", hashlib.sha256(data).digest(), hashlib.sha1(data).digest(), 4)
    empty = MemberHash("flat", hashlib.sha256(b"").digest(), hashlib.sha1(b"").digest())  # size unknown
    cat = parse_catalog(v2([h, h, empty, h]))
    assert set(cat.subjects) == {h.sha256, h.sha1}
    cat = parse_catalog(v2([]))
    assert cat.subjects == {} and cat.package_name == "Contoso.Drivers.Sample"
    clash = MemberHash("pe", h.sha256, h.sha1, 4)
    with pytest.raises(FFUError):
        v2([h, clash])


def test_parse_rejects_garbage():
    for bad in (b"", b"\x30\x00", b"not asn1", b"\x30\x03\x02\x01\x01"):
        with pytest.raises(FFUError):
            parse_catalog(bad)
    # A valid CMS SignedData that is not a CTL
    sd = cms.ContentInfo(
        {
            "content_type": "signed_data",
            "content": {
                "version": "v1",
                "digest_algorithms": [],
                "encap_content_info": {"content_type": "data"},
                "signer_infos": [],
            },
        }
    ).dump()
    with pytest.raises(FFUError, match="not a CTL"):
        parse_catalog(sd)


def member(data: bytes) -> MemberHash:
    return member_hashes(CatalogMember("m", data=data))


def test_signature_hooks_reject_garbage():
    """signed_content/attach_signature_der walk the DER themselves: every malformed input is a
    one-line "not a valid catalog" error, never an IndexError or a silently wrong result."""
    good = v2([member(b"a")])
    bad_inputs = [
        b"",
        b"\x30",
        b"\x30\x00",
        b"not asn1",
        good[:-1],
        good + b"\x00",
        b"\x31" + good[1:],
        b"\x30\x84\xff\xff\xff\xff" + good[2:],
        b"\x30\x80" + good[2:],
        b"\x1f\x00",
    ]
    for i in range(2, len(good), 97):  # truncated lengths inside every layer
        bad_inputs.append(good[:i])
    for bad in bad_inputs:
        for fn in (signed_content, lambda d: attach_signature_der(d, signer_infos=[b"\x30\x00"])):
            with pytest.raises(FFUError, match="not a valid catalog"):
                fn(bad)


def test_attach_signature_der_keeps_the_ctl_and_sorts_sets():
    cat = v2([member(b"a"), member(b"b")])
    signed = attach_signature_der(
        cat, signer_infos=[b"\x30\x01\x02", b"\x30\x01\x01"], certificates=[b"\x30\x01\x09", b"\x30\x01\x03"]
    )
    assert ctl_der(signed) == ctl_der(cat) and signed_content(signed) == signed_content(cat)
    assert signed.index(b"\x30\x01\x03") < signed.index(b"\x30\x01\x09")
    assert signed.index(b"\x30\x01\x01") < signed.index(b"\x30\x01\x02")
    # certificates kept when none are given; unsigned again when no SignerInfo is given
    again = attach_signature_der(signed, signer_infos=[b"\x30\x01\x05"])
    assert b"\x30\x01\x09" in again and b"\x30\x01\x02" not in again
    assert attach_signature_der(cat, signer_infos=[]) == cat


# ----------------------------------------------------------------------------- v1


def test_v1_ffu_catalog_shape():
    """MakeCat's single-member catalog is 328 bytes, SHA-1 at offset 206."""
    table_hash = hashlib.sha1(b"hash table").digest()
    der = build_catalog_v1([("HashTable.blob", table_hash)], this_update=WHEN, list_identifier=bytes(16))
    assert len(der) == 328
    assert der[206:226] == table_hash
    cat = parse_catalog(der)
    assert cat.version == 1 and cat.attributes == {} and not cat.signed
    ident = "HashTable.blob".encode("utf-16-le") + b"\0\0"
    assert list(cat.subjects) == [ident]
    s = cat.subjects[ident]
    assert s.kind == "flat" and s.sip_guid == "{DE351A42-8E59-11D0-8C47-00C04FC295EE}"
    assert (s.digest_algorithm, s.digest, s.spc_data) == (
        "sha1",
        table_hash,
        ("1.3.6.1.4.1.311.2.1.25", FLAT_DATA),
    )
    # attributes: SpcIndirectDataContent sorts before MemberInfo; MemberInfo certVersion 512
    ts = signed_data_parts(der).ctl["trusted_subjects"][0]
    assert [a["type"].dotted for a in ts["attributes"]] == ["1.3.6.1.4.1.311.2.1.4", "1.3.6.1.4.1.311.12.2.2"]
    assert ts["attributes"][1]["values"][0]["cert_version"].native == 512
    assert b"\x06\x0a\x2b\x06\x01\x04\x01\x82\x37\x0c\x01\x02\x05\x00" in der  # CATALOG_LIST_MEMBER, NULL
    # constant size whatever the hash and time (ImgGen writes a provisional catalog first)
    assert (
        len(build_catalog_v1([("HashTable.blob", bytes(20))], this_update=datetime.datetime(1999, 1, 1)))
        == 328
    )

    ctl = signify_ctl(der)
    (subject,) = ctl.subjects
    assert subject.identifier_str == "HashTable.blob"
    assert ctl.find_subject(table_hash).identifier == subject.identifier


def test_v1_hash_labels_and_pe_kind():
    a, b = hashlib.sha1(b"a").digest(), hashlib.sha1(b"b").digest()
    der = build_catalog_v1([(None, b, "pe"), (None, a)], this_update=WHEN, attributes=[("OSAttr", OSATTR)])
    cat = parse_catalog(der)
    ids = [a.hex().upper().encode("utf-16-le") + b"\0\0", b.hex().upper().encode("utf-16-le") + b"\0\0"]
    assert list(cat.subject_order) == sorted(ids)
    assert len(ids[0]) == 82
    pe_subject = cat.subjects[ids[1]]
    assert pe_subject.kind == "pe" and pe_subject.sip_guid == "{C689AAB8-8E78-11D0-8C47-00C04FC295EE}"
    assert pe_subject.spc_data == ("1.3.6.1.4.1.311.2.1.15", PE_DATA)
    assert cat.attributes == {"OSAttr": OSATTR}
    with pytest.raises(ValueError):
        build_catalog_v1([("x", bytes(32))], this_update=WHEN)


# ----------------------------------------------------------------------------- independent signing


@pytest.fixture(scope="module")
def signed_catalog(package, pki, tmp_path_factory):
    require_tool("osslsigncode")
    d = tmp_path_factory.mktemp("cat")
    unsigned, signed = d / "update.cat", d / "update.signed.cat"
    unsigned.write_bytes(v2(package["hashes"]))
    r = run("osslsigncode", "sign", "-certs", pki["leaf"], "-key", pki["key"], "-h", "sha256",
            "-time", "1700000000", "-in", unsigned, "-out", signed)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    return unsigned, signed


@needs_osslsigncode
def test_osslsigncode_signs_and_verifies_catalog(signed_catalog, pki):
    unsigned, signed = signed_catalog
    r = run("osslsigncode", "verify", "-in", signed, "-CAfile", pki["root"])
    assert r.returncode == 0 and "Succeeded" in r.stdout, r.stdout + r.stderr
    # osslsigncode keeps our CTL bytes; its messageDigest covers the CTL's contents octets
    # (RFC 2315 §9.3), not the whole TLV.
    der = signed.read_bytes()
    assert ctl_der(der) == ctl_der(unsigned.read_bytes())
    assert ctl_der(der) == ctl_der(der)[:4] + signed_content(der) and ctl_der(der)[:2] == b"\x30\x82"
    (si,) = signed_data_parts(der).signed_data["signer_infos"]
    md = [a["values"][0].native for a in si["signed_attrs"] if a["type"].native == "message_digest"]
    assert md == [hashlib.sha256(signed_content(der)).digest()]
    assert md != [hashlib.sha256(ctl_der(der)).digest()]
    cat = parse_catalog(der)
    assert cat.signed
    assert cat.subjects == parse_catalog(unsigned.read_bytes()).subjects


@needs_osslsigncode
def test_osslsigncode_verifies_pe_members_against_catalog(signed_catalog, package, pki, tmp_path):
    _, signed = signed_catalog
    pes = [p for n, p in package["files"].items() if n.endswith((".sys", ".dll"))]
    assert len(pes) == 2 * len(MACHINES) + 1
    for p in pes:
        r = run("osslsigncode", "verify", "-catalog", signed, "-CAfile", pki["root"], "-in", p)
        assert r.returncode == 0 and "Succeeded" in r.stdout, (p.name, r.stdout + r.stderr)
    stranger = tmp_path / "stranger.sys"
    make_minimal_pe(stranger, machine="arm", kind="sys", payload=b"not in the catalog")
    r = run("osslsigncode", "verify", "-catalog", signed, "-CAfile", pki["root"], "-in", stranger)
    assert r.returncode != 0


def test_signify_verifies_osslsigncode_signed_catalog(signed_catalog, pki):
    x509 = pytest.importorskip("signify.x509")
    _, signed = signed_catalog
    store = x509.CertificateStore([x509.Certificate.from_pem(pki["root"].read_bytes())], trusted=True)
    ctl = signify_ctl(signed.read_bytes())
    ok, err = ctl.explain_verify(trusted_certificate_store=store)
    assert err is None, err


def _signer_info(der: bytes, pki) -> tuple[cms.SignerInfo, asn1_x509.Certificate]:
    """A minimal signing step built only from the hooks catalog.py exposes."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    leaf = asn1_x509.Certificate.load(pki["leaf_obj"].public_bytes(serialization.Encoding.DER))
    attrs = cms.CMSAttributes(
        [
            {"type": "content_type", "values": ["1.3.6.1.4.1.311.10.1"]},
            {"type": "message_digest", "values": [hashlib.sha256(signed_content(der)).digest()]},
        ]
    )
    signature = pki["leaf_key_obj"].sign(attrs.dump(), padding.PKCS1v15(), hashes.SHA256())
    si = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                name="issuer_and_serial_number",
                value={"issuer": leaf.issuer, "serial_number": leaf.serial_number},
            ),
            "digest_algorithm": algos.DigestAlgorithm({"algorithm": "sha256", "parameters": asn1.Null()}),
            "signed_attrs": attrs,
            "signature_algorithm": {"algorithm": "rsassa_pkcs1v15", "parameters": asn1.Null()},
            "signature": signature,
        }
    )
    return si, leaf


@needs_osslsigncode
def test_attach_signature_hook(package, pki, tmp_path):
    der = v2(package["hashes"])
    si, leaf = _signer_info(der, pki)
    signed = attach_signature(der, signer_infos=[si], certificates=[leaf])
    assert ctl_der(signed) == ctl_der(der)
    assert parse_catalog(signed).signed
    assert signed_data_parts(signed).signed_data["digest_algorithms"].dump() == bytes.fromhex(
        "310f300d06096086480165030402010500"
    )
    path = tmp_path / "hook.cat"
    path.write_bytes(signed)
    r = run("osslsigncode", "verify", "-in", path, "-CAfile", pki["root"])
    assert r.returncode == 0 and "Succeeded" in r.stdout, r.stdout + r.stderr
    r = run(
        "osslsigncode",
        "verify",
        "-catalog",
        path,
        "-CAfile",
        pki["root"],
        "-in",
        package["files"]["arm64.sys"],
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert attach_signature(signed, signer_infos=[]) != signed  # removable again
    assert parse_catalog(attach_signature(signed, signer_infos=[])).signed is False


# ----------------------------------------------------------------------------- property test

digests = st.tuples(
    st.sampled_from(["pe", "flat"]), st.binary(min_size=32, max_size=32), st.binary(min_size=20, max_size=20)
)


def test_a_lone_surrogate_in_the_package_name_is_refused():
    with pytest.raises(ConfigError, match="lone surrogate"):
        build_catalog_v2(
            [], package_name="P\ud800", test_package=False, this_update=datetime.datetime(2020, 1, 1)
        )


@settings(max_examples=60, deadline=None)
@given(
    items=st.lists(st.tuples(digests, st.integers(0, 3)), max_size=12),
    name=st.text(st.characters(exclude_characters="\0", exclude_categories=("Cs",)), min_size=1, max_size=40),
    test_package=st.booleans(),
    when=st.datetimes(
        min_value=datetime.datetime(1950, 1, 1), max_value=datetime.datetime(2049, 12, 31, 23, 59, 59)
    ),
)
def test_round_trip(items, name, test_package, when):
    members = [MemberHash(kind, s256, s1, size) for (kind, s256, s1), size in items]
    # identical digests must agree on kind and partner digest (they would come from identical files)
    by256: dict[bytes, tuple[str, bytes]] = {}
    by1: dict[bytes, bytes] = {}
    members = [
        m
        for m in members
        if by256.setdefault(m.sha256, (m.kind, m.sha1)) == (m.kind, m.sha1)
        and by1.setdefault(m.sha1, m.sha256) == m.sha256
    ]
    der = build_catalog_v2(members, package_name=name, test_package=test_package, this_update=when)
    cat = parse_catalog(der)
    kept = {m.sha256: m for m in members if m.size != 0}
    assert len(cat.subjects) == 2 * len(kept)
    assert list(cat.subject_order) == sorted(cat.subject_order)
    assert all(cat.has_member(m) for m in kept.values())
    assert cat.package_name == ("DebugPackage" if test_package else name)
    assert cat.this_update == when.replace(tzinfo=UTC, microsecond=0)
    assert (
        build_catalog_v2(
            list(reversed(members)), package_name=name, test_package=test_package, this_update=when
        )
        == der
    )
    assert ctl_der(der) in der


# ----------------------------------------------------------------------------- error kinds


def test_damaged_catalogs_are_format_errors():
    good = v2([member(b"a")])
    for bad in (good[: len(good) // 2], b"\x30\x84\xff\xff\xff\xff" + good[2:], b"not asn1"):
        with pytest.raises(FormatError, match="not a valid catalog"):
            signed_content(bad)
        with pytest.raises(FormatError):
            parse_catalog(bad)


def test_bad_catalog_settings_are_config_errors():
    hashes = [member(b"a")]
    with pytest.raises(ConfigError, match="NUL"):
        v2(hashes, package_name="Contoso\0Drivers")
    with pytest.raises(ConfigError, match="UTCTime range"):
        v2(hashes, this_update=datetime.datetime(2050, 1, 1, tzinfo=UTC))
    with pytest.raises(ConfigError, match="16 bytes"):
        v2(hashes, list_identifier=b"short")
    data = b"same"
    h = MemberHash("flat", hashlib.sha256(data).digest(), hashlib.sha1(data).digest(), 4)
    with pytest.raises(ConfigError, match="listed twice"):
        v2([h, MemberHash("pe", h.sha256, h.sha1, 4)])


def test_malformed_pe_member_is_a_format_error():
    bad = bytearray(make_minimal_pe(None, machine="x86", kind="sys"))
    bad[0x80 + 24] = 0x77  # optional header magic
    with pytest.raises(FormatError, match="malformed PE image"):
        member_hashes(CatalogMember("drivers/bad.sys", data=bytes(bad)))
