"""The image's software bill of materials: an SPDX 2.3 JSON document written next to Flash.ffu.

What it holds, all from what the build already has (no file is hashed for it that the build did
not hash already, except each CAB once, kept in the CAB facts while the CAB is unchanged):

* the image (`SPDXRef-Image`, the FFU: product, configuration, CPU, version, OEMInput) and one SPDX
  package per CAB in it: name and version (update.mum), supplier = the package owner
  (`phoneOwner`), partition, release type (`phoneRelease`), architecture, the subject of the
  certificate that signed the CAB (with TEST ONLY when the test chain did), and the SHA-256 of
  the CAB file; the image CONTAINS each package;
* every installed file (partitions/<Name>.json: path, SHA-256 and SHA-1, owning package; SPDX 2.3
  requires a SHA-1 of every file, taken by the install in the same pass as the SHA-256), named
  `./<Partition>/<path with />`; its package CONTAINS it. Files ffuforge writes from the
  packages' registry values (the hives) are contained by the image itself.

Release type, partition, architecture and signer have no SPDX 2.3 field of their own: they are
lines `key: value` of the package's `comment` (`ffuforge diff` reads them back). Licenses and
copyrights are NOASSERTION (packages do not declare them). The FFU file's own checksum is not
given: the document is written before the FFU and from the same inputs (hashing a multi-GiB FFU
again would cost more than writing it); the FFU is a function of these packages and the layout.

Deterministic: `created` is SOURCE_DATE_EPOCH, every list is sorted, SPDX IDs come from names and
paths, and `documentNamespace` ends in the SHA-256 of the document's content, so two builds of
the same image give the same bytes and different images different namespaces.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from .. import __version__
from ..errors import FormatError
from ..signing import verify
from ..util import toolsig, xmlsafe
from . import install
from .cabfacts import CabFacts
from .partition import REGISTRY_OWNER
from .updateos import OWNER as UPDATEOS_OWNER

NAMESPACE_BASE = "https://ffuforge.invalid/spdx"  # never dereferenced (SPDX 2.3 §6.5); .invalid: RFC 2606
# Files the image build writes itself (owners in angle brackets), contained by the image.
GENERATED = {
    REGISTRY_OWNER: "written by ffuforge from the packages' registry values",
    UPDATEOS_OWNER: "UpdateOS.wim, built by ffuforge from the UpdateOS packages (partitions/UpdateOS.json)",
}
COMMENT_KEYS = ("partition", "release type", "architecture", "signer")


@dataclass(frozen=True)
class CabIdentity:
    """What the SBOM says of one CAB (kept in the CAB facts under :func:`facts_key`)."""

    name: str
    version: str
    arch: str
    partition: str
    release_type: str
    owner: str
    signer: str  # subject of the CAB's signing certificate, "" when unsigned
    sha256: str


@functools.cache
def facts_key() -> str:
    """Name of a CAB's identity in the CAB facts: this module's code fingerprint is part of it,
    so identities kept by an older ffuforge are not taken for what this one would find."""
    return "sbom:" + toolsig.fingerprint("image.sbom")


def cab_identity(cab: Path) -> CabIdentity:
    """Identity, owner, signer and SHA-256 of one CAB: one read of update.mum, one of the file,
    the Authenticode signature's signer certificate (not checked against a root here)."""
    from ..formats.cab import CabReader

    with CabReader(cab) as reader:
        mum = install.read_mum(reader, cab)
    signers: list[str] = []
    verify.cab_signature_problems(cab, None, signers)
    with open(cab, "rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
    return _identity(mum, cab, signers[0] if signers else "", digest)


def written_identity(mum: bytes, cab: Path, signer: str, sha256: str) -> CabIdentity:
    """:func:`cab_identity` of a CAB from what its writer had: the update.mum it stored, the
    subject of the certificate it was signed with ("" unsigned; as the signature names it,
    RFC 4514) and the file's SHA-256. The package action records it in the CAB facts, so the
    SBOM reads no CAB this build wrote (a full build's SBOM read 1.1 GiB and checked 336
    signatures again: 2.7 s of the bench's 300 packages)."""
    return _identity(xmlsafe.parse_bytes(mum, f"{cab}:update.mum"), cab, signer, sha256)


def _identity(mum, cab: Path, signer: str, sha256: str) -> CabIdentity:
    info = install.package_info_of(mum, cab)
    phone = mum.find(f"{install.ASM}package/{install.ASM}customInformation/{install.ASM}phoneInformation")
    owner = (phone.get("phoneOwner") if phone is not None else None) or ""
    return CabIdentity(
        info.name, info.version, info.arch, info.partition, info.release_type, owner, signer, sha256
    )


def write_sbom(
    out: Path,
    partitions: dict[str, list[Path]],
    manifests: dict[str, Path],
    *,
    product: str,
    config: str,
    cpu: str,
    version: str,
    oem: str,
    oeminput: str,
    epoch: int,
    facts: CabFacts | None = None,
) -> dict:
    """Write the SPDX document for an image of `partitions` (name -> its CABs) whose installed
    files are listed in `manifests` (name -> partitions/<Name>.json); returns it."""
    from ..util.atomic import write_bytes

    doc = build_document(
        partitions,
        manifests,
        product=product,
        config=config,
        cpu=cpu,
        version=version,
        oem=oem,
        oeminput=oeminput,
        epoch=epoch,
        facts=facts,
    )
    write_bytes(out, json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False).encode() + b"\n")
    return doc


