"""CAB writer/reader: checked against cabextract, 7z, gcab and osslsigncode, plus hostile inputs."""

from __future__ import annotations

import datetime
import hashlib
import os
import random
import struct
import subprocess
import tracemalloc
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ffuforge.errors import ConfigError, FFUError, FormatError, SigningError
from ffuforge.formats import cab
from ffuforge.formats.cab import (
    CFDATA,
    CFFILE,
    CFFOLDER,
    CFHEADER,
    CabMember,
    CabReader,
    append_signature,
    cab_checksum,
    cab_hash,
    cfdata_checksum,
    dos_datetime_of,
    insert_signature_reserve,
    write_cab,
)
from ffuforge.formats.cab import writer as cab_writer

from oracles import require_tool

TOOLS = ("cabextract", "7z", "gcab")


def need(tool: str) -> None:
    require_tool(tool)


def run(*args, cwd=None) -> str:
    p = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    assert p.returncode == 0, f"{args} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
    return p.stdout + p.stderr


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def ref_checksum(data: bytes, seed: int = 0) -> int:
    """Per-word reference of the CFDATA checksum, libmspack's cabd_checksum (slow on purpose)."""
    c = seed
    n = len(data) // 4
    for i in range(n):
        c ^= struct.unpack_from("<I", data, 4 * i)[0]
    rest = data[4 * n :]
    ul = 0
    for b in rest:
        ul = (ul << 8) | b
    return c ^ ul


# --- payload -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def payload(tmp_path_factory) -> tuple[list[CabMember], dict[str, bytes]]:
    """A mixed member set; returns the members and the expected extracted tree (posix paths)."""
    src = tmp_path_factory.mktemp("payload")
    rng = random.Random(1234)
    words = [
        bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(500)
    ]
    text = b"\n".join(b" ".join(rng.choice(words) for _ in range(12)) for _ in range(40000))[:2_000_000]
    files = {
        "update.mum": b"<assembly/>\n",
        "empty.txt": b"",
        "one.bin": b"x",
        "exact32768.bin": rng.randbytes(32768),
        "plus1_32769.bin": rng.randbytes(32769),
        "dir\\sub\\x.bin": rng.randbytes(3 * 1024 * 1024 + 123),
        "dir\\text.txt": text,
        "zeros.bin": bytes(100_000),
        "ünïcode.txt": "nön-ASCII content\n".encode(),
    }
    members = []
    for i, (name, data) in enumerate(files.items()):
        if i % 2:
            members.append(CabMember(name, data=data))
        else:
            p = src / f"src{i}"
            p.write_bytes(data)
            members.append(CabMember(name, source=p))
    return members, {k.replace("\\", "/"): v for k, v in files.items()}


VARIANTS = {
    "none": dict(compression="none"),
    "mszip": dict(compression="mszip"),
    "mszip-history": dict(compression="mszip", mszip_history=True),
    "none-multifolder": dict(compression="none", max_blocks_per_folder=98),
    "mszip-multifolder": dict(compression="mszip", max_blocks_per_folder=98),
    "none-reserve": dict(compression="none", reserve_signature=True),
    "mszip-reserve": dict(compression="mszip", reserve_signature=True, level=9),
}


def layout(data: bytes):
    h = CFHEADER.parse(data)
    folders = [CFFOLDER.parse(data[h.end + 8 * i : h.end + 8 * i + 8]) for i in range(h.cFolders)]
    return h, folders


# --- checksum ----------------------------------------------------------------------------------


@pytest.mark.parametrize("n", list(range(0, 70)) + [32768, 32769, 32770, 32771, 38912, 65535])
def test_checksum_matches_reference(n):
    data = random.Random(n).randbytes(n)
    assert cab_checksum(data) == ref_checksum(data)
    assert cab_checksum(data, 0x12345678) == ref_checksum(data, 0x12345678)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=5000))
def test_checksum_property(data):
    assert cab_checksum(data) == ref_checksum(data)


def test_cfdata_checksum_matches_gcab_output(tmp_path):
    """gcab writes real checksums; recompute every block's with ours."""
    need("gcab")
    (tmp_path / "a.bin").write_bytes(random.Random(5).randbytes(100_001))
    run("gcab", "-c", "-z", "g.cab", "a.bin", cwd=tmp_path)
    data = (tmp_path / "g.cab").read_bytes()
    h, folders = layout(data)
    pos = folders[0].coffCabStart
    checked = 0
    for _ in range(folders[0].cCFData):
        d = CFDATA.parse(data[pos : pos + 8])
        ab = data[pos + 8 : pos + 8 + d.cbData]
        if d.csum:
            assert cfdata_checksum(ab, d.cbData, d.cbUncomp) == d.csum
            checked += 1
        pos += 8 + d.cbData
    assert checked == folders[0].cCFData > 1


# --- writer vs independent tools ---------------------------------------------------------------


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def written(request, payload, tmp_path_factory):
    members, expected = payload
    out = tmp_path_factory.mktemp("cab") / f"{request.param}.cab"
    info = write_cab(out, members, **VARIANTS[request.param])
    return request.param, out, info, expected


