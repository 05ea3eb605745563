"""Streaming an FFU's chunks: the hash table built as the body is written, and payload whose
digests a partition image's sidecar gives (:mod:`..blocksig`) copied file to file, unread.

Kept apart from the writer, which plans the descriptors and fills in the header area.
"""

from __future__ import annotations

import collections
import errno
import os
from array import array
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass

from ...errors import FormatError
from .. import blocksig
from ..diskimage import DiskSource
from .structs import Progress


class ChunkWriter:
    """Sequential output from the image header on, and the SHA-256 of every chunk in order (the
    hash table). Chunks read into Python are hashed on a worker thread while the main thread
    writes and reads the next run; chunks whose digests the partition's sidecar gives are copied
    file to file by the kernel (:class:`Copier`) and never hashed or read into Python."""

    def __init__(self, f, chunk: int, total: int, progress: Progress | None, pool):
        self.f, self.chunk, self.total, self.progress, self.pool = f, chunk, total, progress, pool
        self.buf = bytearray()
        self.digests = bytearray()
        self.pending: collections.deque = collections.deque()  # futures, or digests known in order
        self.done = 0
        self.copier = Copier()

    def _drain(self, keep: int = 0) -> None:
        while len(self.pending) > keep:
            item = self.pending.popleft()
            self.digests += item if isinstance(item, bytes) else item.result()

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

    def copied(self, fd: int, offset: int, length: int, digests: bytes) -> None:
        """Whole chunks taken from `fd` at `offset`, whose digests are known."""
        assert not self.buf and length % self.chunk == 0 and len(digests) == 32 * (length // self.chunk)
        self.f.flush()
        pos = self.f.tell()
        self.copier.copy(fd, self.f.fileno(), offset, pos, length)
        self.f.seek(pos + length)
        if self.pending:
            self.pending.append(digests)
        else:
            self.digests += digests
        self._advance(length)

    def _aligned(self, view) -> None:
        if self.pool is None:
            self.digests += blocksig.chunk_digests(view, self.chunk)
            self.f.write(view)
        else:
            self.pending.append(self.pool.submit(blocksig.chunk_digests, view, self.chunk))
            self.f.write(view)
            self._drain(keep=1)
        self._advance(len(view))

    def _advance(self, n: int) -> None:
        self.done += n
        if self.progress:
            self.progress(self.done, self.total)

    def finish(self) -> bytes:
        self.pad()
        self._drain()
        return bytes(self.digests)


class Copier:
    """File-to-file copies that keep the bytes out of Python: copy_file_range (in-kernel, or a
    reflink where the file system shares extents), else sendfile, else pread/pwrite. A method
    the kernel or file system refuses once (EXDEV before Linux 5.3, ENOSYS, EINVAL on some file
    systems) is not tried again."""

    def __init__(self) -> None:
        self.methods = [m for m in ("copy_file_range", "sendfile") if hasattr(os, m)] + ["pwrite"]

    def copy(self, src: int, dst: int, so: int, do: int, n: int) -> None:
        while n > 0:
            method = self.methods[0]
            try:
                if method == "copy_file_range":
                    got = os.copy_file_range(src, dst, n, so, do)
                elif method == "sendfile":
                    os.lseek(dst, do, os.SEEK_SET)
                    got = os.sendfile(dst, src, so, n)
                else:
                    copy_range(
                        src, dst, so, do, n, "partition image changed while it was read (shorter than before)"
                    )
                    got = n
            except OSError as exc:
                if method == "pwrite" or exc.errno not in UNSUPPORTED:
                    raise
                self.methods.pop(0)
                continue
            if got <= 0:
                raise FormatError("partition image changed while it was read (shorter than before)")
            so, do, n = so + got, do + got, n - got


UNSUPPORTED = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF, errno.ETXTBSY}


@dataclass(frozen=True)
class Known:
    """A partition image whose sidecar gives the digest of every whole FFU block it holds."""

    path: str
    fd: int
    binding: tuple[int, int, int, int]
    offset: int  # disk byte offset of the image (a multiple of the block size)
    first: int  # first disk block
    stop: int  # disk blocks before this one lie wholly in the image
    digests: bytes


def known_images(src: DiskSource, bs: int) -> list[Known]:
    """The images of `src` whose chunk digests are known: a sidecar that describes exactly the
    file opened (:func:`..blocksig.read_sidecar`), chunks of the FFU's size, and a partition start
    on a block boundary (the image's chunks are then the disk's blocks). Sorted by offset."""
    out: list[Known] = []
    if bs != blocksig.CHUNK:
        return out
    for i, img in enumerate(src.images):
        if img.offset % bs:
            continue  # its chunks straddle the disk's blocks: hashed as read
        fd = src._fds[i]  # the descriptor the payload is read from: the sidecar must describe it
        seen = blocksig.binding(os.fstat(fd))
        digests = blocksig.read_sidecar(img.path, fd)
        if digests is not None and len(digests) == 32 * -(-img.size // bs):
            stop = (img.offset + img.size) // bs
            out.append(Known(str(img.path), fd, seen, img.offset, img.offset // bs, stop, digests))
    return out


def segments(
    blocks: array, known: list[Known], bs: int, limit: int = 256
) -> Iterator[tuple[Known | None, array]]:
    """`blocks` in order, cut into runs: (image, consecutive blocks of it with known digests, at
    most `limit`), or (None, blocks to read and hash)."""
    starts = [k.first for k in known]
    run: array = array("Q")
    owner: Known | None = None
    for b in blocks:
        i = bisect_right(starts, b) - 1
        k = known[i] if i >= 0 and known[i].first <= b < known[i].stop else None
        if run and (k is not owner or (k is not None and (b != run[-1] + 1 or len(run) >= limit))):
            yield owner, run
            run = array("Q")
        owner = k
        run.append(b)
    if run:
        yield owner, run


def copy_range(
    src: int, dst: int, so: int, do: int, n: int, short: str = "FFU body shorter than written"
) -> None:
    buf = memoryview(bytearray(8 << 20))
    while n > 0:
        got = os.preadv(src, [buf[: min(n, len(buf))]], so)
        if got <= 0:
            raise FormatError(short)
        os.pwrite(dst, buf[:got], do)
        so, do, n = so + got, do + got, n - got
