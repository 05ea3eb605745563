"""Stand-in payloads: small valid PE images and deterministic bytes for samples, tests and benchmarks.

Real drivers and programs are not redistributable; a stand-in is built by the graph like any
other target, so a sample workspace builds from a clean clone.
"""

from __future__ import annotations

import json

from .actions import build_errors, builder
from .configure import configured
from .nodes import spec_value


@build_errors(where=lambda target, source, env: target[0].path)
def _standin_pe_action(target, source, env):
    from ..formats import pe
    from ..util.atomic import write_bytes

    spec = json.loads(source[0].read())
    image = pe.make_minimal_pe(
        None,
        machine=spec["machine"],
        kind=spec["kind"],
        payload=spec["payload"].encode(),
        timestamp=spec["timestamp"],
    )
    write_bytes(target[0].abspath, image)
    return 0


def _standin_blob_action(target, source, env):
    import hashlib

    from ..util.atomic import write_bytes

    spec = json.loads(source[0].read())
    seed, size = spec["seed"].encode(), spec["size"]
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(seed + counter.to_bytes(8, "little")).digest()
        counter += 1
    write_bytes(target[0].abspath, bytes(out[:size]))
    return 0


STANDIN_PE = builder(_standin_pe_action, "formats.pe", "StandInPE")
STANDIN_BLOB = builder(_standin_blob_action, "util.atomic", "StandInBinary")


def StandInPE(env, target, machine=None, kind="sys", payload=""):
    """A small valid PE image standing in for a real driver or program (samples, tests, bench)."""
    configured(env)
    machine = machine or env.subst("$FFU_CPU")
    spec = json.dumps(
        {
            "machine": machine,
            "kind": kind,
            "payload": payload or str(target),
            "timestamp": env["SOURCE_DATE_EPOCH"],
        },
        sort_keys=True,
    )
    return _declare(STANDIN_PE, env, target, spec)


def StandInBinary(env, target, size, seed=None):
    """Deterministic pseudo-random bytes standing in for firmware images."""
    spec = json.dumps({"size": int(size), "seed": seed or str(target)}, sort_keys=True)
    return _declare(STANDIN_BLOB, env, target, spec)


_DECLARED: dict[str, tuple[str, list]] = {}  # target path -> (spec, nodes)


def _declare(build, env, target, spec: str) -> list:
    """Once per target: an SConstruct that reads a package SConscript for two configurations
    declares its stand-ins twice, which SCons would warn about (two environments, one target)."""
    path = env.File(target).abspath
    known = _DECLARED.get(path)
    if known is not None and known[0] == spec:
        return known[1]
    nodes = build(env, target, spec_value(env, env.File(target), spec))
    _DECLARED[path] = (spec, nodes)
    return nodes
