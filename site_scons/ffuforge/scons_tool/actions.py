"""Builder actions: what runs when SCons decides a target is out of date.

Each action is signed by the code fingerprint of the library module it runs (toolsig) and of this
file, not by Python bytecode, so editing the library rebuilds exactly what it produced. A user
mistake found while building (`FFUError`) becomes one SCons BuildError line via `build_errors`;
scratch files a killed build left beside a target are removed before its action runs again.
Library imports inside actions are lazy: a no-op build never pays for them.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import SCons.Action
import SCons.Builder
import SCons.Errors
import SCons.Scanner

from ..errors import FFUError
from ..package import project, sources, variant
from ..util import toolsig, workers
from . import outputs
from .contentsig import content_signature
from .nodes import print_warnings, relative_message
from .plancache import summarize
from .prepared import clean_emitter, prepare_cab
from .readcheck import check_read
from .signer import signer_in_process
from .state import MERGED_XML, PRESIGNED, SIGNER_KEYS, SOURCE_SIGS

if TYPE_CHECKING:
    from ..package import build as pkgbuild

DISK_FULL = {
    errno.ENOSPC: "free space on the disk that holds the build directory and build again",
    errno.EDQUOT: "the disk quota is exhausted; free space and build again",
    errno.EFBIG: "the output is larger than the file size limit (ulimit -f) or the file system allows",
}


class SignedFunctionAction(SCons.Action.FunctionAction):
    """A function action whose signature is ffuforge's code fingerprint, not Python bytecode:
    the closure of `module` (the library code the action runs) plus the source of the glue module
    that defines the action (its own imports are glue, already covered by `module` where it matters)."""

    def __init__(self, func, module: str, failed=None, **kw):
        super().__init__(func, kw)
        self.failed = failed  # outputs.py: what the image folder loses when this stage fails
        self.module = module
        self.glue = func.__module__.partition(".")[2]  # e.g. scons_tool.actions
        SIGNED_ACTIONS.append(self)

    def get_presig(self, target, source, env, executor=None):
        code = f"{toolsig.fingerprint(self.module)}:{toolsig.source_digest(self.glue)}"
        return f"ffuforge:{self.module}:{code}".encode()

    def execute(self, target, source, env, executor=None):
        for t in target:
            outputs.prepare(t)
        try:
            result = super().execute(target, source, env, executor)
        except BaseException:  # Ctrl-C, SIGTERM: the stage did not finish either
            if self.failed:
                self.failed(target)
            raise
        if result and self.failed:
            self.failed(target)
        exc = (getattr(result, "exc_info", None) or (None, None))[1]
        if isinstance(exc, OSError) and exc.errno in DISK_FULL:
            result.errstr = f"{exc.strerror}: {DISK_FULL[exc.errno]}"
        if result and isinstance(getattr(result, "errstr", None), str):
            result.errstr = relative_message(result.errstr)
        return result


SIGNED_ACTIONS: list[SignedFunctionAction] = []


def signed_actions() -> tuple[SignedFunctionAction, ...]:
    """Every builder action signed by a code fingerprint (tests check what they cover)."""
    return tuple(SIGNED_ACTIONS)


def build_errors(where: Callable | None = None):
    """Decorate an action: an FFUError it raises becomes SCons' one-line BuildError (exit 2),
    prefixed with `where(target, source, env)` when given (e.g. the OEMInput being built)."""

    def wrap(func):
        @functools.wraps(func)
        def action(target, source, env):
            try:
                return func(target, source, env)
            except FFUError as exc:
                text = f"{where(target, source, env)}: {exc}" if where else str(exc)
                return SCons.Errors.BuildError(errstr=text, status=2, exitstatus=2)

        return action

    return wrap


def builder(func, module: str, label: str, failed=None, **kw) -> SCons.Builder.Builder:
    """A Builder running `func`, signed by `module`'s code, shown as `<label> <target>`; `failed`
    gets the targets when the action failed or was interrupted."""
    show = kw.pop("strfunction", None) or (lambda target, source, env: f"{label} {target[0].path}")
    action = SignedFunctionAction(func, module, failed, strfunction=show)
    return SCons.Builder.Builder(action=action, **kw)


# ------------------------------------------------------------------------------ packages


def build_options(spec: dict) -> variant.BuildOptions:
    return variant.BuildOptions(
        cpu=spec["cpu"],
        version=spec["version"],
        variables=tuple(sorted(spec["variables"].items())),
        languages=tuple(spec["languages"]),
        build_type=spec["build_type"],
    )


def plan_at(top: str, project_rel: str, spec: dict, driver_files: bool = False) -> list[variant.Variant]:
    p, opts = project.load(os.path.join(top, project_rel), project_rel), build_options(spec)
    return variant.plan(p, opts, os.path.dirname(project_rel), Path(top), sources.of_spec(spec), driver_files)


def package_scan(node, env, path):
    """Every file the CAB is made from: payload, INFs and what they pull in, BCD XML, raw image.
    Nodes are looked up from the top directory, not through env.File, which would substitute
    construction variables in every payload name (a '$' in a file name is not a variable)."""
    inputs = node.attributes.ffuforge_inputs  # set where the CAB is declared (cabs.declare_cab)
    nodes = []
    top_node = env.Dir("#")
    top = top_node.abspath
    for rel in inputs:
        full = rel if os.path.isabs(rel) else os.path.join(top, rel)
        try:
            mode = os.stat(full).st_mode
        except OSError:
            mode = None
        if mode is not None and not stat.S_ISREG(mode):
            continue  # a directory or FIFO: SCons would fail or hang on it, the action names it
        n = top_node.File(rel)
        if mode is not None or n.exists() or n.has_builder():
            nodes.append(n)
    return nodes


@build_errors()
def _package_action(target, source, env):
    from SCons.Script import GetOption

    from .sbom import record_written  # sbom.py builds on this module

    job = json.loads(env["FFU_PKG_JOB"])
    signed = source[0].read()
    # in a worker process with -jN (N > 1): package builds are Python and would share the GIL
    presigned, sources, warnings, identity = workers.call(
        package_work,
        env.Dir("#").abspath,
        job["project"],
        job["spec"],
        target[0].name,
        target[0].abspath,
        signed,
        SIGNER_KEYS.get(json.loads(signed)["signer"]),
        jobs=GetOption("num_jobs") or 1,
    )
    try:
        check_read(target[0], sources)
    except FFUError:
        os.unlink(target[0].abspath)  # holds bytes no signature describes
        raise
    PRESIGNED[target[0].abspath] = presigned
    record_written(env, target[0].abspath, presigned, identity)  # the SBOM action reads it there
    SOURCE_SIGS.update(sources)
    print_warnings(warnings)
    return 0


def package_work(
    top: str,
    project_rel: str,
    spec: dict,
    cab_name: str,
    out_path: str,
    signed_json: str,
    signer_key: tuple | None,
) -> tuple[tuple[int, int, str], pkgbuild.SourceDigests, list[str], dict | None]:
    """The package action's work, from plain arguments (it may run in a worker process); returns the
    CAB's content signature, computed there while its bytes are in the page cache, the SHA-256
    of every payload file the build read, the package's INF warnings and the SBOM's identity of
    the CAB (scons_tool.sbom.written_identity)."""
    from ..package import build as pkgbuild  # not at import: a no-op build never builds a CAB
    from .sbom import written_identity

    by_name = {
        v.cab_name: v for v in plan_at(top, project_rel, {**spec, "report_missing": False}, driver_files=True)
    }
    v = by_name.get(cab_name)
    if v is None:
        raise FFUError(
            f"package {cab_name} is no longer produced by this project; run scons again", project_rel
        )
    signed = json.loads(signed_json)
    if v.drivers:  # SCons signed the plan made without reading driver files (their store folder)
        v0 = {x.cab_name: x for x in plan_at(top, project_rel, {**spec, "report_missing": False})}[cab_name]
    planned = summarize([v0 if v.drivers else v], Path(top))[0].content  # project edited since read?
    if json.dumps(planned, sort_keys=True) != json.dumps(signed["content"], sort_keys=True):
        raise FFUError(
            "changed while the build ran (not the package scons planned); build again", project_rel
        )
    signer = signer_in_process(signed["signer"], signer_key) if signed["signer"] else None
    settings = pkgbuild.BuildSettings(
        compression=signed["compression"], epoch=signed["epoch"], signer=signer, sign_pe=signed["signPE"]
    )
    built = pkgbuild.build_variant(v, out_path, settings)
    signature = content_signature(out_path, cab_file=True, known=built.cab_signature)
    identity = written_identity(out_path, built, signer)
    prepare_cab(out_path, built.members)  # here, in parallel, not in the serial partition action
    return signature, built.sources, v.warnings, identity


PACKAGE_BUILDER = builder(
    _package_action,
    "package.build",
    "Package",
    strfunction=lambda target, source, env: None if env.get("FFU_VERBOSE") else f"Package {target[0].name}",
    target_scanner=SCons.Scanner.Scanner(package_scan, name="ffuforge-package"),
    emitter=clean_emitter,
)


def generated_variant(spec: dict) -> variant.Variant:
    """The package a generated-package target stands for: a FIP or the product's version package."""
    opts = variant.BuildOptions(cpu=spec["cpu"], version=spec["version"], build_type=spec["build_type"])
    if spec["kind"] == "fip":
        return variant.fip_variant(
            spec["name"],
            spec["partition"],
            tuple(spec["features"]),
            opts,
            owner=spec["owner"],
            owner_type=spec["owner_type"],
            release_type=spec["release_type"],
        )
    import datetime

    from ..formats import regvalue

    stamp = datetime.datetime.fromtimestamp(spec["epoch"], datetime.UTC).strftime("%Y%m%d-%H%M")
    key = f"HKEY_LOCAL_MACHINE\\Software\\{spec['owner']}\\Version"
    values = [
        (key, name, regvalue.decode("REG_SZ", text, legacy=False))
        for name, text in (
            ("Product", spec["product"]),
            ("Config", spec["config"]),
            ("Version", spec["version"]),
            ("BuildTime", stamp),
            ("OEMInput", spec["oeminput"]),
        )
    ]
    return variant.generated_variant(
        spec["name"], "MainOS", opts, owner=spec["owner"], component="Registry", registry=values
    )


