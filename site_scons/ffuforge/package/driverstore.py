"""The driver store folder and ``SYSTEM\\DriverDatabase`` entries of a driver INF.

pkggen imports each driver INF into an offline store with drvstore.dll (Inbox flag) and ships
what that leaves (drivers.md §1.1, §7): the ``System32\\DriverStore\\FileRepository\\<folder>``
copy of the INF, its catalog and its files, the INF published under its own name in
``\\Windows\\INF`` and the driver database PnP matches devices against at first boot. We have no
drvstore.dll, so this module writes the same layout from the INF (:mod:`.inf`, :mod:`.infinstall`).

Sources (facts only, see drivers.md §2, §3, §6): Microsoft's "Driver Store" page and the Windows 10
Mobile "Update a KMDF device driver" walk-through (key layout, ``Owners``/``InfPath`` under the
INF's own name, ``SignerScore`` 0x0D000003 = SIGNERSCORE_INBOX, the 48-byte ``Version`` value),
setupapi.h (SIGNERSCORE_*), the INF FeatureScore page (default 0xFF), registry exports quoted in
drivers.md (``DeviceIds`` values, ``ImportDate``, ``InfName``, ``Catalog``).

Ours, not Windows' (say so wherever it matters):

* The folder suffix: Windows' 16-hex value has no public derivation. We use the first 8 bytes of
  SHA-256 over the INF's bytes followed by its catalog's bytes (none when the project gives no
  catalog), lower-case hex. Deterministic, content-dependent (a new DriverVer or AddReg line gives
  a new folder, as on Windows), the same in the store path, ``DriverInfFiles``, ``DriverPackages``
  and ImagePaths. A device that imports the same INF again would not see it as the same package.
* The catalog: the INF's ``CatalogFile`` when the project ships that file next to the INF. When it
  does not (pkggen signs drivers through the package catalog, which lists the INF and every file),
  the folder holds no catalog and ``Catalog`` is not written [I].

Inferred where the sources stop [I]:

* ``Version`` bytes 0–7 are the header seen in Windows 10 Mobile pkggen output (``ff ff 05 00 …``);
  bytes 40–47 zero (drivers.md §3.3).
* ``DeviceIds`` value byte 0 is 1 for a model's hardware ID and 2 for its compatible IDs, byte 1
  the section's FeatureScore (0xFF by default); ``Descriptors`` are keyed by the hardware ID only.
* ``Descriptors`` give ``Description`` as ``%token%`` lower-cased and ``Manufacturer`` as
  ``%Token%`` as written (Microsoft's example); a literal (non-token) text is written as is.
* ``Configurations\\<section>`` gets ``ConfigFlags`` 0 and ``Service`` (the SPSVCINST_ASSOCSERVICE
  service, also from a Needs= section); the device keys' HKR values go to its ``Driver``
  (DDInstall, .CoInstallers) and ``Device`` (.HW) sub-keys.
* ``FileSize`` (REG_QWORD): the sum of the sizes of the files in the store folder (INF, catalog,
  payload as read from the sources), DrvCtl's reading [O]; written when the package is built (the
  files may not exist yet when SCons reads the SConscripts).
* ``SOFTWARE\\…\\Setup\\PnpLockdownFiles\\<destination with "/">`` for every file the INF copies
  outside the store (drivers.md §4.4 [O][K]): ``Source`` (REG_EXPAND_SZ, the store copy),
  ``Owners`` (the published INF) and ``Class`` 4 when ``[Version]`` has ``PnpLockdown=1``, else 5
  (the two values DrvCtl saw; their meaning beyond that is not public). Destinations below
  ``%SystemRoot%`` are written ``%SystemRoot%/…``, the boot drive ``%SystemDrive%/…`` [I].

Not written, no public rule (drivers.md §3.3, §8): ``ConfigScope`` (7, 0x105, 0xF7F seen, meaning
unknown), ``StatusFlags`` (0x12 in OEM samples, "many values, no rule"), ``ManifestHash``
(0xFFFF… in samples, meaning unknown), ``Properties\\{fmtid}\\NNNN`` (optional DEVPROP values; PnP
recognised devices without them), ``Configurations\\…\\Services\\<svc>`` (the service-install
AddReg copy: its layout in a pkggen delta was not seen; the values are in the service key itself),
``OemPath`` (an Inbox import has no OEM source folder), ``PnpResources`` (layout not found).

The folder suffix folds in the payload (:func:`folder_name`): Windows' name hashes the INF and
its catalog, and the catalog lists every file's hash, so a changed ``.sys`` under a signed INF gets
a new folder on Windows; pkggen ships drivers whose catalog is the package's ``update.cat``, so we
hash the files themselves to get the same behaviour (one name never stands for two contents).
"""

