"""WIM writer (formats/wim.py), checked with wimlib-imagex and 7-Zip as independent readers."""

import os
import re
import shutil
import subprocess
import time

import pytest

from ffuforge.errors import ConfigError
from ffuforge.formats.wim import WimEntry, filetime, write_wim

EPOCH = 1577836800  # 2020-01-01


def need(*tools):
    for t in tools:
        if not shutil.which(t):
            pytest.skip(f"{t} not installed")


def imagex(*args) -> str:
    return subprocess.run(
        ["wimlib-imagex", *map(str, args)], check=True, capture_output=True, text=True
    ).stdout


ENTRIES = [
    WimEntry("Windows/System32/drivers/sdhc.sys", b"MZ" + bytes(range(256)) * 40),
    WimEntry("Windows/System32/config"),  # an empty directory
    WimEntry("b.txt", b"x"),
    WimEntry("Windows\\System32\\same.dat", b"MZ" + bytes(range(256)) * 40),  # '\' works, content shared
]


def test_info_dir_and_apply_agree(tmp_path):
    need("wimlib-imagex")
    out = write_wim(
        tmp_path / "a.wim",
        ENTRIES,
        image_name="UpdateOS",
        image_description="update environment",
        image_properties={"WINDOWS/EDITIONID": "IoTUAP"},
        flags="9",
        boot=True,
        timestamp=EPOCH,
    )
    info = imagex("info", out.path)
    assert re.search(r"Compression:\s+LZX", info)
    assert re.search(r"Boot Index:\s+1", info)
    assert re.search(r"Name:\s+UpdateOS", info)
    assert re.search(r"Description:\s+update environment", info)
    assert re.search(r"Flags:\s+9", info)
    assert re.search(r"Edition ID:\s+IoTUAP", info)
    assert "Creation Time:          Wed Jan 01 00:00:00 2020 UTC" in info
    assert "Last Modification Time: Wed Jan 01 00:00:00 2020 UTC" in info
    assert f"GUID:           0x{out.guid.hex()}" in info
    listing = imagex("dir", out.path, 1).split()
    assert sorted(listing) == sorted(
        [
            "/",
            "/b.txt",
            "/Windows",
            "/Windows/System32",
            "/Windows/System32/config",
            "/Windows/System32/drivers",
            "/Windows/System32/drivers/sdhc.sys",
            "/Windows/System32/same.dat",
        ]
    )
    detailed = imagex("dir", out.path, 1, "--detailed")
    assert set(re.findall(r"(?:Creation|Last Write|Last Access) Time\s+= (.*)", detailed)) == {
        "Wed Jan 01 00:00:00 2020 UTC"
    }
    assert "Link Count          = 1" in detailed and "Link Count          = 2" not in detailed
    imagex("verify", out.path)
    dest = tmp_path / "applied"
    imagex("apply", out.path, 1, dest)
    assert (dest / "Windows/System32/drivers/sdhc.sys").read_bytes() == ENTRIES[0].data
    assert (dest / "Windows/System32/same.dat").read_bytes() == ENTRIES[0].data
    assert (dest / "b.txt").read_bytes() == b"x"
    assert (dest / "Windows/System32/config").is_dir()
    assert out.size == (tmp_path / "a.wim").stat().st_size


def test_7z_reads_it(tmp_path):
    need("7z")
    out = write_wim(tmp_path / "a.wim", ENTRIES, image_name="X", timestamp=EPOCH, compression="xpress")
    listing = subprocess.run(
        ["7z", "l", "-slt", str(out.path)], check=True, capture_output=True, text=True
    ).stdout
    paths = set(re.findall(r"^Path = (.*)$", listing, re.M))
    assert {"b.txt", "Windows/System32/drivers/sdhc.sys", "Windows/System32/same.dat"} <= {
        p.replace("\\", "/") for p in paths
    }
    assert "Modified = 2020-01-01 00:00:00" in listing
    dest = tmp_path / "x"
    subprocess.run(["7z", "x", f"-o{dest}", str(out.path)], check=True, capture_output=True)
    assert (dest / "Windows/System32/drivers/sdhc.sys").read_bytes() == ENTRIES[0].data


