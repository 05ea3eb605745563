"""The UpdateOS.wim node: UpdateOS packages installed into a new tree and captured (image.updateos).

One target per image, ``partitions/UpdateOS.wim`` (+ ``UpdateOS.json``, what it holds), built from
exactly the CABs that target UpdateOS; the layout (MainOS's size) and the MainOS partition depend
on it, so an edited UpdateOS package rebuilds the WIM and MainOS, and the layout only re-evaluates.
"""

from __future__ import annotations

import json
from pathlib import Path

from .actions import build_errors, builder
from .state import PACKAGES


def _where(target, source, env) -> str:
    return json.loads(source[0].read())["oeminput"]


@build_errors(where=_where)
def _updateos_action(target, source, env):
    from SCons.Script import GetOption

    from ..image import extractcache, updateos

    spec = json.loads(source[0].read())
    top = Path(env.Dir("#").abspath)
    out = Path(target[0].abspath)
    updateos.build_wim(
        [top / c for c in spec["cabs"]],
        out,
        Path(target[1].abspath),
        epoch=spec["epoch"],
        cpu=spec["cpu"],
        generated=[top / c for c in spec["fips"]],
        cache_dir=out.parent / extractcache.DIRNAME / updateos.NAME,
        jobs=GetOption("num_jobs") or 1,
    )
    return 0


UPDATEOS_BUILDER = builder(_updateos_action, "image.updateos", "UpdateOS")


def check_names(packages, oeminput: str, top: Path) -> None:
    """Refuse, before anything is built, an UpdateOS package UpdateDLL would refuse, at the FM
    line that lists it: CABs this build makes by their project's ownerType, others by their
    update.mum (the UpdateOS action checks every CAB again, from its update.mum)."""
    import os

    from ..errors import ConfigError
    from ..image import updateos

    for pk in packages:
        if pk.fip:
            continue
        cab = top / pk.path
        rec = PACKAGES.get(os.path.abspath(str(cab)))
        if rec is not None:
            problem = updateos.refusal(rec.name, cab.name, rec.owner_type.lower() == "microsoft")
        elif cab.is_file():
            problem = updateos.problem_of(cab)
        else:
            continue
        if problem:
            file, _, line = (pk.sources[0] if pk.sources else oeminput).rpartition(":")
            if not line.isdigit():
                file, line = (pk.sources[0] if pk.sources else oeminput), ""
            raise ConfigError(problem, file, int(line) if line else None)


def declare(env, outdir, oeminput: str, cabs: dict[str, bool], epoch: int, cpu: str):
    """Declare UpdateOS.wim (+ .json) for the image in `outdir` from `cabs` (path: is a feature
    identifier package); returns the WIM node."""
    from ..image import extractcache

    spec = {"oeminput": oeminput, "cabs": sorted(cabs), "fips": sorted(c for c, fip in cabs.items() if fip)}
    spec |= {"epoch": epoch, "cpu": cpu}
    nodes = UPDATEOS_BUILDER(
        env,
        [outdir.File("partitions/UpdateOS.wim"), outdir.File("partitions/UpdateOS.json")],
        [env.Value(json.dumps(spec, sort_keys=True))] + [env.File("#" + c) for c in spec["cabs"]],
    )
    env.Clean(nodes, outdir.Dir(f"partitions/{extractcache.DIRNAME}/UpdateOS"))
    return nodes[0]
