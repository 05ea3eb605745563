"""What installing a driver INF writes to the registry: services, AddReg/DelReg, KMDF.

pkggen imports every driver INF into an offline driver store and ships the registry delta
(drivers.md §1.1): above all the service keys that let the driver load before PnP ever runs.
We have no drvstore.dll, so this module walks the same sections setupapi does for the target
architecture's install sections (found by :func:`.inf.import_driver`): ``DDInstall``,
``.HW``, ``.CoInstallers``, ``.Services`` and ``.Wdf``, and returns the values as
``HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\…`` registry items for the package.

Sources (facts only): INF AddService / AddReg / DelReg directive pages and "Specifying WDF
directives in INF files" (learn.microsoft.com), setupapi.h (FLG_ADDREG_*, SPSVCINST_*), the
Windows 10 Mobile "Update a KMDF device driver" walk-through (service values, indirect
DisplayName, ``\\SystemRoot\\System32\\drivers`` ImagePath, ``Owners``), and Wine 8's setupapi run
on our INFs (tests/package/test_infinstall_wine.py) for AddReg value encodings.

Decisions and inferences (the next step, driver store + DriverDatabase, builds on them):

* ``HKR`` in a service-install or event-log section is that service's / event source's key.
* ``HKR`` in ``DDInstall`` and ``.CoInstallers`` is the device's software key
  (``Control\\Class\\{guid}\\NNNN``), in ``.HW`` the hardware key (``Enum\\…\\Device Parameters``).
  Neither exists until PnP finds the device, and pkggen does not create them: it keeps these
  values in ``DriverDatabase\\DriverPackages\\<pkg>\\Configurations\\<section>\\Driver`` / ``Device``
  (drivers.md §3.3, §5). They are returned in :attr:`InfRegistry.deferred`, which
  :mod:`.driverstore` writes there.
* Absolute roots (``HKLM``, ``HKCR``) in any section are written as they are. [I: Windows
  applies DDInstall ones at device install; whether pkggen's reflection writes them is unknown.]
* ``ImagePath`` of a kernel driver: ``\\SystemRoot\\<dir>\\x.sys``; of a Win32 service
  ``%SystemRoot%\\<dir>\\x.exe`` (drivers.md §4.1); DIRID 13 (run from driver store) points into
  the package's ``DriverStore\\FileRepository`` folder when the caller gives it.
* ``DisplayName``/``Description`` that are one ``%token%`` become ``@<inf>,%token%;<text>``
  (Windows' indirect form; for Description [I]); ``Owners`` = the INF's own name (Inbox import).
* No ``Tag`` (pkggen drops GroupOrderList), no ``Services\\WUDFRd`` (OS-owned, pkggen drops it),
  no ``Enum`` / ``Control\\Class\\{guid}\\NNNN``.
* UMDF (``UmdfService``): the driver's Parameters key
  ``HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\WUDF\\Services\\<svc>`` is created (documented:
  "Introduction to registry keys for drivers"), and ``…\\WUDF`` gets pkggen's fixed SDDL
  (:data:`WUDF_SDDL`, drivers.md §4.3 [K]). The values Windows writes for ``UmdfService``,
  ``UmdfServiceOrder``, ``UmdfLibraryVersion`` … live below the device's hardware key in
  ``Device Parameters\\WUDF`` ("Using the Registry in UMDF 1.x Drivers": drivers cannot open
  ``\\Device Parameters\\WDF`` or ``\\Device Parameters\\WUDF``), which PnP creates at device install;
  their names, types and data are not documented, no exported registry of an installed UMDF device
  was found (learn.microsoft.com, public code and pages searched 2026-12-05) and drivers.md gives
  no DriverDatabase ``Configurations`` place for them: nothing is invented, one warning says so.
* ``Include=``/``Needs=`` (:mod:`.infinclude`): needed sections run before the including section's
  own directives [I], each with its own INF's strings and DIRIDs; ``Owners`` stays the published INF.
* DIRIDs 10/11/12 inside AddReg strings expand to ``C:\\Windows[\\System32[\\drivers]]`` [I].
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import ConfigError, FFUError, FormatError
from ..formats.regvalue import RegData
from .inf import stamped
from .infinclude import Needed
from .inflex import WS
from .infmodel import DriverImport, Inf, InfLine, InfSection

__all__ = ["SERVICES", "WUDF", "WUDF_SDDL", "InfRegistry", "InfValue", "install_registry"]

SERVICES = r"HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Services"
WUDF = r"HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Windows NT\CurrentVersion\WUDF"
#: pkggen's fixed descriptor for the WUDF key (drivers.md §4.3 [K])
WUDF_SDDL = "D:(A;CIOI;KA;;;SY)(A;CIOI;KR;;;LS)(A;CIOI;KR;;;NS)(A;CIOI;KA;;;BA)(A;CIOI;KR;;;BU)"
_HKLM = "HKEY_LOCAL_MACHINE"
_ROOTS = {"hklm": _HKLM, "hkcr": _HKLM + r"\SOFTWARE\Classes"}
_CCS = re.compile(r"^SYSTEM\\CurrentControlSet(?=\\|$)", re.IGNORECASE)
_BINARY_DIRID = re.compile(r"^%(-?\d+)%\\(.+)$")
_NUMBER = re.compile(r"-?(?:0[xX][0-9a-fA-F]{1,8}|[0-9]{1,10})")
_HEXBYTE = re.compile(r"[0-9a-fA-F]{1,2}")
_BAD_PATH = re.compile(r'[<>:"/|?*\x00-\x1f]')
_DIRID_DIRS = {10: "", 11: "System32", 12: r"System32\drivers", 13: r"System32\drivers"}
_DIRID_TEXT = {10: r"C:\Windows", 11: r"C:\Windows\System32", 12: r"C:\Windows\System32\drivers"}
_EVENT_LOGS = ("Application", "System", "Security")
# FLG_ADDREG_* (setupapi.h)
_BIN, _NOCLOBBER, _DELVAL, _APPEND, _KEYONLY = 0x1, 0x2, 0x4, 0x8, 0x10
_OVERWRITEONLY, _KEYONLY_COMMON, _32BIT = 0x20, 0x2000, 0x4000
_TYPE_MASK = 0xFFFF0001
_FLAG_TYPES = {0x0: 1, 0x10000: 7, 0x20000: 2, 0x1: 3, 0x10001: 4, 0x20001: 0}
_SERVICE_KEYS = {
    "displayname", "description", "servicetype", "starttype", "errorcontrol", "servicebinary",
    "startname", "addreg", "delreg", "loadordergroup", "dependencies", "servicesidtype",
    "delayedautostart", "bootflags",
}  # fmt: skip
_UNSUPPORTED = {"security": "the service's security descriptor", "addtrigger": "the service's triggers"}


@dataclass(frozen=True, slots=True)
class InfValue:
    key: str  # full key name, HKEY_LOCAL_MACHINE\...
    name: str  # '' = default value
    data: RegData
    line: int  # INF line that set it


@dataclass(slots=True)
class InfRegistry:
    values: list[InfValue] = field(default_factory=list)  # what the package carries, sorted
    keys: list[tuple[str, int]] = field(default_factory=list)  # keys created without values
    services: list[str] = field(default_factory=list)  # services installed, INF order
    #: ('Driver'|'Device', install section, subkey, name, data, line): HKR values of device keys,
    #: which pkggen keeps in DriverDatabase Configurations (next step), never in Enum/Class.
    deferred: list[tuple[str, str, str, str, RegData, int]] = field(default_factory=list)
    umdf: list[tuple[str, str, int]] = field(default_factory=list)  # (service, section, line)
    warnings: list[str] = field(default_factory=list)
    assoc: dict[str, str] = field(default_factory=dict)  # install section -> SPSVCINST_ASSOCSERVICE service
    key_security: dict[str, str] = field(default_factory=dict)  # key -> SDDL the package gives it


def install_registry(
    inf: Inf,
    imported: DriverImport,
    inf_name: str,
    store_folder: str | None = None,
    needed: list[Needed] | tuple[Needed, ...] = (),
) -> InfRegistry:
    """The registry items installing ``inf`` (already walked by import_driver) writes;
    ``store_folder``: its DriverStore\\FileRepository folder, where DIRID 13 points; ``needed``:
    its Needs= sections (:func:`.infinclude.resolve_needs`)."""
    return _Installer(inf, imported, inf_name, store_folder, needed).run()


def _sz(text: str) -> bytes:
    return (text + "\0").encode("utf-16-le")


def _multi(items: list[str]) -> bytes:
    return b"".join(_sz(s) for s in items) + b"\0\0"


def _split_multi(data: bytes) -> list[str]:
    text = data.decode("utf-16-le", errors="replace")
    return [s for s in text.split("\0") if s]


class _Installer:
    def __init__(
        self,
        inf: Inf,
        imported: DriverImport,
        inf_name: str,
        store_folder: str | None = None,
        needed: list[Needed] | tuple[Needed, ...] = (),
    ):
        self.inf = stamped(inf, imported.arch)
        self.needed = needed
        self.owner = inf_name  # Owners: the published INF, also for services of included INFs
        self.root = ""  # the install section being applied
        self.imp = imported
        self.arch = imported.arch
        self.inf_name = inf_name
        self.dirs = dict(_DIRID_DIRS)
        if store_folder:
            self.dirs[13] = rf"System32\DriverStore\FileRepository\{store_folder}"
        self.out = InfRegistry()
        # (key lower, name lower) -> InfValue, in the order setupapi would apply them
        self.values: dict[tuple[str, str], InfValue] = {}
        self.keys: dict[str, tuple[str, int]] = {}
        self.service_lines: dict[str, int] = {}

    def err(self, message: str, line: int | None) -> ConfigError:
        return ConfigError(message, self.inf.path, line)

    def warn(self, message: str, line: int | None) -> None:
        self.out.warnings.append(str(FFUError(f"warning: {message}", self.inf.path, line)))

    def find(self, name: str) -> InfSection | None:
        return self.inf.sections.get(name.lower())

    # -- walk -------------------------------------------------------------------------------
    def run(self) -> InfRegistry:
        self.check_header()
        for root in self.imp.install_sections:
            self.root = root
            self.apply_needs(root)
            self.registry_section(root, "Driver", root)
            for suffix, kind in ((".HW", "Device"), (".CoInstallers", "Driver")):
                sec = self.find(root + suffix)
                if sec is not None:
                    self.registry_section(root + suffix, kind, root)
            services = self.find(root + ".Services")
            if services is not None:
                self.services_section(services)
            wdf = self.find(root + ".Wdf")
            if wdf is not None:
                self.wdf(root + ".Wdf", wdf)
        out = self.out
        out.values = sorted(self.values.values(), key=lambda v: (v.key.lower(), v.name.lower()))
        with_values = {v.key.lower() for v in out.values}
        out.keys = sorted(
            (k for lk, k in self.keys.items() if lk not in with_values), key=lambda k: k[0].lower()
        )
        return out

    def services_section(self, services: InfSection) -> None:
        for ln in services.lines:
            key = (ln.key or "").lower()
            if key == "addservice":
                self.add_service(ln)
            elif key == "delservice":
                self.warn("DelService has nothing to delete in a new image; ignored", ln.line)

    def apply_needs(self, root: str) -> None:
        """Needs= sections of ``root`` and its decorations, each run by an installer on its own INF
        sharing this one's results, as if part of the including section."""
        for need in self.needed:
            if need.root != root or need.inf is None:
                continue
            sub = self
            if need.inf_name:
                sub = _Installer(need.inf, self.imp, need.inf_name, None)
                sub.dirs, sub.out, sub.values, sub.keys = self.dirs, self.out, self.values, self.keys
                sub.service_lines, sub.owner, sub.root = self.service_lines, self.owner, root
            sec = sub.find(need.section)
            if sec is None:
                continue
            if need.decoration == ".Services":
                sub.services_section(sec)
            elif need.decoration == ".Wdf":
                sub.wdf(need.section, sec)
            else:
                sub.registry_section(need.section, "Device" if need.decoration == ".HW" else "Driver", root)

    def check_header(self) -> None:
        if self.inf.encoding.endswith("-nobom"):
            raise FormatError(
                f"INF is {self.inf.encoding[:9].upper()} without a byte-order mark, which Windows "
                "reads as ANSI; save it as UTF-16 LE with a BOM (Unicode) or as UTF-8",
                self.inf.path,
                1,
            )
        version = self.find("Version")
        if version is None:
            raise FormatError(
                "INF has no [Version] section, so Windows rejects it; add [Version] with "
                'Signature="$WINDOWS NT$", Class, ClassGuid, Provider, DriverVer and CatalogFile',
                self.inf.path,
                1,
            )
        sig = version.get("Signature")
        if sig is None or not sig.values or sig.values[0].lower() not in ("$windows nt$", "$chicago$"):
            raise FormatError(
                '[Version] has no Signature="$WINDOWS NT$"; add it (Windows rejects INFs without one)',
                self.inf.path,
                sig.line if sig is not None else version.line,
            )

    # -- AddReg / DelReg ----------------------------------------------------------------------
    def registry_section(self, name: str, hkr_kind: str, install: str, hkr: str | None = None) -> None:
        """Apply a section's DelReg then AddReg lists (setupapi's order); HKR = ``hkr`` or deferred."""
        sec = self.find(name)
        if sec is None:
            return
        for directive in ("DelReg", "AddReg"):
            for ln in sec.get_all(directive):
                for target in (v for v in ln.values if v):
                    lst = self.find(target)
                    if lst is None:
                        raise self.err(
                            f"{directive} in [{name}] names [{target}], which does not exist; add it or fix the name",
                            ln.line,
                        )
                    for entry in lst.lines:
                        if directive == "AddReg":
                            self.add_reg(target, entry, hkr, hkr_kind, install)
                        else:
                            self.del_reg(target, entry, hkr)
        for ln in sec.get_all("BitReg"):
            raise self.err(
                f"BitReg in [{name}] is not supported by ffuforge yet; write the value with AddReg", ln.line
            )

    def resolve_key(self, lst: str, ln: InfLine, hkr: str | None) -> tuple[str | None, str]:
        """(full key or None when HKR is a not-yet-existing device key, subkey)."""
        if ln.key is not None:
            raise self.err(
                f"[{lst}] line has '='; registry lines are 'root,subkey,name,flags,value'", ln.line
            )
        root = ln.values[0].strip(WS) if ln.values else ""
        sub = ln.values[1].strip(WS) if len(ln.values) > 1 else ""
        if sub.startswith("\\") or ".." in sub.split("\\") or any(ord(c) < 32 for c in sub):
            raise self.err(f"[{lst}] subkey {sub!r} must be a relative key path; fix the line", ln.line)
        sub = "\\".join(p for p in sub.split("\\") if p)
        r = root.lower()
        if r == "hkr":
            return (f"{hkr}\\{sub}" if sub else hkr) if hkr is not None else None, sub
        if r in _ROOTS:
            if not sub:
                raise self.err(f"[{lst}] writes to the root of {root}; name a subkey", ln.line)
            sub = _CCS.sub(r"SYSTEM\\ControlSet001", sub)
            return f"{_ROOTS[r]}\\{sub}", sub
        raise self.err(
            f"[{lst}] uses registry root {root!r}; a driver package can write HKR, HKLM or HKCR "
            "(HKCU/HKU do not exist when the image is built)",
            ln.line,
        )

    def flags(self, ln: InfLine, index: int, what: str) -> int:
        text = ln.values[index].strip(WS) if len(ln.values) > index else ""
        if not text:
            return 0
        if not _NUMBER.fullmatch(text):
            raise self.err(f"{what} flags {text!r} are not a number; write e.g. 0x00010001", ln.line)
        return int(text, 16) & 0xFFFFFFFF if "x" in text.lower() else int(text) & 0xFFFFFFFF

    def add_reg(self, lst: str, ln: InfLine, hkr: str | None, kind: str, install: str) -> None:
        key, sub = self.resolve_key(lst, ln, hkr)
        name = ln.values[2] if len(ln.values) > 2 else ""
        flags = self.flags(ln, 3, "AddReg")
        if flags & _32BIT and self.arch in ("amd64", "arm64"):
            raise self.err(
                "FLG_ADDREG_32BITKEY (0x4000) is not supported yet; write the WOW6432Node path", ln.line
            )
        if flags & (_KEYONLY | _KEYONLY_COMMON):
            if key is not None:
                self.keys.setdefault(key.lower(), (key, ln.line))
            return
        # 'root,subkey' alone sets an empty default value: setupapi (Wine's, checked in the tests)
        # only leaves a bare key with FLG_ADDREG_KEYONLY.
        if flags & _DELVAL:
            if key is not None:
                self.values.pop((key.lower(), name.lower()), None)
            return
        data = self.reg_data(lst, ln, flags)
        if key is None:
            self.out.deferred.append((kind, install, sub, name, data, ln.line))
            return
        k = (key.lower(), name.lower())
        old = self.values.get(k)
        if flags & _NOCLOBBER and old is not None:
            return
        if flags & _OVERWRITEONLY and old is None:
            return
        if flags & _APPEND and data.type == 7 and old is not None and old.data.type == 7:
            items = _split_multi(old.data.data)
            items += [s for s in _split_multi(data.data) if s.lower() not in {i.lower() for i in items}]
            data = RegData(7, _multi(items))
        self.values[k] = InfValue(key, name, data, ln.line)

    def reg_data(self, lst: str, ln: InfLine, flags: int) -> RegData:
        masked = flags & _TYPE_MASK
        reg_type = _FLAG_TYPES.get(masked, (flags >> 16) if flags & _BIN else None)
        if reg_type is None:
            raise self.err(
                f"AddReg flags 0x{flags:08X} give no registry type; use a FLG_ADDREG_TYPE_* value", ln.line
            )
        fields = list(ln.values[4:])
        if reg_type in (1, 2):
            return RegData(reg_type, _sz(self.text(lst, ln, 4) if fields else ""))
        if reg_type == 7:
            items = [self.text(lst, ln, 4 + i) for i in range(len(fields))]
            if any(not s for s in items[:-1]) or (len(items) > 1 and not items[-1]):
                raise self.err(
                    f"[{lst}] REG_MULTI_SZ has an empty item, which ends the list on Windows; remove it",
                    ln.line,
                )
            return RegData(7, _multi([s for s in items if s]))
        if reg_type == 4 and len(fields) == 1 and fields[0].strip(WS):
            text = fields[0].strip(WS)
            if not _NUMBER.fullmatch(text):
                raise self.err(f"[{lst}] REG_DWORD value {text!r} is not a number", ln.line)
            return RegData(
                4, (int(text, 0 if "x" in text.lower() else 10) & 0xFFFFFFFF).to_bytes(4, "little")
            )
        raw = bytearray()
        for f in fields:
            t = f.strip(WS)
            if not t:
                continue
            if not _HEXBYTE.fullmatch(t):
                raise self.err(f"[{lst}] binary data item {t!r} is not a hex byte like 0f", ln.line)
            raw.append(int(t, 16))
        if reg_type == 4 and len(raw) != 4:
            raise self.err(
                f"[{lst}] REG_DWORD given as bytes needs exactly 4 of them, not {len(raw)}", ln.line
            )
        return RegData(reg_type, bytes(raw))

    def text(self, lst: str, ln: InfLine, index: int) -> str:
        value = ln.values[index] if index < len(ln.values) else ""
        for i, tok in ln.unresolved:
            if i != index:
                continue
            if tok.isdigit() and int(tok) in _DIRID_TEXT:
                value = value.replace(f"%{tok}%", _DIRID_TEXT[int(tok)])
            else:
                raise self.err(
                    f"[{lst}] value uses %{tok}%, which [Strings] does not define; define it", ln.line
                )
        return value

    def del_reg(self, lst: str, ln: InfLine, hkr: str | None) -> None:
        key, _ = self.resolve_key(lst, ln, hkr)
        if key is None:
            return
        if len(ln.values) > 2:
            self.values.pop((key.lower(), ln.values[2].lower()), None)
            return
        prefix = key.lower()
        for k in [k for k in self.values if k[0] == prefix or k[0].startswith(prefix + "\\")]:
            del self.values[k]
        for k in [k for k in self.keys if k == prefix or k.startswith(prefix + "\\")]:
            del self.keys[k]

    # -- AddService ---------------------------------------------------------------------------
    def number(
        self,
        ln: InfLine | None,
        what: str,
        section: str,
        allowed: range | tuple[int, ...],
        at: int | None = None,
    ) -> int:
        if ln is None or not ln.values or not ln.values[0].strip(WS):
            raise self.err(f"[{section}] has no {what}, which AddService requires; add it", at)
        text = ln.values[0].strip(WS)
        if not _NUMBER.fullmatch(text):
            raise self.err(f"{what} {text!r} in [{section}] is not a number", ln.line)
        value = int(text, 16) if "x" in text.lower() else int(text)
        if value not in allowed:
            raise self.err(f"{what} {text} in [{section}] is not valid; use one of {list(allowed)}", ln.line)
        return value

    def add_service(self, ln: InfLine) -> None:
        name = ln.values[0].strip(WS) if ln.values else ""
        if not name:
            return  # null service: 'AddService = ,0x2'
        if len(ln.values) < 3 or not ln.values[2].strip(WS):
            raise self.err(
                f"AddService {name} names no service-install section; write 'Name,flags,Section'", ln.line
            )
        if _BAD_PATH.search(name) or "\\" in name:
            raise self.err(f"service name {name!r} is not a valid registry key name", ln.line)
        flags = self.flags(ln, 1, "AddService")
        if flags & 0x2 and self.root:
            self.out.assoc.setdefault(self.root, name)
        if name.lower() == "wudfrd":
            self.warn("Services\\WUDFRd belongs to the OS (pkggen drops it); not written", ln.line)
            return
        inst_name = ln.values[2].strip(WS)
        inst = self.find(inst_name)
        if inst is None:
            raise self.err(f"AddService {name} names [{inst_name}], which does not exist; add it", ln.line)
        key = f"{SERVICES}\\{name}"
        prev = self.service_lines.get(name.lower())
        if prev is None:
            self.service_lines[name.lower()] = ln.line
            self.out.services.append(name)
        for sln in inst.lines:
            k = (sln.key or "").lower()
            if k in _UNSUPPORTED:
                raise self.err(
                    f"{sln.key} in [{inst_name}] is not supported by ffuforge yet; the image would lack "
                    f"{_UNSUPPORTED[k]}",
                    sln.line,
                )
            if k not in _SERVICE_KEYS:
                self.warn(
                    f"[{inst_name}] has {sln.key or 'a line'} that AddService does not know; ignored",
                    sln.line,
                )

        def put(value: str, data: RegData, line: int) -> None:
            self.values[(key.lower(), value.lower())] = InfValue(key, value, data, line)

        def dword(value: str, n: int, line: int) -> None:
            put(value, RegData(4, n.to_bytes(4, "little")), line)

        types = (1, 2, 4, 8, 0x10, 0x20, 0x110, 0x120)
        stype = self.number(inst.get("ServiceType"), "ServiceType", inst_name, types, inst.line)
        start = self.number(inst.get("StartType"), "StartType", inst_name, range(5), inst.line)
        errc = self.number(inst.get("ErrorControl"), "ErrorControl", inst_name, range(4), inst.line)
        kernel = stype in (1, 2, 4, 8)
        bl = inst.get("ServiceBinary")
        if start in (0, 1) and not kernel:
            raise self.err(
                f"StartType {start} (boot/system) in [{inst_name}] is only for kernel drivers (ServiceType 1 or 2)",
                inst.get("StartType").line if inst.get("StartType") else ln.line,
            )
        dword("Type", stype, ln.line)
        dword("Start", start, ln.line)
        dword("ErrorControl", errc, ln.line)
        put(
            "ImagePath",
            RegData(2, _sz(self.image_path(inst_name, bl, kernel, inst.line))),
            bl.line if bl else ln.line,
        )
        for directive, value in (("DisplayName", "DisplayName"), ("Description", "Description")):
            d = inst.get(directive)
            if d is not None and d.values and d.values[0]:
                token = next((t for i, t in d.refs if i == 0), None)
                text = d.values[0] if token is None else f"@{self.inf_name},%{token}%;{d.values[0]}"
                put(value, RegData(1, _sz(text)), d.line)
        for directive, value in (("StartName", "ObjectName"), ("LoadOrderGroup", "Group")):
            d = inst.get(directive)
            if d is not None and d.values and d.values[0].strip(WS):
                put(value, RegData(1, _sz(d.values[0].strip(WS))), d.line)
        deps = inst.get("Dependencies")
        if deps is not None:
            items = [v.strip(WS) for v in deps.values if v.strip(WS)]
            groups = [v[1:].strip(WS) for v in items if v.startswith("+")]
            svcs = [v for v in items if not v.startswith("+")]
            if svcs:
                put("DependOnService", RegData(7, _multi(svcs)), deps.line)
            if groups:
                put("DependOnGroup", RegData(7, _multi(groups)), deps.line)
        for directive, value in (("ServiceSidType", "ServiceSidType"), ("BootFlags", "BootFlags")):
            d = inst.get(directive)
            if d is not None:
                dword(value, self.number(d, directive, inst_name, range(0x10000)), d.line)
        d = inst.get("DelayedAutoStart")
        if d is not None and self.number(d, "DelayedAutoStart", inst_name, (0, 1)):
            if start != 2:
                raise self.err(f"DelayedAutoStart in [{inst_name}] needs StartType 2 (auto)", d.line)
            dword("DelayedAutostart", 1, d.line)
        put("Owners", RegData(7, _multi([self.owner])), ln.line)
        self.registry_section(inst_name, "Service", inst_name, hkr=key)
        if len(ln.values) > 3 and ln.values[3].strip(WS):
            self.event_log(name, ln)

    def image_path(self, section: str, ln: InfLine | None, kernel: bool, at: int | None) -> str:
        if ln is None or not ln.values or not ln.values[0].strip(WS):
            raise self.err(f"[{section}] has no ServiceBinary, which AddService requires; add it", at)
        text = ln.values[0].strip(WS)
        m = _BINARY_DIRID.fullmatch(text)
        dirid = int(m.group(1)) if m else None
        if m is None or dirid not in self.dirs:
            raise self.err(
                f"ServiceBinary {text!r} in [{section}] is not below a DIRID a package can install to; "
                r"write %12%\x.sys (System32\drivers), %11%\ (System32), %10%\ (Windows) or %13%\ (driver store)",
                ln.line,
            )
        parts = [p.strip(WS) for p in m.group(2).split("\\") if p.strip(WS)]
        if not parts or any(p in (".", "..") or _BAD_PATH.search(p) for p in parts):
            raise self.err(
                f"ServiceBinary {text!r} in [{section}] is not a plain relative path; fix it", ln.line
            )
        rel = "\\".join(([self.dirs[dirid]] if self.dirs[dirid] else []) + parts)
        return ("\\SystemRoot\\" if kernel else "%SystemRoot%\\") + rel

    def event_log(self, service: str, ln: InfLine) -> None:
        section = ln.values[3].strip(WS)
        log = ln.values[4].strip(WS) if len(ln.values) > 4 and ln.values[4].strip(WS) else "System"
        match = [x for x in _EVENT_LOGS if x.lower() == log.lower()]
        if not match:
            raise self.err(
                f"event log type {log!r} for {service}; use System, Application or Security", ln.line
            )
        source = ln.values[5].strip(WS) if len(ln.values) > 5 and ln.values[5].strip(WS) else service
        if self.find(section) is None:
            raise self.err(
                f"AddService {service} names event-log section [{section}], which does not exist", ln.line
            )
        key = f"{SERVICES}\\EventLog\\{match[0]}\\{source}"
        self.keys.setdefault(key.lower(), (key, ln.line))
        self.registry_section(section, "EventLog", section, hkr=key)

    # -- WDF ----------------------------------------------------------------------------------
    def wdf(self, name: str, sec: InfSection) -> None:
        for ln in sec.lines:
            k = (ln.key or "").lower()
            if k not in ("kmdfservice", "umdfservice"):
                continue
            svc = ln.values[0].strip(WS) if ln.values else ""
            target = ln.values[1].strip(WS) if len(ln.values) > 1 else ""
            lib = self.find(target) if target else None
            if not svc or lib is None:
                raise self.err(
                    f"{ln.key} in [{name}] needs 'service, section' naming an existing section", ln.line
                )
            if k == "umdfservice":
                if lib.get("UmdfLibraryVersion") is None:
                    raise self.err(f"[{target}] has no UmdfLibraryVersion; add it", lib.line)
                self.image_path(target, lib.get("ServiceBinary"), True, lib.line)  # validates the DIRID
                self.out.umdf.append((svc, target, ln.line))
                key = f"{WUDF}\\Services\\{svc}"
                self.keys.setdefault(key.lower(), (key, ln.line))
                self.keys.setdefault(WUDF.lower(), (WUDF, ln.line))
                self.out.key_security[WUDF] = WUDF_SDDL
                self.warn(
                    f"UMDF service {svc}: its Parameters key WUDF\\Services\\{svc} is written; the "
                    "device-key Umdf* values Windows writes at device install are not public, none written",
                    ln.line,
                )
                continue
            if svc.lower() not in self.service_lines:
                raise self.err(f"KmdfService {svc} is not installed by an AddService of this INF", ln.line)
            ver = lib.get("KmdfLibraryVersion")
            if ver is None or not ver.values or not re.fullmatch(r"\d+\.\d+", ver.values[0].strip(WS)):
                raise self.err(f"[{target}] needs KmdfLibraryVersion = <major>.<minor> (e.g. 1.15)", lib.line)
            key = f"{SERVICES}\\{svc}\\Parameters\\Wdf"
            data = RegData(1, _sz(ver.values[0].strip(WS)))
            self.values[(key.lower(), "kmdflibraryversion")] = InfValue(
                key, "KmdfLibraryVersion", data, ver.line
            )
