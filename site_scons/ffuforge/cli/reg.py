"""`ffuforge reg`: see :mod:`.browse`."""

from .browse import reg_main as main

__all__ = ["main"]
