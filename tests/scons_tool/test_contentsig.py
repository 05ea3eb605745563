"""Content signatures of sparse outputs: they depend on the bytes only, never on where the holes are."""

import hashlib
import os
import random

import pytest

from ffuforge.formats import blocksig
from ffuforge.scons_tool import contentsig


def _write(path, size, pieces, dense):
    with open(path, "wb") as fh:
        if dense:
            data = bytearray(size)
            for off, blob in pieces:
                data[off : off + len(blob)] = blob
            fh.write(data)
        else:
            fh.truncate(size)
            for off, blob in pieces:
                fh.seek(off)
                fh.write(blob)


@pytest.mark.parametrize("seed", range(12))
def test_sparse_and_dense_files_sign_the_same(tmp_path, monkeypatch, seed):
    rng = random.Random(seed)
    block = rng.choice([4096, 8192, 65536])
    monkeypatch.setattr(blocksig, "CHUNK", block)
    monkeypatch.setattr(blocksig, "ZERO", __import__("hashlib").sha256(bytes(block)).digest())
    size = rng.randrange(1, 64) * 4096 + rng.choice([0, 0, 1, 511, 4095])
    pieces = []
    for _ in range(rng.randrange(0, 6)):
        off = rng.randrange(0, size)
        pieces.append((off, rng.randbytes(min(size - off, rng.randrange(1, 3 * block)))))
    _write(tmp_path / "sparse", size, pieces, dense=False)
    _write(tmp_path / "dense", size, pieces, dense=True)
    a = contentsig.file_signature(tmp_path / "sparse", threads=3)
    b = contentsig.file_signature(tmp_path / "dense", threads=1)
    assert a == b == contentsig.file_signature(tmp_path / "dense", threads=4)
    # a block-wise reference computed from the bytes
    import hashlib

    data = (tmp_path / "dense").read_bytes()
    h = hashlib.sha256(blocksig.TAG)
    for i in range(0, len(data), block):
        h.update(hashlib.sha256(data[i : i + block]).digest())
    h.update(len(data).to_bytes(8, "little"))
    assert a == h.hexdigest()


def test_one_byte_changes_the_signature(tmp_path):
    p = tmp_path / "img"
    with open(p, "wb") as fh:
        fh.truncate(64 << 20)
    before = contentsig.file_signature(p)
    with open(p, "r+b") as fh:
        fh.seek(40 << 20)
        fh.write(b"\1")
    assert contentsig.file_signature(p) != before
    assert contentsig.file_signature(p) == contentsig.file_signature(p)


def test_empty_file(tmp_path):
    """The definition (blocksig's docstring), spelled out here rather than taken from the code: a
    SHA-256 over the tag, each block's SHA-256 (none here) and the size as 8 little-endian bytes."""
    p = tmp_path / "e"
    p.write_bytes(b"")
    tag = b"ffuforge-chunks-sha256-v2\0"
    assert contentsig.file_signature(p) == hashlib.sha256(tag + bytes(8)).hexdigest()
    one = tmp_path / "one"
    one.write_bytes(b"\0")  # one zero byte: not the empty file, though both hold only zeros
    expected = hashlib.sha256(tag + hashlib.sha256(b"\0").digest() + (1).to_bytes(8, "little")).hexdigest()
    assert contentsig.file_signature(one) == expected
    assert contentsig.content_signature(str(p)) == (
        0,
        os.stat(p).st_mtime_ns,
        hashlib.sha256(tag + bytes(8)).hexdigest(),
    )
