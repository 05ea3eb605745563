"""Verify what the signing stage produced: CAB Authenticode, the `update.cat` signature, and that
the catalog lists every member as it is stored.

A package is only as good as the weakest of those three checks on a device: Windows checks the
CAB signature on install and each file against the catalog afterwards, so a report names the
member or signature that fails. Independent of the signer (works for osslsigncode/signtool
output too) and of signify/OpenSSL: the CMS checks are done here with asn1crypto parsing and
`cryptography` primitives, so the build can run them without test-only packages.

Trust: with `trusted_roots` the signer's chain (built from the certificates in the signature)
must end at one of them; without, the chain only has to be internally consistent (every
included issuer really signed its child). Certificates must be valid at the signed
signingTime (at the current time when there is none); timestamps are not evaluated.
"""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from asn1crypto import cms
from asn1crypto import core as asn1
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..errors import FFUError, FormatError, SigningError
from ..formats import cab, catalog, pe

__all__ = ["VerifyReport", "load_certificates", "verify_cab", "verify_catalog", "verify_pe"]

OID_SPC_INDIRECT_DATA = "1.3.6.1.4.1.311.2.1.4"
OID_SPC_PE_IMAGE_DATA = "1.3.6.1.4.1.311.2.1.15"
OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
OID_CONTENT_TYPE = "1.2.840.113549.1.9.3"
OID_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
OID_SIGNING_TIME = "1.2.840.113549.1.9.5"
WIN_CERT_TYPE_PKCS_SIGNED_DATA = 2
CATALOG_NAME = "update.cat"

_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
_MAX_CHAIN = 10
_MEMBER_IN_MEMORY = 64 << 20  # larger members are hashed from a temporary file


@dataclass
class VerifyReport:
    """Result for one file: `problems` are `<member or signature>: <what is wrong>` lines."""

    path: str
    problems: list[str] = field(default_factory=list)
    signers: list[str] = field(default_factory=list)  # subjects of the signing certificates seen

    @property
    def ok(self) -> bool:
        return not self.problems


# ----------------------------------------------------------------------------- ASN.1 plumbing


class _Encapsulated(asn1.Sequence):
    _fields = [
        ("content_type", asn1.ObjectIdentifier),
        ("content", asn1.Any, {"explicit": 0, "optional": True}),
    ]


class _SignedData(asn1.Sequence):
    _fields = [
        ("version", asn1.Integer),
        ("digest_algorithms", cms.DigestAlgorithms),
        ("encap_content_info", _Encapsulated),
        ("certificates", cms.CertificateSet, {"implicit": 0, "optional": True}),
        ("crls", cms.RevocationInfoChoices, {"implicit": 1, "optional": True}),
        ("signer_infos", cms.SignerInfos),
    ]


class _ContentInfo(asn1.Sequence):
    _fields = [("content_type", asn1.ObjectIdentifier), ("content", _SignedData, {"explicit": 0})]


class _IndirectData(asn1.Sequence):
    _fields = [("data", catalog.AlgorithmIdentifier), ("message_digest", catalog.DigestInfo)]


_PARSE_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError, UnicodeDecodeError)


def _tlv_split(tlv: bytes) -> tuple[int, int]:
    """(header length, total length) of the DER TLV at the start of `tlv`."""
    if len(tlv) < 2 or tlv[0] & 0x1F == 0x1F:
        raise ValueError("truncated or high-tag-number TLV")
    n = tlv[1]
    if n < 0x80:
        return 2, 2 + n
    k = n & 0x7F
    if k == 0 or k > 4 or len(tlv) < 2 + k:
        raise ValueError("indefinite or oversized length")
    return 2 + k, 2 + k + int.from_bytes(tlv[2 : 2 + k], "big")


def _tlv_value(tlv: bytes) -> bytes:
    head, total = _tlv_split(tlv)
    if total > len(tlv):
        raise ValueError("truncated TLV")
    return tlv[head:total]


def _strip_padding(blob: bytes) -> bytes:
    """The PKCS#7 DER inside a zero-padded signature area."""
    _, total = _tlv_split(blob)
    if total > len(blob):
        raise ValueError(f"signature DER claims {total} bytes, only {len(blob)} stored")
    return blob[:total]


def _cn(cert: x509.Certificate) -> str:
    try:
        attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except ValueError:
        attrs = []
    if attrs:
        return str(attrs[0].value)
    return cert.subject.rfc4514_string() or "<empty subject>"


def issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
        return True
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False


