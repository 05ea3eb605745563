"""A payload edited while `scons CACHE=` runs: the build fails naming it, or its outputs hold the
bytes it read and SCons recorded; nothing wrong reaches the cache or the SCons database.

A background writer rewrites `packages/Custom.Files/readme.txt` in place, alternating two versions
every few milliseconds for the whole build, each time with new bytes of another size (so the
package is built, never taken from the cache), in ten runs. After each run:

* exit 0: the README in the CAB (read by cabextract, not by ffuforge) is the version whose SHA-256
  SCons recorded for readme.txt (sconsign), so the next build decides from the truth;
* exit non-zero: one error line naming readme.txt, no traceback;

then, with readme.txt back to the original, the next `scons` in that checkout and a fresh checkout
that takes everything from the shared cache are byte-identical to a clean build, and a fresh
checkout of another version gets that version's clean-build bytes (nothing wrong was stored).
The same for the project file (wm.xml) edited between two versions while scons runs.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from outputs_util import assert_complete, copy_tree, snapshot
from scons_util import copy_workspace, stored_csigs

pytestmark = pytest.mark.e2e
PAYLOAD = "packages/Custom.Files/readme.txt"
CAB = "build/arm64/packages/Contoso.Custom.Files.cab"
PROJECT = "packages/Custom.Files/Custom.Files.wm.xml"
RUNS = 10


def _environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("SOURCE_DATE_EPOCH", "FFU_SIGN_PASSWORD")}


def _scons(ws: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "SCons", "-Q", *args],
        cwd=ws,
        capture_output=True,
        text=True,
        env=_environ(),
        timeout=300,
    )


def _readme_in_cab(cab: Path) -> bytes:
    if shutil.which("cabextract") is None:
        pytest.skip("cabextract is not installed (./bootstrap --test installs it)")
    r = subprocess.run(
        ["cabextract", "-q", "-p", "-F", "*README.txt", str(cab)], capture_output=True, check=True
    )
    return r.stdout


def _appended(original: bytes, seed: int, n: int) -> bytes:
    return original + f"edit {seed}.{n}{'!' * (n % 7)}\r\n".encode()


def _renamed(original: bytes, seed: int, n: int) -> bytes:
    """The project file with the README installed under a new name each time (n = 0: as it is)."""
    return original.replace(b'name="README.txt"', f'name="README-{seed}x{n}.txt"'.encode()) if n else original


def _writer(
    path: Path, original: bytes, stop: threading.Event, seed: int, written: list[bytes], make=_appended
):
    """Rewrite `path` in place (as an editor saving over it) with a new version each time, of
    another size each time: no version is in the cache, so every run builds the package."""
    rng = random.Random(seed)
    while not stop.is_set():
        version = make(original, seed, len(written))
        written.append(version)
        with open(path, "r+b") as fh:
            fh.write(version)
            fh.truncate()
        stop.wait(rng.uniform(0.001, 0.02))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    base = tmp_path_factory.mktemp("edit")
    ws = copy_workspace(base / "a")
    proc = _scons(ws)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    original = (ws / PAYLOAD).read_bytes()
    edited = original + b"edited while scons ran\r\n"
    other = copy_workspace(base / "b")
    (other / PAYLOAD).write_bytes(edited)
    proc = _scons(other)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    renamed = copy_workspace(base / "c")
    (renamed / PROJECT).write_bytes(_renamed((renamed / PROJECT).read_bytes(), 0, 1))  # README-0x1.txt
    proc = _scons(renamed)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {
        "outputs_renamed": snapshot(renamed)[0],
        "sources": copy_workspace(base / "sources"),
        "original": original,
        "edited": edited,
        "outputs": snapshot(ws)[0],
        "outputs_edited": snapshot(other)[0],
    }


def test_payload_edited_during_build(reference, tmp_path):
    cache = tmp_path / "cache"
    failed = 0
    for run in range(RUNS):
        ws = copy_tree(reference["sources"], tmp_path / f"ws{run}")
        payload = ws / PAYLOAD
        stop, written = threading.Event(), [reference["original"]]
        writer = threading.Thread(target=_writer, args=(payload, reference["original"], stop, run, written))
        writer.start()
        try:
            proc = _scons(ws, f"CACHE={cache}")
        finally:
            stop.set()
            writer.join()
        out = proc.stdout + proc.stderr
        assert "Traceback" not in out, out
        if proc.returncode == 0:
            recorded = stored_csigs(ws).get(PAYLOAD)
            in_cab = _readme_in_cab(ws / CAB)
            assert recorded == hashlib.sha256(in_cab).hexdigest(), (run, recorded, in_cab)
            assert in_cab in written, in_cab
        else:
            failed += 1
            errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("scons: *** ")]
            assert len(errors) == 1 and re.search(r"readme\.txt.*(changed|grew|shrank) while", errors[0]), (
                proc.stderr
            )
        # the edits are over: the next build is the clean build of what the file now holds
        payload.write_bytes(reference["original"])
        proc = _scons(ws, f"CACHE={cache}")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert_complete(ws, reference["outputs"], f"run {run}: next build")
        assert _scons(ws, "-q", f"CACHE={cache}").returncode == 0
    # nothing wrong was stored: fresh checkouts of either version retrieve the right bytes
    for name, content, outputs in (
        ("fresh", reference["original"], reference["outputs"]),
        ("fresh-edited", reference["edited"], reference["outputs_edited"]),
    ):
        fresh = copy_tree(reference["sources"], tmp_path / name)
        (fresh / PAYLOAD).write_bytes(content)
        proc = _scons(fresh, f"CACHE={cache}")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "warning" not in proc.stderr, proc.stderr
        assert_complete(fresh, outputs, name)
        if name == "fresh":
            assert not re.findall(r"^Package ", proc.stdout, re.M), proc.stdout  # all from the cache
    print(f"{failed} of {RUNS} runs stopped on the edit")


def test_project_file_edited_during_build(reference, tmp_path):
    """The package action plans the project again: a wm.xml edited since scons planned it gives
    another package than the one signed (and cached) under that plan, so the action stops."""
    cache = tmp_path / "cache"
    project = PROJECT
    original = (reference["sources"] / project).read_bytes()
    assert b'name="README.txt"' in original
    stopped = []
    for run in range(5):
        ws = copy_tree(reference["sources"], tmp_path / f"ws{run}")
        stop, written = threading.Event(), [original]
        writer = threading.Thread(target=_writer, args=(ws / project, original, stop, run, written, _renamed))
        writer.start()
        try:
            proc = _scons(ws, f"CACHE={cache}")
        finally:
            stop.set()
            writer.join()
        out = proc.stdout + proc.stderr
        assert "Traceback" not in out, out
        if proc.returncode != 0:
            errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("scons: *** ")]
            assert len(errors) == 1 and "Custom.Files" in errors[0], proc.stderr
            stopped.append(errors[0])
        (ws / project).write_bytes(original)
        proc = _scons(ws, f"CACHE={cache}")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert_complete(ws, reference["outputs"], f"run {run}: next build")
    # nothing wrong was stored under either version's key
    for name, version, outputs in (
        ("fresh", original, reference["outputs"]),
        ("fresh-renamed", _renamed(original, 0, 1), reference["outputs_renamed"]),
    ):
        fresh = copy_tree(reference["sources"], tmp_path / name)
        (fresh / project).write_bytes(version)
        proc = _scons(fresh, f"CACHE={cache}")
        assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stdout + proc.stderr
        assert_complete(fresh, outputs, name)
    print(f"{len(stopped)} of 5 runs stopped on the edit: {stopped}")
    # each run plans the project at SConscript time and again in the action while the file takes
    # a new version every few ms: the check must have fired (in 5 of 5 runs when written)
    assert any("changed while the build ran" in e for e in stopped), stopped
