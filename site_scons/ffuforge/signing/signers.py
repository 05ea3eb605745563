"""Signing: `update.cat` (CMS over the CTL), CAB Authenticode and embedded PE signatures.

Two kinds of signer share one interface so the build graph does not care where the key is:
a `KeySigner` holds an RSA key and signs in-process; a `CommandSigner` hands a copy of each
file to an external tool (an HSM wrapper, the kit's `sign.cmd` equivalent) and checks what
comes back before accepting it.

The in-process signatures are what osslsigncode 2.9 writes with `-time` (signing.md §6): a
v1 SignerInfo by issuerAndSerialNumber, SHA-256, RSA PKCS#1 v1.5 (`rsaEncryption`), signed
attributes contentType, signingTime (= the build epoch), SpcStatementType (individual code
signing) and messageDigest, no SpcSpOpusInfo, no timestamp; the certificates are sorted as
a DER SET. PKCS#1 v1.5 is deterministic, so the same key, input and epoch always give the
same bytes, and the output can be compared byte for byte with osslsigncode's. The
messageDigest covers the signed content's *contents octets*: the CTL's for catalogs (not the
full TLV signing.md §6 claims; osslsigncode and signify agree) and the
SpcIndirectDataContent's for CABs and PE files.

Secrets never leave this module: no key material or password is logged, put in an error
message or in `identity` (which is for build signatures).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shlex
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from asn1crypto import core as asn1
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..errors import FFUError
from ..formats import cab, catalog, pe
from ..util.atomic import atomic_output, write_bytes
from ..util.paths import open_regular
from . import verify

__all__ = ["CommandSigner", "KeySigner", "Signer", "load_key_signer"]

OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
OID_CONTENT_TYPE = "1.2.840.113549.1.9.3"
OID_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
OID_SIGNING_TIME = "1.2.840.113549.1.9.5"
OID_SPC_INDIRECT_DATA = "1.3.6.1.4.1.311.2.1.4"
OID_SPC_STATEMENT_TYPE = "1.3.6.1.4.1.311.2.1.11"
OID_SPC_INDIVIDUAL_SP_KEY_PURPOSE = "1.3.6.1.4.1.311.2.1.21"
OID_SPC_PE_IMAGE_DATA = "1.3.6.1.4.1.311.2.1.15"
OID_RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
MIN_RSA_BITS = 2048
DEFAULT_COMMAND_TIMEOUT = 300.0
TEST_MARK = "TEST ONLY"

WIN_CERT_REVISION_2_0 = 0x0200
WIN_CERT_TYPE_PKCS_SIGNED_DATA = 2
_PE_SUFFIXES = (".exe", ".sys", ".dll")


# ----------------------------------------------------------------------------- DER helpers


_der = catalog.der_tlv  # one DER TLV encoder for the package


@functools.lru_cache(maxsize=64)
def _oid(dotted: str) -> bytes:
    return asn1.ObjectIdentifier(dotted).dump()


_INT1 = b"\x02\x01\x01"
_NULL = b"\x05\x00"
_SHA256_ALG = _der(0x30, _oid(catalog.OID_SHA256) + _NULL)
_RSA_ALG = _der(0x30, _oid(OID_RSA_ENCRYPTION) + _NULL)
_OBSOLETE = "<<<Obsolete>>>".encode("utf-16-be")
# SpcLink [2] file -> SpcString [0] unicode "<<<Obsolete>>>", as signtool and osslsigncode write it.
_OBSOLETE_FILE_LINK = _der(0xA2, _der(0x80, _OBSOLETE))
# SpcAttributeTypeAndOptionalValue of a CAB: { SPC_CAB_DATA, SpcLink } (signing.md §6).
_CAB_DATA = _der(0x30, _oid(catalog.OID_SPC_CAB_DATA) + _OBSOLETE_FILE_LINK)
# ... of a PE: { SPC_PE_IMAGE_DATA, SpcPeImageData { flags {includeResources}, [0] SpcLink } }.
_PE_DATA = _der(
    0x30, _oid(OID_SPC_PE_IMAGE_DATA) + _der(0x30, b"\x03\x02\x07\x80" + _der(0xA0, _OBSOLETE_FILE_LINK))
)


def _tlv_value(tlv: bytes) -> bytes:
    n = tlv[1]
    return tlv[2 + (0 if n < 0x80 else n & 0x7F) :]


def _epoch_datetime(epoch: int) -> datetime:
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch <= 253402300799:
        raise FFUError(f"signing time {epoch!r} is not a Unix time in seconds (0 .. year 9999)")
    return datetime.fromtimestamp(epoch, UTC)


@functools.lru_cache(maxsize=16)
def _time_der(when: datetime) -> bytes:
    """UTCTime for 1950-2049, GeneralizedTime otherwise (RFC 5652 §11.3)."""
    if 1950 <= when.year <= 2049:
        return asn1.UTCTime(when).dump()
    return asn1.GeneralizedTime(when).dump()


_ATTR_CONTENT_TYPE, _ATTR_SIGNING_TIME, _ATTR_MESSAGE_DIGEST = (
    _oid(OID_CONTENT_TYPE),
    _oid(OID_SIGNING_TIME),
    _oid(OID_MESSAGE_DIGEST),
)
_ATTR_STATEMENT_TYPE = _der(
    0x30, _oid(OID_SPC_STATEMENT_TYPE) + _der(0x31, _der(0x30, _oid(OID_SPC_INDIVIDUAL_SP_KEY_PURPOSE)))
)


def _signed_attributes(content_type: str, digest: bytes, when: datetime) -> bytes:
    """The contents of the signed-attributes SET, DER-sorted."""
    attrs = [
        _der(0x30, _ATTR_CONTENT_TYPE + _der(0x31, _oid(content_type))),
        _der(0x30, _ATTR_SIGNING_TIME + _der(0x31, _time_der(when))),
        _ATTR_STATEMENT_TYPE,
        _der(0x30, _ATTR_MESSAGE_DIGEST + _der(0x31, _der(0x04, digest))),
    ]
    return b"".join(sorted(attrs))


def _indirect_data(data: bytes, digest: bytes) -> bytes:
    """SpcIndirectDataContent { data, DigestInfo { sha256, digest } } as DER."""
    return _der(0x30, data + _der(0x30, _SHA256_ALG + _der(0x04, digest)))


# ----------------------------------------------------------------------------- certificates


def _cn(cert: x509.Certificate) -> str:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else cert.subject.rfc4514_string()


def _der_of(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(_der_of(cert)).hexdigest()


def _self_signed(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject and verify._issued_by(cert, cert)


def _order_chain(leaf: x509.Certificate, pool: Sequence[x509.Certificate]) -> list[x509.Certificate]:
    """leaf, its issuer, that one's issuer, ... as far as `pool` reaches; unrelated certs dropped."""
    chain, cur = [leaf], leaf
    while not _self_signed(cur) and len(chain) <= 10:
        issuer = next((c for c in pool if c not in chain and verify._issued_by(cur, c)), None)
        if issuer is None:
            break
        chain.append(issuer)
        cur = issuer
    return chain


