"""Atomic outputs: renamed into place whole, with the permissions open() would give them."""

import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading

import pytest

from ffuforge.util import atomic


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_outputs_get_the_mode_open_gives(tmp_path):
    atomic.write_bytes(tmp_path / "a.json", b"{}")
    with open(tmp_path / "b.json", "wb") as fh:
        fh.write(b"{}")
    mode = stat.S_IMODE((tmp_path / "a.json").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "b.json").stat().st_mode) == 0o666 & ~_umask()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json"]  # no temp file left


def test_failed_block_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic.atomic_output(tmp_path / "x.ffu") as fh:
        fh.write(b"half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------ deferred removal of old outputs

BIG = 3 << 20  # over atomic.DEFER_MIN_BYTES once allocated


def _run(code: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from ffuforge.util import atomic\n" + textwrap.dedent(code)],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
        text=True,
        check=False,
    )


def _olds(directory) -> list[str]:
    return sorted(p for p in os.listdir(directory) if atomic.OLD_NAME.match(p))


def test_replaced_big_file_is_freed_by_the_time_the_process_exits(tmp_path):
    r = _run(
        """
        import os
        atomic.defer_removals()
        atomic.write_bytes("MainOS.img", b"a" * (3 << 20))
        st = os.stat("MainOS.img")
        atomic.write_bytes("MainOS.img", b"b" * (3 << 20))
        with atomic.atomic_path("Flash.ffu") as tmp:
            tmp.write_bytes(b"c" * (3 << 20))
        with atomic.atomic_path("Flash.ffu") as tmp:
            tmp.write_bytes(b"d")
        atomic.retire("MainOS.img")  # as before its action runs again
        print(st.st_ino)
        """,
        tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(tmp_path)) == ["Flash.ffu"]  # no .old-* left, the retired one gone
    assert (tmp_path / "Flash.ffu").read_bytes() == b"d"


def test_the_output_is_never_missing_or_partial(tmp_path, monkeypatch):
    """Replacing a big file: the old one keeps a second name until the background thread frees
    it, and the output's name always holds one complete version (a rename replaces it)."""
    atomic.defer_removals()
    remover = atomic._remover()
    assert remover is not None
    held = []
    monkeypatch.setattr(remover, "queue", type("Q", (), {"put": staticmethod(held.append)})())
    out = tmp_path / "MainOS.img"
    atomic.write_bytes(out, b"a" * BIG)
    ino = out.stat().st_ino
    atomic.write_bytes(out, b"b" * BIG)
    assert out.read_bytes() == b"b" * BIG
    assert len(held) == 1 and os.stat(held[0]).st_ino == ino  # the old file, not yet freed
    assert os.path.dirname(held[0]) == str(tmp_path) and atomic.OLD_NAME.match(os.path.basename(held[0]))
    monkeypatch.undo()
    remover.queue.put(held[0])

    seen, stop = set(), threading.Event()

    def watch():
        while not stop.is_set():
            try:
                with open(out, "rb") as fh:
                    data = fh.read()
            except FileNotFoundError:
                seen.add("missing")
                continue
            seen.add(data[:1] if len(data) == BIG and len(set(data)) == 1 else b"partial")

    t = threading.Thread(target=watch)
    t.start()
    try:
        for i in range(8):
            atomic.write_bytes(out, bytes([ord("c") + i]) * BIG)
    finally:
        stop.set()
        t.join()
    assert "missing" not in seen and b"partial" not in seen, seen
    assert out.read_bytes() == b"j" * BIG


def test_without_deferral_files_are_replaced_and_removed_at_once(tmp_path):
    r = _run(
        """
        atomic.write_bytes("big", b"a" * (3 << 20))
        atomic.write_bytes("big", b"b")  # deferral off: replaced as by os.replace
        atomic.retire("missing")  # nothing there: nothing to do
        atomic.retire("big")
        """,
        tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert os.listdir(tmp_path) == []


def test_a_killed_process_leaves_only_old_files_the_next_run_removes(tmp_path):
    r = _run(
        """
        import os, signal
        atomic._Remover._run = lambda self: None  # killed before its background removal ran
        atomic.defer_removals()
        atomic.write_bytes("Flash.ffu", b"a" * (3 << 20))
        atomic.write_bytes("Flash.ffu", b"b" * (3 << 20))
        atomic.write_bytes("MainOS.img", b"c" * (3 << 20))
        atomic.retire("MainOS.img")
        os.kill(os.getpid(), signal.SIGKILL)
        """,
        tmp_path,
    )
    assert r.returncode == -signal.SIGKILL
    olds = _olds(tmp_path)
    assert len(olds) == 2 and (tmp_path / "Flash.ffu").read_bytes() == b"b" * (3 << 20)
    (tmp_path / ".keep.old-x").write_bytes(b"")  # not one of ours: stays
    r = _run("atomic.defer_removals()\natomic.sweep_old('.')\n", tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(tmp_path)) == [".keep.old-x", "Flash.ffu"]
    atomic.sweep_old(tmp_path)  # without deferral: at once


def test_a_scratch_tree_is_removed_in_the_background_or_at_once(tmp_path, monkeypatch):
    r = _run(
        """
        import os
        atomic.defer_removals()
        with atomic.scratch_dir(".MainOS.img.stage-", ".") as tmp:
            os.makedirs(os.path.join(tmp, "stage", "Windows"))
            for i in range(50):
                path = os.path.join(tmp, "stage", "Windows", str(i))
                open(path, "w").close()
                os.chmod(path, 0o444)  # staged files are read-only links
        print(sorted(os.listdir(".")))  # the tree is already gone from its name
        """,
        tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert not any(n.startswith(".MainOS.img.stage-") for n in eval(r.stdout))  # noqa: S307 - our own print
    assert os.listdir(tmp_path) == []  # and removed by the time the process exited
    monkeypatch.setattr(atomic, "_REMOVER", None)  # no deferral in this process: removed at once
    with atomic.scratch_dir(".x.stage-", tmp_path) as tmp:
        (tmp_path / os.path.basename(tmp) / "f").write_bytes(b"1")
    assert os.listdir(tmp_path) == []


def test_a_killed_process_s_scratch_tree_is_swept(tmp_path, monkeypatch):
    r = _run(
        """
        import os, signal
        atomic._Remover._run = lambda self: None  # killed before its background removal ran
        atomic.defer_removals()
        with atomic.scratch_dir(".MainOS.img.stage-", ".") as tmp:
            os.makedirs(os.path.join(tmp, "stage"))
            open(os.path.join(tmp, "stage", "f"), "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
        """,
        tmp_path,
    )
    assert r.returncode == -signal.SIGKILL
    assert len(_olds(tmp_path)) == 1
    monkeypatch.setattr(atomic, "_REMOVER", None)
    atomic.sweep_old(tmp_path)
    assert os.listdir(tmp_path) == []
