"""`ffuforge ls|cat|reg|services|drivers IMAGE …`: what an image holds, read in place.

IMAGE is an FFU, a raw disk (`Flash.img`, `ffu to-raw`'s output) or a partition image; on a disk
`--partition NAME` picks the partition (default MainOS). See :mod:`.imagefs` for how each is read
and where owning packages come from. Registry output follows `reg query`: the key's full name, then
one `    name    REG_TYPE    data` line per value (`(Default)` for the unnamed one; REG_MULTI_SZ
items joined by `\\0`, REG_BINARY as hex), then the subkeys (`--recurse`: their values too).
"""

from __future__ import annotations

import argparse
import struct
import sys
from collections.abc import Iterator, Sequence

from ..errors import ConfigError
from ..formats.hive import parse_hive
from ..formats.hive.reader import RegKey
from ..formats.regvalue import TYPE_NAMES, multi_items
from .imagefs import Partition, open_partition

# root key spellings -> (hive file under Windows\System32\config, the name reg query prints)
HIVES = {
    "HKLM\\SYSTEM": ("SYSTEM", "HKEY_LOCAL_MACHINE\\SYSTEM"),
    "HKLM\\SOFTWARE": ("SOFTWARE", "HKEY_LOCAL_MACHINE\\SOFTWARE"),
    "HKLM\\SAM": ("SAM", "HKEY_LOCAL_MACHINE\\SAM"),
    "HKLM\\SECURITY": ("SECURITY", "HKEY_LOCAL_MACHINE\\SECURITY"),
    "HKLM\\DRIVERS": ("DRIVERS", "HKEY_LOCAL_MACHINE\\DRIVERS"),
    "HKU\\.DEFAULT": ("DEFAULT", "HKEY_USERS\\.DEFAULT"),
}
CONFIG = "Windows\\System32\\config\\"
SERVICES = "ControlSet001\\Services"
_SERVICE_TYPES = {1: "kernel driver", 2: "file system driver", 0x10: "own process", 0x20: "shared process"}
_START = {0: "boot", 1: "system", 2: "auto", 3: "demand", 4: "disabled"}


def _parser(prog: str, what: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=f"ffuforge {prog}", description=what)
    ap.add_argument("image", help="an FFU, a raw disk image or a partition image")
    ap.add_argument("--partition", help="partition of an FFU or raw disk (default MainOS)")
    return ap


# ----------------------------------------------------------------------------- ls / cat


def ls_main(argv: Sequence[str] | None = None) -> int:
    ap = _parser("ls", "list files with size, SHA-256 and owning package")
    ap.add_argument("path", nargs="?", default="", help="a folder or file in the partition (default: all)")
    args = ap.parse_args(argv)
    prefix = args.path.replace("/", "\\").strip("\\").upper()
    with open_partition(args.image, args.partition) as part:
        owners = part.owners()
        shown = 0
        for e in part.entries():
            key = e.path.upper()
            if prefix and key != prefix and not key.startswith(prefix + "\\"):
                continue
            shown += 1
            if e.is_dir:
                print(f"{'<DIR>':>12}  {'':64}  {e.path}\\")
                continue
            digest = part.sha256(e.path)
            owner, recorded = owners.get(key, ("", ""))
            if owner and recorded != digest:
                owner = "(differs from the build record)"
            print(f"{e.size:>12}  {digest}  {e.path}" + (f"  [{owner}]" if owner else ""))
        if prefix and not shown:
            raise ConfigError(f"no such file or folder in {part.name}: {args.path}", part.label)
    return 0


def cat_main(argv: Sequence[str] | None = None) -> int:
    ap = _parser("cat", "write a file of the image to stdout")
    ap.add_argument("path", help="the file, e.g. Windows/System32/config/SYSTEM")
    args = ap.parse_args(argv)
    with open_partition(args.image, args.partition) as part:
        out = sys.stdout.buffer
        for chunk in part.chunks(args.path):
            out.write(chunk)
        out.flush()
    return 0


# ----------------------------------------------------------------------------- registry


def _hive_of(key: str) -> tuple[str, str, str]:
    """(hive file, printed root, path below the root) for `HKLM\\SYSTEM\\…` (or HKEY_LOCAL_MACHINE…)."""
    norm = key.replace("/", "\\").strip("\\")
    up = norm.upper().replace("HKEY_LOCAL_MACHINE", "HKLM").replace("HKEY_USERS", "HKU")
    for root, (hive, printed) in HIVES.items():
        if up == root or up.startswith(root + "\\"):
            return hive, printed, norm[len(norm) - (len(up) - len(root)) :].strip("\\")
    raise ConfigError(f"{key}: not a key of an image hive; start with one of {', '.join(HIVES)}")


