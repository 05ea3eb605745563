"""The image stages after package resolution, as plain functions the SCons actions call:
layout (with the release policy, before any image work), one partition image, the FFU.

Each stage reads only its declared inputs (the CABs, the computed layout) so the graph can
rebuild one partition without touching the others.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

from ..errors import ConfigError, FormatError
from ..formats import blocksig, disklayout, fsimage, secdesc
from ..formats.cab import CabReader
from ..util.atomic import scratch_dir, write_bytes
from . import install, layout, partition, policy, updateos
from .cabfacts import CabFacts

CONTENT_GRANULARITY = 16 << 20  # content sizes are rounded up to this: small edits keep the layout
REGISTRY_ALLOWANCE = 8 << 20  # hives and BCD are written after sizing


def read_layout_files(cab_path: Path) -> dict[str, bytes]:
    """DeviceLayout.xml / OEMDevicePlatform.xml carried by a package, by lower-case file name."""
    out = {}
    with CabReader(cab_path) as cab:
        mum = install.read_mum(cab, cab_path)
        members = {m.name.lower(): m for m in cab.members}
        for f in mum.iter(f"{install.ASM}file"):
            name = (f.get("name") or "").replace("/", "\\")
            base = name.rsplit("\\", 1)[-1].lower()
            if base in ("devicelayout.xml", "oemdeviceplatform.xml") and "\\imageupdate\\" in name.lower():
                member = members.get((f.get("cabpath") or "").lower())
                if member is not None:
                    out[base] = cab.read(member, 16 << 20)
    return out


def content_sizes(cabs: list[Path], facts: CabFacts | None = None) -> tuple[int, int]:
    """Payload bytes and file count a list of packages installs (from their update.mum)."""
    total = files = 0
    for cab_path in cabs:
        if facts is None:
            size, count = _cab_sizes(cab_path)
        else:
            size, count = facts.get(cab_path, "sizes", lambda c=cab_path: _cab_sizes(c))
        total += size
        files += count
    return total, files


def _cab_sizes(cab_path: Path) -> tuple[int, int]:
    """One package's payload bytes and file count, from its update.mum."""
    total = files = 0
    with CabReader(cab_path) as cab:
        mum = install.read_mum(cab, cab_path)
        for f in mum.iter(f"{install.ASM}file"):
            if f.get("sourcePackage") and f.get("size") and f.get("cabpath") != "update.cat":
                size = f.get("size")
                if not size.isdigit() or len(size) > 15:
                    raise FormatError(
                        f"update.mum gives {f.get('name')} the size {size!r}, which is not a byte count",
                        str(cab_path),
                    )
                total += int(size)
                files += 1
    return total, files


