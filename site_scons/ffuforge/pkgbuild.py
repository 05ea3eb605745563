"""Package project → CBS CAB: the work of pkggen, as one function the SCons action calls."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from . import cab, catalog, cbs, project
from .variant import Payload, Variant

CHUNK = 1 << 20


@dataclass(frozen=True)
class BuildSettings:
    compression: str = "none"          # pkggen default: uncompressed
    epoch: int = 1577836800            # SOURCE_DATE_EPOCH (2020-01-01) for catalog time and CAB dates


def _digest(p: Payload) -> cbs.FileDigest:
    try:
        st = os.stat(p.source)
    except OSError:
        raise p.where.error(f"source file {p.display} does not exist; create it or fix the source path") from None
    if not os.path.isfile(p.source):
        raise p.where.error(f"source {p.display} is not a regular file")
    if st.st_size == 0:
        raise p.where.error(f"source file {p.display} is empty; zero-length files are not supported "
                            "(put at least one byte in it)")
    h = hashlib.sha256()
    try:
        with open(p.source, "rb") as fh:
            while chunk := fh.read(CHUNK):
                h.update(chunk)
    except OSError as exc:
        raise p.where.error(f"cannot read {p.display}: {exc.strerror}") from None
    return cbs.FileDigest(st.st_size, h.digest())


def build_variant(v: Variant, out_path: str | Path, settings: BuildSettings = BuildSettings()) -> None:
    """Write the CAB for one package variant atomically; raise FFUError for user mistakes."""
    layout_payload = [*v.payload, *(p for p in (v.bcd, v.binary_image) if p is not None)]
    digests = {p.device_path.lower(): _digest(p) for p in layout_payload}
    if v.bcd is not None:
        project.check_bcd(v.bcd.source, v.bcd.display, v.bcd.where)
    layout = cbs.PackageLayout(v, digests)
    entries, _ = layout.entries()
    members = []
    for e in entries:
        m = catalog.CatalogMember(e.cab_path, e.payload.source if e.payload else None, e.data)
        members.append(catalog.member_hashes(m))
    cat = catalog.build_catalog_v2(
        members, package_name=v.name, test_package=v.project.release_type == "Test",
        this_update=datetime.fromtimestamp(settings.epoch, UTC))
    cab_members = [cab.CabMember(entries[0].cab_path, data=entries[0].data),
                   cab.CabMember("update.cat", data=cat)]
    for e in entries[1:]:
        if e.payload is not None:
            cab_members.append(cab.CabMember(e.cab_path, source=e.payload.source))
        else:
            cab_members.append(cab.CabMember(e.cab_path, data=e.data))
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    cab.write_cab(out_path, cab_members, compression=settings.compression, timestamp=settings.epoch)
