"""Reading a BCD store back: objects (well-known names, types) and elements (names, decoded values,
devices), for ``ffuforge bcd dump`` — so that a user can check what boots.

The element's data format is bits 24-27 of its ID (``BcdElementType``: 1 device, 2 string,
3 object, 4 object list, 5 integer, 6 boolean, 7 integer list); devices are decoded for the
layouts :mod:`.devices` writes (PartitionEx GPT/MBR, BlockIo ramdisk with a file path on a
partition). Anything else is shown as hex, never guessed; a value whose registry type or size does
not fit its format is reported as such in the dump rather than raised, since a store from another
tool may hold forms we do not write.
"""

from __future__ import annotations

import uuid
from typing import Any

from ...errors import FormatError
from ..hive.reader import Hive, RegKey
from .schema import GPT_PARTITION_IDS
from .store import element_name, object_name

__all__ = ["describe_store", "format_store"]

FORMATS = {
    1: "device",
    2: "string",
    3: "object",
    4: "object list",
    5: "integer",
    6: "boolean",
    7: "integer list",
}
_PARTITION_NAMES = {g: n for n, g in GPT_PARTITION_IDS.items()}
_PARTITION_DISPLAY = {"mainos": "MainOS", "efiesp": "EFIESP", "mmos": "MMOS"}


def _guid(b: bytes) -> str:
    return "{" + str(uuid.UUID(bytes_le=bytes(b))) + "}"


def _text(data: bytes) -> str:
    return data.decode("utf-16-le", "replace").split("\0")[0]


def _partition(blob: bytes) -> dict[str, Any]:
    """PartitionEx identifier: 16 bytes partition, then hard-disk id (block-io type, style, disk)."""
    if len(blob) < 16 + 24:
        return {"kind": "partition", "raw": blob.hex()}
    style = int.from_bytes(blob[20:24], "little")
    if style == 0:
        pid = _guid(blob[:16])
        out: dict[str, Any] = {"kind": "gpt partition", "partition": pid, "disk": _guid(blob[24:40])}
        name = _PARTITION_NAMES.get(pid)
        if name:
            out["partition_name"] = _PARTITION_DISPLAY[name]
        return out
    if style == 1:
        return {
            "kind": "mbr partition",
            "offset": int.from_bytes(blob[:8], "little"),
            "disk_signature": f"{int.from_bytes(blob[24:28], 'little'):#010x}",
        }
    return {"kind": f"partition (style {style})", "raw": blob.hex()}


def decode_device(data: bytes) -> dict[str, Any]:
    """A device element: 16-byte options GUID, then the boot device."""
    if len(data) < 32:
        return {"kind": "invalid", "raw": data.hex()}
    out = _boot_device(data[16:])
    options = _guid(data[:16])
    if options != "{00000000-0000-0000-0000-000000000000}":
        out["options"] = options + (f" ({object_name(options)})" if object_name(options) else "")
    return out


def _boot_device(blob: bytes) -> dict[str, Any]:
    """Header (type, flags, size incl. header, reserved), then PartitionEx or a BlockIo ramdisk
    (24-byte ramdisk id, file id: version, length, type, the parent boot device, UTF-16 path)."""
    if len(blob) < 16:
        return {"kind": "invalid", "raw": blob.hex()}
    dtype = int.from_bytes(blob[0:4], "little")
    body = blob[16:]
    if dtype == 6:
        return _partition(body)
    if dtype == 0 and len(body) >= 24 + 12 + 16 and int.from_bytes(body[:4], "little") == 3:
        file_id = body[24:]
        parent = file_id[12:]
        psize = int.from_bytes(parent[8:12], "little")
        if 16 <= psize <= len(parent):
            return {
                "kind": "ramdisk",
                "path": _text(parent[psize:] + b"\0\0"),
                "on": _boot_device(parent[:psize]),
            }
    return {"kind": f"device type {dtype}", "raw": body.hex()}


