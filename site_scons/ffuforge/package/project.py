"""Package projects: `*.wm.xml` and legacy `*.pkg.xml` loaded into one model.

Both schemas describe the same things with different spellings; loading them into one
model means naming, CAB layout and the image builder never care which one a tree uses.
Loading is purely syntactic (no payload file is opened): emitters and corpus checks need it
cheap; :mod:`ffuforge.package.variant` turns a model into a concrete package for one build.

Model, constants and the shared loader base live in :mod:`.projectmodel`, the two readers in
:mod:`.wmxml` and :mod:`.pkgxml`; this module picks the reader, caches loaded models and
re-exports the model, so importers of this module keep working unchanged.
"""

from __future__ import annotations

import os
from pathlib import Path

from lxml import etree

from ..errors import ConfigError
from ..util import paths, xmlsafe
from .pkgxml import PkgLoader
from .projectmodel import (
    PKG_NS,
    WM_NS,
    BcdItem,
    ComClass,
    ComServer,
    DriverItem,
    FailureActions,
    FileItem,
    Filters,
    FirewallItem,
    Project,
    RegKeyItem,
    RegValueItem,
    ServiceItem,
    Where,
)
from .wmxml import WmLoader

BCD_NS = "http://schemas.microsoft.com/phone/2011/10/BootConfiguration"

_CACHE: dict[tuple, Project] = {}


def load(path: str | Path, display: str | None = None) -> Project:
    """Load a package project; raises FFUError with file:line for any schema problem."""
    path = Path(path)
    name = display or str(path)
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ConfigError(f"cannot read package project: {exc.strerror}", name) from None
    paths.note_read(path, st)  # also when the model below comes from _CACHE (ffuforge.plancache)
    key = (str(path), name, st.st_mtime_ns, st.st_size)
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    root = xmlsafe.parse_file(path, name)
    ns, tag = xmlsafe.namespace(root), xmlsafe.localname(root)
    if tag == "identity" and ns == WM_NS:
        project = WmLoader(path, name).load(root)
    elif tag == "Package" and ns == PKG_NS:
        project = PkgLoader(path, name).load(root)
    else:
        raise ConfigError(
            f"root <{tag}> in namespace {ns!r} is not a package project; expected <identity "
            f'xmlns="{WM_NS}"> or <Package xmlns="{PKG_NS}">',
            name,
            root.sourceline,
        )
    if len(_CACHE) > 4096:
        _CACHE.clear()
    _CACHE[key] = project
    return project


def check_bcd(path: Path, display: str, where: Where) -> None:
    """A bcdStore source must be a BootConfigurationDatabase document."""
    root = xmlsafe.parse_file(path, display)
    if xmlsafe.localname(root) != "BootConfigurationDatabase" or xmlsafe.namespace(root) != BCD_NS:
        raise where.error(f'bcdStore source {display} is not a <BootConfigurationDatabase xmlns="{BCD_NS}">')
    from ..formats import bcd

    bcd.parse_document(path, display)  # unknown elements and bad values: now, located, not at image time


__all__ = [
    "load",
    "Project",
    "FileItem",
    "RegKeyItem",
    "RegValueItem",
    "DriverItem",
    "ServiceItem",
    "ComServer",
    "ComClass",
    "BcdItem",
    "FirewallItem",
    "Filters",
    "FailureActions",
    "Where",
    "etree",
]
