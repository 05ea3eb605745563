"""Package projects made from arguments: what IoTCorePShell's ``Add-IoTDriverPackage``,
``Add-IoTFilePackage`` and ``Add-IoTRegistryPackage`` write (``ffuforge new driver|file|registry``).

Each scaffold is a :class:`~.projectmodel.Project` written by :mod:`.wmwrite` and read back by our
own wm.xml reader before anything is written, so a bad argument (an invalid device name, a
misspelt value type, an unknown key root) is refused like a bad project line would be. The shapes
follow the kit's templates (``Templates/FileTemplate.wm.xml``, the 17134/17763 workspace
packages): ``owner="$(OEMNAME)"``, ``legacyName="$(OEMNAME).<namespace>.<name>"``, MainOS,
Production, ``ownerType="OEM"``; a driver project holds only its ``<inf>`` (files come from the INF).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import ConfigError
from ..formats import regvalue
from ..util import xmlsafe
from . import inf as infmod
from . import macros
from .projectmodel import DriverItem, FileItem, Filters, Project, RegKeyItem, RegValueItem, Where
from .wmwrite import render
from .wmxml import WmLoader

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
# Key roots a user types (reg.exe spellings) and the wm.xml macro each starts with.
_ROOTS = (
    (r"HKLM\SOFTWARE\CLASSES", "$(hkcr.classes)"),
    (r"HKLM\SOFTWARE", "$(hklm.software)"),
    (r"HKLM\SYSTEM\CURRENTCONTROLSET\SERVICES", "$(hklm.services)"),
    (r"HKLM\SYSTEM\CURRENTCONTROLSET\CONTROL", "$(hklm.control)"),
    (r"HKLM\SYSTEM\CURRENTCONTROLSET", "$(hklm.currentcontrolset)"),
    (r"HKLM\SYSTEM", "$(hklm.system)"),
    (r"HKCU", "$(hkcu.root)"),
)
_TYPE_ALIASES = {t.removeprefix("REG_"): t for t in regvalue.AUTHORED}


def split_name(text: str, default_namespace: str, where: str = "--name") -> tuple[str, str]:
    """``Namespace.Name`` (the kit's ``CompName.SubCompName``); a bare name gets `default_namespace`."""
    ns, dot, name = text.partition(".")
    if not dot:
        ns, name = default_namespace, text
    for seg in (ns, *name.split(".")):
        if not _SEGMENT.match(seg):
            raise ConfigError(
                f"{where} {text!r}: {seg!r} is not a package name part; use letters, digits, '_' and '-' "
                "(Namespace.Name, e.g. Drivers.MyDriver)"
            )
    return ns, name


def _project(ns: str, name: str, display: str) -> Project:
    return Project(
        Path(display),
        "wm",
        Where(display, None),
        "$(OEMNAME)",
        name,
        ns,
        f"$(OEMNAME).{ns}.{name}",
    )


def check(data: bytes, display: str) -> Project:
    """Our reader's verdict on generated wm.xml bytes (the same errors a build would give)."""
    return WmLoader(Path(display), display).load(xmlsafe.parse_bytes(data, display))


def driver_payload(inf_path: Path, display: str) -> list[str]:
    """Every source file (``subdir\\name``) the INF copies for any architecture it supports."""
    parsed = infmod.parse_inf(inf_path, display)
    found: dict[str, str] = {}
    errors = []
    for arch in infmod.ARCHES:
        try:
            imp = infmod.import_driver(parsed, arch)
        except ConfigError as exc:
            errors.append(exc)
            continue
        for f in imp.files:
            rel = "\\".join(p for p in (f.source_subdir, f.source_name) if p)
            found.setdefault(rel.lower(), rel)
    if not found and errors:
        raise errors[0]
    return sorted(found.values(), key=str.lower)


def driver(ns: str, name: str, inf_source: str, import_path: str | None, display: str) -> bytes:
    p = _project(ns, name, display)
    p.drivers.append(DriverItem(inf_source, import_path, [], Filters(), p.where))
    data = render(p)
    check(data, display)
    return data


def files(ns: str, name: str, items: list[tuple[str, str, str | None]], display: str) -> bytes:
    """`items`: (source relative to the project, destinationDir, device name or None)."""
    p = _project(ns, name, display)
    for source, dest, dev_name in items:
        macros.check_file_name(
            dev_name or source.rsplit("\\", 1)[-1], display, None, " (a source's own name)"
        )
        p.files.append(FileItem(source, dest, dev_name, Filters(), p.where))
    data = render(p)
    check(data, display)
    return data


def device_dir(text: str) -> str:
    r"""A ``--dest`` as wm.xml writes it: ``$(runtime.…)\…`` as given, ``\X`` or ``C:\X`` from the
    partition root (``$(runtime.bootDrive)\X``)."""
    t = text.strip().replace("/", "\\")
    if t.startswith("$("):
        return t.rstrip("\\")
    m = re.match(r"^(?:[A-Za-z]:)?\\(.*)$", t)
    if not m:
        raise ConfigError(
            f"--dest {text!r} is not a device folder; give $(runtime.system32)\\X, $(runtime.bootDrive)\\X or \\X"
        )
    rest = m.group(1).rstrip("\\")
    for seg in rest.split("\\") if rest else ():
        problem = macros.name_problem(seg) if seg not in ("", ".", "..") else "is empty, '.' or '..'"
        if problem:
            raise ConfigError(f"--dest {text!r}: folder {seg!r} {problem}")
    return "$(runtime.bootDrive)" + (f"\\{rest}" if rest else "")


def registry_key(text: str) -> str:
    r"""``HKLM\Software\X`` (reg.exe spelling, any case) as ``$(hklm.software)\X``; macro forms as given."""
    t = text.strip().replace("/", "\\").rstrip("\\")
    if t.startswith("$("):
        return t
    up = t.upper().replace("HKEY_LOCAL_MACHINE", "HKLM").replace("HKEY_CURRENT_USER", "HKCU")
    for prefix, macro in _ROOTS:
        if up == prefix or up.startswith(prefix + "\\"):
            rest = t[len(t) - (len(up) - len(prefix)) :]
            return macro + rest
    raise ConfigError(
        f"registry key {text!r} does not start with a key ffuforge can write; use HKLM\\SOFTWARE\\…, "
        "HKLM\\SYSTEM\\…, HKCU\\… or a $(hklm.…) macro"
    )


def registry_value(spec: str) -> tuple[str | None, str, str]:
    """``NAME=TYPE:VALUE`` (``@`` = the default value; TYPE with or without ``REG_``)."""
    name, eq, rest = spec.partition("=")
    typ, colon, value = rest.partition(":")
    if not eq or not colon or not name:
        raise ConfigError(f"registry value {spec!r}: write NAME=TYPE:VALUE, e.g. Timeout=REG_DWORD:0x1e")
    t = typ.strip().upper()
    t = _TYPE_ALIASES.get(t, t)
    if t not in regvalue.AUTHORED:
        raise ConfigError(
            f"registry value {spec!r}: type {typ!r} is not one of {', '.join(regvalue.AUTHORED)}"
        )
    regvalue.decode(t, value, legacy=False)
    return (None if name == "@" else name), t, value


def registry(ns: str, name: str, key: str, values: list[tuple[str | None, str, str]], display: str) -> bytes:
    p = _project(ns, name, display)
    p.regkeys.append(
        RegKeyItem(key, [RegValueItem(n, t, v, Filters(), p.where) for n, t, v in values], Filters(), p.where)
    )
    data = render(p)
    check(data, display)
    return data
