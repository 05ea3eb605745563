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

Files come from update.mum's list (pkggen's form) and from the component manifests' ``<file>``
elements (Microsoft's form, :mod:`.components`). Registry values are read and merged as CSI
applies them (:mod:`.registry`: ``operationHint="append"``, ``$(runtime.*)``/``$(build.*)``,
service layouts); :mod:`.partition` writes them into the hives of
Windows' new-image skeleton, always with ``SYSTEM\\Select`` and ``ControlSet001``, and its docstring
lists what Microsoft's OS packages are expected to supply (``Control``, inbox services, SAM/SECURITY,
the default user hive).
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
from . import components, registry, security
from .members import extract_member, place_member

ASM = "{urn:schemas-microsoft-com:asm.v3}"
OEM_TOKEN = "628844477771337a"  # pkggen's OEM key token, for a mum that gives none
SERVICES_KEY = registry.SERVICES_KEY


@dataclass
class PackageInfo:
    name: str
    cab: Path
    partition: str
    release_type: str  # phoneRelease: Production | Test
    binary_partition: bool
    version: str
    arch: str
    token: str = OEM_TOKEN  # publicKeyToken: names the servicing record


@dataclass
class InstalledFile:
    path: str  # device path below the partition root, '\\' separated
    size: int
    sha256: str
    package: str
    sha1: str  # for the SBOM: SPDX 2.3 requires a SHA-1 of every file


