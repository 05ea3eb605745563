"""Package project → signed CBS CAB: the work of pkggen and sign.cmd, as one function the SCons
action calls. Order matters: PE payloads are signed first (their bytes change), then hashed
into the manifests and the catalog, the catalog is signed, and finally the CAB itself."""

from __future__ import annotations

import copy
import hashlib
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from . import atomic, cab, catalog, cbs, pe, project, signing
from .errors import FFUError
from .variant import Payload, Variant

CHUNK = 1 << 20


@dataclass(frozen=True)
class BuildSettings:
    compression: str = "none"          # pkggen default: uncompressed
    epoch: int = 1577836800            # SOURCE_DATE_EPOCH (2020-01-01) for catalog time and CAB dates
    signer: signing.Signer | None = None  # None: unsigned catalog and CAB (pkggen without sign.cmd)
    sign_pe: bool = False              # Authenticode-sign PE payloads before they are catalogued


def _digest(p: Payload) -> tuple[cbs.FileDigest, catalog.MemberHash]:
    """One read of a payload file: its manifest digest and its catalog hashes."""
    try:
        st = os.stat(p.source)
    except OSError:
        raise p.where.error(f"source file {p.display} does not exist; create it or fix the source path") from None
    if not os.path.isfile(p.source):
        raise p.where.error(f"source {p.display} is not a regular file")
    if st.st_size == 0:
        raise p.where.error(f"source file {p.display} is empty; zero-length files are not supported "
                            "(put at least one byte in it)")
    h256, h1 = hashlib.sha256(), hashlib.sha1()
    try:
        with open(p.source, "rb") as fh:
            head = fh.read(2)
            fh.seek(0)
            while chunk := fh.read(CHUNK):
                h256.update(chunk)
                h1.update(chunk)
    except OSError as exc:
        raise p.where.error(f"cannot read {p.display}: {exc.strerror}") from None
    digest = cbs.FileDigest(st.st_size, h256.digest())
    if head == b"MZ" and pe.is_pe(p.source):  # PE files are catalogued by their Authenticode hash
        try:
            member = catalog.member_hashes(catalog.CatalogMember(p.display, p.source, None))
        except FFUError as exc:
            raise exc.at(p.display) from None
    else:
        member = catalog.MemberHash("flat", digest.sha256, h1.digest(), st.st_size)
    return digest, member


def build_variant(v: Variant, out_path: str | Path, settings: BuildSettings = BuildSettings()) -> None:
    """Write the (signed) CAB for one package variant atomically; raise FFUError for user mistakes."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if settings.signer is not None and settings.sign_pe:
        with tempfile.TemporaryDirectory(prefix=f".{out_path.name}.sign-", dir=out_path.parent) as tmp:
            _build(v, out_path, settings, Path(tmp))
    else:
        _build(v, out_path, settings, None)


def _sign_payload(v: Variant, settings: BuildSettings, tmp: Path) -> None:
    """Replace PE payload sources by signed copies (already-signed files stay as they are)."""
    signed_dir = tmp / "signed"
    for i, p in enumerate([*v.payload, *(x for x in (v.binary_image,) if x is not None)]):
        if not os.path.isfile(p.source):
            continue  # reported with its location by _digest
        try:
            is_pe = pe.is_pe(p.source)
        except FFUError as exc:  # unreadable: name the project line that lists it
            raise p.where.error(f"cannot read {p.display}: {exc.message.removeprefix('cannot read file: ')}") from None
        if is_pe:
            dst = signed_dir / f"{i}" / p.source.name
            dst.parent.mkdir(parents=True)
            try:
                settings.signer.sign_pe(p.source, dst, epoch=settings.epoch)
            except FFUError as exc:
                raise exc.at(p.display) from None
            p.source = dst


def _build(v: Variant, out_path: Path, settings: BuildSettings, tmp: Path | None) -> None:
    if settings.signer is not None and settings.sign_pe:
        v = copy.copy(v)  # payload entries get new sources; the planned variant stays untouched
        v.payload = [copy.copy(p) for p in v.payload]
        v.binary_image = copy.copy(v.binary_image)
        _sign_payload(v, settings, tmp)
    layout_payload = [*v.payload, *(p for p in (v.bcd, v.binary_image) if p is not None)]
    hashed = {p.device_path.lower(): _digest(p) for p in layout_payload}
    digests = {k: d for k, (d, _) in hashed.items()}
    if v.bcd is not None:
        project.check_bcd(v.bcd.source, v.bcd.display, v.bcd.where)
    layout = cbs.PackageLayout(v, digests)
    entries, _ = layout.entries()
    members = []
    for e in entries:
        if e.payload is not None:
            members.append(hashed[e.payload.device_path.lower()][1])
        else:
            members.append(catalog.member_hashes(catalog.CatalogMember(e.cab_path, None, e.data)))
    cat = catalog.build_catalog_v2(
        members, package_name=v.name, test_package=v.project.release_type == "Test",
        this_update=datetime.fromtimestamp(settings.epoch, UTC))
    if settings.signer is not None:
        cat = settings.signer.sign_catalog(cat, epoch=settings.epoch)
    cab_members = [cab.CabMember(entries[0].cab_path, data=entries[0].data),
                   cab.CabMember("update.cat", data=cat)]
    for e in entries[1:]:
        if e.payload is not None:
            cab_members.append(cab.CabMember(e.cab_path, source=e.payload.source))
        else:
            cab_members.append(cab.CabMember(e.cab_path, data=e.data))
    if settings.signer is None:
        cab.write_cab(out_path, cab_members, compression=settings.compression, timestamp=settings.epoch)
        return
    # In-process signers take the CAB with the signature reserve and sign it where it lies;
    # external tools (osslsigncode and friends) expect a plain CAB.
    in_place = isinstance(settings.signer, signing.KeySigner)
    with atomic.atomic_path(out_path) as tmp_cab:
        cab.write_cab(tmp_cab, cab_members, compression=settings.compression, timestamp=settings.epoch,
                      reserve_signature=in_place)
        if in_place:
            settings.signer.sign_cab_in_place(tmp_cab, epoch=settings.epoch)
        else:
            settings.signer.sign_cab(tmp_cab, tmp_cab, epoch=settings.epoch)
