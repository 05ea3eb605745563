"""FFU writer and reader: a hand-computed worked example byte for byte, ImgGen's phase rules, round
trips against the independently assembled raw disk (compared with cmp), the format's edge cases,
tampering, hostile files, determinism, memory and speed."""

import filecmp
import hashlib
import os
import struct
import subprocess
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import pytest
from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_ptable import (
    BASIC,
    BS,
    MIB,
    VENDOR,
    bytes_reader,
    gpt4k_layout,
    gpt_layout,
    images_for,
    mbr_layout,
    sparse_image,
)

from ffuforge.cli import ffu as ffu_cli
from ffuforge.errors import ConfigError, FFUError, FormatError, SigningError
from ffuforge.formats import blocksig, catalog, diskimage, ffu, ptable
from ffuforge.formats.disklayout import DiskLayout, PlacedPartition
from ffuforge.signing.verify import catalog_signature_problems

from oracles import require_tool

WORKED_MANIFEST = (
    "[FullFlash]\r\n"
    "Description       = synthetic\r\n"
    "Version           = 2.0\r\n"
    "OSVersion         = 10.0.17763.1\r\n"
    "AntiTheftVersion  = 1.1\r\n"
    "UEFI              = True\r\n"
    "DevicePlatformId0 = Synthetic.Test.Board\r\n"
    "\r\n"
    "[Store]\r\n"
    "SectorSize                    = 512\r\n"
    "MinSectorCount                = 8192\r\n"
    "IsMainOSStore                 = True\r\n"
    "OnlyAllocateDefinedGptEntries = False\r\n"
    "StoreType                     = Default\r\n"
    "\r\n"
    "[Partition]\r\n"
    "Name            = Data\r\n"
    "Type            = {ebd0a0a2-b9e5-4433-87c0-68b6b72699c7}\r\n"
    "Primary         = False\r\n"
    "TotalSectors    = 4096\r\n"
    "UsedSectors     = 4096\r\n"
    "FileSystem      = NTFS\r\n"
    "RequiredToFlash = True\r\n"
    "\r\n"
)


def worked_layout() -> DiskLayout:
    return DiskLayout(
        "gpt",
        512,
        BS,
        8192,
        (PlacedPartition("Data", BASIC, 2048, 4096, filesystem="NTFS", required_to_flash=True),),
        platform_ids=("Synthetic.Test.Board",),
    )


@pytest.fixture
def worked(tmp_path):
    """Worked example: 4 MiB disk, Data at blocks 8-23 with blocks 8, 9, 10, 11, 20 holding data (an
    image that is no FAT or NTFS volume: its non-zero pages are stored)."""
    img = sparse_image(tmp_path / "data.img", 4096 * 512, [(b * BS, 1000) for b in (0, 1, 2, 3, 12)], seed=8)
    layout = worked_layout()
    out = tmp_path / "worked.ffu"
    ffu.write_ffu(out, layout, {"Data": img}, os_version="10.0.17763.1", description="synthetic")
    return out, layout, {"Data": img}


def _cmp(a, b) -> bool:
    return subprocess.run(["cmp", "-s", str(a), str(b)]).returncode == 0


def _roundtrip(tmp_path, layout, images, **kw):
    out = tmp_path / "image.ffu"
    ffu.write_ffu(out, layout, images, **kw)
    expected = diskimage.assemble_raw(
        layout,
        images,
        tmp_path / "expected.raw",
        gpt_entries=32 if kw.get("only_defined_gpt_entries") else 128,
    )
    with ffu.FfuReader(out) as r:
        res = r.verify()
        assert res.ok, res.problems
        got = r.to_raw(tmp_path / "got.raw")
    assert got.stat().st_size == layout.total_bytes
    assert _cmp(got, expected), "to_raw(write_ffu(...)) differs from assemble_raw(...)"
    assert got.stat().st_blocks * 512 <= expected.stat().st_blocks * 512 + (1 << 20)  # sparse too
    return out, got


def _payload(r: ffu.FfuReader, st_: ffu.FfuStoreInfo, i: int) -> bytes:
    return r._read(st_.payload_offset + st_.payload_start[i] * st_.block_size, st_.block_size, "payload")


def _desc_blocks(st_, lo, hi):
    return [st_.locations(i) for i in range(lo, hi)]


# ----------------------------------------------------------------------------- worked example


