"""`ffuforge cat`: see :mod:`.browse`."""

from .browse import cat_main as main

__all__ = ["main"]
