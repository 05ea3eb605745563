"""Installing CBS packages into a partition's staged tree (what ImageApp does offline).

Works from the CABs alone — our own and vendor packages alike — so an image never depends
on how a package was built. Files go to their device paths, registry values (including those
that services imply) are collected for the hive writer, and every installed item is recorded
with its owning package so that two packages claiming the same file or value are reported by
name.

Installing is two steps: :func:`parse_package` reads one CAB on its own (members extracted and
verified, a bad package's error recorded where it arose), :func:`replay` applies that result to
the staged partition in package order (collision checks, files hard-linked into the tree). So the
first step can run in worker processes or be kept between builds (:mod:`ffuforge.image.extractcache`)
while errors stay those of a sequential install.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from ..errors import ConfigError, FFUError, FormatError
from ..formats import regvalue
from ..formats.cab import CabReader
from ..package import macros
from ..util import xmlsafe
from .members import extract_member, place_member

ASM = "{urn:schemas-microsoft-com:asm.v3}"
SERVICES_KEY = r"HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Services"
_START = {"boot": 0, "system": 1, "auto": 2, "delayedauto": 2, "demand": 3, "disabled": 4}
_TYPE = {
    "kerneldriver": 1,
    "filesystemdriver": 2,
    "win32ownprocess": 0x10,
    "win32shareprocess": 0x20,
    "win32usershareprocess": 0x60,
}
_ERROR = {"ignore": 0, "normal": 1, "severe": 2, "critical": 3}
_ACTION = {"none": 0, "restartservice": 1, "rebootmachine": 2, "runcommand": 3}
_SID_TYPE = {"none": 0, "unrestricted": 1, "restricted": 3}


@dataclass
class PackageInfo:
    name: str
    cab: Path
    partition: str
    release_type: str  # phoneRelease: Production | Test
    binary_partition: bool
    version: str
    arch: str


@dataclass
class InstalledFile:
    path: str  # device path below the partition root, '\\' separated
    size: int
    sha256: str
    package: str


@dataclass
class InstalledValue:
    key: str
    name: str
    type: int
    data: bytes
    package: str


@dataclass
class Staging:
    """Everything installed into one partition."""

    partition: str
    root: Path
    files: dict[str, InstalledFile] = field(default_factory=dict)  # by lower-case device path
    values: dict[tuple[str, str], InstalledValue] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)  # empty keys: lower → spelling
    packages: list[PackageInfo] = field(default_factory=list)
    bcd_sources: list[tuple[Path, str]] = field(default_factory=list)  # (extracted XML, package)
    raw_image: tuple[Path, str] | None = None
    dirs: dict[str, str] = field(default_factory=dict)  # lower-case directory → first package
    made: set[Path] = field(default_factory=set, repr=False)  # host directories checked or created

    def manifest(self) -> dict:
        return {
            "partition": self.partition,
            "packages": [
                {"name": p.name, "cab": p.cab.name, "version": p.version, "release": p.release_type}
                for p in self.packages
            ],
            "files": [vars(f) for f in sorted(self.files.values(), key=lambda f: f.path.lower())],
            "registry": [
                {"key": v.key, "name": v.name, "type": v.type, "data": v.data.hex(), "package": v.package}
                for v in sorted(self.values.values(), key=lambda v: (v.key.lower(), v.name.lower()))
            ],
        }


def read_package_info(cab_path: Path) -> PackageInfo:
    """Identity, partition and release type from a CAB's update.mum (cheap: one member)."""
    with CabReader(cab_path) as cab:
        return _package_info(cab, cab_path)


def read_mum(cab: CabReader, cab_path: Path) -> etree._Element:
    names = {m.name.lower(): m for m in cab.members}
    if "update.mum" not in names:
        raise FormatError("not a CBS package: no update.mum member", str(cab_path))
    return xmlsafe.parse_bytes(cab.read(names["update.mum"], 16 << 20), f"{cab_path}:update.mum")


