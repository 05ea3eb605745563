"""Issue 17 (Deliver 7): worker processes and tools die with the process that started them, whatever
the timing: the pool's workers, the tools fstools runs (mkntfs, mtools, the NTFS helper)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ffuforge.util import lifetime

SITE = str(Path(__file__).resolve().parents[2] / "site_scons")


def _session(sid: int) -> list[int]:
    """Live (not zombie) processes of session `sid`: everything a parent started in its own session."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # state ppid pgrp session ...
        if int(fields[3]) == sid and fields[0] != "Z":
            out.append(int(d))
    return out


def _parent(script: str) -> subprocess.Popen:
    """A python parent in its own session; it prints READY once its children run."""
    code = f"import sys; sys.path.insert(0, {SITE!r})\n" + textwrap.dedent(script)
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True
    )


def _kill_and_count(proc: subprocess.Popen, timeout: float = 60) -> tuple[int, list[int]]:
    """SIGKILL the parent alone (not its group) once it is READY; the session's survivors 2 s later."""
    deadline = time.monotonic() + timeout
    line = proc.stdout.readline()
    assert line.strip() == "READY", line
    before = [p for p in _session(proc.pid) if p != proc.pid]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    end = time.monotonic() + 2
    left = before
    while time.monotonic() < end and left:
        time.sleep(0.05)
        left = _session(proc.pid)
    for pid in left:  # do not leave them behind for the next test
        os.kill(pid, signal.SIGKILL)
    assert time.monotonic() < deadline
    return len(before), left


def test_pool_workers_die_with_their_parent():
    """Workers started by a thread that has ended since (as SCons' job threads end) live on while
    the parent lives, and die within 2 s of a SIGKILL of the parent."""
    proc = _parent(
        """
        import threading, time
        from ffuforge.util import workers
        t = threading.Thread(target=lambda: workers.call(time.sleep, 0.01, jobs=2))
        t.start(); t.join()  # the thread that submitted is gone
        time.sleep(0.5)
        # one sleeps, one holds the GIL in C for minutes (no thread of its own could run to notice)
        futs = [threading.Thread(target=workers.call, args=a, kwargs={"jobs": 2}, daemon=True)
                for a in ((time.sleep, 60), (sum, range(10**12)))]
        for f in futs: f.start()
        time.sleep(1.0)
        print("READY", flush=True)
        time.sleep(120)
        """
    )
    started, left = _kill_and_count(proc)
    assert started >= 2, "the workers were running when the parent was killed"
    assert left == [], f"workers outlived their parent: {left}"


def test_tools_die_with_their_parent(tmp_path):
    proc = _parent(
        f"""
        import threading, time
        from pathlib import Path
        from ffuforge.formats import fstools
        threading.Thread(target=fstools.run, args=(["sleep", "60"], Path({str(tmp_path)!r})), daemon=True).start()
        time.sleep(1.0)
        print("READY", flush=True)
        time.sleep(120)
        """
    )
    started, left = _kill_and_count(proc)
    assert started == 1 and left == []


def test_a_child_whose_parent_is_already_gone_exits():
    """The race: the parent died before the child's prctl. getppid() is then not the pid it was
    started by, and the child exits instead of running on."""
    code = f"import sys; sys.path.insert(0, {SITE!r}); from ffuforge.util import lifetime; "
    bad = subprocess.run(
        [sys.executable, "-c", code + "lifetime.die_with_parent(1); print('alive')"],
        capture_output=True,
        text=True,
    )
    assert (bad.returncode, bad.stdout) == (1, "")
    good = subprocess.run(
        [sys.executable, "-c", code + "import os; lifetime.die_with_parent(os.getppid()); print('alive')"],
        capture_output=True,
        text=True,
    )
    assert (good.returncode, good.stdout) == (0, "alive\n")


def test_tied_tool_refuses_to_run_without_its_parent():
    """The same check for external tools: the `sh` between setpriv and the tool compares $PPID."""
    if lifetime.SETPRIV is None:
        pytest.skip("setpriv (util-linux) is not installed")
    argv = lifetime.tied(["echo", "ran"])
    ok = subprocess.run(argv, capture_output=True, text=True)
    assert (ok.returncode, ok.stdout) == (0, "ran\n")
    argv[argv.index(str(os.getpid()))] = "1"  # as if the parent were gone before the check
    gone = subprocess.run(argv, capture_output=True, text=True)
    assert (gone.returncode, gone.stdout) == (125, "")
