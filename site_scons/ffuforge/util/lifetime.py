"""Processes ffuforge starts die with the process that started them.

A SIGKILLed `scons` (a lab builder's timeout, the OOM killer, `kill -9`) runs no cleanup: its pool
workers and the tools they run would go on for minutes, writing into a tree the next build owns.
Linux's PR_SET_PDEATHSIG (prctl(2)) makes the kernel send a signal to a process when its parent
dies. Two details make it exact:

- set in the child, the parent may already be gone (the child then belongs to init or a
  subreaper and never gets the signal): so after setting it the child compares getppid() with
  the pid it was started by, and exits if they differ;
- "parent" is the *thread* that forked: the signal comes when that thread ends, even if the
  process lives on (man 2 prctl). Callers start children from a thread that lives as long as the
  process (:mod:`.workers` has one for its pool) or that waits for the child (subprocess.run).

External tools get the same through util-linux's `setpriv --pdeathsig KILL` and a `sh` that
checks `$PPID` before it execs the tool (pdeathsig survives execve of non-setuid programs).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_TOOL_CHECK = 'test "$PPID" = "$0" || exit 125; exec "$@"'


def die_with_parent(parent: int, sig: int = signal.SIGKILL) -> None:
    """Called first thing in a child: `sig` when `parent` (its pid) dies, at once if it already
    has. No-op where prctl is missing (not Linux): the child then outlives a killed parent."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    if prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        return
    if os.getppid() != parent:  # the parent died before the prctl: nobody will signal us
        os._exit(1)


def _setpriv() -> str | None:
    found = shutil.which("setpriv") or (
        "/usr/bin/setpriv" if os.access("/usr/bin/setpriv", os.X_OK) else None
    )
    return found


SETPRIV = _setpriv()


def tied(argv: list[str]) -> list[str]:
    """`argv` prefixed so that the tool gets SIGKILL when this process dies (see the module
    docstring); `argv` unchanged where util-linux's setpriv is missing."""
    if SETPRIV is None:
        return list(argv)
    return [SETPRIV, "--pdeathsig", "KILL", "--", "/bin/sh", "-c", _TOOL_CHECK, str(os.getpid()), *argv]
