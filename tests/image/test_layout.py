"""DeviceLayout/OEMDevicePlatform models and partition placement (spec device-layout.md)."""

import re
import uuid

import pytest

from ffuforge.cli import layout as layout_cli
from ffuforge.errors import ConfigError, FFUError
from ffuforge.image.layout import (
    GPT_DISK_GUID,
    MBR_DISK_ID,
    check_partitions,
    compute_layout,
    format_layout,
    load_device_layout,
    load_device_platform,
    mbr_plan,
)

NS = 'xmlns="http://schemas.microsoft.com/embedded/2004/10/ImageUpdate"'
ESP_GPT = "{c12a7328-f81f-11d2-ba4b-00a0c93ec93b}"
BASIC = "{ebd0a0a2-b9e5-4433-87c0-68b6b72699c7}"
KIT = "addonkit/17763-v7/Workspace/Common/Packages"


def part(name, type_, **kw):
    body = "".join(f"<{k}>{v}</{k}>" for k, v in kw.items())
    return f"<Partition><Name>{name}</Name><Type>{type_}</Type>{body}</Partition>"


def layout_xml(*parts, tag="IoTUAP", header=None):
    head = (
        header
        if header is not None
        else (
            "<SectorSize>512</SectorSize><ChunkSize>128</ChunkSize>"
            "<DefaultPartitionByteAlignment>0x200000</DefaultPartitionByteAlignment>"
        )
    )
    vt = f"<VersionTag>{tag}</VersionTag>" if tag else ""
    return (
        f'<?xml version="1.0"?>\n<DeviceLayout {NS}>\n<Partitions>\n'
        + "\n".join(parts)
        + f"\n</Partitions>\n{head}{vt}\n</DeviceLayout>\n"
    ).encode()


def platform_xml(sectors=7372800, ids="<DevicePlatformIDs><ID>*</ID></DevicePlatformIDs>", extra=""):
    return (
        f'<?xml version="1.0"?>\n<OEMDevicePlatform {NS}>\n<MinSectorCount>{sectors}</MinSectorCount>\n'
        f"{ids}\n{extra}</OEMDevicePlatform>\n"
    ).encode()


def iot_parts(style="gpt", mainos_free="1048576", extra=()):
    t = (ESP_GPT, BASIC, BASIC) if style == "gpt" else ("0x0c", "0x07", "0x07")
    return [
        part("EFIESP", t[0], FileSystem="FAT", TotalSectors=65536, Bootable="true", RequiredToFlash="true"),
        part(
            "MainOS",
            t[1],
            FileSystem="NTFS",
            MinFreeSectors=mainos_free,
            ByteAlignment="0x800000",
            ClusterSize="0x1000",
        ),
        *extra,
        part(
            "Data",
            t[2],
            FileSystem="NTFS",
            UseAllSpace="true",
            ByteAlignment="0x800000",
            ClusterSize="0x4000",
        ),
    ]


def load(*parts, **kw):
    return load_device_layout(layout_xml(*parts, **kw), "DL.xml")


def plat(**kw):
    return load_device_platform(platform_xml(**kw), "P.xml")


def error(fn, *args, **kw) -> FFUError:
    with pytest.raises(FFUError) as ei:
        fn(*args, **kw)
    text = str(ei.value)
    assert "\n" not in text
    return ei.value


# ----------------------------------------------------------------------------------- corpus


def _corpus_pairs(corpus):
    layouts = sorted(corpus.rglob("DeviceLayout.xml"))
    assert len(layouts) >= 40
    for path in layouts:
        pf = path.with_name("OEMDevicePlatform.xml")
        yield path, pf if pf.exists() else None


