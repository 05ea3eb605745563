"""App packages (.appx, .msix, .appxbundle, .msixbundle): identity, package family name, and a
small deterministic test package.

Reading: an app package is a ZIP (OPC) holding ``AppxManifest.xml`` (a bundle:
``AppxMetadata/AppxBundleManifest.xml``); we read ``Package/Identity`` (Name, Publisher, Version,
ProcessorArchitecture) and ``Applications/Application@Id`` (the AUMID is ``<family name>!<Id>``).
A bundle's own identity has no architecture; its packages list theirs. Members are read with a
size bound; anything that is not such a ZIP is one line.

Package family name = ``Name_PublisherId``; PublisherId = the first 8 bytes of SHA-256 over the
UTF-16LE Publisher string exactly as written in the manifest, as 13 lower-case Crockford base32
characters (64 bits padded with one zero bit). Sources: withinrafael.com 2018-01-28 "What's that
gobbledygook in my package family name", marcinotorowski.com 2021-12-19, and
russellbanks/package-family-name (src/lib.rs); test vectors in tests/package/test_appx.py.

Writing (`make_test_appx`): the files, ``AppxManifest.xml``, ``AppxBlockMap.xml`` (every file's
64 KiB blocks as base64 SHA-256, `LfhSize` = 30 + name length, stored members so a block has no
`Size`) and ``[Content_Types].xml``, per Microsoft's block map schema
(learn.microsoft.com/uwp/schemas/blockmapschema/app-package-block-map). Fixed member dates
(the ZIP's DOS time of `timestamp`) and a fixed order make it reproducible.

Signing (`sign_appx`): ``AppxSignature.p7x`` is ``PKCX`` + a PKCS#7 SignedData over an
SpcIndirectDataContent whose data is SPC_SIPINFO (1.3.6.1.4.1.311.2.1.30: version 0x01010000, the
APPX SIP GUID, five zeros) and whose "digest" is ``APPX`` followed by ``AXPC`` + SHA-256 of the
local file records, ``AXCD`` + SHA-256 of the central directory and end record as they are before
the signature is added, ``AXCT`` + SHA-256 of [Content_Types].xml and ``AXBM`` + SHA-256 of
AppxBlockMap.xml (facebookarchive/fb-util-for-appx Sources/APPX.cpp, Sign.cpp,
PrivateHeaders/APPX/Sign.h); the member is DEFLATEd and last. osslsigncode verifies it
(tests/package/test_appx.py); no CodeIntegrity.cat, so no AXCI. Windows also wants the manifest's
Publisher to be the signing certificate's subject.
"""

from __future__ import annotations

import base64
import hashlib
import io
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError, FormatError
from ..util import xmlsafe

if TYPE_CHECKING:
    from ..signing.signers import Signer

CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
MAX_MANIFEST = 4 << 20
BLOCK = 65536
APP_EXTENSIONS = (".appx", ".msix")
BUNDLE_EXTENSIONS = (".appxbundle", ".msixbundle")
ARCHITECTURES = ("x86", "x64", "arm", "arm64", "neutral", "x86a64")


def _png_1x1() -> bytes:
    """A 1x1 transparent PNG (the manifest names a logo)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" + bytes(4), 9))
        + chunk(b"IEND", b"")
    )


TEST_LOGO = _png_1x1()
SIGNATURE = "AppxSignature.p7x"
OID_SPC_SIPINFO = "1.3.6.1.4.1.311.2.1.30"
APPX_SIP_GUID = bytes.fromhex("4BDFC50A07CEE24DB76E23C839A09FD1")
_BLOCKMAP_NS = "http://schemas.microsoft.com/appx/2010/blockmap"
_MANIFEST_NS = "http://schemas.microsoft.com/appx/manifest/foundation/windows10"


def publisher_id(publisher: str) -> str:
    """The 13-character publisher ID of a manifest's Publisher string."""
    digest = hashlib.sha256(publisher.encode("utf-16-le")).digest()[:8]
    value = int.from_bytes(digest, "big") << 1  # 65 bits: 13 groups of 5
    return "".join(CROCKFORD[(value >> (60 - 5 * i)) & 31] for i in range(13))


