"""Package project → signed CBS CAB: the work of pkggen and sign.cmd, as one function the SCons
action calls. Order matters: PE payloads are signed first (their bytes change), then hashed
into the manifests and the catalog, the catalog is signed, and finally the CAB itself."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from ..errors import FFUError
from ..formats import cab, catalog, pe
from ..signing import signers as signing
from . import cbs, project
from .variant import Payload, Variant

CHUNK = 1 << 20


@dataclass(frozen=True)
class BuildSettings:
    compression: str = "none"  # pkggen default: uncompressed
    epoch: int = 1577836800  # SOURCE_DATE_EPOCH (2020-01-01) for catalog time and CAB dates
    signer: signing.Signer | None = None  # None: unsigned catalog and CAB (pkggen without sign.cmd)
    sign_pe: bool = False  # Authenticode-sign PE payloads before they are catalogued


# source path -> (size, mtime_ns, SHA-256 hex) of the file as this build read it
SourceDigests = dict[str, tuple[int, int, str]]


def _digest(
    p: Payload,
    signer: signing.Signer | None = None,
    epoch: int = 0,
    sources: SourceDigests | None = None,
) -> tuple[cbs.FileDigest, catalog.MemberHash, bytes | None]:
    """One read of a payload file: its manifest digest and catalog hashes, after Authenticode-
    signing it in memory when `signer` is given and the file is a PE (its signed bytes are then
    returned, to be stored in the CAB instead of the file). The file's own digest goes to
    `sources` when it did not change while it was read."""
    try:
        st = os.stat(p.source)
    except OSError:
        raise p.where.error(
            f"source file {p.display} does not exist; create it or fix the source path"
        ) from None
    if not os.path.isfile(p.source):
        raise p.where.error(f"source {p.display} is not a regular file")
    if st.st_size == 0:
        raise p.where.error(
            f"source file {p.display} is empty; zero-length files are not supported "
            "(put at least one byte in it)"
        )
    h256, h1 = hashlib.sha256(), hashlib.sha1()
    try:
        with open(p.source, "rb") as fh:
            head = fh.read(2)
            if head == b"MZ" and pe.is_pe(p.source):  # PE files are catalogued by their Authenticode hash
                data = head + fh.read()
                h256.update(data)
                _record_source(sources, p, st, os.fstat(fh.fileno()), h256)
                return _pe_digest(p, data, h256.digest(), signer, epoch)
            fh.seek(0)
            while chunk := fh.read(CHUNK):
                h256.update(chunk)
                h1.update(chunk)
            _record_source(sources, p, st, os.fstat(fh.fileno()), h256)
    except OSError as exc:
        raise p.where.error(f"cannot read {p.display}: {exc.strerror}") from None
    except FFUError as exc:
        raise exc.at(p.display) from None
    return (
        cbs.FileDigest(st.st_size, h256.digest()),
        catalog.MemberHash("flat", h256.digest(), h1.digest(), st.st_size),
        None,
    )


def _record_source(
    sources: SourceDigests | None, p: Payload, before: os.stat_result, after: os.stat_result, h
) -> None:
    """A file written to while it was read gave bytes that may be no version of it at all: stop
    (the CAB would hold them under a signature of other bytes)."""
    if (before.st_size, before.st_mtime_ns, before.st_ino) != (
        after.st_size,
        after.st_mtime_ns,
        after.st_ino,
    ):
        raise p.where.error(f"source file {p.display} changed while the build read it; build again")
    if sources is not None:
        sources[str(p.source)] = (after.st_size, after.st_mtime_ns, h.hexdigest())


def _pe_digest(
    p: Payload,
    data: bytes,
    sha256: bytes,
    signer: signing.Signer | None,
    epoch: int,
) -> tuple[cbs.FileDigest, catalog.MemberHash, bytes | None]:
    """`sha256`: of `data`, the file as read."""
    signed = None
    if signer is not None:
        signed = signer.sign_pe_data(data, p.display, epoch=epoch)
        if signed is data:
            signed = None  # already signed: stored from the file as it is
        else:
            data, sha256 = signed, hashlib.sha256(signed).digest()
    member = catalog.member_hashes(catalog.CatalogMember(p.display, None, data))
    return cbs.FileDigest(len(data), sha256), member, signed


class Written(NamedTuple):
    """One member of a written CAB as the build had it: its file entry, its bytes (generated or
    signed) or the source file it was copied from, and for a source file the SHA-256 the build
    took of it (the digest update.mum and the catalog declare)."""

    entry: cab.CabEntry
    data: bytes | None
    source: str | None
    sha256: bytes | None


class Built(NamedTuple):
    """What the build tool can take from a package build instead of reading files again."""

    sources: SourceDigests  # SHA-256 of every payload file as read
    cab_signature: str | None  # cab.content_signature() of the CAB, when its writer computed it
    sha256: str | None = None  # SHA-256 of the CAB file, when its writer computed it (the SBOM's)
    mum: bytes = b""  # the update.mum it holds (the SBOM's identity of the package)
    # what it holds, in CAB order (the package action's entry); also after a signing command,
    # which may add a signature only (CommandSigner checks the CAB digest is unchanged)
    members: tuple[Written, ...] = ()


def build_variant(v: Variant, out_path: str | Path, settings: BuildSettings = BuildSettings()) -> Built:
    """Write the (signed) CAB for one package variant atomically; raise FFUError for user mistakes."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    sources: SourceDigests = {}
    mum: list[bytes] = []
    written: list[Written] = []
    info = _build(v, out_path, settings, sources, mum, written)
    return Built(sources, info.content_signature, info.sha256, mum[0], tuple(written))