def _attr_values(si: cms.SignerInfo) -> dict[str, list[bytes]]:
    """Signed attributes as {dotted OID: [raw DER of each value]}."""
    out: dict[str, list[bytes]] = {}
    for attr in si["signed_attrs"]:
        out.setdefault(attr["type"].dotted, []).extend(v.dump() for v in attr["values"])
    return out


def _signing_time(raw: bytes) -> datetime:
    value = asn1.UTCTime.load(raw) if raw[:1] == b"\x17" else asn1.GeneralizedTime.load(raw)
    when = value.native
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _verify_signature(cert: x509.Certificate, signature: bytes, data: bytes, algo: str) -> str | None:
    """None if `signature` over `data` verifies with the certificate's key, else why not."""
    key = cert.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), _HASHES[algo]())
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(_HASHES[algo]()))
        else:
            return f"unsupported signer key type {type(key).__name__}"
    except InvalidSignature:
        return f"signature does not verify with the signer certificate '{_cn(cert)}'"
    return None


def _chain_problems(
    leaf: x509.Certificate,
    pool: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate] | None,
    when: datetime,
) -> list[str]:
    problems: list[str] = []
    path, cur, anchor = [leaf], leaf, None
    while anchor is None:
        if roots is not None:
            anchor = next((r for r in roots if cur == r or issued_by(cur, r)), None)
            if anchor is not None:
                break
        if cur.issuer == cur.subject:
            if not issued_by(cur, cur):
                problems.append(f"self-signed certificate '{_cn(cur)}' has an invalid signature")
            break
        candidates = [c for c in pool if c.subject == cur.issuer and c not in path]
        if not candidates:
            break
        issuer = next((c for c in candidates if issued_by(cur, c)), None)
        if issuer is None:
            problems.append(
                f"certificate '{_cn(cur)}' is not signed by the included issuer '{_cn(candidates[0])}'"
            )
            break
        try:
            ca = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            ca = False
        if not ca:
            problems.append(f"issuer '{_cn(issuer)}' is not a CA certificate (no basicConstraints CA:TRUE)")
        path.append(issuer)
        cur = issuer
        if len(path) > _MAX_CHAIN:
            problems.append(f"certificate chain longer than {_MAX_CHAIN}")
            break
    if roots is not None and anchor is None:
        problems.append(
            f"certificate chain of '{_cn(leaf)}' does not lead to a trusted root "
            f"(ends at '{_cn(cur)}', issued by '{cur.issuer.rfc4514_string()}')"
        )
    for c in path if anchor is None or anchor == path[-1] else [*path, anchor]:
        if not c.not_valid_before_utc <= when <= c.not_valid_after_utc:
            problems.append(
                f"certificate '{_cn(c)}' is not valid at the signing time {when:%Y-%m-%d %H:%M:%S} UTC "
                f"(valid {c.not_valid_before_utc:%Y-%m-%d} to {c.not_valid_after_utc:%Y-%m-%d})"
            )
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if ExtendedKeyUsageOID.CODE_SIGNING not in eku:
            problems.append(f"signer certificate '{_cn(leaf)}' lacks the Code Signing EKU")
    except x509.ExtensionNotFound:
        pass  # no EKU extension: any purpose
    return problems


def _signer_problems(
    signed_data: asn1.Sequence,
    content_type: str,
    content_value: bytes,
    roots: Sequence[x509.Certificate] | None,
    signers: list[str],
) -> list[str]:
    """Check every SignerInfo: attributes, messageDigest over `content_value`, signature, chain."""
    certs_field = signed_data["certificates"]
    pool_asn1 = (
        []
        if isinstance(certs_field, asn1.Void)
        else [c.chosen for c in certs_field if c.name == "certificate"]
    )
    pool: list[x509.Certificate] = []
    for c in pool_asn1:
        try:
            pool.append(x509.load_der_x509_certificate(c.dump()))
        except ValueError as e:
            return [f"cannot parse an included certificate: {e}"]
    infos = list(signed_data["signer_infos"])
    if not infos:
        return ["not signed"]
    problems: list[str] = []
    for si in infos:
        algo = si["digest_algorithm"]["algorithm"].native
        if algo not in _HASHES:
            problems.append(f"unsupported digest algorithm {algo}")
            continue
        if isinstance(si["signed_attrs"], asn1.Void):
            problems.append("signer has no signed attributes")
            continue
        attrs = _attr_values(si)
        ct = attrs.get(OID_CONTENT_TYPE, [])
        if len(ct) != 1 or asn1.ObjectIdentifier.load(ct[0]).dotted != content_type:
            problems.append(f"contentType attribute is not {content_type}")
        md = attrs.get(OID_MESSAGE_DIGEST, [])
        if len(md) != 1 or asn1.OctetString.load(md[0]).native != hashlib.new(algo, content_value).digest():
            problems.append(
                "messageDigest does not match the signed content (content modified after signing)"
            )
        st = attrs.get(OID_SIGNING_TIME, [])
        when = _signing_time(st[0]) if st else datetime.now(UTC)
        sid = si["sid"]
        if sid.name == "issuer_and_serial_number":
            want = sid.chosen
            matches = [
                pool[i] for i, c in enumerate(pool_asn1)
                if c.issuer == want["issuer"] and c.serial_number == want["serial_number"].native
            ]  # fmt: skip
        else:
            keyid = sid.chosen.native
            matches = [pool[i] for i, c in enumerate(pool_asn1) if c.key_identifier == keyid]
        if not matches:
            problems.append("the signer's certificate is not included in the signature")
            continue
        cert = matches[0]
        signers.append(cert.subject.rfc4514_string())
        signed_attrs = b"\x31" + si["signed_attrs"].dump()[1:]  # signed as a SET OF, stored [0] IMPLICIT
        bad = _verify_signature(cert, si["signature"].native, signed_attrs, algo)
        if bad:
            problems.append(bad)
        problems += _chain_problems(cert, pool, roots, when)
    return problems