def test_worked_example_layout(worked):
    path, layout, _ = worked
    data = path.read_bytes()
    assert len(data) == 0x180000
    sh = ffu.SECURITY_HEADER.parse(data[:32])
    assert (sh.cbSize, sh.signature, sh.chunk_kb, sh.alg_id, sh.catalog_size, sh.hash_table_size) == (
        32,
        b"SignedImage ",
        128,
        0x800C,
        328,
        352,
    )
    assert data[32 + 328 + 352 : 0x20000] == bytes(0x20000 - 712)  # zero padding
    ih = ffu.IMAGE_HEADER.parse(data[0x20000:0x20018])
    assert (ih.cbSize, ih.signature, ih.manifest_length, ih.chunk_kb) == (24, b"ImageFlash  ", 620, 128)
    assert data[0x20018 : 0x20018 + 620].decode("ascii") == WORKED_MANIFEST
    assert data[0x20018 + 620 : 0x40000] == bytes(0x40000 - 0x20018 - 620)
    h = ffu.STORE_HEADER.parse(data[0x40000 : 0x40000 + 248])
    assert (h.update_type, h.major, h.minor, h.ff_major, h.ff_minor, h.block_size) == (0, 1, 0, 2, 0, BS)
    assert h.platform_id == b"Synthetic.Test.Board\0".ljust(192, b"\0")
    assert (
        h.write_descriptor_count,
        h.write_descriptor_length,
        h.validate_descriptor_count,
        h.validate_descriptor_length,
    ) == (9, 152, 0, 0)
    assert (
        h.initial_index,
        h.initial_count,
        h.flash_only_index,
        h.flash_only_count,
        h.final_index,
        h.final_count,
    ) == (0, 1, 6, 1, 7, 2)
    descs = data[0x40000 + 248 : 0x40000 + 400]
    assert descs == (
        struct.pack("<6I", 2, 1, 0, 0, 2, 0)
        + b"".join(struct.pack("<4I", 1, 1, 0, b) for b in (8, 9, 10, 11, 20, 0, 0))
        + struct.pack("<4I", 1, 1, 2, 0)
    )
    assert data[0x40000 + 400 : 0x60000] == bytes(0x60000 - 0x40000 - 400)
    # hash table: one SHA-256 per chunk from the image header to EOF
    table = data[32 + 328 : 32 + 328 + 352]
    for c in range(11):
        off = 0x20000 + c * BS
        assert table[32 * c : 32 * c + 32] == hashlib.sha256(data[off : off + BS]).digest()
    # catalog: v1, one member HashTable.blob with SHA-1(hash table)
    cat = catalog.parse_catalog(data[32:360])
    subj = cat.subjects["HashTable.blob".encode("utf-16-le") + b"\0\0"]
    assert cat.version == 1 and not cat.signed and subj.digest == hashlib.sha1(table).digest()
    assert subj.sip_guid == "{DE351A42-8E59-11D0-8C47-00C04FC295EE}"


def test_worked_example_payload_and_roundtrip(worked, tmp_path):
    path, layout, images = worked
    with ffu.FfuReader(path) as r:
        st_ = r.stores[0]
        assert _payload(r, st_, 0) == bytes(BS)  # initial wipe
        img = images["Data"].read_bytes()
        assert _payload(r, st_, 1) == img[:BS]
        assert _payload(r, st_, 5) == img[12 * BS : 13 * BS]
        flash = ptable.parse_gpt(bytes_reader(_payload(r, st_, 6)), 8192, 512)
        assert [e.name for e in flash.entries] == ["Data"]
        backup = _payload(r, st_, 8)
        assert backup[-512 : -512 + 8] == b"EFI PART"  # backup header in the last sector of the last block
        got = r.to_raw(tmp_path / "got.raw")
    expected = diskimage.assemble_raw(layout, images, tmp_path / "exp.raw")
    assert _cmp(got, expected)


def test_worked_example_flipped_payload_bit_is_chunk_9(worked):
    path, _, _ = worked
    with open(path, "r+b") as f:
        f.seek(0x20000 + 9 * BS + 1234)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0x10]))
    with ffu.FfuReader(path) as r:
        res = r.verify()
    assert not res.ok
    assert len(res.problems) == 1 and res.problems[0].startswith("chunk 9 ")
    assert "store 1 payload block 7, descriptor 7 → disk block BEGIN 0" in res.problems[0]


# ----------------------------------------------------------------------------- phases and round trips


def test_gpt_phases_and_roundtrip(tmp_path):
    layout = gpt_layout()
    images = images_for(layout, tmp_path)
    out, got = _roundtrip(tmp_path, layout, images)
    require_tool("sgdisk")
    v = subprocess.run(["sgdisk", "-v", str(got)], capture_output=True, text=True)
    assert "No problems found" in v.stdout, v.stdout
    with ffu.FfuReader(out) as r:
        st_ = r.stores[0]
        h = st_.header
        nblocks = layout.total_bytes // BS

        def owner(block):
            for p in layout.partitions:
                if layout.offset(p) // BS <= block <= (layout.offset(p) + layout.size(p) - 1) // BS:
                    return p
            return None

        assert st_.locations(0) == [(0, 0), (2, 0)]
        phase2 = _desc_blocks(st_, 1, h["flash_only_index"])
        assert phase2 and all(
            len(x) == 1 and x[0][0] == 0 and owner(x[0][1]).required_to_flash for x in phase2
        )
        phase3 = _desc_blocks(st_, h["flash_only_index"] + h["flash_only_count"], h["final_index"])
        assert phase3 and all(not owner(x[0][1]).required_to_flash for x in phase3)
        assert _desc_blocks(st_, h["flash_only_index"], h["final_index"] - len(phase3)) == [[(0, 0)]]
        assert _desc_blocks(st_, h["final_index"], st_.descriptor_count) == [[(0, 0)], [(2, 0)]]
        assert h["final_index"] + h["final_count"] == st_.descriptor_count
        # every stored data block once; nothing but data and table blocks
        data_blocks = [x[0][1] for x in phase2 + phase3]
        assert len(data_blocks) == len(set(data_blocks))
        flash = ptable.parse_gpt(
            bytes_reader(_payload(r, st_, h["flash_only_index"])), layout.total_sectors, 512
        )
        assert [e.name for e in flash.entries] == ["BOOTFW", "EFIESP"]
        assert flash.disk_guid == ptable.NORMALISED_DISK_GUID
        assert nblocks - 1 not in data_blocks
        info = r.info()
    for word in (
        "GPT",
        "BOOTFW",
        "EFIESP",
        "MainOS",
        "Data",
        f"flash-only {h['flash_only_index']}+1",
        "Contoso.Test.Board",
    ):
        assert word in info, word


