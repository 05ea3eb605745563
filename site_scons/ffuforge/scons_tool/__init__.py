"""The SCons glue: builders, emitters, scanners and options. The only module importing SCons.

Use it as `Environment(tools=['default', ffuforge.scons_tool.generate])` or through the
`ffuforge_tool` site tool. Every builder shares the library's parsers with its emitter and
scanner, so the outputs SCons expects, the inputs it watches and what the action writes
come from one place.
"""

from __future__ import annotations

import errno
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import SCons.Action
import SCons.Builder
import SCons.CacheDir
import SCons.Errors
import SCons.Node.FS
import SCons.Node.Python
import SCons.Scanner
import SCons.Util

from ..errors import FFUError
from ..package import build as pkgbuild
from ..package import project, variant
from ..signing import signers as signing
from ..signing import testpki
from ..util import toolsig, workers
from . import plancache

DEFAULT_EPOCH = 1577836800  # 2020-01-01T00:00:00Z, used when SOURCE_DATE_EPOCH is unset


class _SignedFunctionAction(SCons.Action.FunctionAction):
    """A function action whose signature is ffuforge's code fingerprint, not Python bytecode."""

    def __init__(self, func, module: str, **kw):
        super().__init__(func, kw)
        self.module = module
        _SIGNED_ACTIONS.append(self)

    def get_presig(self, target, source, env, executor=None):
        return f"ffuforge:{self.module}:{toolsig.fingerprint(self.module)}".encode()

    def execute(self, target, source, env, executor=None):
        for t in target:
            _remove_leftovers(t.get_abspath())
        result = super().execute(target, source, env, executor)
        exc = (getattr(result, "exc_info", None) or (None, None))[1]
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
            result.errstr = f"{exc.strerror}: {_DISK_FULL[exc.errno]}"
        if result and isinstance(getattr(result, "errstr", None), str):
            result.errstr = _relative(result.errstr)
        return result


_SIGNED_ACTIONS: list[_SignedFunctionAction] = []


def signed_actions() -> tuple[_SignedFunctionAction, ...]:
    """Every builder action signed by a code fingerprint (tests check what they cover)."""
    return tuple(_SIGNED_ACTIONS)


_DISK_FULL = {
    errno.ENOSPC: "free space on the disk that holds the build directory and build again",
    errno.EDQUOT: "the disk quota is exhausted; free space and build again",
    errno.EFBIG: "the output is larger than the file size limit (ulimit -f) or the file system allows",
}


# ------------------------------------------------------------------ interrupted builds


def _remove_leftovers(path: str) -> None:
    """Temp files and scratch directories a killed build left beside `path` (`.<name>.….partial`,
    `.<name>.stage-…`): every writer names its scratch after its target, and only this action
    writes that target, so they are removed before it runs again."""
    import re
    import shutil

    directory, name = os.path.split(path)
    pattern = re.compile(rf"\.+{re.escape(name)}\.")
    try:
        entries = os.listdir(directory)
    except OSError:
        return
    for entry in entries:
        if pattern.match(entry):
            full = os.path.join(directory, entry)
            if os.path.isdir(full) and not os.path.islink(full):
                shutil.rmtree(full, ignore_errors=True)
            else:
                try:
                    os.unlink(full)
                except OSError:
                    pass


def _is_up_to_date(node) -> bool:
    """SCons trusts a target whose sources are unchanged, whatever bytes lie under its name. A build
    killed after writing a target but before SCons saved its signatures (SIGKILL, OOM, power loss)
    leaves bytes SCons never recorded, e.g. from an edit since reverted. An ffuforge target whose
    size or modification time differs from what SCons recorded when it built it is rebuilt."""
    if not _FILE_IS_UP_TO_DATE(node):
        return False
    if not isinstance(getattr(node.get_builder(), "action", None), _SignedFunctionAction):
        return True
    ninfo = getattr(node.get_stored_info(), "ninfo", None)
    stamp, size = getattr(ninfo, "timestamp", None), getattr(ninfo, "size", None)
    try:
        st = os.stat(node.get_abspath())
    except OSError:
        return True  # not here (Repository, CacheDir): SCons decided
    if stamp is None or size is None:
        return True
    return st.st_size == size and (
        st.st_mtime == stamp or (isinstance(stamp, int) and stamp == int(st.st_mtime))
    )


_FILE_IS_UP_TO_DATE = getattr(
    SCons.Node.FS.File.is_up_to_date, "ffuforge_original", SCons.Node.FS.File.is_up_to_date
)
_is_up_to_date.ffuforge_original = _FILE_IS_UP_TO_DATE
SCons.Node.FS.File.is_up_to_date = _is_up_to_date


def _getmtime(node):
    """Modification times with their sub-second part. SCons keeps whole seconds (its own TODO in
    Node.FS.Base.getmtime), so with the content-timestamp decider a file edited again within the
    second in which the last build saw it kept its recorded second and was taken as unchanged: the
    build used the old content and said nothing."""
    st = node.stat()
    return st.st_mtime if st else None


_BASE_GETMTIME = getattr(SCons.Node.FS.Base.getmtime, "ffuforge_original", SCons.Node.FS.Base.getmtime)
_getmtime.ffuforge_original = _BASE_GETMTIME
SCons.Node.FS.Base.getmtime = _getmtime