def _package_info(cab: CabReader, cab_path: Path) -> PackageInfo:
    mum = read_mum(cab, cab_path)
    ident = mum.find(f"{ASM}assemblyIdentity")
    pkg = mum.find(f"{ASM}package")
    if ident is None or pkg is None:
        raise FormatError("update.mum lacks assemblyIdentity or package", str(cab_path))
    phone = pkg.find(f"{ASM}customInformation/{ASM}phoneInformation")
    info = PackageInfo(
        name=ident.get("name", cab_path.stem),
        cab=cab_path,
        partition=pkg.get("targetPartition") or "MainOS",
        release_type=(phone.get("phoneRelease") if phone is not None else None) or "Production",
        binary_partition=(pkg.get("binaryPartition") or "false").lower() == "true",
        version=ident.get("version", ""),
        arch=ident.get("processorArchitecture", ""),
    )
    for what, value in (
        ("name", info.name),
        ("version", info.version),
        ("processorArchitecture", info.arch),
        ("targetPartition", info.partition.replace(" ", "_")),
    ):
        if not _IDENTITY.match(value) or value in (".", ".."):  # they name files of the image and the build
            raise FormatError(
                f"update.mum {what}={value!r} is not a valid package identity (letters, digits, "
                "'.', '_', '-')",
                str(cab_path),
            )
    return info


_IDENTITY = re.compile(r"^[A-Za-z0-9_.\-]{0,200}$")


def device_to_relative(device_path: str, where: str) -> str:
    """`$(runtime.system32)\\x.dll` → `Windows\\System32\\x.dll` (relative to the partition root)."""
    m = re.match(r"^\$\(([^()]+)\)(.*)$", device_path)
    if m:
        macro = macros.canonical_runtime(m.group(1))
        if macro is None:
            raise FormatError(f"unknown device path macro in {device_path!r}", where)
        text = macros.RUNTIME[macro] + m.group(2)
    else:
        text = device_path
    return macros.normalize_relative(text, f"device path {device_path!r}", where, None)


def _host_path(root: Path, rel: str) -> Path:
    out = root.joinpath(*rel.split("\\"))
    # normalize_relative has refused '..' and drive letters; this is a second line of defence.
    if os.path.commonpath([os.path.abspath(out), os.path.abspath(root)]) != os.path.abspath(root):
        raise FormatError(f"device path {rel!r} escapes the partition")
    return out


def _device_command(value: str) -> str:
    """A command line whose path starts with a device macro, in the form the SCM expands."""
    m = re.match(r"^\$\(([^()]+)\)(.*)$", value, re.S)
    macro = macros.canonical_runtime(m.group(1)) if m else None
    if macro is None:
        return value
    path = macros.RUNTIME[macro] + m.group(2)
    if path.lower().startswith("\\windows"):
        return "%SystemRoot%" + path[len("\\Windows") :]
    return "%SystemDrive%" + path