def test_info_matches_file(written, payload):
    name, out, info, expected = written
    data = out.read_bytes()
    h, folders = layout(data)
    assert info.cb_cabinet == h.cbCabinet == len(data)
    assert info.num_folders == h.cFolders == len(folders)
    assert info.num_files == h.cFiles == len(expected)
    assert [m.name for m in info.members] == [m.name for m in payload[0]]
    assert h.setID == 0 and h.iCabinet == 0 and h.reserved1 == 0
    comp = 1 if "mszip" in name else 0
    assert all(f.typeCompress == comp for f in folders)
    if "multifolder" in name:
        limit = VARIANTS[name]["max_blocks_per_folder"]
        assert len(folders) > 2
        assert all(f.cCFData <= limit for f in folders)
    if "reserve" in name:
        assert h.flags == cab.FLAG_RESERVE_PRESENT
        assert data[36:60] == bytes([20, 0, 0, 0, 0, 0, 0x10, 0]) + bytes(16)
    else:
        assert h.flags == 0


@pytest.mark.parametrize("tool", TOOLS)
def test_tools_list_every_member(written, tool):
    need(tool)
    _name, out, _info, expected = written
    if tool == "cabextract":
        listing = run("cabextract", "-l", str(out))
    elif tool == "7z":
        listing = run("7z", "l", str(out))
    else:
        listing = run("gcab", "-t", str(out)).replace("\\", "/")
    for name in expected:
        assert name in listing, f"{tool} does not list {name}:\n{listing}"


@pytest.mark.parametrize("tool", TOOLS)
def test_tools_extract_identical(written, tool, tmp_path):
    need(tool)
    _name, out, _info, expected = written
    dest = tmp_path / "x"
    dest.mkdir()
    if tool == "cabextract":
        run("cabextract", "-q", "-d", str(dest), str(out))
    elif tool == "7z":
        run("7z", "x", "-y", f"-o{dest}", str(out))
    else:
        run("gcab", "-x", "-C", str(dest), str(out))
    assert tree(dest) == expected


def test_cabextract_test_mode_verifies_checksums(written):
    need("cabextract")
    _name, out, _info, expected = written
    report = run("cabextract", "-t", str(out))
    assert "All done, no errors." in report
    assert report.count(" OK ") == len(expected)


def test_cabextract_detects_corruption(written, tmp_path):
    """The checksums are real: flipping one payload byte is caught by libmspack."""
    need("cabextract")
    _name, out, _info, _expected = written
    data = bytearray(out.read_bytes())
    h, folders = layout(bytes(data))
    data[folders[0].coffCabStart + 8 + 20] ^= 0xFF
    bad = tmp_path / "bad.cab"
    bad.write_bytes(bytes(data))
    p = subprocess.run(["cabextract", "-t", str(bad)], capture_output=True, text=True)
    assert p.returncode != 0


def test_our_reader_roundtrip(written, tmp_path):
    _name, out, info, expected = written
    with CabReader(out) as r:
        assert [(m.name, m.size, m.folder, m.offset) for m in r.members] == [
            (m.name, m.size, m.folder, m.offset) for m in info.members
        ]
        for m in r.members:
            assert r.read(m.name) == expected[m.name.replace("\\", "/")]
        # out-of-order access restarts the folder cursor correctly
        for m in reversed(r.members):
            assert r.read(m) == expected[m.name.replace("\\", "/")]
        with r.open("dir\\text.txt") as f:
            head = f.read(100)
            rest = f.read()
        assert head + rest == expected["dir/text.txt"]
        paths = r.extract_all(tmp_path / "ours")
    assert tree(tmp_path / "ours") == expected
    assert sorted(p.relative_to(tmp_path / "ours").as_posix() for p in paths) == sorted(expected)


def test_deterministic(payload, tmp_path):
    members, _ = payload
    for kw in VARIANTS.values():
        write_cab(tmp_path / "a.cab", members, **kw)
        write_cab(tmp_path / "b.cab", members, **kw)
        assert (tmp_path / "a.cab").read_bytes() == (tmp_path / "b.cab").read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["a.cab", "b.cab"]  # no temp files left


def test_dates(tmp_path):
    m = [CabMember("a.txt", data=b"a")]
    write_cab(tmp_path / "d.cab", m)
    with CabReader(tmp_path / "d.cab") as r:
        e = r.members[0]
    assert (e.date, e.time) == (0x5021, 0x0000)
    assert e.mtime == 1577836800
    epoch = 1700000001  # 2023-11-14 22:13:21 UTC -> seconds rounded down to even
    write_cab(tmp_path / "e.cab", m, timestamp=epoch)
    with CabReader(tmp_path / "e.cab") as r:
        e = r.members[0]
    assert e.mtime == epoch - 1
    assert datetime.datetime.fromtimestamp(e.mtime, datetime.UTC).hour == 22
    write_cab(tmp_path / "f.cab", m, dos_datetime=(0x5021, 0x0001))
    with CabReader(tmp_path / "f.cab") as r:
        assert (r.members[0].date, r.members[0].time) == (0x5021, 1)
    with pytest.raises(FFUError, match="DOS date range"):
        dos_datetime_of(0)


