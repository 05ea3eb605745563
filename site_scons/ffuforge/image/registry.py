"""Registry values of component manifests, read as CSI (the servicing stack) applies them.

What Windows does, and where each fact comes from:

* ``$(runtime.*)`` in a string value becomes the environment-variable form CSI writes, e.g.
  ``$(runtime.system32)`` → ``%SystemRoot%\\System32`` (table of SafeBreach-Labs/WindowsDowndate
  ``manifest_utils.py`` ``PACKAGE_VARIABLES``, read from real component-store manifests). Ids
  that table lacks are derived from our device table: below ``\\Windows`` → ``%SystemRoot%``,
  else ``%SystemDrive%`` (**inferred**). Expanded in REG_SZ, REG_EXPAND_SZ and REG_MULTI_SZ alike;
  that CSI also expands them in REG_SZ (where Windows never expands ``%…%`` again) is
  **inferred** — use REG_EXPAND_SZ for paths.
* ``$(build.*)`` are resolved when a manifest is compiled (pkggen keeps them symbolic,
  PkgBldr ``Macros_WmToCsi.xml``); we give ``build.arch`` (the package's architecture; a WOW
  package's guest one — **inferred**), ``build.version`` and ``build.WindowsPublicKeyToken``
  (``31bf3856ad364e35``, PkgBldr ``WmToCsi/Service.cs``) values; build-host paths
  (``build.nttree`` …) and any other id are refused.
* REG_MULTI_SZ values are written ``"a;b","c"``; ``operationHint="append"`` merges the items
  into the value other packages set instead of colliding — existing items kept in order, new
  ones added once, compared case-insensitively, as pkggen's hive diff does for drivers
  (IUT ``PkgGenCommon/InfFileConverter.cs`` ``RemoveMultiSZDuplicates``).
* Services (``serviceData``): the values the SCM reads (``Start``, ``Type``, ``ErrorControl``,
  ``ImagePath`` …); ``DelayedAutostart`` = 1 for ``delayedAuto``; ``PreshutdownTimeout`` =
  20000 ms for Win32 services and ``FailureActions`` in pkggen's layout (IUT
  ``PkgGenCommon/BaseComponents/Internal/ServicePkgObject.cs``, ``FailureActionsPkgObject.cs``:
  reset period (INFINITE = 0xFFFFFFFF), a 1/0 "reboot message present" and "command present"
  where the structure has pointers, the action count, 20 = the 32-bit header size, then
  (type, delay) pairs); ``FailureActionsOnNonCrashFailures`` from ``failureActionsFlag``
  (SERVICE_FAILURE_ACTIONS_FLAG); triggers as ``TriggerInfo\\<n>`` keys with ``Type``,
  ``Action``, ``GUID`` (16 bytes, GUID binary order) and ``Data<i>``/``DataType<i>`` — the
  layout trigger readers of real SYSTEM hives use (the RegRipper-style ``serv-triggers``
  script); codes from winsvc.h / [MS-SCMR] 2.2.52–2.2.53. String trigger data is stored as
  REG_MULTI_SZ, level as one byte, keywords as a little-endian QWORD (**inferred** from the
  structures; not compared with a hive Windows wrote).
"""

from __future__ import annotations

import re
import uuid

from lxml import etree

from ..errors import FFUError, FormatError
from ..formats import hive, regvalue
from ..package import macros
from ..package.projectmodel import TRIGGER_ACTIONS, TRIGGER_DATA, TRIGGER_SUBTYPES, TRIGGER_TYPES
from ..util import xmlsafe

ASM = "{urn:schemas-microsoft-com:asm.v3}"
SERVICES_KEY = r"HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Services"
WINDOWS_PKT = "31bf3856ad364e35"

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
PRESHUTDOWN_TIMEOUT_MS = 20000

