"""The catalog's ASN.1: OIDs, the structure declarations (asn1crypto), the small DER encoders
the builder assembles members from, and the DER walking that reads a SignedData without
re-encoding it.

Separate from `catalog` (which builds, signs and reads whole catalogs) so the encoding rules
sit in one place. The structures are declared here rather than borrowed from signify: signify
is a test-only dependency and it patches asn1crypto's global CMS maps when imported, which must
not change what we write. The SignedData keeps the CTL as a real [0] EXPLICIT SEQUENCE (not an
OCTET STRING, as generic CMS would).
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime

from asn1crypto import cms
from asn1crypto import core as asn1

from ..errors import ConfigError, FormatError

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
DIGEST_NAMES = {v: k for k, v in _DIGEST_OIDS.items()}

# Per-kind member encodings, as makecat writes them (PE and flat-file SIPs).
_SPC_DATA_OID = {"pe": OID_SPC_PE_IMAGE_DATA, "flat": OID_SPC_CAB_DATA}
SIP_GUID = {
    "pe": "{C689AAB8-8E78-11D0-8C47-00C04FC295EE}",
    "flat": "{DE351A42-8E59-11D0-8C47-00C04FC295EE}",
}
SIP_KIND = {v: k for k, v in SIP_GUID.items()}
SPC_KIND = {OID_SPC_PE_IMAGE_DATA: "pe", OID_SPC_CAB_DATA: "flat", OID_SPC_LINK: "cab"}
_MEMBERINFO_CERT_VERSION = 512

OS_ATTR = "2:6.1,2:6.0,2:5.2,2:5.1"
NAMEVALUE_FLAGS = 0x00010001  # DATAASCII | NAMEASCII
DEBUG_PACKAGE = "DebugPackage"

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


# ----------------------------------------------------------------------------- encoders


def algorithm_identifier(oid: str) -> AlgorithmIdentifier:
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
def member_info2(kind: str) -> bytes:
    return CatalogAttribute(
        {"type": OID_CAT_MEMBERINFO2, "values": [MemberInfo2(name=kind, value=asn1.Null())]}
    ).dump()


@functools.cache
def member_info(kind: str) -> bytes:
    value = MemberInfo({"sip_guid": SIP_GUID[kind], "cert_version": _MEMBERINFO_CERT_VERSION})
    return CatalogAttribute({"type": OID_CAT_MEMBERINFO, "values": [value]}).dump()


@functools.cache
def _spc_parts(kind: str, algo: str) -> tuple[bytes, bytes, bytes]:
    """Encoded (attribute OID, SpcAttributeTypeAndOptionalValue, AlgorithmIdentifier) for a kind."""
    value = SpcIndirectDataContent(
        {
            "data": {"type": _SPC_DATA_OID[kind], "value": _spc_data(kind)},
            "message_digest": {"digest_algorithm": algorithm_identifier(_DIGEST_OIDS[algo]), "digest": b""},
        }
    )
    return (
        asn1.ObjectIdentifier(OID_SPC_INDIRECT_DATA).dump(),
        value["data"].dump(),
        value["message_digest"]["digest_algorithm"].dump(),
    )


def spc_indirect(kind: str, algo: str, digest: bytes) -> bytes:
    """Attribute { SPC_INDIRECT_DATA, { SpcIndirectDataContent } } with `digest`, as DER.

    Encoded by concatenation around cached constant parts: per-member asn1crypto encoding
    dominated package build time (tests check the result against asn1crypto and osslsigncode)."""
    oid, data, alg = _spc_parts(kind, algo)
    content = der_tlv(0x30, data + der_tlv(0x30, alg + der_tlv(0x04, digest)))
    return der_tlv(0x30, oid + der_tlv(0x31, content))


def name_value(name: str, value: str, flags: int = NAMEVALUE_FLAGS) -> bytes:
    if "\0" in name or "\0" in value:
        raise ConfigError(f"catalog attribute {name!r} contains a NUL character")
    return NameValue({"name": name, "flags": flags, "value": value.encode("utf-16-le") + b"\0\0"}).dump()


def utc_time(when: datetime) -> ChoiceOfTime:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # build epochs are UTC; a naive value means UTC
    when = when.astimezone(UTC).replace(microsecond=0)
    if not 1950 <= when.year <= 2049:
        raise ConfigError(f"catalog time {when.isoformat()} outside the UTCTime range 1950-2049")
    return ChoiceOfTime(name="utc_time", value=asn1.UTCTime(when))


OID_CTL_DER = asn1.ObjectIdentifier(OID_CTL).dump()
OID_SIGNED_DATA_DER = asn1.ObjectIdentifier(OID_SIGNED_DATA).dump()
DIGEST_ALG_DER = {name: asn1.ObjectIdentifier(oid).dump() + b"\x05\x00" for name, oid in _DIGEST_OIDS.items()}


def der_tlv(tag: int, content: bytes) -> bytes:
    """One DER TLV (low tag number, definite length)."""
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(size))) + size + content


# ----------------------------------------------------------------------------- DER walking


def tlv_value(tlv: bytes) -> bytes:
    """The value part of a single DER TLV (low tag number, definite length)."""
    if len(tlv) < 2:
        raise ValueError("truncated TLV")
    n = tlv[1]
    k = 0 if n < 0x80 else n & 0x7F
    if n == 0x80 or len(tlv) < 2 + k:
        raise ValueError("indefinite or truncated length")
    return tlv[2 + k :]


def _tlv_bounds(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """(start of value, end) of the DER TLV at `pos` (low tag number, definite length) in buf[:end]."""
    if pos + 2 > end or buf[pos] & 0x1F == 0x1F:
        raise FormatError("not a valid catalog: truncated or high-tag-number DER")
    n, start = buf[pos + 1], pos + 2
    if n & 0x80:
        k = n & 0x7F
        if k == 0 or k > 4 or start + k > end:
            raise FormatError("not a valid catalog: indefinite or oversized DER length")
        n, start = int.from_bytes(buf[start : start + k], "big"), start + k
    if start + n > end:
        raise FormatError("not a valid catalog: DER value runs past its container")
    return start, start + n


def tlv_children(tlv: bytes) -> list[bytes]:
    """The TLVs inside one constructed TLV."""
    pos, end = _tlv_bounds(tlv, 0, len(tlv))
    out = []
    while pos < end:
        nxt = _tlv_bounds(tlv, pos, end)[1]
        out.append(tlv[pos:nxt])
        pos = nxt
    return out


def signed_data_fields(der: bytes) -> tuple[bytes, bytes, bytes, bytes, bytes, bytes]:
    """(version, digestAlgorithms, encapContentInfo, [0] certificates or b"", [1] crls or b"",
    signerInfos) of a catalog's SignedData, each as its stored TLV."""
    der = bytes(der)
    if not der or der[0] != 0x30 or _tlv_bounds(der, 0, len(der))[1] != len(der):
        raise FormatError("not a valid catalog: not one DER SEQUENCE")
    ci = tlv_children(der)
    if len(ci) != 2 or ci[0] != OID_SIGNED_DATA_DER or ci[1][0] != 0xA0:
        raise FormatError("not a valid catalog: the ContentInfo is not signedData")
    sd = tlv_children(ci[1])
    if len(sd) != 1 or sd[0][0] != 0x30:
        raise FormatError("not a valid catalog: malformed SignedData")
    fields = tlv_children(sd[0])
    if len(fields) < 4 or [f[0] for f in fields[:3]] != [0x02, 0x31, 0x30]:
        raise FormatError("not a valid catalog: malformed SignedData")
    version, algs, encap, *rest = fields
    certs = rest.pop(0) if rest and rest[0][0] == 0xA0 else b""
    crls = rest.pop(0) if rest and rest[0][0] == 0xA1 else b""
    if len(rest) != 1 or rest[0][0] != 0x31:
        raise FormatError("not a valid catalog: malformed SignedData")
    enc = tlv_children(encap)
    if not enc or enc[0] != OID_CTL_DER:
        raise FormatError("not a valid catalog: its content is not a CTL")
    return version, algs, encap, certs, crls, rest[0]
