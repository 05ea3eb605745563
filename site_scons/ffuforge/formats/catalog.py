"""Catalog (`update.cat`) generation and reading: the pkggen-style v2 catalog and the v1 form.

Windows validates package members against this catalog, so its bytes must be what makecat
would write for the same input (signing.md §2-§4); what makecat leaves random (listIdentifier,
ctlThisUpdate) is derived from the inputs instead, so rebuilds are byte-identical.

The ASN.1 structures are declared here rather than borrowed from signify: signify is a test-only
dependency and it patches asn1crypto's global CMS maps when imported, which must not change what
we write. The SignedData keeps the CTL as a real [0] EXPLICIT SEQUENCE (not an OCTET STRING, as
generic CMS would) and keeps the CTL's original bytes when a signature is attached later, since
the signature covers them.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from asn1crypto import cms, x509
from asn1crypto import core as asn1

from ..errors import FFUError
from . import pe

__all__ = [
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

# ----------------------------------------------------------------------------- OIDs / constants

OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
OID_CTL = "1.3.6.1.4.1.311.10.1"
OID_CATALOG_LIST = "1.3.6.1.4.1.311.12.1.1"
OID_CATALOG_LIST_MEMBER = "1.3.6.1.4.1.311.12.1.2"  # v1, SHA-1
OID_CATALOG_LIST_MEMBER2 = "1.3.6.1.4.1.311.12.1.3"  # v2, SHA-256
OID_CAT_NAMEVALUE = "1.3.6.1.4.1.311.12.2.1"
OID_CAT_MEMBERINFO = "1.3.6.1.4.1.311.12.2.2"
OID_CAT_MEMBERINFO2 = "1.3.6.1.4.1.311.12.2.3"
OID_SPC_INDIRECT_DATA = "1.3.6.1.4.1.311.2.1.4"
OID_SPC_PE_IMAGE_DATA = "1.3.6.1.4.1.311.2.1.15"
OID_SPC_CAB_DATA = "1.3.6.1.4.1.311.2.1.25"  # used by the flat-file SIP
OID_SPC_LINK = "1.3.6.1.4.1.311.2.1.28"
OID_SHA1 = "1.3.14.3.2.26"
OID_SHA256 = "2.16.840.1.101.3.4.2.1"
_DIGEST_OIDS = {"sha1": OID_SHA1, "sha256": OID_SHA256}
_DIGEST_NAMES = {v: k for k, v in _DIGEST_OIDS.items()}

# Per-kind member encodings (signing.md §4).
_SPC_DATA_OID = {"pe": OID_SPC_PE_IMAGE_DATA, "flat": OID_SPC_CAB_DATA}
_SIP_GUID = {
    "pe": "{C689AAB8-8E78-11D0-8C47-00C04FC295EE}",
    "flat": "{DE351A42-8E59-11D0-8C47-00C04FC295EE}",
}
_SIP_KIND = {v: k for k, v in _SIP_GUID.items()}
_SPC_KIND = {OID_SPC_PE_IMAGE_DATA: "pe", OID_SPC_CAB_DATA: "flat", OID_SPC_LINK: "cab"}
_MEMBERINFO_CERT_VERSION = 512

OS_ATTR = "2:6.1,2:6.0,2:5.2,2:5.1"
NAMEVALUE_FLAGS = 0x00010001  # DATAASCII | NAMEASCII
DEBUG_PACKAGE = "DebugPackage"

_EMPTY_SHA256 = hashlib.sha256(b"").digest()

# ----------------------------------------------------------------------------- ASN.1 declarations


class AlgorithmIdentifier(asn1.Sequence):
    _fields = [("algorithm", asn1.ObjectIdentifier), ("parameters", asn1.Any, {"optional": True})]


class DigestInfo(asn1.Sequence):
    _fields = [("digest_algorithm", AlgorithmIdentifier), ("digest", asn1.OctetString)]


class SpcString(asn1.Choice):
    _alternatives = [
        ("unicode", asn1.BMPString, {"implicit": 0}),
        ("ascii", asn1.IA5String, {"implicit": 1}),
    ]


class SpcSerializedObject(asn1.Sequence):
    _fields = [("class_id", asn1.OctetString), ("serialized_data", asn1.OctetString)]


class SpcLink(asn1.Choice):
    _alternatives = [
        ("url", asn1.IA5String, {"implicit": 0}),
        ("moniker", SpcSerializedObject, {"implicit": 1}),
        ("file", SpcString, {"explicit": 2}),
    ]


class SpcPeImageFlags(asn1.BitString):
    _map = {0: "include_resources", 1: "include_debug_info", 2: "include_import_address_table"}


class SpcPeImageData(asn1.Sequence):
    _fields = [
        ("flags", SpcPeImageFlags, {"default": {"include_resources"}}),
        ("file", SpcLink, {"explicit": 0, "optional": True}),
    ]


class SpcAttributeTypeAndOptionalValue(asn1.Sequence):
    _fields = [("type", asn1.ObjectIdentifier), ("value", asn1.Any, {"optional": True})]
    _oid_pair = ("type", "value")
    _oid_specs = {
        "1.3.6.1.4.1.311.2.1.15": SpcPeImageData,
        "1.3.6.1.4.1.311.2.1.25": SpcLink,
        "1.3.6.1.4.1.311.2.1.28": SpcLink,
    }


class SpcIndirectDataContent(asn1.Sequence):
    _fields = [("data", SpcAttributeTypeAndOptionalValue), ("message_digest", DigestInfo)]


class NameValue(asn1.Sequence):
    _fields = [("name", asn1.BMPString), ("flags", asn1.Integer), ("value", asn1.OctetString)]


class MemberInfo(asn1.Sequence):
    _fields = [("sip_guid", asn1.BMPString), ("cert_version", asn1.Integer)]


class MemberInfo2(asn1.Choice):
    """Observed as an empty primitive context tag selecting the SIP: [0] PE, [1] CAB, [2] flat."""

    _alternatives = [
        ("pe", asn1.Null, {"implicit": 0}),
        ("cab", asn1.Null, {"implicit": 1}),
        ("flat", asn1.Null, {"implicit": 2}),
    ]


class SetOfAny(asn1.SetOf):
    _child_spec = asn1.Any


class SetOfSpcIndirectDataContent(asn1.SetOf):
    _child_spec = SpcIndirectDataContent


class SetOfNameValue(asn1.SetOf):
    _child_spec = NameValue


class SetOfMemberInfo(asn1.SetOf):
    _child_spec = MemberInfo


class SetOfMemberInfo2(asn1.SetOf):
    _child_spec = MemberInfo2


class CatalogAttribute(asn1.Sequence):
    _fields = [("type", asn1.ObjectIdentifier), ("values", None)]
    _oid_specs = {
        "1.3.6.1.4.1.311.2.1.4": SetOfSpcIndirectDataContent,
        "1.3.6.1.4.1.311.12.2.1": SetOfNameValue,
        "1.3.6.1.4.1.311.12.2.2": SetOfMemberInfo,
        "1.3.6.1.4.1.311.12.2.3": SetOfMemberInfo2,
    }

    def _values_spec(self):
        return self._oid_specs.get(self["type"].dotted, SetOfAny)

    _spec_callbacks = {"values": _values_spec}


class CatalogAttributes(asn1.SetOf):
    _child_spec = CatalogAttribute


class TrustedSubject(asn1.Sequence):
    _fields = [
        ("subject_identifier", asn1.OctetString),
        ("attributes", CatalogAttributes, {"optional": True}),
    ]


class TrustedSubjects(asn1.SequenceOf):
    _child_spec = TrustedSubject


class SubjectUsage(asn1.SequenceOf):
    _child_spec = asn1.ObjectIdentifier


class ChoiceOfTime(asn1.Choice):
    _alternatives = [("utc_time", asn1.UTCTime), ("generalized_time", asn1.GeneralizedTime)]


class CtlExtension(asn1.Sequence):
    _fields = [
        ("extn_id", asn1.ObjectIdentifier),
        ("critical", asn1.Boolean, {"default": False}),
        ("extn_value", asn1.OctetString),
    ]


class CtlExtensions(asn1.SequenceOf):
    _child_spec = CtlExtension


class CertificateTrustList(asn1.Sequence):
    _fields = [
        ("version", asn1.Integer, {"default": 0}),
        ("subject_usage", SubjectUsage),
        ("list_identifier", asn1.OctetString, {"optional": True}),
        ("sequence_number", asn1.Integer, {"optional": True}),
        ("this_update", ChoiceOfTime),
        ("next_update", ChoiceOfTime, {"optional": True}),
        ("subject_algorithm", AlgorithmIdentifier),
        ("trusted_subjects", TrustedSubjects, {"optional": True}),
        ("extensions", CtlExtensions, {"explicit": 0, "optional": True}),
    ]


class EncapsulatedCtl(asn1.Sequence):
    _fields = [
        ("content_type", asn1.ObjectIdentifier),
        ("content", CertificateTrustList, {"explicit": 0, "optional": True}),
    ]


class CatalogSignedData(asn1.Sequence):
    _fields = [
        ("version", asn1.Integer),
        ("digest_algorithms", cms.DigestAlgorithms),
        ("encap_content_info", EncapsulatedCtl),
        ("certificates", cms.CertificateSet, {"implicit": 0, "optional": True}),
        ("crls", cms.RevocationInfoChoices, {"implicit": 1, "optional": True}),
        ("signer_infos", cms.SignerInfos),
    ]


class CatalogContentInfo(asn1.Sequence):
    _fields = [("content_type", asn1.ObjectIdentifier), ("content", CatalogSignedData, {"explicit": 0})]


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
    the CAB SIP's member encoding is not known (signing.md §4).
    """
    source: pe.Source = member.data if member.data is not None else member.path
    where = member.name if member.data is not None else str(member.path)
    try:
        if pe.is_pe(source):
            d = pe.authenticode_digests(source, ("sha256", "sha1"))
            size = len(member.data) if member.data is not None else os.path.getsize(member.path)
            return MemberHash("pe", d["sha256"], d["sha1"], size)
        h256, h1 = hashlib.sha256(), hashlib.sha1()
        if member.data is not None:
            h256.update(member.data)
            h1.update(member.data)
            size = len(member.data)
        else:
            size = 0
            with open(member.path, "rb") as f:
                while chunk := f.read(1 << 20):
                    h256.update(chunk)
                    h1.update(chunk)
                    size += len(chunk)
        return MemberHash("flat", h256.digest(), h1.digest(), size)
    except OSError as e:
        raise FFUError(f"cannot read catalog member: {e.strerror or e}", file=where) from e
    except FFUError as e:
        raise e.at(where) from None


