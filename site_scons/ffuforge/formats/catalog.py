"""Catalog (`update.cat`) generation and reading: the pkggen-style v2 catalog and the v1 form.

Windows validates package members against this catalog, so its bytes must be what Microsoft's
makecat would write for the same input; what makecat leaves random (listIdentifier,
ctlThisUpdate) is derived from the inputs instead, so rebuilds are byte-identical.

The ASN.1 structures, OIDs and DER encoders live in `catalog_asn1` (re-exported here where
callers use them); they are declared there rather than borrowed from signify: signify is a
test-only dependency and it patches asn1crypto's global CMS maps when imported, which must not
change what we write. The SignedData keeps the CTL as a real [0] EXPLICIT SEQUENCE (not an
OCTET STRING, as generic CMS would) and keeps the CTL's original bytes when a signature is
attached later, since the signature covers them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import cast

from asn1crypto import cms, x509
from asn1crypto import core as asn1

from ..errors import ConfigError, FFUError, FormatError
from . import pe
from .catalog_asn1 import (
    DEBUG_PACKAGE,
    DIGEST_ALG_DER,
    DIGEST_NAMES,
    OID_CAT_MEMBERINFO,
    OID_CAT_MEMBERINFO2,
    OID_CAT_NAMEVALUE,
    OID_CATALOG_LIST,
    OID_CATALOG_LIST_MEMBER,
    OID_CATALOG_LIST_MEMBER2,
    OID_CTL,
    OID_CTL_DER,
    OID_SHA1,
    OID_SHA256,
    OID_SIGNED_DATA,
    OID_SIGNED_DATA_DER,
    OID_SPC_CAB_DATA,
    OID_SPC_INDIRECT_DATA,
    OS_ATTR,
    SIP_GUID,
    SIP_KIND,
    SPC_KIND,
    AlgorithmIdentifier,
    CatalogContentInfo,
    CatalogSignedData,
    CertificateTrustList,
    DigestInfo,
    NameValue,
    TrustedSubject,
    TrustedSubjects,
    algorithm_identifier,
    der_tlv,
    member_info,
    member_info2,
    name_value,
    signed_data_fields,
    spc_indirect,
    tlv_children,
    tlv_value,
    utc_time,
)

__all__ = [
    "AlgorithmIdentifier",
    "DigestInfo",
    "OID_SHA1",
    "OID_SHA256",
    "OID_SPC_CAB_DATA",
    "CatalogContentInfo",
    "OID_CTL",
    "der_tlv",
    "CatalogMember",
    "CatalogParts",
    "MemberHash",
    "ParsedCatalog",
    "SubjectInfo",
    "attach_signature",
    "attach_signature_der",
    "build_catalog_v1",
    "build_catalog_v2",
    "ctl_der",
    "member_hashes",
    "parse_catalog",
    "signed_content",
    "signed_data_parts",
]

_EMPTY_SHA256 = hashlib.sha256(b"").digest()

# ----------------------------------------------------------------------------- members


@dataclass(frozen=True)
class CatalogMember:
    """One file listed in a catalog: on disk (`path`) or in memory (`data`); `name` is for messages."""

    name: str
    path: Path | str | None = None
    data: bytes | None = None

    def __post_init__(self) -> None:
        if (self.path is None) == (self.data is None):
            raise ValueError("CatalogMember needs exactly one of path or data")


@dataclass(frozen=True)
class MemberHash:
    """Catalog digests of one member; `size` lets the builder drop zero-length files."""

    kind: str  # 'pe' | 'flat'
    sha256: bytes
    sha1: bytes
    size: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in ("pe", "flat"):
            raise ValueError(f"MemberHash.kind must be 'pe' or 'flat', not {self.kind!r}")
        if len(self.sha256) != 32 or len(self.sha1) != 20:
            raise ValueError("MemberHash needs a 32-byte sha256 and a 20-byte sha1")


def member_hashes(member: CatalogMember) -> MemberHash:
    """Hash a member the way its SIP would: Authenticode image hash for PEs, else the plain bytes.

    CAB files (`MSCF`) are hashed as flat files: IoT package catalogs never contain CABs and
    the CAB SIP's member encoding is not known.
    """
    path = cast("Path | str", member.path)  # set whenever data is None (CatalogMember.__post_init__)
    source: pe.Source = member.data if member.data is not None else path
    where = member.name if member.data is not None else str(member.path)
    try:
        if pe.is_pe(source):
            d = pe.authenticode_digests(source, ("sha256", "sha1"))
            size = len(member.data) if member.data is not None else os.path.getsize(path)
            return MemberHash("pe", d["sha256"], d["sha1"], size)
        h256, h1 = hashlib.sha256(), hashlib.sha1()
        if member.data is not None:
            h256.update(member.data)
            h1.update(member.data)
            size = len(member.data)
        else:
            size = 0
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    h256.update(chunk)
                    h1.update(chunk)
                    size += len(chunk)
        return MemberHash("flat", h256.digest(), h1.digest(), size)
    except OSError as e:
        raise FormatError(f"cannot read catalog member: {e.strerror or e}", file=where) from e
    except FFUError as e:
        raise e.at(where) from None


def _is_empty(m: MemberHash) -> bool:
    return m.size == 0 or (m.size is None and m.kind == "flat" and m.sha256 == _EMPTY_SHA256)


# ----------------------------------------------------------------------------- builders


def _default_list_identifier(tag: bytes, identifiers: Iterable[bytes], *extra: str) -> bytes:
    h = hashlib.sha256(b"ffuforge catalog " + tag + b"\0")
    for s in extra:
        h.update(s.encode("utf-8") + b"\0")
    for ident in identifiers:
        h.update(len(ident).to_bytes(2, "big") + ident)
    return h.digest()[:16]


def _subjects(entries: dict[bytes, list[bytes]]) -> TrustedSubjects:
    # Subjects are encoded by concatenation (attribute SETs DER-sorted) and the list loaded back:
    # asn1crypto re-encodes nested values on every containing dump, which was quadratic.
    ders = [
        der_tlv(0x30, der_tlv(0x04, ident) + der_tlv(0x31, b"".join(sorted(entries[ident]))))
        for ident in sorted(entries)
    ]
    return TrustedSubjects.load(der_tlv(0x30, b"".join(ders)))


def _add_subject(entries: dict[bytes, list[bytes]], ident: bytes, attrs: list[bytes]):
    if ident in entries:
        if sorted(entries[ident]) != sorted(attrs):
            raise ConfigError(f"catalog subject {ident.hex()} listed twice with different attributes")
        return
    entries[ident] = attrs


def _envelope(
    *,
    member_oid: str,
    subjects: TrustedSubjects,
    list_identifier: bytes,
    this_update: datetime,
    attributes: Sequence[tuple[str, str]],
) -> bytes:
    if len(list_identifier) != 16:
        raise ConfigError(f"catalog listIdentifier must be 16 bytes, got {len(list_identifier)}")
    ctl = {
        "subject_usage": [OID_CATALOG_LIST],
        "list_identifier": list_identifier,
        "this_update": utc_time(this_update),
        "subject_algorithm": algorithm_identifier(member_oid),
        "trusted_subjects": subjects,
    }
    if attributes:
        ctl["extensions"] = [
            {"extn_id": OID_CAT_NAMEVALUE, "extn_value": name_value(n, v)} for n, v in attributes
        ]
    ctl_der = CertificateTrustList(ctl).dump()
    # ContentInfo { signedData, [0] SignedData { 1, {}, { szOID_CTL, [0] CTL }, {} } }, assembled
    # from the encoded CTL so the (large) subject list is not re-encoded by the outer layers.
    encap = der_tlv(0x30, OID_CTL_DER + der_tlv(0xA0, ctl_der))
    signed = der_tlv(0x30, b"\x02\x01\x01" + b"\x31\x00" + encap + b"\x31\x00")
    return der_tlv(0x30, OID_SIGNED_DATA_DER + der_tlv(0xA0, signed))


def build_catalog_v2(
    members: Iterable[MemberHash],
    *,
    package_name: str,
    test_package: bool,
    this_update: datetime,
    list_identifier: bytes | None = None,
) -> bytes:
    """The unsigned pkggen catalog (CatalogVersion 2): DER ContentInfo.

    Each member gives a SHA-256 subject {MemberInfo2, SpcIndirectDataContent} and a SHA-1 subject
    {MemberInfo2}; zero-length members are skipped and identical members listed once. A naive
    `this_update` is taken as UTC. The default listIdentifier is the first 16 bytes of a SHA-256
    over the package name, release type and the sorted subject identifiers.
    """
    entries: dict[bytes, list[bytes]] = {}
    for m in members:
        if _is_empty(m):
            continue
        mi2 = member_info2(m.kind)
        spc = spc_indirect(m.kind, "sha256", m.sha256)
        _add_subject(entries, m.sha256, [mi2, spc])
        _add_subject(entries, m.sha1, [mi2])
    attr_name = DEBUG_PACKAGE if test_package else package_name
    if not attr_name:
        raise ConfigError("catalog needs a package name")
    try:
        package_name.encode("utf-16-le")
    except UnicodeEncodeError:
        raise ConfigError(
            f"package name {package_name!r} is not valid Unicode text (a lone surrogate)"
        ) from None
    if list_identifier is None:
        list_identifier = _default_list_identifier(
            b"v2", sorted(entries), package_name, "test" if test_package else "production"
        )
    return _envelope(
        member_oid=OID_CATALOG_LIST_MEMBER2,
        subjects=_subjects(entries),
        list_identifier=list_identifier,
        this_update=this_update,
        attributes=[("OSAttr", OS_ATTR), ("PackageName", attr_name)],
    )


def build_catalog_v1(
    labelled_members: Iterable[tuple[str | None, bytes] | tuple[str | None, bytes, str]],
    *,
    this_update: datetime,
    list_identifier: bytes | None = None,
    attributes: Sequence[tuple[str, str]] = (),
) -> bytes:
    """An unsigned CatalogVersion 1 catalog: one SHA-1 subject per (label, sha1[, kind]) member.

    The identifier is the label, or the upper-case hex digest when the label is None, as
    UTF-16LE + NUL. `kind` ('flat' default, or 'pe') picks SIP GUID and indirect data.
    `attributes` are catalog NameValues (flags 0x00010001); the FFU catalog has none.
    """
    entries: dict[bytes, list[bytes]] = {}
    for item in labelled_members:
        label, digest = item[0], item[1]
        kind = item[2] if len(item) > 2 else "flat"
        if kind not in SIP_GUID:
            raise ValueError(f"v1 member kind must be 'pe' or 'flat', not {kind!r}")
        if len(digest) != 20:
            raise ValueError(f"v1 member digest must be SHA-1 (20 bytes), got {len(digest)}")
        text = label if label is not None else digest.hex().upper()
        ident = text.encode("utf-16-le") + b"\0\0"
        _add_subject(entries, ident, [spc_indirect(kind, "sha1", digest), member_info(kind)])
    if list_identifier is None:
        list_identifier = _default_list_identifier(
            b"v1", sorted(entries), *(f"{n}={v}" for n, v in attributes)
        )
    return _envelope(
        member_oid=OID_CATALOG_LIST_MEMBER,
        subjects=_subjects(entries),
        list_identifier=list_identifier,
        this_update=this_update,
        attributes=attributes,
    )


# ----------------------------------------------------------------------------- reading / signing hooks


@dataclass
class CatalogParts:
    """A loaded catalog, for signers: the asn1crypto objects and the CTL bytes."""

    content_info: CatalogContentInfo
    signed_data: CatalogSignedData
    ctl: CertificateTrustList
    ctl_der: bytes  # complete TLV of the CTL SEQUENCE, exactly as stored

    @property
    def signed_content(self) -> bytes:
        """What a SignerInfo's messageDigest covers: the CTL's contents octets (RFC 2315 §9.3)."""
        return tlv_value(self.ctl_der)


def _load(der: bytes) -> CatalogParts:
    try:
        ci = CatalogContentInfo.load(bytes(der), strict=True)
        if ci["content_type"].dotted != OID_SIGNED_DATA:
            raise FormatError(f"catalog ContentInfo is {ci['content_type'].dotted}, not signedData")
        sd = ci["content"]
        encap = sd["encap_content_info"]
        if encap["content_type"].dotted != OID_CTL:
            raise FormatError(f"catalog content is {encap['content_type'].dotted}, not a CTL")
        ctl = encap["content"]
        if isinstance(ctl, asn1.Void):
            raise FormatError("not a valid catalog: it has no CTL content")
        raw = tlv_value(ctl.dump())  # drop the [0] EXPLICIT wrapper
        return CatalogParts(ci, sd, ctl, raw)
    except FFUError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as e:
        raise FormatError(f"not a valid catalog: {e}") from e


def signed_data_parts(der: bytes) -> CatalogParts:
    """Load a catalog (signed or not) into the structures a signer needs."""
    return _load(der)


def ctl_der(content_info_der: bytes) -> bytes:
    """The complete DER (tag+length+value) of the CTL SEQUENCE inside a catalog."""
    return _load(content_info_der).ctl_der


def signed_content(content_info_der: bytes) -> bytes:
    """The bytes a catalog signer hashes for messageDigest: the CTL SEQUENCE *without* its tag
    and length. One might expect the complete DER; osslsigncode 2.9 and signify both use the
    contents octets (RFC 2315 §9.3), and osslsigncode rejects a signature over the full TLV."""
    encap = signed_data_fields(content_info_der)[2]
    children = tlv_children(encap)
    if len(children) != 2 or children[1][:1] != b"\xa0":
        raise FormatError("not a valid catalog: it has no CTL content")
    return tlv_value(tlv_value(children[1]))


def attach_signature(
    der: bytes,
    *,
    signer_infos: Sequence[cms.SignerInfo],
    certificates: Sequence[x509.Certificate] = (),
    digest_algorithm: str = "sha256",
) -> bytes:
    """Return the catalog with these SignerInfos and certificates; the CTL bytes stay unchanged.

    digestAlgorithms becomes {digest_algorithm with NULL parameters}, as osslsigncode writes it.
    """
    return attach_signature_der(
        der,
        signer_infos=[si.dump() for si in signer_infos],
        certificates=[c.dump() for c in certificates],
        digest_algorithm=digest_algorithm,
    )


def attach_signature_der(
    der: bytes,
    *,
    signer_infos: Sequence[bytes],
    certificates: Sequence[bytes] = (),
    digest_algorithm: str = "sha256",
) -> bytes:
    """attach_signature over DER: the SignedData is re-assembled around the stored encapsulated
    content, whose bytes are copied, never re-encoded (a signer per package parsed the whole
    catalog twice through asn1crypto before: a third of the signing cost of a small package)."""
    version, _algs, encap, certs, crls, _infos = signed_data_fields(der)
    algs = der_tlv(0x30, DIGEST_ALG_DER[digest_algorithm]) if signer_infos else b""
    if certificates:  # SET OF: DER order, as asn1crypto writes it
        certs = der_tlv(0xA0, b"".join(sorted(certificates)))
    signed = der_tlv(
        0x30,
        version + der_tlv(0x31, algs) + encap + certs + crls + der_tlv(0x31, b"".join(sorted(signer_infos))),
    )
    return der_tlv(0x30, OID_SIGNED_DATA_DER + der_tlv(0xA0, signed))


@dataclass(frozen=True)
class SubjectInfo:
    """What a catalog says about one subject."""

    kind: str | None  # 'pe' | 'flat' | 'cab' | None (unknown)
    digest_algorithm: str | None  # of the SpcIndirectDataContent: 'sha256' | 'sha1' | dotted OID
    digest: bytes | None
    member_info2: bytes | None  # raw DER of the MemberInfo2 value (v2)
    sip_guid: str | None  # MemberInfo SIP GUID (v1)
    spc_data: tuple[str, bytes] | None  # SpcIndirectDataContent.data: (type OID, DER of value)
    name_values: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ParsedCatalog:
    version: int | None  # 1 (SHA-1 members), 2 (SHA-256 members), None (other algorithm)
    subjects: dict[bytes, SubjectInfo]
    subject_order: tuple[bytes, ...]
    attributes: dict[str, str]
    list_identifier: bytes | None
    this_update: datetime
    signed: bool

    @property
    def package_name(self) -> str | None:
        return self.attributes.get("PackageName")

    def has_member(self, m: MemberHash) -> bool:
        """True if a v2 catalog lists `m` exactly as build_catalog_v2 would."""
        s256, s1 = self.subjects.get(m.sha256), self.subjects.get(m.sha1)
        return (
            s256 is not None
            and s1 is not None
            and s256.kind == m.kind
            and s256.digest_algorithm == "sha256"
            and s256.digest == m.sha256
            and s1.kind == m.kind
        )


def _text(octets: bytes) -> str:
    return octets.decode("utf-16-le").rstrip("\0")


def _parse_name_value(der: bytes) -> tuple[str, str]:
    nv = NameValue.load(der, strict=True)
    return nv["name"].native, _text(nv["value"].native)


def _subject_info(ts: TrustedSubject) -> SubjectInfo:
    kind = digest_algorithm = digest = member_info2 = sip_guid = spc_data = None
    name_values: dict[str, str] = {}
    attrs = ts["attributes"]
    for attr in attrs if not isinstance(attrs, asn1.Void) else []:
        oid = attr["type"].dotted
        for value in attr["values"]:
            if oid == OID_CAT_MEMBERINFO2:
                member_info2 = value.dump()
                kind = kind or value.name
            elif oid == OID_CAT_MEMBERINFO:
                sip_guid = value["sip_guid"].native
                kind = kind or SIP_KIND.get(sip_guid.upper())
            elif oid == OID_SPC_INDIRECT_DATA:
                alg = value["message_digest"]["digest_algorithm"]["algorithm"].dotted
                digest_algorithm = DIGEST_NAMES.get(alg, alg)
                digest = value["message_digest"]["digest"].native
                data = value["data"]
                spc_data = (data["type"].dotted, data["value"].dump())
                kind = kind or SPC_KIND.get(data["type"].dotted)
            elif oid == OID_CAT_NAMEVALUE:
                name_values[value["name"].native] = _text(value["value"].native)
    return SubjectInfo(kind, digest_algorithm, digest, member_info2, sip_guid, spc_data, name_values)


def parse_catalog(der: bytes) -> ParsedCatalog:
    """Read a catalog (ours, makecat's or a signed one) into a summary for verification."""
    parts = _load(der)
    try:
        ctl = parts.ctl
        usage = [u.dotted for u in ctl["subject_usage"]]
        if OID_CATALOG_LIST not in usage:
            raise FormatError("CTL is not a catalog (subjectUsage lacks 1.3.6.1.4.1.311.12.1.1)")
        alg = ctl["subject_algorithm"]["algorithm"].dotted
        version = {OID_CATALOG_LIST_MEMBER: 1, OID_CATALOG_LIST_MEMBER2: 2}.get(alg)
        subjects: dict[bytes, SubjectInfo] = {}
        order = []
        trusted = ctl["trusted_subjects"]
        for ts in trusted if not isinstance(trusted, asn1.Void) else []:
            ident = ts["subject_identifier"].native
            if ident in subjects:
                raise FormatError(f"catalog lists subject {ident.hex()} twice")
            subjects[ident] = _subject_info(ts)
            order.append(ident)
        attributes: dict[str, str] = {}
        exts = ctl["extensions"]
        for ext in exts if not isinstance(exts, asn1.Void) else []:
            if ext["extn_id"].dotted == OID_CAT_NAMEVALUE:
                n, v = _parse_name_value(ext["extn_value"].native)
                attributes[n] = v
        list_id = ctl["list_identifier"].native if not isinstance(ctl["list_identifier"], asn1.Void) else None
        this_update = ctl["this_update"].chosen.native
        signed = len(parts.signed_data["signer_infos"]) > 0
    except FFUError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, UnicodeDecodeError) as e:
        raise FormatError(f"not a valid catalog: {e}") from e
    return ParsedCatalog(
        version=version,
        subjects=subjects,
        subject_order=tuple(order),
        attributes=attributes,
        list_identifier=list_id,
        this_update=this_update,
        signed=signed,
    )