@dataclass
class InstalledValue:
    key: str
    name: str
    type: int
    data: bytes  # what the hive gets: `base` with the appended items merged in
    package: str  # the package that sets the value (the first appender while none does)
    base: bytes | None = None  # data set without operationHint="append"
    appended: list[str] = field(default_factory=list)  # REG_MULTI_SZ items appended, in order
    appenders: list[str] = field(default_factory=list)


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
    # package-given descriptors: lower-case path / canonical key → (spelling, SDDL, package)
    security: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    key_security: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    # lower-case directory → the spelling of its last component every file below it gets
    spellings: dict[str, str] = field(default_factory=dict)

    def spelled(self, rel: str) -> str:
        """`rel` with its directories spelt as :func:`prime_spellings` chose (Windows merges
        `system32\\drivers` and `System32\\drivers`; the staged tree must hold one of them)."""
        parts = rel.split("\\")
        low = ""
        for i in range(len(parts) - 1):
            low = f"{low}\\{parts[i].lower()}" if i else parts[i].lower()
            parts[i] = self.spellings.get(low, parts[i])
        return "\\".join(parts)

    def manifest(self) -> dict:
        extra = {}
        if self.security or self.key_security:
            extra["security"] = [
                {"path": p, "sddl": sddl, "package": pkg}
                for p, sddl, pkg in sorted(self.security.values(), key=lambda t: t[0].lower())
            ] + [
                {"key": k, "sddl": sddl, "package": pkg}
                for k, sddl, pkg in sorted(self.key_security.values(), key=lambda t: t[0].lower())
            ]
        return extra | {
            "partition": self.partition,
            "packages": [
                {"name": p.name, "cab": p.cab.name, "version": p.version, "release": p.release_type}
                for p in self.packages
            ],
            "files": [vars(f) for f in sorted(self.files.values(), key=lambda f: f.path.lower())],
            "registry": [
                {"key": v.key, "name": v.name, "type": v.type, "data": v.data.hex(), "package": v.package}
                | ({"appended_by": v.appenders} if v.appenders else {})
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
    return package_info_of(read_mum(cab, cab_path), cab_path)


def package_info_of(mum: etree._Element, cab_path: Path) -> PackageInfo:
    """:func:`read_package_info` from the parsed update.mum of the CAB at `cab_path`."""
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
        token=(ident.get("publicKeyToken") or OEM_TOKEN).lower(),
    )
    if not re.fullmatch(r"[0-9a-f]{16}", info.token):
        raise FormatError(f"update.mum publicKeyToken={info.token!r} is not 16 hex digits", str(cab_path))
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
        base = registry.runtime_device_path(m.group(1))
        if base is None:
            raise FormatError(f"unknown device path macro in {device_path!r}", where)
        text = base + m.group(2)
    else:
        text = device_path
    return macros.normalize_relative(text, f"device path {device_path!r}", where, None)


def _installed_rel(device_path: str, where: str) -> str | None:
    """A manifest file's path, or None when no installed file can have it (a Microsoft manifest
    also describes files under macros the CAB does not install)."""
    try:
        return device_to_relative(device_path, where)
    except FFUError:
        return None


def _host_path(root: Path, rel: str) -> Path:
    out = root.joinpath(*rel.split("\\"))
    # normalize_relative has refused '..' and drive letters; this is a second line of defence.
    if os.path.commonpath([os.path.abspath(out), os.path.abspath(root)]) != os.path.abspath(root):
        raise FormatError(f"device path {rel!r} escapes the partition")
    return out


@dataclass
class Parsed:
    """What one CAB installs, in install order, independent of any staged tree: the input of
    :func:`replay`. Extracted members are files ``<store>/<n>``. A bad package's error is kept in
    `error` at the point it arose (ops before it are complete), so that replaying the records of
    several packages in order reports exactly what installing them one by one would."""

    cab: Path
    info: PackageInfo | None = None
    # ("file"|"svc", rel, n, size, sha256, label, sha1) | ("raw"|"bcd", n, label) | ("reg", member, keys, values)
    ops: list = field(default_factory=list)
    error: Exception | None = None


def install_package(st: Staging, cab_path: Path) -> PackageInfo:
    """Install one CBS package into `st` (files placed below st.root)."""
    scratch = st.root.parent / f".{st.partition}.extract"
    scratch.mkdir(parents=True, exist_ok=True)
    store = Path(tempfile.mkdtemp(dir=scratch))
    return replay(st, parse_package(Path(cab_path), st.partition, store), store)


def parse_package(cab_path: Path, partition: str | None, store: Path, reader=None) -> Parsed:
    """Read a CAB for `partition`: its identity, registry values and files, members extracted to
    `store` (an existing, empty directory). A bad package is recorded, not raised. `partition`
    None skips the partition check (the result does not otherwise depend on it): for a package
    read before its partition is known, checked where it is used (:func:`partition_error`).
    `reader`: read the members through it instead of a CabReader over `cab_path` (CabReader's
    `members`, `read`, `iter_chunks`; :class:`.extractcache.WrittenCab`, the members a build wrote)."""
    parsed = Parsed(cab_path)
    try:
        _parse(parsed, cab_path, partition, store, reader)
    except (FFUError, OSError) as exc:
        parsed.error = exc
    return parsed


def partition_error(info: PackageInfo, partition: str, where: str) -> ConfigError | None:
    """The error of installing a package into a partition it does not target, else None."""
    if info.partition.lower() == partition.lower():
        return None
    return ConfigError(f"package {info.name} targets partition {info.partition}, not {partition}", where)


def _parse(p: Parsed, cab_path: Path, partition: str | None, store: Path, reader=None) -> None:
    where = str(cab_path)
    with reader if reader is not None else CabReader(cab_path) as cab:
        info = p.info = _package_info(cab, cab_path)
        if partition is not None and (exc := partition_error(info, partition, where)) is not None:
            raise exc
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
        listed: set[str] = set()  # device paths update.mum installs (pkggen's form)
        used: set[str] = set()  # CAB members update.mum lists
        placed: dict[str, str] = {}  # device paths manifests install → manifest
        for f in files:
            cabpath = f.get("cabpath").lower()
            used.add(cabpath)
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
            op = ["file", rel, n, members[cabpath].size, "", f.get("name"), ""]
            p.ops.append(op)
            listed.add(rel.lower())
            _host_path(store, rel)
            op[4], op[6] = extract_member(cab, members[cabpath], store / str(n), f, where)
        for name, member in sorted(members.items()):
            if name.endswith(".manifest") and "\\" not in name:
                mwhere = f"{where}:{member.name}"
                data = components.read_manifest(cab.read(member, 64 << 20), mwhere)
                _manifest_files(p, cab, data, member.name, members, (listed, used, placed), store, mwhere)
                keys, values = registry.manifest_registry(
                    data, registry.build_values(info.arch, info.version), mwhere
                )
                p.ops.append(("reg", member.name, keys, values))
                sec_files, sec_dirs, sec_keys = security.manifest_security(data, f"{where}:{member.name}")
                if sec_files or sec_dirs or sec_keys:
                    rel_files = [[r, s] for d, s in sec_files if (r := _installed_rel(d, where))]
                    rel_dirs = [[device_to_relative(d, where), s] for d, s in sec_dirs if d]
                    p.ops.append(("sec", member.name, rel_files, rel_dirs, [list(k) for k in sec_keys]))
        if not info.binary_partition and info.partition.lower() in ("mainos", "updateos"):
            # The servicing stack's record of the package: its mum and catalog under \Windows\servicing.
            for member, suffix in (("update.mum", ".mum"), ("update.cat", ".cat")):
                if member in members:
                    rel = (
                        f"Windows\\servicing\\Packages\\{info.name}~{info.token}~{info.arch}~~{info.version}"
                        f"{suffix}"
                    )
                    n = len(p.ops)
                    op = ["svc", rel, n, members[member].size, "", members[member].name, ""]
                    p.ops.append(op)
                    op[4], op[6] = extract_member(cab, members[member], store / str(n), None, where)


def _manifest_files(
    p,
    cab,
    root,
    name: str,
    members: dict,
    seen: tuple[set[str], set[str], dict[str, str]],
    store: Path,
    where: str,
) -> None:
    """Install the files a component manifest describes that update.mum does not list (Microsoft's
    form; see :mod:`.components`), each checked against the manifest's digest."""
    for mf in components.manifest_files(root, name, members, where):
        listed, used, placed = seen
        rel = device_to_relative(mf.device_path, where)
        if rel.lower() in listed or (mf.member is not None and mf.member.lower() in used):
            continue  # pkggen's form: update.mum lists it, installed (and checked) from there
        if mf.member is None:
            raise FormatError(
                f"{name} describes {mf.device_path!r}, but the CAB has no member "
                f"{mf.candidates[0]!r}; rebuild the package with its payload",
                where,
                mf.line,
            )
        if rel.lower() in placed:
            raise ConfigError(
                f"\\{rel} is installed by both {placed[rel.lower()]} and {name}; a package installs a "
                "file once",
                where,
                mf.line,
            )
        placed[rel.lower()] = name
        _host_path(store, rel)
        n = len(p.ops)
        entry = members[mf.member.lower()]
        op = ["file", rel, n, entry.size, "", mf.device_path, ""]
        p.ops.append(op)
        op[4], op[6] = extract_member(cab, entry, store / str(n), None, where)
        if mf.digest is not None:
            algo, want = mf.digest
            got = bytes.fromhex(op[4] if algo == "sha256" else op[6])  # components: sha256 or sha1 only
            if got != want:
                raise FormatError(
                    f"{mf.member}: the content does not match its {algo.upper()} in the manifest "
                    "(corrupt or altered package)",
                    where,
                    mf.line,
                )


# Directories the partition writer creates itself: their spelling is fixed.
FIXED_SPELLINGS = ("Windows", "Windows\\System32", "Windows\\System32\\config", "EFI", "EFI\\Microsoft")


def prime_spellings(st: Staging, parsed: list[Parsed]) -> None:
    """Choose one spelling per directory for the whole partition before any package is placed:
    the one that sorts first (ordinal: `System32` before `system32`) among every package's paths,
    so the result does not depend on the order packages are installed in. Files whose names differ
    only in case stay a conflict (Windows would see one file)."""
    seen: dict[str, set[str]] = {}

    def note(rel: str, dirs_only: bool) -> None:
        parts = rel.split("\\")
        low = ""
        for i, part in enumerate(parts if not dirs_only else parts[:-1]):
            low = f"{low}\\{part.lower()}" if i else part.lower()
            seen.setdefault(low, set()).add(part)

    for p in parsed:
        for op in p.ops:
            if op[0] in ("file", "svc"):
                note(op[1], True)
            elif op[0] == "sec":
                for rel, _ in op[3]:
                    note(rel, False)
    st.spellings = {low: min(names) for low, names in seen.items()}
    for fixed in FIXED_SPELLINGS:
        st.spellings[fixed.lower()] = fixed.rsplit("\\", 1)[-1]


def replay(st: Staging, parsed: Parsed, store: Path) -> PackageInfo:
    """Install a parsed package into `st`: the collision checks of a sequential install, in its
    order, then its files hard-linked (or copied) from `store` below st.root. Raises the
    package's recorded error where installing it would have."""
    info, where = parsed.info, str(parsed.cab)
    place = parsed.error is None  # a failing package only reports, in order
    if info is not None and (exc := partition_error(info, st.partition, where)) is not None:
        raise exc
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
        elif kind == "sec":
            _apply_security(st, op, info.name, f"{where}:{op[1]}", place)
        else:
            _, rel, n, size, digest, label, sha1 = op
            rel = st.spelled(rel)
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
            st.files[key] = InstalledFile(rel, size, digest, info.name, sha1)
    if parsed.error is not None:
        raise parsed.error
    st.packages.append(info)
    return info


def _apply_registry(st: Staging, keys: list[str], values: list, info: PackageInfo, where: str) -> None:
    """Merge a manifest's values: equal settings agree, different ones collide, and REG_MULTI_SZ
    appends add their items to whatever the value holds (see :mod:`.registry`)."""
    for key_name in keys:
        st.keys.setdefault(registry.canonical_key(key_name), key_name)
    for key_name, name, type_, data, append in values:
        k = (registry.canonical_key(key_name), name.lower())
        prev = st.values.get(k)
        label = f"{key_name}\\{name or '(default)'}"
        if append:
            items = regvalue.multi_items(data)
            if prev is None:
                st.values[k] = InstalledValue(key_name, name, 7, data, info.name, None, items, [info.name])
                continue
            if prev.type != 7:
                raise ConfigError(
                    f"registry value {label}: {info.name} appends REG_MULTI_SZ items to it, but "
                    f"{prev.package} sets it as {regvalue.RegData(prev.type, b'').type_name}",
                    where,
                )
            prev.appended = registry.merged_items(prev.appended, items)
            prev.appenders = sorted({*prev.appenders, info.name})
        elif prev is None:
            st.values[k] = InstalledValue(key_name, name, type_, data, info.name, data)
            continue
        elif prev.base is None:  # so far only appends: this package sets the value they extend
            if type_ != 7:
                raise ConfigError(
                    f"registry value {label}: {info.name} sets it as "
                    f"{regvalue.RegData(type_, b'').type_name}, but {', '.join(prev.appenders)} append "
                    "REG_MULTI_SZ items to it",
                    where,
                )
            prev.base, prev.package, prev.key, prev.name = data, info.name, key_name, name
        elif (prev.type, prev.base) != (type_, data):
            raise ConfigError(
                f"registry value {label} is set by both {prev.package} and {info.name} with different data",
                where,
            )
        else:
            continue
        base = regvalue.multi_items(prev.base) if prev.base is not None else []
        prev.data = regvalue.multi_data(registry.merged_items(base, prev.appended))


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


def _apply_security(st: Staging, op, package: str, where: str, place: bool) -> None:
    """Record a manifest's descriptors. A file's applies only where this package installs it (a
    Microsoft manifest also describes files its CAB does not carry); a declared directory is
    created. Two packages giving one path or key different descriptors are refused by name."""
    _, _, files, dirs, keys = op

    def claim(table: dict, k: str, spelling: str, sddl: str, what: str) -> None:
        prev = table.get(k)
        if prev is not None and not security.same(prev[1], sddl):
            raise ConfigError(
                f"{what} {spelling} gets security descriptor {prev[1]!r} from {prev[2]} and {sddl!r} "
                f"from {package}; give it one descriptor",
                where,
            )
        if prev is None:
            table[k] = (spelling, sddl, package)

    for rel, sddl in files:
        f = st.files.get(rel.lower())
        if f is not None and f.package == package:
            claim(st.security, rel.lower(), f.path, sddl, "file")
    for rel, sddl in dirs:
        rel = st.spelled(rel + "\\x")[:-2]
        if rel.lower() in st.files:
            raise ConfigError(
                f"directory \\{rel} of {package} is a file of {st.files[rel.lower()].package}", where
            )
        _claim_path(st, rel + "\\x", package, where)  # its parents are directories, not files
        st.dirs.setdefault(rel.lower(), package)
        if place:
            _host_path(st.root, rel).mkdir(parents=True, exist_ok=True)
        if sddl is not None:
            claim(st.security, rel.lower(), rel, sddl, "directory")
    for key, sddl in keys:
        canon = registry.canonical_key(key)
        st.keys.setdefault(canon, key)
        claim(st.key_security, canon, key, sddl, "registry key")
