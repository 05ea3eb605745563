"""Stand-in payloads: small valid PE images and deterministic bytes for samples, tests and benchmarks.

Real drivers and programs are not redistributable; a stand-in is built by the graph like any
other target, so a sample workspace builds from a clean clone.
"""

from __future__ import annotations

import json

from .actions import build_errors, builder
from .configure import configured
from .nodes import declare_once, spec_value
from .signer import signer_in_process, signer_of
from .state import SIGNER_KEYS


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


def _declare(build, env, target, spec: str, same=None) -> list:
    """Once per target (:func:`.nodes.declare_once`); `same(old, new)`: whether two specs make one target."""
    node = env.File(target)
    return declare_once(env, node, spec, lambda: build(env, target, spec_value(env, node, spec)), same)


@build_errors(where=lambda target, source, env: target[0].path)
def _test_appx_action(target, source, env):
    from ..formats import pe
    from ..package import appx

    spec = json.loads(source[0].read())
    signer = signer_in_process(spec["signer"], SIGNER_KEYS.get(spec["signer"])) if spec["signer"] else None
    exe = pe.make_minimal_pe(
        None, machine=spec["machine"], kind="exe", payload=spec["name"].encode(), timestamp=spec["timestamp"]
    )
    appx.make_test_appx(
        target[0].abspath,
        name=spec["name"],
        publisher=spec["publisher"],
        version=spec["version"],
        arch=spec["arch"],
        payload={"app.exe": exe, "logo.png": appx.TEST_LOGO},
        timestamp=spec["timestamp"],
        signer=signer,
    )
    return 0


TEST_APPX = builder(_test_appx_action, "package.appx", "TestAppx")


def _unsigned(spec: str) -> dict:
    return {k: v for k, v in json.loads(spec).items() if k != "signer"}


def TestAppx(env, target, name, publisher, version="1.0.0.0", arch=None, SIGN=True):
    """A small valid app package (an executable stand-in and a logo) for samples and tests, signed
    by the build's signer (its certificate's subject should be `publisher`) unless SIGN=False. One
    target, declared once: when the package SConscript is read for a second configuration (Test and
    Retail in one graph), the app keeps the first configuration's signature."""
    configured(env)
    signer = signer_of(env) if SIGN else None
    cpu = env.subst("$FFU_CPU")
    arch = arch or {"amd64": "x64"}.get(cpu, cpu)
    machine = {"x64": "amd64", "neutral": cpu}.get(arch, arch)
    spec = {
        "name": name,
        "publisher": publisher,
        "version": version,
        "arch": arch,
        "machine": machine,
        "timestamp": env["SOURCE_DATE_EPOCH"],
        "signer": signer.identity if signer else None,  # by identity: no key material in the graph
    }
    text = json.dumps(spec, sort_keys=True)
    return _declare(TEST_APPX, env, target, text, same=lambda a, b: _unsigned(a) == _unsigned(b))