def test_mbr_six_partitions_roundtrip(tmp_path):
    layout = mbr_layout()
    images = images_for(layout, tmp_path)
    out, got = _roundtrip(tmp_path, layout, images)
    require_tool("sfdisk")
    v = subprocess.run(["sfdisk", "--verify", str(got)], capture_output=True, text=True)
    assert "No errors detected" in v.stdout, v.stdout
    with ffu.FfuReader(out) as r:
        st_ = r.stores[0]
        assert st_.locations(0) == [(0, 0)]  # MBR: no DISK_END anywhere
        assert all(m == 0 for m in st_.loc_method)
        h = st_.header
        # the BOOTLOADER at sector 2 shares block 0 with the MBR: block 0 is written only as
        # table blocks, each the whole staged chunk (loader bytes from sector 2) with a table
        _strict_check(st_)
        boot = images["BOOTLOADER"].read_bytes()
        flash0 = _payload(r, st_, h["flash_only_index"])
        assert st_.locations(h["flash_only_index"]) == [(0, 0)] and flash0[510:512] == b"\x55\xaa"
        assert flash0[1024 : 1024 + 1000] == boot[:1000]
        _, parts = ptable.read_mbr(bytes_reader(flash0), layout.total_sectors, 512)
        assert [p.number for p in parts] == [1, 2]
        final0 = _payload(r, st_, h["final_index"])
        assert final0[1024:] == flash0[1024:] and final0[:1024] != flash0[:1024]
        # the raw partition's full chunk range: blocks 1-16 (block 16 holds its last 1 KiB)
        data = [x[0][1] for x in _desc_blocks(st_, 1, h["flash_only_index"])]
        assert data[:16] == list(range(1, 17))
        finals = _desc_blocks(st_, h["final_index"], st_.descriptor_count)
        ebr_blocks = sorted({(p.first_sector - 1) * 512 // BS for p in layout.partitions[3:]})
        assert sorted(x[0][1] for x in finals) == sorted({0, *ebr_blocks})
        assert "MBR  disk signature 0xae420040" in r.info()


def test_4k_sector_roundtrip(tmp_path):
    layout = gpt4k_layout()
    images = images_for(layout, tmp_path)
    out, got = _roundtrip(tmp_path, layout, images)
    with ffu.FfuReader(out) as r:
        assert "SectorSize                    = 4096" in r.manifest_text
        assert r.stores[0].disk_bytes == 64 << 20
        assert _desc_blocks(r.stores[0], r.stores[0].header["final_index"], r.stores[0].descriptor_count) == [
            [(0, 0)],
            [(2, 0)],
        ]
    require_tool("fdisk")
    o = subprocess.run(["fdisk", "-b", "4096", "-l", str(got)], capture_output=True, text=True, check=True)
    assert "corrupt" not in (o.stdout + o.stderr).lower()
    assert all(p.name in o.stdout or str(p.first_sector) in o.stdout for p in layout.partitions)


def _strict_check(st_) -> None:
    """wor-flasher's rules (spec/updateos-chunk0.md B3): one block per descriptor; no data
    descriptor on a table location; each table location is written flash-only (if at all) then
    final; before the final phase no block carries the final table (checked by the callers)."""
    h = st_.header
    flash = range(h["flash_only_index"], h["flash_only_index"] + h["flash_only_count"])
    final = range(h["final_index"], h["final_index"] + h["final_count"])
    tables = {loc for i in (*flash, *final) for loc in st_.locations(i)}
    seen = set()
    for i in range(1, st_.descriptor_count):
        if i in flash or i in final:
            continue
        for loc in st_.locations(i):
            assert loc not in tables, f"data descriptor {i} writes table location {loc}"
            assert loc not in seen, f"data location {loc} written twice"
            seen.add(loc)
    assert {loc for i in final for loc in st_.locations(i)} >= {
        loc for i in flash for loc in st_.locations(i)
    }


def test_table_blocks_are_staged_chunks_and_never_data(tmp_path):
    """A raw partition inside the first block (i.MX BOOTLOADER at sector 66) and data in the last
    block next to the backup GPT: those blocks are stored only as table blocks (the whole staged
    chunk with the table overlaid), the final table only in the final phase; same final disk."""
    layout = gpt_layout(bootloader_at=66, data_to_end=True)
    images = images_for(layout, tmp_path)
    out, got = _roundtrip(tmp_path, layout, images)
    require_tool("sgdisk")
    v = subprocess.run(["sgdisk", "-v", str(got)], capture_output=True, text=True)
    assert "No problems found" in v.stdout, v.stdout
    boot = images["BOOTFW"].read_bytes()
    data = images["Data"].read_bytes()
    last = layout.total_bytes // BS - 1
    with ffu.FfuReader(out) as r:
        st_ = r.stores[0]
        h = st_.header
        _strict_check(st_)
        flash = h["flash_only_index"]
        stored = [
            x[0][1] for x in _desc_blocks(st_, 1, flash) + _desc_blocks(st_, flash + 1, h["final_index"]) if x
        ]
        assert 0 not in stored and last not in stored
        for i in range(h["final_index"]):  # before the final phase block 0 has the flash-only GPT
            if (0, 0) in st_.locations(i) and i:
                gpt = ptable.parse_gpt(bytes_reader(_payload(r, st_, i)), layout.total_sectors, 512)
                assert [e.name for e in gpt.entries] == ["BOOTFW", "EFIESP"], i
        blk0 = _payload(r, st_, h["flash_only_index"])
        assert blk0[66 * 512 : 66 * 512 + 4096] == boot[:4096]  # the loader rides along
        final0 = _payload(r, st_, h["final_index"])
        assert final0[66 * 512 :] == blk0[66 * 512 :]
        final = ptable.parse_gpt(bytes_reader(final0), layout.total_sectors, 512)
        assert [e.name for e in final.entries] == ["BOOTFW", "EFIESP", "MainOS", "Data"]
        backup = _payload(r, st_, st_.descriptor_count - 1)
        assert st_.locations(st_.descriptor_count - 1) == [(2, 0)]
        tail_in_block = layout.offset(layout.partition("Data")) + len(data) - last * BS
        assert backup[tail_in_block - 4096 : tail_in_block] == data[-4096:]
        assert backup[-512:-504] == b"EFI PART"


@pytest.mark.parametrize("style", ["mbr", "gpt"])
def test_raw_partitions_at_sector_2_and_66_build(tmp_path, style):
    """Two raw loaders inside block 0 (i.MX6 SPL at sector 2, an i.MX8M-style image at 66):
    every chunk-0 write carries both, the FFU passes the strict rules and replays to the disk."""
    gpt = style == "gpt"
    raw = VENDOR if gpt else "0x4d"
    first = 40 if gpt else 2  # the GPT entry array ends at sector 33
    layout = DiskLayout(
        style,
        512,
        BS,
        64 * MIB,
        (
            PlacedPartition("SPL", raw, first, 66 - first, required_to_flash=True),
            PlacedPartition("BOOTLOADER", raw, 66, 4000, required_to_flash=True),
            PlacedPartition("MainOS", BASIC if gpt else "0x07", 8 * MIB, 32 * MIB, filesystem="NTFS"),
        ),
        platform_ids=("Contoso.Imx.Board",),
    )
    images = images_for(layout, tmp_path)
    out, _ = _roundtrip(tmp_path, layout, images)
    spl, loader = images["SPL"].read_bytes(), images["BOOTLOADER"].read_bytes()
    with ffu.FfuReader(out) as r:
        st_ = r.stores[0]
        _strict_check(st_)
        writes = [i for i in range(1, st_.descriptor_count) if (0, 0) in st_.locations(i)]
        assert writes == [st_.header["flash_only_index"], st_.header["final_index"]]
        for i in writes:
            blk = _payload(r, st_, i)
            assert blk[first * 512 : 66 * 512] == spl[: (66 - first) * 512]
            assert blk[66 * 512 :] == loader[: BS - 66 * 512]
        # BOOTLOADER's last sectors (66 + 4000 = 4066 → block 15) are stored as phase-2 data
        phase2 = [x[0][1] for x in _desc_blocks(st_, 1, st_.header["flash_only_index"])]
        assert phase2 == list(range(1, (66 + 4000) * 512 // BS + 1))


def test_disk_end_locations(tmp_path):
    """DISK_END index i = disk − (i + 1) × bs; readers reject indices beyond the disk."""
    layout = gpt_layout()
    images = images_for(layout, tmp_path)
    out, got = _roundtrip(tmp_path, layout, images)
    read = lambda o, n: got.read_bytes()[o : o + n]  # noqa: E731
    back = ptable.parse_gpt(read, layout.total_sectors, 512, backup=True)
    assert back.my_lba == layout.total_sectors - 1 and len(back.entries) == 4
    with ffu.FfuReader(out) as r:
        st_ = r.stores[0]
        assert st_.disk_offset(2, 0) == layout.total_bytes - BS
        # initial descriptor: LocationCount, BlockCount, (BEGIN, 0), (END, 0) → END's index at +20
        end_index_at = st_.offset + st_.header_length + 20
    data = bytearray(out.read_bytes())
    struct.pack_into("<I", data, end_index_at, layout.total_bytes // BS)  # one past the last block
    out.write_bytes(bytes(data))
    with pytest.raises(FFUError, match="outside the 1024-block disk"):
        ffu.FfuReader(out)


def test_descriptor_area_never_ends_on_block_boundary(tmp_path):
    """A full first chunk: 248 + 24 + 16 × (8172 + 3) = 131072 exactly; the writer adds a LocationCount-0
    descriptor so Microsoft's reader does not skip a block."""
    n = (2 << 30) // 512
    layout = DiskLayout(
        "gpt",
        512,
        BS,
        n,
        (PlacedPartition("Data", BASIC, 2048, 8200 * 256, filesystem="NTFS"),),
        platform_ids=("Edge.Board",),
    )
    img = tmp_path / "data.img"
    with open(img, "wb") as f:
        f.truncate(8200 * BS)
        for b in range(8172):
            f.seek(b * BS)
            f.write(b"\x01")
    out = tmp_path / "edge.ffu"
    res = ffu.write_ffu(out, layout, {"Data": img})
    assert res.data_blocks == 8172 and res.descriptors == 8172 + 4 + 1
    assert res.signature == _block_reference(out)
    with ffu.FfuReader(out) as r:
        st_ = r.stores[0]
        assert st_.header["write_descriptor_length"] == 24 + 16 * 8175 + 8
        assert (st_.meta_end - st_.offset) % BS == 8
        pads = [i for i in range(st_.descriptor_count) if st_.locations(i) == []]
        assert pads == [st_.header["final_index"] - 1]
        assert r.payload_offset == st_.offset + 2 * BS
        assert r.verify().ok
        got = r.to_raw(tmp_path / "got.raw")
    assert _cmp(got, diskimage.assemble_raw(layout, {"Data": img}, tmp_path / "exp.raw"))


def test_only_defined_gpt_entries(tmp_path):
    layout = gpt_layout()
    images = images_for(layout, tmp_path)
    out, got = _roundtrip(tmp_path, layout, images, only_defined_gpt_entries=True)
    assert "OnlyAllocateDefinedGptEntries = True" in ffu.FfuReader(out).manifest_text
    gpt = ptable.parse_gpt(lambda o, n: got.read_bytes()[o : o + n], layout.total_sectors, 512)
    assert gpt.entry_count == 32


def test_v2_two_stores(tmp_path):
    a, b = gpt_layout(), mbr_layout()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    ia, ib = images_for(a, tmp_path / "a"), images_for(b, tmp_path / "b", seed=7)
    out = tmp_path / "multi.ffu"
    ffu.write_ffu(
        out, stores=[ffu.FfuStore(a, ia), ffu.FfuStore(b, ib, device_path=ffu.DEVICE_PATH_UFS_LUN0)]
    )
    with ffu.FfuReader(out) as r:
        assert r.verify().ok
        s1, s2 = r.stores
        assert (s1.header["major"], s1.num_stores, s1.device_path) == (2, 2, ffu.DEVICE_PATH_EMMC_USER)
        assert (s2.header["store_index"], s2.device_path) == (2, ffu.DEVICE_PATH_UFS_LUN0)
        assert s1.header["store_payload_size"] == BS * s1.descriptor_count
        assert s2.payload_offset == s1.payload_offset + BS * s1.descriptor_count
        assert s1.offset < s2.offset < s1.payload_offset
        assert _get(s2.manifest, "DevicePath") == ffu.DEVICE_PATH_UFS_LUN0
        assert _get(s2.manifest, "IsMainOSStore") == "False" and len(s2.partitions) == 6
        for k, (lay, imgs) in enumerate(((a, ia), (b, ib))):
            got = r.to_raw(tmp_path / f"got{k}.raw", store=k)
            assert _cmp(got, diskimage.assemble_raw(lay, imgs, tmp_path / f"exp{k}.raw"))
        with pytest.raises(FFUError, match="store 3 does not exist"):
            r.to_raw(tmp_path / "x.raw", store=2)


def _get(d, key):
    return ffu.lookup(d, key)


# ----------------------------------------------------------------------------- tampering / signing


def _flip(path, offset, mask=0x01):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ mask]))


def test_tampered_hash_table_and_catalog(worked):
    path, _, _ = worked
    _flip(path, 32 + 328 + 32 * 5 + 3)  # hash table entry of chunk 5
    res = ffu.FfuReader(path).verify()
    assert any(p.startswith("chunk 5 ") for p in res.problems)
    assert any("HashTable.blob digest does not match" in p for p in res.problems)
    _flip(path, 32 + 328 + 32 * 5 + 3)  # undo
    assert ffu.FfuReader(path).verify().ok
    table = path.read_bytes()[360:712]
    digest_at = path.read_bytes().index(hashlib.sha1(table).digest())
    assert 32 <= digest_at < 360
    _flip(path, digest_at + 7)
    res = ffu.FfuReader(path).verify()
    assert res.problems == ["catalog: HashTable.blob digest does not match the hash table (SHA-1)"]


def _test_signer():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "FFU Test Signer (TEST ONLY)")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(4242)
        .not_valid_before(datetime(2019, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2049, 1, 1, tzinfo=UTC))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .sign(key, hashes.SHA256())
    )
    acert = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))

    def sign(cat: bytes, extra_certs: int = 0) -> bytes:
        attrs = cms.CMSAttributes(
            [
                cms.CMSAttribute({"type": "content_type", "values": [catalog.OID_CTL]}),
                cms.CMSAttribute(
                    {
                        "type": "signing_time",
                        "values": [cms.Time({"utc_time": datetime(2020, 1, 1, tzinfo=UTC)})],
                    }
                ),
                cms.CMSAttribute(
                    {
                        "type": "message_digest",
                        "values": [hashlib.sha256(catalog.signed_content(cat)).digest()],
                    }
                ),
            ]
        )
        signature = key.sign(attrs.dump(), padding.PKCS1v15(), hashes.SHA256())
        si = cms.SignerInfo(
            {
                "version": "v1",
                "sid": cms.SignerIdentifier(
                    {
                        "issuer_and_serial_number": {
                            "issuer": acert.issuer,
                            "serial_number": acert.serial_number,
                        }
                    }
                ),
                "digest_algorithm": {"algorithm": "sha256"},
                "signed_attrs": attrs,
                "signature_algorithm": {"algorithm": "rsassa_pkcs1v15"},
                "signature": signature,
            }
        )
        return catalog.attach_signature(cat, signer_infos=[si], certificates=[acert] * (1 + extra_certs))

    return sign, cert


