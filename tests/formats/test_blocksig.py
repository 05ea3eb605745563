"""Chunk digests of a partition image and the sidecar that keeps them for the FFU writer: the
digests are each 128 KiB chunk's SHA-256 computed here from the bytes (holes or not), and a
sidecar is only ever read back for the exact file it was written for."""

import hashlib
import os
import random
import time

import pytest

from ffuforge.formats import blocksig

CHUNK = 128 << 10


def _reference(data: bytes) -> tuple[bytes, str]:
    """The definition spelt out: each 128 KiB chunk's SHA-256 (the last as long as it is), then a
    SHA-256 over the tag, those digests and the size as 8 little-endian bytes."""
    digests = b"".join(hashlib.sha256(data[o : o + CHUNK]).digest() for o in range(0, len(data), CHUNK))
    sig = hashlib.sha256(b"ffuforge-chunks-sha256-v2\0" + digests + len(data).to_bytes(8, "little"))
    return digests, sig.hexdigest()


def _image(path, size, pieces):
    with open(path, "wb") as fh:
        fh.truncate(size)
        for off, blob in pieces:
            fh.seek(off)
            fh.write(blob)
    with open(path, "rb") as fh:
        return fh.read()


@pytest.mark.parametrize("seed", range(8))
def test_sign_file_gives_every_chunk_digest(tmp_path, seed):
    rng = random.Random(seed)
    size = rng.randrange(0, 40) * CHUNK + rng.choice([0, 0, 1, 4096, CHUNK - 1])
    pieces = []
    for _ in range(rng.randrange(0, 8)):
        off = rng.randrange(0, max(size, 1))
        pieces.append((off, rng.randbytes(min(size - off, rng.randrange(1, 3 * CHUNK)))))
    data = _image(tmp_path / "img", size, pieces)
    signed = blocksig.sign_file(tmp_path / "img", threads=rng.choice([1, 3]))
    digests, sig = _reference(data)
    assert (signed.digests, signed.signature, signed.size) == (digests, sig, size)
    assert blocksig.file_signature(tmp_path / "img") == sig == blocksig.signature_from_digests(digests, size)
    assert signed.binding == blocksig.binding(os.stat(tmp_path / "img"))


def test_sidecar_round_trip_and_size(tmp_path):
    img = tmp_path / "MainOS.img"
    data = _image(img, 64 * CHUNK + 100, [(5 * CHUNK + 3, b"x" * 10), (40 * CHUNK, os.urandom(CHUNK + 7))])
    signed = blocksig.sign_file(img)
    assert blocksig.write_sidecar(img, signed)
    side = blocksig.sidecar_path(img)
    assert side.name == "MainOS.img.chunks"
    # 4 chunks hold data (5, 40, 41, the partial last one): only those are listed
    assert side.stat().st_size == blocksig.SIDECAR_HEAD + 4 * 40
    with open(img, "rb") as fh:
        assert blocksig.read_sidecar(img, fh.fileno()) == _reference(data)[0]


def _written(tmp_path):
    img = tmp_path / "p.img"
    _image(img, 16 * CHUNK, [(CHUNK, os.urandom(3 * CHUNK))])
    assert blocksig.write_sidecar(img, blocksig.sign_file(img))
    return img


def _read(img):
    with open(img, "rb") as fh:
        return blocksig.read_sidecar(img, fh.fileno())


def test_a_sidecar_describes_only_the_file_it_was_written_for(tmp_path):
    img = _written(tmp_path)
    assert _read(img) is not None
    st = os.stat(img)
    # same size, same mtime, bytes rewritten in place: the ctime tells
    with open(img, "r+b") as fh:
        fh.seek(2 * CHUNK)
        fh.write(b"changed")
    os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(img).st_mtime_ns == st.st_mtime_ns
    assert _read(img) is None


def test_touch_chmod_or_replace_makes_a_sidecar_stale(tmp_path):
    img = _written(tmp_path)
    time.sleep(0.01)
    os.chmod(img, 0o600)  # ctime only
    assert _read(img) is None
    img = _written(tmp_path)
    copy = tmp_path / "copy"
    copy.write_bytes(img.read_bytes())
    os.replace(copy, img)  # the same bytes, another file
    assert _read(img) is None


@pytest.mark.parametrize(
    "damage",
    ["truncate", "extend", "digest", "signature", "chunk", "index order", "index range", "magic"],
)
def test_a_damaged_sidecar_is_no_sidecar(tmp_path, damage):
    img = _written(tmp_path)
    side = blocksig.sidecar_path(img)
    raw = bytearray(side.read_bytes())
    side.write_bytes(bytes(raw))  # rewriting the sidecar itself is fine: the image is what is bound
    assert _read(img) is not None
    head = blocksig.SIDECAR_HEAD
    count = int.from_bytes(raw[head - 8 : head], "little")
    assert count == 3
    if damage == "truncate":
        raw = raw[:-1]
    elif damage == "extend":
        raw += b"\0"
    elif damage == "digest":
        raw[-1] ^= 1
    elif damage == "signature":
        raw[head - 9] ^= 1
    elif damage == "chunk":
        raw[16:20] = (64 << 10).to_bytes(4, "little")
    elif damage == "index order":
        raw[head : head + 16] = raw[head + 8 : head + 16] + raw[head : head + 8]
    elif damage == "index range":
        raw[head + 16 : head + 24] = (16).to_bytes(8, "little")
    else:
        raw[0] ^= 1
    side.write_bytes(bytes(raw))
    assert _read(img) is None


def test_a_file_that_changed_while_signed_gets_no_sidecar(tmp_path):
    img = _written(tmp_path)
    signed = blocksig.sign_file(img)
    stale = blocksig.Signed(signed.signature, signed.size, signed.digests, None)
    assert not blocksig.write_sidecar(img, stale)
    assert not blocksig.sidecar_path(img).exists()  # the old one is removed, not left to be trusted
