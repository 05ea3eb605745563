"""Issue 17 (Deliver 6): the `ffuforge` command line is safe to point at the wrong thing.

`ffu to-raw` never writes onto its input, writes a block device only with --force (in place, the
stored blocks only, all-zero ones included), refuses directories and FIFOs; every command refuses a
FIFO or a directory where it expects a file, in one line and without hanging; OS errors (no space,
read-only file system, permission denied) are one line and a non-zero exit, never a traceback,
and leave no partial output. Loop devices and tmpfs mounts need root: without them those cases
are skipped with a message.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ffuforge.formats.ffu import FfuReader

from scons_util import ROOT, copy_workspace, scons

pytestmark = pytest.mark.e2e
FFU = Path("build/arm64/SampleA/Test/Flash.ffu")
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "site_scons")}


@pytest.fixture(scope="module")
def flash(tmp_path_factory) -> Path:
    ws = copy_workspace(tmp_path_factory.mktemp("ws"))
    scons(ws)
    return ws / FFU


def cli(*args: str | Path, user: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [*user, sys.executable, "-m", "ffuforge", *map(str, args)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=60,  # a FIFO opened for reading would block forever: the timeout turns that into a failure
        stdin=subprocess.DEVNULL,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def one_line_error(proc: subprocess.CompletedProcess, *words: str) -> str:
    assert proc.returncode != 0, proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------ its own input


def test_to_raw_refuses_to_write_onto_its_input(flash, tmp_path):
    ffu = tmp_path / "F.ffu"
    ffu.write_bytes(flash.read_bytes())
    before = _digest(ffu)
    (tmp_path / "link.ffu").symlink_to(ffu)
    os.link(ffu, tmp_path / "hard.ffu")
    for out in (ffu, tmp_path / "link.ffu", tmp_path / "hard.ffu", tmp_path / "sub" / ".." / "F.ffu"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        one_line_error(cli("ffu", "to-raw", ffu, out), "is the FFU being read")
    assert _digest(ffu) == before and sorted(p.name for p in tmp_path.iterdir()) == [
        "F.ffu",
        "hard.ffu",
        "link.ffu",
        "sub",
    ]


# ------------------------------------------------------------------ FIFOs and directories


COMMANDS = {
    "ffu info": ["ffu", "info", "{}"],
    "ffu verify": ["ffu", "verify", "{}"],
    "ffu to-raw (input)": ["ffu", "to-raw", "{}", "{tmp}/out.img"],
    "ffu verify --root": ["ffu", "verify", "{ffu}", "--root", "{}"],
    "verify": ["verify", "{}"],
    "verify --root": ["verify", "{ffu}", "--root", "{}"],
    "cab list": ["cab", "list", "{}"],
    "cab extract": ["cab", "extract", "{}", "{tmp}/x"],
    "package": ["package", "{}", "-o", "{tmp}/o"],
    "features": ["features", "{}"],
    "features --fm": ["features", "{oeminput}", "--fm", "{}"],
    "layout": ["layout", "{}"],
    "layout --platform": ["layout", "{layout}", "--platform", "{}"],
    "bcd dump": ["bcd", "dump", "{}"],
    "ls": ["ls", "{}"],
    "cat": ["cat", "{}", "Windows/System32/config/SYSTEM"],
    "reg": ["reg", "{}", "HKLM\\SYSTEM"],
    "services": ["services", "{}"],
    "drivers": ["drivers", "{}"],
    "sign": ["sign", "{}", "--pfx", "{tmp}/none.pfx"],
    "sign --pfx": ["sign", "{ffu}", "--pfx", "{}"],
    "bsp build --oeminput": ["bsp", "build", "{tmp}", "--board", "B", "--oeminput", "{}", "--no-build"],
}


@pytest.mark.parametrize("kind", ["fifo", "directory"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_refuses_fifos_and_directories(flash, tmp_path, command, kind):
    bad = tmp_path / "bad"
    if kind == "fifo":
        os.mkfifo(bad)
    else:
        bad.mkdir()
    ws = flash.parents[4]
    fill = {
        "tmp": tmp_path,
        "ffu": flash,
        "oeminput": ws / "products/SampleA/TestOEMInput.xml",
        "layout": ws / "bsp/ContosoBoard/Packages/ContosoBoard.DeviceLayout/DeviceLayout.xml",
    }
    args = [a.replace("{}", str(bad)).format(**fill) for a in COMMANDS[command]]
    proc = cli(*args)
    assert proc.returncode != 0
    text = (proc.stdout + proc.stderr).strip().splitlines()
    assert len(text) == 1 and str(bad) in text[0], text
    assert ("FIFO" if kind == "fifo" else "directory") in text[0], text[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad"]  # no output of any kind


def test_to_raw_refuses_a_directory_or_fifo_as_output(flash, tmp_path):
    os.mkfifo(tmp_path / "fifo")
    one_line_error(cli("ffu", "to-raw", flash, tmp_path / "fifo"), "FIFO")
    one_line_error(cli("ffu", "to-raw", flash, tmp_path), "is a directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo"]


# ------------------------------------------------------------------------------- OS errors


@contextlib.contextmanager
def tmpfs(path: Path, *options: str):
    path.mkdir()
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(path)], capture_output=True
    )
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {res.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def test_full_disk_is_one_line_and_leaves_nothing(flash, tmp_path):
    """The sample's raw disk holds ~45 MiB of data: a 1 MiB tmpfs fills up mid-write."""
    with tmpfs(tmp_path / "small", "size=1m") as small:
        line = one_line_error(cli("ffu", "to-raw", flash, small / "disk.img"), "No space left on device")
        assert line.startswith(f"ffuforge: {small / 'disk.img'}"), line
        assert list(small.iterdir()) == []  # the temp file went with the failure


