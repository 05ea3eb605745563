"""No traceback for a Ctrl-C that reaches scons while it exits.

Once the build is over — the interpreter joining the worker pool's threads and running atexit
handlers — a Ctrl-C printed a KeyboardInterrupt traceback or killed scons silently by SIGINT.
There is nothing left to interrupt then, so SIGINT is ignored from the first exit hook on.
"""

from __future__ import annotations

import signal
import threading

_HOOKED: list[bool] = []


def _ignore_ctrl_c_at_exit() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def install() -> None:
    # threading's exit hooks run first when the interpreter exits: concurrent.futures' hooks,
    # registered at import, run after them (in reverse order of registration).
    register = getattr(threading, "_register_atexit", None)
    if register is not None and not _HOOKED:
        _HOOKED.append(True)
        register(_ignore_ctrl_c_at_exit)