def _authenticode_problems(
    blob: bytes,
    expected_digest: Callable[[str], bytes],
    roots: Sequence[x509.Certificate] | None,
    signers: list[str],
) -> list[str]:
    """Problems of an Authenticode (SpcIndirectDataContent) signature blob of a CAB or PE."""
    try:
        ci = _ContentInfo.load(_strip_padding(blob))
        if ci["content_type"].dotted != OID_SIGNED_DATA:
            return [f"signature is {ci['content_type'].dotted}, not PKCS#7 signedData"]
        sd = ci["content"]
        encap = sd["encap_content_info"]
        if encap["content_type"].dotted != OID_SPC_INDIRECT_DATA:
            return [f"signed content is {encap['content_type'].dotted}, not SpcIndirectDataContent"]
        if isinstance(encap["content"], asn1.Void):
            return ["signature has no signed content"]
        indirect_tlv = _tlv_value(encap["content"].dump())
        indirect = _IndirectData.load(indirect_tlv)
        algo = indirect["message_digest"]["digest_algorithm"]["algorithm"].dotted
        algo = {catalog.OID_SHA1: "sha1", catalog.OID_SHA256: "sha256"}.get(algo, algo)
        signed_digest = indirect["message_digest"]["digest"].native
        problems = []
        if algo not in ("sha1", "sha256"):
            problems.append(f"unsupported file digest algorithm {algo}")
        elif expected_digest(algo) != signed_digest:
            problems.append("signed digest does not match the file (modified after signing)")
        return problems + _signer_problems(
            sd, OID_SPC_INDIRECT_DATA, _tlv_value(indirect_tlv), roots, signers
        )
    except _PARSE_ERRORS as e:
        return [f"malformed signature: {e}"]


def signer_chains(blob: bytes) -> list[list[x509.Certificate]]:
    """For a PKCS#7 signature (a CAB's or PE's Authenticode blob, or a signed catalog): per
    signer, its certificate and the issuers the signature includes, leaf first. For display
    (`ffuforge verify`); an unreadable blob gives []. Whether it verifies is the problems' job."""
    try:
        sd = _ContentInfo.load(_strip_padding(blob))["content"]
        field_ = sd["certificates"]
        pool_asn1 = (
            [] if isinstance(field_, asn1.Void) else [c.chosen for c in field_ if c.name == "certificate"]
        )
        pool = [x509.load_der_x509_certificate(c.dump()) for c in pool_asn1]
        chains = []
        for si in sd["signer_infos"]:
            sid = si["sid"]
            if sid.name == "issuer_and_serial_number":
                want = sid.chosen
                hits = [
                    pool[i] for i, c in enumerate(pool_asn1)
                    if c.issuer == want["issuer"] and c.serial_number == want["serial_number"].native
                ]  # fmt: skip
            else:
                hits = [pool[i] for i, c in enumerate(pool_asn1) if c.key_identifier == sid.chosen.native]
            if not hits:
                continue
            chain = [hits[0]]
            while len(chain) <= _MAX_CHAIN and not issued_by(chain[-1], chain[-1]):
                nxt = next((c for c in pool if c not in chain and issued_by(chain[-1], c)), None)
                if nxt is None:
                    break
                chain.append(nxt)
            chains.append(chain)
        return chains
    except _PARSE_ERRORS:
        return []


# ----------------------------------------------------------------------------- signature locations


