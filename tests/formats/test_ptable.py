"""Partition tables: checked by Debian's sgdisk/fdisk/sfdisk (independent readers), by our own
bounded parsers, and against hostile table bytes.

Also home of the small synthetic layouts and sparse partition images the disk-image and FFU
tests share."""

import json
import random
import struct
import subprocess
import uuid
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ffuforge.errors import ConfigError, FFUError, FormatError
from ffuforge.formats import diskimage, ptable
from ffuforge.formats.disklayout import DiskLayout, PlacedPartition

from oracles import needs

MIB = 2048  # 512-byte sectors per MiB
BASIC = "{ebd0a0a2-b9e5-4433-87c0-68b6b72699c7}"
ESP = "{c12a7328-f81f-11d2-ba4b-00a0c93ec93b}"
VENDOR = "{2a3e5f3c-8d6e-4b4c-9f7b-0c1d2e3f4a5b}"  # opaque firmware partition type
BS = 131072

needs_sgdisk = needs("sgdisk")
needs_fdisk = needs("fdisk", "sfdisk")


# ----------------------------------------------------------------------------- shared builders


def gpt_layout(*, data_to_end: bool = False, bootloader_at: int | None = None) -> DiskLayout:
    """128 MiB GPT: BOOTFW (raw, RequiredToFlash) + EFIESP (RequiredToFlash) + MainOS + Data.
    `data_to_end`: Data runs to the last usable LBA (its last block shares the backup GPT's block);
    `bootloader_at`: BOOTFW starts at this sector (66 puts it in the first 128 KiB block)."""
    total = 128 * MIB
    first, last, _ = ptable.gpt_geometry(total, 512)
    data_start = 80 * MIB
    data_count = (last - data_start + 1) if data_to_end else 40 * MIB
    bl = bootloader_at if bootloader_at is not None else 1 * MIB
    return DiskLayout(
        "gpt",
        512,
        BS,
        total,
        (
            PlacedPartition("BOOTFW", VENDOR, bl, 1 * MIB, required_to_flash=True),
            PlacedPartition(
                "EFIESP", ESP, 2 * MIB, 8 * MIB, filesystem="FAT", bootable=True, required_to_flash=True
            ),
            PlacedPartition(
                "MainOS",
                BASIC,
                12 * MIB,
                64 * MIB,
                filesystem="NTFS",
                cluster_size=4096,
                attributes={"AttachDriveLetter": False},
            ),
            PlacedPartition(
                "Data",
                BASIC,
                data_start,
                data_count,
                filesystem="NTFS",
                cluster_size=16384,
                attributes={"UseAllSpace": True},
            ),
        ),
        platform_ids=("Contoso.Test.Board", "*"),
    )


def mbr_layout() -> DiskLayout:
    """256 MiB MBR with six partitions: three primaries, slot 4 extended, three logicals; a raw
    BOOTLOADER at sector 2 (inside the first block, as on i.MX)."""
    return DiskLayout(
        "mbr",
        512,
        BS,
        256 * MIB,
        (
            PlacedPartition("BOOTLOADER", "0x4d", 2, 4096, required_to_flash=True),
            PlacedPartition(
                "EFIESP", "0x0c", 8 * MIB, 16 * MIB, filesystem="FAT", bootable=True, required_to_flash=True
            ),
            PlacedPartition("MainOS", "0x07", 24 * MIB, 64 * MIB, filesystem="NTFS"),
            PlacedPartition("MMOS", "0x0c", 96 * MIB, 16 * MIB, filesystem="FAT32"),
            PlacedPartition("CrashDump", "0x0c", 120 * MIB, 8 * MIB, filesystem="FAT32"),
            PlacedPartition("Data", "0x07", 136 * MIB, 120 * MIB - 1, filesystem="NTFS"),
        ),
        platform_ids=("Contoso.Mbr.Board",),
    )


