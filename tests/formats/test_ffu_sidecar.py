"""The FFU writer takes the chunk digests a partition image's sidecar gives instead of hashing the
payload again, copies that payload file to file, and signs the FFU from its hash table.

The oracles: the FFU's bytes against one written without any sidecar, FfuReader.verify (every
chunk against the hash table, hashed there), and the content signature recomputed from the file.
A sidecar whose digests are self-consistent but wrong ("fake") shows whether the writer used it:
used, the hash table is wrong and verify says so; that is how the tests prove the writer falls
back to hashing whenever the sidecar does not describe the file, never giving a wrong table."""

import errno
import filecmp
import hashlib
import os

import pytest
from test_ptable import BASIC, BS, images_for, mbr_layout, sparse_image

from ffuforge.errors import FormatError
from ffuforge.formats import blocksig, ffu
from ffuforge.formats.disklayout import DiskLayout, PlacedPartition
from ffuforge.formats.ffu import payload
from ffuforge.scons_tool import cachecheck, contentsig


def _layout(start: int = 2048, filesystem: str | None = "NTFS") -> DiskLayout:
    return DiskLayout(
        "gpt",
        512,
        BS,
        8192,
        (PlacedPartition("Data", BASIC, start, 4096, filesystem=filesystem, required_to_flash=True),),
        platform_ids=("Synthetic.Test.Board",),
    )


def _image(tmp_path, name="data.img"):
    return sparse_image(
        tmp_path / name, 4096 * 512, [(b * BS + 7, 3000) for b in (0, 1, 2, 5, 12, 15)], seed=3
    )


def _sidecar(img) -> None:
    assert blocksig.write_sidecar(img, blocksig.sign_file(img))


def _fake_sidecar(img) -> None:
    """A sidecar bound to `img` whose digests (self-consistent) are not the image's."""
    real = blocksig.sign_file(img)
    fake = bytes(b ^ 0x55 for b in real.digests)
    signed = blocksig.Signed(blocksig.signature_from_digests(fake, real.size), real.size, fake, real.binding)
    assert blocksig.write_sidecar(img, signed)
    with open(img, "rb") as fh:
        assert blocksig.read_sidecar(img, fh.fileno()) == fake


def _verify(path) -> list[str]:
    with ffu.FfuReader(path) as r:
        return r.verify().problems


def _reference_signature(path) -> str:
    data = open(path, "rb").read()
    h = hashlib.sha256(b"ffuforge-chunks-sha256-v2\0")
    for o in range(0, len(data), BS):
        h.update(hashlib.sha256(data[o : o + BS]).digest())
    return h.update(len(data).to_bytes(8, "little")) or h.hexdigest()


@pytest.mark.parametrize("threads", [True, False])
def test_sidecar_gives_the_same_ffu_and_signature(tmp_path, threads):
    img = _image(tmp_path)
    plain = ffu.write_ffu(tmp_path / "plain.ffu", _layout(), {"Data": img}, threads=threads)
    _sidecar(img)
    got = ffu.write_ffu(tmp_path / "side.ffu", _layout(), {"Data": img}, threads=threads)
    assert filecmp.cmp(tmp_path / "plain.ffu", tmp_path / "side.ffu", shallow=False)
    assert got.signature == plain.signature == _reference_signature(tmp_path / "side.ffu")
    assert _verify(tmp_path / "side.ffu") == []


def test_the_writer_uses_the_sidecar(tmp_path):
    """Proof that the digests came from the sidecar: fake ones end up in the hash table."""
    img = _image(tmp_path)
    _fake_sidecar(img)
    ffu.write_ffu(tmp_path / "fake.ffu", _layout(), {"Data": img})
    assert any("hash" in p.lower() for p in _verify(tmp_path / "fake.ffu"))


@pytest.mark.parametrize("how", ["touched", "rewritten", "replaced", "missing", "unaligned"])
def test_a_sidecar_that_does_not_describe_the_image_is_not_used(tmp_path, how):
    img = _image(tmp_path)
    start = 2048
    _fake_sidecar(img)
    if how == "touched":
        os.utime(img)
    elif how == "rewritten":
        st = os.stat(img)
        with open(img, "r+b") as fh:  # same size, mtime put back: only the ctime changes
            fh.seek(5 * BS + 10)
            fh.write(b"edited")
        os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns))
    elif how == "replaced":
        os.replace(_image(tmp_path, "other.img"), img)
    elif how == "missing":
        blocksig.sidecar_path(img).unlink()
    else:
        start = 2050  # the partition does not start on a 128 KiB block: its chunks are not the disk's
    layout = _layout(start, filesystem=None)
    out = ffu.write_ffu(tmp_path / "x.ffu", layout, {"Data": img})
    assert _verify(tmp_path / "x.ffu") == []
    assert out.signature == blocksig.file_signature(tmp_path / "x.ffu")
    blocksig.sidecar_path(img).unlink(missing_ok=True)
    ffu.write_ffu(tmp_path / "ref.ffu", layout, {"Data": img})
    assert filecmp.cmp(tmp_path / "x.ffu", tmp_path / "ref.ffu", shallow=False)


