"""Feature manifests (FM) and FMFileLists: models, loaders, writer, filters and placeholders.

An FM (`<FeatureManifest>`) lists CBS packages by section (base, features, SOC/device/release
specific, layout, platform, ...); an FMFileList (`<FMCollectionManifest>`) lists the FMs one
FeatureMerger run merges. Both live in the ImageUpdate namespace. Element names are
case-sensitive; values (feature IDs, SOC/Device names, partitions, languages) compare
case-insensitively.

Nothing here resolves a path against the file system: `expand` substitutes placeholders from
an explicit variable map, and the resolver (`features.resolve`) decides what a leftover means.

This package re-exports its parts, so `from ffuforge.features.fm import X` names any of them:
`text` (case folding, CPU names, filters, placeholders, implicit IDs), `loader` (namespace, root
checks, the shared XmlLoader), `manifest` (FM model, loader, group checks), `writer` (FM
serialisation) and `filelist` (FMFileList model and loader).
"""

from __future__ import annotations

from .filelist import (
    FMEntry,
    FMFileList,
    load_fmfilelist,
)
from .loader import (
    NS,
    XmlLoader,
    check_root,
    document_kind,
)
from .manifest import (
    CONSTRAINTS,
    EXCLUSIVE,
    PRERELEASE_TYPES,
    RELEASE_TYPES,
    REQUIRED,
    SECTIONS,
    SINGLE_SECTIONS,
    TOP_SECTIONS,
    ConditionalFeature,
    FeatureGroup,
    FeatureManifest,
    PackageFile,
    check_groups,
    load_fm,
    parse_fm_bytes,
    with_packages,
)
from .text import (
    CPU_TYPES,
    LANG_RE,
    MS_PLACEHOLDERS,
    RES_RE,
    Filter,
    Variables,
    expand,
    fm_implicit_id,
    fold,
    hint_name,
    input_implicit_id,
    is_ms_placeholder,
    normalize_cpu,
    parse_bool,
    parse_filter,
    placeholder_name,
    placeholders,
    same,
)
from .writer import (
    write_fm,
)

__all__ = [
    "CONSTRAINTS",
    "CPU_TYPES",
    "ConditionalFeature",
    "EXCLUSIVE",
    "FMEntry",
    "FMFileList",
    "FeatureGroup",
    "FeatureManifest",
    "Filter",
    "LANG_RE",
    "MS_PLACEHOLDERS",
    "NS",
    "PRERELEASE_TYPES",
    "PackageFile",
    "RELEASE_TYPES",
    "REQUIRED",
    "RES_RE",
    "SECTIONS",
    "SINGLE_SECTIONS",
    "TOP_SECTIONS",
    "Variables",
    "XmlLoader",
    "check_groups",
    "check_root",
    "document_kind",
    "expand",
    "fm_implicit_id",
    "fold",
    "hint_name",
    "input_implicit_id",
    "is_ms_placeholder",
    "load_fm",
    "load_fmfilelist",
    "normalize_cpu",
    "parse_bool",
    "parse_filter",
    "parse_fm_bytes",
    "placeholder_name",
    "placeholders",
    "same",
    "with_packages",
    "write_fm",
]
