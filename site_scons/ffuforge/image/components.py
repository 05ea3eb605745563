"""Component manifests of a CBS package: read (refusing delta-compressed ones) and their files found
in the CAB.

Microsoft's packages describe their payload in the component manifests' ``<file>`` elements, not in
update.mum (which lists only the manifests and the catalog): ``<file name="x.dll"
destinationPath="$(runtime.system32)\\" sourceName="x.dll" importPath="$(build.nttree)\\">``. ImageApp
installs them through the servicing stack, which copies each to ``destinationPath\\name``. We do the
same from the CAB, with these rules:

* ``destinationPath`` ``$(runtime.*)`` ids resolve through
  :func:`ffuforge.image.registry.runtime_device_path` (pkggen's table, then CSI's), the table the
  registry values of the same manifests use.
* The CAB member: a CBS CAB stores a component's payload in a folder named like its manifest (the
  component's key form), ``<key form>\\<name>`` (cbs-package.md §1; WinSxS keeps the same layout, as
  WindowsDowndate's ``manifest_utils.py`` reads it). ``sourceName`` is the file's name at build time
  (``importPath\\sourceName`` on the build host, PkgBldr ``WmToCsi/File.cs``), so ``<key form>\\<sourceName>``
  is tried next, and ``importPath\\sourceName`` when importPath is a relative CAB path. Which of the
  latter two Microsoft's tools emit is **inferred** (no Microsoft-built IoT CAB was available); the
  first is what pkggen writes. A file none of them names is an error naming the CAB and the member.
* A ``<file>`` without ``destinationPath`` lives only in the component store (WinSxS side-by-side
  assemblies) and is not projected; we have no component store, so it is left out (**inferred**
  from CSI's projection rule; nothing of that kind is in the IoT packages we know).
* The manifest's SHA-256 (or SHA-1) ``asmv2:hash`` is checked against the extracted bytes.
* ``DCM\\x01`` manifests are deltas (PA30, msdelta) against a base manifest held in Windows'
  servicing stack (``wcp.dll`` resource 614; WindowsDowndate ``manifest_utils.py``, smx-smx/Winter
  ``DeltaUnpacker.cs``). That base is not public, so they are refused in one line.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from lxml import etree

from ..errors import FormatError
from ..util import xmlsafe

ASM = "{urn:schemas-microsoft-com:asm.v3}"
ASMV2 = "{urn:schemas-microsoft-com:asm.v2}"
DSIG = "{http://www.w3.org/2000/09/xmldsig#}"
DCM_MAGIC = b"DCM\x01"
_DIGESTS = {DSIG[1:-1] + "sha256": "sha256", DSIG[1:-1] + "sha1": "sha1"}


@dataclass(frozen=True)
class ManifestFile:
    device_path: str  # destinationPath + name, macros unexpanded
    member: str | None  # the CAB member that holds it, None when the CAB has none of `candidates`
    candidates: tuple[str, ...]
    digest: tuple[str, bytes] | None  # (hashlib name, digest) from the manifest
    line: int | None


def read_manifest(data: bytes, where: str) -> etree._Element:
    """A manifest member parsed; a delta-compressed one refused in one line."""
    if data.startswith(DCM_MAGIC):
        raise FormatError(
            "delta-compressed (DCM) manifest: a PA30 delta against a base manifest inside Windows' "
            "servicing stack, which ffuforge cannot expand; not supported — use the package's "
            "plain-XML form (as pkggen writes it)",
            where,
        )
    return xmlsafe.parse_bytes(data, where)


def manifest_files(
    root: etree._Element, manifest_member: str, members: dict[str, object], where: str
) -> list[ManifestFile]:
    """The files a component manifest projects onto the device, each with its CAB member.
    `members`: the CAB's members by lower-case name."""
    folder = manifest_member[: -len(".manifest")] if manifest_member.lower().endswith(".manifest") else ""
    out = []
    for f in root.findall(f"{ASM}file"):
        name, dest = f.get("name"), f.get("destinationPath")
        if not name:
            raise FormatError("a <file> has no name; every component file needs one", where, f.sourceline)
        if dest is None:
            continue  # component-store only (see the module docstring)
        source = f.get("sourceName") or name
        candidates = [f"{folder}\\{name}", f"{folder}\\{source}"]
        imp = (f.get("importPath") or "").strip("\\")
        if imp and "$(" not in imp and ":" not in imp and not imp.startswith(".."):
            candidates.append(f"{imp.removeprefix('.').strip(chr(92))}\\{source}".lstrip("\\"))
        member = next((c for c in candidates if c.lower() in members), None)
        dest = dest.rstrip("\\")
        path = f"{dest}\\{name}" if dest else name
        out.append(ManifestFile(path, member, tuple(candidates), _digest(f, where), f.sourceline))
    return out


def _digest(f: etree._Element, where: str) -> tuple[str, bytes] | None:
    h = f.find(f"{ASMV2}hash")
    if h is None:
        return None
    method = h.find(f"{DSIG}DigestMethod")
    value = h.find(f"{DSIG}DigestValue")
    if method is None or value is None or not (value.text or "").strip():
        raise FormatError(
            f"file {f.get('name')!r}: asmv2:hash lacks DigestMethod or DigestValue", where, h.sourceline
        )
    algo = _DIGESTS.get(method.get("Algorithm", ""))
    if algo is None:
        raise FormatError(
            f"file {f.get('name')!r}: digest method {method.get('Algorithm')!r} is not SHA-256 or SHA-1",
            where,
            method.sourceline,
        )
    text = re.sub(r"\s+", "", value.text or "")
    try:
        return algo, base64.b64decode(text, validate=True)
    except ValueError:
        raise FormatError(
            f"file {f.get('name')!r}: DigestValue {text!r} is not base64", where, value.sourceline
        ) from None