def family_name(name: str, publisher: str) -> str:
    return f"{name}_{publisher_id(publisher)}"


def full_name(name: str, version: str, arch: str, publisher: str, resource_id: str = "") -> str:
    return f"{name}_{version}_{arch}_{resource_id}_{publisher_id(publisher)}"


@dataclass(frozen=True)
class AppInfo:
    """What a package's manifest says about it (for a bundle: the bundle's identity)."""

    path: str
    name: str
    publisher: str
    version: str
    architecture: str  # "neutral" for a bundle; its packages are in `architectures`
    app_ids: tuple[str, ...] = ()
    bundle: bool = False
    architectures: tuple[str, ...] = field(default_factory=tuple)
    signed: bool = False  # carries AppxSignature.p7x

    @property
    def family_name(self) -> str:
        return family_name(self.name, self.publisher)

    @property
    def aumid(self) -> str | None:
        return f"{self.family_name}!{self.app_ids[0]}" if self.app_ids else None


def _member(zf: zipfile.ZipFile, name: str, display: str) -> bytes | None:
    for info in zf.infolist():
        if info.filename.replace("\\", "/").lower() == name.lower():
            if info.file_size > MAX_MANIFEST:
                raise FormatError(f"{name} is larger than {MAX_MANIFEST} bytes; refusing to read it", display)
            with zf.open(info) as fh:
                return fh.read(MAX_MANIFEST + 1)
    return None


def _identity(root, display: str) -> dict[str, str]:
    for el in root.iter():
        if isinstance(el.tag, str) and xmlsafe.localname(el) == "Identity":
            found = {k: el.get(k, "") for k in ("Name", "Publisher", "Version", "ProcessorArchitecture")}
            for key in ("Name", "Publisher", "Version"):
                if not found[key]:
                    raise ConfigError(
                        f"the manifest's Identity has no {key}; the package is damaged", display
                    )
            return found
    raise ConfigError("the manifest has no <Identity>; the package is damaged", display)


def _app_ids(root) -> tuple[str, ...]:
    return tuple(
        el.get("Id", "")
        for el in root.iter()
        if isinstance(el.tag, str) and xmlsafe.localname(el) == "Application" and el.get("Id")
    )


def _bundle_app_ids(path: str | Path, names: list[str], display: str) -> tuple[str, ...]:
    """The application IDs of a bundle's first application package (all of them declare the same)."""
    for name in names:
        try:
            with (
                zipfile.ZipFile(path) as zf,
                zf.open(name) as inner_file,
                zipfile.ZipFile(inner_file) as inner,
            ):
                data = _member(inner, "AppxManifest.xml", f"{display}:{name}")
        except (KeyError, zipfile.BadZipFile, OSError, ValueError):
            continue
        if data is not None:
            return _app_ids(xmlsafe.parse_bytes(data, f"{display}:{name}:AppxManifest.xml"))
    return ()