# What CSI writes for $(runtime.*) (WindowsDowndate's table), keys lower-case.
_CSI_RUNTIME = {
    "runtime.programfilesx86": "%ProgramFiles(x86)%",
    "runtime.help": r"%SystemRoot%\Help",
    "runtime.bootdrive": "%SystemDrive%",
    "runtime.systemroot": "%SystemRoot%",
    "runtime.inf": r"%SystemRoot%\INF",
    "runtime.commonfiles": "%CommonProgramFiles%",
    "runtime.windows": "%SystemRoot%",
    "runtime.public": "%Public%",
    "runtime.system": r"%SystemRoot%\System",
    "runtime.programdata": "%ProgramData%",
    "runtime.wbem": r"%SystemRoot%\System32\wbem",
    "runtime.startmenu": r"%ProgramData%\Microsoft\Windows\Start Menu",
    "runtime.fonts": r"%SystemRoot%\Fonts",
    "runtime.windir": "%SystemRoot%",
    "runtime.system32": r"%SystemRoot%\System32",
    "runtime.programfiles": "%ProgramFiles%",
    "runtime.drivers": r"%SystemRoot%\System32\Drivers",
}
_BUILD_HOST = {"build.nttree", "build.locsrc", "build.wowbintree", "build.nttree.wmf_win8"}
_VAR = re.compile(r"\$\(([^()$]*)\)")


def runtime_text(macro_id: str) -> str | None:
    """The environment-variable form CSI writes for a ``$(runtime.*)`` id, or None."""
    low = macro_id.lower()
    if low in _CSI_RUNTIME:
        return _CSI_RUNTIME[low]
    canon = macros.canonical_runtime(macro_id)
    if canon is None:
        return None
    path = macros.RUNTIME[canon]
    if path.lower() == "\\windows" or path.lower().startswith("\\windows\\"):
        return "%SystemRoot%" + path[len("\\Windows") :]
    return "%SystemDrive%" + path


# Where the environment variables of the CSI forms above point on an IoT Core device (Windows'
# defaults; the device runs from one volume). Only used for ids pkggen's table lacks.
_ENV_DEVICE = {
    "%systemroot%": r"\Windows",
    "%systemdrive%": "",
    "%programfiles%": r"\Program Files",
    "%programfiles(x86)%": r"\Program Files (x86)",
    "%programdata%": r"\ProgramData",
    "%public%": r"\Users\Public",
    "%commonprogramfiles%": r"\Program Files\Common Files",
}


def runtime_device_path(macro_id: str) -> str | None:
    """Where a ``$(runtime.*)`` destination lies below the partition root (``\\Windows\\System32``),
    or None. pkggen's table (:data:`ffuforge.package.macros.RUNTIME`) first, so a Microsoft manifest's
    files land where our own packages' do; an id only CSI knows (``runtime.public``,
    ``runtime.startMenu``) from the CSI table above with its variable replaced by the device default.
    One table for both uses: a path CSI writes into a value names the file installed there."""
    canon = macros.canonical_runtime(macro_id)
    if canon is not None:
        return macros.RUNTIME[canon]
    text = _CSI_RUNTIME.get(macro_id.lower())
    if text is None:
        return None
    var, sep, rest = text.partition("%")[2].partition("%")
    base = _ENV_DEVICE.get(f"%{var.lower()}%") if sep else None
    return None if base is None else base + rest


def build_values(arch: str, version: str) -> dict[str, str]:
    return {
        "build.arch": arch.rpartition(".")[2],
        "build.version": version,
        "build.windowspublickeytoken": WINDOWS_PKT,
    }


def csi_expand(text: str, build: dict[str, str], what: str, where: str) -> str:
    """Expand ``$(runtime.*)`` and ``$(build.*)`` in a value as CSI would; other text stays."""
    if "$(" not in text:
        return text

    def repl(m: re.Match) -> str:
        low = m.group(1).lower()
        if low.startswith("runtime.") or low.startswith("data."):
            value = runtime_text(low)
            if value is None:
                raise FormatError(f"{what}: unknown variable $({m.group(1)}); CSI does not define it", where)
            return value
        if low.startswith("build."):
            if low in _BUILD_HOST:
                raise FormatError(
                    f"{what}: $({m.group(1)}) is a path on the build host and has no meaning on the device",
                    where,
                )
            if low not in build:
                raise FormatError(
                    f"{what}: $({m.group(1)}) has no value at install time; use $(build.arch), "
                    "$(build.version) or $(build.WindowsPublicKeyToken), or write the text itself",
                    where,
                )
            return build[low]
        return m.group(0)

    return _VAR.sub(repl, text)