def test_every_corpus_layout_loads_and_lays_out(corpus):
    platforms = sorted(corpus.rglob("OEMDevicePlatform.xml"))
    assert len(platforms) >= 35
    for pf in platforms:
        p = load_device_platform(pf, str(pf))
        assert p.min_sector_count in (3773440, 7372800, 15155200)
        assert p.platform_ids == ("*",) and p.compressed_partitions == ("MainOS",)
    eight_gb = load_device_platform(platform_xml(15155200), "8GB.xml")
    for path, pf in _corpus_pairs(corpus):
        layout = load_device_layout(path, str(path))
        content = {"MainOS": 900 << 20, "EFIESP": 8 << 20}
        if layout.find("PLAT"):
            content["PLAT"] = 100_000
        if layout.find("UEFI"):
            content["UEFI"] = 1_500_000  # raw image, 2 MiB partition
        for platform in ([load_device_platform(pf, str(pf))] if pf else []) + [eight_gb, None]:
            disk = compute_layout(layout, platform, content)
            _check_disk_invariants(layout, disk)
            if platform:
                assert disk.total_sectors == platform.min_sector_count
            assert format_layout(disk).count("\n") == len(disk.partitions) + 3


def _check_disk_invariants(layout, disk):
    assert disk.style == layout.style
    assert [p.name for p in disk.partitions] == [p.name for p in layout.partitions]
    first = 34 if disk.style == "gpt" else 1
    last = disk.total_sectors - (34 if disk.style == "gpt" else 1)
    end = first
    for src, p in zip(layout.partitions, disk.partitions, strict=True):
        assert p.first_sector >= end and p.sector_count > 0
        assert p.first_sector + p.sector_count - 1 <= last
        if src.offset_in_sectors is not None:
            assert p.first_sector == src.offset_in_sectors
        else:
            align = (src.byte_alignment or layout.default_alignment) // 512
            assert p.first_sector % align == 0
        if src.total_sectors:
            assert p.sector_count == src.total_sectors
        end = p.first_sector + p.sector_count
    assert (disk.total_sectors * 512) % disk.chunk_size == 0
    if disk.style == "gpt":
        assert disk.disk_id == GPT_DISK_GUID
        assert all(re.fullmatch(r"\{[0-9a-f-]{36}\}", p.id) for p in disk.partitions)
        assert len({p.id for p in disk.partitions}) == len(disk.partitions)
    else:
        assert disk.disk_id == MBR_DISK_ID and all(p.id is None for p in disk.partitions)


def test_gpt4gb_exact_placement(corpus):
    d = corpus / KIT / "DeviceLayout.GPT4GB"
    layout = load_device_layout(d / "DeviceLayout.xml")
    platform = load_device_platform(d / "OEMDevicePlatform.xml")
    disk = compute_layout(layout, platform, {})
    # EFIESP: first usable LBA 34 aligned up to 0x200000 B = 4096 sectors.
    # MainOS: 69632 aligned up to 0x800000 B = 16384 sectors -> 81920; size = NTFS metadata estimate
    #   (512 MiB volume / 200 + 4 MiB = 13435 sectors) + 1048576 free = 1062011 -> up to 16384: 1064960.
    # Data: 1146880 (already aligned); last usable 7372800 - 34 = 7372766 -> 6225887 sectors, down to
    #   16384: 379 * 16384 = 6209536.
    assert [(p.name, p.first_sector, p.sector_count) for p in disk.partitions] == [
        ("EFIESP", 4096, 65536),
        ("MainOS", 81920, 1064960),
        ("Data", 1146880, 6209536),
    ]
    assert disk.total_sectors == 7372800 and disk.sector_size == 512 and disk.chunk_size == 131072
    assert disk.platform_ids == ("*",)
    esp = disk.partition("efiesp")
    assert esp.type == ESP_GPT and esp.bootable and esp.required_to_flash and esp.filesystem == "FAT"
    assert disk.partition("Data").cluster_size == 0x4000 and disk.partition("MainOS").cluster_size == 0x1000
    assert esp.id == "{8183040a-8b44-4592-92f7-c6d9ee0560f7}"  # ImgGen's fixed EFIESP ID
    assert disk.partition("MainOS").id == "{a76b8ce2-0187-4c13-8fca-8651c9b0620a}"
    assert disk.partition("Data").id == "{" + str(uuid.uuid5(uuid.UUID(GPT_DISK_GUID), "data")) + "}"

    # 1 GiB of MainOS payload (file count unknown): + 1/16 slack = 1088 MiB; NTFS metadata for a
    # 1536 MiB volume = 8053063 + 4194304 B; total 1153098055 B = 2252145 sectors; + 1048576 free
    # = 3300721 -> 202 * 16384 = 3309568. Data at 3391488: 3981279 usable -> 242 * 16384.
    disk = compute_layout(layout, platform, {"MainOS": 1 << 30})
    assert [(p.first_sector, p.sector_count) for p in disk.partitions] == [
        (4096, 65536),
        (81920, 3309568),
        (3391488, 3964928),
    ]


