"""OEMInput.xml: the image description ImageApp reads.

Children may appear in any order (the XSD uses xs:all); element names are case-sensitive;
values compare case-insensitively. `%VAR%` placeholders are expanded from an explicit variable
map when one is given (never from the process environment); paths (AdditionalFM, PackageFile)
are kept as written, since what an unresolved path means is the resolver's decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, FFUError
from ..util import xmlsafe
from .fm import (
    LANG_RE,
    RELEASE_TYPES,
    RES_RE,
    Variables,
    XmlLoader,
    check_root,
    expand,
    fold,
    parse_bool,
    placeholders,
)


@dataclass(frozen=True)
class Item:
    """A value as written (stripped) and the line it is on."""

    value: str
    line: int | None = None

    def __str__(self) -> str:
        return self.value


@dataclass
class OEMInput:
    file: str
    soc: Item
    device: Item
    release_type: Item  # 'Test' | 'Production' (or a %VAR% left unexpanded)
    build_type: Item  # 'fre' | 'chk' (or %BUILDTYPE% left unexpanded)
    ui_languages: tuple[Item, ...]
    boot_ui_language: Item
    boot_locale: Item
    description: Item | None = None
    sv: Item | None = None
    keyboard_languages: tuple[Item, ...] = ()
    speech_languages: tuple[Item, ...] = ()
    resolutions: tuple[Item, ...] = ()
    additional_fms: tuple[Item, ...] = ()
    ms_features: tuple[Item, ...] = ()
    oem_features: tuple[Item, ...] = ()
    package_files: tuple[Item, ...] = ()
    product: Item | None = None
    format_dpp: bool | None = None
    exclude_prerelease_features: bool | None = None
    oem_device_platform: Item | None = None
    user_store_map: tuple[tuple[str | None, str | None, int | None], ...] = ()
    line: int | None = None
    warnings: list[str] = field(default_factory=list)
    path: Path | None = None


_SINGLE = [
    "Description",
    "SOC",
    "SV",
    "Device",
    "ReleaseType",
    "BuildType",
    "BootUILanguage",
    "BootLocale",
    "Product",
    "FormatDPP",
    "ExcludePrereleaseFeatures",
    "OEMDevicePlatform",
]
_LISTS = [
    "SupportedLanguages",
    "Resolutions",
    "AdditionalFMs",
    "Features",
    "PackageFiles",
    "UserStoreMapData",
]
ALLOWED = _SINGLE + _LISTS
BUILD_TYPES = ("fre", "chk")


class _OEMInputLoader(XmlLoader):
    def __init__(self, file: str, variables: Mapping[str, str] | None):
        super().__init__(file)
        self.vars = Variables(variables) if variables is not None else None

    def value(self, el, what: str) -> Item:
        """A non-path value, with %VAR% expanded when a variable map was given."""
        text = self.text(el, what)
        if self.vars is not None and placeholders(text):
            text, missing = expand(text, self.vars)
            if missing:
                raise self.err(
                    el,
                    f"<{what}>{text}</{what}>: undefined variable {missing[0]}; "
                    "define it in the build's variable map",
                )
        return Item(text, el.sourceline)

    def items(self, el, parent: str, item: str, check=None) -> tuple[Item, ...]:
        self.check_attrs(el, ())
        out: list[Item] = []
        for c in self.children(el):
            if xmlsafe.localname(c) != item:
                raise self.unknown(c, parent, [item])
            v = self.value(c, item) if check is not None else Item(self.text(c, item), c.sourceline)
            if check is not None and not placeholders(v.value):
                check(c, v.value)
            if any(fold(v.value) == fold(o.value) for o in out):
                self.warn(c, f"<{item}>{v.value}</{item}> is listed twice in <{parent}>")
                continue
            out.append(v)
        return tuple(out)

    def lang(self, el, value: str) -> None:
        if not LANG_RE.match(value):
            raise self.err(el, f"{value!r} is not a language tag like en-us")

    def res(self, el, value: str) -> None:
        if not RES_RE.match(value):
            raise self.err(el, f"{value!r} is not a resolution like 1024x768")

    def load(self, root) -> OEMInput:
        check_root(root, "OEMInput", self.file)
        self.check_attrs(root, ())
        got: dict[str, object] = {}
        lines: dict[str, int | None] = {}
        for el in self.children(root):
            name = xmlsafe.localname(el)
            if name not in ALLOWED:
                raise self.unknown(el, "OEMInput", ALLOWED)
            if name in got:
                raise self.err(el, f"<{name}> appears twice (first on line {lines[name]})")
            lines[name] = el.sourceline
            if name in _SINGLE:
                self.check_attrs(el, ())
                if name in ("FormatDPP", "ExcludePrereleaseFeatures"):
                    got[name] = parse_bool(self.value(el, name).value, self.file, el.sourceline, f"<{name}>")
                elif name == "Description":
                    got[name] = Item(self.text(el, name, required=False), el.sourceline)
                else:
                    got[name] = self.value(el, name)
            elif name == "SupportedLanguages":
                got[name] = self.languages(el)
            elif name == "Resolutions":
                got[name] = self.items(el, name, "Resolution", self.res)
            elif name == "AdditionalFMs":
                got[name] = self.items(el, name, "AdditionalFM")
            elif name == "PackageFiles":
                got[name] = self.items(el, name, "PackageFile")  # empty <PackageFiles /> is accepted
            elif name == "Features":
                got[name] = self.features(el)
            else:
                self.check_attrs(el, {"SourceDir", "UserStoreDir"})
                if self.children(el):
                    raise self.err(el, "<UserStoreMapData> takes attributes only")
                got[name] = ((el.get("SourceDir"), el.get("UserStoreDir"), el.sourceline),)
        for req in (
            "SOC",
            "Device",
            "ReleaseType",
            "BuildType",
            "SupportedLanguages",
            "BootUILanguage",
            "BootLocale",
        ):
            if req not in got:
                raise self.err(root, f"OEMInput has no <{req}>; it is required")
        if "Description" not in got:
            self.warn(root, "OEMInput has no <Description> (required by the documentation)")
        if "Resolutions" not in got:
            self.warn(root, "OEMInput has no <Resolutions> (required by the documentation)")
        langs = got["SupportedLanguages"]
        rel: Item = got["ReleaseType"]
        if not placeholders(rel.value):
            canon = RELEASE_TYPES.get(rel.value.lower())
            if canon is None:
                raise ConfigError(
                    f"<ReleaseType>{rel.value}</ReleaseType> must be Test or Production", self.file, rel.line
                )
            if canon != rel.value:
                self.warnings.append(
                    str(
                        FFUError(
                            f"<ReleaseType>{rel.value}</ReleaseType> differs in case from {canon}",
                            self.file,
                            rel.line,
                        )
                    )
                )
            rel = Item(canon, rel.line)
        bt: Item = got["BuildType"]
        if not placeholders(bt.value):
            if bt.value.lower() not in BUILD_TYPES:
                raise ConfigError(f"<BuildType>{bt.value}</BuildType> must be fre or chk", self.file, bt.line)
            bt = Item(bt.value.lower(), bt.line)
        for key in ("BootUILanguage", "BootLocale"):
            v: Item = got[key]
            if not placeholders(v.value):
                self.lang_item(v, key)
        ms, oem = got.get("Features", ((), ()))
        return OEMInput(
            file=self.file,
            soc=got["SOC"],
            device=got["Device"],
            release_type=rel,
            build_type=bt,
            ui_languages=langs[0],
            boot_ui_language=got["BootUILanguage"],
            boot_locale=got["BootLocale"],
            description=got.get("Description"),
            sv=got.get("SV"),
            keyboard_languages=langs[1],
            speech_languages=langs[2],
            resolutions=got.get("Resolutions", ()),
            additional_fms=got.get("AdditionalFMs", ()),
            ms_features=ms,
            oem_features=oem,
            package_files=got.get("PackageFiles", ()),
            product=got.get("Product"),
            format_dpp=got.get("FormatDPP"),
            exclude_prerelease_features=got.get("ExcludePrereleaseFeatures"),
            oem_device_platform=got.get("OEMDevicePlatform"),
            user_store_map=got.get("UserStoreMapData", ()),
            line=root.sourceline,
            warnings=self.warnings,
        )

    def lang_item(self, item: Item, what: str) -> None:
        if not LANG_RE.match(item.value):
            raise ConfigError(
                f"<{what}>{item.value}</{what}> is not a language tag like en-us", self.file, item.line
            )

    def languages(self, el):
        allowed = ["UserInterface", "Keyboard", "Speech"]
        self.check_attrs(el, ())
        got: dict[str, tuple[Item, ...]] = {}
        for c in self.children(el):
            name = xmlsafe.localname(c)
            if name not in allowed:
                raise self.unknown(c, "SupportedLanguages", allowed)
            if name in got:
                raise self.err(c, f"<{name}> appears twice in <SupportedLanguages>")
            got[name] = self.items(c, name, "Language", self.lang)
        if not got.get("UserInterface"):
            raise self.err(el, "<SupportedLanguages> needs <UserInterface> with at least one <Language>")
        return got["UserInterface"], got.get("Keyboard", ()), got.get("Speech", ())

    def features(self, el):
        self.check_attrs(el, ())
        got: dict[str, tuple[Item, ...]] = {}
        for c in self.children(el):
            name = xmlsafe.localname(c)
            if name not in ("Microsoft", "OEM"):
                raise self.unknown(c, "Features", ["Microsoft", "OEM"])
            if name in got:
                raise self.err(c, f"<{name}> appears twice in <Features>")
            got[name] = self.items(c, name, "Feature")
        return got.get("Microsoft", ()), got.get("OEM", ())


def load(
    path: str | Path, display: str | None = None, variables: Mapping[str, str] | None = None
) -> OEMInput:
    """Load an OEMInput; with `variables`, %VAR% in non-path values is expanded (undefined -> error)."""
    name = display or str(path)
    oi = _OEMInputLoader(name, variables).load(xmlsafe.parse_file(path, name))
    oi.path = Path(path)
    return oi


def parse_bytes(data: bytes, display: str, variables: Mapping[str, str] | None = None) -> OEMInput:
    return _OEMInputLoader(display, variables).load(xmlsafe.parse_bytes(data, display))
