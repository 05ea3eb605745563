"""`$(id)` macros of package projects: package-local macros, build variables, global tables.

Device-side path macros (`$(runtime.system32)`) stay symbolic in CBS manifests and are only
given values when a partition is written; registry macros expand to `HKEY_…` paths. Lookup is
case-insensitive because real trees mix `$(runtime.bootdrive)` and `$(HKLM.SYSTEM)`.

Expansion is bounded: macros may nest :data:`MAX_DEPTH` deep, and one value may expand to at most
:data:`MAX_EXPANDED` characters. Each package macro is expanded once per context and reused, so a
chain of macros each repeating the next twice costs one expansion per macro until its value passes
the bound (40 macros each ``$(next)$(next)`` would otherwise be 2^40 copies). pkggen's own bounds
are not documented; these are far above what any corpus project uses (3 levels, a few hundred
characters).

Names a path gives a device (destinationDir segments, ``name=``, directory paths) must be valid
Windows names (:func:`name_problem`), so a mistake is reported at the project line, not as a CAB
member or on the device.
"""

from __future__ import annotations

import re

from ..errors import ConfigError

MACRO_RE = re.compile(r"\$\(([^()$]*)\)")
_NESTED_RE = re.compile(r"\$\([^()]*\$\(")
_ID_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
MAX_DEPTH = 32
MAX_EXPANDED = 1 << 20

# Names Windows opens as devices, in any case and with any extension ("nul.txt", "Com1.log"): the
# list of Microsoft's "Naming Files, Paths, and Namespaces", with the superscript digits ¹²³ that
# RtlIsDosDeviceName_U also takes (Latin-1 code points, as in CPython 3.13's ntpath.isreserved, which
# also lists CONIN$ and CONOUT$).
RESERVED_NAMES = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"{dev}{n}" for dev in ("COM", "LPT") for n in "123456789\u00b9\u00b2\u00b3"]
)
_BAD_CHARS = frozenset('<>:"|?*')

# Device paths relative to the target partition's root (values from the kit's pkggen.cfg.xml).
RUNTIME: dict[str, str] = {
    "runtime.root": "",
    "runtime.bootDrive": "",
    "runtime.systemDrive": "",
    "runtime.windows": r"\Windows",
    "runtime.systemRoot": r"\Windows",
    "runtime.system32": r"\Windows\System32",
    "runtime.services": r"\Windows\System32",
    "runtime.drivers": r"\Windows\System32\drivers",
    "runtime.system": r"\Windows\System",
    "runtime.help": r"\Windows\Help",
    "runtime.inf": r"\Windows\INF",
    "runtime.fonts": r"\Windows\Fonts",
    "runtime.wbem": r"\Windows\System32\wbem",
    "runtime.appPatch": r"\Windows\AppPatch",
    "runtime.sysWow64": r"\Windows\SysWOW64",
    "runtime.programFiles": r"\Program Files",
    "runtime.programFilesX86": r"\Program Files (x86)",
    "runtime.commonFilesX86": r"\Program Files (x86)\Common Files",
    "runtime.programData": r"\ProgramData",
    "runtime.apps": r"\Programs",
    "runtime.data": r"\Data",
    "runtime.sharedData": r"\Data\SharedData",
    "runtime.commonFiles": r"\Programs\CommonFiles",
    "runtime.provisioning": r"\ProgramData\Microsoft\Provisioning",
    "runtime.clipAppLicenseInstall": r"\ProgramData\Microsoft\Windows\ClipSVC\Install\Apps",
    "data.root": "",
    "data.public": r"\Users\Public",
    "data.shared": r"\SharedData",
}