def _service_values(svc: etree._Element) -> list[tuple[str, str, regvalue.RegData]]:
    """Registry values the service control manager expects for one <serviceData>."""
    name = svc.get("name")
    key = f"{SERVICES_KEY}\\{name}"
    out: list[tuple[str, str, regvalue.RegData]] = []

    def dword(n: str, v: int):
        out.append((key, n, regvalue.RegData(4, v.to_bytes(4, "little"))))

    def text(n: str, v: str, t: int = 1):
        out.append((key, n, regvalue.RegData(t, (v + "\0").encode("utf-16-le"))))

    start = (svc.get("start") or "demand").lower()
    dword("Start", _START.get(start, 3))
    if start == "delayedauto":
        dword("DelayedAutostart", 1)
    dword("Type", _TYPE.get((svc.get("type") or "win32OwnProcess").lower(), 0x10))
    dword("ErrorControl", _ERROR.get((svc.get("errorControl") or "normal").lower(), 1))
    if svc.get("imagePath"):
        text("ImagePath", _device_command(svc.get("imagePath")), 2)
    for attr, value_name in (
        ("displayName", "DisplayName"),
        ("description", "Description"),
        ("objectName", "ObjectName"),
        ("group", "Group"),
    ):
        if svc.get(attr):
            text(value_name, svc.get(attr))
    if svc.get("dependOnService"):
        items = [s for s in svc.get("dependOnService").split(";") if s]
        out.append(
            (
                key,
                "DependOnService",
                regvalue.RegData(7, b"".join((s + "\0").encode("utf-16-le") for s in items) + b"\0\0"),
            )
        )
    if svc.get("requiredPrivileges"):
        items = [s.strip() for s in svc.get("requiredPrivileges").split(",") if s.strip()]
        out.append(
            (
                key,
                "RequiredPrivileges",
                regvalue.RegData(7, b"".join((s + "\0").encode("utf-16-le") for s in items) + b"\0\0"),
            )
        )
    if svc.get("sidType"):
        dword("ServiceSidType", _SID_TYPE.get(svc.get("sidType").lower(), 0))
    fa = svc.find(f"{ASM}failureActions")
    if fa is not None:
        actions = [
            (a.get("type", "none"), _dword(a.get("delay", "0"), "failure action delay", name))
            for a in fa.iter(f"{ASM}action")
        ]
        reset = fa.get("resetPeriod", "0")
        reset_value = 0xFFFFFFFF if reset.upper() == "INFINITE" else _dword(reset, "resetPeriod", name)
        # SERVICE_FAILURE_ACTIONS as the SCM stores it: dwResetPeriod, lpRebootMsg, lpCommand,
        # cActions, lpsaActions (pointer fields are placeholders), then the SC_ACTION array.
        blob = (
            reset_value.to_bytes(4, "little")
            + b"\0" * 4 * 2
            + len(actions).to_bytes(4, "little")
            + (0x14).to_bytes(4, "little")
        )
        for kind, delay in actions:
            blob += _ACTION.get(kind.lower(), 0).to_bytes(4, "little") + delay.to_bytes(4, "little")
        out.append((key, "FailureActions", regvalue.RegData(3, blob)))
        if fa.get("command"):
            text("FailureCommand", fa.get("command"))
        if fa.get("rebootMessage"):
            text("RebootMessage", fa.get("rebootMessage"))
    return out


def _dword(text: str, what: str, service: str | None) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        value = -1
    if not 0 <= value <= 0xFFFFFFFF:
        raise FormatError(f"service {service}: {what} {text!r} is not a decimal number below 2^32")
    return value


def _parse_manifest_value(v: etree._Element, where: str) -> regvalue.RegData:
    type_name = v.get("valueType", "REG_SZ").upper()
    text = v.get("value", "")
    if type_name == "REG_MULTI_SZ":
        items = re.findall(r'"((?:[^"]|"")*)"', text) if text.strip() else []
        joined = ";".join(i.replace('""', '"') for i in items)
        data = (
            b"".join((s + "\0").encode("utf-16-le") for s in (joined.split(";") if items else [])) + b"\0\0"
        )
        return regvalue.RegData(7, data)
    if type_name in regvalue.TYPES:
        code = regvalue.TYPES[type_name]
        if code in (1, 2):
            return regvalue.RegData(code, (text + "\0").encode("utf-16-le"))
        if code == 4:
            return regvalue.decode("REG_DWORD", text, legacy=False)
        if code == 11:
            return regvalue.decode("REG_QWORD", text, legacy=False)
        try:
            return regvalue.RegData(code, bytes.fromhex(text))
        except ValueError:
            raise FormatError(
                f"registry value {v.get('name')!r} of type {type_name} is not hexadecimal", where
            ) from None
    m = re.match(r"^REG_TYPE_(\d{1,10})$", type_name)
    if m and int(m.group(1)) <= 0xFFFFFFFF:
        try:
            return regvalue.RegData(int(m.group(1)), bytes.fromhex(text))
        except ValueError:
            raise FormatError(
                f"registry value {v.get('name')!r} of type {type_name} is not hexadecimal", where
            ) from None
    raise FormatError(f"unknown registry value type {type_name!r}", where)


@dataclass
class Parsed:
    """What one CAB installs, in install order, independent of any staged tree: the input of
    :func:`replay`. Extracted members are files ``<store>/<n>``. A bad package's error is kept in
    `error` at the point it arose (ops before it are complete), so that replaying the records of
    several packages in order reports exactly what installing them one by one would."""

    cab: Path
    info: PackageInfo | None = None
    # ("file"|"svc", rel, n, size, sha256, label) | ("raw"|"bcd", n, label) | ("reg", member, keys, values)
    ops: list = field(default_factory=list)
    error: Exception | None = None


