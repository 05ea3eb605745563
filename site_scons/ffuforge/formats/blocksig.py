"""Chunk content signatures of large, mostly empty files (partition images, FFUs), holes unread,
and the chunk digests a partition image leaves beside itself for the FFU writer.

SCons signs every target it builds by hashing all of its bytes. A partition image is gigabytes
of holes (an 8 GiB Data volume holds a few MiB of NTFS metadata), so that hash alone cost more
than building the whole image. This signature (v2) is a SHA-256 over the tag, the SHA-256 of
every 128 KiB chunk (the last one as long as it is) and the size as 8 little-endian bytes: a
chunk the file system reports as a hole is known to be zeros, so its digest is a constant and it
is never read. It depends only on the bytes (a hole and written zeros sign the same), so it is
as good a content signature as the full hash, for decisions and caches alike.

Why 128 KiB (v1 used 1 MiB blocks): it is the FFU's chunk (``ffu.structs.BLOCK_SIZE``), so

* the partition action's one read-back pass (:func:`sign_file`) yields the SHA-256 of every FFU
  chunk of a partition that starts on a chunk boundary; :func:`write_sidecar` keeps them in
  ``<image>.chunks``, and the FFU writer takes them (:func:`read_sidecar`) instead of hashing the
  payload again;
* an FFU's own signature is :func:`signature_from_digests` of its header chunks' digests and its
  hash table, which already holds the SHA-256 of every later chunk: the writer signs the file
  without a second hash, and :func:`file_signature` recomputes the same value from the file alone.

A sidecar is used only for the exact image it describes: it records the image's size, inode,
mtime and ctime (st_ctime cannot be set by a program: any rewrite, rename, chmod or copy changes
one of them) and its content signature, which must equal :func:`signature_from_digests` of the
digests it holds. Anything else (missing, damaged, another chunk size, another file) reads as
None, and the caller hashes the bytes as if there were no sidecar. The binding guards against
accidents (copies, edits, rebuilds, cache hits), not against someone who resets the clock or edits
the block device to forge one: the build tree is trusted, as it is for every other output.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
from array import array
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from construct import Bytes, Const, Int32ul, Int64sl, Int64ul, Struct

from ..util.atomic import write_bytes

Buffer = bytes | bytearray | memoryview
CHUNK = 128 << 10  # = ffu.structs.BLOCK_SIZE (an FFU's chunk); not imported: ffu imports this module
ZERO = hashlib.sha256(bytes(CHUNK)).digest()
TAG = b"ffuforge-chunks-sha256-v2\0"
READ_CHUNKS = 8  # chunks per read: 1 MiB preads
SIDECAR_SUFFIX = ".chunks"

SIDECAR = Struct(
    "magic" / Const(b"ffuforge-chunks\0"),
    "chunk" / Int32ul,
    "reserved" / Const(0, Int32ul),
    "size" / Int64ul,
    "ino" / Int64ul,
    "mtime_ns" / Int64sl,
    "ctime_ns" / Int64sl,
    "signature" / Bytes(32),
    "count" / Int64ul,  # chunks listed below (ascending index, then digest); the others are ZERO
)
SIDECAR_HEAD = SIDECAR.sizeof()


@dataclass(frozen=True)
class Signed:
    """What one read-back pass learnt about a file: its signature and every chunk's digest."""

    signature: str
    size: int
    digests: bytes  # 32 bytes per chunk, ZERO for holes
    binding: tuple[int, int, int, int] | None  # (size, ino, mtime_ns, ctime_ns); None: changed while read


def binding(st: os.stat_result) -> tuple[int, int, int, int]:
    """What ties a sidecar to one file: (size, inode, mtime_ns, ctime_ns)."""
    return st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns


def signature_from_digests(digests: Buffer, size: int) -> str:
    """The v2 signature of a `size`-byte file whose chunks have these SHA-256 digests, in order."""
    h = hashlib.sha256(TAG)
    h.update(digests)
    h.update(size.to_bytes(8, "little"))
    return h.hexdigest()


def chunk_digests(data: Buffer, chunk: int | None = None) -> bytes:
    """The SHA-256 of each `chunk` bytes of `data` (the last piece as long as it is), concatenated."""
    chunk = chunk or CHUNK
    view, sha = memoryview(data).cast("B"), hashlib.sha256
    return b"".join([sha(view[o : o + chunk]).digest() for o in range(0, len(view), chunk)])


def file_signature(path: str | os.PathLike, threads: int | None = None) -> str:
    """Hex digest of `path`'s content, reading only the chunks that hold data."""
    return sign_file(path, threads).signature


