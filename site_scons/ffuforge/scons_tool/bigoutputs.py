"""Partition images, FFUs and raw disks: their old versions are freed off the critical path.

SCons removes a target before its action runs (`Node.FS.File.prepare`), and unlinking a 1.4 GiB
MainOS.img or 1.2 GiB Flash.ffu frees its extents synchronously: 0.56 s of a one-driver edit
build (bench, 300 packages / 1 GiB, -j1) on the taskmaster's path. These targets are declared
`Precious`, so SCons leaves them alone, and their action renames the old file aside before it
runs (:func:`..util.atomic.retire`; `outputs.prepare`), where a background thread frees it. So
while the action runs the output's name is absent, exactly as SCons would leave it: a failed or
interrupted stage leaves no stale output under that name (outputs.py). Precious does not change
`scons -c`, which removes them as before. Their writers all write a temp file and rename it
(util.atomic), so the output is never partial; a CacheDir copy is renamed over it by
util.atomic.replace, which keeps the old one under an `.old-*` name for the background thread.

A build killed before its background removal finished leaves `.old-*` files in the image
folders: each run (a build or `scons -c`) removes those of other processes when it declares the
image (:func:`..util.atomic.sweep_old`).
"""

from __future__ import annotations

import os

from ..util import atomic

_SWEPT: set[str] = set()


def declare(env, nodes: list) -> None:
    """Mark `nodes` (partition images, Flash.ffu, Flash.img) as retired in the background."""
    atomic.defer_removals()
    env.Precious(nodes)
    for n in nodes:
        n.attributes.ffuforge_retire = True
        directory = os.path.dirname(n.get_abspath())
        if directory not in _SWEPT:
            _SWEPT.add(directory)
            atomic.sweep_old(directory)