# ----------------------------------------------------------------------------- file helpers


def _read(path: str | os.PathLike) -> bytes:
    try:
        with os.fdopen(open_regular(path), "rb") as fh:
            return fh.read()
    except OSError as e:
        raise FFUError(f"cannot read file: {e.strerror or e}", file=str(path)) from None


def _copy_atomic(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    try:
        with open(src, "rb") as fin, atomic_output(dst) as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
    except OSError as e:
        raise FFUError(f"cannot copy to {dst}: {e.strerror or e}", file=str(src)) from None


def _pe_layout(data: bytes, where: str) -> pe.PeLayout:
    try:
        layout = pe.pe_layout(data)
    except FFUError as e:
        raise e.at(where) from None
    if layout is None:
        raise FFUError("not a PE image (no MZ/PE signature); cannot embed a signature", file=where)
    return layout


def _has_reserve(path: str | os.PathLike) -> bool:
    head = _read_head(path, 36)
    if len(head) < 36 or head[:4] != b"MSCF":
        raise FFUError("not a cabinet file (signature is not 'MSCF')", file=str(path))
    return bool(struct.unpack_from("<H", head, 30)[0] & cab.FLAG_RESERVE_PRESENT)


def _read_head(path: str | os.PathLike, n: int) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except OSError as e:
        raise FFUError(f"cannot read file: {e.strerror or e}", file=str(path)) from None


def _write(dst: str | os.PathLike, data: bytes) -> None:
    try:
        write_bytes(dst, data)
    except OSError as e:
        raise FFUError(f"cannot write file: {e.strerror or e}", file=str(dst)) from None


@contextlib.contextmanager
def _temp_beside(dst: Path, suffix: str) -> Iterator[Path]:
    """A temporary path in dst's directory (same file system), removed afterwards."""
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=suffix, dir=dst.parent)
        os.close(fd)
    except OSError as e:
        raise FFUError(f"cannot write file: {e.strerror or e}", file=str(dst)) from None
    try:
        yield Path(tmp)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _cab_with_reserve(src: str | os.PathLike, tmp: Path) -> None:
    """Copy `src` to `tmp` with the Authenticode reserve (inserted unless already there)."""
    if _has_reserve(src):
        try:
            shutil.copyfile(src, tmp)  # append_signature truncates any old signature at cbCabinet
        except OSError as e:
            raise FFUError(f"cannot copy file: {e.strerror or e}", file=str(src)) from None
    else:
        cab.insert_signature_reserve(src, tmp)


