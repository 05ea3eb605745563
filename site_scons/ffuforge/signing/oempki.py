"""An OEM PKI as the IoT Core add-on kit's New-IoTOEMCerts creates it, without makecert.

Facts from the kit's `New-IoTOEMCerts` (iot-adk-addonkit, Tools/IoTCoreImaging/IoTSecurity.ps1;
names, sizes and usages only): files `<OEM>-<Role>.cer` with the private parts in
`private/<OEM>-<Role>.pfx`; RSA SHA-256; the roles

    Root    "<OEM> Root"                 self-signed CA, 4096 bits
    CA      "<OEM> CA"                   CA issued by Root, 4096 bits
    PCA     "<OEM> Production PCA <yyyy>" CA issued by CA, 4096 bits
    KMCI    "<OEM> KMCI Codesigning"     end entity issued by PCA, 2048, EKU Code Signing 1.3.6.1.5.5.7.3.3
    UMCI    "<OEM> UMCI Codesigning"     end entity issued by PCA, 2048, EKU Code Signing
    RootPK  "<OEM> Root Platform Key"    self-signed CA (Secure Boot PK), 4096 bits
    KEK     "<OEM> KEK Secure Boot"      end entity issued by RootPK, 4096 bits, no EKU
    DRA     "<OEM> Data Recovery Agent"  end entity issued by PCA, 2048, EKU 1.3.6.1.4.1.311.67.1.2
                                          (BitLocker DRA), an exchange (key encipherment) key

makecert's `-cy authority`/`-cy end` become basicConstraints CA true/false; `-sky signature`
keyUsage digitalSignature (keyCertSign+cRLSign added for CAs, which OpenSSL-based verifiers need),
`-sky exchange` keyEncipherment. The KMCI/UMCI subjects also carry the kit's
`E=Info@<OEM>-Name.com`.

Ours, not the kit's: packages are signed with the UMCI certificate (the kit leaves the choice to
the workspace's signing settings; UMCI is the user-mode code-integrity signer, which is what a
package catalog is checked against - inferred); a `--test` PKI adds "(TEST ONLY)" to every
common name so that ffuforge's release policy keeps it out of Retail images; and beside the
kit's files it writes what `scons CONFIG=Retail` takes directly (see `BUNDLE`).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from ..errors import ConfigError, SigningError

__all__ = ["BUNDLE", "ROLES", "Role", "create_oem_pki"]

OID_BITLOCKER_DRA = ObjectIdentifier("1.3.6.1.4.1.311.67.1.2")
# for `scons CONFIG=Retail SIGN_CERT=oem.pfx` or `SIGN_CERT=oem.crt SIGN_KEY=oem.key SIGN_CHAIN=intermediate.crt`
BUNDLE = ("oem.pfx", "oem.crt", "oem.key", "intermediate.crt", "root.crt")


@dataclass(frozen=True)
class Role:
    name: str  # file name part: <OEM>-<name>.cer
    cn: str  # "{oem}"/"{year}" placeholders
    issuer: str | None  # role name; None: self-signed
    bits: int
    ca: bool
    ekus: tuple[ObjectIdentifier, ...] = ()
    exchange: bool = False
    email: bool = False


ROLES: tuple[Role, ...] = (
    Role("Root", "{oem} Root", None, 4096, True),
    Role("CA", "{oem} CA", "Root", 4096, True),
    Role("PCA", "{oem} Production PCA {year}", "CA", 4096, True),
    Role(
        "KMCI", "{oem} KMCI Codesigning", "PCA", 2048, False, (ExtendedKeyUsageOID.CODE_SIGNING,), email=True
    ),
    Role(
        "UMCI", "{oem} UMCI Codesigning", "PCA", 2048, False, (ExtendedKeyUsageOID.CODE_SIGNING,), email=True
    ),
    Role("RootPK", "{oem} Root Platform Key", None, 4096, True),
    Role("KEK", "{oem} KEK Secure Boot", "RootPK", 4096, False),
    Role("DRA", "{oem} Data Recovery Agent", "PCA", 2048, False, (OID_BITLOCKER_DRA,), exchange=True),
)
SIGNER_ROLE = "UMCI"


def _usage(ca: bool, exchange: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not exchange,
        content_commitment=False,
        key_encipherment=exchange,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _subject(role: Role, oem: str, test: bool, year: int) -> x509.Name:
    cn = role.cn.format(oem=oem, year=year) + (" (TEST ONLY)" if test else "")
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if role.email:
        attrs.append(x509.NameAttribute(NameOID.EMAIL_ADDRESS, f"Info@{oem}-Name.com"))
    return x509.Name(attrs)


def _files(oem: str, test: bool, years: int, password: str | None, now: datetime) -> dict[str, bytes]:
    keys: dict[str, rsa.RSAPrivateKey] = {}
    certs: dict[str, x509.Certificate] = {}
    start = now.replace(microsecond=0)
    for role in ROLES:
        key = rsa.generate_private_key(public_exponent=65537, key_size=role.bits)
        subject = _subject(role, oem, test, now.year)
        issuer_cert = certs[role.issuer] if role.issuer else None
        issuer_key = keys[role.issuer] if role.issuer else key
        # CAs outlive what they issue: a leaf ends with its issuer at the latest
        end = start + timedelta(days=365 * (years * 2 if role.ca else years))
        if issuer_cert is not None:
            end = min(end, issuer_cert.not_valid_after_utc)
        b = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer_cert.subject if issuer_cert else subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=role.ca, path_length=None), critical=True)
            .add_extension(_usage(role.ca, role.exchange), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
            )
        )
        if role.ekus:
            b = b.add_extension(x509.ExtendedKeyUsage(list(role.ekus)), critical=False)
        keys[role.name], certs[role.name] = key, b.sign(issuer_key, hashes.SHA256())

    der, pem = serialization.Encoding.DER, serialization.Encoding.PEM
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
    )
    out: dict[str, bytes] = {}
    for role in ROLES:
        chain = []
        r = role
        while r.issuer:
            chain.append(certs[r.issuer])
            r = next(x for x in ROLES if x.name == r.issuer)
        out[f"{oem}-{role.name}.cer"] = certs[role.name].public_bytes(der)
        out[f"private/{oem}-{role.name}.pfx"] = pkcs12.serialize_key_and_certificates(
            f"{oem}-{role.name}".encode(), keys[role.name], certs[role.name], chain or None, enc
        )
    signer = next(r for r in ROLES if r.name == SIGNER_ROLE)
    out["oem.pfx"] = out[f"private/{oem}-{signer.name}.pfx"]
    out["oem.crt"] = certs[signer.name].public_bytes(pem)
    out["oem.key"] = keys[signer.name].private_bytes(pem, serialization.PrivateFormat.PKCS8, enc)
    out["intermediate.crt"] = certs["PCA"].public_bytes(pem) + certs["CA"].public_bytes(pem)
    out["root.crt"] = certs["Root"].public_bytes(pem)
    return out


def create_oem_pki(
    directory: str | os.PathLike,
    oem: str,
    *,
    test: bool,
    years: int = 10,
    password: str | None = None,
    now: datetime | None = None,
) -> list[str]:
    """Create the PKI in `directory` (made if missing); returns the files written, relative.

    Never overwrites: any file already there stops with one line before anything is written.
    The files are written to a temporary folder first and moved in, so a failure leaves none.
    Private keys (`private/*.pfx`, `oem.pfx`, `oem.key`) get mode 0600, encrypted with `password`
    when one is given."""
    if not oem or any(c in oem for c in '\0\r\n/\\:*?"<>|'):
        raise ConfigError(f"invalid OEM name {oem!r}: letters, digits, spaces, '-' and '.' only")
    if not 1 <= years <= 30:
        raise ConfigError(f"--years {years}: choose 1 to 30")
    target = Path(directory)
    files = _files(oem, test, years, password, now or datetime.now(UTC))
    existing = sorted(n for n in files if (target / n).exists() or (target / n).is_symlink())
    if existing:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise ConfigError(
            f"already exists{more}; `certs new` never overwrites a PKI: choose an empty folder",
            str(target / existing[0]),
        )
    try:
        (target / "private").mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".certs-new-", dir=target) as tmp:
            for name, data in files.items():
                path = Path(tmp) / name
                path.parent.mkdir(exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if _private(name) else 0o644)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
            moved: list[Path] = []
            try:
                for name in files:
                    dst = target / name
                    os.link(Path(tmp) / name, dst)  # fails if something appeared meanwhile
                    moved.append(dst)
            except OSError:
                for p in moved:
                    p.unlink(missing_ok=True)
                raise
    except OSError as e:
        raise SigningError(f"cannot write the certificates: {e.strerror or e}", file=str(target)) from None
    return list(files)


def _private(name: str) -> bool:
    return name.endswith((".pfx", ".key"))