def gpt4k_layout() -> DiskLayout:
    """64 MiB GPT with 4 KiB sectors (sector numbers in 4 KiB units)."""
    s = 256  # 4 KiB sectors per MiB
    return DiskLayout(
        "gpt",
        4096,
        BS,
        64 * s,
        (
            PlacedPartition("EFIESP", ESP, 1 * s, 8 * s, filesystem="FAT", required_to_flash=True),
            PlacedPartition("MainOS", BASIC, 16 * s, 24 * s, filesystem="NTFS"),
            PlacedPartition("Data", BASIC, 40 * s, 20 * s, filesystem="NTFS"),
        ),
        platform_ids=("Contoso.4Kn.Board",),
    )


def sparse_image(path: Path, size: int, extents: list[tuple[int, int]], seed: int = 0) -> Path:
    """A sparse file of `size` bytes with deterministic random data at (offset, length) ranges."""
    rng = random.Random(seed)
    with open(path, "wb") as f:
        f.truncate(size)
        for off, n in extents:
            f.seek(off)
            f.write(rng.randbytes(n))
    return path


def images_for(layout: DiskLayout, tmp: Path, seed: int = 1) -> dict[str, Path]:
    """Synthetic partition images: sparse FS-like images, a dense raw image for raw partitions,
    data at unaligned offsets, at the very start and at the very end."""
    out = {}
    for i, p in enumerate(layout.partitions):
        size = layout.size(p)
        if p.filesystem is None:  # raw: dense, shorter than the partition, not block-sized
            path = tmp / f"{p.name}.bin"
            path.write_bytes(random.Random(seed + i).randbytes(min(size, 300_000)))
        else:
            ext = [(0, 64 * 1024), (size // 3 + 5000, 300_000), (size - 4096, 4096)]
            path = sparse_image(tmp / f"{p.name}.img", size, ext, seed + i)
        out[p.name] = path
    return out


def file_reader(path: Path):
    f = open(path, "rb")  # noqa: SIM115 - test helper, closed with the process

    def read(offset: int, length: int) -> bytes:
        f.seek(offset)
        return f.read(length)

    return read


def bytes_reader(data: bytes):
    return lambda offset, length: data[offset : offset + length]


def sfdisk_json(path: Path) -> dict:
    out = subprocess.run(["sfdisk", "--json", str(path)], check=True, capture_output=True, text=True).stdout
    return json.loads(out)["partitiontable"]


# ----------------------------------------------------------------------------- GPT


@needs_sgdisk
def test_gpt_accepted_by_sgdisk(tmp_path):
    layout = gpt_layout()
    raw = diskimage.assemble_raw(layout, {}, tmp_path / "disk.raw")
    v = subprocess.run(["sgdisk", "-v", str(raw)], capture_output=True, text=True)
    assert v.returncode == 0 and "No problems found" in v.stdout, v.stdout + v.stderr
    p = subprocess.run(["sgdisk", "-p", str(raw)], capture_output=True, text=True, check=True).stdout
    assert "Disk identifier (GUID): AE420040-13DD-41F2-AE7F-0DC35854C8D7" in p
    assert "First usable sector is 34, last usable sector is 262110" in p
    rows = [line.split() for line in p.splitlines() if line.strip()[:1].isdigit() and len(line.split()) >= 6]
    got = [(int(r[1]), int(r[2]), r[-1]) for r in rows]
    assert got == [(q.first_sector, q.first_sector + q.sector_count - 1, q.name) for q in layout.partitions]
    for i, q in enumerate(layout.partitions, 1):
        info = subprocess.run(
            ["sgdisk", "-i", str(i), str(raw)], capture_output=True, text=True, check=True
        ).stdout
        assert f"Partition GUID code: {q.type.strip('{}').upper()}" in info
        assert f"Partition unique GUID: {str(ptable.partition_guid(layout, q)).upper()}" in info


@needs_fdisk
def test_gpt_seen_by_sfdisk(tmp_path):
    layout = gpt_layout()
    raw = diskimage.assemble_raw(layout, {}, tmp_path / "disk.raw")
    t = sfdisk_json(raw)
    assert t["label"] == "gpt" and t["id"] == "AE420040-13DD-41F2-AE7F-0DC35854C8D7"
    assert [(p["start"], p["size"], p["type"].lower(), p["name"]) for p in t["partitions"]] == [
        (q.first_sector, q.sector_count, q.type.strip("{}"), q.name) for q in layout.partitions
    ]
    # MainOS asked for no drive letter; the final table clears that bit (as ImgGen writes it)
    assert all("attrs" not in p for p in t["partitions"])


def test_gpt_parse_roundtrip_and_backup():
    layout = gpt_layout()
    tables = ptable.build_gpt(layout)
    disk = bytearray(layout.total_bytes)
    tables.overlay(memoryview(disk), 0)
    read = bytes_reader(bytes(disk))
    prim = ptable.parse_gpt(read, layout.total_sectors, 512)
    back = ptable.parse_gpt(read, layout.total_sectors, 512, backup=True)
    assert prim.entries == back.entries and prim.disk_guid == ptable.NORMALISED_DISK_GUID
    assert (prim.alternate_lba, back.alternate_lba, back.entries_lba) == (
        layout.total_sectors - 1,
        1,
        layout.total_sectors - 33,
    )
    assert [(e.name, e.first_lba, e.last_lba, "{" + str(e.type_guid) + "}") for e in prim.entries] == [
        (p.name, p.first_sector, p.first_sector + p.sector_count - 1, p.type) for p in layout.partitions
    ]
    assert [r.offset for r in tables.regions] == [0, layout.total_bytes - 33 * 512]
    assert tables.blocks(BS) == [0, layout.total_bytes // BS - 1]
    assert ptable.read_partitions(read, layout.total_sectors, 512)[0] == "gpt"


def test_gpt_flash_only_table_and_attributes():
    base = gpt_layout()
    parts = list(base.partitions)
    parts[2] = PlacedPartition(
        "MainOS",
        BASIC,
        12 * MIB,
        64 * MIB,
        required_to_flash=True,
        attributes={"AttachDriveLetter": False, "ReadOnly": True},
    )
    parts[3] = PlacedPartition(
        "Data", BASIC, 80 * MIB, 40 * MIB, attributes={"AttachDriveLetter": False, "Hidden": True}
    )
    layout = DiskLayout(
        "gpt", 512, BS, base.total_sectors, tuple(parts), disk_id="{01234567-89ab-cdef-0123-456789abcdef}"
    )
    flash = ptable.build_gpt(layout, flash_only=True)
    assert [r.kind for r in flash.regions] == ["primary"]
    gpt = ptable.parse_gpt(bytes_reader(flash.regions[0].data), layout.total_sectors, 512)
    assert gpt.disk_guid == uuid.UUID("01234567-89ab-cdef-0123-456789abcdef")
    assert [e.name for e in gpt.entries] == ["BOOTFW", "EFIESP", "MainOS"]  # Data zeroed, slots kept
    assert [e.index for e in gpt.entries] == [0, 1, 2]
    mainos = gpt.entries[2]
    assert mainos.attributes == ptable.GPT_ATTR_NO_DRIVE_LETTER | ptable.GPT_ATTR_READ_ONLY
    final = ptable.build_gpt(layout)
    disk = bytearray(layout.total_bytes)
    final.overlay(memoryview(disk), 0)
    entries = ptable.parse_gpt(bytes_reader(bytes(disk)), layout.total_sectors, 512).entries
    assert entries[2].attributes == ptable.GPT_ATTR_READ_ONLY  # MainOS: no-drive-letter cleared
    assert entries[3].attributes == ptable.GPT_ATTR_NO_DRIVE_LETTER | ptable.GPT_ATTR_HIDDEN


def test_gpt_ids_fixed_and_derived():
    layout = gpt_layout()
    fixed = PlacedPartition("MainOS", BASIC, 12 * MIB, 64 * MIB, id="{11111111-2222-3333-4444-555555555555}")
    assert ptable.partition_guid(layout, fixed) == uuid.UUID("11111111-2222-3333-4444-555555555555")
    a = ptable.partition_guid(layout, layout.partitions[0])
    assert a == ptable.partition_guid(gpt_layout(), gpt_layout().partitions[0])  # stable
    assert len({ptable.partition_guid(layout, p) for p in layout.partitions}) == 4
    # mixed-endian GUID encoding on disk
    entry = ptable.build_gpt(layout).regions[0].data[1024 : 1024 + 16]
    assert entry == bytes.fromhex("3c5f3e2a6e8d4c4b9f7b0c1d2e3f4a5b")


def test_only_defined_gpt_entries():
    layout = gpt_layout()
    tables = ptable.build_gpt(layout, entry_count=32)
    gpt = ptable.parse_gpt(bytes_reader(tables.regions[0].data), layout.total_sectors, 512)
    assert (gpt.entry_count, gpt.first_usable_lba) == (32, 10)


@needs_fdisk
def test_gpt_4k_sectors_seen_by_fdisk(tmp_path):
    layout = gpt4k_layout()
    raw = diskimage.assemble_raw(layout, {}, tmp_path / "disk4k.raw")
    out = subprocess.run(
        ["fdisk", "-b", "4096", "-l", "-o", "Device,Start,End,Sectors,Type-UUID,Name", str(raw)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "corrupt" not in (out.stdout + out.stderr).lower()
    assert "Sector size (logical/physical): 4096 bytes" in out.stdout
    rows = [line.split() for line in out.stdout.splitlines() if line.startswith(str(raw))]
    assert [(int(r[1]), int(r[3]), r[4].lower(), r[5]) for r in rows] == [
        (p.first_sector, p.sector_count, p.type.strip("{}"), p.name) for p in layout.partitions
    ]
    gpt = ptable.parse_gpt(file_reader(raw), layout.total_sectors, 4096)
    assert (gpt.first_usable_lba, gpt.last_usable_lba, gpt.entries_lba) == (6, layout.total_sectors - 6, 2)
    assert ptable.parse_gpt(file_reader(raw), layout.total_sectors, 4096, backup=True).entries == gpt.entries


# ----------------------------------------------------------------------------- MBR


@needs_fdisk
def test_mbr_extended_seen_by_fdisk(tmp_path):
    layout = mbr_layout()
    raw = diskimage.assemble_raw(layout, {}, tmp_path / "mbr.raw")
    t = sfdisk_json(raw)
    assert t["label"] == "dos" and t["id"] == "0xae420040"
    got = [(p["start"], p["size"], int(p["type"], 16), p.get("bootable", False)) for p in t["partitions"]]
    parts = layout.partitions
    want = [(p.first_sector, p.sector_count, int(p.type, 16), p.bootable) for p in parts[:3]]
    ext_start = parts[3].first_sector - 1
    want.append((ext_start, parts[-1].first_sector + parts[-1].sector_count - ext_start, 0x0F, False))
    want += [(p.first_sector, p.sector_count, int(p.type, 16), p.bootable) for p in parts[3:]]
    assert got == want
    verify = subprocess.run(["sfdisk", "--verify", str(raw)], capture_output=True, text=True)
    assert verify.returncode == 0 and "No errors detected" in verify.stdout, verify.stdout + verify.stderr
    # CHS as fdisk decodes it from our bytes
    out = subprocess.run(
        ["fdisk", "-l", "-o", "Device,Start,Start-C/H/S,End-C/H/S", str(raw)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = {
        int(r[1]): (r[2], r[3])
        for r in (line.split() for line in out.splitlines() if line.startswith(str(raw)))
    }
    assert rows[2] == ("0/0/3", "0/65/3")  # LBA 2 → C0 H0 S3; LBA 4097 → 4097 = 65*63 + 2
    assert rows[16384] == ("1/5/5", "3/15/12")
    # our reader agrees
    sig, mine = ptable.read_mbr(file_reader(raw), layout.total_sectors, 512)
    assert sig == 0xAE420040
    assert [(p.first_lba, p.sectors, p.type, p.bootable) for p in mine] == want
    assert [p.number for p in mine] == [1, 2, 3, 4, 5, 6, 7]


def test_mbr_four_partitions_all_primary_and_flash_only():
    base = mbr_layout()
    layout = DiskLayout("mbr", 512, BS, base.total_sectors, base.partitions[:4], disk_id="0x12345678")
    tables = ptable.build_mbr(layout)
    assert [r.kind for r in tables.regions] == ["mbr"]
    sig, parts = ptable.read_mbr(bytes_reader(tables.regions[0].data), layout.total_sectors, 512)
    assert sig == 0x12345678 and [p.number for p in parts] == [1, 2, 3, 4]
    flash = ptable.build_mbr(layout, flash_only=True)
    _, fparts = ptable.read_mbr(bytes_reader(flash.regions[0].data), layout.total_sectors, 512)
    assert [(p.number, p.first_lba) for p in fparts] == [(1, 2), (2, 8 * MIB)]  # required ones, slots kept
    # six partitions: flash-only drops the (non-required) logicals and the extended slot
    flash6 = ptable.build_mbr(mbr_layout(), flash_only=True)
    assert [r.kind for r in flash6.regions] == ["mbr"]


def test_chs_encoding():
    assert ptable.chs(0) == b"\x00\x01\x00"
    assert ptable.chs(2048) == bytes((32, 33, 0))  # what fdisk writes for sector 2048
    assert ptable.chs(1023 * 255 * 63 + 254 * 63 + 62) == b"\xfe\xff\xff"
    assert ptable.chs(1024 * 255 * 63) == b"\xfe\xff\xff"
    c = 700
    assert ptable.chs(c * 255 * 63) == bytes((0, 1 | ((c >> 2) & 0xC0), c & 0xFF))


# ----------------------------------------------------------------------------- layout checks


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda p: p[:2] + (PlacedPartition("X", BASIC, 2 * MIB + 5, 10),) + p[2:], "overlaps"),
        (
            lambda p: p[:3] + (PlacedPartition("Data", BASIC, 80 * MIB, 48 * MIB),),
            "outside the GPT usable area",
        ),
        (lambda p: (PlacedPartition("Early", BASIC, 20, 10),) + p[1:], "outside the GPT usable area"),
        (lambda p: p[:3] + (PlacedPartition("Data", "0x07", 80 * MIB, 8),), "not a GUID"),
        (lambda p: p[:3] + (PlacedPartition("EFIESP", BASIC, 80 * MIB, 8),), "listed twice"),
        (lambda p: p[:3] + (PlacedPartition("N" * 37, BASIC, 80 * MIB, 8),), "36 characters"),
    ],
)
def test_check_layout_rejects_gpt(mutate, message):
    base = gpt_layout()
    bad = DiskLayout("gpt", 512, BS, base.total_sectors, mutate(base.partitions))
    with pytest.raises(FFUError, match=message):
        ptable.build_gpt(bad)


def test_check_layout_rejects_mbr():
    parts = list(mbr_layout().partitions)
    parts[4] = PlacedPartition("CrashDump", "0x0c", 112 * MIB, 8 * MIB)  # directly after MMOS: no EBR room
    with pytest.raises(FFUError, match="free sector before each logical"):
        ptable.build_mbr(DiskLayout("mbr", 512, BS, 256 * MIB, tuple(parts)))
    parts = list(mbr_layout().partitions)
    parts[0] = PlacedPartition("BOOTLOADER", "0x05", 2, 4096)
    with pytest.raises(FFUError, match="cannot be used"):
        ptable.build_mbr(DiskLayout("mbr", 512, BS, 256 * MIB, tuple(parts)))
    with pytest.raises(FFUError, match="outside the disk"):
        ptable.build_mbr(DiskLayout("mbr", 512, BS, 100 * MIB, mbr_layout().partitions))
    with pytest.raises(FFUError, match="too many|do not fit"):
        many = tuple(PlacedPartition(f"P{i}", BASIC, 34 + i, 1) for i in range(33))
        ptable.build_gpt(DiskLayout("gpt", 512, BS, 128 * MIB, many), entry_count=32)


# ----------------------------------------------------------------------------- hostile input


def _gpt_disk(layout=None) -> bytearray:
    layout = layout or gpt_layout()
    disk = bytearray(layout.total_bytes)
    ptable.build_gpt(layout).overlay(memoryview(disk), 0)
    return disk


def _set_header(disk: bytearray, **fields) -> None:
    """Rewrite primary header fields and fix its CRC, so only the field checks can object."""
    h = ptable.GPT_HEADER.parse(bytes(disk[512:604]))
    for k, v in fields.items():
        h[k] = v
    h.header_crc32 = 0
    raw = bytearray(ptable.GPT_HEADER.build(h))
    raw[16:20] = struct.pack("<I", zlib.crc32(raw))
    disk[512:604] = raw


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"entry_count": 0xFFFFFFFF}, "entry count"),
        ({"entry_size": 0}, "entry size"),
        ({"entry_size": 200}, "entry size"),
        ({"entry_size": 1 << 31}, "entry size"),
        ({"entries_lba": 1 << 40}, "outside the disk"),
        ({"entries_lba": 262143}, "outside the disk"),
        ({"header_size": 10_000}, "header size"),
        ({"my_lba": 7}, "found at"),
        ({"first_usable_lba": 500_000}, "usable range"),
        ({"last_usable_lba": 1 << 60}, "usable range"),
        ({"alternate_lba": 1 << 63}, "alternate"),
        ({"entries_crc32": 1}, "entry array CRC"),
    ],
)
def test_parse_gpt_rejects_hostile_headers(fields, message):
    disk = _gpt_disk()
    _set_header(disk, **fields)
    with pytest.raises(FFUError, match=message):
        ptable.parse_gpt(bytes_reader(bytes(disk)), 128 * MIB, 512)


