"""The FFU writer: plans each store's descriptors, streams the payload while hashing every
chunk on a worker thread (or taking its digest from the partition image's sidecar and copying it
file to file: :mod:`.payload`), then fills in the catalog, hash table and security header. The
file's content signature (:mod:`..blocksig`) comes from the hash table: no second hash.

Separate from the reader: writing needs the disk sources and partition-table builders,
reading only the file.

Blocks shared with a partition table (spec/updateos-chunk0.md B2-B4; IUT
``ImageStorageServiceManaged/*DataEntryGenerator.cs``, DD2FFU for ``OffsetInSectors``):

* A table block is ImgGen's: the whole chunk of the staged disk with the table sectors overlaid,
  so a raw loader at sector 2 or 66 rides along in every chunk-0 table write. The flash-only
  table is only in phase 2, the final one only in the final phase.
* A data block on a table block is **dropped**, not stored with the temporary (flash-only)
  overlay as ImgGen's ``FilterPartitionTablesFromDataBlocks`` does. Evidence: ImgGen's copy is
  byte-identical to the flash-only table block written just before it in phase 2, and the final
  table block rewrites the chunk last, so the final disk is the same either way (every reader in
  B3 replays in order, last writer wins: Microsoft's ``PayloadReader``/``ImagePayloadSource``,
  uuu, img2ffu, WPinternals). The strictest reader, wor-flasher's ``iot-ffu.py``, rejects any data
  descriptor on a table location ("overlapping data or duplicate table locations are unsafe")
  and so would reject ImgGen's own i.MX6 FFUs; dropped, ours pass it. Not verified here: DISM's and
  the device-side flash app's handling (native, not public), which accept ImgGen's duplicates
  and need nothing our FFU lacks.
* A partition not starting on a block gets its full chunk range, ``[floor(start), ceil(end))``
  (ImgGen's MBR path drops the last partial chunk; its GPT raw path throws instead).
* Which blocks a partition stores is its file system's allocation (:mod:`..fsalloc`), every
  block for a raw partition: never the image file's holes.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import os
import tempfile
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ...errors import ConfigError, FormatError, SigningError
from ...util.atomic import atomic_output
from .. import blocksig, catalog, ptable
from ..diskimage import DiskSource
from ..disklayout import DiskLayout
from .manifest import build_manifest, check_ascii, store_device_path
from .payload import ChunkWriter, copy_range, known_images, segments
from .structs import (
    ALG_SHA256,
    BLOCK_SIZE,
    DEFAULT_TIME,
    DESC1,
    DISK_BEGIN,
    DISK_END,
    HASHTABLE_MEMBER,
    IMAGE_HEADER,
    IMAGE_SIGNATURE,
    MAX_DEVICE_PATH,
    MAX_STORES,
    PLATFORM_ID_BYTES,
    SECURITY_HEADER,
    SECURITY_SIGNATURE,
    STORE_HEADER,
    STORE_HEADER_V2,
    U32X2,
    FfuStore,
    FfuWriteResult,
    Progress,
    align,
)

assert BLOCK_SIZE == blocksig.CHUNK  # an FFU's signature is built from its hash table


@dataclass
class _StorePlan:
    """Descriptor list of one store, in ImgGen's phase order (initial, flash-only, final)."""

    index: int
    spec: FfuStore
    src: DiskSource
    bs: int
    disk_blocks: int
    initial_locations: list[tuple[int, int]]
    phase2: array  # disk block indices (1 location, DISK_BEGIN)
    flash_tables: ptable.PartitionTables
    flash_blocks: list[int]
    phase3: array
    pad: int  # 0/1 LocationCount-0 descriptors keeping the metadata off a block boundary
    final_tables: ptable.PartitionTables
    final_locations: list[tuple[int, int, int]]  # (disk block, method, index)
    header: bytes = b""

    @property
    def count(self) -> int:
        return (
            1
            + len(self.phase2)
            + len(self.flash_blocks)
            + len(self.phase3)
            + self.pad
            + len(self.final_locations)
        )

    @property
    def descriptor_length(self) -> int:
        return (
            8
            + 8 * len(self.initial_locations)
            + 16 * (self.count - 1 - self.pad - len(self.final_locations))
            + 8 * self.pad
            + 16 * len(self.final_locations)
        )

    @property
    def meta_length(self) -> int:
        return len(self.header) + self.descriptor_length

    def descriptors(self) -> Iterator[bytes]:
        yield U32X2.pack(len(self.initial_locations), 1) + b"".join(
            U32X2.pack(*loc) for loc in self.initial_locations
        )
        for blocks in (self.phase2, self.flash_blocks):
            for i in range(0, len(blocks), 8192):
                yield b"".join(DESC1.pack(1, 1, DISK_BEGIN, b) for b in blocks[i : i + 8192])
        for i in range(0, len(self.phase3), 8192):
            yield b"".join(DESC1.pack(1, 1, DISK_BEGIN, b) for b in self.phase3[i : i + 8192])
        yield U32X2.pack(0, 1) * self.pad
        yield b"".join(DESC1.pack(1, 1, method, index) for _, method, index in self.final_locations)