def test_mbr4gb_exact_placement(corpus):
    d = corpus / KIT / "DeviceLayout.MBR4GB"
    layout = load_device_layout(d / "DeviceLayout.xml")
    disk = compute_layout(layout, load_device_platform(d / "OEMDevicePlatform.xml"), {})
    # MBR: first usable sector 1 -> 4096; MainOS as for GPT; Data takes sectors up to N - 1:
    # 7372800 - 1146880 = 6225920 = 380 * 16384 exactly, so the disk is used to its last sector.
    assert [(p.name, p.type, p.first_sector, p.sector_count) for p in disk.partitions] == [
        ("EFIESP", "0x0c", 4096, 65536),
        ("MainOS", "0x07", 81920, 1064960),
        ("Data", "0x07", 1146880, 6225920),
    ]
    assert disk.style == "mbr" and disk.disk_id == "0xae420040"
    assert disk.partition("EFIESP").bootable
    assert mbr_plan(disk).primary == disk.partitions and mbr_plan(disk).logical == ()


def test_qualcomm_layout_keeps_attributes(corpus):
    path = (
        corpus
        / "addonkit/17763-v7/Workspace/Source-arm/BSP/QCDB410C/Packages/QCDB410C.DeviceLayout/DeviceLayout.xml"
    )
    layout = load_device_layout(path)
    assert len(layout.partitions) == 31 and layout.style == "gpt"
    disk = compute_layout(layout, plat(sectors=15155200), {"MainOS": 1 << 30})
    assert disk.partition("MainOS").attributes == {"AttachDriveLetter": False}
    assert disk.partition("SBL1").bootable and disk.partition("SBL1").filesystem is None
    assert disk.partition("BACKUP_SBL1").type == "{a3381699-350c-465e-bd5d-fa3ab901a39a}"
    assert disk.partition("DPP").first_sector == 4096
    assert "!AttachDriveLetter" in format_layout(disk)


# --------------------------------------------------------------------------------- placement


def test_minimal_disk_without_platform():
    disk = compute_layout(load(*iot_parts()), None, {"MainOS": 100 << 20})
    data = disk.partitions[-1]
    assert data.sector_count == 16384  # 8 MiB, one alignment unit
    assert disk.total_sectors % 256 == 0
    assert disk.total_sectors - 34 >= data.first_sector + data.sector_count
    assert disk.total_sectors - 34 - (data.first_sector + data.sector_count) < 256 + 16384


def test_platform_reserves_grow_mainos():
    layout = load(*iot_parts())
    base = compute_layout(layout, plat(), {"MainOS": 0})
    extra = compute_layout(
        layout,
        plat(
            extra="<AdditionalMainOSFreeSectorsRequest>16384"
            "</AdditionalMainOSFreeSectorsRequest>"
            "<MainOSRTCDataReservedSectors>0x4000</MainOSRTCDataReservedSectors>"
        ),
        {"MainOS": 0},
    )
    assert extra.partition("MainOS").sector_count == base.partition("MainOS").sector_count + 32768


def test_file_count_refines_estimate():
    layout = load(*iot_parts())
    a = compute_layout(layout, plat(), {"MainOS": 600 << 20})
    b = compute_layout(layout, plat(), {"MainOS": 600 << 20}, content_files={"MainOS": 200_000})
    assert b.partition("MainOS").sector_count > a.partition("MainOS").sector_count


