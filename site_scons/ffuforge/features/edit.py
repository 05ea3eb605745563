"""Authoring edits of FMs, FMFileLists and OEMInputs (``ffuforge new``, ``ffuforge feature``).

The counterpart of IoTCorePShell's ``Add-IoTFMPackage``-style helpers behind ``Add-IoTDriverPackage``
and ``Add-/Remove-IoTProductFeature``: a package is added to an FM as ``<PackageFile Path Name>``
with its ``<FeatureIDs>`` under ``<Features><OEM>`` (or under ``<BasePackages>``), a feature is
selected in an OEMInput's ``<Features><OEM>`` (or ``<Microsoft>``), an FM is listed in an
FMFileList and in an OEMInput's ``<AdditionalFMs>``. Every edit goes through
:class:`ffuforge.util.xmledit.Doc`, so the rest of the file keeps its bytes; each returns a note
for the report, or None when what it would add is already there (names compare case-insensitively,
as FeatureMerger and ImageApp compare them).
"""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

from ..errors import ConfigError
from ..util.xmledit import Doc, Node

IU_NS = "http://schemas.microsoft.com/embedded/2004/10/ImageUpdate"


def _x(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _root(doc: Doc, name: str) -> Node:
    if doc.root.name != name:
        raise ConfigError(f"root element is <{doc.root.name}>, expected <{name}>", doc.display, 1)
    return doc.root


def _ensure(doc: Doc, parent: Node, *path: str) -> Node:
    node = parent
    for name in path:
        child = node.find(name)
        if child is None:
            doc.append(node, f"<{name} />")
            child = _refind(doc, node).find(name)
            assert child is not None
        node = child
    return node


def _refind(doc: Doc, old: Node) -> Node:
    """The same element in the re-indexed tree (edits rebuild the node tree)."""
    chain = []
    node: Node | None = old
    while node is not None and node.parent is not None:
        siblings = node.parent.children
        chain.append((node.name, siblings.index(node)))
        node = node.parent
    cur = doc.root
    for name, index in reversed(chain):
        cur = cur.children[index]
        assert cur.name == name
    return cur


def _same(a: str | None, b: str) -> bool:
    return (a or "").strip().lower() == b.strip().lower()


def fm_package_files(doc: Doc) -> list[Node]:
    root = _root(doc, "FeatureManifest")
    out = []
    for group in root.children:
        if group.name == "Features":
            for sub in group.children:
                out += sub.all("PackageFile")
        else:
            out += group.all("PackageFile")
    return out


def fm_add_package(doc: Doc, path: str, name: str, feature: str | None) -> str | None:
    """Add ``<PackageFile Path Name>`` to an FM: with `feature` under ``<Features><OEM>``, without
    under ``<BasePackages>`` (in every image that uses the FM). The same CAB in the FM already
    with that feature (or as a base package) is "already present"."""
    root = _root(doc, "FeatureManifest")
    for pf in fm_package_files(doc):
        if _same(pf.attrs.get("Name"), name):
            ids = pf.find("FeatureIDs")
            have = [c.text(doc).strip() for c in ids.all("FeatureID")] if ids else []
            if feature is None and pf.parent is not None and pf.parent.name == "BasePackages":
                return None
            if feature is not None and any(_same(h, feature) for h in have):
                return None
            raise ConfigError(
                f"{name} is already in this FM ({', '.join(have) or pf.parent.name if pf.parent else ''}); "
                "edit it by hand or choose another package name",
                doc.display,
                doc.line_of(pf),
            )
    attrs = f"Path={quoteattr(path)} Name={quoteattr(name)}"
    if feature is None:
        parent = _ensure(doc, root, "BasePackages")
        doc.append(parent, f"<PackageFile {attrs} />")
        return f"+ base package {name}"
    parent = _ensure(doc, doc.root, "Features", "OEM")
    doc.append(
        parent,
        f"<PackageFile {attrs}>\n  <FeatureIDs>\n    <FeatureID>{_x(feature)}</FeatureID>\n  </FeatureIDs>\n</PackageFile>",
    )
    return f"+ {name} as feature {feature}"


def fm_features(doc: Doc) -> set[str]:
    out = set()
    for pf in fm_package_files(doc):
        ids = pf.find("FeatureIDs")
        for f in ids.all("FeatureID") if ids else []:
            out.add(f.text(doc).strip())
    return out


def fm_tag_feature(doc: Doc, name: str, feature: str, path: str) -> str | None:
    """Give the FM's package `name` the feature `feature` (a new OEM PackageFile when absent)."""
    for pf in fm_package_files(doc):
        if not _same(pf.attrs.get("Name"), name):
            continue
        if pf.parent is None or pf.parent.name != "OEM":
            raise ConfigError(
                f"{name} is a {pf.parent.name if pf.parent else ''} package here; only packages under "
                "<Features><OEM> carry feature IDs",
                doc.display,
                doc.line_of(pf),
            )
        ids = pf.find("FeatureIDs")
        if ids is None:
            doc.append(pf, f"<FeatureIDs>\n  <FeatureID>{_x(feature)}</FeatureID>\n</FeatureIDs>")
            return f"+ feature {feature} on {name}"
        if any(_same(f.text(doc), feature) for f in ids.all("FeatureID")):
            return None
        doc.append(ids, f"<FeatureID>{_x(feature)}</FeatureID>")
        return f"+ feature {feature} on {name}"
    return fm_add_package(doc, path, name, feature)


def filelist_add_fm(doc: Doc, fm_id: str, path: str) -> str | None:
    root = _root(doc, "FMCollectionManifest")
    fms = _ensure(doc, root, "FMs")
    for fm in fms.all("FM"):
        if _same(fm.attrs.get("Path", "").replace("/", "\\").rsplit("\\", 1)[-1], path.rsplit("\\", 1)[-1]):
            return None
        if _same(fm.attrs.get("ID"), fm_id):
            raise ConfigError(f"FM ID {fm_id} is already used", doc.display, doc.line_of(fm))
    doc.append(
        fms,
        f'<FM ID={quoteattr(fm_id)} Path={quoteattr(path)} ReleaseType="Production" OwnerName="OEM_NAME" '
        'OwnerType="OEM" CPUType="CPU_TYPE" Critical="true" />',
    )
    return f"+ FM {fm_id} ({path})"


def oeminput_features(doc: Doc, group: str) -> list[str]:
    node = _root(doc, "OEMInput").find("Features", group)
    return [f.text(doc).strip() for f in node.all("Feature")] if node else []


def oeminput_add_feature(doc: Doc, feature: str, group: str = "OEM") -> str | None:
    if any(_same(f, feature) for f in oeminput_features(doc, group)):
        return None
    root = _root(doc, "OEMInput")
    parent = _ensure(doc, root, "Features", group)
    doc.append(parent, f"<Feature>{_x(feature)}</Feature>")
    return f"+ {group} feature {feature}"


def oeminput_remove_feature(doc: Doc, feature: str, group: str = "OEM") -> str | None:
    node = _root(doc, "OEMInput").find("Features", group)
    for f in node.all("Feature") if node else []:
        if _same(f.text(doc), feature):
            doc.remove(f)
            return f"- {group} feature {feature}"
    return None


def oeminput_add_fm(doc: Doc, fm: str) -> str | None:
    """List a (merged) FM in ``<AdditionalFMs>``; `fm` as the OEMInput spells paths."""
    root = _root(doc, "OEMInput")
    node = root.find("AdditionalFMs")
    leaf = fm.replace("/", "\\").rsplit("\\", 1)[-1]
    for a in node.all("AdditionalFM") if node else []:
        if _same(a.text(doc).replace("/", "\\").rsplit("\\", 1)[-1], leaf):
            return None
    parent = _ensure(doc, root, "AdditionalFMs")
    doc.append(parent, f"<AdditionalFM>{_x(fm)}</AdditionalFM>")
    return f"+ additional FM {fm}"