def _source_file(env, path, what: str):
    """The source File node for `path`, or a one-line stop when a directory stands there."""
    try:
        return env.File(path).srcnode()
    except TypeError:  # SCons: "Tried to lookup Dir … as a File"
        _fail(f"{_rel(env, str(path))}: is a directory, not {what}")


def _fail(message: str) -> None:
    """Stop at SConscript time with one line (SCons' UserError adds a Python frame line)."""
    sys.stderr.write(f"scons: *** {_relative(message)}\n")
    raise SystemExit(2)


def _relative(message: str) -> str:
    """Paths in messages relative to the top of the tree, as the user typed them."""
    top = SCons.Node.FS.get_default_fs().Top.get_abspath()
    return message.replace(top + os.sep, "") if top != os.sep else message


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
        cpu=spec["cpu"],
        version=spec["version"],
        variables=tuple(sorted(spec["variables"].items())),
        languages=tuple(spec["languages"]),
        build_type=spec["build_type"],
    )


def _plan_at(top: str, project_rel: str, spec: dict) -> list[variant.Variant]:
    p = project.load(os.path.join(top, project_rel), project_rel)
    return variant.plan(p, _options(spec), os.path.dirname(project_rel), Path(top))


def _planned(env, project_rel: str, spec: dict) -> list[plancache.Planned]:
    """What Package() declares for the project, reused from the last run while its inputs are unchanged."""
    top = env.Dir("#").abspath
    file = env.get("FFU_PLAN_CACHE", plancache.DEFAULT_FILE)
    file = env.subst(file) if "$" in file else file
    if file:  # not a node: the cache is no part of the graph
        file = os.path.join(top, file[1:].lstrip("/")) if file.startswith("#") else os.path.join(top, file)
    return plancache.plans(file, top, project_rel, spec, lambda: _plan_at(top, project_rel, spec))


def _package_scan(node, env, path):
    """Every file the CAB is made from: payload, INFs and what they pull in, BCD XML, raw image."""
    content = json.loads(node.sources[0].read())["content"]
    nodes = []
    top = env.Dir("#").abspath
    for rel in content["inputs"]:
        path = os.path.join(top, rel)
        if os.path.exists(path) and not os.path.isfile(path):
            continue  # a directory or FIFO: SCons would fail or hang on it, the action names it
        n = env.File(rel if os.path.isabs(rel) else "#" + rel)
        if n.exists() or n.has_builder():
            nodes.append(n)
    return nodes


def _package_action(target, source, env):
    from SCons.Script import GetOption

    job = json.loads(env["FFU_PKG_JOB"])
    signed = source[0].read()
    try:  # in a worker process with -jN (N > 1): package builds are Python and would share the GIL
        presigned, sources = workers.call(
            _package_work,
            env.Dir("#").abspath,
            job["project"],
            job["spec"],
            target[0].name,
            target[0].abspath,
            signed,
            _SIGNER_KEYS.get(json.loads(signed)["signer"]),
            jobs=GetOption("num_jobs") or 1,
        )
    except FFUError as exc:
        return SCons.Errors.BuildError(errstr=str(exc), status=2, exitstatus=2)
    _PRESIGNED[target[0].abspath] = presigned
    _SOURCE_SIGS.update(sources)
    return 0


def _package_work(
    top: str,
    project_rel: str,
    spec: dict,
    cab_name: str,
    out_path: str,
    signed_json: str,
    signer_key: tuple | None,
) -> tuple[tuple[int, int, str], pkgbuild.SourceDigests]:
    """The package action's work, from plain arguments (it may run in a worker process); returns the
    CAB's content signature, computed there while its bytes are in the page cache, and the SHA-256
    of every payload file the build read."""
    by_name = {v.cab_name: v for v in _plan_at(top, project_rel, spec)}
    v = by_name.get(cab_name)
    if v is None:
        raise FFUError(
            f"package {cab_name} is no longer produced by this project; run scons again", project_rel
        )
    signed = json.loads(signed_json)
    signer = _signer_in_process(signed["signer"], signer_key) if signed["signer"] else None
    settings = pkgbuild.BuildSettings(
        compression=signed["compression"], epoch=signed["epoch"], signer=signer, sign_pe=signed["signPE"]
    )
    built = pkgbuild.build_variant(v, out_path, settings)
    return content_signature(out_path, cab_file=True, known=built.cab_signature), built.sources


def _signer_in_process(identity: str, key: tuple | None) -> signing.Signer:
    """The signer with this identity; a worker process loads it once from signer_of's key."""
    signer = _SIGNERS.get(identity)
    if signer is None and key is not None:
        if key[0] == "test":
            signer = testpki.ensure_test_pki(key[1])
        elif key[0] == "key":
            signer = signing.load_key_signer(
                key[1], key[2], key[3], password=os.environ.get("FFU_SIGN_PASSWORD")
            )
        else:
            signer = signing.CommandSigner(key[1])
        if signer.identity != identity:
            raise FFUError(f"the signing certificate changed during the build ({key[1]}); run scons again")
        _SIGNERS[identity] = signer
    return _SIGNERS[identity]


