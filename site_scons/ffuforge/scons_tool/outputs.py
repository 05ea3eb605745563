"""What a build leaves in its output folders: scratch of killed builds, stale image outputs, caches.

Every writer names its scratch after its target (`.<name>.….partial`, `.<name>.stage-…`), and only
its action writes that target, so the scratch is removed before the action runs again.

An image folder must never mix outputs of two builds: when the layout or a partition stage fails
(or is interrupted: Ctrl-C, SIGTERM), the Flash.ffu, raw disk and SBOM of the previous build are
removed, and a failed layout also removes the partition images and manifests it would have decided
(SCons removes a target itself before its action runs, and `prepare` retires the Precious big
ones (bigoutputs.py), so a failed partition's own files and the failed layout.json are gone
already). So after a failure `build/<cpu>/<Product>/<Config>/` holds
only outputs of the new build (packages.json, what was rewritten), and the next good build writes
the rest again; the extraction cache stays, so that costs little. A build killed with SIGKILL runs
no cleanup: what it did not rewrite stays until the next build replaces it.
"""

from __future__ import annotations

import os
import re
import shutil

from ..util import atomic

IMAGE_OUTPUTS = ("Flash.ffu", "Flash.img", "Flash.spdx.json")


def prepare(node) -> None:
    """Before a target's action runs: the scratch a killed build left beside it, and for a big
    output declared by bigoutputs.py the previous file, which SCons left (Precious)."""
    path = node.get_abspath()
    remove_leftovers(path)
    if getattr(node.attributes, "ffuforge_retire", False):
        atomic.retire(path)


def remove_leftovers(path: str) -> None:
    """Temp files and scratch directories a killed build left beside `path`."""
    directory, name = os.path.split(path)
    pattern = re.compile(rf"\.+{re.escape(name)}\.")
    try:
        entries = os.listdir(directory)
    except OSError:
        return
    for entry in entries:
        if pattern.match(entry):
            full = os.path.join(directory, entry)
            if os.path.isdir(full) and not os.path.islink(full):
                shutil.rmtree(full, ignore_errors=True)
            else:
                _unlink(full)


def _unlink(path: str) -> None:
    atomic.retire(path)  # a big file is freed in the background when the build defers removals


def drop_image_outputs(image_dir: str) -> None:
    """The previous build's FFU, raw disk and SBOM in `image_dir`: about to be out of date."""
    for name in IMAGE_OUTPUTS:
        _unlink(os.path.join(image_dir, name))


def drop_partitions(image_dir: str) -> None:
    """Partition images, their chunk digests (blocksig sidecars) and manifests of the previous
    build (a layout that failed decided none).
    UpdateOS.wim and its manifest stay: they do not depend on the layout (a target of their own)."""
    part_dir = os.path.join(image_dir, "partitions")
    try:
        entries = os.listdir(part_dir)
    except OSError:
        return
    for entry in entries:
        if entry.endswith((".img", ".json", ".img.chunks")) and not entry.lower().startswith("updateos."):
            _unlink(os.path.join(part_dir, entry))


def layout_failed(target) -> None:
    image_dir = os.path.dirname(target[0].get_abspath())
    drop_image_outputs(image_dir)
    drop_partitions(image_dir)


def partition_failed(target) -> None:
    drop_image_outputs(os.path.dirname(os.path.dirname(target[0].get_abspath())))


def clean_caches(env) -> None:
    """`scons -c` also removes the caches under build/.ffuforge (plans, CAB facts): with cleaning
    they are neither read nor saved (plancache.cache_file), so nothing writes them again."""
    from .plancache import cache_file

    file = cache_file(env, "", cleaning=False)
    if file:
        env.Clean("all", os.path.dirname(file))