def test_attribs_and_utf8_flag(tmp_path):
    write_cab(
        tmp_path / "a.cab",
        [CabMember("plain.txt", data=b"1", attribs=0x21), CabMember("zürich.txt", data=b"2")],
    )
    with CabReader(tmp_path / "a.cab") as r:
        assert [(m.name, m.attribs) for m in r.members] == [("plain.txt", 0x21), ("zürich.txt", 0xA0)]
    assert "zürich.txt".encode() in (tmp_path / "a.cab").read_bytes()


@pytest.mark.parametrize(
    "name",
    [
        "",
        "..\\evil",
        "a\\..\\b",
        "\\abs",
        "C:x",
        "c:\\x",
        "a\\\\b",
        "a\\",
        "nul\0x",
        "a/b",
        "CON",
        "dir\\aux.txt",
        "LPT1",
        "com9.log",
        "a\\.\\b",
        "trail.",
        "x" * 256,
        "q?.txt",
        "tab\there",
    ],
)
def test_writer_rejects_bad_names(tmp_path, name):
    with pytest.raises(FFUError):
        write_cab(tmp_path / "a.cab", [CabMember(name, data=b"")])
    assert os.listdir(tmp_path) == []


def test_writer_rejects_bad_member_sets(tmp_path):
    with pytest.raises(FFUError, match="duplicate"):
        write_cab(tmp_path / "a.cab", [CabMember("Dir\\A.txt", data=b""), CabMember("dir\\a.TXT", data=b"")])
    with pytest.raises(FFUError, match="at least one"):
        write_cab(tmp_path / "a.cab", [])
    with pytest.raises(FFUError, match="exactly one"):
        write_cab(tmp_path / "a.cab", [CabMember("a", data=b"", source=tmp_path)])
    with pytest.raises(FFUError, match="cannot read") as exc:
        write_cab(tmp_path / "a.cab", [CabMember("a", source=tmp_path / "missing")])
    assert exc.value.file == str(tmp_path / "missing")
    with pytest.raises(FFUError, match="not a regular file"):
        write_cab(tmp_path / "a.cab", [CabMember("a", source=tmp_path)])
    with pytest.raises(FFUError, match="compression"):
        write_cab(tmp_path / "a.cab", [CabMember("a", data=b"")], compression="lzx")
    assert os.listdir(tmp_path) == []


def test_zero_length_members_only(tmp_path):
    write_cab(tmp_path / "z.cab", [CabMember("a", data=b""), CabMember("b", data=b"")])
    with CabReader(tmp_path / "z.cab") as r:
        assert [r.read(m) for m in r.members] == [b"", b""]
        r.extract_all(tmp_path / "x")
    assert tree(tmp_path / "x") == {"a": b"", "b": b""}
    require_tool("cabextract")
    run("cabextract", "-t", str(tmp_path / "z.cab"))


def test_multifolder_split_points(tmp_path):
    """Files never straddle folders; a folder is closed before it would exceed the block limit."""
    members = [
        CabMember(f"f{i}", data=bytes([i]) * size) for i, size in enumerate([40000, 30000, 1, 65536, 0, 5])
    ]
    info = write_cab(tmp_path / "m.cab", members, max_blocks_per_folder=2)
    assert [(m.folder, m.offset) for m in info.members] == [
        (0, 0),
        (1, 0),
        (1, 30000),
        (2, 0),
        (2, 65536),
        (3, 0),
    ]
    assert info.num_folders == 4
    with pytest.raises(FFUError, match="does not fit in one folder"):
        write_cab(tmp_path / "n.cab", [CabMember("big", data=bytes(65537))], max_blocks_per_folder=2)


# --- reading CABs made by gcab -----------------------------------------------------------------


@pytest.mark.parametrize("zip_", [False, True], ids=["store", "mszip"])
def test_reader_reads_gcab(tmp_path, payload, zip_):
    need("gcab")
    _members, expected = payload
    src = tmp_path / "src"
    for name, data in expected.items():
        p = src / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    names = sorted(expected)
    run("gcab", "-c", *(["-z"] if zip_ else []), str(tmp_path / "g.cab"), *names, cwd=src)
    with CabReader(tmp_path / "g.cab") as r:
        assert sorted(m.name for m in r.members) == sorted(n.replace("/", "\\") for n in names)
        for m in r.members:
            assert r.read(m) == expected[m.name.replace("\\", "/")]
        r.extract_all(tmp_path / "x")
    assert tree(tmp_path / "x") == expected


# --- Authenticode layout -----------------------------------------------------------------------


