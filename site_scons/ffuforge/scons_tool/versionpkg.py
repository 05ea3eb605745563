"""The product's version package (`<OEM>.<Product>.Registry.Version`, like the kit's), declared for
every image with a MainOS; kept out of methods.Image so that the image's declaration stays small."""

from __future__ import annotations

import json

from .actions import GENERATED_BUILDER
from .nodes import rel_path, spec_value
from .state import PACKAGES, PackageRecord


def declare(env, outdir, *, owner: str, product: str, config: str, oeminput: str, cpu: str, epoch, signer):
    """Declare the CAB in `outdir`/packages; returns (package name, CAB path relative to the top)."""
    name = f"{owner}.{product}.Registry.Version"
    pp = outdir.File(f"packages/{name}.cab")
    pspec = {
        "kind": "version",
        "name": name,
        "owner": owner,
        "product": product,
        "config": config,
        "oeminput": oeminput,
        "cpu": cpu,
        "version": env.subst("$FFU_VERSION"),
        "build_type": env.subst("$FFU_BUILD_TYPE"),
        "epoch": epoch,
        "compression": env.subst("$FFU_COMPRESSION"),
        "signer": signer.identity if signer else None,
    }
    GENERATED_BUILDER(env, pp, [spec_value(env, pp, json.dumps(pspec, sort_keys=True))])
    PACKAGES[pp.abspath] = PackageRecord(name, "MainOS", "Production", oeminput)
    return name, rel_path(env, pp)