def test_imx_raw_bootloader_offsets():
    mbr = load(
        part("BOOTLOADER", "0x4d", TotalSectors=4096, OffsetInSectors=2, RequiredToFlash="true"),
        *iot_parts("mbr"),
    )
    disk = compute_layout(mbr, plat(), {"BOOTLOADER": 4096 * 512})
    assert [(p.name, p.first_sector) for p in disk.partitions][:2] == [("BOOTLOADER", 2), ("EFIESP", 8192)]
    assert disk.partition("BOOTLOADER").filesystem is None
    gpt = load(
        part(
            "BOOTLOADER", "{01234567-89ab-cdef-0123-456789abcdef}", TotalSectors=4000, OffsetInSectors="0x42"
        ),
        *iot_parts(),
    )
    disk = compute_layout(gpt, plat(), {})
    assert disk.partition("BOOTLOADER").first_sector == 66


def test_offset_in_sectors_zero_is_not_set():
    """DeviceLayout.xsd defaults OffsetInSectors to "0" and ImgGen places a 0 like an absent one;
    it used to fail as overlapping the partition table."""
    zero = load(part("BOOTLOADER", "0x4d", TotalSectors=4096, OffsetInSectors=0), *iot_parts("mbr"))
    none = load(part("BOOTLOADER", "0x4d", TotalSectors=4096), *iot_parts("mbr"))
    a, b = compute_layout(zero, plat(), {}), compute_layout(none, plat(), {})
    assert [(p.name, p.first_sector) for p in a.partitions] == [
        (p.name, p.first_sector) for p in b.partitions
    ]
    assert a.partition("BOOTLOADER").first_sector > 0
    assert zero.find("BOOTLOADER").offset_in_sectors is None
    # and, being "not set", it needs no fixed <TotalSectors>
    free = load(part("BOOTLOADER", "0x4d", MinFreeSectors=4096, OffsetInSectors=0), *iot_parts("mbr"))
    assert compute_layout(free, plat(), {}).partition("BOOTLOADER").first_sector > 0


def test_mbr_extended_partition_for_more_than_four():
    crash = part("CrashDump", "0x0C", FileSystem="FAT32", TotalSectors=1228800)
    layout = load(
        part("BOOTLOADER", "0x4d", TotalSectors=4096, OffsetInSectors=2), *iot_parts("mbr", extra=[crash])
    )
    disk = compute_layout(layout, plat(sectors=15155200), {"MainOS": 500 << 20})
    plan = mbr_plan(disk)
    assert [p.name for p in plan.primary] == ["BOOTLOADER", "EFIESP", "MainOS"]
    assert [(ebr, p.name) for ebr, p in plan.logical] == [
        (disk.partition("CrashDump").first_sector - 1, "CrashDump"),
        (disk.partition("Data").first_sector - 1, "Data"),
    ]
    main = disk.partition("MainOS")
    assert plan.extended_start >= main.first_sector + main.sector_count
    assert plan.extended_start + plan.extended_sectors == disk.total_sectors
    # A logical partition's EBR needs the sector before it: an OffsetInSectors flush against the
    # previous partition is refused.
    tight = load(
        part("A", "0x4d", TotalSectors=100, OffsetInSectors=1),
        part("B", "0x4d", TotalSectors=100, OffsetInSectors=101),
        part("C", "0x4d", TotalSectors=100, OffsetInSectors=201),
        part("D", "0x4d", TotalSectors=100, OffsetInSectors=301),
        part("E", "0x4d", TotalSectors=100, OffsetInSectors=401),
        tag=None,
    )
    e = error(compute_layout, tight, plat(sectors=4096), {})
    assert "partition D: <OffsetInSectors> 301 overlaps partition C" in str(e) and "EBR" in str(e)


def test_layout_ids_and_determinism():
    fixed = "{11111111-2222-3333-4444-555555555555}"
    layout = load(
        *iot_parts()[:2],
        part("Data", BASIC, FileSystem="NTFS", UseAllSpace="true", Id=fixed.upper()),
    )
    d1 = compute_layout(layout, plat(), {"MainOS": 123})
    d2 = compute_layout(layout, plat(), {"mainos": 123})
    assert d1 == d2
    assert d1.partition("Data").id == fixed
    assert not layout.warnings