def _is_empty(m: MemberHash) -> bool:
    return m.size == 0 or (m.size is None and m.kind == "flat" and m.sha256 == _EMPTY_SHA256)


# ----------------------------------------------------------------------------- encoders


def _algorithm(oid: str) -> AlgorithmIdentifier:
    return AlgorithmIdentifier({"algorithm": oid, "parameters": asn1.Null()})


def _empty_file_link() -> SpcLink:
    return SpcLink(name="file", value=SpcString(name="unicode", value=""))


def _spc_data(kind: str) -> asn1.Asn1Value:
    """`30 0a 03 02 05 a0 a0 04 a2 02 80 00` (PE) / `a2 02 80 00` (flat), as makecat writes them."""
    if kind == "pe":
        return SpcPeImageData(
            {"flags": {"include_resources", "include_import_address_table"}, "file": _empty_file_link()}
        )
    return _empty_file_link()


@functools.cache
def _member_info2(kind: str) -> bytes:
    return CatalogAttribute(
        {"type": OID_CAT_MEMBERINFO2, "values": [MemberInfo2(name=kind, value=asn1.Null())]}
    ).dump()


@functools.cache
def _member_info(kind: str) -> bytes:
    value = MemberInfo({"sip_guid": _SIP_GUID[kind], "cert_version": _MEMBERINFO_CERT_VERSION})
    return CatalogAttribute({"type": OID_CAT_MEMBERINFO, "values": [value]}).dump()


