"""One CAB target of a package project, signed by its resolved content (see methods.Package);
its own module so that Package stays readable now that a CAB may be declared once per product."""

from __future__ import annotations

import json

from .actions import PACKAGE_BUILDER
from .nodes import fail, spec_value
from .state import OWNERS, PACKAGES, PackageRecord


def declare_cab(env, target, v, rel: str, spec: dict, signer, sign_pe) -> list:
    """The CAB `target` for the planned package `v` of project `rel` (spec: its build spec)."""
    owner = OWNERS.setdefault(target.abspath, rel)
    if owner != rel:
        fail(f"{rel}: package {v.cab_name} is also built from {owner}; give one of them another name")
    # Variables reach the signature through the resolved content, not wholesale: a product
    # variable that a package does not use does not rebuild it.
    # The signer enters by identity (certificate fingerprints or command), never key material.
    signed = {
        "content": v.content,
        "compression": spec["compression"],
        "epoch": spec["epoch"],
        "signer": signer.identity if signer else None,
        "signPE": bool(env.get("FFU_SIGN_PE") if sign_pe is None else sign_pe) and signer is not None,
    }
    value = spec_value(env, target, json.dumps(signed, sort_keys=True), origin=rel)
    job = json.dumps({"project": rel, "spec": spec}, sort_keys=True)
    owner_type = v.content.get("ownerType") or "OEM"
    PACKAGES[target.abspath] = PackageRecord(
        v.name, v.partition, v.release_type, rel, v.layout_files, owner_type, v.warnings
    )
    nodes = PACKAGE_BUILDER(env, target, [value], FFU_PKG_JOB=job)
    target.attributes.ffuforge_inputs = v.content["inputs"]  # for the scanner: no JSON to parse again
    return nodes