def canonical_key(full_key: str) -> str:
    """A case-folded name under which two spellings of one key meet (``CurrentControlSet`` is
    ``ControlSet001``); a key no hive takes keeps its own (refused when hives are written)."""
    try:
        name, inner = hive.hive_for_key(full_key)
    except FFUError:
        return full_key.lower()
    root = r"HKEY_USERS\.DEFAULT" if name == "DEFAULT" else f"HKEY_LOCAL_MACHINE\\{name}"
    return (f"{root}\\{inner}" if inner else root).lower()


def manifest_value(v: etree._Element, build: dict[str, str], where: str) -> tuple[regvalue.RegData, bool]:
    """One ``registryValue``: its data and whether it appends (``operationHint="append"``)."""
    type_name = v.get("valueType", "REG_SZ").upper()
    what = f"registry value {v.get('name') or '(default)'!r}"
    text = v.get("value", "")
    hint = v.get("operationHint")
    if hint is not None and hint.lower() != "append":
        raise FormatError(f"{what}: operationHint={hint!r} is not supported; only 'append' is", where)
    append = hint is not None
    if append and type_name != "REG_MULTI_SZ":
        raise FormatError(
            f"{what}: operationHint='append' applies to REG_MULTI_SZ only, not {type_name}", where
        )
    try:
        if type_name == "REG_MULTI_SZ":
            items = regvalue.quoted_items(text) if text.strip() else []
            if items is None:
                raise FormatError(f'{what}: REG_MULTI_SZ text {text[:40]!r} is not "item","item" form', where)
            items = [csi_expand(i, build, what, where) for i in items]
            return regvalue.RegData(7, regvalue.multi_data(items)), append
        if type_name in regvalue.TYPES:
            code = regvalue.TYPES[type_name]
            if code in (1, 2):
                return regvalue.RegData(
                    code, (csi_expand(text, build, what, where) + "\0").encode("utf-16-le")
                ), False
            if code == 4:
                return regvalue.decode("REG_DWORD", text, legacy=False), False
            if code == 11:
                return regvalue.decode("REG_QWORD", text, legacy=False), False
            return regvalue.RegData(code, _hex(text, what, type_name, where)), False
    except FFUError as exc:
        raise FormatError(exc.message, where) from None
    m = re.match(r"^REG_TYPE_(\d{1,10})$", type_name)
    if m and int(m.group(1)) <= 0xFFFFFFFF:
        return regvalue.RegData(int(m.group(1)), _hex(text, what, type_name, where)), False
    raise FormatError(f"unknown registry value type {type_name!r}", where)


