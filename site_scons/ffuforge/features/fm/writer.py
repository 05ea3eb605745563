"""Serialising a feature manifest: what FeatureMerger writes as a merged FM.

Only merging writes FMs, so the writer stays out of the loader's way; `load_fm` reads its
output back equal.
"""

from __future__ import annotations

from lxml import etree

from .loader import NS
from .manifest import SECTIONS, SINGLE_SECTIONS, FeatureGroup, FeatureManifest, PackageFile
from .text import Filter

# ---------------------------------------------------------------------------- FM writer


def _filter_attr(f: Filter | None) -> str | None:
    return None if f is None else str(f)


def write_fm(fm: FeatureManifest, comment: str | None = None) -> bytes:
    """Serialize an FM deterministically (UTF-8, no BOM); `load_fm` reads it back equal."""
    E = f"{{{NS}}}"
    root = etree.Element(
        E + "FeatureManifest",
        nsmap={
            None: NS,
            "xsi": "http://www.w3.org/2001/XMLSchema-instance",
            "xsd": "http://www.w3.org/2001/XMLSchema",
        },
    )
    if fm.revision is not None:
        root.set("Revision", fm.revision)
    if fm.schema_version is not None:
        root.set("SchemaVersion", fm.schema_version)
    if comment:
        root.append(etree.Comment(" " + comment.replace("--", "- -") + " "))
    order = list(fm.present_sections)
    for p in fm.packages:
        key = "Features/" + p.section if p.section in ("Microsoft", "OEM") else p.section
        if key not in order:
            order.append(key)
        if key.startswith("Features/") and "Features" not in order:
            order.append("Features")
    if (fm.groups or fm.conditional_features) and "Features" not in order:
        order.append("Features")
    for g in fm.groups:
        key = "Features/" + ("MSFeatureGroups" if g.owner == "Microsoft" else "OEMFeatureGroups")
        if key not in order:
            order.append(key)
    if fm.conditional_features and "Features/OEMConditionalFeatures" not in order:
        order.append("Features/OEMConditionalFeatures")

    def pf_el(parent, p: PackageFile, tag: str = "PackageFile"):
        el = etree.SubElement(parent, E + tag)
        sel = SECTIONS[p.section]
        attrs = [("Path", p.path), ("Name", p.name)]
        if sel and sel != "CPUType":
            attrs.append((sel, p.selector))
        attrs += [
            ("CPUType", p.cpu_type),
            ("Language", _filter_attr(p.language)),
            ("Resolution", _filter_attr(p.resolution)),
            ("Partition", p.partition),
            ("ID", p.id),
            ("FeatureIdentifierPackage", "true" if p.fip else None),
            ("NoBasePackage", None if p.no_base_package is None else str(p.no_base_package).lower()),
        ]
        attrs += list(p.extra_selectors)
        for k, v in attrs:
            if v is not None:
                el.set(k, v)
        if p.feature_ids:
            ids = etree.SubElement(el, E + "FeatureIDs")
            for fid in p.feature_ids:
                etree.SubElement(ids, E + "FeatureID").text = fid
        return el

    def group_el(parent, g: FeatureGroup):
        el = etree.SubElement(parent, E + "FeatureGroup")
        if g.name is not None:
            el.set("Name", g.name)
        if g.constraint_written:
            el.set("Constraint", g.constraint)
        if g.publishing:
            el.set("PublishingFeatureGroup", "true")
        if g.feature_ids:
            ids = etree.SubElement(el, E + "FeatureIDs")
            for fid in g.feature_ids:
                etree.SubElement(ids, E + "FeatureID").text = fid
        if g.subgroups:
            subs = etree.SubElement(el, E + "SubGroups")
            for s in g.subgroups:
                group_el(subs, s)

    features_el = None
    for key in order:
        if key.startswith("Features"):
            if features_el is None:
                features_el = etree.SubElement(root, E + "Features")
            if key == "Features":
                continue
            sub = etree.SubElement(features_el, E + key.split("/", 1)[1])
            name = key.split("/", 1)[1]
            if name in ("Microsoft", "OEM"):
                for p in fm.packages:
                    if p.section == name:
                        pf_el(sub, p)
            elif name in ("MSFeatureGroups", "OEMFeatureGroups"):
                owner = "Microsoft" if name == "MSFeatureGroups" else "OEM"
                for g in fm.groups:
                    if g.owner == owner:
                        group_el(sub, g)
            else:
                for c in fm.conditional_features:
                    el = etree.SubElement(sub, E + "ConditionalFeature")
                    el.set("FeatureID", c.feature_id)
                    if c.update_action is not None:
                        el.set("UpdateAction", c.update_action)
                    for k, v in c.attributes:
                        el.set(k, v)
        elif key in SINGLE_SECTIONS:
            for p in fm.packages:
                if p.section == key:
                    pf_el(root, p, key)
        else:
            sec = etree.SubElement(root, E + key)
            for p in fm.packages:
                if p.section == key:
                    pf_el(sec, p)
    etree.indent(root, space="  ")
    return etree.tostring(root, xml_declaration=True, encoding="utf-8", pretty_print=True)