def _signature_check(roots=None):
    """The catalog signature check the CLI passes to `FfuReader.verify` (from the signing layer)."""

    def check(der: bytes, signers: list[str]) -> list[str]:
        return catalog_signature_problems(der, roots, where="catalog", signers=signers)

    return check


@pytest.fixture(scope="module")
def signer():
    return _test_signer()


def test_signed_catalog_verifies_and_tamper_is_named(tmp_path, signer):
    sign, cert = signer
    layout = worked_layout()
    img = sparse_image(tmp_path / "d.img", 4096 * 512, [(0, 4096)])
    out = tmp_path / "signed.ffu"
    res = ffu.write_ffu(out, layout, {"Data": img}, sign_catalog=sign)
    assert res.catalog_size > 328
    assert res.signature == _block_reference(out)
    with ffu.FfuReader(out) as r:
        v = r.verify(catalog_check=_signature_check([cert]))
        assert v.ok and v.signed, v.problems
        lid = catalog.parse_catalog(r.catalog).list_identifier
        at = 32 + r.catalog.index(lid)
    _flip(out, at + 3)  # inside the signed CTL
    v = ffu.FfuReader(out).verify(catalog_check=_signature_check())
    assert not v.ok and any(p.startswith("catalog: messageDigest does not match") for p in v.problems)