# ----------------------------------------------------------------------------- signers


class Signer:
    """Signs catalogs, CABs and PE files; every file is written atomically.

    `identity` is stable, non-secret text naming what signs (for build signatures);
    `certificates` the signer's chain, leaf first (empty if unknown, e.g. an external command);
    `is_test` whether any of them is a "TEST ONLY" certificate.
    """

    identity: str = ""
    certificates: tuple[x509.Certificate, ...] = ()

    @property
    def is_test(self) -> bool:
        return any(TEST_MARK in _cn(c).upper() for c in self.certificates)

    def sign_catalog(self, unsigned_der: bytes, *, epoch: int) -> bytes:
        """The catalog with a signature over its CTL; an existing signature is replaced."""
        raise NotImplementedError

    def sign_cab(self, src: str | os.PathLike, dst: str | os.PathLike, *, epoch: int) -> None:
        """Write `src` with an Authenticode signature to `dst` (may be `src`)."""
        raise NotImplementedError

    def sign_pe(self, src: str | os.PathLike, dst: str | os.PathLike, *, epoch: int) -> None:
        """Write `src` with an embedded Authenticode signature to `dst`; an already signed PE
        is copied unchanged."""
        _write(dst, self.sign_pe_data(_read(src), str(src), epoch=epoch))

    def sign_pe_data(self, data: bytes, label: str, *, epoch: int) -> bytes:
        """`data` (a PE image named `label` in messages) with an embedded Authenticode signature;
        an already signed image is returned unchanged. In memory: package builds sign PE payloads
        without temporary files."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.identity!r})"


class KeySigner(Signer):
    """In-process signing with an RSA key; see :func:`load_key_signer`."""

    def __init__(self, key: rsa.RSAPrivateKey, certificates: Sequence[x509.Certificate], *, origin: str):
        self._key = key
        self.certificates = tuple(certificates)
        self.origin = origin  # the certificate file, for messages
        leaf = self.certificates[0]
        self.identity = f"key:sha256={_fingerprint(leaf)}"
        if len(self.certificates) > 1:
            self.identity += ";chain=" + ",".join(_fingerprint(c) for c in self.certificates[1:])
        asn1_leaf = asn1_x509.Certificate.load(_der_of(leaf))
        tbs = asn1_leaf["tbs_certificate"]
        self._sid = _der(0x30, tbs["issuer"].dump() + tbs["serial_number"].dump())
        self._cert_ders = [_der_of(c) for c in self.certificates]
        self._certs_der = b"".join(sorted(self._cert_ders))  # DER SET OF order

    # -- validity

    def check_validity(self, epoch: int) -> None:
        """FFUError unless every certificate is valid both at `epoch` and now."""
        when = _epoch_datetime(epoch)
        now = datetime.now(UTC)
        for c in self.certificates:
            start, end = c.not_valid_before_utc, c.not_valid_after_utc
            if start <= now <= end and start <= when <= end:
                continue
            span = f"valid {start:%Y-%m-%d %H:%M:%S} to {end:%Y-%m-%d %H:%M:%S} UTC"
            if not start <= now <= end:
                state = "has expired" if now > end else "is not yet valid"
                raise FFUError(
                    f"certificate '{_cn(c)}' {state} ({span}, now {now:%Y-%m-%d %H:%M:%S} UTC)",
                    file=self.origin,
                )
            raise FFUError(
                f"certificate '{_cn(c)}' is not valid at the signing time {when:%Y-%m-%d %H:%M:%S} UTC "
                f"(SOURCE_DATE_EPOCH={epoch}; {span}); choose a signing time inside that period",
                file=self.origin,
            )

    # -- CMS

    def _signer_info(self, content_type: str, content_value: bytes, when: datetime) -> bytes:
        attrs = _signed_attributes(content_type, hashlib.sha256(content_value).digest(), when)
        signature = self._key.sign(_der(0x31, attrs), padding.PKCS1v15(), hashes.SHA256())
        return _der(
            0x30, _INT1 + self._sid + _SHA256_ALG + _der(0xA0, attrs) + _RSA_ALG + _der(0x04, signature)
        )

    def _authenticode(self, indirect: bytes, epoch: int) -> bytes:
        """PKCS#7 SignedData (ContentInfo) over an SpcIndirectDataContent."""
        si = self._signer_info(OID_SPC_INDIRECT_DATA, _tlv_value(indirect), _epoch_datetime(epoch))
        signed = _der(
            0x30,
            _INT1
            + _der(0x31, _SHA256_ALG)
            + _der(0x30, _oid(OID_SPC_INDIRECT_DATA) + _der(0xA0, indirect))
            + _der(0xA0, self._certs_der)
            + _der(0x31, si),
        )
        return _der(0x30, _oid(OID_SIGNED_DATA) + _der(0xA0, signed))

    # -- operations

    def sign_catalog(self, unsigned_der: bytes, *, epoch: int) -> bytes:
        self.check_validity(epoch)
        content = catalog.signed_content(unsigned_der)
        si = self._signer_info(catalog.OID_CTL, content, _epoch_datetime(epoch))
        return catalog.attach_signature_der(
            unsigned_der, signer_infos=[si], certificates=self._cert_ders, digest_algorithm="sha256"
        )

    def sign_cab(self, src: str | os.PathLike, dst: str | os.PathLike, *, epoch: int) -> None:
        self.check_validity(epoch)
        dst = Path(dst)
        with _temp_beside(dst, ".reserve") as tmp:
            _cab_with_reserve(src, tmp)
            blob = self._authenticode(_indirect_data(_CAB_DATA, cab.cab_hash(tmp)), epoch)
            cab.append_signature(tmp, blob, dst)

    def sign_cab_in_place(self, path: str | os.PathLike, *, epoch: int) -> None:
        """Sign a CAB written with the signature reserve, without copying it (the build's temp
        file; the caller renames it into place afterwards)."""
        if not _has_reserve(path):
            return self.sign_cab(path, path, epoch=epoch)
        cab.append_signature(path, self.cab_signature(cab.cab_hash(path), epoch=epoch))

    def cab_signature(self, digest: bytes, *, epoch: int) -> bytes:
        """The Authenticode blob for a CAB with this signed-layout digest (for cab.write_cab)."""
        self.check_validity(epoch)
        return self._authenticode(_indirect_data(_CAB_DATA, digest), epoch)

    def sign_pe_data(self, data: bytes, label: str, *, epoch: int) -> bytes:
        self.check_validity(epoch)
        layout = _pe_layout(data, label)
        if layout.signed:
            return data
        image = bytearray(data) + bytes(-len(data) % 8)  # the certificate table is 8-aligned
        blob = self._authenticode(_indirect_data(_PE_DATA, pe.authenticode_digest(data)), epoch)
        entry = bytearray(
            struct.pack("<IHH", 0, WIN_CERT_REVISION_2_0, WIN_CERT_TYPE_PKCS_SIGNED_DATA) + blob
        )
        entry += bytes(-len(entry) % 8)
        struct.pack_into("<I", entry, 0, len(entry))  # dwLength includes the padding, as osslsigncode
        struct.pack_into("<II", image, layout.certdir_offset, len(image), len(entry))
        image += entry
        struct.pack_into("<I", image, layout.checksum_offset, pe.pe_checksum(image, layout.checksum_offset))
        return bytes(image)


