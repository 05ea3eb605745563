"""Content signatures of large, mostly empty outputs (partition images, FFUs) that do not read holes.

SCons signs every target it builds by hashing all of its bytes (MD5). A partition image is
gigabytes of holes (an 8 GiB Data volume holds a few MiB of NTFS metadata), so that hash alone
cost more than building the whole image. This signature is a SHA-256 over the SHA-256 of every
1 MiB block: a block the file system reports as a hole is known to be zeros, so its digest is a
constant and it is never read. It depends only on the bytes (a hole and written zeros sign the
same), so it is as good a content signature as the full hash, for decisions and caches alike.
"""

from __future__ import annotations

import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BLOCK = 1 << 20
_ZERO = hashlib.sha256(bytes(BLOCK)).digest()
_TAG = b"ffuforge-blocks-sha256-v1\0"


def file_signature(path: str | os.PathLike, threads: int | None = None) -> str:
    """Hex digest of `path`'s content, reading only the blocks that hold data. Blocks are hashed
    on `threads` threads (default: one per CPU, at most 4; hashlib and preadv release the GIL):
    the signature of a just-written partition image or FFU is on the build's critical path."""
    with open(Path(path), "rb", buffering=0) as fh:
        fd = fh.fileno()
        size = os.fstat(fd).st_size
        order = _block_order(fd, size)
        wanted = [b for b in order if b >= 0]
        local = threading.local()

        def hashed(block: int) -> bytes:
            view = getattr(local, "view", None)
            if view is None:
                view = local.view = memoryview(bytearray(BLOCK))
            n = min(BLOCK, size - block * BLOCK)
            got = 0
            while got < n:
                k = os.preadv(fd, [view[got:n]], block * BLOCK + got)
                if k <= 0:
                    raise OSError(f"{path}: file shrank while it was being signed")
                got += k
            return hashlib.sha256(view[:n]).digest()

        workers = min(threads or os.cpu_count() or 1, 4, len(wanted) // 8 or 1)
        if workers > 1:
            with ThreadPoolExecutor(workers, thread_name_prefix="contentsig") as pool:
                digests = iter(list(pool.map(hashed, wanted, chunksize=16)))
        else:
            digests = map(hashed, wanted)
        h = hashlib.sha256(_TAG)
        for b in order:
            h.update(next(digests) if b >= 0 else _ZERO * -b)
    h.update(size.to_bytes(8, "little"))
    return h.hexdigest()


def _block_order(fd: int, size: int) -> list[int]:
    """The file's blocks in order: a block index to read and hash, or -n for a run of n blocks
    the file system reports as holes (zeros, never read). A partial last block is always read."""
    from ..formats.diskimage import data_extents  # not at import: a no-op build never needs it

    order: list[int] = []
    nblocks = -(-size // BLOCK)
    last_full = size // BLOCK  # blocks before this index are whole
    done = 0  # blocks already placed in order
    for start, end in data_extents(fd, size):
        first, stop = start // BLOCK, -(-end // BLOCK)
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


def content_signature(path: str, *, cab_file: bool = False, known: str | None = None) -> tuple[int, int, str]:
    """(size, mtime_ns, content signature) of a file an action has just written. A CAB is signed
    by cab.content_signature (`known` when its writer computed it in passing: a signed CAB's comes
    from the Authenticode digest, so signing adds no hashing pass); other files, and what does not
    parse as a CAB, block by block (file_signature). Either depends on the bytes alone."""
    st = os.stat(path)
    if cab_file and known is None:
        from ..formats.cab import content_signature as cab_signature

        known = cab_signature(path)
    if known is None:
        known = file_signature(path)
    return st.st_size, st.st_mtime_ns, known
