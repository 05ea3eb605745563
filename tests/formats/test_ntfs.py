"""The libntfs-3g writer, checked with ntfs-3g's own readers (ntfssecaudit, ntfsinfo, ntfsfix) and 7z."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ffuforge.errors import ConfigError, FFUError
from ffuforge.formats import fstools, ntfswrite, secdesc
from ffuforge.formats.ntfs import write_ntfs

from oracles import require_tool

EPOCH = 1577836800
MiB = 1 << 20
SITE = str(Path(__file__).resolve().parents[2] / "site_scons")


def tool(name: str) -> str:
    return require_tool(name)


def tree(root: Path) -> Path:
    files = {
        "Windows/System32/kernel.dll": os.urandom(300_000),
        "Windows/System32/drivers/uart.sys": os.urandom(70_000),
        "Windows/System32/config/SYSTEM": b"regf" + bytes(8188),
        "Windows/System32/small.txt": b"resident\n",
        "Windows/empty.bin": b"",
        "Data/ünïcødé €.txt": b"name outside ASCII\n",
    }
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    (root / "Program Files" / "Empty").mkdir(parents=True)
    return root


def stored_descriptor(img: Path, path: str) -> bytes:
    """The descriptor bytes ntfssecaudit reads from $Secure for `path` (its -v hex dump)."""
    out = subprocess.run(
        [tool("ntfssecaudit"), "-v", str(img), path], capture_output=True, text=True, check=True
    ).stdout
    words = []
    for line in out.splitlines():
        m = re.match(r"\s+[0-9a-f]{6}\s+((?:[0-9a-f]{2,8}\s*)+)$", line)
        if m:
            words += m.group(1).split()
    assert words, out
    return bytes.fromhex("".join(words))


def attributes(img: Path, path: str) -> tuple[int, int, dict[str, int]]:
    """ntfsinfo -v: ($STANDARD_INFORMATION flags, own $FILE_NAME flags, {child: index-entry flags})."""
    out = subprocess.run(
        [tool("ntfsinfo"), "-v", "-F", path, str(img)], capture_output=True, text=True, check=True
    ).stdout
    flags = [int(x, 16) for x in re.findall(r"File attributes:.*\(0x([0-9a-f]+)\)", out)]
    names = re.findall(r"\tFilename:\s+'(.*)'", out)
    # the record's SI and FN come first, then one key per index entry
    return flags[0], flags[1], dict(zip(names[1:], flags[2:], strict=True))


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    tool("mkntfs")
    base = tmp_path_factory.mktemp("ntfs")
    src = tree(base / "src")
    img = write_ntfs(
        src,
        base / "out" / "MainOS.img",
        size_bytes=24 * MiB,
        label="MainOS",
        timestamp=EPOCH,
        security={
            "Windows/System32/config/SYSTEM": "O:SYG:SYD:P(A;;FA;;;SY)(A;;FA;;;BA)",
            "program files\\empty": "O:BAG:SYD:PAI(A;OICI;FA;;;BA)(A;OICI;FA;;;SY)",
            "Data/ünïcødé €.txt": "O:BAG:SYD:(A;;FA;;;BA)",  # not protected: inherits from Data
        },
    )
    return src, img


def test_readers_accept_the_volume_and_see_the_tree(image, tmp_path):
    src, img = image
    fix = subprocess.run([tool("ntfsfix"), "-n", str(img)], capture_output=True, text=True)
    assert fix.returncode == 0 and "processed successfully" in fix.stdout, fix.stdout + fix.stderr
    audit = subprocess.run([tool("ntfssecaudit"), "-a", str(img)], capture_output=True, text=True)
    text = audit.stdout + audit.stderr
    assert "No errors were found" in text and "Command failed" not in text and "**" not in text, text
    for part in ("$SDS-1", "$SDS-2", "$SII", "$SDH"):
        assert f"0 errors in {part}" in text, text
    cat = subprocess.run(
        [tool("ntfscat"), str(img), "/Windows/System32/kernel.dll"], capture_output=True, check=True
    )
    assert cat.stdout == (src / "Windows/System32/kernel.dll").read_bytes()
    out = tmp_path / "x"
    subprocess.run([tool("7z"), "x", f"-o{out}", str(img)], capture_output=True, check=True)
    shutil.rmtree(out / "[SYSTEM]", ignore_errors=True)
    diff = subprocess.run(["diff", "-r", str(src), str(out)], capture_output=True, text=True)
    assert diff.returncode == 0, diff.stdout


def test_wrp_default_on_files_and_directories(image):
    _, img = image
    for path in ("/Windows/System32/kernel.dll", "/Windows/System32/drivers/uart.sys", "/Windows/empty.bin"):
        got = stored_descriptor(img, path)
        assert got == secdesc.wrp_default(False), path
        assert secdesc.binary_to_sddl(got).startswith(f"O:{secdesc.TRUSTED_INSTALLER}G:")
    for path in ("/Windows", "/Windows/System32", "/Data"):
        assert stored_descriptor(img, path) == secdesc.wrp_default(True), path


def test_given_descriptor_where_set(image):
    _, img = image
    got = stored_descriptor(img, "/Windows/System32/config/SYSTEM")
    assert secdesc.binary_to_sddl(got) == "O:SYG:SYD:P(A;;FA;;;SY)(A;;FA;;;BA)"
    got = stored_descriptor(img, "/Program Files/Empty")
    assert secdesc.binary_to_sddl(got) == "O:BAG:SYD:PAI(A;OICI;FA;;;BA)(A;OICI;FA;;;SY)"


def test_attributes_agree_in_record_and_index(image):
    _, img = image
    root_si, root_fn, children = attributes(img, "/")
    assert root_si == 0x06 and root_fn == 0x10000006  # HIDDEN|SYSTEM kept
    seen = 0
    for d in ("/", "/Windows", "/Windows/System32", "/Data", "/Program Files"):
        _, _, entries = attributes(img, d)
        for name, in_index in entries.items():
            if name.startswith("$") or name == ".":
                continue
            path = d.rstrip("/") + "/" + name
            si, fn, _ = attributes(img, path)
            is_dir = bool(fn & 0x10000000)
            assert si == (0 if is_dir else 0x20), path  # files ARCHIVE, directories nothing settable
            assert in_index == fn == si | (0x10000000 if is_dir else 0), path
            seen += 1
    assert seen >= 9


def test_name_length_limit(tmp_path, monkeypatch):
    tool("mkntfs")
    ok = tmp_path / "ok"
    ok.mkdir()
    (ok / ("n" * 255)).write_bytes(b"x")
    img = write_ntfs(ok, tmp_path / "ok.img", size_bytes=8 * MiB, label="X", timestamp=EPOCH)
    listing = subprocess.run([tool("ntfsls"), str(img)], capture_output=True, text=True).stdout
    assert "n" * 255 in listing.split()
    # Linux file systems limit names to 255 *bytes*, never fewer than the UTF-16 units, so a name
    # over the NTFS limit only comes from file systems with longer names (ZFS): stand one in.
    long = "𝔸" * 128  # 128 characters, 256 UTF-16 units (surrogate pairs)
    real_scan = fstools.scan
    monkeypatch.setattr(
        fstools,
        "scan",
        lambda d: [*real_scan(d), fstools.Entry(("Windows", long), Path(d) / "Windows" / long, False, 1)],
    )
    out = tmp_path / "o" / "x.img"
    with pytest.raises(ConfigError, match="longer than 255 UTF-16 units") as ei:
        write_ntfs(ok, out, size_bytes=8 * MiB, label="X", timestamp=EPOCH)
    assert ei.value.file.endswith(long)
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_bad_or_stray_descriptor_refused(tmp_path):
    tool("mkntfs")
    src = tree(tmp_path / "src")
    out = tmp_path / "o" / "x.img"
    with pytest.raises(ConfigError, match=r"security descriptor for Data: unknown access right 'ZZ'"):
        write_ntfs(
            src, out, size_bytes=16 * MiB, label="X", timestamp=EPOCH, security={"Data": "D:(A;;ZZ;;;SY)"}
        )
    with pytest.raises(ConfigError, match="'windows/nothere', which is not in the partition"):
        write_ntfs(
            src, out, size_bytes=16 * MiB, label="X", timestamp=EPOCH, security={"Windows/NotHere": "D:"}
        )
    assert not out.parent.exists()


def test_no_space_is_a_clear_error(tmp_path):
    tool("mkntfs")
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        (src / f"f{i}.bin").write_bytes(os.urandom(4_900_000))  # passes the estimate, not the volume
    out = tmp_path / "o" / "x.img"
    with pytest.raises(
        FFUError, match=r"content does not fit in the 16777216-byte NTFS partition.*No space left"
    ):
        write_ntfs(src, out, size_bytes=16 * MiB, label="X", timestamp=EPOCH)
    assert list(out.parent.iterdir()) == []


def test_sonames_tried_in_turn(monkeypatch):
    real = tool("mkntfs") and ntfswrite.SONAMES
    monkeypatch.setattr(ntfswrite, "SONAMES", ("libntfs-3g.so.0-none", *real))
    assert ntfswrite._load() is not None
    monkeypatch.setattr(ntfswrite, "SONAMES", ("libntfs-3g.so.0-none",))
    with pytest.raises(SystemExit) as ei:
        ntfswrite._load()
    assert ei.value.code == ntfswrite.UNAVAILABLE


def test_kill_during_the_write_leaves_nothing_under_the_name(tmp_path):
    tool("mkntfs")
    src = tmp_path / "src"
    src.mkdir()
    for i in range(24):
        (src / f"f{i:02d}.bin").write_bytes(os.urandom(4 * MiB))
    out = tmp_path / "o" / "MainOS.img"
    out.parent.mkdir()
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from ffuforge.formats.ntfs import write_ntfs; "
        "write_ntfs(sys.argv[2], sys.argv[3], size_bytes=256 << 20, label='MainOS', timestamp=0)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, SITE, str(src), str(out)], start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        helpers = [p for p in os.listdir("/proc") if p.isdigit() and _is_helper(p, proc.pid)]
        if helpers:
            break
        time.sleep(0.005)
    else:
        pytest.fail("the libntfs-3g helper never ran")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    assert all(p.name.endswith(".partial") for p in out.parent.iterdir())


def _is_helper(pid: str, session: int) -> bool:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        return b"ntfswrite.py" in cmd and os.getsid(int(pid)) == session
    except OSError:
        return False


def test_root_gets_windows_os_root_descriptor(image):
    _, img = image
    assert stored_descriptor(img, "/") == secdesc.sddl_to_binary(secdesc.OS_ROOT_SDDL)


def test_unprotected_descriptor_inherits_from_its_directory(image):
    _, img = image
    got = stored_descriptor(img, "/Data/ünïcødé €.txt")
    own = secdesc.sddl_to_binary("O:BAG:SYD:(A;;FA;;;BA)")
    assert got == secdesc.inherit(secdesc.wrp_default(True), own, False) != own
    text = secdesc.binary_to_sddl(got)
    # the WRP directory's file-inheritable ACEs: CREATOR OWNER GA becomes the owner's full access
    assert text.startswith("O:BAG:SYD:AI(A;;FA;;;BA)(A;ID;FA;;;BA)(A;ID;FA;;;SY)"), text


def test_an_empty_volume_gets_its_root_descriptor(tmp_path):
    tool("mkntfs")
    (tmp_path / "empty").mkdir()
    img = write_ntfs(
        tmp_path / "empty",
        tmp_path / "Data.img",
        size_bytes=16 * MiB,
        label="Data",
        timestamp=EPOCH,
        root_sddl=secdesc.DATA_ROOT_SDDL,
    )
    assert stored_descriptor(img, "/") == secdesc.sddl_to_binary(secdesc.DATA_ROOT_SDDL)
    audit = subprocess.run([tool("ntfssecaudit"), "-a", str(img)], capture_output=True, text=True)
    assert "**" not in audit.stdout and "0 errors in $SDS-2" in audit.stdout, audit.stdout