def test_reserve_insert_equals_direct_write(payload, tmp_path):
    members, _ = payload
    for comp in ("none", "mszip"):
        write_cab(tmp_path / "u.cab", members, compression=comp, max_blocks_per_folder=98)
        write_cab(
            tmp_path / "r.cab", members, compression=comp, max_blocks_per_folder=98, reserve_signature=True
        )
        insert_signature_reserve(tmp_path / "u.cab", tmp_path / "i.cab")
        assert (tmp_path / "i.cab").read_bytes() == (tmp_path / "r.cab").read_bytes()
        u, i = (tmp_path / "u.cab").read_bytes(), (tmp_path / "i.cab").read_bytes()
        hu, fu = layout(u)
        hi, fi = layout(i)
        assert len(fu) > 1 and hi.cbCabinet == hu.cbCabinet + 24 and hi.coffFiles == hu.coffFiles + 24
        assert [f.coffCabStart + 24 for f in fu] == [f.coffCabStart for f in fi]
        with pytest.raises(FFUError, match="already has a reserve"):
            insert_signature_reserve(tmp_path / "r.cab", tmp_path / "j.cab")
        assert not (tmp_path / "j.cab").exists()


def test_cab_hash_unsigned(written):
    name, out, _info, _expected = written
    data = out.read_bytes()
    if "reserve" in name:
        want = hashlib.sha256(data[0:4] + data[8:34] + data[56:60] + data[60:]).digest()
    else:
        want = hashlib.sha256(data[0:4] + data[8:]).digest()
    assert cab_hash(out) == want
    assert (
        cab_hash(out, "sha1")
        == hashlib.sha1(
            (data[0:4] + data[8:])
            if "reserve" not in name
            else (data[0:4] + data[8:34] + data[56:60] + data[60:])
        ).digest()
    )


def test_append_signature_and_hash_invariance(payload, tmp_path):
    members, expected = payload
    write_cab(tmp_path / "u.cab", members, compression="mszip")
    insert_signature_reserve(tmp_path / "u.cab", tmp_path / "r.cab")
    before = cab_hash(tmp_path / "r.cab")
    size = (tmp_path / "r.cab").stat().st_size
    blob = bytes(range(1, 17))
    append_signature(tmp_path / "r.cab", blob, tmp_path / "s.cab")
    s = (tmp_path / "s.cab").read_bytes()
    assert s[size:] == blob and len(s) == size + 16
    assert struct.unpack_from("<II", s, 44) == (size, 16)
    assert cab_hash(tmp_path / "s.cab") == before
    # padding to a multiple of 8, and replacing an existing signature in place
    append_signature(tmp_path / "s.cab", b"\x30\x03abc")
    s2 = (tmp_path / "s.cab").read_bytes()
    assert len(s2) == size + 8 and s2[size:] == b"\x30\x03abc\0\0\0"
    assert struct.unpack_from("<II", s2, 44) == (size, 8)
    assert cab_hash(tmp_path / "s.cab") == before
    # the hash skips sigLen and the bytes after sigLen in the skipped range
    patched = bytearray(s2)
    patched[48:52] = b"\xff\xff\x00\x00"
    (tmp_path / "p.cab").write_bytes(bytes(patched))
    assert cab_hash(tmp_path / "p.cab") == before
    patched[60 + 2] ^= 1  # a hashed byte (first CFFOLDER) does change it
    (tmp_path / "q.cab").write_bytes(bytes(patched))
    assert cab_hash(tmp_path / "q.cab") != before
    with pytest.raises(FFUError, match="no signature reserve"):
        append_signature(tmp_path / "u.cab", blob)
    for tool in ("cabextract", "7z"):
        require_tool(tool)
        dest = tmp_path / f"x-{tool}"
        dest.mkdir()
        if tool == "cabextract":
            run("cabextract", "-q", "-d", str(dest), str(tmp_path / "s.cab"))
        else:
            p = subprocess.run(["7z", "x", "-y", f"-o{dest}", str(tmp_path / "s.cab")], capture_output=True)
            assert p.returncode in (0, 1), p  # 1 = warnings (extra bytes after the cabinet)
        assert tree(dest) == expected
    with CabReader(tmp_path / "s.cab") as r:
        assert {m.name.replace("\\", "/"): r.read(m) for m in r.members} == expected


def _der_len(blob: bytes) -> int:
    n = blob[1]
    if n < 0x80:
        return 2 + n
    k = n & 0x7F
    return 2 + k + int.from_bytes(blob[2 : 2 + k], "big")


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ffuforge CAB test (TEST ONLY)")])
    now = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=36500))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .sign(key, hashes.SHA256())
    )
    kp, cp = tmp_path / "k.pem", tmp_path / "c.pem"
    kp.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    cp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return kp, cp


