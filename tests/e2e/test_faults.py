"""Resource faults during a full sample build: a full disk, a file size limit, unreadable and
non-regular inputs, outputs damaged behind SCons's back.

Each fault must give one clear error line naming the file, no traceback, and leave nothing under
build/ that lies: every file under an output's name is the clean build's, and no temp or partial
file remains. After the fault is gone, `scons` must finish with the clean build's bytes.

What is real and what is simulated:
* disk full: a real tmpfs of a few MiB mounted on build/ (needs root; skipped otherwise);
* file size limit: RLIMIT_FSIZE in the scons process (EFBIG, and SIGXFSZ for the tools it runs);
* unreadable files: root reads anything, so scons runs without CAP_DAC_OVERRIDE and
  CAP_DAC_READ_SEARCH (`setpriv`), which makes mode 000 binding for it;
* a FIFO, a directory in place of an input file: real.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from outputs_util import assert_complete, assert_no_lies, copy_tree, snapshot
from scons_util import copy_workspace

pytestmark = pytest.mark.e2e
OUT = "build/arm64/SampleA/Test"


def _environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("SOURCE_DATE_EPOCH", "FFU_SIGN_PASSWORD")}


def _scons(ws: Path, *args: str, preexec=None, prefix: tuple[str, ...] = (), timeout: float = 300):
    try:
        return subprocess.run(
            [*prefix, sys.executable, "-m", "SCons", "-Q", *args],
            cwd=ws,
            capture_output=True,
            text=True,
            env=_environ(),
            timeout=timeout,
            preexec_fn=preexec,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"scons hung for {timeout} s (killed): {exc.stdout!r} {exc.stderr!r}") from None


def _one_error(proc: subprocess.CompletedProcess, pattern: str) -> str:
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "Traceback" not in out and not re.search(r'^\s*File "', out, re.M), out
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("scons: *** ")]
    assert len(errors) == 1, proc.stderr
    assert re.search(pattern, errors[0]), (pattern, errors[0])
    return errors[0]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    ws = copy_workspace(tmp_path_factory.mktemp("ref"))
    proc = _scons(ws)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    outputs, temps = snapshot(ws)
    assert not temps
    return {"ws": ws, "outputs": outputs}


@pytest.fixture
def clean_ws(reference, tmp_path):
    """The sample's sources, nothing built."""
    ws = copy_tree(reference["ws"], tmp_path / "ws")
    shutil.rmtree(ws / "build")
    return ws


@pytest.fixture
def built_ws(reference, tmp_path):
    """The sample with its finished build (SCons database included)."""
    return copy_tree(reference["ws"], tmp_path / "ws")


def _finish(ws: Path, reference: dict) -> None:
    proc = _scons(ws)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_complete(ws, reference["outputs"], "after the fault was removed")
    assert _scons(ws, "-q").returncode == 0


# ------------------------------------------------------------------------------ disk full


@pytest.mark.parametrize(
    "size",
    ["1m", "24m", "56m"],
    ids=["while-writing-payload", "while-writing-partitions", "while-writing-the-ffu"],
)
def test_disk_full_on_a_small_tmpfs(reference, clean_ws, size):
    ws = clean_ws
    (ws / "build").mkdir()
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(ws / "build")],
        capture_output=True,
        text=True,
    )
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mount.stderr.strip()}")
    try:
        proc = _scons(ws)
        line = _one_error(proc, r"No space left on device")
        assert re.search(r"\[build/\S+\]|build/\S+", line), line
        temps = assert_no_lies(ws, reference["outputs"], f"disk full at {size}")
        assert not temps, f"disk full left temp files: {temps}"
        subprocess.run(["mount", "-o", "remount,size=1g", str(ws / "build")], check=True)
        _finish(ws, reference)
    finally:
        subprocess.run(["umount", "-l", str(ws / "build")], capture_output=True)


# ----------------------------------------------------------------------- file size limit


@pytest.mark.parametrize("limit", [1 << 20, 40 << 20], ids=["1MiB", "40MiB"])
def test_file_size_limit_simulates_a_full_disk(reference, clean_ws, limit):
    """RLIMIT_FSIZE (ulimit -f): Python writes fail with EFBIG, the tools scons runs get SIGXFSZ."""

    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = _scons(clean_ws, preexec=limited)
    _one_error(proc, r"File too large|file size limit")
    temps = assert_no_lies(clean_ws, reference["outputs"], f"RLIMIT_FSIZE={limit}")
    assert not temps, temps
    _finish(clean_ws, reference)


# ---------------------------------------------------------------------- unreadable inputs


def _no_dac_override() -> tuple[str, ...]:
    if os.geteuid() != 0:
        return ()
    from oracles import require_tool

    setpriv = require_tool("setpriv")  # drops CAP_DAC_OVERRIDE as root
    return (setpriv, "--bounding-set=-dac_override,-dac_read_search")


