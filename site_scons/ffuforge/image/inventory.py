"""What an image holds, read from a build folder or an FFU, and the difference of two (`ffuforge diff`).

A build folder (`build/<cpu>/<Product>/<Config>`) is read from what the build wrote beside the
FFU: `partitions/<Name>.json` (packages with version and release type, every installed file with
size, SHA-256 and owning package, every registry value with its owning package), `layout.json`
(the partition table the build placed) and `Flash.spdx.json` (each CAB's SHA-256, owner and
signer; a folder without it gives no package hashes). When the folder holds `Flash.ffu`, its
stored blocks are read as for an FFU. A field only one side has is not compared.

An FFU alone gives what its own structures hold, read in place: the store's partition table (GPT
or MBR, through the FFU's block map), the manifest's platform IDs and sector counts, and per
partition the number of blocks the FFU stores and a SHA-256 over them (block index and bytes),
so a partition whose content changed shows even when its size did not. Files, registry values
and packages are not read from an FFU: that needs NTFS and FAT readers that work in place
(`ffuforge ls/reg`, Deliver 2 of issue 19); give the build folders for those.

An inventory is plain JSON: sections `packages`, `files`, `registry`, `partitions`, `layout`,
each a mapping from a stable key (lower-case) to a record; a section an input cannot give is
absent and reported as not compared.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..errors import FormatError
from ..formats import regvalue
from ..formats.ffu import FfuReader
from ..formats.ptable.parse import read_partitions

SECTIONS = ("packages", "files", "registry", "partitions", "layout")
FFU_NAME = "Flash.ffu"
SBOM_NAME = "Flash.spdx.json"


def load(path: str | Path) -> dict[str, Any]:
    """The inventory of a build folder or an FFU file."""
    p = Path(path)
    if p.is_dir():
        return from_build(p)
    try:
        with open(p, "rb") as fh:
            head = fh.read(16)
    except OSError as e:
        raise FormatError(f"cannot read: {e.strerror}", str(p)) from None
    if head[4:16] == b"SignedImage ":
        return from_ffu(p)
    raise FormatError(
        "not a build folder (build/<cpu>/<Product>/<Config>) or an FFU; give one of those", str(p)
    )


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except OSError as e:
        raise FormatError(f"cannot read: {e.strerror}", str(path)) from None
    except ValueError as e:
        raise FormatError(f"not JSON ({e}); build the image again", str(path)) from None


def from_build(folder: Path) -> dict[str, Any]:
    layout_file = folder / "layout.json"
    parts_dir = folder / "partitions"
    if not layout_file.is_file() or not parts_dir.is_dir():
        raise FormatError(
            "not a build folder: no layout.json and partitions/ (give build/<cpu>/<Product>/<Config> "
            "of a finished build)",
            str(folder),
        )
    inv: dict[str, Any] = {"kind": "build", "source": str(folder)}
    inv |= _layout_sections(_json(layout_file).get("layout") or {}, str(layout_file))
    packages: dict[str, dict] = {}
    files: dict[str, dict] = {}
    registry: dict[str, dict] = {}
    for manifest in sorted(parts_dir.glob("*.json")):
        doc = _json(manifest)
        try:
            part = doc["partition"]
            for pk in doc["packages"]:
                rec = {
                    "version": pk["version"],
                    "release": pk["release"],
                    "partition": part,
                    "cab": pk["cab"],
                }
                packages[pk["name"].lower()] = {"name": pk["name"]} | rec
            for f in doc["files"]:
                path = f"{part}\\{f['path']}"
                files[path.lower()] = {"path": path, "size": f["size"], "sha256": f["sha256"]}
                files[path.lower()]["package"] = f["package"]
            for v in doc["registry"]:
                rec = {"key": v["key"], "name": v["name"], "type": v["type"], "data": v["data"]}
                rec["package"] = v["package"]
                registry[f"{v['key']}\\{v['name']}".lower()] = rec
        except (KeyError, TypeError) as e:
            raise FormatError(f"not a partition manifest of ffuforge (missing {e})", str(manifest)) from None
    _package_identities(folder, packages)
    inv |= {"packages": packages, "files": files, "registry": registry}
    if (folder / FFU_NAME).is_file():
        ffu = from_ffu(folder / FFU_NAME)
        for key, rec in inv["partitions"].items():
            stored = ffu["partitions"].get(key, {})
            rec.update({k: v for k, v in stored.items() if k in ("stored_blocks", "content")})
        inv["layout"]["ffu"] = ffu["layout"]["ffu"]
    return inv


def _package_identities(folder: Path, packages: dict[str, dict]) -> None:
    """Each package's CAB SHA-256, owner and signer, from the folder's SBOM."""
    sbom = folder / SBOM_NAME
    if sbom.is_file():
        from .sbom import package_comment

        for pkg in _json(sbom).get("packages", []):
            rec = packages.get(str(pkg.get("name", "")).lower())
            if rec is None or pkg.get("SPDXID") == "SPDXRef-Image":
                continue
            sums = {c.get("algorithm"): c.get("checksumValue") for c in pkg.get("checksums", [])}
            rec["sha256"] = sums.get("SHA256")
            supplier = str(pkg.get("supplier", ""))
            rec["owner"] = supplier.removeprefix("Organization: ") if supplier != "NOASSERTION" else ""
            rec["signer"] = package_comment(pkg).get("signer", "")
    # No SBOM (a build folder of an older ffuforge): the CABs' hashes are not known. Hashing the
    # CABs packages.json names would give the current build's, not this folder's: not compared.


def _layout_sections(layout: dict, where: str) -> dict[str, Any]:
    try:
        parts = {
            p["name"].lower(): {
                "name": p["name"],
                "first_sector": p["first_sector"],
                "sectors": p["sector_count"],
                "type": p["type"],
                "id": p.get("id"),
                "filesystem": p.get("filesystem"),
            }
            for p in layout["partitions"]
        }
        disk = {k: layout.get(k) for k in ("style", "disk_id", "sector_size", "total_sectors")}
    except (KeyError, TypeError) as e:
        raise FormatError(f"not an ffuforge layout (missing {e})", where) from None
    disk["platform_ids"] = sorted(layout.get("platform_ids") or [])
    return {"partitions": parts, "layout": {"disk": disk}}


def from_ffu(path: Path) -> dict[str, Any]:
    """Partition table, platform and stored blocks of the FFU's first store (the disk)."""
    with FfuReader(path) as r:
        st = r.stores[0]
        ss, disk = st.sector_size, st.disk_bytes
        if not ss or not disk:
            raise FormatError(
                "the FFU's store has no SectorSize/MinSectorCount; its disk size is unknown", str(path)
            )
        read = r.disk_reader(0)
        style, head, entries = read_partitions(read, disk // ss, ss)
        bs = st.block_size
        blocks = [b for b, _ in r.stored_blocks(0)]
        parts: dict[str, dict] = {}
        for e in entries:
            if style == "gpt":
                name, first, count = e.name, e.first_lba, e.last_lba - e.first_lba + 1
                rec = {"name": name, "first_sector": first, "sectors": count}
                rec |= {"type": f"{{{e.type_guid}}}", "id": f"{{{e.unique_guid}}}"}
            else:
                name, first, count = f"partition{e.number}", e.first_lba, e.sectors
                rec = {"name": name, "first_sector": first, "sectors": count, "type": f"0x{e.type:02x}"}
            lo, hi = first * ss, (first + count) * ss
            h = hashlib.sha256()
            n = 0
            for b in blocks:  # the blocks wholly or partly inside the partition, its bytes only
                start, end = max(b * bs, lo), min((b + 1) * bs, hi)
                if start < end:
                    n += 1
                    h.update(f"{start - lo}:{end - start}\n".encode())
                    h.update(read(start, end - start))
            parts[name.lower()] = rec | {"stored_blocks": n, "content": h.hexdigest()}
        layout = {
            "style": style,
            "disk_id": f"{{{head.disk_guid}}}" if style == "gpt" else f"0x{head:08x}",
            "sector_size": ss,
            "total_sectors": disk // ss,
            "platform_ids": sorted(st.platform_ids),
        }
        ffu = {"stores": len(r.stores), "block_size": bs, "stored_blocks": len(blocks), "size": r.size}
    return {"kind": "ffu", "source": str(path), "partitions": parts, "layout": {"disk": layout, "ffu": ffu}}


# ------------------------------------------------------------------------------ comparison


def compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Per section: added, removed and changed records (`changed`: key -> {field: [old, new]});
    `not_compared`: sections one input cannot give."""
    out: dict[str, Any] = {"a": a["source"], "b": b["source"], "not_compared": []}
    for section in SECTIONS:
        if section not in a or section not in b:
            out["not_compared"].append(section)
            continue
        left, right = a[section], b[section]
        changed = {}
        for key in sorted(set(left) & set(right)):
            fields = sorted(set(left[key]) & set(right[key]))  # a field one side lacks: unknown there
            delta = {
                f: [left[key].get(f), right[key].get(f)]
                for f in fields
                if left[key].get(f) != right[key].get(f)
            }
            if delta:
                changed[key] = {"record": right[key], "changes": delta}
        out[section] = {
            "added": [right[k] for k in sorted(set(right) - set(left))],
            "removed": [left[k] for k in sorted(set(left) - set(right))],
            "changed": changed,
        }
    return out


def differs(result: dict[str, Any]) -> bool:
    return any(
        result[s]["added"] or result[s]["removed"] or result[s]["changed"] for s in SECTIONS if s in result
    )


def registry_text(type_: int, data_hex: str) -> str:
    """A value as `reg query` shows it: type by name, strings as text, numbers in hex."""
    data = bytes.fromhex(data_hex)
    name = regvalue.TYPE_NAMES.get(type_, f"REG_TYPE_{type_}")
    if type_ in (1, 2):
        return f"{name} {data.decode('utf-16-le', 'replace').rstrip(chr(0))!r}"
    if type_ == 7:
        return f"{name} {regvalue.multi_items(data)!r}"
    if type_ == 4 and len(data) == 4:
        return f"{name} 0x{int.from_bytes(data, 'little'):08x}"
    if type_ == 11 and len(data) == 8:
        return f"{name} 0x{int.from_bytes(data, 'little'):016x}"
    return f"{name} {data.hex()}"


__all__ = ["compare", "differs", "from_build", "from_ffu", "load", "registry_text"]
