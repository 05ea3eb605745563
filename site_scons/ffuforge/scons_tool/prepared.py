"""The package actions' share of partition work: each CAB this build writes is extracted by the
action that wrote it (:func:`ffuforge.image.extractcache.prepare`), in the package phase that
runs in parallel with -jN, instead of by the partition action that runs after every package.

Its own module so that actions.py stays the actions; what is declared here: the entries' folder
beside each CAB goes with `scons -c`.
"""

from __future__ import annotations

from pathlib import Path


def prepare_cab(cab: str, written=None) -> None:
    """Extract the CAB just written under `cab` (after its final rename: the entry's key holds its
    ctime); `written`: the members the build wrote into it (``Built.members``), read instead of the
    CAB (no inflation, no checksums). Never fails the package: without an entry the partition
    extracts the CAB itself."""
    from ..image import extractcache

    extractcache.prepare(Path(cab), written)


def clean_emitter(target, source, env):
    """An emitter declaring the prepared entries' folder beside each CAB for `scons -c`."""
    from ..image.extractcache import DIRNAME

    for t in target:
        env.Clean(t, t.dir.Dir(DIRNAME))
    return target, source
