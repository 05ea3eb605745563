"""`ffuforge drivers`: see :mod:`.browse`."""

from .browse import drivers_main as main

__all__ = ["main"]