def _package_str(target, source, env):
    return None if env.get("FFU_VERBOSE") else f"Package {target[0].name}"


_PACKAGE_BUILDER = SCons.Builder.Builder(
    action=_SignedFunctionAction(_package_action, "package.build", strfunction=_package_str),
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
                _CONFIGURED[key] = testpki.ensure_test_pki(
                    directory, env.subst("$FFU_TEST_PKI_OWNER") or "Contoso"
                )
        elif mode == "key":
            cert = env.subst("$FFU_SIGN_CERT")
            if not cert:
                raise FFUError(
                    "FFU_SIGN=key needs FFU_SIGN_CERT (a PEM certificate or a .pfx) and usually "
                    "FFU_SIGN_KEY; a release build needs your own code-signing certificate"
                )
            chain = tuple(env.File(c).abspath for c in env.Flatten(env.get("FFU_SIGN_CHAIN", [])))
            key_file = env.subst("$FFU_SIGN_KEY") or None
            key = ("key", env.File(cert).abspath, key_file and env.File(key_file).abspath, chain)
            if key not in _CONFIGURED:
                _CONFIGURED[key] = signing.load_key_signer(
                    key[1], key[2], chain, password=os.environ.get("FFU_SIGN_PASSWORD")
                )
        elif mode == "command":
            command = env.subst("$FFU_SIGN_COMMAND")
            if not command:
                raise FFUError(
                    "FFU_SIGN=command needs FFU_SIGN_COMMAND, a program that signs the file it is given"
                )
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
    _SIGNER_KEYS[signer.identity] = key
    return signer


_CONFIGURED: dict[tuple, signing.Signer] = {}
_SIGNER_KEYS: dict[str, tuple] = {}  # identity -> key of _CONFIGURED (how a worker process loads it)


def _epoch(env) -> int:
    value = env.get("SOURCE_DATE_EPOCH") or os.environ.get("SOURCE_DATE_EPOCH")
    if value in (None, ""):
        return DEFAULT_EPOCH
    try:
        return int(value)
    except ValueError:
        _fail(f"SOURCE_DATE_EPOCH={value!r} is not an integer (seconds since 1970)")


def Package(
    env,
    project_file,
    CPU=None,
    VARIABLES=None,
    VERSION=None,
    LANGUAGES=None,
    OUTDIR=None,
    COMPRESSION=None,
    BUILD_TYPE=None,
    SIGN_PE=None,
):
    """Declare the CAB(s) of one package project (base, languages, WOW); returns the CAB nodes.

    Each CAB is its own target, signed by the canonical description of its content, so a
    project edit rebuilds exactly the CABs whose content it changes. SIGN_PE overrides
    FFU_SIGN_PE for this package (Authenticode-sign its PE payloads before cataloguing)."""
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
    proj = _source_file(env, project_file, "a package project (.wm.xml or .pkg.xml)")
    rel = _rel(env, proj)
    outdir = env.Dir(OUTDIR or env.subst("$FFU_PKG_DIR"))
    try:  # build options are the command line's, not the project's: no project location
        if spec["compression"] not in ("none", "mszip"):
            raise FFUError(f"COMPRESSION={spec['compression']!r}; use none or mszip")
        _options(spec)
    except FFUError as exc:
        _fail(str(exc))
    try:
        variants = _planned(env, rel, spec)
    except FFUError as exc:
        _fail(str(exc.at(rel)))
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
        signed = {
            "content": v.content,
            "compression": spec["compression"],
            "epoch": spec["epoch"],
            "signer": signer.identity if signer else None,
            "signPE": bool(env.get("FFU_SIGN_PE") if SIGN_PE is None else SIGN_PE) and signer is not None,
        }
        value = env.Value(json.dumps(signed, sort_keys=True))
        nodes += _PACKAGE_BUILDER(env, target, [value], FFU_PKG_JOB=job)
        PACKAGES[target.abspath] = PackageRecord(v.name, v.partition, v.release_type, rel, v.layout_files)
    return nodes


_OWNERS: dict[str, str] = {}


@dataclass(frozen=True)
class PackageRecord:
    """What the graph knows about a CAB before it is built (the resolver needs partitions)."""

    name: str
    partition: str
    release_type: str
    origin: str  # project file or FMFileList that declares it
    layout_files: tuple[tuple[str, str], ...] = ()  # (devicelayout.xml|oemdeviceplatform.xml, source path)


PACKAGES: dict[str, PackageRecord] = {}  # CAB absolute path -> record, for every CAB this build makes


# ------------------------------------------------------------------ features (FeatureMerger)

MERGES: list = []  # features.MergeResult of every FeatureMerge() in this build
_MERGED_NODES: dict[str, object] = {}  # merged FM path -> its target node
_MERGED_XML: dict[str, bytes] = {}  # merged FM target path -> bytes computed at SConscript time


def _top_file(env, path):
    """A File node for a path that is absolute or relative to the top of the tree."""
    text = str(path)
    return env.File(text if os.path.isabs(text) else "#" + text)


def _available(path) -> bool:
    p = os.path.abspath(str(path))
    return p in PACKAGES or os.path.isfile(p)


def partition_of(path) -> str | None:
    """Target partition of a CAB: from the graph for CABs this build makes, else its update.mum."""
    rec = PACKAGES.get(os.path.abspath(str(path)))
    if rec is not None:
        return rec.partition
    if os.path.isfile(str(path)):
        from ..image import install

        return install.read_package_info(Path(path)).partition
    return None


def _merged_fm_action(target, source, env):
    from ..util.atomic import write_bytes

    write_bytes(target[0].abspath, _MERGED_XML[target[0].abspath])
    return 0


_MERGED_FM_BUILDER = SCons.Builder.Builder(
    action=_SignedFunctionAction(
        _merged_fm_action,
        "features.merge",
        strfunction=lambda target, source, env: f"FeatureMerge {target[0].name}",
    )
)


def _generated_variant(spec: dict) -> variant.Variant:
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


def _generated_action(target, source, env):
    spec = json.loads(source[0].read())
    try:
        signer = _SIGNERS[spec["signer"]] if spec["signer"] else None
        pkgbuild.build_variant(
            _generated_variant(spec),
            target[0].abspath,
            pkgbuild.BuildSettings(compression=spec["compression"], epoch=spec["epoch"], signer=signer),
        )
    except FFUError as exc:
        return SCons.Errors.BuildError(errstr=str(exc), status=2, exitstatus=2)
    return 0


_GENERATED_BUILDER = SCons.Builder.Builder(
    action=_SignedFunctionAction(
        _generated_action,
        "package.build",
        strfunction=lambda target, source, env: f"Package {target[0].name} (generated)",
    )
)


def feature_variables(env) -> dict[str, str]:
    """Placeholders of FMs and OEMInputs (%PKGBLD_DIR%, %OEM_NAME%, %BLD_DIR%, …) for this build."""
    # Relative to the top of the tree: merged FMs and signatures stay free of checkout paths.
    pkg_dir = _rel(env, env.Dir(env.subst("$FFU_PKG_DIR")))
    values = {
        "OEM_NAME": env.get("FFU_VARIABLES", {}).get("OEMNAME", "Contoso"),
        "PKGBLD_DIR": pkg_dir,
        "BSPPKG_DIR": pkg_dir,
        "BLD_DIR": _rel(env, env.Dir(env.subst("$FFU_BLD_DIR"))),
        "SRC_DIR": ".",
        "BUILDTYPE": env.subst("$FFU_BUILD_TYPE"),
    }
    values.update({str(k): str(v) for k, v in env.get("FFU_FEATURE_VARIABLES", {}).items()})
    return values


def FeatureMerge(env, fmfilelist, OUTDIR=None, VERSION=None):
    """FeatureMerger for one FMFileList: merged FMs and the feature identifier packages (CABs).

    Returns the merged FM and FIP nodes. The merge itself runs now (it is cheap and the resolver needs
    it to know every image's packages); the targets only write what it computed, so an FMFileList
    or FM edit re-merges exactly the FMs whose inputs changed."""
    from ..features import merge as features

    cpu = env.subst("$FFU_CPU").lower()
    fl = _source_file(env, fmfilelist, "an FMFileList")
    rel = _rel(env, fl)
    out_dir = env.Dir(OUTDIR or env.subst("$FFU_MERGED_FM_DIR"))
    pkg_dir = env.Dir(env.subst("$FFU_PKG_DIR"))
    signer = signer_of(env)
    version = VERSION or env.subst("$FFU_VERSION")
    try:
        settings = features.MergeSettings(
            cpu=cpu,
            out_pkg_dir=Path(_rel(env, pkg_dir)),
            version=version,
            variables=feature_variables(env),
            top=Path(env.Dir("#").abspath),
            build_type=env.subst("$FFU_BUILD_TYPE"),
        )
        result = features.merge(
            fl.abspath,
            settings,
            out_fm_dir=out_dir.abspath,
            write=False,
            available=_available,
            partition_of=partition_of,
        )
    except FFUError as exc:
        _fail(str(exc.at(rel)))
    MERGES.append(result)
    nodes = []
    for m in result.merged:
        target = _top_file(env, m.out_path)
        _MERGED_XML[target.abspath] = m.xml
        nodes += _MERGED_FM_BUILDER(env, target, [env.Value(m.digest)])
        _MERGED_NODES[target.abspath] = target
        env.Depends(target, [fl, _top_file(env, m.source)])
    for fip in result.fips:
        target = _top_file(env, fip.cab)
        if target.abspath in PACKAGES and PACKAGES[target.abspath].origin != rel:
            _fail(
                f"{rel}: feature identifier package {fip.name} is also declared by "
                f"{PACKAGES[target.abspath].origin}; give the FMs different IDs"
            )
        spec = {
            "kind": "fip",
            "name": fip.name,
            "partition": fip.partition,
            "features": list(fip.feature_ids),
            "cpu": cpu,
            "version": version,
            "build_type": env.subst("$FFU_BUILD_TYPE"),
            "owner": fip.owner,
            "owner_type": fip.owner_type,
            "release_type": fip.release_type,
            "compression": env.subst("$FFU_COMPRESSION"),
            "epoch": _epoch(env),
            "signer": signer.identity if signer else None,
        }
        nodes += _GENERATED_BUILDER(env, target, [env.Value(json.dumps(spec, sort_keys=True))])
        PACKAGES[target.abspath] = PackageRecord(fip.name, fip.partition, fip.release_type, rel)
    return nodes


# ------------------------------------------------------------------------------ images


def _layout_source(env, cab: Path, which: str) -> bytes:
    """DeviceLayout.xml / OEMDevicePlatform.xml at SConscript time: from the project's source
    file for a CAB this build makes, else from the (vendor) CAB itself."""
    rec = PACKAGES.get(os.path.abspath(str(cab)))
    if rec is not None:
        for name, src in rec.layout_files:
            if name == which:
                return Path(src).read_bytes()
        raise FFUError(f"package {rec.name} ({rec.origin}) installs no \\Windows\\ImageUpdate\\{which}")
    from ..image import stages as image  # not before: its imports cost a no-op build tens of milliseconds

    files = image.read_layout_files(Path(cab))
    if which not in files:
        raise FFUError(f"package {Path(cab).name} carries no \\Windows\\ImageUpdate\\{which}")
    return files[which]


def _layout_action(target, source, env):
    from ..image import stages as image

    spec = json.loads(source[0].read())
    top = Path(env.Dir("#").abspath)
    try:
        parts = {name: [top / c for c in cabs] for name, cabs in spec["partitions"].items()}
        image.build_layout(
            top / spec["layout_cab"],
            top / spec["platform_cab"],
            parts,
            Path(target[0].abspath),
            release_type=spec["release_type"],
            where=spec["oeminput"],
        )
    except FFUError as exc:
        return SCons.Errors.BuildError(errstr=str(exc), status=2, exitstatus=2)
    return 0


def _partition_action(target, source, env):
    from SCons.Script import GetOption

    from ..image import extractcache
    from ..image import stages as image

    spec = json.loads(source[1].read())
    top = Path(env.Dir("#").abspath)
    out = Path(target[0].abspath)
    try:  # packages extracted by earlier builds are reused: only changed CABs are extracted again
        image.build_partition(
            Path(source[0].abspath),
            spec["partition"],
            [top / c for c in spec["cabs"]],
            out,
            Path(target[1].abspath),
            epoch=spec["epoch"],
            cache_dir=out.parent / extractcache.DIRNAME / spec["partition"],
            jobs=GetOption("num_jobs") or 1,
        )
    except FFUError as exc:
        return SCons.Errors.BuildError(errstr=f"{spec['oeminput']}: {exc}", status=2, exitstatus=2)
    return 0


def _progress(label: str):
    if not sys.stdout.isatty():
        return None
    state = {"last": -1}

    def report(done: int, total: int) -> None:
        pct = int(100 * done / total) if total else 100
        if pct != state["last"]:
            state["last"] = pct
            bar = "#" * (pct // 4)
            sys.stdout.write(f"\r  {label} [{bar:<25}] {pct:3d}%")
            if pct >= 100:
                sys.stdout.write("\n")
            sys.stdout.flush()

    return report


def _ffu_action(target, source, env):
    from ..image import stages as image

    spec = json.loads(source[1].read())
    images = {name: Path(s.abspath) for name, s in zip(spec["partitions"], source[2:], strict=True)}
    signer = _SIGNERS[spec["signer"]] if spec["signer"] else None
    raw = Path(target[1].abspath) if len(target) > 1 else None
    try:
        result = image.build_ffu(
            Path(source[0].abspath),
            images,
            Path(target[0].abspath),
            epoch=spec["epoch"],
            signer=signer,
            description=spec["description"],
            raw_out=raw,
            progress=_progress(target[0].name),
            ffu_version=spec.get("ffu_version", 1),
            device_path=spec.get("device_path") or None,
        )
    except FFUError as exc:
        return SCons.Errors.BuildError(errstr=f"{spec['oeminput']}: {exc}", status=2, exitstatus=2)
    size = result.size
    print(
        f"{target[0].path}: {size:,} bytes ({size / (1 << 20):.1f} MiB), {result.data_blocks} blocks stored"
        + (f"; raw disk {target[1].path}" if raw else "")
    )
    return 0


def _resolution_action(target, source, env):
    from ..util.atomic import write_bytes

    write_bytes(target[0].abspath, source[0].read().encode() + b"\n")
    return 0


_LAYOUT_BUILDER = SCons.Builder.Builder(
    action=_SignedFunctionAction(
        _layout_action, "image.stages", strfunction=lambda target, source, env: f"Layout {target[0].path}"
    )
)
_PARTITION_BUILDER = SCons.Builder.Builder(
    action=_SignedFunctionAction(
        _partition_action,
        "image.stages",
        strfunction=lambda target, source, env: f"Partition {target[0].path}",
    )
)
_FFU_BUILDER = SCons.Builder.Builder(
    action=_SignedFunctionAction(
        _ffu_action, "image.stages", strfunction=lambda target, source, env: f"FFU {target[0].path}"
    )
)
_RESOLUTION_BUILDER = SCons.Builder.Builder(
    action=_SignedFunctionAction(
        _resolution_action,
        "features.merge",
        strfunction=lambda target, source, env: f"Resolve {target[0].path}",
    )
)


def _relative_paths(data, top: str):
    """The same JSON with paths below `top` made relative (reports must not name the checkout)."""
    if isinstance(data, dict):
        return {k: _relative_paths(v, top) for k, v in data.items()}
    if isinstance(data, list):
        return [_relative_paths(v, top) for v in data]
    if isinstance(data, str) and data.startswith(top + os.sep):
        return data[len(top) + 1 :]
    return data


def Image(env, oeminput, PRODUCT=None, CONFIG=None, OUTDIR=None, RAW=False, MSPACKAGE=None):
    """Declare an image: the package set from the OEMInput and the merged FMs of this build, the
    layout, one target per partition (depending on exactly the CABs that land on it) and the FFU.
    Returns [Flash.ffu (, Flash.img)]."""
    from ..features import resolve as features
    from ..image import extractcache, layout

    cpu = env.subst("$FFU_CPU").lower()
    oi = _source_file(env, oeminput, "an OEMInput file")
    rel = _rel(env, oi)
    product = PRODUCT or Path(rel).parent.name
    config = CONFIG or ("Retail" if Path(rel).name.lower().startswith("retail") else "Test")
    outdir = env.Dir(OUTDIR or f"#build/{cpu}/{product}/{config}")
    top = Path(env.Dir("#").abspath)
    fms = {}
    for m in MERGES:
        fms.update(m.by_path())
    try:
        from ..features.oeminput import load as load_oeminput

        oi_model = load_oeminput(oi.abspath, rel)
        res = features.resolve(
            oi_model,
            cpu=cpu,
            variables=feature_variables(env),
            ms_root=MSPACKAGE,
            top=top,
            fms=fms,
            available=_available,
            partition_of=partition_of,
        )
        if res.device_layout is None or res.device_platform is None:
            raise FFUError(
                "the image has no device layout / device platform package (check SOC and Device "
                "against the FMs' DeviceLayoutPackages / OEMDevicePlatformPackages)",
                rel,
            )
        release_type = oi_model.release_type.value
        dl = layout.load_device_layout(
            _layout_source(env, res.device_layout.path, "devicelayout.xml"),
            f"{res.device_layout.name}:DeviceLayout.xml",
        )
        layout.check_partitions(dl, [(name, rel, None) for name in res.partitions])
    except FFUError as exc:
        _fail(str(exc.at(rel)))
    # Every layout partition gets an image; packages land on theirs (names as the layout spells them).
    partitions = {p.name: [] for p in dl.partitions}
    for name, pkgs in res.partitions.items():
        partitions[dl.find(name).name] = sorted(os.path.relpath(str(top / pk.path), top) for pk in pkgs)
    signer = signer_of(env)
    epoch = _epoch(env)
    if "MainOS" in partitions:  # the product's version package, like the kit's Registry.Version
        owner = feature_variables(env)["OEM_NAME"]
        name = f"{owner}.{product}.Registry.Version"
        pp = outdir.File(f"packages/{name}.cab")
        pspec = {
            "kind": "version",
            "name": name,
            "owner": owner,
            "product": product,
            "config": config,
            "oeminput": rel,
            "cpu": cpu,
            "version": env.subst("$FFU_VERSION"),
            "build_type": env.subst("$FFU_BUILD_TYPE"),
            "epoch": epoch,
            "compression": env.subst("$FFU_COMPRESSION"),
            "signer": signer.identity if signer else None,
        }
        _GENERATED_BUILDER(env, pp, [env.Value(json.dumps(pspec, sort_keys=True))])
        PACKAGES[pp.abspath] = PackageRecord(name, "MainOS", "Production", rel)
        partitions["MainOS"] = sorted(partitions["MainOS"] + [_rel(env, pp)])
    layout_cab = os.path.relpath(str(top / res.device_layout.path), top)
    platform_cab = os.path.relpath(str(top / res.device_platform.path), top)
    all_cabs = sorted({c for cabs in partitions.values() for c in cabs} | {layout_cab, platform_cab})
    report = env.Value(
        json.dumps(_relative_paths(res.to_json(), str(top)), sort_keys=True, indent=1, default=str)
    )
    resolution_node = _RESOLUTION_BUILDER(env, outdir.File("packages.json"), [report])
    # The OEMInput names merged FMs; the image is resolved from them (in memory), so they belong
    # to its graph: an FM edit re-merges that FM even when only the image is asked for.
    env.Depends(
        resolution_node,
        [_MERGED_NODES[str(Path(p).resolve())] for p in fms if str(Path(p).resolve()) in _MERGED_NODES],
    )
    spec = {
        "oeminput": rel,
        "release_type": release_type,
        "partitions": partitions,
        "layout_cab": layout_cab,
        "platform_cab": platform_cab,
    }
    layout_json = _LAYOUT_BUILDER(
        env,
        outdir.File("layout.json"),
        [env.Value(json.dumps(spec, sort_keys=True))] + [env.File("#" + c) for c in all_cabs],
    )
    images = []
    for name, cabs in partitions.items():
        pspec = {"oeminput": rel, "partition": name, "cabs": cabs, "epoch": epoch}
        nodes = _PARTITION_BUILDER(
            env,
            [outdir.File(f"partitions/{name}.img"), outdir.File(f"partitions/{name}.json")],
            layout_json + [env.Value(json.dumps(pspec, sort_keys=True))] + [env.File("#" + c) for c in cabs],
        )
        images.append(nodes[0])
        env.Clean(nodes, outdir.Dir(f"partitions/{extractcache.DIRNAME}/{name}"))
    fspec = {
        "oeminput": rel,
        "partitions": list(partitions),
        "epoch": epoch,
        "signer": signer.identity if signer else None,
        "description": f"{product} {config} ({cpu}) built by ffuforge",
        "ffu_version": int(env.subst("$FFU_FORMAT_VERSION") or 1),
        "device_path": env.subst("$FFU_DEVICE_PATH"),
    }
    targets = [outdir.File("Flash.ffu")] + ([outdir.File("Flash.img")] if RAW else [])
    ffu_nodes = _FFU_BUILDER(
        env, targets, layout_json + [env.Value(json.dumps(fspec, sort_keys=True))] + images
    )
    env.NoCache(ffu_nodes)  # large and cheap to re-assemble from cached partitions
    for n in images + ffu_nodes:
        n.attributes.ffuforge_blocks = True  # content signature without reading holes: _get_csig
    env.Requires(ffu_nodes, resolution_node)  # the package report comes with every image
    env.Alias(f"image-{product}-{config}".lower(), ffu_nodes)
    return ffu_nodes


# ------------------------------------------------------------------------------ cache


def _get_csig(node) -> str:
    """Partition images and FFUs are signed block by block, holes unread (ffuforge.contentsig),
    whatever their size: SCons' whole-file hash of the sparse 8 GiB Data volume took longer than
    building the image. CABs by cab.content_signature. The action that wrote the file has usually
    computed the signature already (a CAB's writer in passing, in its worker process), and SCons'
    one taskmaster thread takes it instead of reading the file again."""
    if not _block_signed(node):
        return _source_csig(node) or _FILE_GET_CSIG(node)
    ninfo = node.get_ninfo()
    try:
        return ninfo.csig
    except AttributeError:
        pass
    csig = node.get_max_drift_csig()
    if not csig:
        if not node.rexists():
            return _FILE_GET_CSIG(node)
        path = node.rfile().get_abspath()
        try:
            st = os.stat(path)
        except OSError:
            return _FILE_GET_CSIG(node)
        csig = (
            _unchanged(st, _PRESIGNED.get(path))
            or content_signature(path, cab_file=not getattr(node.attributes, "ffuforge_blocks", False))[2]
        )
    ninfo.csig = csig
    return csig


def _source_csig(node) -> str | None:
    """A payload file's content signature from the package build that read it (SCons' own, the
    SHA-256 of the file, when SCons uses SHA-256): one read per payload instead of two, and the
    hashing done in the worker processes rather than on the taskmaster thread."""
    if not _SOURCE_SIGS or node.has_builder() or SCons.Util.get_current_hash_algorithm_used() != "sha256":
        return None
    known = _SOURCE_SIGS.get(node.get_abspath())
    if known is None:
        return None
    ninfo = node.get_ninfo()
    try:
        return ninfo.csig
    except AttributeError:
        pass
    try:
        st = os.stat(node.get_abspath())
    except OSError:
        return None
    csig = _unchanged(st, known)
    if csig is not None:
        ninfo.csig = csig
    return csig


def _unchanged(st: os.stat_result, known: tuple[int, int, str] | None) -> str | None:
    """The signature in `known` (size, mtime_ns, signature) if the file still has that size and mtime."""
    if known is not None and (st.st_size, st.st_mtime_ns) == known[:2]:
        return known[2]
    return None


def _block_signed(node) -> bool:
    return getattr(node.attributes, "ffuforge_blocks", False) or (
        node.has_builder() and node.get_builder() is _PACKAGE_BUILDER
    )


def content_signature(path: str, *, cab_file: bool = False, known: str | None = None) -> tuple[int, int, str]:
    """(size, mtime_ns, content signature) of a file an action has just written. A CAB is signed
    by cab.content_signature (`known` when its writer computed it in passing: a signed CAB's comes
    from the Authenticode digest, so signing adds no hashing pass); other files, and what does not
    parse as a CAB, block by block (ffuforge.contentsig). Either depends on the bytes alone."""
    st = os.stat(path)
    if cab_file and known is None:
        from ..formats.cab import content_signature as cab_signature

        known = cab_signature(path)
    if known is None:
        from .contentsig import file_signature

        known = file_signature(path)
    return st.st_size, st.st_mtime_ns, known


_PRESIGNED: dict[str, tuple[int, int, str]] = {}  # target path -> content_signature() from its action
_SOURCE_SIGS: pkgbuild.SourceDigests = {}  # payload path -> SHA-256 from the package build

_FILE_GET_CSIG = getattr(SCons.Node.FS.File.get_csig, "ffuforge_original", SCons.Node.FS.File.get_csig)
_get_csig.ffuforge_original = _FILE_GET_CSIG
SCons.Node.FS.File.get_csig = _get_csig


class SparseCacheDir(SCons.CacheDir.CacheDir):
    """CacheDir that keeps partition images sparse on the way in and out of the cache."""

    @classmethod
    def copy_from_cache(cls, env, src, dst) -> str:
        from ..util.atomic import sparse_copy

        sparse_copy(src, dst)
        return dst

    @classmethod
    def copy_to_cache(cls, env, src, dst) -> str:
        from ..util.atomic import sparse_copy

        sparse_copy(src, dst)
        os.chmod(dst, os.stat(dst).st_mode | 0o200)
        return dst


def _ignore_ctrl_c_at_exit() -> None:
    """Ctrl-C that reaches scons while it exits — the build over, the interpreter joining the
    worker pool's threads and running atexit handlers — printed a KeyboardInterrupt traceback or
    killed scons silently by SIGINT. Once the build is over there is nothing left to interrupt."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _hook_exit() -> None:
    import threading

    register = getattr(threading, "_register_atexit", None)  # run first when the interpreter exits:
    if register is not None and not _EXIT_HOOKED:  # concurrent.futures' hooks, registered
        _EXIT_HOOKED.append(True)  # at import, run after (in reverse order)
        register(_ignore_ctrl_c_at_exit)


_EXIT_HOOKED: list[bool] = []


def generate(env):
    # SCons hashes every source and CAB it sees (gigabytes per product) on its one taskmaster
    # thread; SHA-256 runs 2.3× faster than its default MD5 on CPUs with SHA extensions. A
    # --hash-format given on the command line still wins.
    from SCons.Script import SetOption

    SetOption("hash_format", "sha256")
    _hook_exit()
    env["CACHEDIR_CLASS"] = SparseCacheDir
    env.SetDefault(
        FFU_CPU="arm",
        FFU_VERSION="10.0.0.0",
        FFU_VARIABLES={},
        FFU_LANGUAGES=[],
        FFU_BUILD_TYPE="fre",
        FFU_COMPRESSION="none",
        FFU_PKG_DIR="#build/${FFU_CPU}/packages",
        FFU_VERBOSE=False,
        FFU_SIGN="test",
        FFU_TEST_PKI_DIR="#testcerts",
        FFU_TEST_PKI_OWNER="Contoso",
        FFU_SIGN_CERT="",
        FFU_SIGN_KEY="",
        FFU_SIGN_CHAIN=[],
        FFU_SIGN_COMMAND="",
        FFU_SIGN_PE=True,
        FFU_BLD_DIR="#build/${FFU_CPU}",
        FFU_MERGED_FM_DIR="#build/${FFU_CPU}/MergedFMs",
        FFU_FEATURE_VARIABLES={},
        FFU_FORMAT_VERSION=1,  # 2: multi-store FFU (one store: this disk)
        FFU_DEVICE_PATH="",  # v2 store device path (default: eMMC user area)
    )
    env.AddMethod(Package, "Package")
    env.AddMethod(FeatureMerge, "FeatureMerge")
    env.AddMethod(Image, "Image")
    env.AddMethod(StandInPE, "StandInPE")
    env.AddMethod(StandInBinary, "StandInBinary")
    env["BUILDERS"]["FFUPackageCab"] = _PACKAGE_BUILDER


def exists(env):
    return True


# ------------------------------------------------------------------- stand-in payloads


def _standin_pe_action(target, source, env):
    from ..formats import pe

    spec = json.loads(source[0].read())
    try:
        from ..util.atomic import write_bytes

        write_bytes(
            target[0].abspath,
            pe.make_minimal_pe(
                None,
                machine=spec["machine"],
                kind=spec["kind"],
                payload=spec["payload"].encode(),
                timestamp=spec["timestamp"],
            ),
        )
    except FFUError as exc:
        return SCons.Errors.BuildError(errstr=f"{target[0].path}: {exc}", status=2, exitstatus=2)
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


_STANDIN_PE = SCons.Builder.Builder(
    action=_SignedFunctionAction(
        _standin_pe_action,
        "formats.pe",
        strfunction=lambda target, source, env: f"StandInPE {target[0].path}",
    )
)
_STANDIN_BLOB = SCons.Builder.Builder(
    action=_SignedFunctionAction(
        _standin_blob_action,
        "util.atomic",
        strfunction=lambda target, source, env: f"StandInBinary {target[0].path}",
    )
)


def StandInPE(env, target, machine=None, kind="sys", payload=""):
    """A small valid PE image standing in for a real driver or program (samples, tests, bench)."""
    machine = machine or env.subst("$FFU_CPU")
    spec = json.dumps(
        {"machine": machine, "kind": kind, "payload": payload or str(target), "timestamp": _epoch(env)},
        sort_keys=True,
    )
    return _STANDIN_PE(env, target, env.Value(spec))


def StandInBinary(env, target, size, seed=None):
    """Deterministic pseudo-random bytes standing in for firmware images."""
    spec = json.dumps({"size": int(size), "seed": seed or str(target)}, sort_keys=True)
    return _STANDIN_BLOB(env, target, env.Value(spec))
