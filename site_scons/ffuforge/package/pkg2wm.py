"""Legacy ``*.pkg.xml`` projects converted to ``*.wm.xml`` (``Convert-IoTPkg2Wm``,
``pkggen /convert:pkg2wm /useLegacyName:true``).

The project is read by our pkg.xml reader and written by :mod:`.wmwrite`, so the conversion is as
strict as a build: what does not load does not convert. The mapping is the one observed in the
add-on kit's 29 pkg.xml/wm.xml pairs (package-project.md §2.1, ``pkg2wm_pairs.tsv``):
``Component``/``SubComponent`` become ``namespace``/``name`` with
``legacyName="<Owner>.<Component>.<SubComponent>"``; a file without ``DestinationDir`` gets an
explicit ``$(runtime.system32)``; ``$(runtime.root)`` becomes ``$(runtime.bootDrive)``;
``REG_DWORD`` values are written ``0x`` and 8 hex digits, ``REG_BINARY`` without commas, and
legacy ``REG_HEX`` as the typed value it encodes; ``Platform`` is dropped; a driver keeps only its
INF (its files come from the INF). Service spellings (enum case, ``Severe`` → ``critical``,
``Executable`` → ``<file>`` + ``imagePath``) have no pair in the corpus and are inferred.
The kit converter's known defects (doubled driver file names, a renamed DeviceLayout package)
are not reproduced.
"""

from __future__ import annotations

import copy
import re
from dataclasses import replace

from ..errors import ConfigError, FFUError
from ..formats import regvalue
from .projectmodel import FileItem, Project, RegKeyItem, RegValueItem

_ROOT = re.compile(r"(?i)\$\(runtime\.root\)")
_ENUM_CASE = {
    "win32ownprocess": "win32OwnProcess",
    "win32shareprocess": "win32ShareProcess",
    "kerneldriver": "kernelDriver",
    "filesystemdriver": "fileSystemDriver",
    "delayedauto": "delayedAuto",
}


def _path(text: str | None) -> str | None:
    return _ROOT.sub("$(runtime.bootDrive)", text) if text is not None else None


def _file(f: FileItem) -> FileItem:
    return replace(f, source=_path(f.source) or f.source, dest_dir=_path(f.dest_dir) or "$(runtime.system32)")


def _value(v: RegValueItem) -> RegValueItem:
    t = v.type.upper()
    if t in ("REG_SZ", "REG_EXPAND_SZ", "REG_QWORD") or v.value is None:
        return replace(v, type=t)
    try:
        data = regvalue.decode(t, v.value, legacy=True)
    except FFUError as exc:
        if "$(" in v.value and t != "REG_HEX":
            return replace(v, type=t)  # a build variable: pkggen expands it at build time, keep it
        raise ConfigError(exc.message, v.where.file, v.where.line) from None
    name = data.type_name
    if name not in regvalue.AUTHORED:
        raise ConfigError(
            f"REG_HEX value of type {name} has no wm.xml form; write it as REG_BINARY or a typed value",
            v.where.file,
            v.where.line,
        )
    if name == "REG_MULTI_SZ":
        items = regvalue.multi_items(data.data)
        if items and not any(";" in i or "," in i or i.startswith('"') for i in items):
            return replace(v, type=name, value=";".join(items))  # pkg.xml's own form
    return replace(v, type=name, value=data.manifest_text())


def convert(p: Project) -> Project:
    """A wm.xml model of the pkg.xml model `p` (which is left as it was)."""
    if p.schema != "pkg":
        raise ConfigError("is already a wm.xml project; nothing to convert", p.where.file)
    out = copy.deepcopy(p)
    out.schema = "wm"
    out.platform = None
    out.legacy_name = f"{p.owner}.{p.namespace}.{p.name}" if p.name else f"{p.owner}.{p.namespace}"
    out.files = [_file(f) for f in p.files]
    out.regkeys = [
        RegKeyItem(k.key_name, [_value(v) for v in k.values], k.filters, k.where, k.security)
        for k in p.regkeys
    ]
    for d in out.drivers:
        d.overrides = []
        d.inf = _path(d.inf) or d.inf
    for s in out.services:
        for attr in ("start", "type", "errorControl"):
            if attr in s.attrs:
                low = s.attrs[attr].lower()
                s.attrs[attr] = _ENUM_CASE.get(low, low)
        if "imagePath" in s.attrs:
            s.attrs["imagePath"] = _path(s.attrs["imagePath"]) or s.attrs["imagePath"]
        s.executable = None  # already among the files, its path in imagePath
    for c in out.com:
        c.path = _path(c.path) or c.path
    if out.bcd is not None:
        out.bcd.source = _path(out.bcd.source) or out.bcd.source
    return out
