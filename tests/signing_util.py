"""Shared helpers for the signing and verification tests: throwaway certificates, packages, tools."""

from __future__ import annotations

import datetime
import hashlib
import io
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ffuforge.formats import cab, catalog, pe
from ffuforge.package.build import BuildSettings, build_variant

from helpers import plan, wm
from oracles import needs

UTC = datetime.UTC
EPOCH = 1700000000  # 2023-11-14, inside every good test certificate's validity
START = datetime.datetime(2020, 1, 1, tzinfo=UTC)
END = datetime.datetime(2049, 12, 31, tzinfo=UTC)
PEM = serialization.Encoding.PEM

needs_osslsigncode = needs("osslsigncode")


def run(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, check=False, **kw)


def ossl_verify(*args) -> subprocess.CompletedProcess:
    """`osslsigncode verify ...`; returns the process (check .returncode / 'Succeeded')."""
    return run("osslsigncode", "verify", *args)


def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def _usage(**on: bool) -> x509.KeyUsage:
    names = (
        "digital_signature content_commitment key_encipherment data_encipherment key_agreement "
        "key_cert_sign crl_sign encipher_only decipher_only"
    ).split()
    return x509.KeyUsage(**{**dict.fromkeys(names, False), **on})


def issue(
    cn: str,
    key,
    issuer: tuple[x509.Certificate, object] | None = None,
    *,
    ca: bool = False,
    start: datetime.datetime = START,
    end: datetime.datetime = END,
    eku: list | None = None,
    digital_signature: bool = True,
) -> x509.Certificate:
    """A certificate for `key`, signed by `issuer` (cert, key) or self-signed."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    issuer_name, issuer_key = (issuer[0].subject, issuer[1]) if issuer else (subject, key)
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        b = b.add_extension(_usage(key_cert_sign=True, crl_sign=True), critical=True)
    else:
        b = b.add_extension(
            _usage(digital_signature=digital_signature, key_encipherment=not digital_signature), critical=True
        )
        b = b.add_extension(x509.ExtendedKeyUsage(eku or [ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def write_cert(path: Path, *certs: x509.Certificate) -> Path:
    path.write_bytes(b"".join(c.public_bytes(PEM) for c in certs))
    return path


def write_key(path: Path, key, password: str | None = None) -> Path:
    enc = (
        serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
    )
    path.write_bytes(key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, enc))
    return path


# ----------------------------------------------------------------------------- packages


def package_files(directory: Path) -> dict[str, bytes]:
    """Members of a small hand-made package: mum, manifest, two PE payloads, a flat payload."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "update.mum": b'<?xml version="1.0" encoding="utf-8"?>\r\n<assembly manifestVersion="1.0"/>\r\n',
        "Contoso.Pkg.manifest": b'<?xml version="1.0"?>\r\n<assembly><file name="drv.sys"/></assembly>\r\n',
        "drv.sys": pe.make_minimal_pe(None, machine="arm64", kind="sys", payload=b"driver"),
        "x86.dll": pe.make_minimal_pe(None, machine="x86", kind="dll", payload=b"library"),
        "data\\settings.bin": bytes(range(256)) * 40,
    }
    return files


def write_package(
    out: Path,
    files: dict[str, bytes],
    signer=None,
    *,
    epoch: int = EPOCH,
    catalog_der: bytes | None = None,
    sign_cab: bool = True,
) -> Path:
    """A package CAB: update.mum, update.cat (signed when `signer`), then the other members."""
    if catalog_der is None:
        hashes_ = [catalog.member_hashes(catalog.CatalogMember(n, data=d)) for n, d in files.items()]
        catalog_der = catalog.build_catalog_v2(
            hashes_,
            package_name="Contoso.Pkg",
            test_package=False,
            this_update=datetime.datetime.fromtimestamp(epoch, UTC),
        )
        if signer is not None:
            catalog_der = signer.sign_catalog(catalog_der, epoch=epoch)
    members = [
        cab.CabMember("update.mum", data=files["update.mum"]),
        cab.CabMember("update.cat", data=catalog_der),
    ]
    members += [cab.CabMember(n, data=d) for n, d in files.items() if n != "update.mum"]
    out.parent.mkdir(parents=True, exist_ok=True)
    unsigned = out.with_suffix(".unsigned.cab")
    cab.write_cab(unsigned, members, timestamp=epoch)
    if signer is not None and sign_cab:
        signer.sign_cab(unsigned, out, epoch=epoch)
        unsigned.unlink()
    else:
        unsigned.replace(out)
    return out


def read_members(path: Path) -> dict[str, bytes]:
    with cab.CabReader(path) as r:
        return {m.name: r.read(m) for m in r.members}


def repack(
    src: Path,
    dst: Path,
    signer,
    *,
    replace: dict[str, bytes] | None = None,
    add: dict[str, bytes] | None = None,
    epoch: int = EPOCH,
) -> Path:
    """Rebuild a package CAB with some members replaced/added (catalog kept) and sign the CAB."""
    members = {**read_members(src), **(replace or {}), **(add or {})}
    unsigned = dst.with_suffix(".unsigned.cab")
    cab.write_cab(unsigned, [cab.CabMember(n, data=d) for n, d in members.items()], timestamp=epoch)
    if signer is None:
        unsigned.replace(dst)
    else:
        signer.sign_cab(unsigned, dst, epoch=epoch)
        unsigned.unlink()
    return dst


def pkgbuild_package(tmp: Path, signer, *, epoch: int = EPOCH) -> tuple[Path, dict[str, bytes]]:
    """Build a CAB with ffuforge.package.build from a tiny project, then sign its catalog and the CAB
    (the order pkgbuild will use once signing is wired in)."""
    src = tmp / "project"
    src.mkdir(parents=True, exist_ok=True)
    (src / "readme.txt").write_text("hello\n")
    pe.make_minimal_pe(src / "drv.sys", machine="arm64", kind="sys", payload=b"drv")
    pe.make_minimal_pe(src / "tool.exe", machine="amd64", kind="exe", payload=b"tool")
    body = (
        '<files><file source=".\\readme.txt"/><file source=".\\drv.sys" destinationDir="$(runtime.drivers)"/>'
        '<file source=".\\tool.exe"/></files>'
    )
    v = plan(wm(src, body))[0]
    built = tmp / "built" / v.cab_name
    build_variant(v, built, BuildSettings(epoch=epoch))
    members = read_members(built)
    members["update.cat"] = signer.sign_catalog(members["update.cat"], epoch=epoch)
    unsigned = tmp / "unsigned" / v.cab_name
    unsigned.parent.mkdir(exist_ok=True)
    cab.write_cab(unsigned, [cab.CabMember(n, data=d) for n, d in members.items()], timestamp=epoch)
    out = tmp / "signed" / v.cab_name
    signer.sign_cab(unsigned, out, epoch=epoch)
    return out, members


# ----------------------------------------------------------------------------- signify


def signify_ctl(der: bytes):
    signed_file = pytest.importorskip("signify.authenticode.signed_file")
    return signed_file.AuthenticodeFile.from_stream(io.BytesIO(der)).ctl


def signify_store(*certs: x509.Certificate):
    sx509 = pytest.importorskip("signify.x509")
    return sx509.CertificateStore(
        [sx509.Certificate.from_pem(c.public_bytes(PEM)) for c in certs], trusted=True
    )


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()