def test_signed_catalog_growing_across_a_chunk_moves_the_body(tmp_path, signer):
    """The provisional signed catalog is small; the final one is >128 KiB (many certificates):
    the image body moves by a whole chunk and everything still verifies and round-trips."""
    sign, cert = signer
    calls = []

    def growing(cat: bytes) -> bytes:
        calls.append(len(cat))
        return sign(cat, extra_certs=0 if len(calls) == 1 else 200)

    layout = worked_layout()
    img = sparse_image(tmp_path / "d.img", 4096 * 512, [(0, 4096), (5 * BS, 100)])
    out = tmp_path / "moved.ffu"
    res = ffu.write_ffu(out, layout, {"Data": img}, sign_catalog=growing)
    assert len(calls) == 2 and res.catalog_size > BS
    assert res.signature == _block_reference(out)  # the body moved: still signed from the hash table
    with ffu.FfuReader(out) as r:
        assert r.image_offset == 2 * BS and r.size == res.size == 2 * BS + 2 * BS + 6 * BS
        v = r.verify(catalog_check=_signature_check([cert]))
        assert v.ok, v.problems
        got = r.to_raw(tmp_path / "got.raw")
    assert _cmp(got, diskimage.assemble_raw(layout, {"Data": img}, tmp_path / "exp.raw"))