@functools.cache
def _spc_parts(kind: str, algo: str) -> tuple[bytes, bytes, bytes]:
    """Encoded (attribute OID, SpcAttributeTypeAndOptionalValue, AlgorithmIdentifier) for a kind."""
    value = SpcIndirectDataContent(
        {
            "data": {"type": _SPC_DATA_OID[kind], "value": _spc_data(kind)},
            "message_digest": {"digest_algorithm": _algorithm(_DIGEST_OIDS[algo]), "digest": b""},
        }
    )
    return (
        asn1.ObjectIdentifier(OID_SPC_INDIRECT_DATA).dump(),
        value["data"].dump(),
        value["message_digest"]["digest_algorithm"].dump(),
    )


def _spc_indirect(kind: str, algo: str, digest: bytes) -> bytes:
    """Attribute { SPC_INDIRECT_DATA, { SpcIndirectDataContent } } with `digest`, as DER.

    Encoded by concatenation around cached constant parts: per-member asn1crypto encoding
    dominated package build time (tests check the result against asn1crypto and osslsigncode)."""
    oid, data, alg = _spc_parts(kind, algo)
    content = _der(0x30, data + _der(0x30, alg + _der(0x04, digest)))
    return _der(0x30, oid + _der(0x31, content))


def _name_value(name: str, value: str, flags: int = NAMEVALUE_FLAGS) -> bytes:
    if "\0" in name or "\0" in value:
        raise FFUError(f"catalog attribute {name!r} contains a NUL character")
    return NameValue({"name": name, "flags": flags, "value": value.encode("utf-16-le") + b"\0\0"}).dump()