def install_package(st: Staging, cab_path: Path) -> PackageInfo:
    """Install one CBS package into `st` (files placed below st.root)."""
    scratch = st.root.parent / f".{st.partition}.extract"
    scratch.mkdir(parents=True, exist_ok=True)
    store = Path(tempfile.mkdtemp(dir=scratch))
    return replay(st, parse_package(Path(cab_path), st.partition, store), store)


def parse_package(cab_path: Path, partition: str, store: Path) -> Parsed:
    """Read a CAB for `partition`: its identity, registry values and files, members extracted to
    `store` (an existing, empty directory). A bad package is recorded, not raised."""
    parsed = Parsed(cab_path)
    try:
        _parse(parsed, cab_path, partition, store)
    except (FFUError, OSError) as exc:
        parsed.error = exc
    return parsed


def _parse(p: Parsed, cab_path: Path, partition: str, store: Path) -> None:
    where = str(cab_path)
    with CabReader(cab_path) as cab:
        info = p.info = _package_info(cab, cab_path)
        if info.partition.lower() != partition.lower():
            raise ConfigError(
                f"package {info.name} targets partition {info.partition}, not {partition}", where
            )
        members = {m.name.lower(): m for m in cab.members}
        if len(members) != len(cab.members):
            dup = sorted(
                {
                    m.name
                    for m in cab.members
                    if sum(n.name.lower() == m.name.lower() for n in cab.members) > 1
                }
            )
            raise FormatError(
                f"the CAB holds members that differ only in case or are repeated: {dup[:3]}", where
            )
        mum = read_mum(cab, cab_path)
        custom = mum.find(f"{ASM}package/{ASM}customInformation")
        special: dict[str, str] = {}
        if custom is not None:
            for tag in ("bcdStore", "binaryPartition"):
                el = custom.find(f"{ASM}{tag}")
                if el is not None and el.get("cabpath"):
                    special[el.get("cabpath").lower()] = tag
        files = (
            []
            if custom is None
            else [
                f
                for f in custom.findall(f"{ASM}file")
                if f.get("cabpath")
                and f.get("cabpath").lower() != "update.cat"
                and not f.get("cabpath").lower().endswith(".manifest")
                and f.get("cabpath").lower() != "update.mum"
            ]
        )
        for f in files:
            cabpath = f.get("cabpath").lower()
            if cabpath not in members:
                raise FormatError(f"update.mum lists {f.get('cabpath')} but the CAB lacks it", where)
            kind = special.get(cabpath)
            n = len(p.ops)
            if kind == "binaryPartition":
                p.ops.append(("raw", n, f.get("name")))
                extract_member(cab, members[cabpath], store / str(n), f, where)
                continue
            rel = device_to_relative(f.get("name"), where)
            if kind == "bcdStore":
                p.ops.append(("bcd", n, f.get("name")))
                extract_member(cab, members[cabpath], store / str(n), f, where)
                continue
            op = ["file", rel, n, members[cabpath].size, "", f.get("name")]
            p.ops.append(op)
            _host_path(store, rel)
            op[4] = extract_member(cab, members[cabpath], store / str(n), f, where)
        for name, member in sorted(members.items()):
            if name.endswith(".manifest") and "\\" not in name:
                keys, values = _manifest_registry(cab.read(member, 64 << 20), f"{where}:{member.name}")
                p.ops.append(("reg", member.name, keys, values))
        if not info.binary_partition and info.partition.lower() in ("mainos",):
            # The servicing stack's record of the package: its mum and catalog under \Windows\servicing.
            for member, suffix in (("update.mum", ".mum"), ("update.cat", ".cat")):
                if member in members:
                    rel = (
                        f"Windows\\servicing\\Packages\\{info.name}~628844477771337a~{info.arch}~~{info.version}"
                        f"{suffix}"
                    )
                    n = len(p.ops)
                    op = ["svc", rel, n, members[member].size, "", members[member].name]
                    p.ops.append(op)
                    op[4] = extract_member(cab, members[member], store / str(n), None, where)