# ----------------------------------------------------------------------------- hostile input


@pytest.mark.parametrize(
    "cut",
    [
        0,
        10,
        31,
        32,
        200,
        712,
        0x20000,
        0x20010,
        0x20100,
        0x40000 + 100,
        0x40000 + 300,
        0x60000,
        0x60000 + 5,
        0x180000 - 1,
    ],
)
def test_truncated_ffu_is_ffuerror(worked, cut):
    path, _, _ = worked
    data = path.read_bytes()
    path.write_bytes(data[:cut])
    with pytest.raises(FFUError):
        ffu.FfuReader(path)


def test_extra_bytes_are_ffuerror(worked):
    path, _, _ = worked
    with open(path, "ab") as f:
        f.write(b"\0")
    with pytest.raises(FFUError, match="extra bytes"):
        ffu.FfuReader(path)


STORE = 0x40000
DESC = STORE + 248


@pytest.mark.parametrize(
    "offset, fmt, value, message",
    [
        (24, "<I", 0xFFFFFFFF, "catalog size"),
        (28, "<I", 0xFFFFFFE0, "beyond the end"),
        (28, "<I", 33, "multiple of 32"),
        (16, "<I", 0, "chunk size"),
        (20, "<I", 1, "algorithm"),
        (0, "<I", 31, "not an FFU"),
        (0x20000, "<I", 28, "unsupported"),
        (0x20010, "<I", 0xFFFFFFFF, "manifest length"),
        (0x20010, "<I", 0x170000, "beyond the end"),
        (0x20014, "<I", 64, "chunk size"),
        (STORE + 4, "<H", 7, "unsupported"),
        (STORE + 204, "<I", 0, "block size"),
        (STORE + 204, "<I", 1 << 31, "block size"),
        (STORE + 208, "<I", 0xFFFFFFFF, "cannot fit"),
        (STORE + 212, "<I", 0xFFFFFFFF, "beyond the end"),
        (STORE + 220, "<I", 0x7FFFFFFF, "beyond the end"),
        (STORE + 212, "<I", 160, "take 152 bytes, header says 160"),
        (DESC, "<I", 0xFFFFFFFF, "claims"),
        (DESC + 4, "<I", 0, "BlockCount 0"),
        (DESC + 4, "<I", 0xFFFFFFFF, "more payload"),
        (DESC + 8, "<I", 5, "method 5"),
        (DESC + 24 + 12, "<I", 0xFFFFFFF0, "outside"),
    ],
)
def test_hostile_fields_are_ffuerror(worked, offset, fmt, value, message):
    path, _, _ = worked
    data = bytearray(path.read_bytes())
    struct.pack_into(fmt, data, offset, value)
    path.write_bytes(bytes(data))
    with pytest.raises(FFUError, match=message):
        ffu.FfuReader(path)


def test_hostile_manifest_disk_size(worked, tmp_path):
    path, _, _ = worked
    data = path.read_bytes()
    for old, new, message in [
        (b"MinSectorCount                = 8192", b"MinSectorCount                = 8193", "not a multiple"),
        (
            b"MinSectorCount                = 8192",
            b"MinSectorCount                = abcd",
            "disk size unknown",
        ),
        (b"SectorSize                    = 512", b"SectorSize                    = 0x0", "disk size unknown"),
    ]:
        path.write_bytes(data.replace(old, new))
        with ffu.FfuReader(path) as r:
            assert not r.verify().ok
            with pytest.raises(FFUError, match=message):
                r.to_raw(tmp_path / "x.raw")
            assert "partition table" in r.info()
        assert not (tmp_path / "x.raw").exists()
    path.write_bytes(data.replace(b"Version           = 2.0", b"Version           = 3.0"))
    assert any("Version is '3.0'" in p for p in ffu.FfuReader(path).verify().problems)
    path.write_bytes(data.replace(b"[Store]", b"[Image]"))
    problems = ffu.FfuReader(path).verify().problems
    assert any("unexpected sections ['Image']" in p for p in problems)
    old, new = b"UEFI              = True", b"version           = 2.0 "
    assert len(old) == len(new)
    path.write_bytes(data.replace(old, new))
    with pytest.raises(FFUError, match="repeated"):
        ffu.FfuReader(path)


_WORKED_BYTES: dict[str, bytes] = {}


def _worked_bytes(tmp_path_factory) -> bytes:
    if "b" not in _WORKED_BYTES:
        d = tmp_path_factory.mktemp("fuzzsrc")
        img = sparse_image(d / "data.img", 4096 * 512, [(b * BS, 1000) for b in (0, 1, 2, 3, 12)], seed=8)
        ffu.write_ffu(
            d / "w.ffu", worked_layout(), {"Data": img}, os_version="10.0.17763.1", description="synthetic"
        )
        _WORKED_BYTES["b"] = (d / "w.ffu").read_bytes()
    return _WORKED_BYTES["b"]


