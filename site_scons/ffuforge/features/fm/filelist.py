"""FMFileLists (`<FMCollectionManifest>`): the FMs one FeatureMerger run merges, model and loader.

Kept apart from the FM model: the list only names FMs (ID, path, owner, CPU), it never holds
their content.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import ConfigError
from ...util import xmlsafe
from .loader import XmlLoader, check_root
from .manifest import RELEASE_TYPES
from .text import LANG_RE, RES_RE, fold, parse_bool

# --------------------------------------------------------------------------- FMFileList model


@dataclass(frozen=True)
class FMEntry:
    id: str
    path: str  # as written, e.g. $(FMDirectory)\OEMFM.xml
    line: int | None = None
    release_type: str | None = None
    owner_name: str | None = None
    owner_type: str | None = None
    cpu_type: str | None = None
    critical: bool | None = None

    @property
    def file_name(self) -> str:
        return re.split(r"[\\/]", self.path.strip())[-1]


@dataclass
class FMFileList:
    file: str
    fms: list[FMEntry] = field(default_factory=list)
    product: str | None = None
    is_build_feature_enabled: bool | None = None
    resolutions: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    locales: tuple[str, ...] = ()
    warnings: list[str] = field(default_factory=list)
    path: Path | None = None


class _FMFileListLoader(XmlLoader):
    ALLOWED = [
        "IsBuildFeatureEnabled",
        "FMs",
        "SupportedResolutions",
        "SupportedLanguages",
        "SupportedLocales",
    ]

    def load(self, root) -> FMFileList:
        check_root(root, "FMCollectionManifest", self.file)
        self.check_attrs(root, {"Product"})
        fl = FMFileList(self.file, product=root.get("Product"))
        seen: set[str] = set()
        for el in self.children(root):
            name = xmlsafe.localname(el)
            if name not in self.ALLOWED:
                raise self.unknown(el, "FMCollectionManifest", self.ALLOWED)
            if name in seen:
                raise self.err(el, f"<{name}> appears twice in the FMFileList")
            seen.add(name)
            self.check_attrs(el, ())
            if name == "IsBuildFeatureEnabled":
                fl.is_build_feature_enabled = parse_bool(self.text(el, name), self.file, el.sourceline, name)
            elif name == "FMs":
                for fm in self.children(el):
                    if xmlsafe.localname(fm) != "FM":
                        raise self.unknown(fm, "FMs", ["FM"])
                    fl.fms.append(self.entry(fm))
            else:
                item = {
                    "SupportedResolutions": "Resolution",
                    "SupportedLanguages": "Language",
                    "SupportedLocales": "Locale",
                }[name]
                values = []
                for c in self.children(el):
                    if xmlsafe.localname(c) != item:
                        raise self.unknown(c, name, [item])
                    v = self.text(c, item)
                    if item == "Resolution" and not RES_RE.match(v):
                        raise self.err(c, f"<Resolution>{v}</Resolution> is not WxH like 1024x768")
                    if item != "Resolution" and not LANG_RE.match(v):
                        raise self.err(c, f"<{item}>{v}</{item}> is not a language tag like en-US")
                    values.append(v)
                setattr(
                    fl,
                    {"Resolution": "resolutions", "Language": "languages", "Locale": "locales"}[item],
                    tuple(values),
                )
        if "FMs" not in seen:
            raise self.err(root, "FMFileList has no <FMs>")
        ids: dict[str, FMEntry] = {}
        for e in fl.fms:
            if fold(e.id) in ids:
                raise ConfigError(
                    f"FM ID {e.id!r} is used twice (also line {ids[fold(e.id)].line}); "
                    "FM IDs name the generated packages and must be unique",
                    self.file,
                    e.line,
                )
            ids[fold(e.id)] = e
        fl.warnings = self.warnings
        return fl

    def entry(self, el) -> FMEntry:
        self.check_attrs(el, {"ID", "Path", "ReleaseType", "OwnerName", "OwnerType", "CPUType", "Critical"})
        fid, path = el.get("ID"), el.get("Path")
        if not fid or not fid.strip():
            raise self.err(el, "<FM> needs ID=")
        if not path or not path.strip():
            raise self.err(el, f"<FM ID={fid!r}> needs Path=")
        if len(fid.strip()) > 8:
            self.warn(el, f"FM ID {fid!r} is longer than the documented 8 characters (accepted)")
        rel = el.get("ReleaseType")
        if rel is not None:
            canon = RELEASE_TYPES.get(rel.strip().lower())
            if canon is None:
                raise self.err(el, f"FM {fid}: ReleaseType={rel!r} is not Production or Test")
            if canon != rel.strip():
                self.warn(el, f"FM {fid}: ReleaseType={rel!r} differs in case from {canon}")
            rel = canon
        owner_type = el.get("OwnerType")
        if owner_type is not None and owner_type.strip().lower() not in ("oem", "microsoft"):
            raise self.err(el, f"FM {fid}: OwnerType={owner_type!r} is not OEM or Microsoft")
        return FMEntry(
            fid.strip(),
            path.strip(),
            el.sourceline,
            rel,
            el.get("OwnerName"),
            owner_type,
            el.get("CPUType"),
            parse_bool(el.get("Critical"), self.file, el.sourceline, "Critical"),
        )


def load_fmfilelist(path: str | Path, display: str | None = None) -> FMFileList:
    name = display or str(path)
    fl = _FMFileListLoader(name).load(xmlsafe.parse_file(path, name))
    fl.path = Path(path)
    return fl
