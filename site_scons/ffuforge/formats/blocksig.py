"""Block content signatures of large, mostly empty files (partition images, FFUs), holes unread.

SCons signs every target it builds by hashing all of its bytes. A partition image is gigabytes
of holes (an 8 GiB Data volume holds a few MiB of NTFS metadata), so that hash alone cost more
than building the whole image. This signature is a SHA-256 over the SHA-256 of every 1 MiB
block: a block the file system reports as a hole is known to be zeros, so its digest is a
constant and it is never read. It depends only on the bytes (a hole and written zeros sign the
same), so it is as good a content signature as the full hash, for decisions and caches alike.

:class:`StreamSigner` computes the same signature while a writer streams a file front to back
(the FFU writer), so the file is never read again to be signed.
"""

from __future__ import annotations

import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

Buffer = bytes | bytearray | memoryview
BLOCK = 1 << 20
ZERO = hashlib.sha256(bytes(BLOCK)).digest()
TAG = b"ffuforge-blocks-sha256-v1\0"


def file_signature(path: str | os.PathLike, threads: int | None = None) -> str:
    """Hex digest of `path`'s content, reading only the blocks that hold data. Blocks are hashed
    on `threads` threads (default: one per CPU, at most 4; hashlib and preadv release the GIL):
    the signature of a just-written partition image or FFU is on the build's critical path."""
    block, zero = BLOCK, ZERO  # read once: tests use smaller blocks
    with open(Path(path), "rb", buffering=0) as fh:
        fd = fh.fileno()
        size = os.fstat(fd).st_size
        order = _block_order(fd, size, block)
        wanted = [b for b in order if b >= 0]
        local = threading.local()

        def hashed(index: int) -> bytes:
            view = getattr(local, "view", None)
            if view is None:
                view = local.view = memoryview(bytearray(block))
            return hashlib.sha256(
                _pread(fd, view, index * block, min(block, size - index * block), path)
            ).digest()

        workers = min(threads or os.cpu_count() or 1, 4, len(wanted) // 8 or 1)
        if workers > 1:
            with ThreadPoolExecutor(workers, thread_name_prefix="contentsig") as pool:
                digests = iter(list(pool.map(hashed, wanted, chunksize=16)))
        else:
            digests = map(hashed, wanted)
        h = hashlib.sha256(TAG)
        for b in order:
            h.update(next(digests) if b >= 0 else zero * -b)
    h.update(size.to_bytes(8, "little"))
    return h.hexdigest()


def _pread(fd: int, view: memoryview, offset: int, n: int, path: object) -> memoryview:
    got = 0
    while got < n:
        k = os.preadv(fd, [view[got:n]], offset + got)
        if k <= 0:
            raise OSError(f"{path}: file shrank while it was being signed")
        got += k
    return view[:n]


def _block_order(fd: int, size: int, block: int) -> list[int]:
    """The file's blocks in order: a block index to read and hash, or -n for a run of n blocks
    the file system reports as holes (zeros, never read). A partial last block is always read."""
    from .diskimage import data_extents  # not at import: a no-op build never needs it

    order: list[int] = []
    nblocks = -(-size // block)
    last_full = size // block  # blocks before this index are whole
    done = 0  # blocks already placed in order
    for start, end in data_extents(fd, size):
        first, stop = start // block, -(-end // block)
        first = max(first, done)
        if first > done:  # a run of blocks without data: zeros
            order.append(done - first)
        order.extend(range(first, stop))
        done = max(done, stop)
    if done < nblocks:
        if min(nblocks, last_full) > done:
            order.append(done - min(nblocks, last_full))
        if last_full < nblocks and done <= last_full:
            order.append(last_full)  # a partial last block is hashed as it is, never assumed
    return order


def hash_blocks(blocks: list[Buffer]) -> bytes:
    """The SHA-256 of each buffer, concatenated (run on a writer's hashing thread)."""
    sha = hashlib.sha256
    return b"".join([sha(b).digest() for b in blocks])


class StreamSigner:
    """:func:`file_signature` of a file written front to back from offset `start` to its end.

    `take` gets the stream's bytes in order and returns the whole blocks they complete (hash them
    with :func:`hash_blocks`, anywhere, and pass the digests to `add` in order); the bytes before
    `start` (a header written last) are read back by `finish`, at most the blocks they touch."""

    def __init__(self, start: int) -> None:
        self.first = -(-start // BLOCK)  # first block that lies wholly in the stream
        self.pos = start
        self.carry = bytearray()
        self.digests = bytearray()

    def take(self, data: Buffer) -> list[Buffer]:
        view = memoryview(data).cast("B")
        skip = max(0, min(len(view), self.first * BLOCK - self.pos))  # in a header block: read back
        self.pos += len(view)
        view = view[skip:]
        out: list[Buffer] = []
        if self.carry:
            need = BLOCK - len(self.carry)
            self.carry += view[:need]
            view = view[need:]
            if len(self.carry) < BLOCK:
                return out
            out.append(bytes(self.carry))
            self.carry.clear()
        whole = len(view) // BLOCK * BLOCK
        out.extend(view[o : o + BLOCK] for o in range(0, whole, BLOCK))
        self.carry += view[whole:]
        return out

    def add(self, digests: bytes) -> None:
        self.digests += digests

    def finish(self, fd: int) -> str:
        """The signature, once every byte from `start` on went through `take` and the header
        is written to `fd`."""
        size = os.fstat(fd).st_size
        if size != self.pos:
            raise OSError(f"signed {self.pos} bytes of a {size}-byte file")
        h = hashlib.sha256(TAG)
        view = memoryview(bytearray(BLOCK))
        for b in range(min(self.first, -(-size // BLOCK))):
            h.update(hashlib.sha256(_pread(fd, view, b * BLOCK, min(BLOCK, size - b * BLOCK), fd)).digest())
        h.update(self.digests)
        if self.carry:
            h.update(hashlib.sha256(self.carry).digest())
        h.update(size.to_bytes(8, "little"))
        return h.hexdigest()