def sign_file(path: str | os.PathLike, threads: int | None = None) -> Signed:
    """:func:`file_signature` with every chunk's digest. Chunks are hashed on `threads` threads
    (default: one per CPU, at most 4; hashlib and preadv release the GIL): the signature of a
    just-written partition image is on the build's critical path."""
    chunk, zero = CHUNK, ZERO  # read once: tests use smaller chunks
    with open(Path(path), "rb", buffering=0) as fh:
        fd = fh.fileno()
        before = os.fstat(fd)
        size = before.st_size
        runs = list(_runs(fd, size, chunk))
        reads = [(first, n) for first, n, data in runs if data]
        local = threading.local()

        def hashed(job: tuple[int, int]) -> bytes:
            first, n = job
            view = getattr(local, "view", None)
            if view is None:
                view = local.view = memoryview(bytearray(chunk * READ_CHUNKS))
            offset = first * chunk
            got = _pread(fd, view, offset, min(n * chunk, size - offset), path)
            return chunk_digests(got, chunk)

        workers = min(threads or os.cpu_count() or 1, 4, len(reads) // 8 or 1)
        if workers > 1:
            with ThreadPoolExecutor(workers, thread_name_prefix="contentsig") as pool:
                done = iter(list(pool.map(hashed, reads, chunksize=16)))
        else:
            done = map(hashed, reads)
        digests = bytearray()
        for _, n, data in runs:
            digests += next(done) if data else zero * n
        after = os.fstat(fd)
    bound = binding(before) if binding(before) == binding(after) else None
    return Signed(signature_from_digests(digests, size), size, bytes(digests), bound)


def _pread(fd: int, view: memoryview, offset: int, n: int, path: object) -> memoryview:
    got = 0
    while got < n:
        k = os.preadv(fd, [view[got:n]], offset + got)
        if k <= 0:
            raise OSError(f"{path}: file shrank while it was being signed")
        got += k
    return view[:n]


def _runs(fd: int, size: int, chunk: int) -> Iterator[tuple[int, int, bool]]:
    """(first chunk, count, holds data) covering the file in order: data runs of at most
    READ_CHUNKS chunks to read and hash, and runs of chunks the file system reports as holes
    (zeros, never read). A partial last chunk is always read, never assumed."""
    from .diskimage import data_extents  # not at import: a no-op build never needs it

    nchunks = -(-size // chunk)
    whole = size // chunk  # chunks before this index are whole
    done = 0  # chunks already covered
    for start, end in data_extents(fd, size):
        first, stop = max(start // chunk, done), -(-end // chunk)
        if first > done:
            yield done, first - done, False
        for c in range(first, stop, READ_CHUNKS):
            yield c, min(READ_CHUNKS, stop - c), True
        done = max(done, stop)
    if done < whole:
        yield done, whole - done, False
        done = whole
    if done < nchunks:
        yield done, nchunks - done, True  # the partial last chunk


# ------------------------------------------------------------------------------ sidecar


def sidecar_path(image: str | os.PathLike) -> Path:
    return Path(f"{os.fspath(image)}{SIDECAR_SUFFIX}")


def write_sidecar(image: str | os.PathLike, signed: Signed) -> bool:
    """Keep `signed`'s chunk digests beside `image` (atomically) for the FFU writer; a stale
    sidecar is removed instead when the image changed while it was signed. True when written."""
    path = sidecar_path(image)
    if signed.binding is None or signed.size != signed.binding[0]:
        path.unlink(missing_ok=True)
        return False
    count = len(signed.digests) // 32
    index, listed = array("Q"), bytearray()
    for i in range(count):
        d = signed.digests[32 * i : 32 * i + 32]
        if d != ZERO:
            index.append(i)
            listed += d
    if sys.byteorder != "little":  # pragma: no cover
        index.byteswap()
    size, ino, mtime_ns, ctime_ns = signed.binding
    head = SIDECAR.build(
        dict(
            chunk=CHUNK,
            size=size,
            ino=ino,
            mtime_ns=mtime_ns,
            ctime_ns=ctime_ns,
            signature=bytes.fromhex(signed.signature),
            count=len(index),
        )
    )
    write_bytes(path, head + index.tobytes() + bytes(listed))
    return True


def read_sidecar(image: str | os.PathLike, fd: int) -> bytes | None:
    """The digests of every chunk of the image open as `fd` (32 bytes each), from its sidecar, or
    None when there is no sidecar that describes exactly this file (see the module docstring)."""
    try:
        st = os.fstat(fd)
        with open(sidecar_path(image), "rb") as fh:
            raw = fh.read(SIDECAR_HEAD + 40 * (-(-st.st_size // CHUNK)) + 1)
    except OSError:
        return None
    if len(raw) < SIDECAR_HEAD or not raw.startswith(b"ffuforge-chunks\0"):
        return None
    try:
        head = SIDECAR.parse(raw[:SIDECAR_HEAD])
    except Exception:  # construct's errors: a damaged header is no sidecar
        return None
    if head.chunk != CHUNK or (head.size, head.ino, head.mtime_ns, head.ctime_ns) != binding(st):
        return None
    nchunks, count = -(-head.size // CHUNK), head.count
    if count > nchunks or len(raw) != SIDECAR_HEAD + 40 * count:
        return None
    index = array("Q")
    index.frombytes(raw[SIDECAR_HEAD : SIDECAR_HEAD + 8 * count])
    if sys.byteorder != "little":  # pragma: no cover
        index.byteswap()
    if any(b <= a for a, b in zip(index, index[1:], strict=False)) or (count and index[-1] >= nchunks):
        return None
    digests = bytearray(ZERO * nchunks)
    listed = raw[SIDECAR_HEAD + 8 * count :]
    for k, i in enumerate(index):
        digests[32 * i : 32 * i + 32] = listed[32 * k : 32 * k + 32]
    if signature_from_digests(digests, head.size) != head.signature.hex():
        return None
    return bytes(digests)


__all__ = [
    "CHUNK",
    "TAG",
    "ZERO",
    "Signed",
    "binding",
    "chunk_digests",
    "file_signature",
    "read_sidecar",
    "sidecar_path",
    "sign_file",
    "signature_from_digests",
    "write_sidecar",
]