def test_parse_gpt_rejects_bad_entries_and_truncation():
    disk = _gpt_disk()
    with pytest.raises(FFUError, match="truncated"):
        ptable.parse_gpt(bytes_reader(bytes(disk[:1000])), 128 * MIB, 512)
    bad = bytearray(disk)
    bad[520] ^= 1  # header byte: CRC mismatch
    with pytest.raises(FFUError, match="header CRC32"):
        ptable.parse_gpt(bytes_reader(bytes(bad)), 128 * MIB, 512)
    # an entry beyond the usable range, with both CRCs fixed
    bad = bytearray(disk)
    struct.pack_into("<Q", bad, 1024 + 40, 1 << 40)  # entry 0 last LBA
    entries = bytes(bad[1024 : 1024 + 128 * 128])
    _set_header(bad, entries_crc32=zlib.crc32(entries))
    with pytest.raises(FFUError, match="outside the usable range"):
        ptable.parse_gpt(bytes_reader(bytes(bad)), 128 * MIB, 512)
    with pytest.raises(FFUError, match="no 'EFI PART'"):
        ptable.parse_gpt(bytes_reader(bytes(len(disk))), 128 * MIB, 512)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 91), st.integers(0, 255)), min_size=1, max_size=6), st.booleans())
def test_parse_gpt_fuzzed_headers_never_crash(edits, fix_crc):
    disk = _small_gpt_disk()
    for pos, value in edits:
        disk[512 + pos] = value
    if fix_crc:
        raw = bytearray(disk[512:604])
        raw[16:20] = b"\0\0\0\0"
        disk[528:532] = struct.pack("<I", zlib.crc32(raw))
    try:
        gpt = ptable.parse_gpt(bytes_reader(bytes(disk)), 8192, 512)
    except FFUError:
        return
    assert all(
        gpt.first_usable_lba <= e.first_lba <= e.last_lba <= gpt.last_usable_lba < 8192 for e in gpt.entries
    )


