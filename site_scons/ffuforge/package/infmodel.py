"""The data model of a lexed driver INF and of what importing it yields.

Separate from lexing (:mod:`.inflex`) and the import walk (:mod:`.inf`) so both share one set
of types without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["DriverImport", "Inf", "InfFile", "InfLine", "InfModel", "InfSection", "InfService"]


@dataclass(frozen=True, slots=True)
class InfLine:
    """One logical line after quote removal and %strings% substitution."""

    line: int  # 1-based physical line where the logical line starts
    key: str | None  # text before '=', or None for a bare value line
    values: tuple[str, ...]
    #: (value index, token) for each %token% with no [Strings] entry; index -1 is the key.
    unresolved: tuple[tuple[int, str], ...] = ()
    #: (value index, token as written) for each value that was exactly one resolved %token%
    #: (index -1: the key): service DisplayName/Description keep the reference
    #: (``@inf,%token%;text``) as Windows does, and so do driver-database descriptors.
    refs: tuple[tuple[int, str], ...] = ()


@dataclass(slots=True)
class InfSection:
    name: str  # as first written
    line: int  # line of the first header (duplicate headers merge into this section)
    lines: list[InfLine] = field(default_factory=list)
    index: dict[str, list[InfLine]] = field(default_factory=dict, repr=False)  # lower-cased key -> lines

    def get(self, key: str) -> InfLine | None:
        """First line whose key matches case-insensitively."""
        found = self.index.get(key.lower())
        return found[0] if found else None

    def get_all(self, key: str) -> list[InfLine]:
        return self.index.get(key.lower(), [])


@dataclass(slots=True)
class Inf:
    path: str  # name used in messages
    encoding: str
    sections: dict[str, InfSection]  # keyed by lower-cased name
    strings: dict[str, str]  # lower-cased token -> value (locale section already applied)

    def section(self, name: str) -> InfSection | None:
        return self.sections.get(name.lower())


@dataclass(frozen=True, slots=True)
class InfFile:
    source_name: str  # file name on the source disk
    source_subdir: str  # disk path + SourceDisksFiles subdir, backslash-joined, '' for the root
    dest_name: str
    dest_dir: str  # macro form, e.g. '$(runtime.drivers)' or '$(runtime.windows)\INF\sub'
    dirid: int
    section: str  # file-list section (or install section for CopyFiles=@file)
    line: int
    run_from_driver_store: bool = False  # dirid 13: the caller decides the real location
    flags: int = 0  # COPYFLG_* from the file-list entry


@dataclass(frozen=True, slots=True)
class InfService:
    name: str
    binary: str | None  # ServiceBinary as written after %strings%, e.g. '%12%\foo.sys'
    section: str  # service-install section
    line: int  # the AddService line


@dataclass(frozen=True, slots=True)
class InfModel:
    """One device entry of a models section: what the driver database's Descriptors and DeviceIds
    record (drivers.md §3.3, §3.4)."""

    description: str  # expanded text
    description_token: str | None  # the %token% it was written as, if one
    manufacturer: str  # expanded [Manufacturer] name
    manufacturer_token: str | None
    install: str  # decorated install section, as looked up
    ids: tuple[str, ...]  # hardware ID first, then compatible IDs
    line: int


@dataclass(slots=True)
class DriverImport:
    arch: str
    files: list[InfFile]
    catalog_file: str | None
    includes: list[str]  # Include= INFs (inbox; recorded, not followed)
    needs: list[str]  # Needs= sections in those INFs
    copy_infs: list[str]  # CopyINF= extra INFs the package must also carry
    services: list[InfService]
    install_sections: list[str]  # install sections used, decorated name as looked up
    inf_class: str | None = None
    class_guid: str | None = None
    provider: str | None = None
    driver_ver: str | None = None
    models: list[InfModel] = field(default_factory=list)  # every device entry, INF order
    warnings: list[str] = field(default_factory=list)  # 'file:line: message' strings