def _hex(text: str, what: str, type_name: str, where: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise FormatError(f"{what} of type {type_name} is not hexadecimal", where) from None


def merged_items(base: list[str], extra: list[str]) -> list[str]:
    """`base` then each item of `extra` it lacks (case-insensitive), as pkggen's diff appends."""
    seen = {i.casefold() for i in base}
    out = list(base)
    for item in extra:
        if item.casefold() not in seen:
            seen.add(item.casefold())
            out.append(item)
    return out


def manifest_registry(
    data: bytes | etree._Element, build: dict[str, str], where: str
) -> tuple[list[str], list[tuple]]:
    """Empty keys and (key, name, type, data, append) values a component manifest sets,
    services included."""
    root = data if isinstance(data, etree._Element) else xmlsafe.parse_bytes(data, where)
    keys: list[str] = []
    values: list[tuple] = []
    for key in root.iter(f"{ASM}registryKey"):
        key_name = key.get("keyName", "")
        vals = key.findall(f"{ASM}registryValue")
        if not vals:
            keys.append(key_name)
        for v in vals:
            reg, append = manifest_value(v, build, where)
            values.append((key_name, v.get("name", ""), reg.type, reg.data, append))
    for svc in root.iter(f"{ASM}serviceData"):
        svc_keys, svc_values = service_values(svc, where)
        keys.extend(svc_keys)
        values.extend((k, n, reg.type, reg.data, False) for k, n, reg in svc_values)
    return keys, values


def device_command(value: str) -> str:
    """A command line whose path starts with a device macro, in the form the SCM expands."""
    m = re.match(r"^\$\(([^()]+)\)(.*)$", value, re.S)
    text = runtime_text(m.group(1)) if m else None
    return value if text is None else text + m.group(2)


def service_values(
    svc: etree._Element, where: str
) -> tuple[list[str], list[tuple[str, str, regvalue.RegData]]]:
    """Keys and values the service control manager expects for one ``serviceData``."""
    name = svc.get("name")
    key = f"{SERVICES_KEY}\\{name}"
    out: list[tuple[str, str, regvalue.RegData]] = []
    keys: list[str] = []

    def dword(n: str, v: int, k: str = key):
        out.append((k, n, regvalue.RegData(4, v.to_bytes(4, "little"))))

    def text(n: str, v: str, t: int = 1):
        out.append((key, n, regvalue.RegData(t, (v + "\0").encode("utf-16-le"))))

    def multi(n: str, items: list[str]):
        try:
            out.append((key, n, regvalue.RegData(7, regvalue.multi_data(items))))
        except FFUError as exc:
            raise FormatError(f"service {name}: {n}: {exc.message}", where) from None

    start = (svc.get("start") or "demand").lower()
    dword("Start", _START.get(start, 3))
    if start == "delayedauto":
        dword("DelayedAutostart", 1)
    svc_type = _TYPE.get((svc.get("type") or "win32OwnProcess").lower(), 0x10)
    dword("Type", svc_type)
    dword("ErrorControl", _ERROR.get((svc.get("errorControl") or "normal").lower(), 1))
    if svc_type & 0x30:
        dword("PreshutdownTimeout", PRESHUTDOWN_TIMEOUT_MS)
    if svc.get("imagePath"):
        text("ImagePath", device_command(svc.get("imagePath")), 2)
    for attr, value_name in (
        ("displayName", "DisplayName"),
        ("description", "Description"),
        ("objectName", "ObjectName"),
        ("group", "Group"),
    ):
        if svc.get(attr):
            text(value_name, svc.get(attr))
    if svc.get("dependOnService"):
        multi("DependOnService", [s for s in svc.get("dependOnService").split(";") if s])
    if svc.get("dependOnGroup"):
        multi("DependOnGroup", [s for s in svc.get("dependOnGroup").split(";") if s])
    if svc.get("requiredPrivileges"):
        multi(
            "RequiredPrivileges", [s.strip() for s in svc.get("requiredPrivileges").split(",") if s.strip()]
        )
    if svc.get("sidType"):
        dword("ServiceSidType", _SID_TYPE.get(svc.get("sidType").lower(), 0))
    if svc.get("failureActionsFlag") is not None:
        flag = svc.get("failureActionsFlag").lower()
        if flag not in ("true", "false", "1", "0"):
            raise FormatError(f"service {name}: failureActionsFlag={flag!r} is not true or false", where)
        dword("FailureActionsOnNonCrashFailures", 1 if flag in ("true", "1") else 0)
    fa = svc.find(f"{ASM}failureActions")
    if fa is not None:
        actions = [
            (a.get("type", "none"), _dword(a.get("delay", "0"), "failure action delay", name, where))
            for a in fa.iter(f"{ASM}action")
        ]
        reset = fa.get("resetPeriod", "0")
        reset_value = 0xFFFFFFFF if reset.upper() == "INFINITE" else _dword(reset, "resetPeriod", name, where)
        out.append(
            (key, "FailureActions", regvalue.RegData(3, failure_actions_blob(reset_value, fa, actions)))
        )
        if fa.get("command"):
            text("FailureCommand", fa.get("command"))
        if fa.get("rebootMessage"):
            text("RebootMessage", fa.get("rebootMessage"))
    for n, trig in enumerate(svc.findall(f"{ASM}serviceTrigger")):
        tkey = f"{key}\\TriggerInfo\\{n}"
        keys.append(tkey)
        for value_name, reg in trigger_values(trig, f"service {name} trigger {n}", where):
            out.append((tkey, value_name, reg))
    return keys, out


def failure_actions_blob(reset: int, fa: etree._Element, actions: list[tuple[str, int]]) -> bytes:
    """SERVICE_FAILURE_ACTIONS as pkggen writes it (see the module docstring)."""
    blob = (
        reset.to_bytes(4, "little")
        + (1 if fa.get("rebootMessage") else 0).to_bytes(4, "little")
        + (1 if fa.get("command") else 0).to_bytes(4, "little")
        + len(actions).to_bytes(4, "little")
        + (20).to_bytes(4, "little")
    )
    for kind, delay in actions:
        blob += _ACTION.get(kind.lower(), 0).to_bytes(4, "little") + delay.to_bytes(4, "little")
    return blob


def trigger_values(trig: etree._Element, what: str, where: str) -> list[tuple[str, regvalue.RegData]]:
    """The values of one ``TriggerInfo\\<n>`` key."""

    def pick(table: dict[str, int], attr: str) -> int:
        raw = trig.get(attr) or ""
        code = table.get(raw.lower())
        if code is None:
            raise FormatError(f"{what}: {attr}={raw!r}; use one of {', '.join(sorted(table))}", where)
        return code

    out = [
        ("Type", regvalue.RegData(4, pick(TRIGGER_TYPES, "type").to_bytes(4, "little"))),
        ("Action", regvalue.RegData(4, pick(TRIGGER_ACTIONS, "action").to_bytes(4, "little"))),
    ]
    sub = trig.get("subtype") or ""
    text = TRIGGER_SUBTYPES.get(sub.upper(), sub).strip("{}")
    try:
        guid = uuid.UUID(text)
    except ValueError:
        raise FormatError(
            f"{what}: subtype={sub!r} is not a GUID or one of {', '.join(sorted(TRIGGER_SUBTYPES))}", where
        ) from None
    out.append(("GUID", regvalue.RegData(3, guid.bytes_le)))
    for i, item in enumerate(trig.findall(f"{ASM}triggerData")):
        kind = (item.get("type") or "").lower()
        code = TRIGGER_DATA.get(kind)
        value = item.get("value") or ""
        if code is None:
            raise FormatError(
                f"{what}: triggerData type={item.get('type')!r}; use {', '.join(TRIGGER_DATA)}", where
            )
        if code == 2:
            try:
                reg = regvalue.RegData(7, regvalue.multi_data(value.split(";")))
            except FFUError as exc:
                raise FormatError(f"{what}: {exc.message}", where) from None
        elif code == 1:
            reg = regvalue.RegData(3, _hex(value, f"{what} data", "binary", where))
        else:
            size = 1 if code == 3 else 8
            number = _number(value, size, what, where)
            reg = regvalue.RegData(3, number.to_bytes(size, "little"))
        out.append((f"Data{i}", reg))
        out.append((f"DataType{i}", regvalue.RegData(4, code.to_bytes(4, "little"))))
    return out


def _number(text: str, size: int, what: str, where: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        value = -1
    if not 0 <= value < 1 << (8 * size):
        raise FormatError(f"{what}: trigger data {text!r} is not a number that fits {size} byte(s)", where)
    return value


def _dword(text: str, what: str, service: str | None, where: str | None = None) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        value = -1
    if not 0 <= value <= 0xFFFFFFFF:
        raise FormatError(f"service {service}: {what} {text!r} is not a decimal number below 2^32", where)
    return value
