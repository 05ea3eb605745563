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
from pathlib import Path

from .diskimage import data_extents

BLOCK = 1 << 20
_ZERO = hashlib.sha256(bytes(BLOCK)).digest()
_TAG = b"ffuforge-blocks-sha256-v1\0"


def file_signature(path: str | os.PathLike) -> str:
    """Hex digest of `path`'s content, reading only the blocks that hold data."""
    h = hashlib.sha256(_TAG)
    buf = bytearray(BLOCK)
    view = memoryview(buf)
    with open(Path(path), "rb", buffering=0) as fh:
        fd = fh.fileno()
        size = os.fstat(fd).st_size
        nblocks = -(-size // BLOCK)
        last_full = size // BLOCK          # blocks before this index are whole

        def hashed(block: int) -> bytes:
            n = min(BLOCK, size - block * BLOCK)
            got = 0
            while got < n:
                k = os.preadv(fd, [view[got:n]], block * BLOCK + got)
                if k <= 0:
                    raise OSError(f"{path}: file shrank while it was being signed")
                got += k
            return hashlib.sha256(view[:n]).digest()

        done = 0                            # blocks already added to h
        for start, end in data_extents(fd, size):
            first, stop = start // BLOCK, -(-end // BLOCK)
            if first < done:
                first = done
            if first > done:                # a run of blocks without data: zeros
                h.update(_ZERO * (first - done))
            for b in range(first, stop):
                h.update(hashed(b))
            done = max(done, stop)
        if done < nblocks:
            h.update(_ZERO * (min(nblocks, last_full) - done))
            if last_full < nblocks and done <= last_full:
                h.update(hashed(last_full))  # a partial last block is hashed as it is, never assumed
    h.update(size.to_bytes(8, "little"))
    return h.hexdigest()