_SMALL = None


def _small_gpt_disk() -> bytearray:
    global _SMALL
    if _SMALL is None:
        layout = DiskLayout("gpt", 512, BS, 8192, (PlacedPartition("Data", BASIC, 2048, 4096),))
        _SMALL = _gpt_disk(layout)
    return bytearray(_SMALL)


def _mbr(entries) -> bytes:
    e = [
        dict(status=0, chs_first=b"\0\0\0", type=t, chs_last=b"\0\0\0", lba_first=a, sectors=n)
        for t, a, n in entries
    ]
    e += [dict(status=0, chs_first=b"\0\0\0", type=0, chs_last=b"\0\0\0", lba_first=0, sectors=0)] * (
        4 - len(e)
    )
    return ptable.MBR_SECTOR.build(
        dict(bootcode=bytes(440), disk_signature=0, reserved=0, entries=e, boot_signature=b"\x55\xaa")
    )


def test_read_mbr_rejects_hostile_chains():
    n = 1 << 20
    disk = bytearray(4 << 20)
    disk[0:512] = _mbr([(0x0F, 100, 1000)])
    disk[100 * 512 : 101 * 512] = _mbr([(0x07, 1, 10), (0x05, 0, 20)])  # link back to itself
    with pytest.raises(FFUError, match="loops"):
        ptable.read_mbr(bytes_reader(bytes(disk)), n, 512)
    disk[100 * 512 : 101 * 512] = _mbr([(0x07, 1, 10), (0x05, 5000, 20)])  # link outside the extended
    with pytest.raises(FFUError, match="outside the extended"):
        ptable.read_mbr(bytes_reader(bytes(disk)), n, 512)
    disk[100 * 512 : 101 * 512] = _mbr([(0x07, 1, 100_000)])
    with pytest.raises(FFUError, match="outside the extended"):
        ptable.read_mbr(bytes_reader(bytes(disk)), n, 512)
    disk[0:512] = _mbr([(0x07, 100, 1 << 31)])
    with pytest.raises(FFUError, match="outside the disk"):
        ptable.read_mbr(bytes_reader(bytes(disk)), n, 512)
    disk[510] = 0
    with pytest.raises(FFUError, match="55 AA"):
        ptable.read_mbr(bytes_reader(bytes(disk)), n, 512)
    with pytest.raises(FFUError, match="truncated"):
        ptable.read_mbr(bytes_reader(b"\0" * 100), n, 512)
    # a long (but finite) chain is cut off
    disk = bytearray(4 << 20)
    disk[0:512] = _mbr([(0x0F, 1, 7000)])
    for i in range(1, 7000, 2):
        disk[i * 512 : (i + 1) * 512] = _mbr([(0x07, 1, 1), (0x05, i + 1, 2)])
    with pytest.raises(FFUError, match="too long"):
        ptable.read_mbr(bytes_reader(bytes(disk)), n, 512)


