"""`ffuforge ls`: see :mod:`.browse`."""

from .browse import ls_main as main

__all__ = ["main"]
