"""Stored FFU blocks follow the file systems' allocation: checked against mtools/dosfstools and
ntfs-3g's own view of the volumes, and shown independent of how sparse the images are."""

import filecmp
import os
import random
import re
import struct
import subprocess

import pytest
from test_ptable import BASIC, BS, ESP, MIB, VENDOR

from ffuforge.errors import FormatError
from ffuforge.formats import diskimage, ffu, fsalloc
from ffuforge.formats.disklayout import DiskLayout, PlacedPartition

from oracles import require_tool

TOOLS = ("mkfs.fat", "mcopy", "mshowfat", "fsck.fat", "mkntfs", "ntfscp", "ntfsinfo")


@pytest.fixture(autouse=True)
def _tools():
    for t in TOOLS:
        require_tool(t)


MB = 1 << 20  # bytes (test_ptable.MIB counts sectors)
ZERO_FILE = 512 * 1024  # allocated, all zero: `cp --sparse=always` turns it into a hole


def _run(*cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def _fat(path, size, bits):
    with open(path, "wb") as f:
        f.truncate(size)
    _run("mkfs.fat", "-F", str(bits), "-i", "12345678", str(path))
    zero = path.parent / "zero.bin"
    zero.write_bytes(bytes(ZERO_FILE))
    rnd = path.parent / "rnd.bin"
    rnd.write_bytes(os.urandom(70_000))
    _run("mcopy", "-i", str(path), str(zero), "::/zero.bin")
    _run("mcopy", "-i", str(path), str(rnd), "::/rnd.bin")
    return path


def _ntfs(path, size):
    with open(path, "wb") as f:
        f.truncate(size)
    subprocess.run(
        ["mkntfs", "-F", "-Q", "-T", "-q", "-c", "4096", str(path)], check=True, capture_output=True
    )
    zero = path.parent / "zero.bin"
    zero.write_bytes(bytes(ZERO_FILE))
    _run("ntfscp", "-q", str(path), str(zero), "/zero.bin")
    return path


def _ntfs_runs(img, name):
    """(LCN, clusters) of a file's data, as ntfs-3g's ntfsinfo lists its runlist."""
    out = _run("ntfsinfo", "-v", "-F", name, str(img))
    runs = re.findall(r"^\t\t\t0x[0-9a-f]+\t\t(0x[0-9a-f]+)\t\t(0x[0-9a-f]+)$", out, re.M)
    assert runs, out
    return [(int(a, 16), int(b, 16)) for a, b in runs]


def _ranges(path, fs):
    with open(path, "rb") as f:
        return fsalloc.allocated_ranges(f.fileno(), os.path.getsize(path), fs)


@pytest.mark.parametrize("bits", [12, 16, 32])
def test_fat_allocation_matches_dosfstools(tmp_path, bits):
    img = _fat(tmp_path / "f.img", {12: 4 * MB, 16: 32 * MB, 32: 64 * MB}[bits], bits)
    ranges = _ranges(img, "FAT")
    boot = img.read_bytes()[:512]
    bps, spc, rsvd, nfats, roots = struct.unpack_from("<HBHBH", boot, 11)
    fatsz = struct.unpack_from("<H", boot, 22)[0] or struct.unpack_from("<I", boot, 36)[0]
    data = (rsvd + nfats * fatsz + -(-roots * 32 // bps)) * bps
    clus = bps * spc
    assert ranges[0] == (0, data) or ranges[0][0] == 0 and ranges[0][1] >= data
    used = sum(min(e, 1 << 62) - max(s, data) for s, e in ranges if e > data) // clus
    # fsck.fat: "n files, used/total clusters"
    want = int(re.search(r"(\d+)/\d+ clusters", _run("fsck.fat", "-n", str(img))).group(1))
    assert used == want
    for name in ("zero.bin", "rnd.bin"):  # every cluster mtools reports for each file is covered
        for a, b in re.findall(r"<(\d+)-(\d+)>", _run("mshowfat", "-i", str(img), f"::/{name}")):
            lo, hi = data + (int(a) - 2) * clus, data + (int(b) - 1) * clus
            assert any(s <= lo and hi <= e for s, e in ranges), (name, a, b)


def test_ntfs_allocation_matches_ntfs3g(tmp_path):
    img = _ntfs(tmp_path / "n.img", 64 * MB)
    ranges = _ranges(img, "NTFS")
    info = _run("ntfsinfo", "-m", str(img))
    total = int(re.search(r"Volume Size in Clusters: (\d+)", info).group(1))
    free = int(re.search(r"Free Clusters: (\d+)", info).group(1))
    backup = ranges[-1]
    assert backup == (64 * MB - 512, 64 * MB)  # the backup boot sector, in no bitmap
    assert sum(e - s for s, e in ranges[:-1]) == (total - free) * 4096
    for lcn, n in _ntfs_runs(img, "/zero.bin"):
        lo, hi = int(lcn) * 4096, (int(lcn) + int(n)) * 4096
        assert any(s <= lo and hi <= e for s, e in ranges)
        assert img.read_bytes()[lo:hi] == bytes(hi - lo)  # allocated yet all zero


def _layout():
    return DiskLayout(
        "gpt",
        512,
        BS,
        128 * MIB,
        (
            PlacedPartition("BOOTFW", VENDOR, 66, 2048, required_to_flash=True),
            PlacedPartition("EFIESP", ESP, 2 * MIB, 32 * MIB, filesystem="FAT", required_to_flash=True),
            PlacedPartition("MainOS", BASIC, 34 * MIB, 64 * MIB, filesystem="NTFS"),
        ),
        platform_ids=("Contoso.Test.Board",),
    )


def test_ffu_depends_on_bytes_not_holes(tmp_path):
    """The same partition images dense, `cp --sparse=always`, `cp --sparse=never`: one FFU; every
    allocated all-zero cluster reaches the device (the zero file's blocks are stored)."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "boot.bin").write_bytes(os.urandom(5000) + bytes(20000))  # raw: zeros are content
    _fat(src / "esp.img", 32 * MB, 16)
    (src / "zero.bin").unlink()
    _ntfs(src / "main.img", 64 * MB)
    layout = _layout()
    outs = []
    for mode in ("always", "never", None):
        d = tmp_path / str(mode)
        if mode is None:
            d = src
        else:
            d.mkdir()
            for n in ("boot.bin", "esp.img", "main.img"):
                subprocess.run(["cp", f"--sparse={mode}", str(src / n), str(d / n)], check=True)
        images = {"BOOTFW": d / "boot.bin", "EFIESP": d / "esp.img", "MainOS": d / "main.img"}
        out = tmp_path / f"{mode}.ffu"
        ffu.write_ffu(out, layout, images)
        outs.append(out)
    sparse = tmp_path / "always" / "main.img"
    assert sparse.stat().st_blocks * 512 < (src / "main.img").stat().st_blocks * 512  # really sparser
    assert filecmp.cmp(outs[0], outs[1], shallow=False) and filecmp.cmp(outs[0], outs[2], shallow=False)
    with ffu.FfuReader(outs[0]) as r:
        st_ = r.stores[0]
        stored = {x for i in range(1, st_.descriptor_count) for _, x in st_.locations(i)}
        assert r.verify().ok
        got = r.to_raw(tmp_path / "got.raw")
    main_off = layout.offset(layout.partition("MainOS"))
    for lcn, n in _ntfs_runs(src / "main.img", "/zero.bin"):
        first, stop = (
            (main_off + int(lcn) * 4096) // BS,
            (main_off + (int(lcn) + int(n)) * 4096 - 1) // BS + 1,
        )
        assert set(range(first, stop)) <= stored
    # raw partition: its whole chunk range (sectors 66..2113 → blocks 0..8), block 0 as a table block
    assert set(range(0, 9)) <= stored
    assert filecmp.cmp(
        got,
        diskimage.assemble_raw(
            layout,
            dict(
                zip(
                    ("BOOTFW", "EFIESP", "MainOS"),
                    (src / "boot.bin", src / "esp.img", src / "main.img"),
                    strict=True,
                )
            ),
            tmp_path / "exp.raw",
        ),
        shallow=False,
    )


@pytest.mark.parametrize(
    "fs, offset, value, message",
    [
        ("NTFS", 0x28, struct.pack("<q", 1 << 40), "sectors"),  # volume larger than the image
        ("NTFS", 0x30, struct.pack("<q", 1 << 30), "outside the image"),  # $MFT beyond the end
        ("NTFS", 0x40, b"\x7f", "sectors"),  # absurd MFT record size
        ("FAT", 22, b"\x01\x00", "cannot map"),  # FAT too small for its clusters
        ("FAT", 19, b"\xff\xff", "sectors"),  # more sectors than the image
    ],
)
def test_damaged_volumes_are_format_errors(tmp_path, fs, offset, value, message):
    img = _ntfs(tmp_path / "v.img", 16 * MB) if fs == "NTFS" else _fat(tmp_path / "v.img", 4 * MB, 12)
    with open(img, "r+b") as f:
        f.seek(offset)
        f.write(value)
    with pytest.raises(FormatError, match=message):
        _ranges(img, fs)
    layout = DiskLayout(
        "gpt",
        512,
        BS,
        32 * MIB,
        (PlacedPartition("X", BASIC, 2048, 40000, filesystem=fs),),
        platform_ids=("A.B",),
    )
    with pytest.raises(FormatError) as e, diskimage.DiskSource(layout, {"X": img}) as s:
        s.partition_blocks(layout.partition("X"), BS)
    assert str(img) in str(e.value)


@pytest.mark.parametrize("fs", ["NTFS", "FAT"])
def test_random_damage_is_a_format_error_or_a_bounded_answer(tmp_path, fs):
    """Bytes flipped in the boot sector, the FAT and the first MFT records (where $Bitmap is
    found): every outcome is ranges inside the image or a FormatError, never another exception."""
    img = _ntfs(tmp_path / "v.img", 16 * MB) if fs == "NTFS" else _fat(tmp_path / "v.img", 4 * MB, 12)
    good = img.read_bytes()
    boot = good[:512]
    mft = struct.unpack_from("<q", boot, 0x30)[0] * 4096 if fs == "NTFS" else 512
    rng = random.Random(7)
    for _ in range(150):
        buf = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            base = rng.choice((0, mft, mft + 6 * 1024))
            buf[base + rng.randrange(1024)] = rng.randrange(256)
        img.write_bytes(buf)
        try:
            ranges = _ranges(img, fs)
        except FormatError:
            continue
        assert all(0 <= s < e <= len(buf) for s, e in ranges)
