"""Partition image writers, checked with independent readers (dosfstools, mtools, ntfs-3g tools)."""

import hashlib
import os
import re
import struct
import subprocess
from pathlib import Path

import pytest

from ffuforge.errors import ConfigError, FFUError, FormatError, ToolError
from ffuforge.formats import fat, fstools
from ffuforge.formats.fsimage import fat_parameters, normalize_ntfs, write_fat, write_ntfs, write_raw

from oracles import require_tool

EPOCH = 1577836800  # 2020-01-01
MiB = 1 << 20


def need(*tools):
    for t in tools:
        require_tool(t)


def tool(name):
    return require_tool(name)


def blob(seed: str, size: int) -> bytes:
    out = bytearray()
    i = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{i}".encode()).digest()
        i += 1
    return bytes(out[:size])


TREE = {
    "EFI/Boot/bootarm.efi": blob("efi", 70_000),
    "EFI/Microsoft/Boot/BCD": blob("bcd", 16_384),
    "EFI/Microsoft/Boot/Fonts/a font file with a long name.ttf": blob("font", 5_000),
    "EFI/Microsoft/Boot/de-DE/bootmgr.efi.mui": blob("mui", 1_234),
    "Windows/System32/big payload.bin": blob("big", 3 * MiB + 17),
    "Windows/System32/drivers/ünïcödé-名前.sys": blob("uni", 4_097),
    "Windows/System32/drivers/UPPER.SYS": blob("upper", 512),
    "Windows/System32/empty.dat": b"",
    "Windows/System32/config/deep/er/still/leaf.txt": b"leaf\n",
    "readme.txt": b"hello\r\n",
    "MixedCase.Txt": b"mixed",
    "Program Files/Windows Apps/x.y.z.appx": blob("appx", 20_000),
}
EMPTY_DIRS = ["Users/Public", "EmptyDir"]


def make_tree(root: Path, files=TREE, reverse=False, mtime=None) -> Path:
    root.mkdir(parents=True)
    items = list(files.items())
    for rel, data in reversed(items) if reverse else items:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        if mtime is not None:
            os.utime(p, (mtime, mtime))
    for d in EMPTY_DIRS:
        (root / d).mkdir(parents=True, exist_ok=True)
    return root


def tree_of(root: Path) -> tuple[dict, set]:
    files, dirs = {}, set()
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            dirs.add(os.path.relpath(os.path.join(dirpath, d), root))
        for f in filenames:
            files[os.path.relpath(os.path.join(dirpath, f), root)] = Path(dirpath, f).read_bytes()
    return files, dirs


def expected_dirs(files=TREE):
    out = set(EMPTY_DIRS) | {"Users"}
    for rel in files:
        parts = rel.split("/")[:-1]
        out |= {"/".join(parts[:i]) for i in range(1, len(parts) + 1)}
    return out


def mtools_env():
    return {**os.environ, "MTOOLS_SKIP_CHECK": "1", "LC_ALL": "C.UTF-8", "MTOOLSRC": os.devnull}


def allocated(path: Path) -> int:
    return os.stat(path).st_blocks * 512


def has_hole(path: Path) -> bool:
    with open(path, "rb") as fh:
        return os.lseek(fh.fileno(), 0, os.SEEK_HOLE) < os.fstat(fh.fileno()).st_size


def data_extents(path: Path) -> list[tuple[int, int]]:
    out = []
    with open(path, "rb") as fh:
        fd, size, pos = fh.fileno(), os.fstat(fh.fileno()).st_size, 0
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break
            pos = os.lseek(fd, start, os.SEEK_HOLE)
            out.append((start, pos))
    return out


