"""A package-project model written out as a ``*.wm.xml`` document.

One writer for everything that produces wm.xml: the scaffolds of ``ffuforge new`` and the pkg.xml
conversion (:mod:`.pkg2wm`). The document is built with lxml (so every value is escaped) in the
element order of the kit's wm.xml files (``onecorePackageInfo``, ``macros``, ``files``,
``regKeys``, ``drivers``, services, ``COM``, ``bcdStore``) and indented by two spaces; the same
model always gives the same bytes. Filters map back to wm.xml's spellings: a build expression to
``buildFilter=``, a language to ``<language culture>``, a resolution to ``<files resolution>``,
and pkg.xml's ``CpuFilter`` to ``buildFilter="build.arch = …"``.
"""

from __future__ import annotations

from lxml import etree

from ..errors import ConfigError
from .projectmodel import WM_NS, FileItem, Filters, Project, RegKeyItem, Where

_Q = f"{{{WM_NS}}}"


def _el(parent, tag: str, **attrs: str | None):
    el = (
        etree.SubElement(parent, _Q + tag)
        if parent is not None
        else etree.Element(_Q + tag, nsmap={None: WM_NS})
    )
    for k, v in attrs.items():
        if v is not None:
            el.set(k, v)
    return el


def _build_filter(f: Filters) -> str | None:
    parts = []
    if f.build:
        parts.append(f.build)
    if f.cpu:
        parts.append(f"build.arch = {f.cpu.lower()}")
    if len(parts) > 1:
        return " and ".join(f"({p})" for p in parts)
    return parts[0] if parts else None


def _group_key(f: Filters) -> tuple:
    return (f.language, f.resolution, _build_filter(f))


def _language(f: Filters) -> str | None:
    """wm.xml's <language culture> takes "*" or one culture; pkg.xml's lists and negations have no form."""
    lang = f.language
    if lang is None:
        return None
    if lang == "*":
        return "*"
    inner = lang[1:-1] if lang.startswith("(") and lang.endswith(")") else None
    if inner is None or ";" in inner or not inner:
        raise ConfigError(f"language filter {lang!r} has no wm.xml form (only '*' or one culture)")
    return inner


def _container(root, f: Filters, where: Where):
    try:
        lang = _language(f)
    except ConfigError as exc:
        raise exc.at(where.file, where.line) from None
    return _el(root, "language", culture=lang) if lang else root


def _files(parent, items: list[FileItem], f: Filters) -> None:
    group = _el(parent, "files", resolution=f.resolution if f.resolution else None)
    for it in items:
        _el(
            group,
            "file",
            source=it.source,
            destinationDir=it.dest_dir,
            name=it.name,
            securityDescriptor=it.security,
        )


def _regkeys(parent, items: list[RegKeyItem]) -> None:
    group = _el(parent, "regKeys")
    for k in items:
        key = _el(group, "regKey", keyName=k.key_name, securityDescriptor=k.security)
        for v in k.values:
            _el(
                key,
                "regValue",
                name=v.name,
                type=v.type,
                value=v.value,
                operationHint="append" if v.append else None,
            )


def _grouped(items, filters_of):
    """Items in first-seen order of their filter group (kept stable for identical models)."""
    groups: dict[tuple, tuple[Filters, list]] = {}
    for it in items:
        f = filters_of(it)
        groups.setdefault(_group_key(f), (f, []))[1].append(it)
    return list(groups.values())


def render(p: Project) -> bytes:
    """The wm.xml bytes of `p` (UTF-8, declaration, trailing newline)."""
    root = _el(None, "identity", owner=p.owner, namespace=p.namespace, name=p.name, legacyName=p.legacy_name)
    if p.build_wow:
        root.set("buildWow", "true")
    info = _el(
        root,
        "onecorePackageInfo",
        targetPartition=p.partition,
        releaseType=p.release_type,
        ownerType=p.owner_type,
    )
    if p.binary_partition:
        info.set("binaryPartition", "true")
        if p.binary_image is not None:
            _el(info, "binaryPartition", imageSource=p.binary_image[0])
    if p.macros:
        macros = _el(root, "macros")
        for mid, value, _line in p.macros:
            _el(macros, "macro", id=mid, value=value)
    for f, items in _grouped(p.files, lambda it: it.filters):
        parent = _container(root, f, items[0].where)
        _files(parent, items, f)
        if _build_filter(f):
            parent[-1].set("buildFilter", _build_filter(f))
    for f, keys in _grouped(p.regkeys, lambda k: k.filters):
        if f.resolution:
            raise ConfigError("a resolution filter on registry keys has no wm.xml form", p.where.file)
        parent = _container(root, f, keys[0].where)
        _regkeys(parent, keys)
        if _build_filter(f):
            parent[-1].set("buildFilter", _build_filter(f))
    if p.drivers:
        drivers = _el(root, "drivers")
        for d in p.drivers:
            drv = _el(
                drivers,
                "driver",
                defaultImportPath=d.default_import_path,
                buildFilter=_build_filter(d.filters),
            )
            _el(drv, "inf", source=d.inf)
            if d.overrides:
                _files(drv, d.overrides, Filters())
    for s in p.services:
        attrs = dict(s.attrs)
        svc = _el(root, "service", **{k: attrs[k] for k in attrs}, buildFilter=_build_filter(s.filters))
        if s.failure is not None:
            fa = _el(
                svc,
                "failureActions",
                resetPeriod=s.failure.reset_period,
                command=s.failure.command,
                rebootMessage=s.failure.reboot_message,
            )
            acts = _el(fa, "actions")
            for kind, delay in s.failure.actions:
                _el(acts, "action", type=kind[:1].lower() + kind[1:], delay=str(delay))
        for t in s.triggers:
            trig = _el(svc, "serviceTrigger", action=t.action, type=t.type, subtype=t.subtype)
            for dtype, dvalue in t.data:
                _el(trig, "triggerData", type=dtype, value=dvalue)
    if p.com:
        com = _el(root, "COM")
        servers = _el(com, "servers")
        for c in p.com:
            srv = _el(
                servers,
                "inProcServer" if c.kind == "inproc" else "exeServer",
                path=c.path,
                buildFilter=_build_filter(c.filters),
            )
            classes = _el(srv, "classes")
            for cls in c.classes:
                _el(
                    classes,
                    "class",
                    id=cls.clsid,
                    threading=cls.threading,
                    progId=cls.prog_id,
                    description=cls.description,
                )
    if p.bcd is not None:
        _el(root, "bcdStore", source=p.bcd.source, buildFilter=_build_filter(p.bcd.filters))
    for fw in p.firewall:
        _el(root, "firewallRule", **fw.attrs)
    if p.directories or p.security:
        raise ConfigError(
            "directories and security descriptors are not written by this writer yet", p.where.file
        )
    etree.indent(root, space="  ")
    body = etree.tostring(root, encoding="unicode")
    return ('<?xml version="1.0" encoding="utf-8"?>\n' + body + "\n").encode("utf-8")