# ----------------------------------------------------------------------------- loading keys


def _load_certs(data: bytes, where: str) -> list[x509.Certificate]:
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data) if b"CERTIFICATE-----" in data else []
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise FFUError("not a PEM or DER certificate file", file=where) from None


def _load_private_key(data: bytes, password: str | None, where: str):
    pw = password.encode("utf-8") if password else None
    try:
        if b"-----BEGIN" in data:
            return serialization.load_pem_private_key(data, pw)
        return serialization.load_der_private_key(data, pw)
    except TypeError:
        if pw is None:
            raise FFUError("the private key is encrypted; give its password", file=where) from None
        raise FFUError("the private key is not encrypted; do not give a password", file=where) from None
    except ValueError:
        if pw is not None:
            raise FFUError(
                "cannot decrypt the private key: wrong password or not a key file", file=where
            ) from None
        raise FFUError("not a PEM or DER private key (or an unsupported key format)", file=where) from None
    except UnsupportedAlgorithm:
        raise FFUError("unsupported private key type", file=where) from None


def _load_pfx(data: bytes, password: str | None, where: str):
    attempts = [password.encode("utf-8")] if password else [None, b""]
    for pw in attempts:
        try:
            return pkcs12.load_pkcs12(data, pw)
        except ValueError:
            continue
    if password:
        raise FFUError("cannot open the PFX: wrong password or not a PKCS#12 file", file=where) from None
    raise FFUError(
        "cannot open the PFX: it needs a password (or is not a PKCS#12 file)", file=where
    ) from None