def _utc_time(when: datetime) -> ChoiceOfTime:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # build epochs are UTC; a naive value means UTC
    when = when.astimezone(UTC).replace(microsecond=0)
    if not 1950 <= when.year <= 2049:
        raise FFUError(f"catalog time {when.isoformat()} outside the UTCTime range 1950-2049")
    return ChoiceOfTime(name="utc_time", value=asn1.UTCTime(when))


def _default_list_identifier(tag: bytes, identifiers: Iterable[bytes], *extra: str) -> bytes:
    h = hashlib.sha256(b"ffuforge catalog " + tag + b"\0")
    for s in extra:
        h.update(s.encode("utf-8") + b"\0")
    for ident in identifiers:
        h.update(len(ident).to_bytes(2, "big") + ident)
    return h.digest()[:16]


OID_CTL_DER = asn1.ObjectIdentifier(OID_CTL).dump()
OID_SIGNED_DATA_DER = asn1.ObjectIdentifier(OID_SIGNED_DATA).dump()
_DIGEST_ALG_DER = {
    name: asn1.ObjectIdentifier(oid).dump() + b"\x05\x00" for name, oid in _DIGEST_OIDS.items()
}


def _der(tag: int, content: bytes) -> bytes:
    """One DER TLV (low tag number, definite length)."""
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(size))) + size + content


def _subjects(entries: dict[bytes, list[bytes]]) -> TrustedSubjects:
    # Subjects are encoded by concatenation (attribute SETs DER-sorted) and the list loaded back:
    # asn1crypto re-encodes nested values on every containing dump, which was quadratic.
    ders = [
        _der(0x30, _der(0x04, ident) + _der(0x31, b"".join(sorted(entries[ident]))))
        for ident in sorted(entries)
    ]
    return TrustedSubjects.load(_der(0x30, b"".join(ders)))


