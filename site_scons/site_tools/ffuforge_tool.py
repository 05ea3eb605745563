"""Site tool entry point: `Environment(tools=['default', 'ffuforge_tool'])`.

Named so that it does not shadow the `ffuforge` library package on sys.path.
"""

from ffuforge.scons_tool import exists, generate

__all__ = ["generate", "exists"]