_HOT = st.one_of(st.integers(0, 719), st.integers(0x20000, 0x20000 + 620), st.integers(STORE, STORE + 400))


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(edits=st.lists(st.tuples(_HOT, st.integers(0, 255)), min_size=1, max_size=4))
def test_fuzzed_headers_only_raise_ffuerror(tmp_path_factory, edits):
    data = bytearray(_worked_bytes(tmp_path_factory))
    for pos, value in edits:
        data[pos] = value
    d = tmp_path_factory.mktemp("fuzz")
    path = d / "f.ffu"
    path.write_bytes(bytes(data))
    try:
        with ffu.FfuReader(path) as r:
            r.info()
            r.verify()
            r.to_raw(d / "out.raw")
    except FFUError:
        pass


def test_not_an_ffu_and_cli(tmp_path, worked, capsys):
    junk = tmp_path / "junk.ffu"
    junk.write_bytes(b"hello" * 100)
    assert ffu_cli.main(["info", str(junk)]) == 1
    assert "not an FFU" in capsys.readouterr().err
    assert ffu_cli.main(["info", str(tmp_path / "missing.ffu")]) == 1
    path, _, _ = worked
    assert ffu_cli.main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "GPT  disk GUID {ae420040-13dd-41f2-ae7f-0dc35854c8d7}" in out and "Data" in out
    assert ffu_cli.main(["verify", str(path)]) == 0
    assert "OK (11 chunks" in capsys.readouterr().out
    assert ffu_cli.main(["to-raw", str(path), str(tmp_path / "r.raw")]) == 0
    assert (tmp_path / "r.raw").stat().st_size == 4 << 20
    _flip(path, 0x20000 + 3 * BS)
    assert ffu_cli.main(["verify", str(path)]) == 1
    assert "chunk 3 " in capsys.readouterr().err


# ----------------------------------------------------------------------------- writer rules


def test_writer_rejects_bad_inputs(tmp_path):
    base = worked_layout()
    out = tmp_path / "x.ffu"

    def lay(**kw):
        fields = dict(
            style=base.style,
            sector_size=512,
            chunk_size=BS,
            total_sectors=8192,
            partitions=base.partitions,
            platform_ids=base.platform_ids,
        )
        fields.update(kw)
        return DiskLayout(**fields)

    cases = [
        (lay(platform_ids=tuple(f"Vendor.Family.Product{i:03}" for i in range(8))), "191"),
        (lay(platform_ids=()), "platform ID"),
        (lay(chunk_size=65536), "ChunkSize"),
        (lay(total_sectors=8192 + 8), "multiple of 128 KiB"),
        (lay(platform_ids=("Bäd",)), "ASCII"),
    ]
    for layout, message in cases:
        with pytest.raises(FFUError, match=message):
            ffu.write_ffu(out, layout, {})
    with pytest.raises(FFUError, match="ASCII"):
        ffu.write_ffu(out, base, {}, description="a\nb = c")
    with pytest.raises(FFUError, match="a.b.c.d"):
        ffu.write_ffu(out, base, {}, os_version="10.0")
    with pytest.raises(FFUError, match="does not have"):
        ffu.write_ffu(out, base, {"MainOS": tmp_path})
    with pytest.raises(FFUError, match="device path"):
        ffu.write_ffu(out, stores=[ffu.FfuStore(base, {}), ffu.FfuStore(base, {})])
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_manifest_forms():
    lay = gpt_layout()
    text = ffu.build_manifest([ffu.FfuStore(lay, {})], description="line one\nline two").decode()
    assert "Description       = line one\r\nline two\r\n" in text
    parsed = ffu.parse_manifest(text)
    assert parsed[0][1]["Description"] == "line one\nline two"
    assert [n for n, _ in parsed] == [
        "FullFlash",
        "Store",
        "Partition",
        "Partition",
        "Partition",
        "Partition",
    ]
    data = parsed[-1][1]
    assert data["UseAllSpace"] == "true" and "TotalSectors" not in data and data["ClusterSize"] == "16384"
    assert parsed[3][1]["Bootable"] == "True" and parsed[3][1]["RequiredToFlash"] == "True"
    assert parsed[4][1]["AttachDriveLetter"] == "False" and "RequiredToFlash" not in parsed[4][1]
    assert parsed[0][1]["DevicePlatformId1"] == "*"


def _block_reference(path) -> str:
    """blocksig's definition, from the file's bytes: an oracle for what the writer computed in passing."""
    data = Path(path).read_bytes()
    h = hashlib.sha256(blocksig.TAG)
    for i in range(0, len(data), 128 << 10):  # the definition's 128 KiB chunks, spelt out here
        h.update(hashlib.sha256(data[i : i + (128 << 10)]).digest())
    h.update(len(data).to_bytes(8, "little"))
    return h.hexdigest()


def test_deterministic_and_thread_independent(tmp_path):
    layout = gpt_layout()
    images = images_for(layout, tmp_path)
    a, b = tmp_path / "a.ffu", tmp_path / "b.ffu"
    ra = ffu.write_ffu(a, layout, images, threads=True)
    rb = ffu.write_ffu(b, layout, images, threads=False)
    assert filecmp.cmp(a, b, shallow=False)
    assert ra.signature == rb.signature == _block_reference(a) == blocksig.file_signature(a)
    ffu.write_ffu(b, layout, images, this_update=datetime(2021, 5, 5, tzinfo=UTC))
    assert not filecmp.cmp(a, b, shallow=False)  # the catalog time is an input


