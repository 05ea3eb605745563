"""Raw disk assembly: content at the right offsets, sparse output, data-block iteration."""

import subprocess
import time
import tracemalloc

import pytest
from test_ptable import BS, MIB, gpt_layout, images_for, mbr_layout, sparse_image

from ffuforge.errors import ConfigError, FFUError, FormatError
from ffuforge.formats import diskimage, ptable
from ffuforge.formats.disklayout import DiskLayout

from oracles import needs


def _expected_blocks(layout, images) -> set[int]:
    """Oracle: table blocks, every block of a raw partition, and for the synthetic (non-FAT/NTFS)
    file-system images every block holding a non-zero byte, found by reading every byte."""
    want = set(ptable.build_tables(layout).blocks(BS))
    for name, path in images.items():
        p = layout.partition(name)
        off = layout.offset(p)
        if p.filesystem is None:
            want.update(range(off // BS, (off + layout.size(p) - 1) // BS + 1))
            continue
        data = path.read_bytes()
        for pos in range(0, len(data), 4096):
            if any(data[pos : pos + 4096]):
                want.update(range((off + pos) // BS, (off + min(pos + 4096, len(data)) - 1) // BS + 1))
    return want


@pytest.mark.parametrize("make", [gpt_layout, mbr_layout])
def test_assemble_places_images_and_stays_sparse(tmp_path, make):
    layout = make()
    images = images_for(layout, tmp_path)
    raw = diskimage.assemble_raw(layout, images, tmp_path / "disk.raw")
    st = raw.stat()
    assert st.st_size == layout.total_bytes
    assert st.st_blocks * 512 < 8 << 20  # a few MB of data in a 128/256 MiB disk
    with open(raw, "rb") as f:
        for name, path in images.items():
            p = layout.partition(name)
            data = path.read_bytes()
            f.seek(layout.offset(p))
            assert f.read(len(data)) == data, name
            rest = layout.size(p) - len(data)
            if rest:
                f.seek(layout.offset(p) + len(data))
                assert f.read(min(rest, 1 << 20)) == bytes(min(rest, 1 << 20))
        for r in ptable.build_tables(layout).regions:
            f.seek(r.offset)
            assert f.read(len(r.data)) == r.data


def test_iter_data_blocks_each_block_once_and_equal_to_raw(tmp_path):
    layout = gpt_layout(bootloader_at=66, data_to_end=True)
    images = images_for(layout, tmp_path)
    raw = diskimage.assemble_raw(layout, images, tmp_path / "disk.raw")
    seen = []
    with open(raw, "rb") as f:
        for idx, view in diskimage.iter_data_blocks(layout, images, BS):
            f.seek(idx * BS)
            assert bytes(view) == f.read(BS), idx
            seen.append(idx)
    assert seen == sorted(set(seen))
    assert set(seen) == _expected_blocks(layout, images)
    assert 0 in seen and layout.total_bytes // BS - 1 in seen


def test_data_extents(tmp_path):
    path = sparse_image(tmp_path / "s.img", 10 << 20, [(1 << 20, 10), (5 << 20, 8192)])
    with open(path, "rb") as f:
        ext = list(diskimage.data_extents(f.fileno(), 10 << 20))
    assert len(ext) == 2 and ext[0][0] <= 1 << 20 < ext[0][1] and ext[1][0] <= 5 << 20 < ext[1][1]
    dense = tmp_path / "d.img"
    dense.write_bytes(b"x" * 5000)
    with open(dense, "rb") as f:
        assert list(diskimage.data_extents(f.fileno(), 5000)) == [(0, 5000)]
    empty = sparse_image(tmp_path / "e.img", 1 << 20, [])
    with open(empty, "rb") as f:
        assert list(diskimage.data_extents(f.fileno(), 1 << 20)) == []


def test_bad_images_leave_no_output(tmp_path):
    layout = gpt_layout()
    out = tmp_path / "disk.raw"
    big = sparse_image(tmp_path / "big.img", layout.size(layout.partition("BOOTFW")) + 1, [])
    with pytest.raises(FFUError, match="holds only"):
        diskimage.assemble_raw(layout, {"BOOTFW": big}, out)
    with pytest.raises(FFUError, match="does not have"):
        diskimage.assemble_raw(layout, {"Nope": big}, out)
    with pytest.raises(FFUError, match="cannot read"):
        diskimage.assemble_raw(layout, {"MainOS": tmp_path / "missing.img"}, out)
    with pytest.raises(FFUError, match="two images"):
        diskimage.assemble_raw(layout, {"MainOS": big, "mainos": big}, out)
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".disk")]


@needs("sgdisk")
def test_big_sparse_disk_fast_small_memory(tmp_path):
    """A 2 GiB disk with a few MB of data: seconds, not minutes, and no disk-sized buffers."""
    base = gpt_layout()
    n = (2 << 30) // 512
    first, last, _ = ptable.gpt_geometry(n, 512)
    parts = base.partitions[:3] + (
        base.partitions[3].__class__(
            "Data", base.partitions[3].type, 80 * MIB, last - 80 * MIB + 1, filesystem="NTFS"
        ),
    )
    layout = DiskLayout("gpt", 512, BS, n, parts, platform_ids=base.platform_ids)
    images = images_for(layout, tmp_path)
    progress = []
    tracemalloc.start()
    t = time.perf_counter()
    raw = diskimage.assemble_raw(
        layout, images, tmp_path / "big.raw", progress=lambda d, t: progress.append((d, t))
    )
    elapsed = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert elapsed < 10 and peak < 32 << 20, (elapsed, peak)
    assert raw.stat().st_blocks * 512 < 16 << 20
    assert progress[-1][0] == progress[-1][1] and [d for d, _ in progress] == sorted(d for d, _ in progress)
    v = subprocess.run(["sgdisk", "-v", str(raw)], capture_output=True, text=True)
    assert "No problems found" in v.stdout, v.stdout


def test_disk_source_reads_across_partitions(tmp_path):
    layout = mbr_layout()
    images = images_for(layout, tmp_path)
    with diskimage.DiskSource(layout, images) as src:
        view = memoryview(bytearray(3 * BS))
        src.read(view, 0)  # MBR sector is not image data: zero; BOOTLOADER from sector 2
        boot = images["BOOTLOADER"].read_bytes()
        assert bytes(view[:1024]) == bytes(1024)
        assert bytes(view[1024 : 3 * BS]) == boot.ljust(3 * BS - 1024, b"\0")
        blocks = src.partition_blocks(layout.partition("BOOTLOADER"), BS)
        # raw: the partition's whole chunk range (its last 1 KiB lies in block 16), not the image's
        assert list(blocks) == list(range(0, (1024 + 4096 * 512 - 1) // BS + 1))


def test_error_kinds(tmp_path):
    layout = gpt_layout()
    out = tmp_path / "disk.raw"
    big = sparse_image(tmp_path / "big.img", layout.size(layout.partition("BOOTFW")) + 1, [])
    with pytest.raises(ConfigError, match="holds only"):
        diskimage.assemble_raw(layout, {"BOOTFW": big}, out)
    with pytest.raises(ConfigError, match="does not have"):
        diskimage.assemble_raw(layout, {"Nope": big}, out)
    with pytest.raises(ConfigError, match="two images"):
        diskimage.assemble_raw(layout, {"MainOS": big, "mainos": big}, out)
    with pytest.raises(FormatError, match="cannot read partition image"):
        diskimage.assemble_raw(layout, {"MainOS": tmp_path / "missing.img"}, out)
    with pytest.raises(FormatError, match="not a regular file"):
        diskimage.assemble_raw(layout, {"MainOS": tmp_path}, out)
    with pytest.raises(ConfigError, match="not a multiple of the block size"):
        list(diskimage.iter_data_blocks(layout, {}, layout.total_bytes + 512))