def read_app(path: str | Path, display: str | None = None) -> AppInfo:
    """Identity and application IDs of an .appx/.msix or .appxbundle/.msixbundle."""
    display = display or str(path)
    lower = str(path).lower()
    bundle = lower.endswith(BUNDLE_EXTENSIONS)
    if not bundle and not lower.endswith(APP_EXTENSIONS):
        raise ConfigError("not an app package name; use .appx, .msix, .appxbundle or .msixbundle", display)
    try:
        with zipfile.ZipFile(path) as zf:
            name = "AppxMetadata/AppxBundleManifest.xml" if bundle else "AppxManifest.xml"
            data = _member(zf, name, display)
            signed = any(i.filename == SIGNATURE for i in zf.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise FormatError(
            f"cannot read the app package as a ZIP ({exc}); is it an app package?", display
        ) from None
    if data is None:
        raise FormatError(f"the package has no {name}; is it an app package?", display)
    root = xmlsafe.parse_bytes(data, f"{display}:{name}")
    ident = _identity(root, f"{display}:{name}")
    if bundle:
        packages = [
            el
            for el in root.iter()
            if isinstance(el.tag, str)
            and xmlsafe.localname(el) == "Package"
            and el.get("Type") == "application"
        ]
        archs = sorted({el.get("Architecture", "neutral") for el in packages})
        app_ids = _bundle_app_ids(path, [el.get("FileName", "") for el in packages], display)
        return AppInfo(
            str(path),
            ident["Name"],
            ident["Publisher"],
            ident["Version"],
            "neutral",
            app_ids,
            True,
            tuple(archs),
            signed,
        )
    apps = _app_ids(root)
    arch = ident["ProcessorArchitecture"] or "neutral"
    return AppInfo(
        str(path), ident["Name"], ident["Publisher"], ident["Version"], arch, apps, False, (arch,), signed
    )


# ------------------------------------------------------------------------------ test package


def manifest_xml(name: str, publisher: str, version: str, arch: str, app_id: str = "App") -> bytes:
    """A minimal Windows 10 app manifest (a headless app with one executable)."""
    from xml.sax.saxutils import quoteattr

    return (
        '<?xml version="1.0" encoding="utf-8"?>\r\n'
        f'<Package xmlns="{_MANIFEST_NS}" '
        'xmlns:uap="http://schemas.microsoft.com/appx/manifest/uap/windows10" IgnorableNamespaces="uap">\r\n'
        f"  <Identity Name={quoteattr(name)} Publisher={quoteattr(publisher)} Version={quoteattr(version)} "
        f"ProcessorArchitecture={quoteattr(arch)} />\r\n"
        f"  <Properties><DisplayName>{name}</DisplayName><PublisherDisplayName>ffuforge test</PublisherDisplayName>"
        "<Logo>logo.png</Logo></Properties>\r\n"
        '  <Dependencies><TargetDeviceFamily Name="Windows.IoT" MinVersion="10.0.17134.0" '
        'MaxVersionTested="10.0.17763.0" /></Dependencies>\r\n'
        '  <Resources><Resource Language="en-us" /></Resources>\r\n'
        f'  <Applications><Application Id={quoteattr(app_id)} Executable="app.exe" EntryPoint="Windows.FullTrustApplication">'
        f'<uap:VisualElements DisplayName={quoteattr(name)} Description="test" BackgroundColor="transparent" '
        'Square150x150Logo="logo.png" Square44x44Logo="logo.png" AppListEntry="none" />'
        "</Application></Applications>\r\n"
        "</Package>\r\n"
    ).encode()


def block_map(files: list[tuple[str, bytes]]) -> bytes:
    """AppxBlockMap.xml for stored members: per file its size, local header size and 64 KiB block hashes."""
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<BlockMap xmlns="{_BLOCKMAP_NS}" HashMethod="http://www.w3.org/2001/04/xmlenc#sha256">',
    ]
    for name, data in files:
        zname = name.replace("/", "\\")
        lfh = 30 + len(name.encode())
        lines.append(f'<File Name="{zname}" Size="{len(data)}" LfhSize="{lfh}">')
        for off in range(0, len(data), BLOCK):
            digest = base64.b64encode(hashlib.sha256(data[off : off + BLOCK]).digest()).decode()
            lines.append(f'<Block Hash="{digest}"/>')
        lines.append("</File>")
    lines.append("</BlockMap>")
    return "\r\n".join(lines).encode()


def content_types(names: list[str], signed: bool = False) -> bytes:
    types = {
        "xml": "application/vnd.ms-appx.manifest+xml",
        "exe": "application/x-msdownload",
        "png": "image/png",
    }
    exts = sorted({n.rsplit(".", 1)[-1].lower() for n in names if "." in n} - {"xml"})
    body = "".join(
        f'<Default Extension="{e}" ContentType="{types.get(e, "application/octet-stream")}"/>' for e in exts
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        f"{body}"
        '<Override PartName="/AppxManifest.xml" ContentType="application/vnd.ms-appx.manifest+xml"/>'
        '<Override PartName="/AppxBlockMap.xml" ContentType="application/vnd.ms-appx.blockmap+xml"/>'
        + (
            '<Override PartName="/AppxSignature.p7x" ContentType="application/vnd.ms-appx.signature"/>'
            if signed
            else ""
        )
        + "</Types>"
    ).encode()