def test_progress_reports_monotonic_to_total(tmp_path):
    layout = gpt_layout()
    images = images_for(layout, tmp_path)
    calls = []
    res = ffu.write_ffu(tmp_path / "p.ffu", layout, images, progress=lambda d, t: calls.append((d, t)))
    done = [d for d, _ in calls]
    assert done == sorted(done) and calls[-1][0] == calls[-1][1] == res.size - BS


def test_big_sparse_disk_memory_and_speed(tmp_path):
    """~2 GiB disk with a few MB of data: small tracemalloc peak, seconds not minutes."""
    n = (2 << 30) // 512
    _, last, _ = ptable.gpt_geometry(n, 512)
    base = gpt_layout()
    parts = base.partitions[:3] + (
        PlacedPartition("Data", BASIC, 80 * MIB, last - 80 * MIB + 1, filesystem="NTFS"),
    )
    layout = DiskLayout("gpt", 512, BS, n, parts, platform_ids=base.platform_ids)
    images = images_for(layout, tmp_path)
    out = tmp_path / "big.ffu"
    tracemalloc.start()
    t = time.perf_counter()
    res = ffu.write_ffu(out, layout, images)
    elapsed = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 64 << 20 and elapsed < 10, (peak, elapsed)
    assert res.size < 64 << 20  # only blocks holding data are stored
    with ffu.FfuReader(out) as r:
        tracemalloc.start()
        got = r.to_raw(tmp_path / "got.raw")
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 64 << 20
    assert got.stat().st_size == 2 << 30 and got.stat().st_blocks * 512 < 32 << 20
    assert _cmp(got, diskimage.assemble_raw(layout, images, tmp_path / "exp.raw"))


def test_stored_blocks_are_exactly_data_and_tables(tmp_path):
    layout = mbr_layout()
    images = images_for(layout, tmp_path)
    out = tmp_path / "m.ffu"
    ffu.write_ffu(out, layout, images)
    want = {idx for idx, _ in diskimage.iter_data_blocks(layout, images, BS)}
    with ffu.FfuReader(out) as r:
        st_ = r.stores[0]
        got = {x for i in range(1, st_.descriptor_count) for _, x in st_.locations(i)}
        h = st_.header
    assert got == want
    tables = set(ptable.build_tables(layout).blocks(BS)) | set(
        ptable.build_tables(layout, flash_only=True).blocks(BS)
    )
    # wipe + data (never a table block) + flash-only + final table blocks
    assert os.path.getsize(out) == 3 * BS + BS * (
        1 + len(want - tables) + h["flash_only_count"] + h["final_count"]
    )


# ----------------------------------------------------------------------------- error kinds


@pytest.mark.parametrize("cut", [10, 0x20010, 0x40000 + 300, 0x180000 - 1])
def test_truncated_ffu_is_a_format_error(worked, cut):
    path, _, _ = worked
    path.write_bytes(path.read_bytes()[:cut])
    with pytest.raises(FormatError):
        ffu.FfuReader(path)


def test_damaged_manifest_is_a_format_error(worked):
    path, _, _ = worked
    old, new = b"UEFI              = True", b"version           = 2.0 "
    path.write_bytes(path.read_bytes().replace(old, new))
    with pytest.raises(FormatError, match="repeated"):
        ffu.FfuReader(path)


def test_bad_settings_are_config_errors(tmp_path, worked):
    base = worked_layout()
    out = tmp_path / "x.ffu"
    with pytest.raises(ConfigError, match="a.b.c.d"):
        ffu.write_ffu(out, base, {}, os_version="10.0")
    with pytest.raises(ConfigError, match="device path"):
        ffu.write_ffu(out, stores=[ffu.FfuStore(base, {}), ffu.FfuStore(base, {})])
    with pytest.raises(ConfigError, match="ASCII"):
        ffu.write_ffu(out, base, {}, description="caf\u00e9")
    path, _, _ = worked
    with ffu.FfuReader(path) as r, pytest.raises(ConfigError, match="store 2 does not exist"):
        r.to_raw(tmp_path / "x.raw", store=1)


def test_signer_returning_nothing_is_a_signing_error(tmp_path):
    img = sparse_image(tmp_path / "d.img", 4096 * 512, [(0, 4096)])
    with pytest.raises(SigningError, match="returned no catalog"):
        ffu.write_ffu(tmp_path / "x.ffu", worked_layout(), {"Data": img}, sign_catalog=lambda cat: b"")


def test_catalog_signature_is_checked_only_through_catalog_check(tmp_path, signer):
    sign, cert = signer
    img = sparse_image(tmp_path / "d.img", 4096 * 512, [(0, 4096)])
    out = tmp_path / "signed.ffu"
    ffu.write_ffu(out, worked_layout(), {"Data": img}, sign_catalog=sign)
    calls = []

    def check(der, signers):
        calls.append(der)
        return _signature_check([cert])(der, signers)

    with ffu.FfuReader(out) as r:
        v = r.verify(catalog_check=check)
        assert v.ok and v.signed and v.signers, v.problems
        assert calls == [r.catalog]
        lid = catalog.parse_catalog(r.catalog).list_identifier
        at = 32 + r.catalog.index(lid)
    _flip(out, at + 3)  # inside the signed CTL: the hash table still matches, the signature does not
    unchecked = ffu.FfuReader(out).verify()
    assert unchecked.ok and unchecked.signed and unchecked.signers == []
    checked = ffu.FfuReader(out).verify(catalog_check=_signature_check([cert]))
    assert not checked.ok and any(p.startswith("catalog: messageDigest") for p in checked.problems)
