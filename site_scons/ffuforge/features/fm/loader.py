"""The ImageUpdate namespace, document root checks and :class:`XmlLoader`, which every loader shares.

FM, FMFileList and OEMInput files are all ImageUpdate documents read with the same element and
attribute rules (case-sensitive names, one namespace, text-only leaves, unknown elements and
attributes refused with a did-you-mean hint); those rules live here once, apart from what each
document contains. The corpus (120 FMs, 65 FMFileLists, 308 OEMInputs) needs no attribute beyond
what the loaders list.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ...errors import ConfigError, FFUError
from ...util import xmlsafe

NS = "http://schemas.microsoft.com/embedded/2004/10/ImageUpdate"
_NS_HTTPS = "https://schemas.microsoft.com/embedded/2004/10/ImageUpdate"


def _root_kind(root) -> str:
    return {"FeatureManifest": "FM", "FMCollectionManifest": "FMFileList", "OEMInput": "OEMInput"}.get(
        xmlsafe.localname(root), ""
    )


def check_root(root, expected: str, file: str) -> None:
    """Refuse a file whose root is not `expected` (in the ImageUpdate namespace), clearly."""
    name = xmlsafe.localname(root)
    if name != expected:
        kind = _root_kind(root)
        what = {
            "FM": "a feature manifest (FM)",
            "FMFileList": "an FMFileList (FMCollectionManifest)",
            "OEMInput": "an OEMInput",
        }.get(kind, f"a <{name}> document")
        want = {
            "FeatureManifest": "a feature manifest (<FeatureManifest>)",
            "FMCollectionManifest": "an FMFileList (<FMCollectionManifest>)",
            "OEMInput": "an OEMInput (<OEMInput>)",
        }[expected]
        raise ConfigError(f"this is {what}, not {want}", file, root.sourceline)
    ns = xmlsafe.namespace(root)
    if ns != NS:
        if ns == _NS_HTTPS:
            hint = "the documentation's https:// spelling is wrong; use http://"
        elif ns is None:
            hint = f'add xmlns="{NS}"'
        else:
            hint = f"expected {NS!r}"
        raise ConfigError(f"<{expected}> has namespace {ns!r}; {hint}", file, root.sourceline)


class XmlLoader:
    def __init__(self, file: str):
        self.file = file
        self.warnings: list[str] = []

    def err(self, el, message: str) -> ConfigError:
        return ConfigError(message, self.file, el.sourceline if el is not None else None)

    def warn(self, el, message: str) -> None:
        self.warnings.append(str(FFUError(message, self.file, el.sourceline if el is not None else None)))

    def children(self, el) -> list:
        out = []
        for c in xmlsafe.elements(el):
            if xmlsafe.namespace(c) != NS:
                raise self.err(
                    c, f"<{xmlsafe.localname(c)}> has namespace {xmlsafe.namespace(c)!r}; expected {NS!r}"
                )
            out.append(c)
        return out

    def unknown(self, el, parent: str, allowed: Iterable[str]) -> ConfigError:
        name = xmlsafe.localname(el)
        allowed = list(allowed)
        return self.err(
            el,
            f"<{name}> is not allowed inside <{parent}>{xmlsafe.suggest(name, allowed, '<{}>')}; "
            f"expected one of: {', '.join(allowed)}",
        )

    def text(self, el, what: str, required: bool = True) -> str:
        self.check_attrs(el, ())  # text leaves carry no attributes in any ImageUpdate schema
        if self.children(el):
            raise self.err(el, f"<{what}> must contain text only")
        value = (el.text or "").strip()
        if required and not value:
            raise self.err(el, f"<{what}> is empty")
        return value

    def check_attrs(self, el, allowed: Iterable[str]) -> None:
        """Unknown attributes are errors with a did-you-mean hint (xsi:* and xml:* pass)."""
        xmlsafe.check_attributes(el, allowed, self.file)


def document_kind(path: str | Path, display: str | None = None) -> str:
    """'FM', 'FMFileList', 'OEMInput' or '' for another XML document (FFUError if unreadable)."""
    return _root_kind(xmlsafe.parse_file(path, display or str(path)))
