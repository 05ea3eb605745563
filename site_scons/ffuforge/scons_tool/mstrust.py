"""MSPACKAGE_ROOTS: which CABs of an image must verify against which root certificates.

Kept out of methods.Image so that the image's declaration stays readable: the check itself runs in
the layout stage (image.policy.check_trusted), before any image work.
"""

from __future__ import annotations

import os
from pathlib import Path

from .nodes import fail, rel_path, source_file


def trust_spec(env, ms_root: str | None, cabs: list[str]) -> dict | None:
    """{"roots": [...], "cabs": [...]} (paths relative to the top of the tree) when the user
    declared roots: the CABs among `cabs` that come from the Microsoft package root `ms_root`."""
    roots = []
    for r in env["FFU_MSPACKAGE_ROOTS"]:  # relative to the top of the tree, like MSPACKAGE
        node = source_file(env, r if os.path.isabs(r) else "#" + r, "a root certificate")
        if not os.path.isfile(node.abspath):
            fail(
                f"MSPACKAGE_ROOTS: {r}: no such certificate file (paths are relative to the top of the tree)"
            )
        roots.append(rel_path(env, node))
    if not roots:
        return None
    top = Path(env.Dir("#").abspath)
    ms_dir = (top / ms_root).resolve() if ms_root else None
    ms_cabs = [c for c in cabs if ms_dir is not None and (top / c).resolve().is_relative_to(ms_dir)]
    return {"roots": roots, "cabs": ms_cabs}
