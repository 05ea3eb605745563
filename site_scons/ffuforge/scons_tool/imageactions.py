"""Image actions: the layout, each partition image and the FFU (and raw disk) of one product.

Their own module, beside :mod:`.actions` (the package and feature actions and what every action
shares), so that each stays readable; each action is signed by the library module it runs and by
this file (:class:`.actions.SignedFunctionAction`).
"""

from __future__ import annotations

import json
from pathlib import Path

from . import outputs
from .actions import build_errors, builder
from .contentsig import content_signature
from .nodes import progress_bar
from .signer import signer_in_process
from .state import PRESIGNED, SIGNER_KEYS


def _oeminput(target, source, env) -> str:
    return json.loads(source[1].read())["oeminput"]


@build_errors()
def _layout_action(target, source, env):
    from ..image import cabfacts
    from ..image import stages as image
    from .plancache import cache_file

    spec = json.loads(source[0].read())
    top = Path(env.Dir("#").abspath)
    parts = {name: [top / c for c in cabs] for name, cabs in spec["partitions"].items()}
    image.build_layout(
        *(top / spec["layout_cab"], top / spec["platform_cab"], parts, Path(target[0].abspath)),
        release_type=spec["release_type"],
        where=spec["oeminput"],
        facts=cabfacts.cache(cache_file(env, cabfacts.FILENAME), written=PRESIGNED),
        trust=(t := spec.get("trust")) and ([top / r for r in t["roots"]], [top / c for c in t["cabs"]]),
        updateos_wim=top / spec["updateos_wim"] if spec.get("updateos_wim") else None,
    )
    return 0


@build_errors(where=_oeminput)
def _partition_action(target, source, env):
    from SCons.Script import GetOption

    from ..image import extractcache
    from ..image import stages as image

    spec = json.loads(source[1].read())
    top = Path(env.Dir("#").abspath)
    out = Path(target[0].abspath)
    # packages extracted by earlier builds are reused: only changed CABs are extracted again
    signature = image.build_partition(
        Path(source[0].abspath),
        spec["partition"],
        [top / c for c in spec["cabs"]],
        out,
        Path(target[1].abspath),
        epoch=spec["epoch"],
        cache_dir=out.parent / extractcache.DIRNAME / spec["partition"],
        jobs=GetOption("num_jobs") or 1,
        updateos_wim=top / spec["updateos_wim"] if spec.get("updateos_wim") else None,
    )
    PRESIGNED[str(out)] = content_signature(str(out), known=signature)
    return 0


@build_errors(where=_oeminput)
def _ffu_action(target, source, env):
    from ..image import stages as image

    spec = json.loads(source[1].read())
    images = {name: Path(s.abspath) for name, s in zip(spec["partitions"], source[2:], strict=True)}
    signer = signer_in_process(spec["signer"], SIGNER_KEYS.get(spec["signer"])) if spec["signer"] else None
    raw = Path(target[1].abspath) if len(target) > 1 else None
    result = image.build_ffu(
        Path(source[0].abspath),
        images,
        Path(target[0].abspath),
        epoch=spec["epoch"],
        signer=signer,
        description=spec["description"],
        raw_out=raw,
        progress=progress_bar(target[0].name),
        ffu_version=spec.get("ffu_version", 1),
        device_path=spec.get("device_path") or None,
    )
    PRESIGNED[target[0].abspath] = content_signature(target[0].abspath, known=result.signature)
    if raw:  # signed here, holes unread, while its blocks are in the page cache: not on SCons' thread
        PRESIGNED[str(raw)] = content_signature(str(raw))
    size = result.size
    print(
        f"{target[0].path}: {size:,} bytes ({size / (1 << 20):.1f} MiB), {result.data_blocks} blocks stored"
        + (f"; raw disk {target[1].path}" if raw else "")
    )
    return 0


LAYOUT_BUILDER = builder(_layout_action, "image.stages", "Layout", outputs.layout_failed)
PARTITION_BUILDER = builder(_partition_action, "image.stages", "Partition", outputs.partition_failed)
FFU_BUILDER = builder(_ffu_action, "image.stages", "FFU")
