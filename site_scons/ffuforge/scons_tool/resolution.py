"""packages.json's content: the image's package resolution, with what the graph adds to it (the
INF warnings of the CABs this build makes, and the generated version package)."""

from __future__ import annotations

import os
from pathlib import Path

from . import provisioning
from .nodes import relative_paths
from .state import PACKAGES


def packages_doc(
    res, top: Path, generated: list[tuple[str, str]], oeminput: str, partitions: dict[str, list[str]]
) -> dict:
    """The resolution `res` as packages.json shows it (paths relative to `top`), with the route each
    provisioning package of the image's CABs (`partitions`: name -> CABs) took."""
    for pk in res.packages():  # INF warnings of the CABs this build makes, with their package
        rec = PACKAGES.get(os.path.normpath(str(top / pk.path)))
        pk.warnings = list(rec.warnings) if rec is not None else []
    origins = {
        PACKAGES[p].name: PACKAGES[p].origin
        for cabs in partitions.values()
        for c in cabs
        if (p := os.path.normpath(str(top / c))) in PACKAGES
    }
    doc = relative_paths({**res.to_json(), "provisioning": provisioning.report(origins)}, str(top))
    for pkg_name, cab in generated:  # packages.json lists what the image holds, generated ones too
        doc["partitions"].setdefault("MainOS", []).append(
            {"fip": False, "generated": True, "name": pkg_name, "partition": "MainOS", "path": cab,
             "reasons": ["the product's version package (generated)"], "sources": [oeminput]}
        )  # fmt: skip
    return doc
