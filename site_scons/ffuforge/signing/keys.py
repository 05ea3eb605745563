"""Loading and checking keys and certificates for :func:`.signers.load_key_signer`.

PEM/DER/PFX parsing, the leaf's Code Signing usage and chain ordering live here, apart from the
signers, so that what a key file may hold and why it is refused can be read in one place. Errors
name the file but never hold key material or passwords.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..errors import SigningError
from . import verify

# ----------------------------------------------------------------------------- certificates


def common_name(cert: x509.Certificate) -> str:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else cert.subject.rfc4514_string()


def der_of(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(der_of(cert)).hexdigest()


def self_signed(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject and verify.issued_by(cert, cert)


def order_chain(leaf: x509.Certificate, pool: Sequence[x509.Certificate]) -> list[x509.Certificate]:
    """leaf, its issuer, that one's issuer, ... as far as `pool` reaches; unrelated certs dropped."""
    chain, cur = [leaf], leaf
    while not self_signed(cur) and len(chain) <= 10:
        issuer = next((c for c in pool if c not in chain and verify.issued_by(cur, c)), None)
        if issuer is None:
            break
        chain.append(issuer)
        cur = issuer
    return chain


# ----------------------------------------------------------------------------- loading keys


def load_certs(data: bytes, where: str) -> list[x509.Certificate]:
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data) if b"CERTIFICATE-----" in data else []
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise SigningError("not a PEM or DER certificate file", file=where) from None


def load_private_key(data: bytes, password: str | None, where: str):
    pw = password.encode("utf-8") if password else None
    try:
        if b"-----BEGIN" in data:
            return serialization.load_pem_private_key(data, pw)
        return serialization.load_der_private_key(data, pw)
    except TypeError:
        if pw is None:
            raise SigningError("the private key is encrypted; give its password", file=where) from None
        raise SigningError("the private key is not encrypted; do not give a password", file=where) from None
    except ValueError:
        if pw is not None:
            raise SigningError(
                "cannot decrypt the private key: wrong password or not a key file", file=where
            ) from None
        raise SigningError(
            "not a PEM or DER private key (or an unsupported key format)", file=where
        ) from None
    except UnsupportedAlgorithm:
        raise SigningError("unsupported private key type", file=where) from None


def load_pfx(data: bytes, password: str | None, where: str):
    attempts = [password.encode("utf-8")] if password else [None, b""]
    for pw in attempts:
        try:
            return pkcs12.load_pkcs12(data, pw)
        except ValueError:
            continue
    if password:
        raise SigningError("cannot open the PFX: wrong password or not a PKCS#12 file", file=where) from None
    raise SigningError(
        "cannot open the PFX: it needs a password (or is not a PKCS#12 file)", file=where
    ) from None


def rsa_numbers(cert: x509.Certificate):
    public = cert.public_key()
    return public.public_numbers() if isinstance(public, rsa.RSAPublicKey) else None


def check_leaf_usage(leaf: x509.Certificate, where: str) -> None:
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        eku = None
    if eku is None or ExtendedKeyUsageOID.CODE_SIGNING not in eku:
        raise SigningError(
            f"certificate '{common_name(leaf)}' lacks the Code Signing extended key usage (1.3.6.1.5.5.7.3.3)",
            file=where,
        )
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not usage.digital_signature:
        raise SigningError(
            f"certificate '{common_name(leaf)}' does not allow digitalSignature (keyUsage)", file=where
        )