def test_imggen_fixed_partition_ids():
    """MainOS/EFIESP/MMOS get ImgGen's normalised IDs (DD2FFU ImageConstants), also over a layout
    Id (with a warning); the match is by exact name as in NormalizeGptIds; a layout Id equal to a
    fixed one on another partition is refused."""
    mmos = part("MMOS", BASIC, FileSystem="FAT32", TotalSectors=4096000)
    own = "{11111111-2222-3333-4444-555555555555}"
    layout = load(
        *iot_parts()[:1],
        part("MainOS", BASIC, FileSystem="NTFS", MinFreeSectors=1048576, Id=own),
        mmos,
        iot_parts()[2],
    )
    disk = compute_layout(layout, plat(sectors=15155200), {})
    ids = {p.name: p.id for p in disk.partitions}
    assert ids["MainOS"] == "{a76b8ce2-0187-4c13-8fca-8651c9b0620a}"
    assert ids["EFIESP"] == "{8183040a-8b44-4592-92f7-c6d9ee0560f7}"
    assert ids["MMOS"] == "{27a47557-8243-4c8e-9d30-846844c29c52}"
    assert len(set(ids.values())) == 4
    assert len(layout.warnings) == 1 and "replaced by ImgGen's fixed ID" in layout.warnings[0]
    assert layout.warnings[0].startswith("DL.xml:")
    # ImgGen compares names ordinally: "mmos" is not normalised
    other = load(*iot_parts(extra=[part("mmos", BASIC, FileSystem="FAT32", TotalSectors=4096000)]))
    got = compute_layout(other, plat(sectors=15155200), {}).partition("mmos").id
    assert got == "{" + str(uuid.uuid5(uuid.UUID(GPT_DISK_GUID), "mmos")) + "}"
    e = error(
        load,
        *iot_parts()[:2],
        part(
            "Data", BASIC, FileSystem="NTFS", UseAllSpace="true", Id="{A76B8CE2-0187-4C13-8FCA-8651C9B0620A}"
        ),
    )
    assert "also used by MainOS (ImgGen's fixed ID for it)" in str(e) and str(e).startswith("DL.xml:")


def test_sizes_and_numbers_in_hex_and_bool_forms():
    layout = load(
        part(
            "EFIESP", ESP_GPT, FileSystem="fat", TotalSectors="0x10000", Bootable="1", RequiredToFlash="TRUE"
        ),
        *iot_parts()[1:],
    )
    esp = layout.find("efiesp")
    assert esp.total_sectors == 65536 and esp.bootable and esp.required_to_flash and esp.filesystem == "FAT"


def test_warnings_for_small_mainos_free_space(corpus):
    layout = load(*iot_parts(mainos_free="262144"))
    assert any("below the kit's 1048576" in w for w in layout.warnings)
    assert layout.warnings[0].startswith("DL.xml:")
    gpt2 = corpus / "addonkit/v3.2-15063-pkgxml/Common/Packages/DeviceLayout.GPT2GB/DeviceLayout.xml"
    assert load_device_layout(gpt2).warnings


