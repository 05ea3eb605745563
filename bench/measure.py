"""Measuring helpers shared by the benchmarks: timed child processes with the peak memory of
their whole process tree, reference tools, machine and load description."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")


def machine() -> str:
    cpu = "unknown cpu"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as fh:
            total = int(fh.readline().split()[1]) // 1024
            mem = f", {total / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, {cpu}{mem}, "
        f"Python {platform.python_version()}"
    )


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f}/{five:.2f}"


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        kids.setdefault(ppid, []).append(int(name))
    return kids


def _memory(pid: int) -> int:
    """Proportional set size (shared pages split between their users), else RSS, in bytes."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
            for line in fh:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        with open(f"/proc/{pid}/statm", "rb") as fh:
            return int(fh.read().split()[1]) * PAGE
    except OSError:
        return 0


def tree_memory(root: int) -> int:
    kids = _children()
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += _memory(pid)
        todo.extend(kids.get(pid, ()))
    return total


@dataclass
class Run:
    argv: list[str]
    seconds: float
    returncode: int
    stdout: str
    stderr: str
    peak_tree: int  # bytes: largest sampled sum of PSS over the process and its descendants
    maxrss: int  # bytes: largest RSS of any single process of the tree (getrusage)
    load_before: str = ""
    load_after: str = ""
    extra: dict = field(default_factory=dict)


def run(
    argv: list[str],
    *,
    cwd: Path | None = None,
    env: dict | None = None,
    poll: float = 0.05,
    check: bool = True,
) -> Run:
    """Run `argv`, sampling the memory of its process tree every `poll` seconds."""
    before = load()
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, tree_memory(proc.pid))
            stop.wait(poll)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out: list[bytes] = []
    err: list[bytes] = []
    readers = [
        threading.Thread(target=lambda s=s, b=b: b.append(s.read()), daemon=True)
        for s, b in ((proc.stdout, out), (proc.stderr, err))
    ]
    for r in readers:
        r.start()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    stop.set()
    sampler.join()
    for r in readers:
        r.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    result = Run(
        argv,
        seconds,
        proc.returncode,
        b"".join(out).decode("utf-8", "replace"),
        b"".join(err).decode("utf-8", "replace"),
        peak,
        usage.ru_maxrss * 1024,
        before,
        load(),
    )
    if check and result.returncode != 0:
        raise SystemExit(
            f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n"
            f"{result.stderr[-3000:]}"
        )
    return result


def best_of(n: int, fn):
    """Smallest of `n` timings (seconds) returned by fn()."""
    return min(fn() for _ in range(n))


def timed(argv: list[str], **kw) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    return time.perf_counter() - t0


def sha256sum_seconds(paths: list[Path]) -> float:
    """coreutils sha256sum over the files (already in the page cache: read them once first)."""
    subprocess.run(["cat", *map(str, paths)], stdout=subprocess.DEVNULL, check=True)
    return best_of(2, lambda: timed(["sha256sum", *map(str, paths)]))


def drop_file(path: Path) -> None:
    """Best effort: evict a file from the page cache (so that it stops competing for memory)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def mib(n: float) -> str:
    return f"{n / (1 << 20):.0f} MiB"


def python() -> str:
    return sys.executable


_BURN = (
    "import time\nt=time.perf_counter()\nx=0\nfor i in range(20_000_000): x+=i\nprint(time.perf_counter()-t)"
)


def cpu_parallelism(n: int = 2) -> float:
    """How much faster `n` CPU-bound processes get through `n` units of work than one process, now
    (n on an idle machine with n real cores; less with SMT siblings or other load): the ceiling
    for a -jN speed-up measured in the same run."""

    def burn(k: int) -> float:
        t0 = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-c", _BURN], stdout=subprocess.DEVNULL) for _ in range(k)]
        for p in procs:
            p.wait()
        return time.perf_counter() - t0

    one = min(burn(1) for _ in range(2))
    many = min(burn(n) for _ in range(2))
    return n * one / many
