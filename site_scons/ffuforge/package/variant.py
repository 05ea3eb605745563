"""A package project made concrete for one build: CPU, variables, version, language, WOW.

The emitter (which CABs?), the scanner (which input files?) and the action (what goes in?)
all call :func:`plan`, so the three can never disagree.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import ConfigError, FFUError
from ..formats import regvalue
from ..util import paths
from . import buildfilter, driverplan, firewall, macros, project, sources
from .project import Filters, Project, Where

CPUS = ("x86", "amd64", "arm", "arm64")
WOW_GUEST = {"arm64": "arm", "amd64": "x86"}
FIREWALL_KEY = firewall.FIREWALL_KEY
_LANG_RE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


@dataclass(frozen=True)
class BuildOptions:
    cpu: str
    version: str = "1.0.0.0"
    variables: tuple[tuple[str, str], ...] = ()
    languages: tuple[str, ...] = ()
    build_type: str = "fre"

    def __post_init__(self):
        if self.cpu.lower() not in CPUS:
            raise ConfigError(f"CPU={self.cpu!r} is not supported; use one of {', '.join(CPUS)}")
        parts = self.version.split(".")
        if len(parts) != 4 or not all(p.isdigit() and int(p) < 65536 for p in parts):
            raise ConfigError(f"VERSION={self.version!r} must be four numbers a.b.c.d, each below 65536")
        for lang in self.languages:
            if not _LANG_RE.match(lang):
                raise ConfigError(f"language {lang!r} is not a culture name like en-us")
        if self.build_type not in ("fre", "chk"):
            raise ConfigError(f"build type {self.build_type!r}; use fre or chk")


@dataclass
class Payload:
    source: Path
    display: str  # source as shown in messages (relative to the project)
    dest_macro: str  # canonical runtime macro id, e.g. 'runtime.system32'
    dest_rel: str  # sub directory below the macro, backslash separated
    name: str
    where: Where
    driver: str = ""  # the driver INF (published name) whose manifest lists the file, or ''

    @property
    def device_dir(self) -> str:
        return f"$({self.dest_macro})" + (f"\\{self.dest_rel}" if self.dest_rel else "")

    @property
    def device_path(self) -> str:
        return f"{self.device_dir}\\{self.name}"


@dataclass
class RegValue:
    key: str
    name: str  # '' = default value
    data: regvalue.RegData
    where: Where
    append: bool = False  # operationHint="append": items merged into other packages' value
    driver: str = ""  # the driver INF whose manifest carries the value, or ''


@dataclass
class Service:
    name: str
    attrs: dict[str, str]
    failure: project.FailureActions | None
    where: Where
    triggers: list = field(default_factory=list)  # projectmodel.TriggerItem, macros expanded


@dataclass
class Driver:
    inf: Path
    inf_display: str
    where: Where
    folder: str = ""  # DriverStore\FileRepository folder (driverstore.folder_name)
    empty_keys: list[str] = field(default_factory=list)  # keys the INF creates without values
    key_security: dict[str, str] = field(default_factory=dict)  # key -> SDDL (UMDF's WUDF key)
    on_device: list[str] = field(default_factory=list)  # 'inf:section' needs Windows applies on the device


@dataclass
class Variant:
    """One output package."""

    kind: str  # 'base' | 'lang' | 'wow'
    name: str  # package identity name
    cab_name: str
    arch: str  # processorArchitecture (host.guest for WOW)
    language: str  # 'neutral' or the culture
    project: Project
    options: BuildOptions
    owner: str
    component: str
    subcomponent: str
    payload: list[Payload] = field(default_factory=list)
    registry: list[RegValue] = field(default_factory=list)
    empty_keys: list[str] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    drivers: list[Driver] = field(default_factory=list)
    bcd: Payload | None = None
    binary_image: Payload | None = None
    extra_inputs: list[Path] = field(default_factory=list)  # read but not shipped (INF includes)
    fip_features: tuple[str, ...] = ()  # feature identifier package: the feature IDs it identifies
    warnings: list[str] = field(default_factory=list)  # 'file:line: warning: …' (driver INFs)

    @property
    def partition(self) -> str:
        return self.project.partition

    def inputs(self) -> list[Path]:
        files = [p.source for p in self.payload] + list(self.extra_inputs)
        for extra in (self.bcd, self.binary_image):
            if extra is not None:
                files.append(extra.source)
        return sorted(set(files))


def _lang_match(spec: str | None, lang: str | None) -> bool:
    if spec is None:
        return lang is None
    if lang is None:
        return False
    s = spec.strip()
    if s == "*":
        return True
    neg = s.startswith("!")
    body = s[1:] if neg else s
    if not (body.startswith("(") and body.endswith(")")):
        body = f"({body})"
    items = {x.strip().lower() for x in body[1:-1].split(";") if x.strip()}
    return (lang.lower() not in items) if neg else (lang.lower() in items)


class _Planner:
    def __init__(
        self,
        p: Project,
        opts: BuildOptions,
        display_dir: str,
        top: Path | None,
        policy: sources.SourcePolicy = sources.UNCONFINED,
        driver_files: bool = False,
    ):
        self.top = top
        self.driver_files = driver_files
        self.p = p
        self.opts = opts
        self.display_dir = display_dir
        self.src = sources.Resolver(p.path, policy, top)
        self.missing: dict[tuple, FFUError] = {}  # every missing input, reported together
        variables = {
            "_RELEASEDIR": ".\\",
            "BSPARCH": opts.cpu.lower(),
            "BSPVER": opts.version,
            **(self.src.item.variables if self.src.item else {}),  # the WDK PkgGen item's /variables
            **dict(opts.variables),
        }
        self.macros = macros.Macros(variables, file=p.where.file)
        for key, value, line in p.macros:
            self.macros.define(key, value, line)

    # -- identity -------------------------------------------------------------------------
    def identity(self) -> tuple[str, str, str, str]:
        p, w = self.p, self.p.where
        owner = self.macros.expand(p.owner, w.line)
        ns = self.macros.expand(p.namespace, w.line) if p.namespace else None
        nm = self.macros.expand(p.name, w.line) if p.name else None
        if p.schema == "wm":
            for label, val in (("owner", owner), ("name", nm), ("namespace", ns)):
                if val is not None and not re.match(r"^[A-Za-z0-9\-]+$", val):
                    raise w.error(f"identity {label}={val!r} may only contain letters, digits and '-'")
            if p.legacy_name:
                base = self.macros.expand(p.legacy_name, w.line)
            else:
                base = "-".join(x for x in (owner, ns, nm) if x)
        else:
            base = ".".join(x for x in (owner, ns, nm) if x)
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._\-]*$", base) or len(base) > 200:
            raise w.error(f"package name {base!r} is not a valid file name (letters, digits, '.', '_', '-')")
        return base, owner, ns or "", nm or ""

    # -- selection ------------------------------------------------------------------------
    def applies(self, f: Filters, env: dict[str, str], lang: str | None, where: Where) -> bool:
        if f.cpu is not None and f.cpu != env["build.arch"].upper():
            return False
        if f.resolution is not None:
            return False  # resolution packages are not built (no /resolutions support yet)
        if not _lang_match(f.language, lang):
            return False
        try:
            return buildfilter.evaluate(f.build, env)
        except FFUError as exc:
            raise exc.at(where.file, where.line) from None

    # -- items ----------------------------------------------------------------------------
    def source_path(
        self, raw: str, where: Where, m: macros.Macros, base: Path | None = None, need: str = ""
    ) -> tuple[Path, str]:
        """The input `raw` names, confined to the workspace and declared roots; `need`: what it is
        ('source file', 'driver INF'), recorded with the folders tried when it does not exist."""
        text = m.expand(raw, where.line)
        if "$(" in text:
            raise where.error(f"source {raw!r} still contains a device macro after expansion")
        tried: list[Path] = []
        if text.startswith("#"):  # SCons convention: relative to the top of the workspace
            if self.top is None:
                raise where.error(f"source {text!r} is relative to the workspace top, which is unknown here")
            path = paths.resolve(self.top, text[1:].lstrip("\\/"))
        else:
            path, tried = self.src.resolve(text, base)
        try:
            shown = os.path.relpath(path, self.p.directory)
        except ValueError:
            shown = str(path)
        shown = os.path.join(self.display_dir, shown) if not os.path.isabs(shown) else shown
        self.src.confine(path, text, where)
        # a file another target makes is not looked at (the plan then holds before and after it is built)
        found = paths.kind(path) if need and not sources.generated(path) else "f"
        if found != "f":
            more, label = self.src.tried(tried, self.display_dir, self.p.directory), need.replace(" file", "")
            what = (
                f"{need} {os.path.normpath(shown)} does not exist{more}; create it or fix the source path"
                if found is None
                else f"{label} {shown} is not a regular file (a directory, FIFO or device)"
            )
            self.missing.setdefault((where.file, where.line, str(path)), where.error(what))
        return path, shown

    def payload(self, item: project.FileItem, m: macros.Macros) -> Payload:
        w = item.where
        src, shown = self.source_path(item.source, w, m, need="source file")
        dest_raw = item.dest_dir if item.dest_dir is not None else "$(runtime.system32)"
        macro, rel = macros.split_destination(m.expand(dest_raw, w.line), w.file, w.line)
        name = m.expand(item.name, w.line) if item.name else src.name
        macros.check_file_name(name, w.file, w.line, "" if item.name else f" (of source {shown})")
        return Payload(src, shown, macro, rel, name, w)

    def build(self, kind: str, lang: str | None) -> Variant:
        p, opts = self.p, self.opts
        base, owner, comp, sub = self.identity()
        host = opts.cpu.lower()
        is_wow = kind == "wow"
        env = {
            "build.arch": host,
            "build.iswow": "true" if is_wow else "false",
            "build.isguest": "true" if is_wow else "false",
            "build.type": opts.build_type,
            "build.language": lang or "",
            "build.resolution": "",
        }
        m = self.macros.with_variables({"LANGID": lang} if lang else {})
        if kind == "lang":
            name, arch, culture = f"{base}.Resources_Lang_{lang}", host, lang
        elif is_wow:
            name, arch, culture = (
                f"{base}_Wow_{host}.{WOW_GUEST[host]}",
                f"{host}.{WOW_GUEST[host]}",
                "neutral",
            )
        else:
            name, arch, culture = base, host, "neutral"
        v = Variant(kind, name, name + ".cab", arch, culture, p, opts, owner, comp, sub)
        content_lang = lang if kind == "lang" else None

        for item in p.files:
            if self.applies(item.filters, env, content_lang, item.where):
                v.payload.append(self.payload(item, m))
        for key in p.regkeys:
            if not self.applies(key.filters, env, content_lang, key.where):
                continue
            key_name = macros.expand_key_name(key.key_name, m, key.where.file, key.where.line)
            values = [val for val in key.values if self.applies(val.filters, env, content_lang, val.where)]
            if not values:
                v.empty_keys.append(key_name)
            for val in values:
                v.registry.append(self.reg_value(key_name, val, m))
        if kind != "base":
            return self.check(v)  # language and WOW packages carry files and registry only
        for drv in p.drivers:
            if self.applies(drv.filters, env, None, drv.where):
                self.driver(v, drv, m)
        for svc in p.services:
            if self.applies(svc.filters, env, None, svc.where):
                attrs = {k: m.expand(val, svc.where.line) for k, val in svc.attrs.items()}
                triggers = [
                    replace(
                        t,
                        subtype=m.expand(t.subtype, t.where.line),
                        data=[(kind, m.expand(val, t.where.line)) for kind, val in t.data],
                    )
                    for t in svc.triggers
                ]
                v.services.append(Service(svc.name, attrs, svc.failure, svc.where, triggers))
        for server in p.com:
            if self.applies(server.filters, env, None, server.where):
                self.com(v, server, m)
        for rule in p.firewall:
            self.firewall(v, rule, m)
        if p.bcd is not None and self.applies(p.bcd.filters, env, None, p.bcd.where):
            src, shown = self.source_path(p.bcd.source, p.bcd.where, m, need="bcdStore source")
            v.bcd = Payload(
                src, shown, "runtime.bootDrive", r"EFI\Microsoft\Boot\ffuforge", src.name, p.bcd.where
            )
        if p.binary_image is not None:
            raw, where = p.binary_image
            src, shown = self.source_path(raw, where, m, need="binaryPartition image")
            v.binary_image = Payload(src, shown, "runtime.bootDrive", "", f"{p.partition}.bin", where)
            if v.payload or v.registry or v.drivers or v.services:
                raise where.error(
                    "a binaryPartition package carries only its partition image; "
                    "move files, registry and drivers to another package"
                )
        return self.check(v)

    def reg_value(self, key: str, val: project.RegValueItem, m: macros.Macros) -> RegValue:
        w = val.where
        name = m.expand(val.name, w.line) if val.name is not None else ""
        # String values keep $(runtime.*) and $(build.*) for the installer to expand as CSI does
        # (pkggen leaves them in the manifest); other types are numbers and bytes.
        textual = val.type.strip().upper() in ("REG_SZ", "REG_EXPAND_SZ", "REG_MULTI_SZ")
        text = m.expand(val.value, w.line, device=not textual, csi=textual) if val.value is not None else None
        try:
            data = regvalue.decode(val.type, text, legacy=self.p.schema == "pkg")
        except FFUError as exc:
            raise exc.at(w.file, w.line) from None
        return RegValue(key, name, data, w, val.append)

    def driver(self, v: Variant, drv: project.DriverItem, m: macros.Macros) -> None:
        w = drv.where
        inf_path, inf_shown = self.source_path(drv.inf, w, m, need="driver INF")
        key = (w.file, w.line, str(inf_path))
        if paths.kind(inf_path) != "f":  # reported with every other missing input, or now
            if key in self.missing and self.src.policy.report_missing:
                return
            raise self.missing.get(key) or w.error(f"driver INF {inf_shown} must exist before the build")
        import_dir = inf_path.parent
        if drv.default_import_path:
            import_dir, _ = self.source_path(drv.default_import_path, w, m)
        overrides = {}
        for o in drv.overrides:
            oname = m.expand(o.name, o.where.line) if o.name else None
            src, shown = self.source_path(o.source, o.where, m, need="source file")
            overrides[(oname or src.name).lower()] = (src, shown)
        own = {pl.name.lower(): (pl.source, pl.display) for pl in v.payload if not pl.driver}
        c = driverplan.plan_driver(
            *(inf_path, inf_shown, self.opts.cpu.lower(), import_dir, overrides),
            lambda rel, base, need: self.source_path(
                rel, w, m, base=base, need=need and f"{os.path.normpath(inf_shown)}: {need}"
            ),
            own,
            self.driver_files,
        )
        published = inf_path.name
        v.payload += [
            Payload(src, shown, mac, sub, name, w, published) for src, shown, mac, sub, name in c.payload
        ]
        for iv in c.registry:
            v.registry.append(RegValue(iv.key, iv.name, iv.data, Where(inf_shown, iv.line), driver=published))
        v.drivers.append(Driver(inf_path, inf_shown, w, c.folder, c.empty_keys, c.key_security, c.on_device))
        v.extra_inputs += c.inputs
        v.warnings += c.warnings

    def com(self, v: Variant, server: project.ComServer, m: macros.Macros) -> None:
        path = m.expand(server.path, server.where.line, device=True)
        for c in server.classes:
            clsid = c.clsid.strip()
            if not re.match(r"^\{[0-9A-Fa-f]{8}(-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}\}$", clsid):
                raise c.where.error(f"COM class id {clsid!r} is not a GUID in braces")
            key = rf"HKEY_LOCAL_MACHINE\Software\Classes\CLSID\{clsid.upper()}"
            sub = key + ("\\InprocServer32" if server.kind == "inproc" else "\\LocalServer32")
            vals = [(key, "", c.description or "")] if c.description else []
            vals.append((sub, "", path))
            if server.kind == "inproc" and c.threading:
                vals.append((sub, "ThreadingModel", c.threading))
            if c.prog_id:
                vals.append((key + "\\ProgID", "", c.prog_id))
                vals.append((rf"HKEY_LOCAL_MACHINE\Software\Classes\{c.prog_id}\CLSID", "", clsid.upper()))
            for k, n, text in vals:
                kind = "REG_EXPAND_SZ" if (k == sub and n == "") else "REG_SZ"
                v.registry.append(RegValue(k, n, regvalue.decode(kind, text, legacy=False), c.where))

    def firewall(self, v: Variant, rule: project.FirewallItem, m: macros.Macros) -> None:
        key, name, data = firewall.rule_value(rule, m)
        v.registry.append(RegValue(key, name, data, rule.where))

    def check(self, v: Variant) -> Variant:
        seen: dict[str, Payload] = {}
        for pl in v.payload:
            if pl.driver:  # names an INF gives; a project's own were checked by payload()
                macros.check_file_name(pl.name, pl.where.file, pl.where.line, f" (from {pl.driver})")
            key = pl.device_path.lower()
            if key in seen:
                first = seen[key]
                if first.source == pl.source:
                    continue
                raise pl.where.error(
                    f"destination {pl.device_path} is already used by {first.display} "
                    f"(line {first.where.line}); rename one of them"
                )
            seen[key] = pl
        v.payload = sorted(
            {pl.device_path.lower(): pl for pl in v.payload}.values(), key=lambda pl: pl.device_path.lower()
        )
        regs: dict[tuple[str, str], RegValue] = {}
        for r in v.registry:
            k = (r.key.lower(), r.name.lower())
            if k in regs and (regs[k].data, regs[k].append) != (r.data, r.append):
                raise r.where.error(
                    f"registry value {r.key}\\{r.name or '(default)'} is set twice with different "
                    f"data (also line {regs[k].where.line})"
                )
            regs[k] = r
        v.registry = sorted(regs.values(), key=lambda r: (r.key.lower(), r.name.lower()))
        v.empty_keys = sorted(set(v.empty_keys) - {r.key for r in v.registry})
        return v

    def has_language_content(self, lang: str) -> bool:
        env = {
            "build.arch": self.opts.cpu.lower(),
            "build.iswow": "false",
            "build.isguest": "false",
            "build.type": self.opts.build_type,
            "build.language": lang,
            "build.resolution": "",
        }
        items = [(f.filters, f.where) for f in self.p.files] + [(k.filters, k.where) for k in self.p.regkeys]
        return any(self.applies(f, env, lang, w) for f, w in items)


def plan(
    p: Project,
    opts: BuildOptions,
    display_dir: str | None = None,
    top: Path | None = None,
    policy: sources.SourcePolicy = sources.UNCONFINED,
    driver_files: bool = False,
) -> list[Variant]:
    """Every package the project yields for `opts`: base, then languages, then WOW; every missing
    input at once (:class:`sources.Problems`). `top` anchors sources written `#path` (the SCons
    top directory) and, with `policy.roots`, confines them. `driver_files`: read driver payload
    files (store folder name, FileSize), which the package build does, SConscript reading not."""
    planner = _Planner(
        p, opts, display_dir if display_dir is not None else str(p.directory), top, policy, driver_files
    )
    out = [planner.build("base", None)]
    for lang in sorted({x.lower() for x in opts.languages}):
        if planner.has_language_content(lang):
            out.append(planner.build("lang", lang))
    if p.build_wow:
        if opts.cpu.lower() not in WOW_GUEST:
            raise p.where.error(f'buildWow="true" needs a 64-bit CPU (arm64 or amd64), not {opts.cpu}')
        out.append(planner.build("wow", None))
    if planner.missing and policy.report_missing:
        errors = [
            e for _, e in sorted(planner.missing.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0, kv[0][2]))
        ]
        raise errors[0] if len(errors) == 1 else sources.Problems(errors)
    return out


def package_name(p: Project, opts: BuildOptions, top: Path | None = None) -> str:
    """The base CAB's name as :func:`plan` gives it, content unplanned (for scons_tool.bsp)."""
    return _Planner(p, opts, str(p.directory), top).identity()[0]