# -------------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    "parts, kw, message, line",
    [
        (
            (*iot_parts()[:2], part("Data", "0x07", FileSystem="NTFS", UseAllSpace="true")),
            {},
            "partition Data: <Type> 0x07 is MBR-style but partition EFIESP (line 4) is GPT-style",
            6,
        ),
        (
            (part("EFIESP", ESP_GPT, FileSystem="exFAT", TotalSectors=65536), *iot_parts()[1:]),
            {},
            "unknown <FileSystem> 'exFAT'",
            4,
        ),
        (
            (*iot_parts(), part("Extra", BASIC, FileSystem="NTFS", UseAllSpace="true")),
            {},
            "partitions Data and Extra both have UseAllSpace",
            7,
        ),
        (
            (iot_parts()[0], iot_parts()[2], iot_parts()[1]),
            {},
            "partition Data has UseAllSpace but is not the last",
            5,
        ),
        (
            (*iot_parts()[:2], part("mainos", BASIC, TotalSectors=10), iot_parts()[2]),
            {},
            "partition name mainos is used twice (also on line 5",
            6,
        ),
        (
            (
                part("EFIESP", ESP_GPT, FileSystem="FAT", TotalSectors=65536, MinFreeSectors=10),
                *iot_parts()[1:],
            ),
            {},
            "needs exactly one of <TotalSectors>, <MinFreeSectors>",
            4,
        ),
        ((part("EFIESP", ESP_GPT, FileSystem="FAT"), *iot_parts()[1:]), {}, "(got none)", 4),
        (
            (part("EFIESP", ESP_GPT, FileSystem="FAT", TotalSectors="12k"), *iot_parts()[1:]),
            {},
            "<TotalSectors> value '12k' is not a number",
            4,
        ),
        (
            (part("EFIESP", ESP_GPT, FileSystem="FAT", TotalSectors=65536, Bootable="yes"), *iot_parts()[1:]),
            {},
            "<Bootable> value 'yes' is not a boolean",
            4,
        ),
        (
            (part("EFIESP", ESP_GPT, FileSystem="FAT", TotalSectors=65536, TotalSector=1), *iot_parts()[1:]),
            {},
            "unknown element <TotalSector> in <Partition>",
            4,
        ),
        ((part("EFIESP", "FAT", TotalSectors=65536), *iot_parts()[1:]), {}, "neither an MBR type byte", 4),
        (
            (
                part(
                    "EFIESP",
                    ESP_GPT,
                    FileSystem="FAT",
                    TotalSectors=65536,
                    OffsetInSectors=1,
                    UseAllSpace="false",
                ),
                *iot_parts()[1:],
            ),
            {},
            "",
            None,
        ),
        (iot_parts()[1:], {}, "IoTUAP layouts need a EFIESP partition", 3),
        (
            (part("EFIESP", ESP_GPT, FileSystem="FAT", TotalSectors=32768), *iot_parts()[1:]),
            {},
            "partition EFIESP has 32768 sectors; IoT needs at least 65536",
            4,
        ),
        (iot_parts(mainos_free="100000"), {}, "<MinFreeSectors> 100000 is below the minimum 262144", 5),
        (
            (iot_parts()[0], part("MainOS", BASIC, FileSystem="FAT", MinFreeSectors=1048576), iot_parts()[2]),
            {},
            "partition MainOS must have <FileSystem>NTFS",
            5,
        ),
        (
            (*iot_parts()[:2], part("Data", BASIC, FileSystem="NTFS", TotalSectors=100)),
            {},
            "partition Data must have <UseAllSpace>true",
            6,
        ),
        (
            iot_parts(),
            {"header": "<SectorSize>4096</SectorSize>"},
            "<SectorSize> 4096: IoTUAP layouts require 512",
            8,
        ),
        ((part("P", "0x05", TotalSectors=10),), {"tag": None}, "MBR <Type> 0x05 is reserved", 4),
        ((part("P", "0x07", TotalSectors=10, Id=BASIC),), {"tag": None}, "<Id> only applies to GPT", 4),
        (
            (part("P", BASIC, TotalSectors=10, ByteAlignment=100),),
            {"tag": None},
            "must be a non-zero multiple",
            4,
        ),
        (
            (part("P", BASIC, TotalSectors=10, ClusterSize=4096),),
            {"tag": None},
            "<ClusterSize> needs a <FileSystem>",
            4,
        ),
        ((part("P" * 37, BASIC, TotalSectors=10),), {"tag": None}, "longer than 36 characters", 4),
    ],
)
def test_bad_layouts(parts, kw, message, line):
    if not message:  # OffsetInSectors with a fixed size is fine; this row checks UseAllSpace=false
        load(*parts, **kw)
        return
    e = error(load, *parts, **kw)
    assert message in e.message
    assert e.file == "DL.xml" and e.line == line


def test_no_version_tag_skips_iot_rules():
    layout = load(part("Boot", "0x0c", FileSystem="FAT", TotalSectors=2048), tag=None)
    disk = compute_layout(layout, None, {})
    assert disk.partitions[0].first_sector == 4096