def _add_subject(entries: dict[bytes, list[bytes]], ident: bytes, attrs: list[bytes]):
    if ident in entries:
        if sorted(entries[ident]) != sorted(attrs):
            raise FFUError(f"catalog subject {ident.hex()} listed twice with different attributes")
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
        raise FFUError(f"catalog listIdentifier must be 16 bytes, got {len(list_identifier)}")
    ctl = {
        "subject_usage": [OID_CATALOG_LIST],
        "list_identifier": list_identifier,
        "this_update": _utc_time(this_update),
        "subject_algorithm": _algorithm(member_oid),
        "trusted_subjects": subjects,
    }
    if attributes:
        ctl["extensions"] = [
            {"extn_id": OID_CAT_NAMEVALUE, "extn_value": _name_value(n, v)} for n, v in attributes
        ]
    ctl_der = CertificateTrustList(ctl).dump()
    # ContentInfo { signedData, [0] SignedData { 1, {}, { szOID_CTL, [0] CTL }, {} } }, assembled
    # from the encoded CTL so the (large) subject list is not re-encoded by the outer layers.
    encap = _der(0x30, OID_CTL_DER + _der(0xA0, ctl_der))
    signed = _der(0x30, b"\x02\x01\x01" + b"\x31\x00" + encap + b"\x31\x00")
    return _der(0x30, OID_SIGNED_DATA_DER + _der(0xA0, signed))


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
        mi2 = _member_info2(m.kind)
        spc = _spc_indirect(m.kind, "sha256", m.sha256)
        _add_subject(entries, m.sha256, [mi2, spc])
        _add_subject(entries, m.sha1, [mi2])
    attr_name = DEBUG_PACKAGE if test_package else package_name
    if not attr_name:
        raise FFUError("catalog needs a package name")
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
        if kind not in _SIP_GUID:
            raise ValueError(f"v1 member kind must be 'pe' or 'flat', not {kind!r}")
        if len(digest) != 20:
            raise ValueError(f"v1 member digest must be SHA-1 (20 bytes), got {len(digest)}")
        text = label if label is not None else digest.hex().upper()
        ident = text.encode("utf-16-le") + b"\0\0"
        _add_subject(entries, ident, [_spc_indirect(kind, "sha1", digest), _member_info(kind)])
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
        return _tlv_value(self.ctl_der)


def _tlv_value(tlv: bytes) -> bytes:
    """The value part of a single DER TLV (low tag number, definite length)."""
    if len(tlv) < 2:
        raise ValueError("truncated TLV")
    n = tlv[1]
    k = 0 if n < 0x80 else n & 0x7F
    if n == 0x80 or len(tlv) < 2 + k:
        raise ValueError("indefinite or truncated length")
    return tlv[2 + k :]


def _load(der: bytes) -> CatalogParts:
    try:
        ci = CatalogContentInfo.load(bytes(der), strict=True)
        if ci["content_type"].dotted != OID_SIGNED_DATA:
            raise FFUError(f"catalog ContentInfo is {ci['content_type'].dotted}, not signedData")
        sd = ci["content"]
        encap = sd["encap_content_info"]
        if encap["content_type"].dotted != OID_CTL:
            raise FFUError(f"catalog content is {encap['content_type'].dotted}, not a CTL")
        ctl = encap["content"]
        if isinstance(ctl, asn1.Void):
            raise FFUError("not a valid catalog: it has no CTL content")
        raw = _tlv_value(ctl.dump())  # drop the [0] EXPLICIT wrapper
        return CatalogParts(ci, sd, ctl, raw)
    except FFUError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as e:
        raise FFUError(f"not a valid catalog: {e}") from e


def signed_data_parts(der: bytes) -> CatalogParts:
    """Load a catalog (signed or not) into the structures a signer needs."""
    return _load(der)


def ctl_der(content_info_der: bytes) -> bytes:
    """The complete DER (tag+length+value) of the CTL SEQUENCE inside a catalog."""
    return _load(content_info_der).ctl_der


def signed_content(content_info_der: bytes) -> bytes:
    """The bytes a catalog signer hashes for messageDigest: the CTL SEQUENCE *without* its tag
    and length. signing.md §6 says the complete DER; osslsigncode 2.9 and signify both use the
    contents octets (RFC 2315 §9.3), and osslsigncode rejects a signature over the full TLV."""
    encap = _signed_data_fields(content_info_der)[2]
    children = _children(encap)
    if len(children) != 2 or children[1][:1] != b"\xa0":
        raise FFUError("not a valid catalog: it has no CTL content")
    return _tlv_value(_tlv_value(children[1]))


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
    version, _algs, encap, certs, crls, _infos = _signed_data_fields(der)
    algs = _der(0x30, _DIGEST_ALG_DER[digest_algorithm]) if signer_infos else b""
    if certificates:  # SET OF: DER order, as asn1crypto writes it
        certs = _der(0xA0, b"".join(sorted(certificates)))
    signed = _der(
        0x30, version + _der(0x31, algs) + encap + certs + crls + _der(0x31, b"".join(sorted(signer_infos)))
    )
    return _der(0x30, OID_SIGNED_DATA_DER + _der(0xA0, signed))