def generated_variant(
    name: str,
    partition: str,
    opts: BuildOptions,
    *,
    owner: str,
    component: str,
    owner_type: str = "OEM",
    release_type: str = "Production",
    registry: list[tuple[str, str, regvalue.RegData]] = (),
    fip_features: tuple[str, ...] = (),
) -> Variant:
    """A package the build itself generates (no project file): feature identifier packages and
    product packages such as the version registry package."""
    where = Where(f"<generated package {name}>", None)
    p = Project(
        Path(f"{name}.generated"),
        "wm",
        where,
        owner,
        None,
        None,
        name,
        partition=partition,
        release_type=release_type,
        owner_type=owner_type,
    )
    v = Variant("base", name, name + ".cab", opts.cpu.lower(), "neutral", p, opts, owner, component, name)
    v.fip_features = tuple(fip_features)
    v.registry = sorted(
        (RegValue(k, n, d, where) for k, n, d in registry), key=lambda r: (r.key.lower(), r.name.lower())
    )
    return v


def fip_variant(
    name: str,
    partition: str,
    feature_ids: tuple[str, ...],
    opts: BuildOptions,
    *,
    owner: str,
    owner_type: str = "OEM",
    release_type: str = "Production",
) -> Variant:
    """A feature identifier package (what FeatureMerger generates per feature and partition):
    no payload, only the identity and the feature IDs it stands for in update.mum."""
    return generated_variant(
        name,
        partition,
        opts,
        owner=owner,
        component="FIP",
        owner_type=owner_type,
        release_type=release_type,
        fip_features=tuple(feature_ids),
    )