@pytest.mark.parametrize("comp", ["none", "mszip"])
def test_osslsigncode_agrees(payload, tmp_path, comp):
    """osslsigncode's signed output == our reserve insertion + append_signature, and the
    SpcIndirectDataContent digest == cab_hash."""
    need("osslsigncode")
    from asn1crypto import cms, core

    members, expected = payload
    write_cab(tmp_path / "u.cab", members, compression=comp, max_blocks_per_folder=98)
    key, cert = _self_signed(tmp_path)
    run(
        "osslsigncode",
        "sign",
        "-certs",
        str(cert),
        "-key",
        str(key),
        "-h",
        "sha256",
        "-time",
        "1600000000",
        "-in",
        str(tmp_path / "u.cab"),
        "-out",
        str(tmp_path / "s.cab"),
    )
    signed = (tmp_path / "s.cab").read_bytes()
    sig_off, sig_len = struct.unpack_from("<II", signed, 44)
    blob = signed[sig_off : sig_off + sig_len]
    der = blob[: _der_len(blob)]

    insert_signature_reserve(tmp_path / "u.cab", tmp_path / "r.cab")
    append_signature(tmp_path / "r.cab", der, tmp_path / "ours.cab")
    assert (tmp_path / "ours.cab").read_bytes() == signed

    sd = cms.ContentInfo.load(der)["content"]
    assert sd["encap_content_info"]["content_type"].dotted == "1.3.6.1.4.1.311.2.1.4"
    indirect = sd["encap_content_info"]["content"]  # SpcIndirectDataContent
    # Once signify is loaded (other test modules), asn1crypto already decodes this content type.
    indirect = indirect.parsed if hasattr(indirect, "parsed") else indirect
    assert isinstance(indirect[1][1], core.OctetString)
    digest = indirect[1][1].native  # DigestInfo.digest
    assert digest == cab_hash(tmp_path / "s.cab") == cab_hash(tmp_path / "r.cab")
    out = run("osslsigncode", "verify", "-in", str(tmp_path / "ours.cab"), "-CAfile", str(cert))
    assert digest.hex().upper() in out
    with CabReader(tmp_path / "s.cab") as r:
        assert {m.name.replace("\\", "/"): r.read(m) for m in r.members} == expected


# --- limits, memory, atomicity -----------------------------------------------------------------


def test_refuses_file_over_limit(tmp_path):
    big = tmp_path / "src" / "big"
    big.parent.mkdir()
    with open(big, "wb") as f:
        f.truncate(cab.MAX_FILE_SIZE + 1)  # sparse: no disk used
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(FFUError, match="limited to"):
        write_cab(out / "a.cab", [CabMember("big", source=big)])
    assert os.listdir(out) == []