# ----------------------------------------------------------------------------- error kinds


def test_damaged_tables_are_format_errors():
    disk = _gpt_disk()
    with pytest.raises(FormatError, match="truncated"):
        ptable.parse_gpt(bytes_reader(bytes(disk[:1000])), 128 * MIB, 512)
    bad = bytearray(disk)
    bad[520] ^= 1
    with pytest.raises(FormatError, match="header CRC32"):
        ptable.parse_gpt(bytes_reader(bytes(bad)), 128 * MIB, 512)
    bad = bytearray(disk)
    bad[510] = 0
    with pytest.raises(FormatError, match="55 AA"):
        ptable.read_partitions(bytes_reader(bytes(bad)), 128 * MIB, 512)


def test_bad_layouts_are_config_errors():
    base = gpt_layout()
    twice = base.partitions[:3] + (PlacedPartition("EFIESP", BASIC, 80 * MIB, 8),)
    with pytest.raises(ConfigError, match="listed twice"):
        ptable.build_gpt(DiskLayout("gpt", 512, BS, base.total_sectors, twice))
    not_guid = base.partitions[:3] + (PlacedPartition("Data", "0x07", 80 * MIB, 8),)
    with pytest.raises(ConfigError, match="not a GUID"):
        ptable.build_gpt(DiskLayout("gpt", 512, BS, base.total_sectors, not_guid))
    parts = list(mbr_layout().partitions)
    parts[0] = PlacedPartition("BOOTLOADER", "0x05", 2, 4096)
    with pytest.raises(ConfigError, match="cannot be used"):
        ptable.build_mbr(DiskLayout("mbr", 512, BS, 256 * MIB, tuple(parts)))
    with pytest.raises(ConfigError, match="neither 'gpt' nor 'mbr'"):
        ptable.build_tables(DiskLayout("apm", 512, BS, base.total_sectors, base.partitions))
    with pytest.raises(ConfigError, match="not a hex number"):
        ptable.build_mbr(DiskLayout("mbr", 512, BS, 256 * MIB, mbr_layout().partitions, disk_id="0xZZ"))
