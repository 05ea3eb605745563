"""Raw disk assembly from a DiskLayout and one (sparse) image per partition.

Disks are gigabytes of mostly nothing, so nothing here is proportional to the disk: the raw
image is written sparse (only partition-image data extents, found with SEEK_DATA/SEEK_HOLE,
plus the tables), and the FFU writer gets the blocks the device must receive (each file
system's allocation, every block of a raw partition: :mod:`.fsalloc`), read in multi-block runs
straight into reusable buffers. Both paths use the same partition tables (ptable), so
`to_raw(ffu)` equals `assemble_raw` wherever a file system allocates (and everywhere when
unallocated space is zero, as mkfs.fat and mkntfs leave it).
"""

from __future__ import annotations

import errno
import heapq
import os
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, FFUError, FormatError
from ..util.atomic import atomic_output
from . import fsalloc, ptable
from .disklayout import DiskLayout, PlacedPartition
from .fsalloc import data_extents

__all__ = ["DiskSource", "assemble_raw", "data_extents", "iter_data_blocks"]  # data_extents: from fsalloc

Progress = Callable[[int, int], None]
COPY_CHUNK = 8 << 20


@dataclass(frozen=True)
class _Image:
    partition: PlacedPartition
    path: Path
    size: int
    offset: int  # disk byte offset of the partition

    @property
    def end(self) -> int:
        return self.offset + self.size


