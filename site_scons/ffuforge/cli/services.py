"""`ffuforge services`: see :mod:`.browse`."""

from .browse import services_main as main

__all__ = ["main"]
