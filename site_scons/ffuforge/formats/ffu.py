"""FFU (Full Flash Update) v1/v2 writer and reader, following ImgGen's write rules (ffu-format.md).

Writing is one streaming pass with the header area filled in last. Everything that decides
the file's layout is known before any payload byte is read: the descriptor list comes from
partition-image *extents* (SEEK_DATA), the catalog has a constant size for a given structure
(a signing hook is called once on a provisional catalog to learn the signed size). So the
image header, manifest, store headers, descriptors and payload are written straight to their
final offsets behind a reserved security region while each 128 KiB chunk is hashed (on a worker
thread, overlapping the I/O); then the hash table, catalog (+ signature) and security header
are written into the reserved space. Each source block is read once and hashed once; memory is
O(stored blocks) (8 B per block for the plan, 32 B per chunk for the hash table), never O(disk).
If a signer's final catalog no longer fits the reserved space, the body is moved by whole
chunks (a copy), which is what ImgGen's re-signing does too.

The reader treats the file as hostile: every size, count and offset is checked against the
file before use and problems are FFUError, never an exception from deep inside.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import hashlib
import os
import re
import struct
import tempfile
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from construct import Bytes, Int16ul, Int32ul, Int64ul, Struct

from ..errors import FFUError
from ..util.atomic import atomic_output
from ..util.paths import open_regular
from . import catalog, ptable
from .diskimage import DiskSource
from .disklayout import DiskLayout, PlacedPartition

__all__ = [
    "BLOCK_SIZE",
    "DEVICE_PATH_EMMC_USER",
    "DEVICE_PATH_UFS_LUN0",
    "FfuReader",
    "FfuStore",
    "FfuVerifyResult",
    "FfuWriteResult",
    "build_manifest",
    "write_ffu",
]

BLOCK_SIZE = 131072  # chunk = block = 128 KiB, always (ffu-format.md §6)
SECURITY_SIGNATURE = b"SignedImage "
IMAGE_SIGNATURE = b"ImageFlash  "
ALG_SHA256 = 0x800C
ALG_SHA1 = 0x8004
DISK_BEGIN = 0
DISK_END = 2
HASHTABLE_MEMBER = "HashTable.blob"
DEVICE_PATH_EMMC_USER = "VenHw(B615F1F5-5088-43CD-809C-A16E52487D00)"
DEVICE_PATH_UFS_LUN0 = "VenHw(860845C1-BE09-4355-8BC1-30D64FF8E63A)"
DEFAULT_TIME = datetime(2020, 1, 1, tzinfo=UTC)
PLATFORM_ID_BYTES = 192

# Reader limits (hostile input): far beyond real files.
MAX_CATALOG = 64 << 20
MAX_MANIFEST = 16 << 20
MAX_STORES = 64
MAX_DEVICE_PATH = 2048
MAX_BLOCK_SIZE = 64 << 20
MAX_DISK = 1 << 50  # 1 PiB

SECURITY_HEADER = Struct(
    "cbSize" / Int32ul,
    "signature" / Bytes(12),
    "chunk_kb" / Int32ul,
    "alg_id" / Int32ul,
    "catalog_size" / Int32ul,
    "hash_table_size" / Int32ul,
)
IMAGE_HEADER = Struct(
    "cbSize" / Int32ul,
    "signature" / Bytes(12),
    "manifest_length" / Int32ul,
    "chunk_kb" / Int32ul,
)
STORE_HEADER = Struct(
    "update_type" / Int32ul,
    "major" / Int16ul,
    "minor" / Int16ul,
    "ff_major" / Int16ul,
    "ff_minor" / Int16ul,
    "platform_id" / Bytes(PLATFORM_ID_BYTES),
    "block_size" / Int32ul,
    "write_descriptor_count" / Int32ul,
    "write_descriptor_length" / Int32ul,
    "validate_descriptor_count" / Int32ul,
    "validate_descriptor_length" / Int32ul,
    "initial_index" / Int32ul,
    "initial_count" / Int32ul,
    "flash_only_index" / Int32ul,
    "flash_only_count" / Int32ul,
    "final_index" / Int32ul,
    "final_count" / Int32ul,
)
STORE_HEADER_V2 = Struct(
    "num_stores" / Int16ul,
    "store_index" / Int16ul,
    "store_payload_size" / Int64ul,
    "device_path_length" / Int16ul,
)
assert SECURITY_HEADER.sizeof() == 32 and IMAGE_HEADER.sizeof() == 24
assert STORE_HEADER.sizeof() == 248 and STORE_HEADER_V2.sizeof() == 14

_DESC1 = struct.Struct("<IIII")  # LocationCount 1, BlockCount 1, method, index
_U32x2 = struct.Struct("<II")

Progress = Callable[[int, int], None]


def _align(n: int, a: int) -> int:
    return -(-n // a) * a


# ============================================================================ manifest


def _category(name: str, items: Sequence[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in items)
    lines = [f"[{name}]"]
    for key, value in items:
        first, *more = value.split("\n")
        lines.append(f"{key.ljust(width)} = {first}")
        lines.extend(more)  # Description continuation lines
    return "\r\n".join(lines) + "\r\n\r\n"


def _ascii(value: str, what: str, *, multiline: bool = False) -> str:
    for i, line in enumerate(value.split("\n") if multiline else [value]):
        if (
            not line.isascii()
            or any(c < " " for c in line)
            or (i and ("=" in line or line.lstrip().startswith("[")))
        ):
            raise FFUError(
                f"FFU manifest {what} {value!r} must be printable ASCII"
                + (" (continuation lines without '=' or '[')" if multiline else "")
            )
    return value


def _bool(v: bool) -> str:
    return "True" if v else "False"


def _partition_items(layout: DiskLayout, p: PlacedPartition) -> list[tuple[str, str]]:
    flags = {k.lower(): v for k, v in p.attributes.items()}
    items = [("Name", p.name), ("Type", p.type), ("Primary", _bool(bool(flags.get("primarypartition"))))]
    if p.id:
        items.append(("Id", p.id))
    if flags.get("useallspace"):
        items.append(("UseAllSpace", "true"))
    else:
        items += [("TotalSectors", str(p.sector_count)), ("UsedSectors", str(p.sector_count))]
    if p.filesystem:
        items.append(("FileSystem", p.filesystem))
    for key in ("ReadOnly", "Hidden", "AttachDriveLetter"):
        if key.lower() in flags:
            items.append((key, _bool(flags[key.lower()])))
    if p.bootable:
        items.append(("Bootable", "True"))
    if p.cluster_size:
        items.append(("ClusterSize", str(p.cluster_size)))
    if p.required_to_flash:
        items.append(("RequiredToFlash", "True"))
    return [(k, _ascii(v, k)) for k, v in items]


@dataclass(frozen=True)
class FfuStore:
    """One target device of a (v2) FFU: its layout, partition images and UEFI device path."""

    layout: DiskLayout
    images: Mapping[str, str | os.PathLike]
    device_path: str | None = None  # default: eMMC user area for the first store
    is_main_os: bool | None = None  # default: True for the first store only
    store_id: str | None = None


def build_manifest(
    stores: Sequence[FfuStore],
    *,
    version: int = 1,
    os_version: str | None = None,
    description: str | None = None,
    antitheft_version: str = "1.1",
    only_defined_gpt_entries: bool = False,
) -> bytes:
    """The manifest text (ASCII, CRLF) per ffu-format.md §4."""
    main = stores[0].layout
    ff: list[tuple[str, str]] = []
    if description:
        ff.append(("Description", _ascii(description.replace("\r\n", "\n"), "Description", multiline=True)))
    ff.append(("Version", "2.0"))
    if os_version:
        if not re.fullmatch(r"\d+\.\d+\.\d+\.\d+", os_version):
            raise FFUError(f"OS version {os_version!r} is not a.b.c.d")
        ff.append(("OSVersion", os_version))
    ff += [("AntiTheftVersion", _ascii(antitheft_version, "AntiTheftVersion")), ("UEFI", "True")]
    ff += [
        (f"DevicePlatformId{i}", _ascii(pid, "DevicePlatformId")) for i, pid in enumerate(main.platform_ids)
    ]
    text = _category("FullFlash", ff)
    for k, st in enumerate(stores):
        items = [("SectorSize", str(st.layout.sector_size)), ("MinSectorCount", str(st.layout.total_sectors))]
        if st.store_id:
            items.append(("StoreId", _ascii(st.store_id, "StoreId")))
        items.append(("IsMainOSStore", _bool(_is_main(st, k))))
        if version == 2:
            items.append(("DevicePath", _ascii(_device_path(st, k), "DevicePath")))
        items += [
            ("OnlyAllocateDefinedGptEntries", _bool(only_defined_gpt_entries)),
            ("StoreType", "Default"),
        ]
        text += _category("Store", items)
        for p in st.layout.partitions:
            text += _category("Partition", _partition_items(st.layout, p))
    return text.encode("ascii")


def _is_main(st: FfuStore, k: int) -> bool:
    return st.is_main_os if st.is_main_os is not None else k == 0


def _device_path(st: FfuStore, k: int) -> str:
    if st.device_path:
        return st.device_path
    if k == 0:
        return DEVICE_PATH_EMMC_USER
    raise FFUError(f"store {k + 1} needs a device path (e.g. {DEVICE_PATH_UFS_LUN0})")


def parse_manifest(text: str) -> list[tuple[str, dict[str, str]]]:
    """[(category, {key: value})] in file order; keys keep their spelling, lookups use lower()."""
    out: list[tuple[str, dict[str, str]]] = []
    last_key = None
    for n, raw in enumerate(text.split("\n"), 1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        m = re.fullmatch(r"\s*\[([^\]]*)\]\s*", line)
        if m:
            out.append((m.group(1).strip(), {}))
            last_key = None
            continue
        m = re.fullmatch(r"\s*([^\s=]+)\s*=\s*(.*?)\s*", line)
        if m and out:
            key, value = m.groups()
            if key.lower() in {k.lower() for k in out[-1][1]}:
                raise FFUError(f"manifest line {n}: key {key} repeated in [{out[-1][0]}]")
            out[-1][1][key] = value
            last_key = key
            continue
        if out and last_key and last_key.lower() == "description":
            out[-1][1][last_key] += "\n" + line.strip()
            continue
        raise FFUError(f"manifest line {n}: {line[:60]!r} is neither [category] nor key = value")
    return out


def _get(d: Mapping[str, str], key: str) -> str | None:
    for k, v in d.items():
        if k.lower() == key.lower():
            return v
    return None


# ============================================================================ writer


@dataclass
class _StorePlan:
    """Descriptor list of one store, in ImgGen's phase order (ffu-format.md §5.3)."""

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
        yield _U32x2.pack(len(self.initial_locations), 1) + b"".join(
            _U32x2.pack(*loc) for loc in self.initial_locations
        )
        for blocks in (self.phase2, self.flash_blocks):
            for i in range(0, len(blocks), 8192):
                yield b"".join(_DESC1.pack(1, 1, DISK_BEGIN, b) for b in blocks[i : i + 8192])
        for i in range(0, len(self.phase3), 8192):
            yield b"".join(_DESC1.pack(1, 1, DISK_BEGIN, b) for b in self.phase3[i : i + 8192])
        yield _U32x2.pack(0, 1) * self.pad
        yield b"".join(_DESC1.pack(1, 1, method, index) for _, method, index in self.final_locations)