# Padded CAB signature size of each signer's last CAB in this process: an RSA signer's is the
# same every time, so write_cab knows the final header in advance and hashes the file as written.
_SIGNATURE_SIZES: dict[str, int] = {}


def _build(
    v: Variant,
    out_path: Path,
    settings: BuildSettings,
    sources: SourceDigests,
    mum: list[bytes],
    written: list[Written],
) -> cab.CabInfo:
    pe_signer = settings.signer if settings.sign_pe else None
    layout_payload = [*v.payload, *(p for p in (v.bcd, v.binary_image) if p is not None)]
    hashed = {
        p.device_path.lower(): _digest(p, None if p is v.bcd else pe_signer, settings.epoch, sources)
        for p in layout_payload
    }
    digests = {k: d for k, (d, _, _) in hashed.items()}
    if v.bcd is not None:
        project.check_bcd(v.bcd.source, v.bcd.display, v.bcd.where)
    layout = cbs.PackageLayout(v, digests, settings.epoch)

    def unsigned_catalog(entries: list[cbs.CabEntry]) -> bytes:
        members = []
        for e in entries:
            if e.payload is not None:
                members.append(hashed[e.payload.device_path.lower()][1])
            else:
                members.append(catalog.member_hashes(catalog.CatalogMember(e.cab_path, None, e.data)))
        return catalog.build_catalog_v2(
            members,
            package_name=v.name,
            test_package=v.project.release_type == "Test",
            this_update=datetime.fromtimestamp(settings.epoch, UTC),
        )

    # pkggen's order: catalog the working update.mum unsigned, list that catalog's size in the
    # final update.mum, then catalog and sign again (cbs.PackageLayout.update_mum).
    working, _ = layout.entries()
    entries, _ = layout.entries(catalog_size=len(unsigned_catalog(working)))
    cat = unsigned_catalog(entries)
    if settings.signer is not None:
        cat = settings.signer.sign_catalog(cat, epoch=settings.epoch)
    mum.append(entries[0].data)
    cab_members = [
        cab.CabMember(entries[0].cab_path, data=entries[0].data),
        cab.CabMember("update.cat", data=cat),
    ]
    declared: list[bytes | None] = [None, None]  # the SHA-256 of each source member
    for e in entries[1:]:
        if e.payload is not None:
            digest, _, signed_pe = hashed[e.payload.device_path.lower()]
            cab_members.append(
                cab.CabMember(e.cab_path, source=None if signed_pe else e.payload.source, data=signed_pe)
            )
            declared.append(None if signed_pe else digest.sha256)
        else:
            cab_members.append(cab.CabMember(e.cab_path, data=e.data))
            declared.append(None)
    info = _write(out_path, settings, cab_members)
    written.extend(
        Written(entry, m.data, None if m.source is None else os.fspath(m.source), sha)
        for entry, m, sha in zip(info.members, cab_members, declared, strict=True)
    )
    return info


def _write(out_path: Path, settings: BuildSettings, cab_members: list[cab.CabMember]) -> cab.CabInfo:
    if settings.signer is None:
        return cab.write_cab(
            out_path, cab_members, compression=settings.compression, timestamp=settings.epoch
        )
    # In-process signers sign the CAB as it is written (with the signature reserve), before it is
    # renamed into place; external tools (osslsigncode and friends) get the plain CAB to sign.
    signer, epoch = settings.signer, settings.epoch
    if isinstance(signer, signing.KeySigner):
        info = cab.write_cab(
            out_path,
            cab_members,
            compression=settings.compression,
            timestamp=epoch,
            reserve_signature=True,
            authenticode=lambda digest: signer.cab_signature(digest, epoch=epoch),
            signature_size_hint=_SIGNATURE_SIZES.get(signer.identity),
        )
        if info.signature_size is not None:
            _SIGNATURE_SIZES[signer.identity] = info.signature_size
        return info
    return cab.write_cab(
        out_path,
        cab_members,
        compression=settings.compression,
        timestamp=epoch,
        finish=lambda path: signer.sign_cab(path, path, epoch=epoch),
    )