def load_hive(part: Partition, hive: str):
    return parse_hive(part.read_file(CONFIG + hive, 1 << 30), f"{part.label}:{CONFIG}{hive}")


def format_value(vtype: int, data: bytes) -> str:
    name = TYPE_NAMES.get(vtype, f"REG_UNKNOWN_{vtype:#x}")
    if vtype in (1, 2, 6):
        text = data.decode("utf-16-le", "replace").split("\0", 1)[0]
    elif vtype == 4 and len(data) == 4:
        text = f"0x{struct.unpack('<I', data)[0]:x}"
    elif vtype == 5 and len(data) == 4:
        text = f"0x{struct.unpack('>I', data)[0]:x}"
    elif vtype == 11 and len(data) == 8:
        text = f"0x{struct.unpack('<Q', data)[0]:x}"
    elif vtype == 7:
        text = "\\0".join(multi_items(data))
    else:
        text = data.hex().upper()
    return f"{name}    {text}"


def query_lines(printed: str, key: RegKey, recurse: bool) -> Iterator[str]:
    yield printed
    for v in key.values:
        yield f"    {v.name or '(Default)'}    {format_value(v.type, v.data)}"
    yield ""
    for sub in key.subkeys:
        if recurse:
            yield from query_lines(f"{printed}\\{sub.name}", sub, True)
        else:
            yield f"{printed}\\{sub.name}"


def reg_main(argv: Sequence[str] | None = None) -> int:
    ap = _parser("reg", "print a registry key reg-query style (types by name)")
    ap.add_argument("key", help="e.g. HKLM\\SYSTEM\\ControlSet001\\Services")
    ap.add_argument(
        "-s", "--recurse", action="store_true", help="all subkeys and their values (reg query /s)"
    )
    args = ap.parse_args(argv)
    hive, printed, below = _hive_of(args.key)
    with open_partition(args.image, args.partition) as part:
        key = load_hive(part, hive).root.subkey(below) if below else load_hive(part, hive).root
        if key is None:
            raise ConfigError(f"no such key in the image: {args.key}", part.label)
        name = printed + ("\\" + below if below else "")
        for line in query_lines(name, key, args.recurse):
            print(line)
    return 0


def _dword(key: RegKey, name: str) -> int | None:
    v = key.value(name)
    return struct.unpack("<I", v.data)[0] if v is not None and v.type == 4 and len(v.data) == 4 else None


def _sz(key: RegKey, name: str) -> str:
    v = key.value(name)
    return (
        v.data.decode("utf-16-le", "replace").split("\0", 1)[0] if v is not None and v.type in (1, 2) else ""
    )


def services_main(argv: Sequence[str] | None = None, *, drivers: bool = False) -> int:
    what = "kernel and file system drivers" if drivers else "services and drivers"
    ap = _parser("drivers" if drivers else "services", f"list the image's {what} (SYSTEM\\{SERVICES})")
    args = ap.parse_args(argv)
    with open_partition(args.image, args.partition) as part:
        system = load_hive(part, "SYSTEM")
        services = system.root.subkey(SERVICES)
        rows = []
        for svc in services.subkeys if services else []:
            stype = _dword(svc, "Type")
            if drivers and stype not in (1, 2):
                continue
            kind = _SERVICE_TYPES.get(stype or 0, f"type {stype:#x}" if stype is not None else "-")
            start = _dword(svc, "Start")
            rows.append(
                (
                    svc.name,
                    kind,
                    _START.get(start, str(start)) if start is not None else "-",
                    _sz(svc, "ImagePath"),
                )
            )
        print(f"{'NAME':24}  {'TYPE':18}  {'START':8}  IMAGE PATH")
        for name, kind, start, image in sorted(rows, key=lambda r: r[0].upper()):
            print(f"{name:24}  {kind:18}  {start:8}  {image}")
        if drivers:
            pkgs = system.root.subkey("DriverDatabase\\DriverPackages")
            print()
            print(f"{'DRIVER PACKAGE (driver store)':48}  INF")
            for p in sorted(pkgs.subkeys if pkgs else [], key=lambda k: k.name.upper()):
                print(f"{p.name:48}  {_sz(p, 'InfName')}")
    return 0


def drivers_main(argv: Sequence[str] | None = None) -> int:
    return services_main(argv, drivers=True)
