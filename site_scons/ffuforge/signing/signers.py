"""Signing: `update.cat` (CMS over the CTL), CAB Authenticode and embedded PE signatures.

Two kinds of signer share one interface so the build graph does not care where the key is:
a `KeySigner` holds an RSA key and signs in-process; a `CommandSigner` hands a copy of each
file to an external tool (an HSM wrapper, the kit's `sign.cmd` equivalent) and checks what
comes back before accepting it.

The in-process signatures are what osslsigncode 2.9 writes with `-time`: a
v1 SignerInfo by issuerAndSerialNumber, SHA-256, RSA PKCS#1 v1.5 (`rsaEncryption`), signed
attributes contentType, signingTime (= the build epoch, or the chain's latest
notBefore when the epoch is outside its validity: see `KeySigner.signing_epoch`), SpcStatementType (individual code
signing) and messageDigest, no SpcSpOpusInfo, no timestamp; the certificates are sorted as
a DER SET. PKCS#1 v1.5 is deterministic, so the same key, input and epoch always give the
same bytes, and the output can be compared byte for byte with osslsigncode's. The
messageDigest covers the signed content's *contents octets*: the CTL's for catalogs (not the
full TLV; osslsigncode and signify agree) and the
SpcIndirectDataContent's for CABs and PE files.

The DER encoding is in :mod:`.der`, key and certificate loading in :mod:`.keys`, file
plumbing in :mod:`.files`.

Secrets never leave these modules: no key material or password is logged, put in an error
message or in `identity` (which is for build signatures).
"""

from __future__ import annotations

import contextlib
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

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ..errors import ConfigError, FFUError, SigningError, ToolError
from ..formats import cab, catalog, pe
from . import verify
from .der import (
    CAB_DATA,
    INT1,
    OID_SIGNED_DATA,
    OID_SPC_INDIRECT_DATA,
    PE_DATA,
    RSA_ALG,
    SHA256_ALG,
    der,
    epoch_datetime,
    indirect_data,
    oid,
    signed_attributes,
    tlv_value,
)
from .files import (
    cab_with_reserve,
    copy_atomic,
    has_reserve,
    read_file,
    signable_pe_layout,
    temp_beside,
    write_file,
)
from .keys import (
    check_leaf_usage,
    common_name,
    der_of,
    fingerprint,
    load_certs,
    load_pfx,
    load_private_key,
    order_chain,
    rsa_numbers,
    self_signed,
)

__all__ = ["CommandSigner", "KeySigner", "Signer", "load_key_signer"]

MIN_RSA_BITS = 2048
DEFAULT_COMMAND_TIMEOUT = 300.0
TEST_MARK = "TEST ONLY"

WIN_CERT_REVISION_2_0 = 0x0200
WIN_CERT_TYPE_PKCS_SIGNED_DATA = 2
_PE_SUFFIXES = (".exe", ".sys", ".dll")


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
        return any(TEST_MARK in common_name(c).upper() for c in self.certificates)

    def sign_catalog(self, unsigned_der: bytes, *, epoch: int) -> bytes:
        """The catalog with a signature over its CTL; an existing signature is replaced."""
        raise NotImplementedError

    def sign_cab(self, src: str | os.PathLike, dst: str | os.PathLike, *, epoch: int) -> None:
        """Write `src` with an Authenticode signature to `dst` (may be `src`)."""
        raise NotImplementedError

    def sign_pe(self, src: str | os.PathLike, dst: str | os.PathLike, *, epoch: int) -> None:
        """Write `src` with an embedded Authenticode signature to `dst`; an already signed PE
        is copied unchanged."""
        write_file(dst, self.sign_pe_data(read_file(src), str(src), epoch=epoch))

    def sign_pe_data(self, data: bytes, label: str, *, epoch: int) -> bytes:
        """`data` (a PE image named `label` in messages) with an embedded Authenticode signature;
        an already signed image is returned unchanged. In memory: package builds sign PE payloads
        without temporary files."""
        raise NotImplementedError

    def authenticode_blob(self, indirect: bytes, *, epoch: int) -> bytes:
        """PKCS#7 SignedData (DER ContentInfo) over an SpcIndirectDataContent the caller built
        (an app package's: its SIP info and APPX digests)."""
        raise SigningError(
            f"{type(self).__name__} cannot sign app packages; sign with a certificate and key (SIGN_CERT=)"
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.identity!r})"


