"""DER building blocks of the in-process signatures: OIDs, algorithm identifiers, the signed
attributes and the SpcIndirectDataContent of CABs and PE files.

Separate from :mod:`.signers` so the byte-level encoding (what makes the output equal to
osslsigncode's) can be read apart from the signing flow. Constants are encoded once at import.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime

from asn1crypto import core as asn1

from ..errors import ConfigError
from ..formats import catalog

OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
OID_CONTENT_TYPE = "1.2.840.113549.1.9.3"
OID_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
OID_SIGNING_TIME = "1.2.840.113549.1.9.5"
OID_SPC_INDIRECT_DATA = "1.3.6.1.4.1.311.2.1.4"
OID_SPC_STATEMENT_TYPE = "1.3.6.1.4.1.311.2.1.11"
OID_SPC_INDIVIDUAL_SP_KEY_PURPOSE = "1.3.6.1.4.1.311.2.1.21"
OID_SPC_PE_IMAGE_DATA = "1.3.6.1.4.1.311.2.1.15"
OID_RSA_ENCRYPTION = "1.2.840.113549.1.1.1"

der = catalog.der_tlv  # one DER TLV encoder for the package


@functools.lru_cache(maxsize=64)
def oid(dotted: str) -> bytes:
    return asn1.ObjectIdentifier(dotted).dump()


INT1 = b"\x02\x01\x01"
_NULL = b"\x05\x00"
SHA256_ALG = der(0x30, oid(catalog.OID_SHA256) + _NULL)
RSA_ALG = der(0x30, oid(OID_RSA_ENCRYPTION) + _NULL)
_OBSOLETE = "<<<Obsolete>>>".encode("utf-16-be")
# SpcLink [2] file -> SpcString [0] unicode "<<<Obsolete>>>", as signtool and osslsigncode write it.
_OBSOLETE_FILE_LINK = der(0xA2, der(0x80, _OBSOLETE))
# SpcAttributeTypeAndOptionalValue of a CAB: { SPC_CAB_DATA, SpcLink }, as osslsigncode writes it.
CAB_DATA = der(0x30, oid(catalog.OID_SPC_CAB_DATA) + _OBSOLETE_FILE_LINK)
# ... of a PE: { SPC_PE_IMAGE_DATA, SpcPeImageData { flags {includeResources}, [0] SpcLink } }.
PE_DATA = der(
    0x30, oid(OID_SPC_PE_IMAGE_DATA) + der(0x30, b"\x03\x02\x07\x80" + der(0xA0, _OBSOLETE_FILE_LINK))
)


def tlv_value(tlv: bytes) -> bytes:
    n = tlv[1]
    return tlv[2 + (0 if n < 0x80 else n & 0x7F) :]


def epoch_datetime(epoch: int) -> datetime:
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch <= 253402300799:
        raise ConfigError(f"signing time {epoch!r} is not a Unix time in seconds (0 .. year 9999)")
    return datetime.fromtimestamp(epoch, UTC)


@functools.lru_cache(maxsize=16)
def _time_der(when: datetime) -> bytes:
    """UTCTime for 1950-2049, GeneralizedTime otherwise (RFC 5652 §11.3)."""
    if 1950 <= when.year <= 2049:
        return asn1.UTCTime(when).dump()
    return asn1.GeneralizedTime(when).dump()


_ATTR_CONTENT_TYPE, _ATTR_SIGNING_TIME, _ATTR_MESSAGE_DIGEST = (
    oid(OID_CONTENT_TYPE),
    oid(OID_SIGNING_TIME),
    oid(OID_MESSAGE_DIGEST),
)
_ATTR_STATEMENT_TYPE = der(
    0x30, oid(OID_SPC_STATEMENT_TYPE) + der(0x31, der(0x30, oid(OID_SPC_INDIVIDUAL_SP_KEY_PURPOSE)))
)


def signed_attributes(content_type: str, digest: bytes, when: datetime) -> bytes:
    """The contents of the signed-attributes SET, DER-sorted."""
    attrs = [
        der(0x30, _ATTR_CONTENT_TYPE + der(0x31, oid(content_type))),
        der(0x30, _ATTR_SIGNING_TIME + der(0x31, _time_der(when))),
        _ATTR_STATEMENT_TYPE,
        der(0x30, _ATTR_MESSAGE_DIGEST + der(0x31, der(0x04, digest))),
    ]
    return b"".join(sorted(attrs))


def indirect_data(data: bytes, digest: bytes) -> bytes:
    """SpcIndirectDataContent { data, DigestInfo { sha256, digest } } as DER."""
    return der(0x30, data + der(0x30, SHA256_ALG + der(0x04, digest)))