# Text macros usable in values (not as destination prefixes).
TEXT: dict[str, str] = {
    "runtime.defaultSvcHost": r"%SystemRoot%\System32\svchost.exe",
    "env.sysDrive": "%SystemDrive%",
    "env.windows": "%SystemRoot%",
    "env.system32": r"%SystemRoot%\System32",
    "env.services": r"%SystemRoot%\System32",
    "env.drivers": r"%SystemRoot%\System32\drivers",
    "GENERIC_READ": "GR",
    "GENERIC_WRITE": "GW",
    "GENERIC_EXECUTE": "GX",
    "GENERIC_ALL": "GA",
    "FILE_ALL_ACCESS": "FA",
    "FILE_GENERIC_READ": "FR",
    "FILE_GENERIC_WRITE": "FW",
    "FILE_GENERIC_EXECUTE": "FX",
    "KEY_READ": "KR",
    "KEY_WRITE": "KW",
    "KEY_EXECUTE": "KX",
    "KEY_ALL_ACCESS": "KA",
    "DEVICE_READ": "GR",
    "DEVICE_WRITE": "GW",
    "DEVICE_EXECUTE": "GX",
    "DEVICE_ALL": "GA",
}

_SW = r"HKEY_LOCAL_MACHINE\Software"
_CCS = r"HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001"
REGISTRY: dict[str, str] = {
    "hklm.system": r"HKEY_LOCAL_MACHINE\SYSTEM",
    "hklm.software": _SW,
    "hklm.hardware": r"HKEY_LOCAL_MACHINE\Hardware",
    "hklm.sam": r"HKEY_LOCAL_MACHINE\SAM",
    "hklm.security": r"HKEY_LOCAL_MACHINE\Security",
    "hklm.bcd": r"HKEY_LOCAL_MACHINE\BCD",
    "hklm.drivers": r"HKEY_LOCAL_MACHINE\Drivers",
    "hklm.svchost": _SW + r"\Microsoft\Windows NT\CurrentVersion\SvcHost",
    "hklm.policies": _SW + r"\Policies",
    "hklm.microsoft": _SW + r"\Microsoft",
    "hklm.windows": _SW + r"\Microsoft\Windows",
    "hklm.windowsnt": _SW + r"\Microsoft\Windows NT\CurrentVersion",
    "hklm.currentcontrolset": _CCS,
    "hklm.services": _CCS + r"\services",
    "hklm.control": _CCS + r"\Control",
    "hklm.enum": _CCS + r"\Enum",
    "hklm.autologger": _CCS + r"\Control\WMI\Autologger",
    "hkcr.root": _SW + r"\Classes",
    "hkcr.classes": _SW + r"\Classes",
    "hkcu.root": "HKEY_CURRENT_USER",
    "hkuser.default": r"HKEY_USERS\.Default",
}

_RUNTIME_LC = {k.lower(): k for k in RUNTIME}
_TEXT_LC = {k.lower(): v for k, v in TEXT.items()}
_REG_LC = {k.lower(): v for k, v in REGISTRY.items()}
GLOBAL_IDS = set(_RUNTIME_LC) | set(_TEXT_LC) | set(_REG_LC)


def canonical_runtime(macro_id: str) -> str | None:
    """Canonical spelling of a device path macro id, or None if it is not one."""
    return _RUNTIME_LC.get(macro_id.lower())