def load_key_signer(
    cert: str | os.PathLike,
    key: str | os.PathLike | None = None,
    chain: Iterable[str | os.PathLike] = (),
    password: str | None = None,
) -> KeySigner:
    """A signer from a certificate and key: PEM/DER files (`cert` may hold the chain and the
    key too), or a PFX/P12 (`cert` ending .pfx/.p12; `password` may be empty or None).

    `chain` files add intermediate/root certificates (PEM with one or more, or DER). Refuses,
    with a one-line error naming the file: unreadable files, a wrong password, non-RSA keys
    and RSA keys under 2048 bits, a key that does not match the certificate, a leaf without
    the Code Signing EKU or (when keyUsage is present) digitalSignature, a leaf whose issuer
    is neither in the chain nor itself, and certificates not valid now.
    """
    where = str(cert)
    data = _read(cert)
    extra: list[x509.Certificate] = []
    if where.lower().endswith((".pfx", ".p12")):
        if key is not None:
            raise FFUError("a PFX holds its own key; do not give a separate key file", file=where)
        bundle = _load_pfx(data, password, where)
        if bundle.key is None or bundle.cert is None:
            raise FFUError("the PFX does not contain both a certificate and its private key", file=where)
        private_key, leaf = bundle.key, bundle.cert.certificate
        extra = [c.certificate for c in bundle.additional_certs]
        key_where = where
    else:
        certs = _load_certs(data, where)
        if not certs:
            raise FFUError("no certificate in the file", file=where)
        leaf, extra = certs[0], certs[1:]
        if key is None:
            if b"PRIVATE KEY-----" not in data:
                raise FFUError("no private key: give the key file (or use a PFX)", file=where)
            key_where, key_data = where, data
        else:
            key_where, key_data = str(key), _read(key)
        private_key = _load_private_key(key_data, password, key_where)
    for p in chain:
        extra += _load_certs(_read(p), str(p))

    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise FFUError(
            f"unsupported key type {type(private_key).__name__.lstrip('_')}: only RSA keys are supported "
            "(RSA PKCS#1 v1.5 keeps signatures reproducible)",
            file=key_where,
        )
    if private_key.key_size < MIN_RSA_BITS:
        raise FFUError(
            f"RSA key of {private_key.key_size} bits is too weak; use {MIN_RSA_BITS} or more", file=key_where
        )
    if private_key.public_key().public_numbers() != _rsa_numbers(leaf):
        raise FFUError(f"the private key does not match the certificate '{_cn(leaf)}'", file=key_where)
    _check_leaf_usage(leaf, where)
    ordered = _order_chain(leaf, extra)
    if not _self_signed(leaf) and len(ordered) == 1:
        raise FFUError(
            f"the issuer '{leaf.issuer.rfc4514_string()}' of '{_cn(leaf)}' is missing; "
            "give the intermediate certificate(s) as the chain",
            file=where,
        )
    signer = KeySigner(private_key, ordered, origin=where)
    signer.check_validity(int(datetime.now(UTC).timestamp()))
    return signer