def test_bad_xml_and_root():
    e = error(load_device_layout, b"<DeviceLayout><Partitions>", "x.xml")
    assert e.file == "x.xml" and "malformed XML" in e.message
    e = error(
        load_device_layout, b'<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY a "b">]>\n<DeviceLayout/>', "x.xml"
    )
    assert "DOCTYPE" in e.message
    e = error(load_device_layout, b"<Layout/>", "x.xml")
    assert "root element is <Layout>" in e.message
    e = error(load_device_layout, b'<DeviceLayout xmlns="urn:other"><Partitions/></DeviceLayout>', "x.xml")
    assert "namespace" in e.message
    e = error(
        load_device_layout, layout_xml(header="<SectorSize>512</SectorSize><SectorSize>512</SectorSize>"), "x"
    )
    assert "<SectorSize> given twice" in e.message
    e = error(load_device_layout, layout_xml(), "x")
    assert "lists no partition" in e.message
    e = error(load_device_layout, "/nonexistent/DeviceLayout.xml")
    assert "cannot read file" in e.message


@pytest.mark.parametrize(
    "kw, message, line",
    [
        ({"ids": ""}, "exactly one of them", 2),
        (
            {
                "ids": "<DevicePlatformIDs><ID>*</ID></DevicePlatformIDs><DevicePlatformID>x</DevicePlatformID>"
            },
            "exactly one of them",
            2,
        ),
        ({"ids": "<DevicePlatformIDs></DevicePlatformIDs>"}, "lists no <ID>", 4),
        (
            {"ids": "<DevicePlatformIDs><ID>Contoso.Board.\u00e9</ID></DevicePlatformIDs>"},
            "printable ASCII",
            4,
        ),
        (
            {
                "ids": "<DevicePlatformIDs>" + "<ID>" + "x" * 100 + "</ID>" * 1 + "<ID>" + "y" * 100 + "</ID>"
                "</DevicePlatformIDs>"
            },
            "longer than the FFU store header",
            4,
        ),
        (
            {"extra": "<MainOSRTCDataReservedSectors>204801</MainOSRTCDataReservedSectors>"},
            "exceeds 204800",
            5,
        ),
        ({"extra": "<Bogus/>"}, "unknown element <Bogus> in <OEMDevicePlatform>", 5),
        ({"sectors": "0"}, "must be greater than 0", 3),
    ],
)
def test_bad_platforms(kw, message, line):
    e = error(load_device_platform, platform_xml(**kw), "P.xml")
    assert message in e.message and e.file == "P.xml" and e.line == line


def test_single_platform_id_form():
    p = load_device_platform(platform_xml(ids="<DevicePlatformID>Contoso.Board.A</DevicePlatformID>"), "P")
    assert p.platform_ids == ("Contoso.Board.A",)


def test_layout_does_not_fit_disk():
    e = error(compute_layout, load(*iot_parts()), plat(sectors=1048576), {"MainOS": 100 << 20})
    assert "the layout does not fit the disk" in e.message and "Data" in e.message
    assert e.file == "P.xml" and e.line == 3
    e = error(compute_layout, load(*iot_parts()), plat(), {"MainOS": 3 << 30})
    assert "does not fit" in e.message
    # Fixed partitions alone larger than the disk.
    big = load(part("Big", BASIC, TotalSectors=10_000_000), tag=None)
    e = error(compute_layout, big, plat(), {})
    assert "partitions end at sector" in e.message


def test_min_sector_count_must_be_whole_chunks():
    e = error(compute_layout, load(*iot_parts()), plat(sectors=7372801), {})
    assert "not a multiple of the 128 KiB FFU block" in e.message and e.line == 3


def test_content_larger_than_fixed_partition():
    layout = load(part("BOOTLOADER", "0x4d", TotalSectors=4096, OffsetInSectors=2), *iot_parts("mbr"))
    compute_layout(layout, plat(), {"BOOTLOADER": 4096 * 512})
    e = error(compute_layout, layout, plat(), {"BOOTLOADER": 4096 * 512 + 1})
    assert "partition BOOTLOADER: content needs about 2097153 bytes" in e.message and e.line == 4
    e = error(compute_layout, layout, plat(), {"EFIESP": 32 << 20})
    assert "partition EFIESP: content needs about" in e.message and "file-system overhead" in e.message