def uncovered(extents, ranges, block=128 * 1024):
    """FFU blocks holding file-system structures but no written data: the FFU writer (which
    stores only blocks with data extents) would drop them and leave stale device bytes there."""
    have = {b for x, y in extents for b in range(x // block, (y - 1) // block + 1)}
    return sorted({b for a, e in ranges for b in range(a // block, (e - 1) // block + 1)} - have)


def fat_structures(img: Path) -> list[tuple[int, int]]:
    """Boot sector, FATs, root directory and every allocated cluster (own parser, not fsimage's)."""
    d = img.read_bytes()
    bps, spc, rsvd, nfats, root_ents, tot16 = struct.unpack_from("<HBHBHH", d, 11)
    fatsz = struct.unpack_from("<H", d, 22)[0] or struct.unpack_from("<I", d, 36)[0]
    total = tot16 or struct.unpack_from("<I", d, 32)[0]
    data = (rsvd + nfats * fatsz + (root_ents * 32 + bps - 1) // bps) * bps
    cl = bps * spc
    n = (total * bps - data) // cl
    fat = d[rsvd * bps : (rsvd + fatsz) * bps]

    def entry(i):
        if n >= 65525:
            return struct.unpack_from("<I", fat, i * 4)[0] & 0x0FFFFFFF
        if n >= 4085:
            return struct.unpack_from("<H", fat, i * 2)[0]
        v = struct.unpack_from("<H", fat, i * 3 // 2)[0]
        return v >> 4 if i & 1 else v & 0xFFF

    return [(0, data)] + [(data + (i - 2) * cl, data + (i - 1) * cl) for i in range(2, n + 2) if entry(i)]


def ntfs_structures(img: Path) -> list[tuple[int, int]]:
    """Every cluster of every non-resident attribute up to its initialized size (own parser)."""
    d = bytearray(img.read_bytes())
    bps, spc = struct.unpack_from("<HB", d, 11)
    cl = bps * spc
    rs = cl * d[0x40] if d[0x40] < 0x80 else 1 << (256 - d[0x40])

    def record(off):
        r = bytearray(d[off : off + rs])
        usa, cnt = struct.unpack_from("<HH", r, 4)
        for i in range(1, cnt):
            r[i * bps - 2 : i * bps] = r[usa + 2 * i : usa + 2 * i + 2]
        return r

    def runs(r, off):
        pos, lcn, out = off + struct.unpack_from("<H", r, off + 0x20)[0], 0, []
        while r[pos]:
            nl, no = r[pos] & 15, r[pos] >> 4
            cnt = int.from_bytes(r[pos + 1 : pos + 1 + nl], "little")
            if no:
                lcn += int.from_bytes(r[pos + 1 + nl : pos + 1 + nl + no], "little", signed=True)
                out.append((cnt, lcn))
            else:
                out.append((cnt, None))
            pos += 1 + nl + no
        return out

    def attrs(r):
        off = struct.unpack_from("<H", r, 0x14)[0]
        while struct.unpack_from("<I", r, off)[0] != 0xFFFFFFFF:
            yield off
            off += struct.unpack_from("<I", r, off + 4)[0]

    mft = struct.unpack_from("<q", d, 0x30)[0] * cl
    r0 = record(mft)
    a = next(o for o in attrs(r0) if struct.unpack_from("<I", r0, o)[0] == 0x80)
    mft_runs = runs(r0, a)
    offsets = []
    for cnt, lcn in mft_runs:
        offsets += [lcn * cl + k for k in range(0, cnt * cl, rs)]
    out = []
    for off in offsets[: struct.unpack_from("<q", r0, a + 0x30)[0] // rs]:
        r = record(off)
        if r[:4] != b"FILE" or not struct.unpack_from("<H", r, 0x16)[0] & 1:
            continue
        for o in attrs(r):
            if not r[o + 8]:
                continue
            init, v = struct.unpack_from("<q", r, o + 0x38)[0], struct.unpack_from("<q", r, o + 0x10)[0] * cl
            for cnt, lcn in runs(r, o):
                if lcn is not None and v < init:
                    out.append((lcn * cl, lcn * cl + min(cnt * cl, init - v)))
                v += cnt * cl
    return out


# ----------------------------------------------------------------------------------------- FAT


@pytest.mark.parametrize(
    "size, fat_type, cluster, expect",
    [
        (32 * MiB, None, None, (16, 512)),  # the IoT EFIESP: 65536 sectors -> FAT16, 512 B clusters
        (64 * MiB, "FAT", None, (16, 1024)),  # BSP EFIESP 131072 sectors
        (8 * MiB, "FAT", None, (12, 2048)),  # Qualcomm PLAT 16384 sectors: < 4085 clusters -> FAT12
        (16 * MiB, None, None, (16, 2048)),
        (16588 * 512, None, None, (16, 1024)),  # 2 KiB would land just above 4085 clusters: halved
        (1440 * 1024, None, None, (12, 512)),
        (600 * MiB, "FAT32", None, (32, 4096)),  # CrashDump 1228800 sectors
        (2000 * MiB, "FAT32", None, (32, 4096)),  # MMOS 4096000 sectors
        (48 * MiB, "FAT32", None, (32, 512)),
        (300 * MiB, None, None, (16, 8192)),
        (32 * MiB, 16, 4096, (16, 4096)),
    ],
)
def test_fat_parameters(size, fat_type, cluster, expect):
    assert fat_parameters(size, fat_type=fat_type, cluster_size=cluster) == expect


@pytest.mark.parametrize(
    "size, fat_type, message",
    [
        (20 * MiB, "FAT32", "too small for FAT32"),
        (5 << 30, "FAT", "too large for FAT12/16"),
        (32 * MiB, "exFAT", "unknown FAT type"),
    ],
)
def test_fat_parameters_refused(size, fat_type, message):
    with pytest.raises(FFUError, match=message):
        fat_parameters(size, fat_type=fat_type)


FAT_CASES = [
    (4 * MiB, None, 12, "FAT12   "),
    (32 * MiB, "FAT", 16, "FAT16   "),
    (40 * MiB, "FAT32", 32, "FAT32   "),
]


@pytest.mark.parametrize("size, fat_type, bits, fsname", FAT_CASES)
def test_fat_image_checks_and_reads_back(tmp_path, size, fat_type, bits, fsname):
    need("mkfs.fat", "fsck.fat", "mcopy", "mdir")
    src = make_tree(tmp_path / "src")
    img = write_fat(
        src,
        tmp_path / "out" / "esp.img",
        size_bytes=size,
        label="EFIESP",
        fat_type=fat_type,
        timestamp=EPOCH,
        hidden_sectors=4096,
    )
    assert img.stat().st_size == size
    boot = img.read_bytes()[:512]
    assert boot[510:512] == b"\x55\xaa"
    assert (boot[0x52:0x5A] if bits == 32 else boot[0x36:0x3E]).decode() == fsname
    assert struct.unpack_from("<I", boot, 0x1C)[0] == 4096  # hidden sectors
    fsck = subprocess.run([tool("fsck.fat"), "-n", "-v", str(img)], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    assert f"2 FATs, {bits} bit entries" in fsck.stdout and "4096 hidden sectors" in fsck.stdout
    out = tmp_path / "back"
    out.mkdir()
    r = subprocess.run(
        ["mcopy", "-s", "-n", "-i", str(img), "::/*", str(out)],
        env=mtools_env(),
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    files, dirs = tree_of(out)
    assert files == {k.replace("/", os.sep): v for k, v in TREE.items()}
    assert dirs == expected_dirs()
    listing = subprocess.run(
        ["mdir", "-i", str(img), "::/"], env=mtools_env(), capture_output=True, text=True
    )
    assert "Volume in drive : is EFIESP" in listing.stdout
    dates = set(re.findall(r"\d{4}-\d\d-\d\d", listing.stdout))
    assert dates == {"2020-01-01"}
    assert allocated(img) < size // 2 + 4 * MiB and has_hole(img)
    structures = fat_structures(img)
    assert len(structures) > len(TREE) and uncovered(data_extents(img), structures) == []


def test_fat_is_deterministic(tmp_path):
    need("mkfs.fat", "mcopy")
    a = make_tree(tmp_path / "a", mtime=1_000_000_000)
    b = make_tree(tmp_path / "b", reverse=True)
    imgs = [
        write_fat(src, tmp_path / f"{src.name}.img", size_bytes=32 * MiB, label="EFIESP", timestamp=EPOCH)
        for src in (a, b)
    ]
    assert imgs[0].read_bytes() == imgs[1].read_bytes()
    other = write_fat(a, tmp_path / "c.img", size_bytes=32 * MiB, label="EFIESP", timestamp=EPOCH + 86400)
    assert other.read_bytes() != imgs[0].read_bytes()


def test_fat_content_too_large(tmp_path):
    need("mkfs.fat", "mcopy")
    src = make_tree(tmp_path / "src")
    out = tmp_path / "out" / "esp.img"
    with pytest.raises(FFUError) as ei:
        write_fat(src, out, size_bytes=2 * MiB, label="EFIESP", timestamp=EPOCH)
    assert "content does not fit" in str(ei.value) and str(out) in str(ei.value)
    assert list(out.parent.iterdir()) == []


def test_fat_disk_full_from_mtools(tmp_path, monkeypatch):
    need("mkfs.fat", "mcopy")
    monkeypatch.setattr(fat, "_fat_check_fits", lambda *a: None)  # reach the tool's own check
    src = make_tree(tmp_path / "src")
    out = tmp_path / "out" / "esp.img"
    with pytest.raises(
        FFUError, match=r"content does not fit in the 2097152-byte FAT partition \(mcopy failed"
    ):
        write_fat(src, out, size_bytes=2 * MiB, label="EFIESP", timestamp=EPOCH)
    assert list(out.parent.iterdir()) == []


def test_fat_root_directory_limit(tmp_path):
    need("mkfs.fat")
    src = make_tree(tmp_path / "src", files={f"a long file name number {i}.txt": b"x" for i in range(200)})
    with pytest.raises(FFUError, match="root directory holds 512 entries"):
        write_fat(src, tmp_path / "x.img", size_bytes=32 * MiB, label="X", timestamp=EPOCH)


def test_fat_label_rules(tmp_path):
    src = make_tree(tmp_path / "src", files={"a": b"a"})
    with pytest.raises(FFUError, match="at most 11 ASCII"):
        write_fat(src, tmp_path / "x.img", size_bytes=4 * MiB, label="A.LABEL", timestamp=EPOCH)
    assert not (tmp_path / "x.img").exists()


# ---------------------------------------------------------------------------------------- NTFS


def ntfs_files(img: Path) -> dict[str, bytes]:
    ls = subprocess.run(
        [tool("ntfsls"), "-R", "-F", str(img)], capture_output=True, text=True, check=True
    ).stdout
    found, cur = {}, ""
    dirs = set()
    for line in ls.splitlines():
        if not line.strip():
            continue
        if line.endswith(":") and line.startswith("/"):
            cur = line[:-1].rstrip("/")
            continue
        name = line.strip()
        if name in ("./", "../"):
            continue
        if name.endswith("/"):
            dirs.add((cur + "/" + name[:-1]).lstrip("/"))
            continue
        path = (cur + "/" + name).lstrip("/")
        found[path] = subprocess.run(
            [tool("ntfscat"), str(img), "/" + path], capture_output=True, check=True
        ).stdout
    return found, dirs


def test_ntfs_image_checks_and_reads_back(tmp_path):
    need("mkntfs", "ntfsls", "ntfscat", "ntfsfix")
    src = make_tree(tmp_path / "src")
    img = write_ntfs(
        src,
        tmp_path / "out" / "mainos.img",
        size_bytes=48 * MiB,
        cluster_size=4096,
        label="MainOS",
        timestamp=EPOCH,
        hidden_sectors=81920,
    )
    assert img.stat().st_size == 48 * MiB
    boot = img.read_bytes()[:512]
    assert boot[3:11] == b"NTFS    " and struct.unpack_from("<I", boot, 0x1C)[0] == 81920
    assert boot[0x0D] * 512 == 4096
    fix = subprocess.run([tool("ntfsfix"), "-n", str(img)], capture_output=True, text=True)
    assert fix.returncode == 0 and "was processed successfully" in fix.stdout, fix.stdout + fix.stderr
    require_tool("ntfsresize")
    chk = subprocess.run([tool("ntfsresize"), "--check", "-f", str(img)], capture_output=True, text=True)
    assert chk.returncode == 0, chk.stdout + chk.stderr
    files, dirs = ntfs_files(img)
    assert files == TREE
    assert dirs == expected_dirs()
    info = subprocess.run([tool("ntfsinfo"), "-m", str(img)], capture_output=True, text=True).stdout
    assert "MainOS" in info
    # Every file time is the build epoch.
    listing = subprocess.run([tool("ntfsls"), "-R", "-l", str(img)], capture_output=True, text=True).stdout
    assert set(re.findall(r"\b(?:19|20)\d\d\b", listing)) == {"2020"}
    assert allocated(img) < 24 * MiB and has_hole(img)
    structures = ntfs_structures(img)
    assert len(structures) > 10 and uncovered(data_extents(img), structures) == []


def test_ntfs_is_deterministic(tmp_path):
    need("mkntfs")
    a = make_tree(tmp_path / "a", mtime=1_000_000_000)
    b = make_tree(tmp_path / "b", reverse=True)
    imgs = [
        write_ntfs(
            src,
            tmp_path / f"{src.name}.img",
            size_bytes=32 * MiB,
            label="Data",
            timestamp=EPOCH,
            cluster_size=4096,
        )
        for src in (a, b)
    ]
    assert imgs[0].read_bytes() == imgs[1].read_bytes()
    other = write_ntfs(
        a, tmp_path / "c.img", size_bytes=32 * MiB, label="Data", timestamp=EPOCH + 1, cluster_size=4096
    )
    assert other.read_bytes() != imgs[0].read_bytes()  # times and the serial follow the timestamp
    serial = struct.unpack_from("<Q", other.read_bytes(), 0x48)[0]
    assert serial != struct.unpack_from("<Q", imgs[0].read_bytes(), 0x48)[0]


def test_ntfs_many_files_large_directories(tmp_path):
    """Index node splits and a growing $MFT still normalise to identical bytes."""
    need("mkntfs", "ntfsfix")
    files = {f"d{i % 7}/f{i:04d}-{'x' * (i % 40)}.txt": blob(str(i), i % 3000) for i in range(1500)}
    a = make_tree(tmp_path / "a", files)
    b = make_tree(tmp_path / "b", files, reverse=True)
    imgs = [
        write_ntfs(
            s,
            tmp_path / f"{s.name}.img",
            size_bytes=64 * MiB,
            label="MainOS",
            timestamp=EPOCH,
            cluster_size=4096,
        )
        for s in (a, b)
    ]
    assert imgs[0].read_bytes() == imgs[1].read_bytes()
    fix = subprocess.run([tool("ntfsfix"), "-n", str(imgs[0])], capture_output=True, text=True)
    assert fix.returncode == 0, fix.stdout
    listing = subprocess.run(
        [tool("ntfsls"), "-p", "/d3", str(imgs[0])], capture_output=True, text=True
    ).stdout
    names = [n for n in listing.split() if n not in (".", "..")]
    assert sorted(names) == sorted(k[3:] for k in files if k.startswith("d3/"))
    assert uncovered(data_extents(imgs[0]), ntfs_structures(imgs[0])) == []
    for rel in list(files)[::37]:  # lookups walk the (normalised) B+tree indexes
        got = subprocess.run([tool("ntfscat"), str(imgs[0]), "/" + rel], capture_output=True)
        assert got.returncode == 0 and got.stdout == files[rel], rel


def test_ntfs_content_too_large(tmp_path):
    need("mkntfs")
    src = make_tree(tmp_path / "src", files={"big.bin": blob("x", 20 * MiB)})
    out = tmp_path / "out" / "n.img"
    with pytest.raises(FFUError, match="content does not fit"):
        write_ntfs(src, out, size_bytes=16 * MiB, label="X", timestamp=EPOCH, cluster_size=4096)
    assert not out.parent.exists()
    # Past the estimate, libntfs-3g itself runs out of space: same error, nothing left behind.
    src2 = make_tree(tmp_path / "src2", files={"big.bin": blob("y", 14_800_000)})
    with pytest.raises(
        FFUError, match=r"content does not fit in the 16777216-byte NTFS partition.*No space left"
    ):
        write_ntfs(src2, out, size_bytes=16 * MiB, label="X", timestamp=EPOCH, cluster_size=4096)
    assert list(out.parent.iterdir()) == []


def test_empty_tree_ntfs_and_fat(tmp_path):
    need("mkntfs", "mkfs.fat", "ntfsfix", "fsck.fat")
    src = tmp_path / "empty"
    src.mkdir()
    n = write_ntfs(
        src, tmp_path / "n.img", size_bytes=8 * MiB, label="Data", timestamp=EPOCH, cluster_size=0x4000
    )
    assert subprocess.run([tool("ntfsfix"), "-n", str(n)], capture_output=True).returncode == 0
    f = write_fat(src, tmp_path / "f.img", size_bytes=8 * MiB, label="PLAT", timestamp=EPOCH)
    assert subprocess.run([tool("fsck.fat"), "-n", str(f)], capture_output=True).returncode == 0


# ---------------------------------------------------------------------------- staged-tree rules


@pytest.mark.parametrize(
    "setup, message",
    [
        (
            lambda r: (r / "a.txt").write_bytes(b"1") and (r / "A.TXT").write_bytes(b"2"),
            "differ only in case",
        ),
        (lambda r: (r / "bad:name").write_bytes(b"1"), "not valid on Windows"),
        (lambda r: (r / "trailing.").write_bytes(b"1"), "not valid on Windows"),
        (lambda r: os.symlink("/etc/passwd", r / "link"), "symbolic link"),
    ],
)
def test_staged_tree_rules(tmp_path, setup, message):
    need("mkfs.fat", "mkntfs")
    root = tmp_path / "src"
    root.mkdir()
    setup(root)
    for writer, kw in ((write_fat, {}), (write_ntfs, {"cluster_size": 4096})):
        out = tmp_path / "o" / "x.img"
        with pytest.raises(FFUError, match=message):
            writer(root, out, size_bytes=8 * MiB, label="X", timestamp=EPOCH, **kw)
        assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_missing_tool_names_debian_package(tmp_path, monkeypatch):
    monkeypatch.setattr(fstools.shutil, "which", lambda name: None)
    monkeypatch.setattr(fstools, "_SBIN", ())
    with pytest.raises(FFUError, match=r"mkntfs not found; install the Debian package ntfs-3g"):
        write_ntfs(tmp_path, tmp_path / "x.img", size_bytes=8 * MiB, label="X", timestamp=0)
    with pytest.raises(FFUError, match=r"mkfs.fat not found; install the Debian package dosfstools"):
        write_fat(tmp_path, tmp_path / "x.img", size_bytes=8 * MiB, label="X", timestamp=0)


def test_tool_failure_reports_last_stderr_line(tmp_path, monkeypatch):
    fake = tmp_path / "fake-mkntfs"
    fake.write_text("#!/bin/sh\necho 'first line' >&2\necho 'the real reason' >&2\nexit 3\n")
    fake.chmod(0o755)
    real = fstools.find_tool
    monkeypatch.setattr(fstools, "find_tool", lambda n, p: str(fake) if n == "mkntfs" else real(n, p))
    src = tmp_path / "src"
    src.mkdir()
    out = tmp_path / "o" / "x.img"
    with pytest.raises(FFUError) as ei:
        write_ntfs(src, out, size_bytes=8 * MiB, label="X", timestamp=0)
    assert str(ei.value) == f"{out}: fake-mkntfs failed: the real reason"
    assert list(out.parent.iterdir()) == []


# ----------------------------------------------------------------------------------------- raw


def test_raw_image(tmp_path):
    data = blob("fit", 300_000) + bytes(200_000) + b"tail"
    src = tmp_path / "firmware_fit.merged"
    src.write_bytes(data)
    out = write_raw(src, tmp_path / "o" / "BOOTLOADER.img", size_bytes=4096 * 512)
    got = out.read_bytes()
    assert len(got) == 4096 * 512 and got[: len(data)] == data and not any(got[len(data) :])
    assert allocated(out) >= len(data) - 4096  # zeros inside the image are written, not holes
    assert allocated(out) < 1 * MiB
    with pytest.raises(FFUError, match="raw image is 500004 bytes, larger than its 262144-byte partition"):
        write_raw(src, tmp_path / "o2" / "x.img", size_bytes=512 * 512)
    assert not (tmp_path / "o2" / "x.img").exists()
    with pytest.raises(FFUError, match="cannot read raw partition image"):
        write_raw(tmp_path / "missing", tmp_path / "o3.img", size_bytes=512)


# ---------------------------------------------------------------------------- error kinds


def test_error_kinds_of_settings(tmp_path):
    with pytest.raises(ConfigError, match="unknown FAT type"):
        fat_parameters(8 * MiB, fat_type="FAT64")
    with pytest.raises(ConfigError, match="too small for FAT32"):
        fat_parameters(8 * MiB, fat_type="FAT32")
    src = tmp_path / "fw.bin"
    src.write_bytes(bytes(4096))
    with pytest.raises(ConfigError, match="larger than its 1024-byte partition"):
        write_raw(src, tmp_path / "o.img", size_bytes=1024)
    root = tmp_path / "src"
    root.mkdir()
    (root / "bad:name").write_bytes(b"1")
    with pytest.raises(ConfigError, match="not valid on Windows"):
        fstools.scan(root)
    with pytest.raises(ConfigError, match="staged directory does not exist"):
        fstools.scan(tmp_path / "missing")


def test_error_kinds_of_ntfs_bytes(tmp_path):
    need("mkntfs")
    junk = tmp_path / "junk.img"
    junk.write_bytes(bytes(4096))
    with pytest.raises(FormatError, match="not an NTFS volume"):
        normalize_ntfs(junk, EPOCH)
    src = tmp_path / "src"
    src.mkdir()
    img = write_ntfs(src, tmp_path / "n.img", size_bytes=8 * MiB, label="X", timestamp=EPOCH)
    with open(img, "r+b") as fh:
        boot = fh.read(512)
        bps, spc = struct.unpack_from("<HB", boot, 11)
        mft_lcn = struct.unpack_from("<q", boot, 0x30)[0]
        fh.seek(mft_lcn * bps * spc + bps - 2)  # last two bytes of record 0's first sector: the USN copy
        fh.write(b"\xde\xad")
    with pytest.raises(FormatError, match="MFT record 0 fails its update-sequence check"):
        normalize_ntfs(img, EPOCH)


def test_error_kinds_of_tools(tmp_path, monkeypatch):
    need("mkntfs")
    fake = tmp_path / "fake-mkntfs"
    fake.write_text("#!/bin/sh\necho 'no luck' >&2\nexit 3\n")
    fake.chmod(0o755)
    real = fstools.find_tool
    monkeypatch.setattr(fstools, "find_tool", lambda n, p: str(fake) if n == "mkntfs" else real(n, p))
    src = tmp_path / "src"
    src.mkdir()
    with pytest.raises(ToolError, match="fake-mkntfs failed: no luck") as ei:
        write_ntfs(src, tmp_path / "x.img", size_bytes=8 * MiB, label="X", timestamp=0)
    assert isinstance(ei.value, fstools.ToolRunError) and ei.value.status == 3
    monkeypatch.setattr(fstools, "find_tool", real)
    monkeypatch.setattr(fstools.shutil, "which", lambda name: None)
    monkeypatch.setattr(fstools, "_SBIN", ())
    with pytest.raises(ToolError, match="mkfs.fat not found"):
        write_fat(src, tmp_path / "x.img", size_bytes=8 * MiB, label="X", timestamp=0)
