"""The SCons glue: builders, emitters, scanners and options. The only module importing SCons.

Use it as `Environment(tools=['default', ffuforge.scons_tool.generate])` or through the
`ffuforge_tool` site tool. Every builder shares the library's parsers with its emitter and
scanner, so the outputs SCons expects, the inputs it watches and what the action writes
come from one place.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import SCons.Action
import SCons.Builder
import SCons.Errors
import SCons.Node.Python
import SCons.Scanner
import SCons.Util

from . import pkgbuild, project, toolsig, variant
from .errors import FFUError

DEFAULT_EPOCH = 1577836800  # 2020-01-01T00:00:00Z, used when SOURCE_DATE_EPOCH is unset


class _SignedFunctionAction(SCons.Action.FunctionAction):
    """A function action whose signature is ffuforge's code fingerprint, not Python bytecode."""

    def __init__(self, func, module: str, **kw):
        super().__init__(func, kw)
        self._module = module

    def get_presig(self, target, source, env, executor=None):
        return f"ffuforge:{self._module}:{toolsig.fingerprint(self._module)}".encode()


def _fail(message: str) -> None:
    """Stop at SConscript time with one line (SCons' UserError adds a Python frame line)."""
    sys.stderr.write(f"scons: *** {message}\n")
    raise SystemExit(2)


def _rel(env, node_or_path) -> str:
    """Path relative to the top of the SCons tree, for stable messages and signatures."""
    path = getattr(node_or_path, "abspath", None) or os.path.abspath(str(node_or_path))
    try:
        return os.path.relpath(path, env.Dir("#").abspath)
    except ValueError:
        return path


# ------------------------------------------------------------------------------ packages

def _options(env, spec: dict) -> variant.BuildOptions:
    return variant.BuildOptions(
        cpu=spec["cpu"], version=spec["version"], variables=tuple(sorted(spec["variables"].items())),
        languages=tuple(spec["languages"]), build_type=spec["build_type"])


def _spec_of(source) -> dict:
    for s in source:
        if isinstance(s, SCons.Node.Python.Value):
            return json.loads(s.read())
    raise SCons.Errors.UserError("ffuforge: package build has no options Value source")


def _plan(env, proj_node, spec: dict) -> list[variant.Variant]:
    path = proj_node.srcnode().abspath
    shown = _rel(env, proj_node.srcnode())
    p = project.load(path, shown)
    return variant.plan(p, _options(env, spec), os.path.dirname(shown), Path(env.Dir("#").abspath))


def _package_emitter(target, source, env):
    spec = _spec_of(source)
    proj = source[0]
    variants = _plan(env, proj, spec)  # FFUError is reported by Package()
    outdir = env.Dir("#" + spec["outdir"])
    targets = [outdir.File(v.cab_name) for v in variants]
    names = {}
    for t in targets:
        other = names.setdefault(t.abspath, proj)
        if other is not proj:
            raise FFUError(f"package {t.name} is also built from {_rel(env, other.srcnode())}; "
                           "give one of them a different name", _rel(env, proj.srcnode()))
    return targets, source


def _package_scan(node, env, path, arg=None):
    spec = env.get("FFU_PKG_SPEC")
    if not spec:
        return []
    try:
        variants = _plan(env, node, json.loads(spec))
    except FFUError:
        return []  # the action reports the problem with its location
    files = sorted({str(f) for v in variants for f in v.inputs()})
    nodes = []
    for f in files:
        n = env.File(f)
        if n.exists() or n.has_builder():
            nodes.append(n)
    return nodes


def _package_action(target, source, env):
    spec = _spec_of(source)
    try:
        variants = _plan(env, source[0], spec)
        by_name = {v.cab_name: v for v in variants}
        settings = pkgbuild.BuildSettings(compression=spec["compression"], epoch=spec["epoch"])
        for t in target:
            v = by_name.get(t.name)
            if v is None:
                raise FFUError(f"package {t.name} is no longer produced by this project; re-run scons",
                               _rel(env, source[0].srcnode()))
            pkgbuild.build_variant(v, t.abspath, settings)
    except FFUError as exc:
        return SCons.Errors.BuildError(errstr=str(exc), status=2, exitstatus=2)
    return 0


def _package_str(target, source, env):
    if env.get("FFU_VERBOSE"):
        return None
    return f"Package {', '.join(t.name for t in target)}"


_PACKAGE_BUILDER = SCons.Builder.Builder(
    action=_SignedFunctionAction(_package_action, "pkgbuild", strfunction=_package_str),
    emitter=_package_emitter,
    source_scanner=SCons.Scanner.Scanner(_package_scan, name="ffuforge-package", recursive=False),
    single_source=False,
)