@pytest.mark.parametrize("compression", ["none", "xpress", "lzx", "lzms"])
def test_byte_identical_across_runs_places_and_host_times(tmp_path, compression):
    need("wimlib-imagex")
    src1, src2 = tmp_path / "one" / "src", tmp_path / "two" / "deeper" / "src"
    for src, stamp in ((src1, 1_000_000_000), (src2, 1_700_000_000)):
        for e in ENTRIES:
            p = src / e.name.replace("\\", "/")
            if e.data is None:
                p.mkdir(parents=True, exist_ok=True)
            else:
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(e.data)
                os.utime(p, (stamp, stamp))
    a = write_wim(
        tmp_path / "one/a.wim", src1, image_name="I", timestamp=EPOCH, compression=compression, boot=True
    )
    time.sleep(1.1)  # wimlib would stamp the clock into the XML info
    b = write_wim(
        tmp_path / "two/b.wim", src2, image_name="I", timestamp=EPOCH, compression=compression, boot=True
    )
    assert a.path.read_bytes() == b.path.read_bytes()
    assert re.search(
        r"Compression:\s+" + {"none": "None", "lzx": "LZX", "xpress": "XPRESS", "lzms": "LZMS"}[compression],
        imagex("info", a.path),
    )
    # the GUID follows the content
    (src2 / "b.txt").write_bytes(b"y")
    c = write_wim(
        tmp_path / "two/c.wim", src2, image_name="I", timestamp=EPOCH, compression=compression, boot=True
    )
    assert c.guid != a.guid
    d = write_wim(
        tmp_path / "two/d.wim", src2, image_name="I", timestamp=EPOCH + 1, compression=compression, boot=True
    )
    assert d.path.read_bytes() != c.path.read_bytes()


def test_source_tree_left_untouched(tmp_path):
    need("wimlib-imagex")
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"1")
    os.utime(src / "f", (1_600_000_000, 1_600_000_000))
    write_wim(tmp_path / "a.wim", src, image_name="I", timestamp=EPOCH)
    assert (src / "f").stat().st_mtime == 1_600_000_000


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([WimEntry("a/../b", b"")], "not a valid Windows file name"),
        ([WimEntry("a:b", b"")], "not a valid Windows file name"),
        ([WimEntry("", b"")], "is empty"),
        ([WimEntry("A.txt", b"1"), WimEntry("a.TXT", b"2")], "collides with 'A.txt'"),
        ([WimEntry("dir/x", b"1"), WimEntry("DIR/y", b"2")], "collides with 'dir'"),
        ([WimEntry("x", b"1"), WimEntry("x/y", b"2")], "collides with 'x'"),
    ],
)
def test_bad_names_refused_without_output(tmp_path, entries, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        write_wim(tmp_path / "a.wim", entries, image_name="I", timestamp=EPOCH)
    assert list(tmp_path.iterdir()) == []


def test_bad_options_and_links_refused(tmp_path):
    with pytest.raises(ConfigError, match="compression 'zip'"):
        write_wim(tmp_path / "a.wim", [], image_name="I", timestamp=EPOCH, compression="zip")
    with pytest.raises(ConfigError, match="set by write_wim itself"):
        write_wim(
            tmp_path / "a.wim",
            [],
            image_name="I",
            timestamp=EPOCH,
            image_properties={"CREATIONTIME/HIGHPART": "0"},
        )
    src = tmp_path / "src"
    src.mkdir()
    (src / "l").symlink_to("/etc/passwd")
    with pytest.raises(ConfigError, match="links are not captured"):
        write_wim(tmp_path / "a.wim", src, image_name="I", timestamp=EPOCH)
    with pytest.raises(ConfigError, match="cannot read WIM entry"):
        write_wim(tmp_path / "a.wim", [WimEntry("x", tmp_path / "missing")], image_name="I", timestamp=EPOCH)
    assert not (tmp_path / "a.wim").exists()


def test_filetime():
    assert filetime(EPOCH) == 132223104000000000  # 2020-01-01 as Windows FILETIME
    assert filetime(0) == 116444736000000000


def test_empty_image(tmp_path):
    need("wimlib-imagex")
    out = write_wim(tmp_path / "e.wim", [], image_name="Empty", timestamp=EPOCH)
    assert imagex("dir", out.path, 1).split() == ["/"]


def test_capture_from_ntfs_volume_keeps_attributes_and_descriptors(tmp_path):
    need("wimlib-imagex", "mkntfs")
    from ffuforge.formats.fsimage import write_ntfs

    staged = tmp_path / "staged"
    (staged / "Windows/System32").mkdir(parents=True)
    (staged / "Windows/System32/a.dll").write_bytes(b"MZ" * 100)
    vol = write_ntfs(staged, tmp_path / "v.img", size_bytes=8 << 20, label="U", timestamp=EPOCH)
    a = write_wim(tmp_path / "a.wim", vol, ntfs=True, image_name="I", timestamp=EPOCH)
    detailed = imagex("dir", a.path, 1, "--detailed")
    block = detailed[detailed.index('"/Windows/System32/a.dll"') :]
    assert "FILE_ATTRIBUTE_ARCHIVE is set" in block.split("----")[0]
    assert "Security Descriptor = 0100" in block.split("----")[0]  # the WRP default, from $Secure
    assert "/$MFT" not in detailed
    b = write_wim(tmp_path / "b.wim", vol, ntfs=True, image_name="I", timestamp=EPOCH)
    assert a.path.read_bytes() == b.path.read_bytes()
