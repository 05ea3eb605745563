"""Heavy action work in worker processes, so that `scons -jN` builds packages on N cores.

SCons runs parallel jobs as threads of one Python process. Building a package is mostly Python
(CAB checksums, manifests, catalogs, signing) and holds the GIL, so two threads built packages
no faster than one (measured: slower, from GIL hand-offs). An action therefore hands its work to
a pool of N worker processes (N = -j) and waits for it; waiting releases the GIL.

The work is a module-level function of plain, picklable arguments; what it returns or raises
(an FFUError keeps its message, file and line) comes back exactly as from a direct call, and its
output is written by the same code, so files are byte for byte those of an in-process build.
Workers are started with the 'spawn' method, never forked from the threaded SCons process, on
first use only. With -j1 (or no pool) the function simply runs in the calling thread.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import queue
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from . import lifetime

T = TypeVar("T")

_LOCK = threading.Lock()
_POOL: concurrent.futures.ProcessPoolExecutor | None = None
_SPAWNER: queue.SimpleQueue | None = None


def _pool(jobs: int) -> concurrent.futures.ProcessPoolExecutor:
    global _POOL
    with _LOCK:
        if _POOL is None:
            _POOL = concurrent.futures.ProcessPoolExecutor(
                jobs,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_init,
                initargs=(os.getpid(),),
            )
            # runs before concurrent.futures' own exit hook (registered earlier, called later)
            threading._register_atexit(_ignore_interrupts_at_exit)  # type: ignore[attr-defined]
        return _POOL


def _ignore_interrupts_at_exit() -> None:
    """At interpreter exit concurrent.futures tells the workers to stop and multiprocessing joins
    them; a Ctrl-C between the two (the user's, as the build ends) left the join waiting forever
    for a worker that was never told. The process is ending: from here on Ctrl-C is ignored
    (the idle workers stop at once)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _worker_init(parent: int) -> None:
    """First thing in a worker: die with the build (PR_SET_PDEATHSIG, :mod:`.lifetime`), so that
    none outlives a SIGKILLed scons to rename an output into place under the next build. Its
    parent thread is the spawner (see `_spawned`), which lives as long as the process. Ctrl-C
    reaches the whole process group: SCons stops the build and says so once, workers finish their
    job instead of dying with a KeyboardInterrupt traceback."""
    lifetime.die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked since birth: see _spawner


def _spawner_loop(jobs: queue.SimpleQueue) -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    while True:
        task, box, done = jobs.get()
        try:
            box.append(task())
        except BaseException as exc:  # handed back to the caller, raised there
            box.append(exc)
        done.set()


def _spawned(task: Callable[[], T]) -> T:
    """`task()` (which submits to the pool, and so may start workers) on the one thread that
    starts every worker. PR_SET_PDEATHSIG fires when the thread that started a process ends, and
    SCons' job threads end with each build; this one never does. It also keeps Ctrl-C blocked, so
    workers inherit the mask and a Ctrl-C while they start up (importing, before _worker_init
    ignores it) stays pending instead of printing a KeyboardInterrupt traceback from each."""
    global _SPAWNER
    with _LOCK:
        if _SPAWNER is None:
            _SPAWNER = queue.SimpleQueue()
            threading.Thread(
                target=_spawner_loop, args=(_SPAWNER,), name="ffuforge-spawner", daemon=True
            ).start()
        jobs = _SPAWNER
    box: list[Any] = []
    done = threading.Event()
    jobs.put((task, box, done))
    done.wait()
    if isinstance(box[0], BaseException):
        raise box[0]
    return box[0]


def _discard(pool: concurrent.futures.ProcessPoolExecutor) -> None:
    global _POOL
    with _LOCK:
        if _POOL is pool:
            _POOL = None
    pool.shutdown(wait=False, cancel_futures=True)


def _submit(
    pool: concurrent.futures.ProcessPoolExecutor, fn: Callable[..., T], *args
) -> concurrent.futures.Future:
    """pool.submit, on the spawner thread (see `_spawned`)."""
    return _spawned(lambda: pool.submit(fn, *args))


def call(fn: Callable[..., T], *args, jobs: int) -> T:
    """`fn(*args)`: in a worker process when `jobs` > 1, else here.

    A pool that cannot take work (interpreter shutting down, a worker killed by the OOM killer)
    is not an error of the job: it then runs here, where it fails, if it does, as with -j1."""
    if jobs <= 1:
        return fn(*args)
    pool = _pool(jobs)
    try:
        future = _submit(pool, fn, *args)
    except (RuntimeError, BrokenProcessPool):
        _discard(pool)
        return fn(*args)
    try:
        return future.result()
    except BrokenProcessPool:
        _discard(pool)
        return fn(*args)


def imap(fn: Callable[..., T], calls: list[tuple], *, jobs: int) -> Iterator[T]:
    """`fn(*args)` for each args of `calls`, results (or exceptions) in that order: all submitted at
    once to the workers when `jobs` > 1, else each computed here when it is asked for. Closing the
    iterator early cancels what has not started."""
    if jobs <= 1 or len(calls) <= 1:
        for args in calls:
            yield fn(*args)
        return
    pool = _pool(jobs)
    futures: list[concurrent.futures.Future] = []
    try:
        for args in calls:
            futures.append(_submit(pool, fn, *args))
    except (RuntimeError, BrokenProcessPool):
        _discard(pool)
        for future in futures:
            future.cancel()
        concurrent.futures.wait(futures)
        for args in calls:
            yield fn(*args)
        return
    try:
        for future, args in zip(futures, calls, strict=True):
            try:
                result = future.result()
            except BrokenProcessPool:
                _discard(pool)
                result = fn(*args)
            yield result
    finally:
        for future in futures:
            future.cancel()


def shutdown() -> None:
    """Stop the workers (tests; the interpreter also does it at exit)."""
    global _POOL
    with _LOCK:
        pool, _POOL = _POOL, None
    if pool is not None:
        pool.shutdown(wait=True)