def _epoch(env) -> int:
    value = env.get("SOURCE_DATE_EPOCH") or os.environ.get("SOURCE_DATE_EPOCH")
    if value in (None, ""):
        return DEFAULT_EPOCH
    try:
        return int(value)
    except ValueError:
        _fail(f"SOURCE_DATE_EPOCH={value!r} is not an integer (seconds since 1970)")


def Package(env, project_file, CPU=None, VARIABLES=None, VERSION=None, LANGUAGES=None, OUTDIR=None,
            COMPRESSION=None, BUILD_TYPE=None):
    """Declare the CAB(s) of one package project; returns the CAB nodes."""
    cpu = (CPU or env.subst("$FFU_CPU")).lower()
    variables = dict(env.get("FFU_VARIABLES", {}))
    variables.update(VARIABLES or {})
    spec = {
        "cpu": cpu,
        "version": VERSION or env.subst("$FFU_VERSION"),
        "variables": {str(k): str(v) for k, v in sorted(variables.items())},
        "languages": sorted(LANGUAGES if LANGUAGES is not None else env.get("FFU_LANGUAGES", [])),
        "build_type": BUILD_TYPE or env.subst("$FFU_BUILD_TYPE"),
        "compression": COMPRESSION or env.subst("$FFU_COMPRESSION"),
        "epoch": _epoch(env),
        "outdir": _rel(env, env.Dir(OUTDIR or env.subst("$FFU_PKG_DIR").replace("${CPU}", cpu)).abspath),
    }
    proj = env.File(project_file)
    try:
        if spec["compression"] not in ("none", "mszip"):
            raise FFUError(f"COMPRESSION={spec['compression']!r}; use none or mszip")
        _options(env, spec)
        text = json.dumps(spec, sort_keys=True)
        return _PACKAGE_BUILDER(env, None, [proj, env.Value(text)], FFU_PKG_SPEC=text)
    except FFUError as exc:
        _fail(str(exc.at(_rel(env, proj.srcnode()))))


def generate(env):
    env.SetDefault(
        FFU_CPU="arm",
        FFU_VERSION="10.0.0.0",
        FFU_VARIABLES={},
        FFU_LANGUAGES=[],
        FFU_BUILD_TYPE="fre",
        FFU_COMPRESSION="none",
        FFU_PKG_DIR="#build/${CPU}/packages",
        FFU_VERBOSE=False,
    )
    env.AddMethod(Package, "Package")
    env.AddMethod(StandInPE, "StandInPE")
    env.AddMethod(StandInBinary, "StandInBinary")
    env["BUILDERS"]["FFUPackageCab"] = _PACKAGE_BUILDER


def exists(env):
    return True


# ------------------------------------------------------------------- stand-in payloads

def _standin_pe_action(target, source, env):
    from . import pe
    spec = json.loads(source[0].read())
    try:
        from .atomic import write_bytes
        write_bytes(target[0].abspath, pe.make_minimal_pe(None, machine=spec["machine"], kind=spec["kind"],
                                                           payload=spec["payload"].encode(),
                                                           timestamp=spec["timestamp"]))
    except FFUError as exc:
        return SCons.Errors.BuildError(errstr=f"{target[0].path}: {exc}", status=2, exitstatus=2)
    return 0


def _standin_blob_action(target, source, env):
    import hashlib

    from .atomic import write_bytes
    spec = json.loads(source[0].read())
    seed, size = spec["seed"].encode(), spec["size"]
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(seed + counter.to_bytes(8, "little")).digest()
        counter += 1
    write_bytes(target[0].abspath, bytes(out[:size]))
    return 0


_STANDIN_PE = SCons.Builder.Builder(action=_SignedFunctionAction(
    _standin_pe_action, "pe", strfunction=lambda target, source, env: f"StandInPE {target[0].path}"))
_STANDIN_BLOB = SCons.Builder.Builder(action=_SignedFunctionAction(
    _standin_blob_action, "atomic", strfunction=lambda target, source, env: f"StandInBinary {target[0].path}"))


def StandInPE(env, target, machine=None, kind="sys", payload=""):
    """A small valid PE image standing in for a real driver or program (samples, tests, bench)."""
    machine = machine or env.subst("$FFU_CPU")
    spec = json.dumps({"machine": machine, "kind": kind, "payload": payload or str(target),
                       "timestamp": _epoch(env)}, sort_keys=True)
    return _STANDIN_PE(env, target, env.Value(spec))


def StandInBinary(env, target, size, seed=None):
    """Deterministic pseudo-random bytes standing in for firmware images."""
    spec = json.dumps({"size": int(size), "seed": seed or str(target)}, sort_keys=True)
    return _STANDIN_BLOB(env, target, env.Value(spec))