class Macros:
    """Expansion context: package macros, then build variables, then the global tables."""

    def __init__(
        self,
        variables: dict[str, str] | None = None,
        local: dict[str, str] | None = None,
        file: str | None = None,
    ):
        self.file = file
        self.variables = {k.lower(): v for k, v in (variables or {}).items()}
        self.local: dict[str, str] = {}
        self.lines: dict[str, int | None] = {}  # where each package macro is defined
        self._memo: dict[tuple[str, bool, bool], str] = {}  # (id, device, csi) -> expansion
        for key, value in (local or {}).items():
            self.define(key, value)

    def define(self, key: str, value: str, line: int | None = None) -> None:
        low = key.lower()
        if not _ID_RE.match(key):
            raise ConfigError(f"invalid macro id {key!r}: use letters, digits, '_' and '.'", self.file, line)
        if low in GLOBAL_IDS:
            raise ConfigError(f"macro $({key}) redefines a global macro; choose another id", self.file, line)
        if low in self.local:
            raise ConfigError(f"macro $({key}) is defined twice (ids are case-insensitive)", self.file, line)
        self.local[low] = value
        self.lines[low] = line
        self._memo.clear()

    def with_variables(self, extra: dict[str, str]) -> Macros:
        clone = Macros(file=self.file)
        clone.variables = {**self.variables, **{k.lower(): v for k, v in extra.items()}}
        clone.local = dict(self.local)
        clone.lines = dict(self.lines)
        return clone

    def expand(
        self, text: str | None, line: int | None = None, *, device: bool = False, csi: bool = False
    ) -> str:
        """Expand every macro. Device path macros stay symbolic unless `device` is True; with
        `csi`, undefined ``$(build.*)`` variables also stay symbolic (pkggen leaves them to the
        manifest, PkgBldr ``Macros_WmToCsi.xml``; the installer gives them values)."""
        if text is None:
            return None
        return self._expand(text, line, device, (), csi, [MAX_EXPANDED])

    def leading(self, text: str) -> str:
        """`text` with package macros/variables at its start replaced, to see what it starts with."""
        for _ in range(32):
            m = re.match(r"^\s*\$\(([^()]*)\)", text)
            low = m.group(1).lower() if m else None
            value = self.local.get(low, self.variables.get(low)) if low else None
            if value is None:
                return text
            text = value + text[m.end() :]
        return text

    def _expand(
        self, text: str, line, device: bool, stack: tuple[str, ...], csi: bool, budget: list[int]
    ) -> str:
        if "$(" not in text:
            if stack:  # what a macro adds; the attribute's own text is bounded by the XML reader
                self._spend(len(text), budget, stack, line)
            return text
        if _NESTED_RE.search(text):
            raise ConfigError(f"nested macro reference in {text!r} is not supported", self.file, line)

        def repl(m: re.Match) -> str:
            key = m.group(1)
            low = key.lower()
            if low in stack:
                chain = " -> ".join(f"$({s})" for s in (*stack, low))
                raise ConfigError(f"macro recursion {chain}; break the cycle", self.file, line)
            memo = (low, device, csi)
            if memo in self._memo:
                value = self._memo[memo]
                self._spend(len(value), budget, (*stack, low), line)
                return value
            value = self.local.get(low, self.variables.get(low))
            if value is not None:
                if len(stack) >= MAX_DEPTH:
                    raise ConfigError(
                        f"macro $({stack[0]}) nests more than {MAX_DEPTH} macros deep "
                        f"({_chain((*stack, low))}); flatten <macros>",
                        self.file,
                        line,
                    )
                value = self._expand(value, line, device, (*stack, low), csi, [MAX_EXPANDED])
                self._memo[memo] = value
                self._spend(len(value), budget, (*stack, low), line)
                return value
            if low in _RUNTIME_LC:
                value = RUNTIME[_RUNTIME_LC[low]] if device else f"$({_RUNTIME_LC[low]})"
            elif low in _TEXT_LC:
                value = _TEXT_LC[low]
            elif low in _REG_LC:
                value = _REG_LC[low]
            elif csi and low.startswith("build."):
                value = f"$({key})"
            else:
                raise ConfigError(
                    f"undefined macro $({key}); define it in <macros> or pass it as a build variable",
                    self.file,
                    line,
                )
            self._spend(len(value), budget, (*stack, low), line)
            return value

        out = MACRO_RE.sub(repl, text)
        if stack:
            self._spend(len(MACRO_RE.sub("", text)), budget, stack, line)
        return out

    def _spend(self, n: int, budget: list[int], stack: tuple[str, ...], line) -> None:
        budget[0] -= n
        if budget[0] >= 0:
            return
        top = stack[0] if stack else None
        defined = f" (defined on line {self.lines[top]})" if self.lines.get(top) else ""
        what = f"macro $({top}){defined} expands" if top else "the value expands"
        raise ConfigError(
            f"{what} to more than {MAX_EXPANDED} characters "
            f"({_chain(stack)}); a macro repeats another one: fix <macros> or the build variables",
            self.file,
            line,
        )