def test_refuses_cabinet_over_2gib_before_writing(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    members = []
    for i in range(2):
        p = src / f"half{i}"
        with open(p, "wb") as f:
            f.truncate(0x40000000)
        members.append(CabMember(f"half{i}", source=p))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(FFUError, match="limited to 2147483647") as exc:
        write_cab(out / "a.cab", members)
    assert exc.value.file == str(out / "a.cab")
    assert os.listdir(out) == []


def test_mszip_over_limit_aborts_and_cleans_up(tmp_path, monkeypatch):
    monkeypatch.setattr(cab_writer, "MAX_CABINET_SIZE", 200_000)  # the name write_cab reads
    data = random.Random(3).randbytes(1_000_000)
    with pytest.raises(FFUError, match="exceeds 200000"):
        write_cab(tmp_path / "a.cab", [CabMember("r", data=data)], compression="mszip")
    assert os.listdir(tmp_path) == []


def test_failed_write_keeps_previous_output(tmp_path):
    write_cab(tmp_path / "a.cab", [CabMember("a", data=b"old")])
    old = (tmp_path / "a.cab").read_bytes()
    with pytest.raises(FFUError):
        write_cab(tmp_path / "a.cab", [CabMember("a", data=b"new"), CabMember("b", source=tmp_path / "nope")])
    assert (tmp_path / "a.cab").read_bytes() == old
    assert os.listdir(tmp_path) == ["a.cab"]


def test_streaming_memory_is_bounded(tmp_path):
    big = tmp_path / "zeros"
    with open(big, "wb") as f:
        f.truncate(300 * 1024 * 1024)
    tracemalloc.start()
    try:
        info = write_cab(tmp_path / "big.cab", [CabMember("zeros", source=big), CabMember("b", data=b"b")])
        write_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        n = 0
        with CabReader(tmp_path / "big.cab") as r:
            for chunk in r.iter_chunks("zeros"):
                n += len(chunk)
            assert r.read("b") == b"b"
        read_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.cb_cabinet > 300 * 1024 * 1024
    assert n == 300 * 1024 * 1024
    assert write_peak < 20 * 1024 * 1024, write_peak
    assert read_peak < 20 * 1024 * 1024, read_peak


# --- hostile inputs ----------------------------------------------------------------------------


def raw_cab(
    files: list[tuple[bytes, int, int, int]],
    blocks: list[tuple[bytes, int]],
    *,
    comp: int = 0,
    flags: int = 0,
    reserve: tuple[int, int, int] | None = None,
    set_csum: bool = True,
    extra: bytes = b"",
) -> bytes:
    """Assemble a one-folder CAB without any validation. files: (name, size, offset, folder);
    blocks: (ab, cbUncomp)."""
    cbh, cbf, cbd = reserve or (0, 0, 0)
    hdr_len = 36 + (4 + cbh if reserve else 0) + len(extra)
    coff_files = hdr_len + 8 + cbf
    table = b"".join(
        CFFILE.build(
            dict(cbFile=s, uoffFolderStart=o, iFolder=fo, date=0x5021, time=0, attribs=0x20, szName=n)
        )
        for n, s, o, fo in files
    )
    data_start = coff_files + len(table)
    body = b""
    for ab, cu in blocks:
        csum = cfdata_checksum(ab, len(ab), cu) if set_csum else 0
        body += CFDATA.build(dict(csum=csum, cbData=len(ab), cbUncomp=cu)) + bytes(cbd) + ab
    total = data_start + len(body)
    head = bytearray(
        CFHEADER.build(
            dict(
                reserved1=0,
                cbCabinet=total,
                reserved2=0,
                coffFiles=coff_files,
                reserved3=0,
                versionMinor=3,
                versionMajor=1,
                cFolders=1,
                cFiles=len(files),
                flags=cab.FLAG_RESERVE_PRESENT if reserve else 0,
                setID=0,
                iCabinet=0,
                reserve=dict(cbCFHeader=cbh, cbCFFolder=cbf, cbCFData=cbd, abReserve=bytes(cbh))
                if reserve
                else None,
                prev=None,
                next=None,
            )
        )
    )
    struct.pack_into("<H", head, 30, flags | (cab.FLAG_RESERVE_PRESENT if reserve else 0))
    assert len(head) + len(extra) == hdr_len
    folder = CFFOLDER.build(dict(coffCabStart=data_start, cCFData=len(blocks), typeCompress=comp)) + bytes(
        cbf
    )
    return head + extra + folder + table + body


def mszip(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return b"CK" + c.compress(data) + c.flush()


def test_raw_builder_with_reserves_is_valid(tmp_path):
    """Per-folder and per-block reserves are skipped (cross-checked with cabextract)."""
    a, b = b"A" * 40000, b"hello"
    data = a + b
    blob = raw_cab(
        [(b"a.txt", len(a), 0, 0), (b"b.txt", len(b), len(a), 0)],
        [(mszip(data[:32768]), 32768), (mszip(data[32768:]), len(data) - 32768)],
        comp=1,
        reserve=(6, 4, 8),
    )
    p = tmp_path / "r.cab"
    p.write_bytes(blob)
    with CabReader(p) as r:
        assert r.read("a.txt") == a and r.read("b.txt") == b
    require_tool("cabextract")
    run("cabextract", "-q", "-d", str(tmp_path / "x"), str(p))
    assert tree(tmp_path / "x") == {"a.txt": a, "b.txt": b}


def open_all(p: Path, dest: Path | None = None) -> None:
    with CabReader(p) as r:
        for m in r.members:
            r.read(m)
        if dest is not None:
            r.extract_all(dest)


@pytest.fixture
def good(tmp_path) -> bytes:
    members = [
        CabMember("a.txt", data=b"alpha" * 9000),
        CabMember("dir\\b.bin", data=random.Random(9).randbytes(70000)),
    ]
    write_cab(tmp_path / "good.cab", members)
    return (tmp_path / "good.cab").read_bytes()


def expect_error(tmp_path: Path, blob: bytes, match: str) -> FFUError:
    p = tmp_path / "bad.cab"
    p.write_bytes(blob)
    outside = tmp_path / "outside"
    outside.mkdir(exist_ok=True)
    with pytest.raises(FFUError, match=match) as exc:
        open_all(p, tmp_path / "dest")
    assert exc.value.file == str(p)
    assert os.listdir(outside) == []
    return exc.value


@pytest.mark.parametrize("cut", [0, 10, 35, 40, 60, 100, 5000, -1])
def test_truncated(tmp_path, good, cut):
    expect_error(tmp_path, good[:cut], "truncated|outside|cannot fit")


def test_bad_signature(tmp_path, good):
    expect_error(tmp_path, b"MSCX" + good[4:], "not a cabinet")


def test_coff_files_past_eof(tmp_path, good):
    blob = bytearray(good)
    struct.pack_into("<I", blob, 16, len(good) + 100)
    expect_error(tmp_path, bytes(blob), "coffFiles")


def test_cfiles_huge(tmp_path, good):
    blob = bytearray(good)
    struct.pack_into("<H", blob, 28, 0xFFFF)
    expect_error(tmp_path, bytes(blob), "cannot fit|truncated")


def test_cfolders_huge(tmp_path, good):
    blob = bytearray(good)
    struct.pack_into("<H", blob, 26, 0xFFFF)
    expect_error(tmp_path, bytes(blob), "outside|cannot fit")


def test_cfdata_count_huge(tmp_path, good):
    blob = bytearray(good)
    h, _ = layout(good)
    struct.pack_into("<H", blob, h.end + 4, 0xFFFF)
    expect_error(tmp_path, bytes(blob), "cannot fit")


def test_cbuncomp_too_large(tmp_path, good):
    blob = bytearray(good)
    _h, folders = layout(good)
    struct.pack_into("<H", blob, folders[0].coffCabStart + 6, 40000)
    expect_error(tmp_path, bytes(blob), "cbUncomp 40000")


def test_checksum_mismatch_names_member(tmp_path, good):
    blob = bytearray(good)
    _h, folders = layout(good)
    blob[folders[0].coffCabStart + 8 + 5] ^= 1
    err = expect_error(tmp_path, bytes(blob), "checksum mismatch")
    assert "'a.txt'" in err.message and "folder 0" in err.message


def test_member_size_lies(tmp_path, good):
    h, _ = layout(good)
    blob = bytearray(good)
    # second CFFILE entry: 'a.txt' is 16+6 bytes
    off = h.coffFiles + 16 + len(b"a.txt") + 1
    size, uoff = struct.unpack_from("<II", blob, off)
    struct.pack_into("<I", blob, off, size + 1000)  # still inside blocks*32768
    expect_error(tmp_path, bytes(blob), "extends past the end of folder 0")
    struct.pack_into("<I", blob, off, 0x7FFF0000)
    expect_error(tmp_path, bytes(blob), "extends past the end of folder 0")


def test_mszip_block_inflates_beyond_cbuncomp(tmp_path):
    blob = raw_cab([(b"a", 100, 0, 0)], [(mszip(bytes(32768)), 100)], comp=1)
    expect_error(tmp_path, blob, "inflates to more than the declared 100")


def test_mszip_bomb_is_not_inflated(tmp_path):
    bomb = b"CK" + zlib.compress(bytes(30 * 1024 * 1024), 9)[2:-4]  # raw deflate of 30 MiB zeros
    assert len(bomb) < cab.MAX_MSZIP_CBDATA
    blob = raw_cab([(b"a", 32768, 0, 0)], [(bomb, 32768)], comp=1)
    tracemalloc.start()
    try:
        expect_error(tmp_path, blob, "inflates to more")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024


def test_mszip_garbage(tmp_path):
    expect_error(
        tmp_path, raw_cab([(b"a", 10, 0, 0)], [(b"CK\xff\xff\xff\xff", 10)], comp=1), "corrupt MSZIP"
    )
    expect_error(
        tmp_path, raw_cab([(b"a", 10, 0, 0)], [(b"XX" + mszip(b"0123456789")[2:], 10)], comp=1), "'CK'"
    )


@pytest.mark.parametrize(
    "comp,match",
    [
        (7, "compression type #7 is not supported; re-pack the CAB with LZX, MSZIP or none"),
        (3 | (14 << 8), r"LZX window 2\^14 is outside 2\^15..2\^21"),
        (3 | (22 << 8), r"LZX window 2\^22 is outside"),
        (2 | (9 << 8), r"Quantum window 2\^9 is outside 2\^10..2\^21"),
        (3 | (21 << 8), r"folder 0: corrupt LZX data in bytes 0..10 of the folder \(libmspack: "),
    ],
)
def test_unsupported_or_corrupt_compression(tmp_path, comp, match):
    blob = raw_cab([(b"a", 10, 0, 0)], [(b"0123456789", 10)], comp=comp)
    p = tmp_path / "l.cab"
    p.write_bytes(blob)
    with CabReader(p) as r:
        assert r.members[0].name == "a"  # listing still works
        with pytest.raises(FormatError, match=match):
            r.read("a")
        with pytest.raises(FormatError, match=match):
            r.extract_all(tmp_path / "x")
    assert not (tmp_path / "x").exists() or os.listdir(tmp_path / "x") == []


def test_quantum_garbage_decodes_deterministically(tmp_path):
    """Quantum has no integrity check of its own (only CFDATA checksums): garbage decodes to
    something, as in cabextract, which copies whatever its uninitialised window held for matches
    that reach before the stream's start. Our libmspack allocations are zeroed: always zeros."""
    p = tmp_path / "q.cab"
    p.write_bytes(raw_cab([(b"a", 10, 0, 0)], [(b"0123456789", 10)], comp=2 | (4 << 4) | (21 << 8)))
    runs = set()
    for _ in range(3):
        with CabReader(p) as r:
            runs.add(r.read("a"))
    assert runs == {bytes(10)}
    require_tool("cabextract")
    assert len(subprocess.run(["cabextract", "-p", str(p)], capture_output=True, check=True).stdout) == 10


def test_spanned_cabinets_refused(tmp_path):
    blob = raw_cab([(b"a", 1, 0, 0)], [(b"a", 1)], flags=cab.FLAG_NEXT_CABINET, extra=b"next.cab\0disk\0")
    expect_error(tmp_path, blob, "multi-cabinet")
    blob = raw_cab([(b"a", 1, 0, 0xFFFE)], [(b"a", 1)])
    expect_error(tmp_path, blob, "another cabinet")


def test_uncomputed_checksum_accepted(tmp_path):
    blob = raw_cab([(b"a", 3, 0, 0)], [(b"abc", 3)], set_csum=False)
    p = tmp_path / "z.cab"
    p.write_bytes(blob)
    with CabReader(p) as r:
        assert r.read("a") == b"abc"


@pytest.mark.parametrize(
    "name",
    [
        b"..\\evil",
        b"a\\..\\..\\evil",
        b"\\x",
        b"/x",
        b"C:x",
        b"CON",
        b"nul.txt",
        b"a/../../x",
        b"x\\",
        b"",
        b"a\\\\b",
        b"COM1\\x",
    ],
)
def test_extract_refuses_bad_names(tmp_path, name):
    blob = raw_cab([(b"ok.txt", 1, 0, 0), (name, 2, 1, 0)], [(b"abc", 3)])
    err = expect_error(tmp_path, blob, "refusing to extract member")
    assert repr(name.decode())[1:-1] in err.message or name == b""
    assert not (tmp_path / "dest").exists() or os.listdir(tmp_path / "dest") == []
    assert not (tmp_path / "evil").exists()


def test_extract_refuses_duplicates(tmp_path):
    blob = raw_cab([(b"dir\\A.txt", 1, 0, 0), (b"DIR/a.txt", 2, 1, 0)], [(b"abc", 3)])
    expect_error(tmp_path, blob, "duplicate member name")
    p = tmp_path / "bad.cab"
    with CabReader(p) as r, pytest.raises(FFUError, match="no member"):
        r.read("nope")
    blob = raw_cab([(b"same", 1, 0, 0), (b"same", 2, 1, 0)], [(b"abc", 3)])
    p.write_bytes(blob)
    with CabReader(p) as r, pytest.raises(FFUError, match="more than once"):
        r.read("same")


def test_extract_does_not_follow_symlinks(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "link").symlink_to(outside, target_is_directory=True)
    (outside / "target").write_bytes(b"keep")
    (dest / "file").symlink_to(outside / "target")
    p = tmp_path / "s.cab"
    p.write_bytes(raw_cab([(b"file", 1, 0, 0)], [(b"x", 1)]))
    with CabReader(p) as r:
        r.extract_all(dest)  # replaces the symlink, never writes through it
    assert (outside / "target").read_bytes() == b"keep"
    assert not (dest / "file").is_symlink() and (dest / "file").read_bytes() == b"x"
    p.write_bytes(raw_cab([(b"link\\x", 1, 0, 0)], [(b"x", 1)]))
    with CabReader(p) as r, pytest.raises(FFUError, match="not a plain directory"):
        r.extract_all(dest)
    assert sorted(os.listdir(outside)) == ["target"]


def test_read_size_limit(tmp_path):
    write_cab(tmp_path / "a.cab", [CabMember("a", data=bytes(1000))])
    with CabReader(tmp_path / "a.cab") as r:
        with pytest.raises(FFUError, match="more than the 999 allowed"):
            r.read("a", max_size=999)
        assert len(r.read("a", max_size=None)) == 1000


def test_not_a_file(tmp_path):
    with pytest.raises(FFUError, match="cannot open"):
        CabReader(tmp_path / "missing.cab")
    with pytest.raises(FFUError, match="not a regular file|cannot open"):
        CabReader(tmp_path)


# --- error kinds ------------------------------------------------------------------------------


def test_damaged_cabinets_are_format_errors(tmp_path, good):
    """Truncation, a wrong signature and a corrupt block are bad bytes: FormatError, also when the
    reader adds the member's name to a block error."""
    for blob in (good[:100], b"MSCX" + good[4:]):
        (tmp_path / "bad.cab").write_bytes(blob)
        with pytest.raises(FormatError):
            CabReader(tmp_path / "bad.cab")
        with pytest.raises(FormatError):
            cab_hash(tmp_path / "bad.cab")
    blob = bytearray(good)
    _h, folders = layout(good)
    blob[folders[0].coffCabStart + 8 + 5] ^= 1
    (tmp_path / "bad.cab").write_bytes(blob)
    with CabReader(tmp_path / "bad.cab") as r, pytest.raises(FormatError, match="'a.txt'.*checksum"):
        r.read("a.txt")


def test_bad_writer_settings_are_config_errors(tmp_path):
    member = CabMember("a.txt", data=b"a")
    with pytest.raises(ConfigError, match="compression"):
        write_cab(tmp_path / "a.cab", [member], compression="lzx")
    with pytest.raises(ConfigError, match="path segment"):
        write_cab(tmp_path / "a.cab", [CabMember("..\\a.txt", data=b"a")])
    with pytest.raises(ConfigError, match="duplicate"):
        write_cab(tmp_path / "a.cab", [member, CabMember("A.TXT", data=b"b")])
    with pytest.raises(ConfigError, match="DOS date range"):
        dos_datetime_of(0)
    write_cab(tmp_path / "a.cab", [member])
    with CabReader(tmp_path / "a.cab") as r, pytest.raises(ConfigError, match="no member named"):
        r.read("b.txt")
    assert os.listdir(tmp_path) == ["a.cab"]


def test_signature_problems_are_signing_or_format_errors(tmp_path):
    write_cab(tmp_path / "plain.cab", [CabMember("a", data=b"a")])
    write_cab(tmp_path / "ready.cab", [CabMember("a", data=b"a")], reserve_signature=True)
    with pytest.raises(SigningError, match="empty signature"):
        append_signature(tmp_path / "ready.cab", b"")
    with pytest.raises(FormatError, match="no signature reserve"):
        append_signature(tmp_path / "plain.cab", b"blob")
    with pytest.raises(FormatError, match="already has a reserve"):
        insert_signature_reserve(tmp_path / "ready.cab", tmp_path / "out.cab")
