"""Security descriptors that component manifests give files, directories and registry keys.

Windows' manifests (asm.v3) name a descriptor with a ``<securityDescriptor name="NAME"/>`` child
of ``<file>``, ``<directories>/<directory destinationPath=…>`` and ``<registryKey>``, and define
the names once per manifest in
``<trustInfo><security><accessControl><securityDescriptorDefinitions><securityDescriptorDefinition
name=… sddl=… operationHint="replace"/>`` (real Windows 10 manifests, e.g. the WRP_FILE_DEFAULT_SDDL
and WRP_REGKEY_DEFAULT_SDDL definitions they all carry). This reads them from any CAB's manifests
-- ours, a vendor's or Microsoft's -- as ``(path, SDDL)`` pairs; :mod:`.install` checks that two
packages agree and :mod:`.partition`/:mod:`.stages` apply them (NTFS ``$Secure``, hive ``sk``).

A name a manifest uses but does not define, or an SDDL the converter cannot write, is refused with
the manifest's name and line: CSI would fail the install the same way, and applying a guessed
descriptor would be worse than none.
"""

from __future__ import annotations

from lxml import etree

from ..errors import FFUError, FormatError
from ..formats import secdesc
from ..util import xmlsafe

ASM = "{urn:schemas-microsoft-com:asm.v3}"
DEFS_PATH = (
    f"{ASM}trustInfo/{ASM}security/{ASM}accessControl/{ASM}securityDescriptorDefinitions/"
    f"{ASM}securityDescriptorDefinition"
)


def definitions(root: etree._Element, where: str) -> dict[str, str]:
    """name → SDDL of a manifest's ``securityDescriptorDefinition``s, each checked by the converter."""
    out: dict[str, str] = {}
    for d in root.findall(DEFS_PATH):
        name, sddl = d.get("name"), d.get("sddl")
        if not name or sddl is None:
            raise FormatError(
                "<securityDescriptorDefinition> needs name and sddl attributes", where, d.sourceline
            )
        if name in out and out[name] != sddl:
            raise FormatError(
                f"security descriptor {name!r} is defined twice, differently", where, d.sourceline
            )
        try:
            secdesc.sddl_to_binary(sddl)
        except FFUError as exc:
            raise FormatError(f"security descriptor {name!r}: {exc.message}", where, d.sourceline) from None
        out[name] = sddl
    return out


def _named(el: etree._Element, defs: dict[str, str], where: str) -> str | None:
    sd = el.find(f"{ASM}securityDescriptor")
    if sd is None:
        return None
    name = sd.get("name")
    if not name:
        raise FormatError("<securityDescriptor> needs a name attribute", where, sd.sourceline)
    if name not in defs:
        raise FormatError(
            f"security descriptor {name!r} is not defined in this manifest's "
            "trustInfo/security/accessControl/securityDescriptorDefinitions",
            where,
            sd.sourceline,
        )
    return defs[name]


def manifest_security(data: bytes | etree._Element, where: str) -> tuple[list, list, list]:
    """``(files, directories, keys)`` a component manifest gives descriptors: files as
    ``(destinationPath + name, SDDL)``, directories as ``(destinationPath, SDDL or None)`` (device paths,
    macros unexpanded), keys as ``(keyName, SDDL)``."""
    root = data if isinstance(data, etree._Element) else xmlsafe.parse_bytes(data, where)
    defs = definitions(root, where)
    files, dirs, keys = [], [], []
    for f in root.findall(f"{ASM}file"):
        sddl = _named(f, defs, where)
        if sddl is not None:
            dest = (f.get("destinationPath") or "").rstrip("\\")
            files.append((f"{dest}\\{f.get('name', '')}" if dest else f.get("name", ""), sddl))
    for d in root.findall(f"{ASM}directories/{ASM}directory"):  # created, with or without a descriptor
        dirs.append(((d.get("destinationPath") or "").rstrip("\\"), _named(d, defs, where)))
    for k in root.iter(f"{ASM}registryKey"):
        sddl = _named(k, defs, where)
        if sddl is not None:
            keys.append((k.get("keyName", "").rstrip("\\"), sddl))
    return files, dirs, keys


def same(a: str, b: str) -> bool:
    """Two SDDL strings that give the same descriptor (spelling aside: ``GA`` vs ``0x10000000``)."""
    return a == b or secdesc.sddl_to_binary(a) == secdesc.sddl_to_binary(b)