def replay(st: Staging, parsed: Parsed, store: Path) -> PackageInfo:
    """Install a parsed package into `st`: the collision checks of a sequential install, in its
    order, then its files hard-linked (or copied) from `store` below st.root. Raises the
    package's recorded error where installing it would have."""
    info, where = parsed.info, str(parsed.cab)
    place = parsed.error is None  # a failing package only reports, in order
    if info is not None and info.partition.lower() != st.partition.lower():
        raise ConfigError(
            f"package {info.name} targets partition {info.partition}, not {st.partition}", where
        )
    for op in parsed.ops:
        kind = op[0]
        if kind == "raw":
            if st.raw_image is not None:
                raise ConfigError(
                    f"partition {st.partition} gets a raw image from both {st.raw_image[1]} and {info.name}",
                    where,
                )
            out = st.root.parent / f".{st.partition}.raw"
            if place:
                place_member(store / str(op[1]), out, op[2], where)
            st.raw_image = (out, info.name)
        elif kind == "bcd":
            out = st.root.parent / f".{st.partition}.bcd" / f"{len(st.bcd_sources):03d}.xml"
            if place:
                place_member(store / str(op[1]), out, op[2], where)
            st.bcd_sources.append((out, info.name))
        elif kind == "reg":
            _apply_registry(st, op[2], op[3], info, f"{where}:{op[1]}")
        else:
            _, rel, n, size, digest, label = op
            key = rel.lower()
            if key in st.files:
                if kind == "svc":
                    raise ConfigError(
                        f"package {info.name} is installed twice ({st.files[key].package})", where
                    )
                raise ConfigError(
                    f"file \\{rel} is installed by both {st.files[key].package} and {info.name}; "
                    "remove it from one package",
                    where,
                )
            _claim_path(st, rel, info.name, where)
            if place:
                place_member(store / str(n), _host_path(st.root, rel), label, where, st.root, st.made)
            st.files[key] = InstalledFile(rel, size, digest, info.name)
    if parsed.error is not None:
        raise parsed.error
    st.packages.append(info)
    return info


def _manifest_registry(data: bytes, where: str) -> tuple[list[str], list[tuple[str, str, int, bytes]]]:
    """Empty keys and (key, name, type, data) values a component manifest sets, services included."""
    root = xmlsafe.parse_bytes(data, where)
    keys: list[str] = []
    values: list[tuple[str, str, int, bytes]] = []
    for key in root.iter(f"{ASM}registryKey"):
        key_name = key.get("keyName", "")
        vals = key.findall(f"{ASM}registryValue")
        if not vals:
            keys.append(key_name)
        for v in vals:
            reg = _parse_manifest_value(v, where)
            values.append((key_name, v.get("name", ""), reg.type, reg.data))
    for svc in root.iter(f"{ASM}serviceData"):
        values.extend((k, n, reg.type, reg.data) for k, n, reg in _service_values(svc))
    return keys, values


def _apply_registry(st: Staging, keys: list[str], values: list, info: PackageInfo, where: str) -> None:
    for key_name in keys:
        st.keys.setdefault(key_name.lower(), key_name)
    for key_name, name, type_, data in values:
        k = (key_name.lower(), name.lower())
        prev = st.values.get(k)
        if prev is not None and (prev.type, prev.data) != (type_, data):
            raise ConfigError(
                f"registry value {key_name}\\{name or '(default)'} is set by both {prev.package} and "
                f"{info.name} with different data",
                where,
            )
        st.values[k] = InstalledValue(key_name, name, type_, data, info.name)


def _claim_path(st: Staging, rel: str, package: str, where: str) -> None:
    """A file's path must not be another package's file used as a directory, or the reverse."""
    parts = rel.lower().split("\\")
    for i in range(1, len(parts)):
        parent = "\\".join(parts[:i])
        if parent in st.files:
            raise ConfigError(
                f"file \\{rel} of {package} needs \\{st.files[parent].path} to be a directory, but "
                f"{st.files[parent].package} installs a file there",
                where,
            )
        st.dirs.setdefault(parent, package)
    if rel.lower() in st.dirs:
        raise ConfigError(
            f"file \\{rel} of {package} is a directory of {st.dirs[rel.lower()]}'s files", where
        )