from __future__ import annotations

import hashlib
import os
import re
from datetime import UTC, datetime
from pathlib import Path

from ..errors import ConfigError
from ..formats.regvalue import RegData
from ..util import paths
from .inf import stamped
from .infinstall import InfRegistry, InfValue
from .inflex import WS
from .infmodel import DriverImport, Inf

__all__ = [
    "DATABASE",
    "SIGNERSCORE_INBOX",
    "STORE_DIR",
    "database",
    "filetime",
    "folder_name",
    "lockdown_path",
    "read_source",
    "version_bytes",
]

DATABASE = r"HKEY_LOCAL_MACHINE\SYSTEM\DriverDatabase"  # OneCore keeps it in SYSTEM (drivers.md §3.1)
STORE_DIR = r"DriverStore\FileRepository"  # below System32
SIGNERSCORE_INBOX = 0x0D000003
VERSION_HEADER = bytes.fromhex("ffff050000000000")  # Windows 10 Mobile pkggen output [I: meaning]
_GUID = re.compile(
    r"^\{?([0-9a-fA-F]{8})-([0-9a-fA-F]{4})-([0-9a-fA-F]{4})-([0-9a-fA-F]{4})-([0-9a-fA-F]{12})\}?$"
)
_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
_EPOCH_1601 = datetime(1601, 1, 1, tzinfo=UTC)


LOCKDOWN = r"HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Windows\CurrentVersion\Setup\PnpLockdownFiles"
_LOCKDOWN_ROOTS = {
    "runtime.windows": "%SystemRoot%",
    "runtime.system32": "%SystemRoot%/System32",
    "runtime.drivers": "%SystemRoot%/System32/drivers",
    "runtime.inf": "%SystemRoot%/INF",
    "runtime.bootdrive": "%SystemDrive%",
}


def folder_name(
    inf_name: str,
    arch: str,
    inf_bytes: bytes,
    catalog_bytes: bytes = b"",
    files: list[tuple[str, bytes]] = (),
) -> str:
    """``<inf lower>_<arch>_<16 hex>``: ffuforge's own suffix, the first 8 bytes of SHA-256 over the
    INF's bytes, its catalog's bytes and, per store file (sorted by lower-case store-relative path),
    that path in UTF-8, a NUL and the file's SHA-256 (see the module docstring)."""
    h = hashlib.sha256(inf_bytes + catalog_bytes)
    for rel, digest in sorted(files, key=lambda f: f[0].lower()):
        h.update(rel.lower().encode() + b"\0" + digest)
    return f"{inf_name.lower()}_{arch}_{h.digest()[:8].hex()}"


def lockdown_path(macro: str, rel: str, name: str) -> str | None:
    """The PnpLockdownFiles key name of a device file (``%SystemRoot%/System32/drivers/x.sys``)."""
    base = _LOCKDOWN_ROOTS.get(macro.lower())
    if base is None:
        return None
    return "/".join([base, *[p for p in rel.split("\\") if p], name])