def test_read_only_file_system_is_one_line(flash, tmp_path):
    with tmpfs(tmp_path / "ro", "size=1m", "ro") as ro:
        one_line_error(cli("ffu", "to-raw", flash, ro / "disk.img"), "Read-only file system")
        one_line_error(cli("cab", "extract", next(flash.parents[2].glob("packages/*.cab")), ro / "x"))
        assert list(ro.iterdir()) == []


def test_permission_denied_is_one_line(flash, tmp_path):
    if os.geteuid() != 0:
        user: tuple[str, ...] = ()
    else:  # root writes anywhere: run the command as nobody
        from oracles import require_tool

        user = (require_tool("setpriv"), "--reuid=65534", "--regid=65534", "--clear-groups")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o755)
    if os.geteuid() != 0:
        locked.chmod(0o555)
    tmp_path.chmod(0o755)
    one_line_error(cli("ffu", "to-raw", flash, locked / "disk.img", user=user), "Permission denied")
    pkg = next(flash.parents[2].glob("packages/*.cab"))
    one_line_error(cli("cab", "extract", pkg, locked / "x", user=user), "Permission denied")
    assert list(locked.iterdir()) == []


# ---------------------------------------------------------------------------- block devices


@pytest.fixture
def loop(flash, tmp_path):
    """A loop device the size of the FFU's disk, over a sparse file."""
    with FfuReader(flash) as r:
        disk = r.stores[0].disk_bytes
    backing = tmp_path / "card.img"
    with open(backing, "wb") as f:
        f.truncate(disk)
    res = subprocess.run(["losetup", "-f", "--show", str(backing)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"no loop device here (losetup needs root): {res.stderr.strip()}")
    dev = res.stdout.strip()
    try:
        yield Path(dev), backing
    finally:
        subprocess.run(["losetup", "-d", dev], check=True)


def test_block_device_needs_force_and_gets_the_stored_blocks(flash, tmp_path, loop):
    dev, backing = loop
    with FfuReader(flash) as r:
        bs = r.stores[0].block_size
        stored = [b for b, _ in r.stored_blocks(0)]
        disk = r.stores[0].disk_bytes
    raw = tmp_path / "raw.img"
    assert cli("ffu", "to-raw", flash, raw).returncode == 0
    with open(raw, "rb") as f:
        zero_stored = [b for b in stored if os.pread(f.fileno(), bs, b * bs) == bytes(bs)]
    assert zero_stored, (
        "the sample stores all-zero blocks (allocated, empty clusters): the card must get them"
    )
    unstored = [b for b in (1, 2, 100, disk // bs // 2) if b not in stored]
    assert unstored
    # an old card: what was there before, where the image stores zeros and where it stores nothing
    with open(backing, "r+b") as f:
        for b in zero_stored + unstored:
            os.pwrite(f.fileno(), b"\xaa" * bs, b * bs)

    line = one_line_error(cli("ffu", "to-raw", flash, dev), "add --force", str(disk))
    assert str(dev) in line
    with open(backing, "rb") as f:
        assert os.pread(f.fileno(), bs, zero_stored[0] * bs) == b"\xaa" * bs  # untouched without --force
    proc = cli("ffu", "to-raw", "--force", flash, dev)
    assert proc.returncode == 0, proc.stderr
    assert f"onto block device {dev} ({disk} bytes" in proc.stderr
    assert dev.is_block_device()  # written in place, not replaced by a file
    with open(backing, "rb") as got, open(raw, "rb") as want:
        for b in stored:
            assert os.pread(got.fileno(), bs, b * bs) == os.pread(want.fileno(), bs, b * bs), b
        for b in unstored:
            assert os.pread(got.fileno(), bs, b * bs) == b"\xaa" * bs, b  # left as the card had it


def test_block_device_smaller_than_the_image_is_refused(flash, tmp_path):
    backing = tmp_path / "small.img"
    with open(backing, "wb") as f:
        f.truncate(16 << 20)
    res = subprocess.run(["losetup", "-f", "--show", str(backing)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"no loop device here (losetup needs root): {res.stderr.strip()}")
    dev = res.stdout.strip()
    try:
        one_line_error(cli("ffu", "to-raw", "--force", flash, dev), "smaller than the image")
    finally:
        subprocess.run(["losetup", "-d", dev], check=True)
    assert backing.stat().st_blocks == 0  # nothing written