def test_partial_last_block_is_hashed(tmp_path):
    """A partition that ends inside a block: that block holds bytes past the image (zeros or the
    next partition), so its digest is not the image's last chunk's; the rest comes from the sidecar."""
    layout = DiskLayout(
        "gpt",
        512,
        BS,
        8192,
        (PlacedPartition("Data", BASIC, 2048, 4000, required_to_flash=True),),
        platform_ids=("Synthetic.Test.Board",),
    )
    img = sparse_image(tmp_path / "raw.img", 4000 * 512, [(0, 4000 * 512)], seed=5)
    plain = ffu.write_ffu(tmp_path / "plain.ffu", layout, {"Data": img})
    _sidecar(img)
    side = ffu.write_ffu(tmp_path / "side.ffu", layout, {"Data": img})
    assert filecmp.cmp(tmp_path / "plain.ffu", tmp_path / "side.ffu", shallow=False)
    assert side.signature == plain.signature and _verify(tmp_path / "side.ffu") == []


def test_every_partition_of_a_real_layout(tmp_path):
    """Several partitions (MBR, raw and file systems, data at the very start and end): with
    sidecars beside every image, the same bytes as without."""
    layout = mbr_layout()
    images = images_for(layout, tmp_path)
    plain = ffu.write_ffu(tmp_path / "plain.ffu", layout, images)
    for img in images.values():
        _sidecar(img)
    side = ffu.write_ffu(tmp_path / "side.ffu", layout, images)
    assert filecmp.cmp(tmp_path / "plain.ffu", tmp_path / "side.ffu", shallow=False)
    assert side.signature == plain.signature == _reference_signature(tmp_path / "side.ffu")


@pytest.mark.parametrize("refused", [(), ("copy_file_range",), ("copy_file_range", "sendfile")])
def test_copy_falls_back(tmp_path, monkeypatch, refused):
    img = _image(tmp_path)
    ffu.write_ffu(tmp_path / "plain.ffu", _layout(), {"Data": img})
    _sidecar(img)
    used = []

    def refuse(name):
        real = getattr(os, name)

        def call(*a):
            used.append(name)
            if name in refused:
                raise OSError(errno.EXDEV, "refused")
            return real(*a)

        return call

    for name in ("copy_file_range", "sendfile"):
        monkeypatch.setattr(payload.os, name, refuse(name))
    ffu.write_ffu(tmp_path / "side.ffu", _layout(), {"Data": img})
    assert filecmp.cmp(tmp_path / "plain.ffu", tmp_path / "side.ffu", shallow=False)
    assert used[0] == "copy_file_range"
    if refused == ("copy_file_range",):
        assert "sendfile" in used


def test_an_image_changed_while_the_ffu_is_written_fails(tmp_path):
    img = _image(tmp_path)
    _sidecar(img)
    out = tmp_path / "x.ffu"

    def touch(done, total):
        if done == 3 * BS:  # headers, descriptors and the initial wipe written: payload under way
            os.utime(img)

    with pytest.raises(FormatError, match="changed while the FFU was written"):
        ffu.write_ffu(out, _layout(), {"Data": img}, progress=touch)
    assert not out.exists() and not list(tmp_path.glob(".x.ffu*"))


def test_writer_checker_and_scons_agree_and_a_flipped_payload_byte_tells(tmp_path):
    """The FFU's signature from its hash table (writer) is what the file alone gives (file_signature,
    as contentsig and the cache check compute it), and any payload byte changes it."""
    img = _image(tmp_path)
    _sidecar(img)
    path = tmp_path / "f.ffu"
    res = ffu.write_ffu(path, _layout(), {"Data": img})
    assert res.signature == blocksig.file_signature(path) == _reference_signature(path)
    assert (
        res.signature
        == contentsig.content_signature(str(path))[2]
        == cachecheck.signature(str(path), "image")
    )
    with ffu.FfuReader(path) as r:
        st = r.stores[0]
        at = st.payload_offset + st.payload_start[1] * st.block_size + 100  # a data block
    with open(path, "r+b") as fh:
        fh.seek(at)
        b = fh.read(1)
        fh.seek(at)
        fh.write(bytes([b[0] ^ 1]))
    assert blocksig.file_signature(path) != res.signature
    assert cachecheck.signature(str(path), "image") != res.signature