def read_source(path: Path, shown: str) -> bytes:
    """A driver INF or catalog, for the folder name (the read is recorded for the plan cache)."""
    try:
        with os.fdopen(paths.open_regular(path), "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise ConfigError(f"cannot read {shown}: {exc.strerror or exc}", shown) from None


def filetime(seconds: int) -> bytes:
    """FILETIME (100 ns since 1601, little-endian) of a POSIX time."""
    return ((seconds + 11644473600) * 10_000_000).to_bytes(8, "little")


def version_bytes(
    class_guid: str | None,
    driver_ver: str | None,
    where: str | None = None,
    guid_line: int | None = None,
    line: int | None = None,
) -> bytes:
    """``DriverPackages\\<pkg>\\Version``: header, ClassGuid, DriverVer date (FILETIME at 00:00 UTC)
    and DriverVer version packed major<<48|minor<<32|build<<16|revision (drivers.md §3.3)."""
    guid = bytes(16)
    if class_guid:
        m = _GUID.fullmatch(class_guid.strip(WS))
        if m is None:
            raise ConfigError(
                f"ClassGuid {class_guid!r} is not a GUID like {{4d36e97d-…}}; fix it", where, guid_line
            )
        a, b, c, d, e = m.groups()
        guid = (
            int(a, 16).to_bytes(4, "little")
            + int(b, 16).to_bytes(2, "little")
            + int(c, 16).to_bytes(2, "little")
            + bytes.fromhex(d + e)
        )
    date, packed = bytes(8), 0
    if driver_ver:
        parts = [p.strip(WS) for p in driver_ver.split(",")]
        m = _DATE.fullmatch(parts[0])
        try:
            if m is None:
                raise ValueError
            day = datetime(int(m.group(3)), int(m.group(1)), int(m.group(2)), tzinfo=UTC)
            date = (int((day - _EPOCH_1601).total_seconds()) * 10_000_000).to_bytes(8, "little")
        except ValueError:
            raise ConfigError(
                f"DriverVer date {parts[0]!r} is not a date mm/dd/yyyy; fix [Version] DriverVer", where, line
            ) from None
        if len(parts) > 1 and parts[1]:
            nums = parts[1].split(".")
            if len(nums) > 4 or not all(n.isdigit() and int(n) < 65536 for n in nums):
                raise ConfigError(
                    f"DriverVer version {parts[1]!r} is not w.x.y.z with numbers below 65536; fix it",
                    where,
                    line,
                )
            for i, n in enumerate(nums):
                packed |= int(n) << (48 - 16 * i)
    return VERSION_HEADER + guid + date + packed.to_bytes(8, "little") + bytes(8)


def _sz(text: str) -> RegData:
    return RegData(1, (text + "\0").encode("utf-16-le"))


def _multi(items: list[str]) -> RegData:
    return RegData(7, b"".join((s + "\0").encode("utf-16-le") for s in items) + b"\0\0")


def _dword(n: int) -> RegData:
    return RegData(4, (n & 0xFFFFFFFF).to_bytes(4, "little"))


def _id_key(device_id: str) -> str:
    return "\\".join(p for p in device_id.split("\\") if p)


def database(
    inf: Inf,
    imp: DriverImport,
    reg: InfRegistry,
    inf_name: str,
    folder: str,
    catalog: str | None,
    lockdown: list[tuple[str, str, int]] = (),
    file_size: int | None = None,
) -> list[InfValue]:
    """The ``SYSTEM\\DriverDatabase`` values of an Inbox import of ``inf`` into ``folder``
    (``ImportDate`` excepted: it comes from SOURCE_DATE_EPOCH when the package is built), and the
    PnpLockdownFiles entries of ``lockdown`` ((key name, store-relative source, INF line) each);
    ``file_size``: the store folder's total, when the files were read."""
    inf = stamped(inf, imp.arch)
    values: dict[tuple[str, str], InfValue] = {}
    version = inf.section("Version")
    vline = version.line if version is not None else 1

    def put(key: str, name: str, data: RegData, line: int) -> None:
        values.setdefault((key.lower(), name.lower()), InfValue(key, name, data, line))

    infs = f"{DATABASE}\\DriverInfFiles\\{inf_name}"
    configs = list(imp.install_sections)
    put(infs, "", _multi([folder]), vline)
    put(infs, "Active", _sz(folder), vline)
    if configs:
        put(infs, "Configurations", _multi(configs), vline)

    pkg = f"{DATABASE}\\DriverPackages\\{folder}"
    put(pkg, "", _sz(inf_name), vline)
    put(pkg, "InfName", _sz(inf_name), vline)
    if imp.provider:
        put(pkg, "Provider", _sz(imp.provider), vline)
    put(pkg, "SignerName", _sz(""), vline)
    put(pkg, "SignerScore", _dword(SIGNERSCORE_INBOX), vline)
    if catalog:
        put(pkg, "Catalog", _sz(catalog), vline)
    ver_line = version.get("DriverVer") if version is not None else None
    guid_line = version.get("ClassGuid") if version is not None else None
    glno = guid_line.line if guid_line is not None else vline
    vlno = ver_line.line if ver_line is not None else vline
    put(pkg, "Version", RegData(3, version_bytes(imp.class_guid, imp.driver_ver, inf.path, glno, vlno)), vlno)
    boot = version.get("BootCritical") if version is not None else None
    if boot is not None and boot.values and boot.values[0].strip(WS) == "1":
        put(pkg, "BootCritical", _dword(1), boot.line)

    if file_size is not None:
        put(pkg, "FileSize", RegData(11, file_size.to_bytes(8, "little")), vline)
    for section in configs:
        ckey = f"{pkg}\\Configurations\\{section}"
        put(ckey, "ConfigFlags", _dword(0), vline)
        if section in reg.assoc:
            put(ckey, "Service", _sz(reg.assoc[section]), vline)
    lock = version.get("PnpLockdown") if version is not None else None
    lock_class = 4 if lock is not None and lock.values and lock.values[0].strip(WS) == "1" else 5
    for key_name, source, line in lockdown:
        key = f"{LOCKDOWN}\\{key_name}"
        store = f"%SystemRoot%\\System32\\{STORE_DIR}\\{folder}\\{source}"
        put(key, "Source", RegData(2, (store + "\0").encode("utf-16-le")), line)
        put(key, "Owners", _multi([inf_name]), line)
        put(key, "Class", _dword(lock_class), line)
    for kind, section, sub, name, data, line in reg.deferred:
        key = f"{pkg}\\Configurations\\{section}\\{kind}" + (f"\\{sub}" if sub else "")
        values[(key.lower(), name.lower())] = InfValue(key, name, data, line)  # later AddReg lines win

    strings: dict[str, str] = {}
    for model in imp.models:
        if not model.ids:
            continue
        desc = f"%{model.description_token.lower()}%" if model.description_token else model.description
        maker = f"%{model.manufacturer_token}%" if model.manufacturer_token else model.manufacturer
        if model.description_token:
            strings[model.description_token.lower()] = model.description
        if model.manufacturer_token:
            strings[model.manufacturer_token.lower()] = model.manufacturer
        dkey = f"{pkg}\\Descriptors\\{_id_key(model.ids[0])}"
        put(dkey, "Configuration", _sz(model.install), model.line)
        put(dkey, "Description", _sz(desc), model.line)
        put(dkey, "Manufacturer", _sz(maker), model.line)
        score = _feature_score(inf, model.install)
        for i, device_id in enumerate(model.ids):
            kind = 1 if i == 0 else 2
            put(
                f"{DATABASE}\\DeviceIds\\{_id_key(device_id)}",
                inf_name,
                RegData(3, bytes([kind, score, 0, 0])),
                model.line,
            )
    for token, text in sorted(strings.items()):
        put(f"{pkg}\\Strings", token, _sz(text), vline)
    if imp.class_guid:
        guid = imp.class_guid.strip(WS).lower()
        guid = guid if guid.startswith("{") else "{" + guid + "}"
        put(f"{DATABASE}\\DeviceIds\\{guid}", inf_name, RegData(0, b""), glno)
    return sorted(values.values(), key=lambda v: (v.key.lower(), v.name.lower()))


def _feature_score(inf: Inf, section: str) -> int:
    sec = inf.section(section)
    ln = sec.get("FeatureScore") if sec is not None else None
    if ln is None or not ln.values:
        return 0xFF
    text = ln.values[0].strip(WS)
    try:
        value = int(text, 16)
    except ValueError:
        raise ConfigError(
            f"FeatureScore {text!r} in [{section}] is not a hex byte like 0x80", inf.path, ln.line
        ) from None
    if not 0 <= value <= 0xFF:
        raise ConfigError(f"FeatureScore {text} in [{section}] is above 0xFF", inf.path, ln.line)
    return value