def describe(v: Variant, top: Path) -> dict:
    """Canonical, path-relative description of everything a variant's CAB depends on, except the
    bytes of its input files. SCons signs it, so any change that alters the package (and only
    such a change) rebuilds it; a comment edit in the project does not."""

    def rel(path: Path) -> str:
        try:
            r = os.path.relpath(path, top)
        except ValueError:
            return str(path)
        return str(path) if r.startswith("..") else r.replace(os.sep, "/")

    def pl(p: Payload | None):
        return None if p is None else [rel(p.source), p.device_path]

    p = v.project
    return {
        "name": v.name,
        "kind": v.kind,
        "arch": v.arch,
        "language": v.language,
        "identity": [v.owner, v.component, v.subcomponent],
        "partition": p.partition,
        "release": p.release_type,
        "ownerType": p.owner_type,
        "version": v.options.version,
        "buildType": v.options.build_type,
        "payload": [pl(x) for x in v.payload],
        "registry": [[r.key, r.name, r.data.type, r.data.data.hex(), r.append] for r in v.registry],
        "emptyKeys": v.empty_keys,
        "services": [
            [
                s.name,
                sorted(s.attrs.items()),
                None
                if s.failure is None
                else [s.failure.reset_period, s.failure.command, s.failure.reboot_message, s.failure.actions],
                [[t.action, t.type, t.subtype, t.data] for t in s.triggers],
            ]
            for s in v.services
        ],
        "drivers": [
            [rel(d.inf), d.folder, d.empty_keys, sorted(d.key_security.items()), d.on_device]
            for d in v.drivers
        ],
        "driverFiles": [i for i, p in enumerate(v.payload) if p.driver],
        "bcd": pl(v.bcd),
        "binaryImage": pl(v.binary_image),
        "inputs": [rel(f) for f in v.inputs()],
        "fipFeatures": list(v.fip_features),
    }