def build_layout(
    layout_cab: Path,
    platform_cab: Path,
    partitions: dict[str, list[Path]],
    out_json: Path,
    *,
    release_type: str,
    where: str,
    facts: CabFacts | None = None,
    trust: tuple[list[Path], list[Path]] | None = None,
    updateos_wim: Path | None = None,
) -> disklayout.DiskLayout:
    """Check the release policy, read the layout from its packages and place every partition.
    `facts`: what was read from each unchanged CAB by an earlier run (cabfacts); `trust`: root
    certificate files and the (Microsoft) CABs that must verify against them; `updateos_wim`: the
    UpdateOS.wim MainOS will hold, counted in its content as ImgGen does."""
    every = sorted({c for cabs in partitions.values() for c in cabs})
    if trust is not None and trust[0]:
        roots, ms_cabs = trust
        tag = "trust:" + hashlib.sha256(b"".join(Path(r).read_bytes() for r in roots)).hexdigest()[:32]

        def untrusted(cab: Path, certs: list) -> list[str]:
            if facts is None:
                return policy.trust_problems(cab, certs)
            return facts.get(cab, tag, lambda: policy.trust_problems(cab, certs))

        policy.check_trusted(ms_cabs, roots, where, problems_of=untrusted)

    def problems(cab: Path, release: str) -> list[str]:
        if facts is None or release.lower() != "production":  # nothing read for other types
            return policy.package_problems(cab, release)
        return facts.get(cab, "problems:production", lambda: policy.package_problems(cab, release))

    def layout_files(cab: Path) -> dict[str, bytes]:
        return facts.get(cab, "layout", lambda: read_layout_files(cab)) if facts else read_layout_files(cab)

    policy.check_release(every, release_type, where, problems_of=problems)
    files = layout_files(layout_cab)
    if "devicelayout.xml" not in files:
        raise ConfigError(
            f"layout package {layout_cab.name} carries no \\Windows\\ImageUpdate\\DeviceLayout.xml", where
        )
    dl = layout.load_device_layout(files["devicelayout.xml"], f"{layout_cab.name}:DeviceLayout.xml")
    pfiles = files if platform_cab == layout_cab else layout_files(platform_cab)
    if "oemdeviceplatform.xml" not in pfiles:
        raise ConfigError(
            f"device platform package {platform_cab.name} carries no OEMDevicePlatform.xml", where
        )
    dp = layout.load_device_platform(
        pfiles["oemdeviceplatform.xml"], f"{platform_cab.name}:OEMDevicePlatform.xml"
    )
    layout.check_partitions(dl, [(name, where, None) for name in partitions])
    content, counts = {}, {}
    for name, cabs in partitions.items():
        size, count = content_sizes(cabs, facts)
        raw = dl.find(name).filesystem is None
        if raw:
            content[name] = size
        else:
            if name.lower() == "mainos":
                size += REGISTRY_ALLOWANCE
                if updateos_wim is not None:
                    size += updateos.mainos_bytes(updateos_wim, dl.find(name).cluster_size or 4096)
            content[name] = -(-size // CONTENT_GRANULARITY) * CONTENT_GRANULARITY
            counts[name] = count
    disk = layout.compute_layout(dl, dp, content, content_files=counts)
    write_bytes(
        out_json,
        json.dumps(
            {"layout": disklayout.to_json(disk), "text": layout.format_layout(disk)}, indent=1, sort_keys=True
        ).encode()
        + b"\n",
    )
    return disk


def load_layout(path: Path) -> disklayout.DiskLayout:
    return disklayout.from_json(json.loads(Path(path).read_text())["layout"])


def build_partition(
    layout_json: Path,
    name: str,
    cabs: list[Path],
    out_image: Path,
    out_manifest: Path,
    *,
    epoch: int,
    workdir: Path | None = None,
    cache_dir: Path | None = None,
    jobs: int = 1,
    updateos_wim: Path | None = None,
) -> str:
    """Install `cabs` into partition `name` and write its image (FAT, NTFS or raw) and manifest;
    returns the image's content signature (blocksig.file_signature: mkntfs, libntfs-3g and mtools
    write it in other processes, so it is read back once here, holes unread, on the action's
    thread rather than SCons' taskmaster). That pass also leaves every 128 KiB chunk's SHA-256
    in ``<image>.chunks`` (blocksig.write_sidecar), which the FFU writer uses for its hash table.
    `cache_dir`, `jobs`: see :func:`partition.stage`;
    `updateos_wim`: MainOS's ``PROGRAMS\\UpdateOS\\UpdateOS.wim`` (:mod:`.updateos`)."""
    blocksig.sidecar_path(out_image).unlink(missing_ok=True)  # describes the image being replaced
    disk = load_layout(layout_json)
    p = disk.partition(name)
    size = disk.size(p)
    # the staged tree (thousands of links) is removed off the critical path when the build allows
    with scratch_dir(f".{out_image.name}.stage-", workdir or out_image.parent) as tmp:
        ids = {q.name: q.id for q in disk.partitions if q.id}
        st = partition.stage(
            p.name,
            cabs,
            Path(tmp) / "stage",
            epoch=epoch,
            disk_style=disk.style,
            disk_id=disk.disk_id,
            partition_ids=ids or None,
            cache_dir=cache_dir,
            jobs=jobs,
        )
        if updateos_wim is not None:
            updateos.place_in(st, updateos_wim)
        if p.filesystem is None:
            if st.files:
                raise ConfigError(
                    f"partition {p.name} is raw (no FileSystem in the layout) but packages install "
                    f"files into it ({sorted({f.package for f in st.files.values()})})"
                )
            if st.raw_image is not None:
                fsimage.write_raw(st.raw_image[0], out_image, size_bytes=size)
            else:
                _empty_sparse(out_image, size)
        elif p.filesystem.upper() in ("FAT", "FAT32", "FAT16", "FAT12"):
            # FAT has no security descriptors: what manifests give its files is not kept (as on Windows)
            fsimage.write_fat(
                st.root,
                out_image,
                size_bytes=size,
                cluster_size=p.cluster_size,
                label=p.name,
                fat_type="FAT32" if p.filesystem.upper() == "FAT32" else None,
                timestamp=epoch,
                sector_size=disk.sector_size,
                hidden_sectors=p.first_sector,
            )
        elif p.filesystem.upper() == "NTFS":
            fsimage.write_ntfs(
                st.root,
                out_image,
                size_bytes=size,
                cluster_size=p.cluster_size or 4096,
                label=p.name,
                timestamp=epoch,
                sector_size=disk.sector_size,
                hidden_sectors=p.first_sector,
                security={rel.replace("\\", "/"): sddl for rel, sddl, _ in st.security.values()},
                # MainOS is C:\\ (Windows' OS root); other volumes get what Windows' format gives
                root_sddl=secdesc.OS_ROOT_SDDL if p.name.lower() == "mainos" else secdesc.DATA_ROOT_SDDL,
            )
        else:
            raise ConfigError(
                f"partition {p.name}: unknown file system {p.filesystem!r}; use NTFS, FAT or FAT32"
            )
        partition.write_manifest(st, out_manifest)
    signed = blocksig.sign_file(out_image)
    blocksig.write_sidecar(out_image, signed)  # the FFU takes these digests instead of hashing again
    return signed.signature


def _empty_sparse(out: Path, size: int) -> None:
    from ..util.atomic import atomic_output

    with atomic_output(out) as fh:
        fh.truncate(size)


def build_ffu(
    layout_json: Path,
    images: dict[str, Path],
    out_ffu: Path,
    *,
    epoch: int,
    signer=None,
    description: str = "",
    raw_out: Path | None = None,
    progress=None,
    ffu_version: int = 1,
    device_path: str | None = None,
):
    """Write Flash.ffu (catalog signed by the package signer) and optionally the raw disk.

    `ffu_version` 2 writes the multi-store format with this disk as its (main OS) store."""
    from ..formats import diskimage, ffu

    disk = load_layout(layout_json)
    _check_image_sizes(disk, images)
    sign = (lambda der: signer.sign_catalog(der, epoch=epoch)) if signer is not None else None
    common = {
        "os_version": "10.0.17763.0",
        "description": description,
        "sign_catalog": sign,
        "this_update": datetime.fromtimestamp(epoch, UTC),
        "progress": progress,
    }
    if ffu_version == 2:
        store = ffu.FfuStore(
            disk, images, device_path=device_path or ffu.DEVICE_PATH_EMMC_USER, is_main_os=True
        )
        result = ffu.write_ffu(out_ffu, stores=[store], **common)
    elif ffu_version == 1:
        result = ffu.write_ffu(out_ffu, disk, images, **common)
    else:
        raise ConfigError(f"FFU version {ffu_version}; use 1 or 2")
    if raw_out is not None:
        diskimage.assemble_raw(disk, images, raw_out)
    return result


def _check_image_sizes(disk, images: dict[str, Path]) -> None:
    """build_partition writes every image exactly as large as its partition; one of another size
    was cut short or replaced (a truncated copy gave an FFU with fewer blocks, and said nothing)."""
    for name, path in images.items():
        try:
            want = disk.size(disk.partition(name))
        except KeyError:
            continue  # the FFU writer names it
        try:
            got = path.stat().st_size
        except OSError as exc:
            raise FormatError(f"cannot read partition image: {exc.strerror}", str(path)) from None
        if got != want:
            raise FormatError(
                f"partition image has {got} bytes, partition {name} {want} (truncated or replaced); "
                "delete it and build again",
                str(path),
            )


__all__ = ["build_layout", "build_partition", "build_ffu", "load_layout", "read_layout_files"]