class KeySigner(Signer):
    """In-process signing with an RSA key; see :func:`load_key_signer`."""

    def __init__(self, key: rsa.RSAPrivateKey, certificates: Sequence[x509.Certificate], *, origin: str):
        self._key = key
        self.certificates = tuple(certificates)
        self.origin = origin  # the certificate file, for messages
        leaf = self.certificates[0]
        self.identity = f"key:sha256={fingerprint(leaf)}"
        if len(self.certificates) > 1:
            self.identity += ";chain=" + ",".join(fingerprint(c) for c in self.certificates[1:])
        asn1_leaf = asn1_x509.Certificate.load(der_of(leaf))
        tbs = asn1_leaf["tbs_certificate"]
        self._sid = der(0x30, tbs["issuer"].dump() + tbs["serial_number"].dump())
        self._cert_ders = [der_of(c) for c in self.certificates]
        self._certs_der = b"".join(sorted(self._cert_ders))  # DER SET OF order

    # -- validity

    def signing_epoch(self, epoch: int) -> int:
        """The signing time for a build at `epoch`: `epoch` itself when every certificate of the
        chain is valid then, else the latest notBefore of the chain (the moment the chain became
        valid). Deterministic for one certificate and epoch, so builds stay reproducible, and a
        certificate issued after the workspace's SOURCE_DATE_EPOCH (2020-01-01) still signs."""
        when = epoch_datetime(epoch)
        if all(c.not_valid_before_utc <= when <= c.not_valid_after_utc for c in self.certificates):
            return epoch
        start = max(c.not_valid_before_utc for c in self.certificates)
        end = min(c.not_valid_after_utc for c in self.certificates)
        if start > end:
            raise SigningError(
                f"the validity periods of the chain of '{common_name(self.certificates[0])}' do not "
                f"overlap (latest start {start:%Y-%m-%d}, earliest end {end:%Y-%m-%d}); fix the chain",
                file=self.origin,
            )
        return int(start.timestamp())

    def check_validity(self, epoch: int) -> None:
        """SigningError unless every certificate is valid now and the chain has a signing time
        for `epoch` (see :meth:`signing_epoch`)."""
        now = datetime.now(UTC)
        for c in self.certificates:
            start, end = c.not_valid_before_utc, c.not_valid_after_utc
            if not start <= now <= end:
                span = f"valid {start:%Y-%m-%d %H:%M:%S} to {end:%Y-%m-%d %H:%M:%S} UTC"
                state = "has expired" if now > end else "is not yet valid"
                raise SigningError(
                    f"certificate '{common_name(c)}' {state} ({span}, now {now:%Y-%m-%d %H:%M:%S} UTC)",
                    file=self.origin,
                )
        self.signing_epoch(epoch)

    # -- CMS

    def _signer_info(self, content_type: str, content_value: bytes, when: datetime) -> bytes:
        attrs = signed_attributes(content_type, hashlib.sha256(content_value).digest(), when)
        signature = self._key.sign(der(0x31, attrs), padding.PKCS1v15(), hashes.SHA256())
        return der(0x30, INT1 + self._sid + SHA256_ALG + der(0xA0, attrs) + RSA_ALG + der(0x04, signature))

    def _authenticode(self, indirect: bytes, epoch: int) -> bytes:
        """PKCS#7 SignedData (ContentInfo) over an SpcIndirectDataContent."""
        when = epoch_datetime(self.signing_epoch(epoch))
        si = self._signer_info(OID_SPC_INDIRECT_DATA, tlv_value(indirect), when)
        signed = der(
            0x30,
            INT1
            + der(0x31, SHA256_ALG)
            + der(0x30, oid(OID_SPC_INDIRECT_DATA) + der(0xA0, indirect))
            + der(0xA0, self._certs_der)
            + der(0x31, si),
        )
        return der(0x30, oid(OID_SIGNED_DATA) + der(0xA0, signed))

    # -- operations

    def authenticode_blob(self, indirect: bytes, *, epoch: int) -> bytes:
        self.check_validity(epoch)
        return self._authenticode(indirect, epoch)

    def sign_catalog(self, unsigned_der: bytes, *, epoch: int) -> bytes:
        self.check_validity(epoch)
        content = catalog.signed_content(unsigned_der)
        si = self._signer_info(catalog.OID_CTL, content, epoch_datetime(self.signing_epoch(epoch)))
        return catalog.attach_signature_der(
            unsigned_der, signer_infos=[si], certificates=self._cert_ders, digest_algorithm="sha256"
        )

    def sign_cab(self, src: str | os.PathLike, dst: str | os.PathLike, *, epoch: int) -> None:
        self.check_validity(epoch)
        dst = Path(dst)
        with temp_beside(dst, ".reserve") as tmp:
            cab_with_reserve(src, tmp)
            blob = self._authenticode(indirect_data(CAB_DATA, cab.cab_hash(tmp)), epoch)
            cab.append_signature(tmp, blob, dst)

    def sign_cab_in_place(self, path: str | os.PathLike, *, epoch: int) -> None:
        """Sign a CAB written with the signature reserve, without copying it (the build's temp
        file; the caller renames it into place afterwards)."""
        if not has_reserve(path):
            return self.sign_cab(path, path, epoch=epoch)
        cab.append_signature(path, self.cab_signature(cab.cab_hash(path), epoch=epoch))

    def cab_signature(self, digest: bytes, *, epoch: int) -> bytes:
        """The Authenticode blob for a CAB with this signed-layout digest (for cab.write_cab)."""
        self.check_validity(epoch)
        return self._authenticode(indirect_data(CAB_DATA, digest), epoch)

    def sign_pe_data(self, data: bytes, label: str, *, epoch: int) -> bytes:
        self.check_validity(epoch)
        layout = signable_pe_layout(data, label)
        if layout.signed:
            return data
        image = bytearray(data) + bytes(-len(data) % 8)  # the certificate table is 8-aligned
        blob = self._authenticode(indirect_data(PE_DATA, pe.authenticode_digest(data)), epoch)
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
    data = read_file(cert)
    extra: list[x509.Certificate] = []
    if where.lower().endswith((".pfx", ".p12")):
        if key is not None:
            raise SigningError("a PFX holds its own key; do not give a separate key file", file=where)
        bundle = load_pfx(data, password, where)
        if bundle.key is None or bundle.cert is None:
            raise SigningError("the PFX does not contain both a certificate and its private key", file=where)
        private_key, leaf = bundle.key, bundle.cert.certificate
        extra = [c.certificate for c in bundle.additional_certs]
        key_where = where
    else:
        certs = load_certs(data, where)
        if not certs:
            raise SigningError("no certificate in the file", file=where)
        leaf, extra = certs[0], certs[1:]
        if key is None:
            if b"PRIVATE KEY-----" not in data:
                raise SigningError("no private key: give the key file (or use a PFX)", file=where)
            key_where, key_data = where, data
        else:
            key_where, key_data = str(key), read_file(key)
        private_key = load_private_key(key_data, password, key_where)
    for p in chain:
        extra += load_certs(read_file(p), str(p))

    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise SigningError(
            f"unsupported key type {type(private_key).__name__.lstrip('_')}: only RSA keys are supported "
            "(RSA PKCS#1 v1.5 keeps signatures reproducible)",
            file=key_where,
        )
    if private_key.key_size < MIN_RSA_BITS:
        raise SigningError(
            f"RSA key of {private_key.key_size} bits is too weak; use {MIN_RSA_BITS} or more", file=key_where
        )
    if private_key.public_key().public_numbers() != rsa_numbers(leaf):
        raise SigningError(
            f"the private key does not match the certificate '{common_name(leaf)}'", file=key_where
        )
    check_leaf_usage(leaf, where)
    ordered = order_chain(leaf, extra)
    if not self_signed(leaf) and len(ordered) == 1:
        raise SigningError(
            f"the issuer '{leaf.issuer.rfc4514_string()}' of '{common_name(leaf)}' is missing; "
            "give the intermediate certificate(s) as the chain",
            file=where,
        )
    signer = KeySigner(private_key, ordered, origin=where)
    signer.check_validity(int(datetime.now(UTC).timestamp()))
    return signer


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
            raise ConfigError(f"cannot parse the signing command: {e}") from None
        if not self._argv:
            raise ConfigError("the signing command is empty")
        if timeout <= 0:
            raise ConfigError(f"signing command timeout must be positive, not {timeout}")
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
            raise ToolError(
                f"signing command '{name}' timed out after {self.timeout:g} s", file=label
            ) from None
        except OSError as e:
            raise ToolError(f"cannot run signing command '{name}': {e.strerror or e}", file=label) from None
        if r.returncode != 0:
            status = (
                f"killed by signal {-r.returncode}" if r.returncode < 0 else f"exit status {r.returncode}"
            )
            raise ToolError(
                f"signing command '{name}' failed ({status}): {_last_line(r.stderr, r.stdout)}", file=label
            )

    def _fail(self, what: str, label: str) -> SigningError:
        return SigningError(f"signing command '{self._argv[0]}' {what}", file=label)

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
            cab_with_reserve(src, tmp)
            expected = cab.cab_hash(tmp)  # content as it must be after signing
            try:
                shutil.copyfile(src, tmp)
            except OSError as e:
                raise SigningError(f"cannot copy file: {e.strerror or e}", file=label) from None
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
            copy_atomic(tmp, dst)

    def sign_pe_data(self, data: bytes, label: str, *, epoch: int) -> bytes:
        if signable_pe_layout(data, label).signed:
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
            return read_file(tmp)