def make_test_appx(
    out_path: str | Path,
    *,
    name: str,
    publisher: str,
    version: str,
    arch: str,
    payload: dict[str, bytes],
    timestamp: int,
    signer: Signer | None = None,
) -> AppInfo:
    """Write a small valid app package (signed by `signer` when given), byte-identical for the same inputs."""
    from ..util.atomic import atomic_output

    if arch not in ARCHITECTURES:
        raise ConfigError(f"app architecture {arch!r} is not one of {', '.join(ARCHITECTURES)}")
    files = sorted(payload.items()) + [("AppxManifest.xml", manifest_xml(name, publisher, version, arch))]
    names = [n for n, _ in files]
    members = files + [
        ("AppxBlockMap.xml", block_map(files)),
        ("[Content_Types].xml", content_types(names, signer is not None)),
    ]
    stamp = time.gmtime(max(timestamp, 315532800))[:6]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for member, data in members:
            info = zipfile.ZipInfo(member, date_time=stamp)
            info.create_system = 0
            info.external_attr = 0
            zf.writestr(info, data)
    data = buf.getvalue()
    if signer is not None:
        data = sign_appx(data, signer, timestamp, display=str(out_path))
    with atomic_output(out_path) as fh:
        fh.write(data)
    return read_app(out_path)


def appx_digest(data: bytes, display: str) -> bytes:
    """The APPX "digest" of an unsigned package: its local records, directory, content types and block map."""
    eocd = data.rfind(b"PK\x05\x06", max(0, len(data) - 65557))
    if eocd < 0 or len(data) < eocd + 22:
        raise FormatError("no ZIP end record; is it an app package?", display)
    cd_off = int.from_bytes(data[eocd + 16 : eocd + 20], "little")
    if cd_off > eocd:
        raise FormatError("the ZIP's directory offset is outside the file", display)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        if any(i.filename == SIGNATURE for i in zf.infolist()):
            raise ConfigError("the package is signed already", display)
        parts = {}
        for member in ("[Content_Types].xml", "AppxBlockMap.xml"):
            content = _member(zf, member, display)
            if content is None:
                raise FormatError(f"the package has no {member}; it cannot be signed", display)
            parts[member] = hashlib.sha256(content).digest()
    return b"".join(
        [
            b"APPX",
            b"AXPC" + hashlib.sha256(data[:cd_off]).digest(),
            b"AXCD" + hashlib.sha256(data[cd_off:]).digest(),
            b"AXCT" + parts["[Content_Types].xml"],
            b"AXBM" + parts["AppxBlockMap.xml"],
        ]
    )


def sign_appx(data: bytes, signer: Signer, timestamp: int, display: str = "app package") -> bytes:
    """`data` (an unsigned package) with AppxSignature.p7x added as its last member."""
    from ..signing.der import der, indirect_data, oid

    sip = der(0x30, der(0x02, bytes.fromhex("01010000")) + der(0x04, APPX_SIP_GUID) + b"\x02\x01\x00" * 5)
    indirect = indirect_data(der(0x30, oid(OID_SPC_SIPINFO) + sip), appx_digest(data, display))
    blob = signer.authenticode_blob(indirect, epoch=timestamp)
    buf = io.BytesIO(data)
    with zipfile.ZipFile(buf, "a") as zf:
        info = zipfile.ZipInfo(SIGNATURE, date_time=time.gmtime(max(timestamp, 315532800))[:6])
        info.compress_type = zipfile.ZIP_DEFLATED
        info.create_system = 0
        info.external_attr = 0
        zf.writestr(info, b"PKCX" + blob)
    return buf.getvalue()