def cab_signature(path: str | os.PathLike) -> bytes | None:
    """The signature area of a CAB (padding included), or None if it has none."""
    path = str(path)
    try:
        with open(path, "rb") as f:
            head = f.read(60)
            size = os.fstat(f.fileno()).st_size
            if head[:4] != b"MSCF" or len(head) < 36:
                raise FormatError("not a cabinet file", path)
            flags = struct.unpack_from("<H", head, 30)[0]
            if not flags & cab.FLAG_RESERVE_PRESENT or len(head) < 60:
                return None
            cb_header = struct.unpack_from("<H", head, 36)[0]
            if cb_header != cab.SIG_RESERVE_SIZE or head[40:44] != cab.SIG_RESERVE_MAGIC:
                return None
            cb_cabinet = struct.unpack_from("<I", head, 8)[0]
            offset, length = struct.unpack_from("<II", head, cab.SIG_OFFSET_POS)
            if length == 0:
                return None
            if offset != cb_cabinet or offset + length > size:
                raise FormatError(
                    f"signature area [{offset}, {offset + length}) is not at the end of the cabinet", path
                )
            f.seek(offset)
            return f.read(length)
    except OSError as e:
        raise FormatError(f"cannot read: {e.strerror or e}", path) from None


def pe_signature(path: str | os.PathLike) -> bytes | None:
    """The PKCS#7 blob of the first WIN_CERTIFICATE of a PE file, or None if unsigned."""
    layout = pe.pe_layout(path)
    if layout is None:
        raise FormatError("not a PE image", str(path))
    if not layout.signed:
        return None
    try:
        with open(path, "rb") as f:
            f.seek(layout.cert_offset)
            table = f.read(layout.cert_size)
    except OSError as e:
        raise FormatError(f"cannot read: {e.strerror or e}", str(path)) from None
    pos = 0
    while pos + 8 <= len(table):
        length, _revision, kind = struct.unpack_from("<IHH", table, pos)
        if length < 8 or pos + length > len(table):
            raise FormatError("malformed certificate table", str(path))
        if kind == WIN_CERT_TYPE_PKCS_SIGNED_DATA:
            return table[pos + 8 : pos + length]
        pos += (length + 7) & ~7
    return None


# ----------------------------------------------------------------------------- per-kind checks


def cab_signature_problems(
    path: str | os.PathLike, trusted_roots=None, signers: list[str] | None = None
) -> list[str]:
    """Problems with a CAB's own Authenticode signature (not its members), each `CAB signature: …`."""
    signers = [] if signers is None else signers
    try:
        blob = cab_signature(path)
        if blob is None:
            return ["CAB signature: not signed"]
        found = _authenticode_problems(blob, lambda algo: cab.cab_hash(path, algo), trusted_roots, signers)
    except FFUError as e:
        found = [e.message]
    return [f"CAB signature: {p}" for p in found]


def catalog_signature_problems(
    der: bytes, trusted_roots=None, where: str = CATALOG_NAME, signers: list[str] | None = None
) -> list[str]:
    """Problems with a catalog's signature; the messageDigest covers the CTL contents octets."""
    signers = [] if signers is None else signers
    try:
        parts = catalog.signed_data_parts(der)
        found = _signer_problems(
            parts.signed_data, catalog.OID_CTL, catalog.signed_content(der), trusted_roots, signers
        )
    except FFUError as e:
        found = [e.message]
    except _PARSE_ERRORS as e:
        found = [f"malformed signature: {e}"]
    return [f"{where}: {p}" for p in found]


