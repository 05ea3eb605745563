"""Security descriptors a package project gives, resolved for one variant (what its component
manifest names).

The wm.xml form is ffuforge's reading of the schema, not a published one (Microsoft documents only
the common wm.xml elements; no project in the add-on-kit corpus gives a descriptor). It mirrors the
CSI manifest pkggen turns a project into, whose form *is* known from Windows' own manifests:

* ``<trustInfo><security><accessControl><securityDescriptorDefinitions>
  <securityDescriptorDefinition name="NAME" sddl="…"/>`` -- as in Windows' manifests;
* ``securityDescriptor="NAME"`` on ``<file>`` and ``<regKey>`` (wm.xml puts item settings in
  attributes, e.g. ``<service securityDescriptor=…>``); Windows' manifests write the same as a
  ``<securityDescriptor name="NAME"/>`` child of ``<file>`` / ``<registryKey>``;
* ``<directories><directory path="$(runtime.…)\\…" securityDescriptor="NAME"/>`` for a directory
  the package declares (manifest: ``<directories><directory destinationPath=…>``).

Legacy ``.pkg.xml`` has no per-item SDDL: its security model is capabilities and private resources
(PackageSchema.v8.00, PkgGenCommon ``ProjSchema.xsd``), which ffuforge does not implement.

The variant is matched to the project's items by their ``Where`` (the planner hands each file's
and value's ``Where`` on unchanged), so :mod:`.variant` needs no knowledge of descriptors.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import macros
from .variant import Variant, _Planner


@dataclass
class VariantSecurity:
    files: dict[str, str] = field(default_factory=dict)  # device path (lower case) → name
    directories: list[tuple[str, str | None]] = field(default_factory=list)  # (device directory, name)
    keys: dict[str, str] = field(default_factory=dict)  # expanded key name → name
    definitions: dict[str, str] = field(default_factory=dict)  # name → SDDL, those used

    def __bool__(self) -> bool:
        return bool(self.files or self.directories or self.keys)

    def describe(self) -> dict:
        """What a CAB's signature includes (only when there is something: other CABs keep theirs)."""
        return {
            "files": sorted(self.files.items()),
            "directories": sorted((d, n or "") for d, n in self.directories),
            "keys": sorted(self.keys.items()),
            "definitions": sorted(self.definitions.items()),
        }


def for_variant(v: Variant) -> VariantSecurity:
    p = v.project
    out = VariantSecurity()
    if not p.security and not p.directories:
        return out
    by_file = {id(f.where): f.security for f in p.files if f.security}
    for pl in v.payload:
        name = by_file.get(id(pl.where))
        if name:
            out.files[pl.device_path.lower()] = name
    key_of_value = {id(r.where): r.key for r in v.registry}
    m = None
    for key in p.regkeys:
        if not key.security:
            continue
        hits = [key_of_value[id(val.where)] for val in key.values if id(val.where) in key_of_value]
        if hits:
            out.keys[hits[0]] = key.security
            continue
        if m is None:
            m = _Planner(p, v.options, "", None).macros
        expanded = macros.expand_key_name(key.key_name, m, key.where.file, key.where.line)
        if expanded in v.empty_keys:
            out.keys[expanded] = key.security
    if v.kind == "base":
        for d in p.directories:
            if m is None:
                m = _Planner(p, v.options, "", None).macros
            macro, rel = macros.split_destination(
                m.expand(d.path, d.where.line), d.where.file, d.where.line, "directory path"
            )
            if not rel:
                raise d.where.error(
                    f"directory {d.path!r} is a root macro's own directory; a package may only "
                    "declare directories below it"
                )
            out.directories.append((f"$({macro})\\{rel}", d.security))
    used = {*out.files.values(), *out.keys.values(), *(n for _, n in out.directories if n)}
    out.definitions = {n: p.security[n].sddl for n in sorted(used)}
    return out