def _tlv_bounds(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """(start of value, end) of the DER TLV at `pos` (low tag number, definite length) in buf[:end]."""
    if pos + 2 > end or buf[pos] & 0x1F == 0x1F:
        raise FFUError("not a valid catalog: truncated or high-tag-number DER")
    n, start = buf[pos + 1], pos + 2
    if n & 0x80:
        k = n & 0x7F
        if k == 0 or k > 4 or start + k > end:
            raise FFUError("not a valid catalog: indefinite or oversized DER length")
        n, start = int.from_bytes(buf[start : start + k], "big"), start + k
    if start + n > end:
        raise FFUError("not a valid catalog: DER value runs past its container")
    return start, start + n


def _children(tlv: bytes) -> list[bytes]:
    """The TLVs inside one constructed TLV."""
    pos, end = _tlv_bounds(tlv, 0, len(tlv))
    out = []
    while pos < end:
        nxt = _tlv_bounds(tlv, pos, end)[1]
        out.append(tlv[pos:nxt])
        pos = nxt
    return out


def _signed_data_fields(der: bytes) -> tuple[bytes, bytes, bytes, bytes, bytes, bytes]:
    """(version, digestAlgorithms, encapContentInfo, [0] certificates or b"", [1] crls or b"",
    signerInfos) of a catalog's SignedData, each as its stored TLV."""
    der = bytes(der)
    if not der or der[0] != 0x30 or _tlv_bounds(der, 0, len(der))[1] != len(der):
        raise FFUError("not a valid catalog: not one DER SEQUENCE")
    ci = _children(der)
    if len(ci) != 2 or ci[0] != OID_SIGNED_DATA_DER or ci[1][0] != 0xA0:
        raise FFUError("not a valid catalog: the ContentInfo is not signedData")
    sd = _children(ci[1])
    if len(sd) != 1 or sd[0][0] != 0x30:
        raise FFUError("not a valid catalog: malformed SignedData")
    fields = _children(sd[0])
    if len(fields) < 4 or [f[0] for f in fields[:3]] != [0x02, 0x31, 0x30]:
        raise FFUError("not a valid catalog: malformed SignedData")
    version, algs, encap, *rest = fields
    certs = rest.pop(0) if rest and rest[0][0] == 0xA0 else b""
    crls = rest.pop(0) if rest and rest[0][0] == 0xA1 else b""
    if len(rest) != 1 or rest[0][0] != 0x31:
        raise FFUError("not a valid catalog: malformed SignedData")
    enc = _children(encap)
    if not enc or enc[0] != OID_CTL_DER:
        raise FFUError("not a valid catalog: its content is not a CTL")
    return version, algs, encap, certs, crls, rest[0]


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
                kind = kind or _SIP_KIND.get(sip_guid.upper())
            elif oid == OID_SPC_INDIRECT_DATA:
                alg = value["message_digest"]["digest_algorithm"]["algorithm"].dotted
                digest_algorithm = _DIGEST_NAMES.get(alg, alg)
                digest = value["message_digest"]["digest"].native
                data = value["data"]
                spc_data = (data["type"].dotted, data["value"].dump())
                kind = kind or _SPC_KIND.get(data["type"].dotted)
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
            raise FFUError("CTL is not a catalog (subjectUsage lacks 1.3.6.1.4.1.311.12.1.1)")
        alg = ctl["subject_algorithm"]["algorithm"].dotted
        version = {OID_CATALOG_LIST_MEMBER: 1, OID_CATALOG_LIST_MEMBER2: 2}.get(alg)
        subjects: dict[bytes, SubjectInfo] = {}
        order = []
        trusted = ctl["trusted_subjects"]
        for ts in trusted if not isinstance(trusted, asn1.Void) else []:
            ident = ts["subject_identifier"].native
            if ident in subjects:
                raise FFUError(f"catalog lists subject {ident.hex()} twice")
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
        raise FFUError(f"not a valid catalog: {e}") from e
    return ParsedCatalog(
        version=version,
        subjects=subjects,
        subject_order=tuple(order),
        attributes=attributes,
        list_identifier=list_id,
        this_update=this_update,
        signed=signed,
    )