def _unclaimed(blocks: array, special: list[int], claimed: set[int]) -> array:
    """`blocks` (sorted) without those already claimed; claims its edge and table blocks.
    Only the few `special` blocks (partition edges, tables) are looked at, not every block."""
    if not blocks:
        return blocks
    drop = []
    for s in special[bisect_left(special, blocks[0]) : bisect_right(special, blocks[-1])]:
        i = bisect_left(blocks, s)
        if i < len(blocks) and blocks[i] == s:
            if s in claimed:
                drop.append(i)
            claimed.add(s)
    if not drop:
        return blocks
    keep, prev = array("Q"), 0
    for i in drop:
        keep.extend(blocks[prev:i])
        prev = i + 1
    keep.extend(blocks[prev:])
    return keep


def _plan_store(k: int, spec: FfuStore, src: DiskSource, bs: int) -> _StorePlan:
    layout = spec.layout
    if layout.chunk_size != BLOCK_SIZE:
        raise ConfigError(f"layout ChunkSize is {layout.chunk_size // 1024} KiB; FFUs need 128")
    if layout.total_bytes % bs:
        raise ConfigError(
            f"disk size {layout.total_sectors} × {layout.sector_size} B is not a multiple of "
            f"{bs // 1024} KiB (MinSectorCount must be)"
        )
    disk_blocks = layout.total_bytes // bs
    gpt = layout.style == "gpt"
    if gpt and disk_blocks < 2:
        raise ConfigError("disk too small for a GPT and its backup in separate blocks")
    flash_tables = src.tables(flash_only=True)
    final_tables = src.tables()

    # Data blocks: RequiredToFlash partitions first (phase 2), then the rest (phase 3), each in
    # table order; a block shared by two partitions belongs to the first that claims it. A block
    # that also carries a partition table is not stored as data (see the module docstring).
    tables = set(flash_tables.blocks(bs)) | set(final_tables.blocks(bs))
    special = sorted(
        tables.union(
            *(
                (o // bs, (o + layout.size(p) - 1) // bs)
                for p in layout.partitions
                for o in (layout.offset(p),)
            )
        )
    )
    claimed: set[int] = set(tables)
    phases = (array("Q"), array("Q"))
    for want_required, out in zip((True, False), phases, strict=True):
        for p in layout.partitions:
            if p.required_to_flash != want_required:
                continue
            out.extend(_unclaimed(src.partition_blocks(p, bs), special, claimed))
    flash_blocks = flash_tables.blocks(bs)
    final_locations = [(b, DISK_BEGIN, b) for b in final_tables.blocks(bs, ("primary", "mbr", "ebr"))]
    begin = {b for b, _, _ in final_locations}
    final_locations += [
        (b, DISK_END, disk_blocks - 1 - b) for b in final_tables.blocks(bs, ("backup",)) if b not in begin
    ]
    initial = [(DISK_BEGIN, 0), (DISK_END, 0)] if gpt else [(DISK_BEGIN, 0)]
    return _StorePlan(
        k,
        spec,
        src,
        bs,
        disk_blocks,
        initial,
        phases[0],
        flash_tables,
        flash_blocks,
        phases[1],
        0,
        final_tables,
        final_locations,
    )


def _platform_field(ids: Sequence[str]) -> bytes:
    raw = b"".join(check_ascii(i, "DevicePlatformId").encode("ascii") + b"\0" for i in ids)
    if not ids:
        raise ConfigError("no device platform ID (OEMDevicePlatform.xml DevicePlatformIDs) for the FFU")
    if len(raw) > PLATFORM_ID_BYTES - 1:
        raise ConfigError(f"device platform IDs take {len(raw)} bytes with their NULs; an FFU holds 191")
    return raw.ljust(PLATFORM_ID_BYTES, b"\0")


def _store_header(plan: _StorePlan, version: int, nstores: int) -> bytes:
    flash_index = 1 + len(plan.phase2)
    final_index = flash_index + len(plan.flash_blocks) + len(plan.phase3) + plan.pad
    head = STORE_HEADER.build(
        dict(
            update_type=0,
            major=version,
            minor=0,
            ff_major=2,
            ff_minor=0,
            platform_id=_platform_field(plan.spec.layout.platform_ids),
            block_size=plan.bs,
            write_descriptor_count=plan.count,
            write_descriptor_length=plan.descriptor_length,
            validate_descriptor_count=0,
            validate_descriptor_length=0,
            initial_index=0,
            initial_count=BLOCK_SIZE // plan.bs,
            flash_only_index=flash_index,
            flash_only_count=len(plan.flash_blocks),
            final_index=final_index,
            final_count=len(plan.final_locations),
        )
    )
    if version == 2:
        path = store_device_path(plan.spec, plan.index).encode("utf-16-le")
        if len(path) // 2 > MAX_DEVICE_PATH:
            raise ConfigError("device path too long")
        head += (
            STORE_HEADER_V2.build(
                dict(
                    num_stores=nstores,
                    store_index=plan.index + 1,
                    store_payload_size=plan.bs * plan.count,
                    device_path_length=len(path) // 2,
                )
            )
            + path
        )
    return head


def _stream_store_payload(plan: _StorePlan, w: ChunkWriter) -> None:
    bs = plan.bs
    zero = bytes(bs)
    known = known_images(plan.src, bs)

    def table_block(b: int, tables: ptable.PartitionTables) -> bytes:
        """ImgGen's table block: the whole chunk of the staged disk, table sectors overlaid."""
        view = memoryview(bytearray(bs))
        plan.src.read(view, b * bs)
        tables.overlay(view, b * bs)
        return view.tobytes()

    def data(blocks: array) -> None:
        for k, run in segments(blocks, known, bs):
            if k is None:
                for _, _, view in plan.src.iter_runs(run, bs):
                    w.blocks(view)
            else:
                i = run[0] - k.first
                w.copied(k.fd, run[0] * bs - k.offset, len(run) * bs, k.digests[32 * i : 32 * (i + len(run))])

    w.blocks(zero)  # initial wipe
    data(plan.phase2)
    for b in plan.flash_blocks:
        w.blocks(table_block(b, plan.flash_tables))
    data(plan.phase3)
    for _ in range(plan.pad):
        w.blocks(zero)
    for b, _, _ in plan.final_locations:
        w.blocks(table_block(b, plan.final_tables))
    for k in known:  # the digests describe the file as it was when its sidecar was checked
        if blocksig.binding(os.fstat(k.fd)) != k.binding:
            raise FormatError("partition image changed while the FFU was written; build again", k.path)


def _catalog(hash_table: bytes, this_update: datetime, sign: Callable[[bytes], bytes] | None) -> bytes:
    cat = catalog.build_catalog_v1(
        [(HASHTABLE_MEMBER, hashlib.sha1(hash_table).digest())], this_update=this_update
    )
    if sign is not None:
        cat = sign(cat)
        if not isinstance(cat, bytes | bytearray) or not cat:
            raise SigningError("the catalog signer returned no catalog")
    return bytes(cat)


def write_ffu(
    out_path: str | os.PathLike,
    layout: DiskLayout | None = None,
    images: Mapping[str, str | os.PathLike] | None = None,
    *,
    stores: Sequence[FfuStore] | None = None,
    os_version: str | None = None,
    description: str | None = None,
    antitheft_version: str = "1.1",
    this_update: datetime = DEFAULT_TIME,
    sign_catalog: Callable[[bytes], bytes] | None = None,
    only_defined_gpt_entries: bool = False,
    progress: Progress | None = None,
    threads: bool | None = None,
) -> FfuWriteResult:
    """Write an FFU for `layout` + `images` (v1), or for `stores` (v2, one store per device).

    `images` maps partition names to image files (sparse files: only data extents are stored);
    `sign_catalog(unsigned_catalog) -> signed_catalog` signs the image catalog; `progress(done,
    total)` gets bytes written after the header area. Same inputs give identical bytes.
    """
    if stores is None:
        if layout is None:
            raise ConfigError("write_ffu needs a layout (or stores)")
        specs, version = [FfuStore(layout, images or {})], 1
    else:
        if layout is not None or images is not None:
            raise ConfigError("write_ffu takes either layout/images or stores, not both")
        specs, version = list(stores), 2
        if not 0 < len(specs) <= MAX_STORES:
            raise ConfigError(f"an FFU holds 1-{MAX_STORES} stores, not {len(specs)}")
    bs = chunk = BLOCK_SIZE
    gpt_entries = 4096 // ptable.GPT_ENTRY_SIZE if only_defined_gpt_entries else ptable.GPT_DEFAULT_ENTRIES
    out_path = Path(out_path)
    use_threads = (os.cpu_count() or 1) > 1 if threads is None else threads

    with contextlib.ExitStack() as stack:
        plans = []
        for k, spec in enumerate(specs):
            src = stack.enter_context(DiskSource(spec.layout, spec.images, gpt_entries=gpt_entries))
            plans.append(_plan_store(k, spec, src, bs))
        for plan in plans:
            plan.header = _store_header(plan, version, len(plans))
            if plan.meta_length % bs == 0:  # Microsoft's reader would skip a block
                plan.pad = 1
                plan.header = _store_header(plan, version, len(plans))
        manifest = build_manifest(
            specs,
            version=version,
            os_version=os_version,
            description=description,
            antitheft_version=antitheft_version,
            only_defined_gpt_entries=only_defined_gpt_entries,
        )
        image_region = (
            IMAGE_HEADER.build(
                dict(
                    cbSize=24,
                    signature=IMAGE_SIGNATURE,
                    manifest_length=len(manifest),
                    chunk_kb=chunk // 1024,
                )
            )
            + manifest
        )
        body = (
            align(len(image_region), chunk)
            + sum(align(p.meta_length, p.bs) for p in plans)
            + sum(p.bs * p.count for p in plans)
        )
        nchunks = body // chunk
        ht_size = 32 * nchunks
        cat_size = len(_catalog(bytes(ht_size), this_update, sign_catalog))
        img = align(32 + cat_size + ht_size, chunk)

        pool = stack.enter_context(concurrent.futures.ThreadPoolExecutor(2)) if use_threads else None
        with atomic_output(out_path) as f:
            f.seek(img)
            w = ChunkWriter(f, chunk, body, progress, pool)
            w.meta(image_region)
            w.pad()
            for plan in plans:
                w.meta(plan.header)
                for part in plan.descriptors():
                    w.meta(part)
                w.pad()
            for plan in plans:
                _stream_store_payload(plan, w)
            hash_table = w.finish()
            assert len(hash_table) == ht_size and w.done == body
            cat = _catalog(hash_table, this_update, sign_catalog)
            new_img = align(32 + len(cat) + ht_size, chunk)
            if new_img != img:
                f.flush()
                _move_body(f, img, new_img, body, out_path.parent)
                img = new_img
            head = (
                SECURITY_HEADER.build(
                    dict(
                        cbSize=32,
                        signature=SECURITY_SIGNATURE,
                        chunk_kb=chunk // 1024,
                        alg_id=ALG_SHA256,
                        catalog_size=len(cat),
                        hash_table_size=ht_size,
                    )
                )
                + cat
                + hash_table
            )
            head += bytes(img - len(head))  # zero padding up to the body
            f.seek(0)
            f.write(head)
            f.flush()
            size = img + body
            # the hash table holds every later chunk's digest: the file is signed without reading it
            signature = blocksig.signature_from_digests(
                blocksig.chunk_digests(head, chunk) + hash_table, size
            )
    data_blocks = sum(len(p.phase2) + len(p.phase3) for p in plans)
    return FfuWriteResult(
        out_path, size, sum(p.count for p in plans), data_blocks, nchunks, len(cat), signature
    )


def _move_body(f, old: int, new: int, length: int, scratch_dir: Path) -> None:
    """Shift [old, old+length) to `new` through a scratch file (rare: the signed catalog grew or
    shrank across a chunk boundary). The caller then rewrites everything before `new`."""
    fd = f.fileno()
    with tempfile.TemporaryFile(dir=scratch_dir) as tmp:
        copy_range(fd, tmp.fileno(), old, 0, length)
        copy_range(tmp.fileno(), fd, 0, new, length)
    os.ftruncate(fd, new + length)