def _chain(stack: tuple[str, ...]) -> str:
    names = [f"$({s})" for s in stack]
    if len(names) > 6:
        names = [*names[:3], "…", *names[-2:]]
    return " -> ".join(names) or "no macro"


def split_destination(
    expanded: str, file: str | None, line: int | None, what: str = "destinationDir"
) -> tuple[str, str]:
    """Split an expanded destinationDir into (runtime macro id, relative sub path).

    The directory must start with a device path macro (or be `.\\`, the package root);
    `..` segments that climb out of the macro's directory are refused.
    """
    text = expanded.strip().replace("/", "\\")
    m = re.match(r"^\$\(([^()]*)\)(.*)$", text)
    if m:
        macro = canonical_runtime(m.group(1))
        if macro is None:
            raise ConfigError(
                f"{what} {expanded!r} must start with a device path macro such as "
                "$(runtime.system32), not $(" + m.group(1) + ")",
                file,
                line,
            )
        rest = m.group(2)
        if rest and not rest.startswith("\\"):
            raise ConfigError(f"{what} {expanded!r}: a '\\' must follow the macro", file, line)
    elif text in (".", ".\\") or text.startswith(".\\"):
        macro, rest = "runtime.bootDrive", text[1:]
    else:
        raise ConfigError(
            f"{what} {expanded!r} must start with a device path macro such as "
            "$(runtime.system32) (absolute or relative host paths are not allowed)",
            file,
            line,
        )
    return macro, normalize_relative(rest, f"{what} {expanded!r}", file, line)


def name_problem(seg: str) -> str | None:
    """Why `seg` (one path segment) cannot be a Windows file or directory name, or None."""
    bad = next((c for c in seg if ord(c) < 32 or c in _BAD_CHARS), None)
    if bad is not None:
        return f'contains {bad!r}, which Windows does not allow in names (no control characters or <>:"|?*)'
    if seg[-1:] in (".", " "):
        return "ends in a dot or a space, which Windows removes from names"
    if seg.partition(".")[0].rstrip(" ").upper() in RESERVED_NAMES:
        return (
            "is a reserved Windows device name (CON, PRN, AUX, NUL, COM1-9, LPT1-9, also with an "
            "extension and in any case)"
        )
    return None


def check_file_name(name: str, file: str | None, line: int | None, origin: str = "") -> None:
    """A device file name (``name=`` or the source's own name): one segment, valid on Windows."""
    if not name or name in (".", "..") or "\\" in name or "/" in name:
        raise ConfigError(f"file name {name!r}{origin} is not a valid device file name", file, line)
    problem = name_problem(name)
    if problem:
        raise ConfigError(
            f"file name {name!r}{origin} is not a valid device file name: it {problem}; rename it", file, line
        )


def normalize_relative(path: str, what: str, file: str | None, line: int | None) -> str:
    """Normalise a backslash path below a root; refuse anything that escapes it or that Windows
    cannot name."""
    parts: list[str] = []
    for seg in path.replace("/", "\\").split("\\"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if not parts:
                raise ConfigError(f"{what} escapes its root directory with '..'", file, line)
            parts.pop()
            continue
        problem = name_problem(seg)
        if problem:
            raise ConfigError(f"{what} has the path segment {seg!r}, which {problem}; rename it", file, line)
        parts.append(seg)
    return "\\".join(parts)


def expand_key_name(raw: str, macros: Macros, file: str | None, line: int | None) -> str:
    """Expand a regKey keyName; it must start with a registry root macro."""
    m = re.match(r"^\s*\$\(([^()]*)\)", macros.leading(raw))
    if not m or m.group(1).lower() not in _REG_LC:
        raise ConfigError(
            f"keyName {raw!r} must start with a registry macro such as $(hklm.software) or $(hklm.system)",
            file,
            line,
        )
    key = macros.expand(raw.strip(), line)
    return "\\".join(seg for seg in key.split("\\") if seg)