def test_overlapping_offsets():
    layout = load(part("BOOT", BASIC, TotalSectors=100, OffsetInSectors=10), *iot_parts())
    e = error(compute_layout, layout, plat(), {})
    assert "partition BOOT: <OffsetInSectors> 10 overlaps the partition table" in e.message
    layout = load(
        part("A", BASIC, TotalSectors=100, OffsetInSectors=66),
        part("B", BASIC, TotalSectors=100, OffsetInSectors=100),
        *iot_parts(),
    )
    e = error(compute_layout, layout, plat(), {})
    assert "partition B: <OffsetInSectors> 100 overlaps partition A, which ends at sector 165" in e.message
    assert e.line == 5


def test_check_partitions():
    layout = load(*iot_parts())
    assert check_partitions(layout, ["mainos", "EFIESP"]) == ["MainOS", "EFIESP"]
    e = error(check_partitions, layout, [("MainOS", "a.xml", 1), ("PLAT", "pkg/P.wm.xml", 3)])
    assert str(e).startswith("pkg/P.wm.xml:3: partition PLAT is targeted by a package but DL.xml has no such")
    e = error(compute_layout, layout, plat(), {"CrashDump": 5})
    assert "partition CrashDump" in e.message and e.file == "DL.xml"


# ----------------------------------------------------------------------------------- error kinds


def test_bad_layout_xml_is_a_config_error():
    with pytest.raises(ConfigError, match="root element is <Layout>"):
        load_device_layout(b"<Layout/>", "x.xml")
    with pytest.raises(ConfigError, match="longer than 36 characters"):
        load(part("P" * 37, BASIC, TotalSectors=10), tag=None)


def test_iot_rule_is_a_config_error():
    parts = iot_parts()
    parts[0] = part("EFIESP", ESP_GPT, FileSystem="NTFS", TotalSectors=65536)
    with pytest.raises(ConfigError, match="partition EFIESP must have <FileSystem>FAT</FileSystem>"):
        load(*parts)


def test_bad_platform_and_sizing_are_config_errors():
    with pytest.raises(ConfigError, match="<MinSectorCount> must be greater than 0"):
        plat(sectors=0)
    with pytest.raises(ConfigError, match="not a multiple of the 128 KiB FFU block"):
        compute_layout(load(*iot_parts()), plat(sectors=7372801), {})
    with pytest.raises(ConfigError, match="partition PLAT is targeted by a package"):
        check_partitions(load(*iot_parts()), ["PLAT"])


# ------------------------------------------------------------------------------------------ CLI


def test_layout_main(tmp_path, capsys):
    (tmp_path / "DL.xml").write_bytes(layout_xml(*iot_parts(mainos_free="262144")))
    (tmp_path / "P.xml").write_bytes(platform_xml())
    rc = layout_cli.main(
        [
            str(tmp_path / "DL.xml"),
            "--platform",
            str(tmp_path / "P.xml"),
            "--content",
            "MainOS=800M",
            "--content",
            "EFIESP=0x1000",
        ]
    )
    out, err = capsys.readouterr()
    assert rc == 0
    assert out.splitlines()[0].startswith("GPT disk {ae420040-13dd-41f2-ae7f-0dc35854c8d7}: 7372800 sectors")
    assert re.search(
        r"^1\s+EFIESP\s+\{c12a7328-\S+\s+4096\s+65536\s+32\.0 MiB\s+FAT\s+-\s+bootable,flash$", out, re.M
    )
    assert "warning" in err and "262144" in err
    rc = layout_cli.main([str(tmp_path / "DL.xml"), "--content", "MainOS=lots"])
    assert rc == 2 and "--content 'MainOS=lots'" in capsys.readouterr().err
    rc = layout_cli.main([str(tmp_path / "DL.xml"), "--content", "Nope=1"])
    assert rc == 2 and "partition Nope" in capsys.readouterr().err
