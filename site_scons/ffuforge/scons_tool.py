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

from . import pkgbuild, project, signing, testpki, toolsig, variant
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

def _options(spec: dict) -> variant.BuildOptions:
    return variant.BuildOptions(
        cpu=spec["cpu"], version=spec["version"], variables=tuple(sorted(spec["variables"].items())),
        languages=tuple(spec["languages"]), build_type=spec["build_type"])


def _plan(env, project_rel: str, spec: dict) -> list[variant.Variant]:
    top = env.Dir("#").abspath
    p = project.load(os.path.join(top, project_rel), project_rel)
    return variant.plan(p, _options(spec), os.path.dirname(project_rel), Path(top))


def _package_scan(node, env, path):
    """Every file the CAB is made from: payload, INFs and what they pull in, BCD XML, raw image."""
    content = json.loads(node.sources[0].read())["content"]
    nodes = []
    for rel in content["inputs"]:
        n = env.File(rel if os.path.isabs(rel) else "#" + rel)
        if n.exists() or n.has_builder():
            nodes.append(n)
    return nodes


def _package_action(target, source, env):
    job = json.loads(env["FFU_PKG_JOB"])
    try:
        by_name = {v.cab_name: v for v in _plan(env, job["project"], job["spec"])}
        v = by_name.get(target[0].name)
        if v is None:
            raise FFUError(f"package {target[0].name} is no longer produced by this project; run scons again",
                           job["project"])
        signed = json.loads(source[0].read())
        signer = _SIGNERS[signed["signer"]] if signed["signer"] else None
        settings = pkgbuild.BuildSettings(compression=signed["compression"], epoch=signed["epoch"],
                                          signer=signer, sign_pe=signed["signPE"])
        pkgbuild.build_variant(v, target[0].abspath, settings)
    except FFUError as exc:
        return SCons.Errors.BuildError(errstr=str(exc), status=2, exitstatus=2)
    return 0


def _package_str(target, source, env):
    return None if env.get("FFU_VERBOSE") else f"Package {target[0].name}"


_PACKAGE_BUILDER = SCons.Builder.Builder(
    action=_SignedFunctionAction(_package_action, "pkgbuild", strfunction=_package_str),
    target_scanner=SCons.Scanner.Scanner(_package_scan, name="ffuforge-package"),
)


_SIGNERS: dict[str, signing.Signer] = {}


def signer_of(env) -> signing.Signer | None:
    """The signer configured by FFU_SIGN (test | key | command | none), loaded and checked once.

    Stops the build before any work when the certificate is unusable. The password comes from
    the FFU_SIGN_PASSWORD environment variable only, never from the command line or the graph."""
    mode = env.subst("$FFU_SIGN").lower()
    try:
        if mode == "none":
            return None
        if mode == "test":
            directory = env.Dir(env.subst("$FFU_TEST_PKI_DIR")).abspath
            key = ("test", directory)
            if key not in _CONFIGURED:
                _CONFIGURED[key] = testpki.ensure_test_pki(directory, env.subst("$FFU_TEST_PKI_OWNER") or "Contoso")
        elif mode == "key":
            cert = env.subst("$FFU_SIGN_CERT")
            if not cert:
                raise FFUError("FFU_SIGN=key needs FFU_SIGN_CERT (a PEM certificate or a .pfx) and usually "
                               "FFU_SIGN_KEY; a release build needs your own code-signing certificate")
            chain = tuple(env.File(c).abspath for c in env.Flatten(env.get("FFU_SIGN_CHAIN", [])))
            key_file = env.subst("$FFU_SIGN_KEY") or None
            key = ("key", env.File(cert).abspath, key_file and env.File(key_file).abspath, chain)
            if key not in _CONFIGURED:
                _CONFIGURED[key] = signing.load_key_signer(
                    key[1], key[2], chain, password=os.environ.get("FFU_SIGN_PASSWORD"))
        elif mode == "command":
            command = env.subst("$FFU_SIGN_COMMAND")
            if not command:
                raise FFUError("FFU_SIGN=command needs FFU_SIGN_COMMAND, a program that signs the file it is given")
            key = ("command", command)
            if key not in _CONFIGURED:
                _CONFIGURED[key] = signing.CommandSigner(command)
        else:
            raise FFUError(f"FFU_SIGN={mode!r}; use test, key, command or none")
        signer = _CONFIGURED[key]
        if hasattr(signer, "check_validity"):
            signer.check_validity(_epoch(env))
    except FFUError as exc:
        _fail(str(exc))
    _SIGNERS[signer.identity] = signer
    return signer


_CONFIGURED: dict[tuple, signing.Signer] = {}


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
    """Declare the CAB(s) of one package project (base, languages, WOW); returns the CAB nodes.

    Each CAB is its own target, signed by the canonical description of its content, so a
    project edit rebuilds exactly the CABs whose content it changes."""
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
    }
    proj = env.File(project_file).srcnode()
    rel = _rel(env, proj)
    outdir = env.Dir(OUTDIR or env.subst("$FFU_PKG_DIR"))
    try:
        if spec["compression"] not in ("none", "mszip"):
            raise FFUError(f"COMPRESSION={spec['compression']!r}; use none or mszip")
        variants = _plan(env, rel, spec)
    except FFUError as exc:
        _fail(str(exc.at(rel)))
    top = Path(env.Dir("#").abspath)
    signer = signer_of(env)
    job = json.dumps({"project": rel, "spec": spec}, sort_keys=True)
    nodes = []
    for v in variants:
        target = outdir.File(v.cab_name)
        owner = _OWNERS.setdefault(target.abspath, rel)
        if owner != rel:
            _fail(f"{rel}: package {v.cab_name} is also built from {owner}; give one of them another name")
        # Variables reach the signature through the resolved content, not wholesale: a product
        # variable that a package does not use does not rebuild it.
        # The signer enters by identity (certificate fingerprints or command), never key material.
        signed = {"content": variant.describe(v, top), "compression": spec["compression"],
                  "epoch": spec["epoch"], "signer": signer.identity if signer else None,
                  "signPE": bool(env.get("FFU_SIGN_PE")) and signer is not None}
        value = env.Value(json.dumps(signed, sort_keys=True))
        nodes += _PACKAGE_BUILDER(env, target, [value], FFU_PKG_JOB=job)
    return nodes


_OWNERS: dict[str, str] = {}


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
        FFU_SIGN="test",
        FFU_TEST_PKI_DIR="#testcerts",
        FFU_TEST_PKI_OWNER="Contoso",
        FFU_SIGN_CERT="",
        FFU_SIGN_KEY="",
        FFU_SIGN_CHAIN=[],
        FFU_SIGN_COMMAND="",
        FFU_SIGN_PE=True,
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