@pytest.mark.parametrize(
    "rel,pattern",
    [
        (
            "packages/Custom.Files/readme.txt",
            r"packages/Custom\.Files/Custom\.Files\.wm\.xml:8: cannot read packages/Custom\.Files/readme\.txt: "
            r"Permission denied",
        ),
        (
            "packages/Custom.Files/Custom.Files.wm.xml",
            r"packages/Custom\.Files/Custom\.Files\.wm\.xml: .*Permission denied",
        ),
        ("products/SampleA/TestOEMInput.xml", r"products/SampleA/TestOEMInput\.xml: .*Permission denied"),
        (
            "bsp/ContosoBoard/Packages/ContosoBoard.GPIO/contosogpio.inf",
            r"contosogpio\.inf: .*Permission denied",
        ),
        ("packages/OEMFM.xml", r"packages/OEMFM\.xml: .*Permission denied"),
    ],
    ids=["payload", "project", "oeminput", "inf", "fm"],
)
def test_unreadable_input_mode_000(reference, built_ws, rel, pattern):
    prefix = _no_dac_override()
    p = built_ws / rel
    data = p.read_bytes()
    p.write_bytes(data)  # a new mtime: SCons must look at it again
    os.chmod(p, 0)
    try:
        proc = _scons(built_ws, prefix=prefix)
        _one_error(proc, pattern)
        temps = assert_no_lies(built_ws, reference["outputs"], f"unreadable {rel}")
        assert not temps, temps
    finally:
        os.chmod(p, 0o644)
    _finish(built_ws, reference)


@pytest.mark.parametrize(
    "rel,pattern",
    [
        (
            "packages/Custom.Files/readme.txt",
            r"Custom\.Files\.wm\.xml:8: source packages/Custom\.Files/readme\.txt "
            r"is not a regular file",
        ),
        (
            "packages/Custom.Files/Custom.Files.wm.xml",
            r"Custom\.Files\.wm\.xml: .*(not a regular file|is a directory)",
        ),
        ("products/SampleA/TestOEMInput.xml", r"TestOEMInput\.xml: .*(not a regular file|is a directory)"),
        (
            "bsp/ContosoBoard/Packages/ContosoBoard.GPIO/contosogpio.inf",
            r"ContosoBoard\.GPIO\.wm\.xml:7: driver INF "
            r"\S+contosogpio\.inf is not a regular file",
        ),
        ("packages/OEMFMFileList.xml", r"OEMFMFileList\.xml: .*(not a regular file|is a directory)"),
    ],
    ids=["payload", "project", "oeminput", "inf", "fmfilelist"],
)
@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_input_that_is_not_a_file(reference, built_ws, rel, pattern, kind):
    """A FIFO must not hang the build (a blocked open() ignores even Ctrl-C), a directory must not
    become an SCons internal error: one line naming the file."""
    p = built_ws / rel
    data = p.read_bytes()
    p.unlink()
    if kind == "fifo":
        os.mkfifo(p)
    else:
        p.mkdir()
    try:
        proc = _scons(built_ws, timeout=60)
        _one_error(proc, pattern)
        temps = assert_no_lies(built_ws, reference["outputs"], f"{kind} in place of {rel}")
        assert not temps, temps
    finally:
        p.unlink() if kind == "fifo" else p.rmdir()
        p.write_bytes(data)
    _finish(built_ws, reference)


# ------------------------------------------------------------- outputs damaged behind SCons


@pytest.mark.parametrize(
    "rel",
    ["build/arm64/packages/Contoso.Custom.Files.cab", f"{OUT}/partitions/EFIESP.img", f"{OUT}/Flash.ffu"],
)
def test_truncated_output_is_rebuilt_not_trusted(reference, built_ws, rel):
    """An output cut short by a crash of another tool, a full disk during a copy, a killed build:
    its size or time no longer match what SCons recorded, so it is rebuilt."""
    p = built_ws / rel
    with open(p, "r+b") as fh:
        fh.truncate(os.path.getsize(p) // 2)
    _finish(built_ws, reference)


def test_stale_temp_files_are_removed_when_their_target_is_rebuilt(reference, built_ws):
    """A killed build leaves `.name.….partial` files and scratch directories; the next build of
    that target removes them."""
    cab = built_ws / "build/arm64/packages"
    parts = built_ws / OUT / "partitions"
    junk = [
        cab / ".Contoso.Custom.Files.cab.123-abcd.partial",
        parts / ".MainOS.img.x1y2.partial",
        parts / ".MainOS.img.stage-abc123",
        parts / ".MainOS.img.wim-def456",
        built_ws / OUT / ".Flash.ffu.zz.partial",
    ]
    for j in junk:
        if j.suffix == ".partial":
            j.write_bytes(b"half a file")
        else:
            (j / "stage").mkdir(parents=True)
    readme = built_ws / "packages/Custom.Files/readme.txt"
    original = readme.read_bytes()
    readme.write_bytes(original + b"edit\n")
    proc = _scons(built_ws)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not [j for j in junk if j.exists()], [j for j in junk if j.exists()]
    readme.write_bytes(original)
    _finish(built_ws, reference)


def test_sigterm_is_like_ctrl_c(reference, clean_ws):
    """`kill` (SIGTERM) of a running build: SCons stops, no traceback, nothing half-written."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "SCons", "-j2"],
        cwd=clean_ws,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**_environ(), "PYTHONUNBUFFERED": "1"},
        start_new_session=True,
    )
    for line in proc.stdout:
        if line.startswith("Partition "):
            break
    os.killpg(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert "Traceback" not in out + err, err
    assert proc.returncode in (0, 2), (proc.returncode, err)
    temps = assert_no_lies(clean_ws, reference["outputs"], "after SIGTERM")
    assert not temps, temps
    _finish(clean_ws, reference)