def build_document(
    partitions: dict[str, list[Path]],
    manifests: dict[str, Path],
    *,
    product: str,
    config: str,
    cpu: str,
    version: str,
    oem: str,
    oeminput: str,
    epoch: int,
    facts: CabFacts | None = None,
) -> dict:
    def identity(cab: Path) -> CabIdentity:
        if facts is None:
            return cab_identity(cab)
        return CabIdentity(**facts.get(cab, facts_key(), lambda: asdict(cab_identity(cab))))

    ids = _Ids()
    packages, relationships, files = [], [], []
    by_name: dict[str, str] = {}
    sha1s: dict[str, list[str]] = {"SPDXRef-Image": []}  # SPDX ID -> SHA-1 of every file it holds
    for cab in sorted({c for cabs in partitions.values() for c in cabs}, key=lambda c: c.name.lower()):
        ident = identity(cab)
        spdx_id = ids.make("Package", ident.name)
        by_name.setdefault(ident.name.lower(), spdx_id)
        comment = {
            "partition": ident.partition,
            "release type": ident.release_type,
            "architecture": ident.arch,
            "signer": ident.signer or "(unsigned)",
        }
        packages.append(
            {
                "SPDXID": spdx_id,
                "name": ident.name,
                "versionInfo": ident.version,
                "packageFileName": cab.name,
                "supplier": f"Organization: {ident.owner}" if ident.owner else "NOASSERTION",
                "downloadLocation": "NOASSERTION",
                "checksums": [{"algorithm": "SHA256", "checksumValue": ident.sha256}],
                "primaryPackagePurpose": "INSTALL",
                "licenseConcluded": "NOASSERTION",
                "licenseDeclared": "NOASSERTION",
                "copyrightText": "NOASSERTION",
                "comment": "\n".join(f"{k}: {comment[k]}" for k in COMMENT_KEYS),
            }
        )
        relationships.append(("SPDXRef-Image", "CONTAINS", spdx_id))
    for part in sorted(manifests, key=str.lower):
        where = str(manifests[part])
        try:
            listed = json.loads(Path(manifests[part]).read_bytes())["files"]
        except (OSError, ValueError, KeyError) as e:
            raise FormatError(f"cannot read the partition manifest: {e}", where) from None
        for f in sorted(listed, key=lambda f: f["path"].lower()):
            if not f.get("sha1"):
                raise FormatError(
                    f"{f['path']} has no SHA-1 (a manifest of an older ffuforge); build the partition again",
                    where,
                )
            name = "./" + part + "/" + f["path"].replace("\\", "/")
            spdx_id = ids.make("File", f"{part}-{f['path']}")
            files.append(
                {
                    "SPDXID": spdx_id,
                    "fileName": name,
                    "checksums": [
                        {"algorithm": "SHA1", "checksumValue": f["sha1"]},
                        {"algorithm": "SHA256", "checksumValue": f["sha256"]},
                    ],
                    "licenseConcluded": "NOASSERTION",
                    "copyrightText": "NOASSERTION",
                }
                | ({"comment": GENERATED[f["package"]]} if f["package"] in GENERATED else {})
            )
            owner = by_name.get(f["package"].lower(), "SPDXRef-Image")
            relationships.append((owner, "CONTAINS", spdx_id))
            sha1s.setdefault(owner, []).append(f["sha1"])
            sha1s["SPDXRef-Image"].append(f["sha1"])
    image = {
        "SPDXID": "SPDXRef-Image",
        "name": f"{product} {config} ({cpu})",
        "versionInfo": version,
        "packageFileName": "Flash.ffu",
        "supplier": f"Organization: {oem}" if oem else "NOASSERTION",
        "downloadLocation": "NOASSERTION",
        "primaryPackagePurpose": "OPERATING-SYSTEM",
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "comment": f"Windows 10 IoT Core FFU image built by ffuforge from {oeminput}",
    }
    for pkg in (image, *packages):
        pkg |= _files_analyzed(sha1s.get(pkg["SPDXID"], []))
    doc = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"{product}-{config}-{cpu}-Flash.ffu",
        "creationInfo": {
            "created": datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "creators": [f"Tool: ffuforge-{__version__}"] + ([f"Organization: {oem}"] if oem else []),
        },
        "packages": [image, *packages],
        "files": files,
        "relationships": [
            {"spdxElementId": a, "relationshipType": t, "relatedSpdxElement": b}
            for a, t, b in [("SPDXRef-DOCUMENT", "DESCRIBES", "SPDXRef-Image"), *relationships]
        ],
    }
    content = hashlib.sha256(json.dumps(doc, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    doc["documentNamespace"] = f"{NAMESPACE_BASE}/{doc['name']}-{content}"
    return doc


def _files_analyzed(sha1s: list[str]) -> dict:
    """SPDX 2.3 §7.8/§7.9: a package that CONTAINS files has filesAnalyzed true and a verification
    code (the SHA-1 of its files' sorted lower-case SHA-1s, concatenated); one without, false."""
    if not sha1s:
        return {"filesAnalyzed": False}
    code = hashlib.sha1("".join(sorted(s.lower() for s in sha1s)).encode()).hexdigest()
    return {"filesAnalyzed": True, "packageVerificationCode": {"packageVerificationCodeValue": code}}


def package_comment(pkg: dict) -> dict[str, str]:
    """The `key: value` lines of a package's comment (see the module docstring)."""
    out = {}
    for line in (pkg.get("comment") or "").splitlines():
        key, sep, value = line.partition(": ")
        if sep and key in COMMENT_KEYS:
            out[key] = value
    return out


class _Ids:
    """SPDX IDs (`[A-Za-z0-9.-]+`) from names: readable, unique, the same for the same name."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def make(self, kind: str, name: str) -> str:
        text = re.sub(r"[^A-Za-z0-9.]+", "-", name).strip("-")[:80]
        base = f"SPDXRef-{kind}-{text}"
        if kind == "File" or base in self.used:  # paths collide once simplified: add a digest
            base += "-" + hashlib.sha256(name.lower().encode()).hexdigest()[:12]
        if base in self.used:
            raise FormatError(f"{name!r} is listed twice in the image")
        self.used.add(base)
        return base


__all__ = [
    "CabIdentity",
    "build_document",
    "cab_identity",
    "package_comment",
    "write_sbom",
    "written_identity",
]