@build_errors()
def _generated_action(target, source, env):
    from ..package import build as pkgbuild

    spec = json.loads(source[0].read())
    signer = signer_in_process(spec["signer"], SIGNER_KEYS.get(spec["signer"])) if spec["signer"] else None
    built = pkgbuild.build_variant(
        generated_variant(spec),
        target[0].abspath,
        pkgbuild.BuildSettings(compression=spec["compression"], epoch=spec["epoch"], signer=signer),
    )
    prepare_cab(target[0].abspath, built.members)
    return 0


GENERATED_BUILDER = builder(
    _generated_action,
    "package.build",
    "Package",
    strfunction=lambda target, source, env: f"Package {target[0].name} (generated)",
    emitter=clean_emitter,
)


# ------------------------------------------------------------------ features (FeatureMerger)


def _merged_fm_action(target, source, env):
    from ..util.atomic import write_bytes

    write_bytes(target[0].abspath, MERGED_XML[target[0].abspath])
    return 0


MERGED_FM_BUILDER = builder(
    _merged_fm_action,
    "features.merge",
    "FeatureMerge",
    strfunction=lambda target, source, env: f"FeatureMerge {target[0].name}",
)


def _resolution_action(target, source, env):
    from ..util.atomic import write_bytes

    write_bytes(target[0].abspath, source[0].read().encode() + b"\n")
    return 0


RESOLUTION_BUILDER = builder(_resolution_action, "features.resolve", "Resolve")