def _rsa_numbers(cert: x509.Certificate):
    public = cert.public_key()
    return public.public_numbers() if isinstance(public, rsa.RSAPublicKey) else None


def _check_leaf_usage(leaf: x509.Certificate, where: str) -> None:
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        eku = None
    if eku is None or ExtendedKeyUsageOID.CODE_SIGNING not in eku:
        raise FFUError(
            f"certificate '{_cn(leaf)}' lacks the Code Signing extended key usage (1.3.6.1.5.5.7.3.3)",
            file=where,
        )
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not usage.digital_signature:
        raise FFUError(f"certificate '{_cn(leaf)}' does not allow digitalSignature (keyUsage)", file=where)


# ----------------------------------------------------------------------------- external command


def _last_line(*streams: bytes) -> str:
    for s in streams:
        lines = [ln.strip() for ln in s.decode("utf-8", "replace").splitlines() if ln.strip()]
        if lines:
            return lines[-1][:300]
    return "(no output)"


class CommandSigner(Signer):
    """Signs by running `command <file>` on a temporary copy of each file (no shell), like the
    kit's `sign.cmd`; the command must sign the file in place.

    The result is accepted only if it now carries a signature that verifies (internally, no
    trust roots) and the signed content is unchanged. The command decides the signing time,
    so `epoch` is not used and reproducibility is up to the command. `identity` is the
    command string: keep secrets out of it (pass them through the environment).
    """

    def __init__(self, command: str, *, timeout: float = DEFAULT_COMMAND_TIMEOUT):
        try:
            self._argv = shlex.split(command)
        except ValueError as e:
            raise FFUError(f"cannot parse the signing command: {e}") from None
        if not self._argv:
            raise FFUError("the signing command is empty")
        if timeout <= 0:
            raise FFUError(f"signing command timeout must be positive, not {timeout}")
        self.command = command
        self.timeout = timeout
        self.identity = f"command:{command}"
        self.certificates = ()

    def _run(self, target: Path, label: str) -> None:
        name = self._argv[0]
        try:
            r = subprocess.run(
                [*self._argv, str(target)],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=self.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise FFUError(
                f"signing command '{name}' timed out after {self.timeout:g} s", file=label
            ) from None
        except OSError as e:
            raise FFUError(f"cannot run signing command '{name}': {e.strerror or e}", file=label) from None
        if r.returncode != 0:
            status = (
                f"killed by signal {-r.returncode}" if r.returncode < 0 else f"exit status {r.returncode}"
            )
            raise FFUError(
                f"signing command '{name}' failed ({status}): {_last_line(r.stderr, r.stdout)}", file=label
            )

    def _fail(self, what: str, label: str) -> FFUError:
        return FFUError(f"signing command '{self._argv[0]}' {what}", file=label)

    @contextlib.contextmanager
    def _work(self, name: str) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="ffuforge-sign-") as d:
            yield Path(d) / name

    def sign_catalog(self, unsigned_der: bytes, *, epoch: int) -> bytes:
        label = "update.cat"
        before = catalog.ctl_der(unsigned_der)
        with self._work(label) as tmp:
            tmp.write_bytes(unsigned_der)
            self._run(tmp, label)
            signed = tmp.read_bytes()
        try:
            after = catalog.ctl_der(signed)
        except FFUError as e:
            raise self._fail(f"left an unreadable catalog: {e.message}", label) from None
        if not catalog.parse_catalog(signed).signed:
            raise self._fail("did not sign the catalog", label)
        if after != before:
            raise self._fail("changed the catalog content (only a signature may be added)", label)
        problems = verify.catalog_signature_problems(signed, None, "signature")
        if problems:
            raise self._fail(f"produced a bad catalog signature: {problems[0]}", label)
        return signed

    def sign_cab(self, src: str | os.PathLike, dst: str | os.PathLike, *, epoch: int) -> None:
        label = str(src)
        name = Path(src).name if Path(src).suffix.lower() == ".cab" else "package.cab"
        with self._work(name) as tmp:
            _cab_with_reserve(src, tmp)
            expected = cab.cab_hash(tmp)  # content as it must be after signing
            try:
                shutil.copyfile(src, tmp)
            except OSError as e:
                raise FFUError(f"cannot copy file: {e.strerror or e}", file=label) from None
            self._run(tmp, label)
            try:
                blob, digest = verify.cab_signature(tmp), cab.cab_hash(tmp)
            except FFUError as e:
                raise self._fail(f"left an unreadable cabinet: {e.message}", label) from None
            if blob is None:
                raise self._fail("did not sign the cabinet", label)
            if digest != expected:
                raise self._fail("changed the cabinet content (only a signature may be added)", label)
            problems = verify.cab_signature_problems(tmp)
            if problems:
                raise self._fail(f"produced a bad signature: {problems[0]}", label)
            _copy_atomic(tmp, dst)

    def sign_pe_data(self, data: bytes, label: str, *, epoch: int) -> bytes:
        if _pe_layout(data, label).signed:
            return data
        expected = pe.authenticode_digest(data)
        base = Path(label).name
        name = base if Path(base).suffix.lower() in _PE_SUFFIXES else base + ".exe"
        with self._work(name) as tmp:
            tmp.write_bytes(data)
            self._run(tmp, label)
            try:
                layout = pe.pe_layout(tmp)
            except FFUError as e:
                raise self._fail(f"left a malformed PE image: {e.message}", label) from None
            if layout is None or not layout.signed:
                raise self._fail("did not sign the file", label)
            if pe.authenticode_digest(tmp) != expected:
                raise self._fail("changed the image content (only a signature may be added)", label)
            problems = verify.verify_pe(tmp).problems
            if problems:
                raise self._fail(f"produced a bad signature: {problems[0]}", label)
            return _read(tmp)