def decode_element(eid: int, reg_type: int, data: bytes) -> Any:
    fmt = (eid >> 24) & 0xF
    if fmt == 2 and reg_type in (1, 2):
        return _text(data)
    if fmt == 3 and reg_type == 1:
        g = _text(data)
        return g + (f" ({object_name(g)})" if object_name(g) else "")
    if fmt == 4 and reg_type == 7:
        items = [i for i in data.decode("utf-16-le", "replace").split("\0") if i]
        return [i + (f" ({object_name(i)})" if object_name(i) else "") for i in items]
    if fmt == 5 and reg_type == 3 and len(data) <= 8:
        return int.from_bytes(data, "little")
    if fmt == 6 and reg_type == 3 and 1 <= len(data) <= 8:
        return any(data)
    if fmt == 7 and reg_type == 3 and len(data) % 8 == 0:
        return [int.from_bytes(data[i : i + 8], "little") for i in range(0, len(data), 8)]
    if fmt == 1 and reg_type == 3:
        return decode_device(data)
    return {"unexpected": f"registry type {reg_type}, {len(data)} bytes", "raw": data.hex()}


def describe_store(hive: Hive) -> dict[str, Any]:
    """The store as plain data: description values and objects sorted by GUID."""
    root = hive.root
    objects_key = root.subkey("Objects")
    if objects_key is None:
        raise FormatError("not a BCD store: it has no Objects key", hive.file_name or None)
    desc = root.subkey("Description")
    out: dict[str, Any] = {"description": {}, "objects": []}
    for v in desc.values if desc else []:
        out["description"][v.name] = (
            _text(v.data)
            if v.type in (1, 2)
            else int.from_bytes(v.data, "little")
            if v.type == 4
            else v.data.hex()
        )
    for key in sorted(objects_key.subkeys, key=lambda k: k.name.lower()):
        out["objects"].append(_object(key))
    return out


def _object(key: RegKey) -> dict[str, Any]:
    guid = key.name.lower()
    t = key.subkey("Description")
    tv = t.value("Type") if t else None
    obj: dict[str, Any] = {"id": guid, "name": object_name(guid)}
    obj["type"] = f"{int.from_bytes(tv.data, 'little'):#010x}" if tv is not None and tv.type == 4 else None
    elements = []
    ek = key.subkey("Elements")
    for sub in sorted(ek.subkeys if ek else [], key=lambda k: k.name.lower()):
        try:
            eid = int(sub.name, 16)
        except ValueError:
            elements.append({"id": sub.name, "unexpected": "element key is not 8 hex digits"})
            continue
        v = sub.value("Element")
        e: dict[str, Any] = {
            "id": f"{eid:#010x}",
            "name": element_name(eid),
            "format": FORMATS.get((eid >> 24) & 0xF),
        }
        e["value"] = (
            decode_element(eid, v.type, v.data) if v is not None else {"unexpected": "no Element value"}
        )
        elements.append(e)
    obj["elements"] = elements
    return obj


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value} ({value:#x})"
    if isinstance(value, list):
        return ", ".join(_show(v) for v in value) or "(empty)"
    if isinstance(value, dict):
        return " ".join(f"{k}=({_show(v)})" if isinstance(v, dict) else f"{k}={v}" for k, v in value.items())
    return str(value)


def format_store(store: dict[str, Any]) -> str:
    """Readable text: one block per object, one line per element."""
    lines = ["Description: " + ", ".join(f"{k}={v}" for k, v in sorted(store["description"].items()))]
    for obj in store["objects"]:
        lines.append("")
        lines.append(f"{obj['id']}  {obj['name'] or '(custom object)'}  type {obj['type'] or '(none)'}")
        for e in obj["elements"]:
            label = e.get("name") or "(unknown element)"
            lines.append(f"  {e['id']}  {label:<36} {_show(e.get('value', e))}")
    return "\n".join(lines)