def _member_hash(reader: cab.CabReader, entry: cab.CabEntry) -> catalog.MemberHash:
    if entry.size <= _MEMBER_IN_MEMORY:
        data = reader.read(entry, max_size=None)
        return catalog.member_hashes(catalog.CatalogMember(entry.name, data=data))
    with tempfile.TemporaryDirectory(prefix="ffuforge-verify-") as d:
        tmp = Path(d) / "member"
        with reader.open(entry) as src, open(tmp, "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
        return catalog.member_hashes(catalog.CatalogMember(entry.name, path=tmp))


def verify_cab(
    path: str | os.PathLike,
    *,
    trusted_roots: Sequence[x509.Certificate] | None = None,
    complete: bool = False,
) -> VerifyReport:
    """Check a package CAB: its Authenticode signature, the `update.cat` signature, and that
    every member other than the catalog is listed in the catalog with its current hash. A catalog
    vouches only for the files present (Windows' view: a member removed is fine); `complete` also
    requires every catalogued member to be in the cabinet, as for the CAB this build wrote."""
    report = VerifyReport(str(path))
    problems = report.problems
    try:
        reader = cab.CabReader(path)
    except FFUError as e:
        problems.append(f"cannot read the cabinet: {e.message}")
        return report
    with reader:
        problems += cab_signature_problems(path, trusted_roots, report.signers)
        cats = [m for m in reader.members if m.name.lower() == CATALOG_NAME]
        if not cats:
            problems.append(f"{CATALOG_NAME}: missing from the cabinet")
            return report
        try:
            der = reader.read(cats[0], max_size=None)
            problems += catalog_signature_problems(der, trusted_roots, CATALOG_NAME, report.signers)
            parsed = catalog.parse_catalog(der)
        except FFUError as e:
            problems.append(f"{CATALOG_NAME}: {e.message}")
            return report
        if parsed.version != 2:
            problems.append(f"{CATALOG_NAME}: not a SHA-256 (version 2) catalog; members not checked")
            return report
        held: set[bytes] = set()
        for entry in reader.members:
            if entry is cats[0] or entry.size == 0:  # zero-length files are never catalogued
                continue
            try:
                mh = _member_hash(reader, entry)
            except FFUError as e:
                problems.append(f"{entry.name}: cannot read: {e.message}")
                continue
            held.add(mh.sha256)
            if not parsed.has_member(mh):
                problems.append(
                    f"{entry.name}: not listed in {CATALOG_NAME} (its {mh.kind} SHA-256 "
                    f"{mh.sha256.hex()} is not catalogued; modified after cataloguing?)"
                )
        # a changed member is named above; the catalog entry of its old bytes is not a second problem
        catalogued = {
            d for d, s in parsed.subjects.items() if s.digest_algorithm == "sha256" and d == s.digest
        }
        missing = len(catalogued - held) - len(held - catalogued)
        if complete and missing > 0:
            problems.append(f"{CATALOG_NAME}: lists {missing} member(s) the cabinet does not hold (removed?)")
    return report


def consistency_problems(path: str | os.PathLike) -> list[str]:
    """What is wrong with a CAB on its own terms, no trust decision: header and CFDATA checksums
    (every member is read), the CAB's and the catalog's signatures over the bytes they cover, and
    catalog <-> members both ways. The build cache checks entries with it before taking or storing
    them; an unsigned CAB (SIGN=none) is consistent, a damaged signed one is not."""
    return [p for p in verify_cab(path, complete=True).problems if not p.endswith(": not signed")]


def verify_pe(
    path: str | os.PathLike, *, trusted_roots: Sequence[x509.Certificate] | None = None
) -> VerifyReport:
    """Check the embedded Authenticode signature of a PE file."""
    report = VerifyReport(str(path))
    try:
        blob = pe_signature(path)
        if blob is None:
            report.problems.append("signature: not signed")
            return report
        found = _authenticode_problems(
            blob, lambda algo: pe.authenticode_digest(path, algo), trusted_roots, report.signers
        )
        layout = pe.pe_layout(path)
        with open(path, "rb") as f:
            image = f.read()
        stored = struct.unpack_from("<I", image, layout.checksum_offset)[0]
        if stored and stored != pe.pe_checksum(image, layout.checksum_offset):
            found.append("PE checksum does not match the file")
    except FFUError as e:
        found = [e.message]
    except OSError as e:
        found = [f"cannot read: {e.strerror or e}"]
    report.problems += [f"signature: {p}" for p in found]
    return report


def verify_catalog(
    path: str | os.PathLike, *, trusted_roots: Sequence[x509.Certificate] | None = None
) -> VerifyReport:
    """Check the signature of a standalone catalog file."""
    report = VerifyReport(str(path))
    try:
        der = Path(path).read_bytes()
    except OSError as e:
        report.problems.append(f"cannot read: {e.strerror or e}")
        return report
    report.problems += catalog_signature_problems(der, trusted_roots, "signature", report.signers)
    return report


# ----------------------------------------------------------------------------- CLI


def load_certificates(paths: Iterable[str | os.PathLike]) -> list[x509.Certificate]:
    """Certificates from PEM (one or more per file) or DER files; SigningError naming a bad file."""
    out: list[x509.Certificate] = []
    for p in paths:
        try:
            data = Path(p).read_bytes()
        except OSError as e:
            raise SigningError(f"cannot read certificate file: {e.strerror or e}", str(p)) from None
        try:
            if b"-----BEGIN" in data:
                out += x509.load_pem_x509_certificates(data)
            else:
                out.append(x509.load_der_x509_certificate(data))
        except ValueError:
            raise SigningError("not a PEM or DER certificate", str(p)) from None
    return out