class DiskSource:
    """A layout with its partition images: validated, opened, readable as final disk content.

    `images` maps partition name (any case) to an image file no larger than the partition; the
    image's first byte lands on the partition's first sector; partitions without an image stay
    unwritten (zero). Use as a context manager (keeps one descriptor per image open).
    """

    def __init__(
        self,
        layout: DiskLayout,
        images: Mapping[str, str | os.PathLike],
        *,
        gpt_entries: int = ptable.GPT_DEFAULT_ENTRIES,
    ):
        ptable.check_layout(layout, gpt_entries=gpt_entries)
        self.layout = layout
        self.gpt_entries = gpt_entries
        found: list[_Image] = []
        seen: set[str] = set()
        for name, path in images.items():
            try:
                p = layout.partition(name)
            except KeyError:
                raise ConfigError(
                    f"image given for partition {name!r}, which the layout does not have", file=str(path)
                ) from None
            if p.name.lower() in seen:
                raise ConfigError(f"two images given for partition {p.name}", file=str(path))
            seen.add(p.name.lower())
            path = Path(path)
            try:
                st = path.stat()
            except OSError as e:
                raise FormatError(f"cannot read partition image: {e.strerror}", file=str(path)) from e
            if not path.is_file():
                raise FormatError("partition image is not a regular file", file=str(path))
            if st.st_size > layout.size(p):
                raise ConfigError(
                    f"image is {st.st_size} bytes but partition {p.name} holds only "
                    f"{layout.size(p)}; enlarge the partition or shrink the image",
                    file=str(path),
                )
            found.append(_Image(p, path, st.st_size, layout.offset(p)))
        self.images: tuple[_Image, ...] = tuple(sorted(found, key=lambda i: i.offset))
        self._ends = [i.end for i in self.images]
        self._fds: list[int] = []
        self._zero = memoryview(bytes(COPY_CHUNK))
        self._tables: dict[bool, ptable.PartitionTables] = {}
        try:
            for img in self.images:
                self._fds.append(os.open(img.path, os.O_RDONLY))
        except OSError as e:
            self.close()
            raise FormatError(f"cannot open partition image: {e.strerror}", file=str(e.filename)) from e

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []

    def __enter__(self) -> DiskSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- tables ----------------------------------------------------------------------------

    def tables(self, *, flash_only: bool = False) -> ptable.PartitionTables:
        if flash_only not in self._tables:
            self._tables[flash_only] = ptable.build_tables(
                self.layout, flash_only=flash_only, gpt_entries=self.gpt_entries
            )
        return self._tables[flash_only]

    # -- extents and blocks ----------------------------------------------------------------

    def extents(self, img: _Image) -> Iterator[tuple[int, int]]:
        """Data extents of one image, in image coordinates."""
        return data_extents(self._fds[self.images.index(img)], img.size)

    def image(self, name: str) -> _Image | None:
        for img in self.images:
            if img.partition.name.lower() == name.lower():
                return img
        return None

    def partition_blocks(self, p: PlacedPartition, bs: int) -> array:
        """Sorted disk block indices (size bs) the device must get for p: the whole partition if
        it is raw, else the blocks its file system allocates (:mod:`.fsalloc`), whatever the
        image's holes. A partition without an image stores nothing."""
        out = array("Q")
        img = self.image(p.name)
        if img is None:
            return out
        if p.filesystem is None:
            off = self.layout.offset(p)
            out.extend(range(off // bs, -(-(off + self.layout.size(p)) // bs)))
            return out
        fd = self._fds[self.images.index(img)]
        try:
            ranges = fsalloc.allocated_ranges(fd, img.size, p.filesystem)
        except FFUError as err:
            raise err.at(str(img.path)) from None
        last = -1
        for s, e in ranges:
            first = max((img.offset + s) // bs, last + 1)
            stop = (img.offset + e - 1) // bs + 1
            if first < stop:
                out.extend(range(first, stop))
                last = stop - 1
        return out

    def read(self, buf: memoryview, disk_offset: int) -> None:
        """Fill `buf` with the partition-image bytes at `disk_offset` (zeros elsewhere; no tables)."""
        end = disk_offset + len(buf)
        cursor = disk_offset
        i = bisect_right(self._ends, disk_offset)
        while i < len(self.images) and self.images[i].offset < end:
            img = self.images[i]
            lo, hi = max(img.offset, disk_offset), min(img.end, end)
            if lo > cursor:
                self._zero_fill(buf, cursor - disk_offset, lo - disk_offset)
            self._pread(i, buf[lo - disk_offset : hi - disk_offset], lo - img.offset)
            cursor = hi
            i += 1
        if cursor < end:
            self._zero_fill(buf, cursor - disk_offset, end - disk_offset)

    def _zero_fill(self, buf: memoryview, a: int, b: int) -> None:
        while a < b:
            n = min(b - a, len(self._zero))
            buf[a : a + n] = self._zero[:n]
            a += n

    def _pread(self, i: int, view: memoryview, offset: int) -> None:
        fd = self._fds[i]
        while len(view):
            n = os.preadv(fd, [view], offset)
            if n <= 0:
                raise FormatError(
                    "partition image changed while it was read (shorter than before)",
                    file=str(self.images[i].path),
                )
            view = view[n:]
            offset += n

    def iter_runs(
        self,
        indices: Iterable[int],
        bs: int,
        *,
        tables: ptable.PartitionTables | None = None,
        run_blocks: int = 64,
        buffers: int = 2,
        capture: dict[int, bytes | None] | None = None,
    ) -> Iterator[tuple[int, int, memoryview]]:
        """(first block, count, content) for maximal runs of consecutive indices (≤ run_blocks).

        Content is the image data (plus `tables` overlaid); it lives in one of `buffers` rotating
        buffers, so it stays valid until `buffers - 1` further runs have been taken. Blocks whose
        index is a key of `capture` get their content before the overlay stored there (so table
        blocks need not be read a second time).
        """
        bufs = [memoryview(bytearray(bs * run_blocks)) for _ in range(max(1, buffers))]
        k = 0

        def emit(first: int, count: int) -> memoryview:
            nonlocal k
            view = bufs[k % len(bufs)][: count * bs]
            k += 1
            self.read(view, first * bs)
            if capture:
                for j in range(count):
                    if capture.get(first + j, b"") is None:
                        capture[first + j] = view[j * bs : (j + 1) * bs].tobytes()
            if tables is not None:
                tables.overlay(view, first * bs)
            return view

        first = count = 0
        for idx in indices:
            if count and idx == first + count and count < run_blocks:
                count += 1
                continue
            if count:
                yield first, count, emit(first, count)
            first, count = idx, 1
        if count:
            yield first, count, emit(first, count)


def iter_data_blocks(
    layout: DiskLayout,
    images: Mapping[str, str | os.PathLike],
    bs: int,
    *,
    gpt_entries: int = ptable.GPT_DEFAULT_ENTRIES,
) -> Iterator[tuple[int, memoryview]]:
    """(disk block index, content) for every block of the final disk an FFU stores (table bytes,
    file-system allocation, raw partitions), ascending, each block read once. The view is
    reused: copy it to keep it."""
    if bs <= 0 or layout.total_bytes % bs:
        raise ConfigError(f"disk size {layout.total_bytes} is not a multiple of the block size {bs}")
    with DiskSource(layout, images, gpt_entries=gpt_entries) as src:
        tables = src.tables()
        sources = [iter(tables.blocks(bs))] + [iter(src.partition_blocks(p, bs)) for p in layout.partitions]
        merged = _dedupe(heapq.merge(*sources))
        for first, count, view in src.iter_runs(merged, bs, tables=tables, buffers=1):
            for j in range(count):
                yield first + j, view[j * bs : (j + 1) * bs]


def _dedupe(it: Iterable[int]) -> Iterator[int]:
    last = None
    for x in it:
        if x != last:
            yield x
            last = x


def _copy_range(src_fd: int, dst_fd: int, src_off: int, dst_off: int, length: int) -> None:
    """Kernel-side copy (reflink where the file system can), pread/pwrite where it cannot."""
    use_cfr = hasattr(os, "copy_file_range")
    buf = None
    while length > 0:
        if use_cfr:
            try:
                n = os.copy_file_range(src_fd, dst_fd, min(length, 1 << 30), src_off, dst_off)
            except OSError as e:
                if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                    raise
                use_cfr = False
                continue
        else:
            if buf is None:
                buf = bytearray(COPY_CHUNK)
            view = memoryview(buf)[: min(length, COPY_CHUNK)]
            n = os.preadv(src_fd, [view], src_off)
            if n > 0:
                os.pwrite(dst_fd, view[:n], dst_off)
        if n <= 0:
            raise FormatError("partition image changed while it was copied (shorter than before)")
        src_off += n
        dst_off += n
        length -= n


def assemble_raw(
    layout: DiskLayout,
    images: Mapping[str, str | os.PathLike],
    out_path: str | os.PathLike,
    *,
    gpt_entries: int = ptable.GPT_DEFAULT_ENTRIES,
    progress: Progress | None = None,
) -> Path:
    """Write the raw disk (final tables + every image at its partition), sparse and atomically."""
    out_path = Path(out_path)
    with DiskSource(layout, images, gpt_entries=gpt_entries) as src:
        tables = src.tables()
        plan = [(i, s, e) for i, img in enumerate(src.images) for s, e in src.extents(img)]
        total = sum(e - s for _, s, e in plan) + sum(len(r.data) for r in tables.regions)
        done = 0
        with atomic_output(out_path) as f:
            f.truncate(layout.total_bytes)
            f.flush()
            fd = f.fileno()
            for i, s, e in plan:
                img = src.images[i]
                try:
                    _copy_range(src._fds[i], fd, s, img.offset + s, e - s)
                except FFUError as err:
                    raise err.at(str(img.path)) from None
                done += e - s
                if progress:
                    progress(done, total)
            for r in tables.regions:
                os.pwrite(fd, r.data, r.offset)
                done += len(r.data)
            if progress:
                progress(done, total)
    return out_path
