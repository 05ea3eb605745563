"""The image's SBOM target (Flash.spdx.json beside Flash.ffu): declared by Image(), written by
:mod:`ffuforge.image.sbom` from the partition manifests and the CABs.

Its own module (not actions.py/methods.py) so the image glue stays small; the action is signed by
image.sbom's code like every other action.
"""

from __future__ import annotations

import json
from pathlib import Path

from .actions import build_errors, builder
from .nodes import spec_value

FILENAME = "Flash.spdx.json"


def _oeminput(target, source, env) -> str:
    return json.loads(source[0].read())["oeminput"]


@build_errors(where=_oeminput)
def _sbom_action(target, source, env):
    from ..image import cabfacts, sbom
    from .plancache import cache_file

    spec = json.loads(source[0].read())
    top = Path(env.Dir("#").abspath)
    manifests = {name: Path(s.abspath) for name, s in zip(spec["manifests"], source[1:], strict=False)}
    sbom.write_sbom(
        Path(target[0].abspath),
        {name: [top / c for c in cabs] for name, cabs in spec["partitions"].items()},
        manifests,
        product=spec["product"],
        config=spec["config"],
        cpu=spec["cpu"],
        version=spec["version"],
        oem=spec["oem"],
        oeminput=spec["oeminput"],
        epoch=spec["epoch"],
        facts=cabfacts.cache(cache_file(env, cabfacts.FILENAME)),
    )
    return 0


SBOM_BUILDER = builder(_sbom_action, "image.sbom", "SBOM")


def written_identity(out_path: str, built, signer) -> dict | None:
    """The SBOM's identity of a CAB the package action has just written (`built`: what
    package.build returned; in the action's worker, while the CAB is in the page cache), for
    :func:`record_written`; None for a CAB signed by an external command (its signer is
    known only from the file)."""
    import hashlib
    from dataclasses import asdict

    from ..image import sbom
    from ..signing.signers import KeySigner

    if signer is not None and not isinstance(signer, KeySigner):
        return None
    sha256 = built.sha256
    if sha256 is None:  # compressed, or a signature of another size than the last: read back
        with open(out_path, "rb") as fh:
            sha256 = hashlib.file_digest(fh, "sha256").hexdigest()
    subject = signer.certificates[0].subject.rfc4514_string() if signer is not None else ""
    return asdict(sbom.written_identity(built.mum, Path(out_path), subject, sha256))


def record_written(env, cab: str, presigned: tuple, identity: dict | None) -> None:
    """Keep the identity of a CAB this build wrote in the CAB facts (as image.sbom.cab_identity
    would find it there), so the SBOM action reads none of the CABs the build wrote."""
    if identity is None:
        return
    from ..image import cabfacts, sbom
    from .plancache import cache_file

    facts = cabfacts.cache(cache_file(env, cabfacts.FILENAME))
    if facts is not None:
        facts.put(cab, sbom.facts_key(), identity, presigned)


def declare(env, outdir, spec: dict, manifests: dict, cabs: list[str], updateos=None) -> list:
    """Flash.spdx.json in `outdir`, from `spec` (partitions -> CABs relative to the top, product,
    config, cpu, oem, oeminput, epoch), the partition manifest nodes by partition name and the CABs
    (relative to the top). `updateos`: (UpdateOS.json node, its CABs): the packages and files of
    MainOS's UpdateOS.wim, listed as a partition of their own."""
    spec = {**spec, "version": env.subst("$FFU_VERSION")}
    if updateos is not None:
        manifests = {**manifests, "UpdateOS": updateos[0]}
        spec["partitions"] = {**spec["partitions"], "UpdateOS": updateos[1]}
        cabs = sorted(set(cabs) | set(updateos[1]))
    value = spec_value(
        env, outdir.File(FILENAME), json.dumps({**spec, "manifests": list(manifests)}, sort_keys=True)
    )
    sources = [value, *manifests.values()] + [env.File("#" + c) for c in cabs]
    return SBOM_BUILDER(env, outdir.File(FILENAME), sources)