def _plan_store(k: int, spec: FfuStore, src: DiskSource, bs: int) -> _StorePlan:
    layout = spec.layout
    if layout.chunk_size != BLOCK_SIZE:
        raise FFUError(f"layout ChunkSize is {layout.chunk_size // 1024} KiB; FFUs need 128")
    if layout.total_bytes % bs:
        raise FFUError(
            f"disk size {layout.total_sectors} × {layout.sector_size} B is not a multiple of "
            f"{bs // 1024} KiB (MinSectorCount must be)"
        )
    disk_blocks = layout.total_bytes // bs
    gpt = layout.style == "gpt"
    if gpt and disk_blocks < 2:
        raise FFUError("disk too small for a GPT and its backup in separate blocks")
    flash_tables = src.tables(flash_only=True)
    final_tables = src.tables()

    # Data blocks: RequiredToFlash partitions first (phase 2), then the rest (phase 3), each in
    # table order; a block shared by two partitions belongs to the first that claims it.
    edges = set()
    for p in layout.partitions:
        edges.add(layout.offset(p) // bs)
        edges.add((layout.offset(p) + layout.size(p) - 1) // bs)
    claimed: set[int] = set()
    phases = (array("Q"), array("Q"))
    for want_required, out in zip((True, False), phases, strict=True):
        for p in layout.partitions:
            if p.required_to_flash != want_required:
                continue
            blocks = src.partition_blocks(p, bs)
            if any(b in edges for b in (blocks[:1].tolist() + blocks[-1:].tolist())):
                keep = array("Q")
                for b in blocks:
                    if b in edges:
                        if b in claimed:
                            continue
                        claimed.add(b)
                    keep.append(b)
                blocks = keep
            out.extend(blocks)
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
    raw = b"".join(_ascii(i, "DevicePlatformId").encode("ascii") + b"\0" for i in ids)
    if not ids:
        raise FFUError("no device platform ID (OEMDevicePlatform.xml DevicePlatformIDs) for the FFU")
    if len(raw) > PLATFORM_ID_BYTES - 1:
        raise FFUError(f"device platform IDs take {len(raw)} bytes with their NULs; an FFU holds 191")
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
        path = _device_path(plan.spec, plan.index).encode("utf-16-le")
        if len(path) // 2 > MAX_DEVICE_PATH:
            raise FFUError("device path too long")
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


def _hash_chunks(view: memoryview | bytes, chunk: int) -> bytes:
    sha = hashlib.sha256
    return b"".join([sha(view[o : o + chunk]).digest() for o in range(0, len(view), chunk)])


class _ChunkWriter:
    """Sequential output from the image header on; one SHA-256 per chunk, hashed on a worker
    thread while the main thread writes and reads the next run."""

    def __init__(self, f, chunk: int, total: int, progress: Progress | None, pool):
        self.f, self.chunk, self.total, self.progress, self.pool = f, chunk, total, progress, pool
        self.buf = bytearray()
        self.digests = bytearray()
        self.pending: collections.deque = collections.deque()
        self.done = 0

    def _drain(self, keep: int = 0) -> None:
        while len(self.pending) > keep:
            self.digests += self.pending.popleft().result()

    def meta(self, data: bytes) -> None:
        """Unaligned metadata; hashed as complete chunks accumulate."""
        self.buf += data
        if len(self.buf) >= self.chunk:
            n = len(self.buf) // self.chunk * self.chunk
            self._aligned(bytes(self.buf[:n]))
            del self.buf[:n]

    def pad(self) -> None:
        if self.buf:
            self.buf += bytes(-len(self.buf) % self.chunk)
            self._aligned(bytes(self.buf))
            self.buf.clear()

    def blocks(self, view: memoryview | bytes) -> None:
        """Whole chunks. `view` must stay unchanged until the next call returns."""
        assert not self.buf and len(view) % self.chunk == 0
        self._aligned(view)

    def _aligned(self, view) -> None:
        if self.pool is None:
            self.digests += _hash_chunks(view, self.chunk)
            self.f.write(view)
        else:
            self.pending.append(self.pool.submit(_hash_chunks, view, self.chunk))
            self.f.write(view)
            self._drain(keep=1)
        self.done += len(view)
        if self.progress:
            self.progress(self.done, self.total)

    def finish(self) -> bytes:
        self.pad()
        self._drain()
        return bytes(self.digests)


def _stream_store_payload(plan: _StorePlan, w: _ChunkWriter) -> None:
    bs = plan.bs
    zero = bytes(bs)
    table_blocks = set(plan.flash_blocks) | {b for b, _, _ in plan.final_locations}
    base: dict[int, bytes | None] = dict.fromkeys(table_blocks)

    def table_block(b: int, tables: ptable.PartitionTables) -> bytes:
        if base[b] is None:
            view = memoryview(bytearray(bs))
            plan.src.read(view, b * bs)
            base[b] = view.tobytes()
        block = bytearray(base[b])
        tables.overlay(memoryview(block), b * bs)
        return bytes(block)

    w.blocks(zero)  # initial wipe
    for _, _, view in plan.src.iter_runs(plan.phase2, bs, tables=plan.flash_tables, capture=base):
        w.blocks(view)
    for b in plan.flash_blocks:
        w.blocks(table_block(b, plan.flash_tables))
    for _, _, view in plan.src.iter_runs(plan.phase3, bs, tables=plan.final_tables, capture=base):
        w.blocks(view)
    for _ in range(plan.pad):
        w.blocks(zero)
    for b, _, _ in plan.final_locations:
        w.blocks(table_block(b, plan.final_tables))


@dataclass(frozen=True)
class FfuWriteResult:
    path: Path
    size: int
    descriptors: int
    data_blocks: int  # payload blocks holding partition data
    chunks: int
    catalog_size: int


def _catalog(hash_table: bytes, this_update: datetime, sign: Callable[[bytes], bytes] | None) -> bytes:
    cat = catalog.build_catalog_v1(
        [(HASHTABLE_MEMBER, hashlib.sha1(hash_table).digest())], this_update=this_update
    )
    if sign is not None:
        cat = sign(cat)
        if not isinstance(cat, bytes | bytearray) or not cat:
            raise FFUError("the catalog signer returned no catalog")
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
            raise FFUError("write_ffu needs a layout (or stores)")
        specs, version = [FfuStore(layout, images or {})], 1
    else:
        if layout is not None or images is not None:
            raise FFUError("write_ffu takes either layout/images or stores, not both")
        specs, version = list(stores), 2
        if not 0 < len(specs) <= MAX_STORES:
            raise FFUError(f"an FFU holds 1-{MAX_STORES} stores, not {len(specs)}")
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
            if plan.meta_length % bs == 0:  # Microsoft's reader would skip a block (§5.4)
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
            _align(len(image_region), chunk)
            + sum(_align(p.meta_length, p.bs) for p in plans)
            + sum(p.bs * p.count for p in plans)
        )
        nchunks = body // chunk
        ht_size = 32 * nchunks
        cat_size = len(_catalog(bytes(ht_size), this_update, sign_catalog))
        img = _align(32 + cat_size + ht_size, chunk)

        pool = stack.enter_context(concurrent.futures.ThreadPoolExecutor(1)) if use_threads else None
        with atomic_output(out_path) as f:
            f.seek(img)
            w = _ChunkWriter(f, chunk, body, progress, pool)
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
            new_img = _align(32 + len(cat) + ht_size, chunk)
            if new_img != img:
                f.flush()
                _move_body(f, img, new_img, body, out_path.parent)
                img = new_img
            f.seek(0)
            f.write(
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
            )
            f.write(cat)
            f.write(hash_table)
            f.write(bytes(img - 32 - len(cat) - ht_size))  # zero padding (overwrites nothing else)
            f.flush()
            size = img + body
    data_blocks = sum(len(p.phase2) + len(p.phase3) for p in plans)
    return FfuWriteResult(out_path, size, sum(p.count for p in plans), data_blocks, nchunks, len(cat))


def _move_body(f, old: int, new: int, length: int, scratch_dir: Path) -> None:
    """Shift [old, old+length) to `new` through a scratch file (rare: the signed catalog grew or
    shrank across a chunk boundary). The caller then rewrites everything before `new`."""
    fd = f.fileno()
    with tempfile.TemporaryFile(dir=scratch_dir) as tmp:
        _copy(fd, tmp.fileno(), old, 0, length)
        _copy(tmp.fileno(), fd, 0, new, length)
    os.ftruncate(fd, new + length)


def _copy(src: int, dst: int, so: int, do: int, n: int) -> None:
    buf = memoryview(bytearray(8 << 20))
    while n > 0:
        got = os.preadv(src, [buf[: min(n, len(buf))]], so)
        if got <= 0:
            raise FFUError("FFU body shorter than written")
        os.pwrite(dst, buf[:got], do)
        so, do, n = so + got, do + got, n - got


# ============================================================================ reader

_PAGE = 4096


def _write_changed(fd: int, data: bytes, offset: int, old: bytes) -> None:
    """Write the 4 KiB pages of `data` that differ from `old` (what is there now), in runs, so
    zero pages written onto holes stay holes."""
    start = None
    for o in range(0, len(data), _PAGE):
        if data[o : o + _PAGE] != old[o : o + _PAGE]:
            if start is None:
                start = o
        elif start is not None:
            os.pwrite(fd, data[start:o], offset + start)
            start = None
    if start is not None:
        os.pwrite(fd, data[start:], offset + start)


@dataclass
class FfuStoreInfo:
    """One store as read from the file; descriptors are kept in flat arrays."""

    index: int  # 0-based
    header: dict
    offset: int  # of the store header
    header_length: int
    meta_end: int
    block_size: int
    platform_ids: tuple[str, ...]
    device_path: str | None
    num_stores: int
    compression: int | None
    loc_start: array  # per descriptor: first location (len = count + 1)
    block_counts: array  # per descriptor
    payload_start: array  # per descriptor: first payload block (store-relative)
    loc_method: array
    loc_index: array
    payload_blocks: int = 0
    payload_offset: int = 0
    manifest: dict[str, str] = field(default_factory=dict)
    partitions: list[dict[str, str]] = field(default_factory=list)

    @property
    def descriptor_count(self) -> int:
        return len(self.block_counts)

    @property
    def disk_bytes(self) -> int | None:
        try:
            ss, n = (
                int(_get(self.manifest, "SectorSize") or ""),
                int(_get(self.manifest, "MinSectorCount") or ""),
            )
        except ValueError:
            return None
        return ss * n if 0 < ss <= 1 << 16 and 0 < n and ss * n <= MAX_DISK else None

    @property
    def sector_size(self) -> int | None:
        try:
            return int(_get(self.manifest, "SectorSize") or "")
        except ValueError:
            return None

    def locations(self, i: int) -> list[tuple[int, int]]:
        a, b = self.loc_start[i], self.loc_start[i + 1]
        return list(zip(self.loc_method[a:b], self.loc_index[a:b], strict=True))

    def disk_offset(self, method: int, index: int, blocks: int = 1) -> int:
        if method == DISK_BEGIN:
            return index * self.block_size
        disk = self.disk_bytes
        if disk is None:
            raise FFUError(f"store {self.index + 1}: DISK_END location but no disk size in the manifest")
        return disk - (index + blocks) * self.block_size


@dataclass
class FfuVerifyResult:
    problems: list[str]
    chunks: int
    signed: bool
    signers: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class FfuReader:
    """Open and check an FFU's structure (bounded: every offset/count against the file size)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            self._f = os.fdopen(open_regular(self.path), "rb")  # closed by close()
        except OSError as e:
            raise FFUError(f"cannot open FFU: {e.strerror}", file=str(path)) from e
        try:
            self.size = os.fstat(self._f.fileno()).st_size
            self._parse()
        except FFUError as e:
            self._f.close()
            raise e.at(str(path)) from None
        except BaseException:
            self._f.close()
            raise

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> FfuReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- parsing -----------------------------------------------------------------------------

    def _read(self, offset: int, length: int, what: str) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise FFUError(
                f"{what} at offset {offset:#x} (+{length}) lies beyond the end of the file "
                f"({self.size} bytes): truncated or corrupt"
            )
        data = os.pread(self._f.fileno(), length, offset)
        if len(data) != length:
            raise FFUError(f"{what}: short read")
        return data

    def _parse(self) -> None:
        sh = SECURITY_HEADER.parse(self._read(0, 32, "security header"))
        if sh.cbSize != 32 or sh.signature != SECURITY_SIGNATURE:
            raise FFUError("not an FFU (no 'SignedImage ' security header)")
        if not 1 <= sh.chunk_kb <= 1024:
            raise FFUError(f"chunk size {sh.chunk_kb} KiB out of range")
        if sh.alg_id not in (ALG_SHA256, ALG_SHA1):
            raise FFUError(f"hash algorithm {sh.alg_id:#x} unknown (0x800c SHA-256 expected)")
        self.security = dict(sh)
        self.security.pop("_io", None)
        self.chunk = sh.chunk_kb * 1024
        self.digest_size = 32 if sh.alg_id == ALG_SHA256 else 20
        if sh.catalog_size == 0 or sh.catalog_size > MAX_CATALOG:
            raise FFUError(f"catalog size {sh.catalog_size} out of range")
        if sh.hash_table_size % self.digest_size:
            raise FFUError(f"hash table size {sh.hash_table_size} is not a multiple of {self.digest_size}")
        self.catalog = self._read(32, sh.catalog_size, "catalog")
        self.hash_table = self._read(32 + sh.catalog_size, sh.hash_table_size, "hash table")
        self.image_offset = img = _align(32 + sh.catalog_size + sh.hash_table_size, self.chunk)
        ih = IMAGE_HEADER.parse(self._read(img, 24, "image header"))
        if ih.signature != IMAGE_SIGNATURE:
            raise FFUError(f"no 'ImageFlash  ' image header at offset {img:#x}")
        if ih.cbSize != 24:
            raise FFUError(f"image header size {ih.cbSize} unsupported (only the 24-byte header is)")
        if ih.chunk_kb != sh.chunk_kb:
            raise FFUError(f"image header chunk size {ih.chunk_kb} KiB differs from the security header's")
        if ih.manifest_length > MAX_MANIFEST:
            raise FFUError(f"manifest length {ih.manifest_length} out of range")
        self.image_header = dict(ih)
        self.image_header.pop("_io", None)
        raw = self._read(img + 24, ih.manifest_length, "manifest")
        try:
            self.manifest_text = raw.decode("ascii")
        except UnicodeDecodeError as e:
            raise FFUError(f"manifest is not ASCII (byte {e.start})") from None
        self.manifest = parse_manifest(self.manifest_text)
        store_sections = [d for name, d in self.manifest if name.lower() == "store"]
        parts_by_store: list[list[dict[str, str]]] = []
        for name, d in self.manifest:
            if name.lower() == "store":
                parts_by_store.append([])
            elif name.lower() == "partition" and parts_by_store:
                parts_by_store[-1].append(d)

        self.stores: list[FfuStoreInfo] = []
        off = _align(img + 24 + ih.manifest_length, self.chunk)
        nstores = 1
        while len(self.stores) < nstores:
            st = self._parse_store(off, len(self.stores))
            if len(self.stores) == 0:
                nstores = st.num_stores
            elif st.num_stores != nstores:
                raise FFUError(f"store {st.index + 1} says {st.num_stores} stores, store 1 says {nstores}")
            if len(self.stores) < len(store_sections):
                st.manifest = store_sections[len(self.stores)]
                st.partitions = parts_by_store[len(self.stores)]
            self.stores.append(st)
            off = _align(st.meta_end, st.block_size)
        self.payload_offset = off
        for st in self.stores:
            st.payload_offset = off
            off += st.payload_blocks * st.block_size
            if st.compression is None:
                self._check_locations(st)
        self.eof = off
        if any(st.compression is not None for st in self.stores):
            return  # compressed payload blocks are variable-length; sizes not checked
        if self.eof != self.size:
            raise FFUError(
                f"file is {self.size} bytes but its headers describe {self.eof} "
                f"({'truncated' if self.size < self.eof else 'extra bytes at the end'})"
            )

    def _parse_store(self, off: int, k: int) -> FfuStoreInfo:
        h = STORE_HEADER.parse(self._read(off, 248, f"store {k + 1} header"))
        version = (h.major, h.ff_major)
        if version not in ((1, 2), (2, 2), (1, 3)):
            raise FFUError(
                f"store header version {h.major}.{h.minor} / full flash {h.ff_major}.{h.ff_minor} unsupported"
            )
        bs = h.block_size
        if not (512 <= bs <= MAX_BLOCK_SIZE and bs % 512 == 0):
            raise FFUError(f"block size {bs} out of range")
        pos = off + 248
        num_stores, device_path, compression = 1, None, None
        if h.major == 2:
            ext = STORE_HEADER_V2.parse(self._read(pos, 14, f"store {k + 1} v2 header"))
            if not 1 <= ext.num_stores <= MAX_STORES or ext.store_index != k + 1:
                raise FFUError(f"store {k + 1}: store index {ext.store_index} of {ext.num_stores} invalid")
            if ext.device_path_length > MAX_DEVICE_PATH:
                raise FFUError(f"store {k + 1}: device path length {ext.device_path_length} out of range")
            raw = self._read(pos + 14, 2 * ext.device_path_length, "device path")
            device_path = raw.decode("utf-16-le", errors="replace")
            num_stores = ext.num_stores
            pos += 14 + 2 * ext.device_path_length
        elif h.ff_major == 3:
            compression = struct.unpack("<I", self._read(pos, 4, "compression field"))[0]
            pos += 4
        header_length = pos - off
        vlen, wlen, count = h.validate_descriptor_length, h.write_descriptor_length, h.write_descriptor_count
        if pos + vlen + wlen > self.size:
            raise FFUError(f"store {k + 1}: descriptors ({vlen}+{wlen} bytes) beyond the end of the file")
        entry = 12 if compression is not None else 8
        if count * entry > wlen:
            raise FFUError(f"store {k + 1}: {count} write descriptors cannot fit {wlen} bytes")
        raw = self._read(pos + vlen, wlen, "write descriptors")
        loc_start, counts, payload = array("Q", [0]), array("I"), array("Q")
        methods, indices = array("B"), array("I")
        p, nblocks = 0, 0
        for i in range(count):
            if p + entry > wlen:
                raise FFUError(f"store {k + 1}: write descriptor {i} runs past the descriptor area")
            nloc, nblk = _U32x2.unpack_from(raw, p)
            p += entry
            if nloc > (wlen - p) // 8:
                raise FFUError(f"store {k + 1}: write descriptor {i} claims {nloc} locations")
            if nblk == 0:
                raise FFUError(f"store {k + 1}: write descriptor {i} has BlockCount 0")
            for j in range(nloc):
                method, index = _U32x2.unpack_from(raw, p + 8 * j)
                if method not in (DISK_BEGIN, DISK_END):
                    raise FFUError(f"store {k + 1}: descriptor {i} disk access method {method} unknown")
                methods.append(method)
                indices.append(index)
            p += 8 * nloc
            loc_start.append(len(methods))
            counts.append(nblk)
            payload.append(nblocks)
            nblocks += nblk
            if compression is None and nblocks * bs > self.size:
                raise FFUError(f"store {k + 1}: descriptors need more payload than the file holds")
        if p != wlen:
            raise FFUError(f"store {k + 1}: write descriptors take {p} bytes, header says {wlen}")
        ids = tuple(x.decode("ascii", errors="replace") for x in h.platform_id.split(b"\0") if x)
        header = dict(h)
        header.pop("_io", None)
        if h.major == 2:
            header.update(
                num_stores=num_stores,
                store_index=k + 1,
                store_payload_size=ext.store_payload_size,
                device_path_length=ext.device_path_length,
            )
        return FfuStoreInfo(
            k,
            header,
            off,
            header_length,
            pos + vlen + wlen,
            bs,
            ids,
            device_path,
            num_stores,
            compression,
            loc_start,
            counts,
            payload,
            methods,
            indices,
            nblocks,
        )

    def _check_locations(self, st: FfuStoreInfo) -> None:
        disk = st.disk_bytes
        if disk is None:
            return
        nb = disk // st.block_size
        for i in range(st.descriptor_count):
            blk = st.block_counts[i]
            for j in range(st.loc_start[i], st.loc_start[i + 1]):
                if st.loc_index[j] + blk > nb:
                    raise FFUError(
                        f"store {st.index + 1}: descriptor {i} writes block "
                        f"{st.loc_index[j]} ({'DISK_END' if st.loc_method[j] else 'DISK_BEGIN'}) "
                        f"outside the {nb}-block disk"
                    )

    # -- disk view ---------------------------------------------------------------------------

    def _disk_size(self, st: FfuStoreInfo) -> int:
        disk = st.disk_bytes
        if disk is None:
            raise FFUError(
                f"store {st.index + 1}: manifest lacks a valid SectorSize/MinSectorCount; disk size unknown"
            )
        if disk % st.block_size:
            raise FFUError(f"store {st.index + 1}: disk size {disk} is not a multiple of the block size")
        return disk

    def _final_map(self, st: FfuStoreInfo) -> dict[int, int]:
        """disk block → file offset of the payload block that ends up there (replay order)."""
        out: dict[int, int] = {}
        self._disk_size(st)
        for i in range(st.descriptor_count):
            nblk = st.block_counts[i]
            src = st.payload_offset + st.payload_start[i] * st.block_size
            for j in range(st.loc_start[i], st.loc_start[i + 1]):
                first = st.disk_offset(st.loc_method[j], st.loc_index[j], nblk) // st.block_size
                for b in range(nblk):
                    out[first + b] = src + b * st.block_size
        return out

    def disk_reader(self, store: int = 0) -> Callable[[int, int], bytes]:
        """read(offset, length) of the disk this store produces (unwritten bytes read as zero)."""
        st = self._store(store)
        if st.compression is not None:
            raise FFUError("compressed FFU payload is not supported")
        fmap = self._final_map(st)
        disk, bs = st.disk_bytes, st.block_size

        def read(offset: int, length: int) -> bytes:
            if offset < 0 or length < 0 or offset + length > disk:
                return b""
            out = bytearray()
            while length > 0:
                b, o = divmod(offset, bs)
                n = min(length, bs - o)
                src = fmap.get(b)
                out += self._read(src + o, n, "payload") if src is not None else bytes(n)
                offset += n
                length -= n
            return bytes(out)

        return read

    def _store(self, k: int) -> FfuStoreInfo:
        if not 0 <= k < len(self.stores):
            raise FFUError(f"store {k + 1} does not exist (the FFU has {len(self.stores)})")
        return self.stores[k]

    # -- verify --------------------------------------------------------------------------------

    def _where(self, offset: int) -> str:
        if offset < self.stores[0].offset:
            return "image header/manifest"
        if offset < self.payload_offset:
            k = max(i for i, s in enumerate(self.stores) if s.offset <= offset)
            return f"store {k + 1} header/descriptors"
        for st in self.stores:
            end = st.payload_offset + st.payload_blocks * st.block_size
            if offset < end and st.compression is None:
                pb = (offset - st.payload_offset) // st.block_size
                i = bisect_right(st.payload_start, pb) - 1
                locs = (
                    ", ".join(f"{'END' if m else 'BEGIN'} {x}" for m, x in st.locations(i)) or "no location"
                )
                return f"store {st.index + 1} payload block {pb}, descriptor {i} → disk block {locs}"
        return "payload"

    def verify(self, *, trusted_roots=None, progress: Progress | None = None) -> FfuVerifyResult:
        """Check every chunk against the hash table, the catalog against the hash table, the
        catalog signature (when signed) and the rules Microsoft's tools enforce."""
        problems: list[str] = []
        chunk, ds = self.chunk, self.digest_size
        body = self.size - self.image_offset
        nchunks = -(-body // chunk)
        if body % chunk:
            problems.append(f"file does not end on a chunk boundary ({body % chunk} bytes over)")
        if len(self.hash_table) != ds * nchunks:
            problems.append(
                f"hash table has {len(self.hash_table) // ds} entries, the image has {nchunks} chunks"
            )
        algo = hashlib.sha256 if ds == 32 else hashlib.sha1
        bad: list[int] = []
        buf = memoryview(bytearray(64 * chunk))
        fd = self._f.fileno()
        off, c = self.image_offset, 0
        while off < self.size:
            n = os.preadv(fd, [buf[: min(len(buf), self.size - off)]], off)
            if n <= 0:
                problems.append("file shrank while being verified")
                break
            for o in range(0, n, chunk):
                piece = buf[o : min(o + chunk, n)]
                h = algo(piece.tobytes().ljust(chunk, b"\0") if len(piece) < chunk else piece).digest()
                if self.hash_table[c * ds : (c + 1) * ds] != h:
                    bad.append(c)
                c += 1
            off += n
            if progress:
                progress(off - self.image_offset, body)
        for c in bad[:10]:
            problems.append(
                f"chunk {c} (file offset {self.image_offset + c * chunk:#x}, "
                f"{self._where(self.image_offset + c * chunk)}): SHA-256 does not match the hash table"
            )
        if len(bad) > 10:
            problems.append(f"… and {len(bad) - 10} more chunks do not match the hash table")

        signed, signers = False, []
        try:
            parsed = catalog.parse_catalog(self.catalog)
            signed = parsed.signed
            ident = HASHTABLE_MEMBER.encode("utf-16-le") + b"\0\0"
            subj = parsed.subjects.get(ident)
            if parsed.version != 1:
                problems.append("catalog: not a version-1 (SHA-1 member) catalog")
            if subj is None:
                problems.append(f"catalog: no {HASHTABLE_MEMBER} member")
            elif subj.digest != hashlib.sha1(self.hash_table).digest():
                problems.append(f"catalog: {HASHTABLE_MEMBER} digest does not match the hash table (SHA-1)")
        except FFUError as e:
            problems.append(f"catalog: {e.message}")
        if signed:
            try:
                from ..signing.verify import catalog_signature_problems
            except ImportError as e:  # pragma: no cover - verify module missing
                problems.append(f"catalog signature not checked: {e}")
            else:
                problems += catalog_signature_problems(
                    self.catalog, trusted_roots, where="catalog", signers=signers
                )

        problems += self._rule_problems()
        return FfuVerifyResult(problems, nchunks, signed, signers)

    def _rule_problems(self) -> list[str]:
        out = []
        ff = next((d for n, d in self.manifest if n.lower() == "fullflash"), None)
        if ff is None:
            out.append("manifest: no [FullFlash] section")
        elif _get(ff, "Version") != "2.0":
            out.append(f"manifest: [FullFlash] Version is {_get(ff, 'Version')!r}, must be 2.0")
        extra = {n for n, _ in self.manifest} - {"FullFlash", "Store", "Partition"}
        if extra:
            out.append(f"manifest: unexpected sections {sorted(extra)}")
        if self.security["chunk_kb"] * 1024 != self.stores[0].block_size:
            out.append("chunk size differs from the block size (ImgGen hashes per block)")
        for st in self.stores:
            name = f"store {st.index + 1}"
            if not st.manifest:
                out.append(f"{name}: no [Store] section in the manifest")
            elif st.sector_size is None:
                out.append(f"{name}: manifest lacks SectorSize")
            if st.disk_bytes is not None and st.disk_bytes % st.block_size:
                out.append(f"{name}: disk size is not a multiple of the block size")
            if (st.meta_end - st.offset) % st.block_size == 0:
                out.append(
                    f"{name}: metadata ends exactly on a block boundary (Microsoft's reader skips a block)"
                )
            if any(x != 1 for x in st.block_counts):
                out.append(f"{name}: descriptors with BlockCount ≠ 1 (Microsoft's reader rejects them)")
            h = st.header
            fo_end, fin_end = (
                h["flash_only_index"] + h["flash_only_count"],
                h["final_index"] + h["final_count"],
            )
            if not (
                h["initial_index"] + h["initial_count"]
                <= h["flash_only_index"]
                <= fo_end
                <= h["final_index"]
                <= fin_end
                <= st.descriptor_count
            ):
                out.append(f"{name}: phase table indices out of order or beyond the descriptors")
            if st.header.get("store_payload_size") not in (None, st.payload_blocks * st.block_size):
                out.append(f"{name}: StorePayloadSize does not match its descriptors")
        return out

    # -- to raw --------------------------------------------------------------------------------

    def to_raw(
        self, out_path: str | os.PathLike, store: int = 0, *, progress: Progress | None = None
    ) -> Path:
        """Replay the store's descriptors onto a sparse raw disk (size from the manifest)."""
        st = self._store(store)
        if st.compression is not None:
            raise FFUError("compressed FFU payload is not supported")
        disk, bs = self._disk_size(st), st.block_size
        self._check_locations(st)
        written: set[int] = set()  # disk blocks holding data (O(stored blocks), not O(disk))
        zero = bytes(bs)
        out_path = Path(out_path)
        run = 64
        buf = memoryview(bytearray(run * bs))
        fd = self._f.fileno()
        total = st.payload_blocks
        firsts: list[int] = []
        with contextlib.ExitStack() as stack:
            try:
                f = stack.enter_context(atomic_output(out_path))
                f.truncate(disk)
                f.flush()
            except OSError as e:
                raise FFUError(
                    f"cannot create the {disk}-byte raw disk: {e.strerror or e}", file=str(out_path)
                ) from e
            ofd = f.fileno()
            d, pb = -1, 0
            d_end = 0
            while pb < total:
                cnt = min(run, total - pb)
                data = buf[: cnt * bs]
                if os.preadv(fd, [data], st.payload_offset + pb * bs) != len(data):
                    raise FFUError("payload truncated")
                for k in range(cnt):
                    while pb + k >= d_end:  # next descriptor owning this payload block
                        d += 1
                        d_end = st.payload_start[d] + st.block_counts[d]
                        nblk = st.block_counts[d]
                        firsts = [
                            st.disk_offset(st.loc_method[li], st.loc_index[li], nblk) // bs
                            for li in range(st.loc_start[d], st.loc_start[d + 1])
                        ]
                    if not firsts:
                        continue
                    piece = data[k * bs : (k + 1) * bs]
                    raw = piece.tobytes()
                    b = pb + k - st.payload_start[d]
                    for first in firsts:
                        db = first + b
                        if db in written:
                            _write_changed(ofd, raw, db * bs, os.pread(ofd, bs, db * bs))
                        elif raw != zero:
                            _write_changed(ofd, raw, db * bs, zero)  # onto a hole: zero pages stay holes
                            written.add(db)
                pb += cnt
                if progress:
                    progress(pb * bs, total * bs)
        return out_path

    # -- info ----------------------------------------------------------------------------------

    def info(self) -> str:
        sh = self.security
        lines = [f"FFU {self.path}: {self.size} bytes, {len(self.stores)} store(s)"]
        try:
            parsed = catalog.parse_catalog(self.catalog)
            cat = (
                f"{'signed' if parsed.signed else 'unsigned'} v{parsed.version} catalog, members "
                + ", ".join(
                    k.decode("utf-16-le", errors="replace").rstrip("\0") for k in parsed.subject_order
                )
            )
        except FFUError as e:
            cat = f"unreadable catalog ({e.message})"
        lines += [
            f"security header: chunk {sh['chunk_kb']} KiB, algorithm {sh['alg_id']:#06x}, "
            f"catalog {sh['catalog_size']} B ({cat}), hash table {sh['hash_table_size']} B",
            f"image header at {self.image_offset:#x}: {self.image_header['cbSize']} B, manifest "
            f"{self.image_header['manifest_length']} B",
            "manifest:",
        ]
        lines += ["  " + line for line in self.manifest_text.replace("\r\n", "\n").rstrip("\n").split("\n")]
        for st in self.stores:
            h = st.header
            lines.append(
                f"store {st.index + 1}/{st.num_stores} at {st.offset:#x}: version {h['major']}.{h['minor']}, "
                f"full flash {h['ff_major']}.{h['ff_minor']}, block {st.block_size} B, "
                f"platform {', '.join(st.platform_ids) or '-'}"
                + (f", device path {st.device_path}" if st.device_path else "")
                + (f", compression {st.compression}" if st.compression is not None else "")
            )
            lines.append(
                f"  {st.descriptor_count} write descriptors ({h['write_descriptor_length']} B), "
                f"{h['validate_descriptor_count']} validation; initial {h['initial_index']}+{h['initial_count']}, "
                f"flash-only {h['flash_only_index']}+{h['flash_only_count']}, final {h['final_index']}+"
                f"{h['final_count']}; payload {st.payload_blocks} blocks at {st.payload_offset:#x}"
            )
            disk, ss = st.disk_bytes, st.sector_size
            if disk is None or st.compression is not None:
                lines.append("  partition table: not available")
                continue
            lines.append(f"  disk {disk} bytes ({disk // ss} sectors of {ss} B); partition table:")
            try:
                text = ptable.describe_table(self.disk_reader(st.index), disk // ss, ss)
            except FFUError as e:
                text = f"unreadable ({e.message})"
            lines += ["    " + line for line in text.split("\n")]
        return "\n".join(lines)
