"""Every construction variable the tool reads, declared once.

The table drives the defaults (`generate()`), the command-line options (`CPU=arm64` sets
`FFU_CPU`; the command line wins over the SConstruct, as with SCons' own Variables), the
validation (a bad value stops the build with one line naming the variable and what it accepts),
`scons -h`, and the README's list of variables (`markdown()`; tests/scons_tool keeps the README
in sync). Release policy that every workspace needs (a Retail image needs your own certificate;
packages signed with it live apart from test-signed ones) lives here too, so a user's own
SConstruct gets it without copying the sample's.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ..util.assignments import parse_assignments

DEFAULT_EPOCH = 1577836800  # 2020-01-01T00:00:00Z, used when SOURCE_DATE_EPOCH is unset


@dataclass(frozen=True)
class Setting:
    """One construction variable: `kind` is str, bool, int, list, dict or path; `allowed` limits
    the values; `arg` is its command-line name (None: set in the SConstruct only)."""

    name: str
    default: Any
    help: str
    kind: str = "str"
    allowed: tuple = ()
    arg: str | None = None


_CPUS = ("arm", "arm64", "x86", "amd64")

SETTINGS: tuple[Setting, ...] = (
    Setting("FFU_CPU", "arm", "target architecture", allowed=_CPUS, arg="CPU"),
    Setting("FFU_VERSION", "10.0.0.0", "package version a.b.c.d (checked by Package())", arg="VERSION"),
    Setting(
        "FFU_OEM_NAME", "Contoso", "OEM name: the OEMNAME build variable and FMs' %OEM_NAME%", arg="OEMNAME"
    ),
    Setting(
        "FFU_PRODUCT",
        "",
        "product name: the PROD build variable and Image()'s default PRODUCT",
        arg="PRODUCT",
    ),
    Setting(
        "FFU_PRODUCTS",
        [],
        "every product the SConstruct declares images for: a package whose content depends on the "
        "product (PROD) is built once per product, in ${FFU_PKG_DIR}/<product>",
        "list",
    ),
    Setting(
        "FFU_CONFIG",
        "",
        "image configuration: Image()'s default CONFIG; Retail needs your own signing certificate",
        allowed=("", "Test", "Retail"),
        arg="CONFIG",
    ),
    Setting(
        "FFU_VARIABLES",
        {},
        "build variables, pkggen's /variables (OEMNAME, PROD, BSPARCH, BLDDIR, …)",
        "dict",
    ),
    Setting(
        "FFU_LANGUAGES",
        [],
        "languages for language packages (';'-separated on the command line)",
        "list",
        arg="LANGUAGES",
    ),
    Setting("FFU_BUILD_TYPE", "fre", "build type", allowed=("fre", "chk"), arg="BUILD_TYPE"),
    Setting(
        "FFU_COMPRESSION",
        "none",
        "CAB compression (none, as pkggen)",
        allowed=("none", "mszip"),
        arg="COMPRESSION",
    ),
    Setting(
        "SOURCE_DATE_EPOCH",
        "",
        "timestamp of every output in seconds since 1970, a fixed workspace setting so builds are "
        "bit-identical; the command line wins, then the SOURCE_DATE_EPOCH environment variable, "
        "then the SConstruct's value (empty: 2020-01-01). Signatures use it too, or the signing "
        "chain's latest notBefore when it lies outside the chain's validity",
        "int",
        arg="SOURCE_DATE_EPOCH",
    ),
    Setting(
        "FFU_SIGN",
        "",
        "how packages are signed (empty: command with FFU_SIGN_COMMAND, key with FFU_SIGN_CERT, else test)",
        allowed=("", "test", "key", "command", "none"),
        arg="SIGN",
    ),
    Setting(
        "FFU_SIGN_CERT",
        "",
        "your code-signing certificate (PEM or .pfx; password in $FFU_SIGN_PASSWORD); relative paths "
        "mean the top of the tree",
        "path",
        arg="SIGN_CERT",
    ),
    Setting("FFU_SIGN_KEY", "", "private key for FFU_SIGN_CERT (PEM)", "path", arg="SIGN_KEY"),
    Setting("FFU_SIGN_CHAIN", [], "intermediate certificates for FFU_SIGN_CERT", "list", arg="SIGN_CHAIN"),
    Setting(
        "FFU_SIGN_COMMAND",
        "",
        "external signing command, given each file to sign (like sign.cmd)",
        arg="SIGN_COMMAND",
    ),
    Setting(
        "FFU_SIGN_PE",
        True,
        "Authenticode-sign PE payloads before they are catalogued (signed files are left intact)",
        "bool",
        arg="SIGN_PE",
    ),
    Setting("FFU_TEST_PKI_DIR", "#testcerts", "the TEST ONLY signing chain (created when missing)", "path"),
    Setting("FFU_TEST_PKI_OWNER", "Contoso", "organisation named in a created TEST ONLY chain"),
    Setting(
        "FFU_BLD_DIR", "#build/${FFU_CPU}", "build folder (…/<config>-signed when not test-signed)", "path"
    ),
    Setting("FFU_PKG_DIR", "${FFU_BLD_DIR}/packages", "where CABs are written", "path"),
    Setting("FFU_MERGED_FM_DIR", "${FFU_BLD_DIR}/MergedFMs", "where merged FMs are written", "path"),
    Setting(
        "FFU_FM_DIR",
        [],
        "$(FMDirectory) of FMFileLists, as FeatureMerger's /InputFMDir (searched before the "
        "FMFileList's folder); FeatureMerge(FM_DIR=) per list",
        "list",
    ),
    Setting("FFU_FEATURE_VARIABLES", {}, "extra FM/OEMInput placeholders (%NAME%)", "dict"),
    Setting("FFU_FORMAT_VERSION", 1, "FFU format version (2: multi-store)", "int", allowed=(1, 2), arg="FFU"),
    Setting("FFU_DEVICE_PATH", "", "FFU v2 store device path (empty: the eMMC user area)"),
    Setting("FFU_RAW", False, "Image() also writes the raw disk image Flash.img", "bool", arg="RAW"),
    Setting(
        "FFU_MSPACKAGE",
        "",
        "Microsoft package root for Microsoft features (empty: an OEM-only image)",
        "path",
        arg="MSPACKAGE",
    ),
    Setting(
        "FFU_MSPACKAGE_ROOTS",
        [],
        "root certificates the Microsoft packages must verify against (CAB, catalog, every member)",
        "list",
        arg="MSPACKAGE_ROOTS",
    ),
    Setting(
        "FFU_CACHE",
        "",
        "shared build cache folder (CABs, FMs, partition images; not FFUs)",
        "path",
        arg="CACHE",
    ),
    Setting(
        "FFU_PLAN_CACHE", "#build/.ffuforge/plans", "package plans kept between runs (empty: off)", "path"
    ),
    Setting(
        "FFU_SOURCE_ROOTS",
        [],
        "folders outside the workspace that package inputs may come from (';'-separated); an input "
        "resolving (after symbolic links) anywhere else is refused",
        "list",
        arg="SOURCE_ROOTS",
    ),
    Setting(
        "FFU_PKG_SOURCE_BASE",
        "",
        "folder relative package sources are found in (empty: the WDK .vcxproj folder whose <PkgGen> "
        "names the project, then the project's folder); Package(SOURCE_BASE=) per package",
        "path",
    ),
    Setting(
        "FFU_CHECK_ALL",
        False,
        "report the planning errors (missing inputs, …) of every package project, then stop (default: "
        "stop at the first project)",
        "bool",
        arg="CHECK_ALL",
    ),
    Setting("FFU_VERBOSE", False, "print full action details", "bool", arg="VERBOSE"),
)

BY_NAME: Mapping[str, Setting] = {s.name: s for s in SETTINGS}
BY_ARG: Mapping[str, Setting] = {s.arg: s for s in SETTINGS if s.arg}

_TRUE = ("1", "yes", "true", "on", "y", "t")
_FALSE = ("0", "no", "false", "off", "n", "f", "")


def from_text(s: Setting, text: str) -> Any:
    """A command-line string converted to the setting's kind."""
    if s.kind == "bool":
        low = text.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ConfigError(f"{s.arg}={text!r} is not a yes/no value; use 1 or 0")
    if s.kind == "int":
        if text.strip() == "" and s.default == "":
            return ""
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{s.arg}={text!r} is not an integer") from None
    if s.kind == "list":
        return [x for x in text.split(";") if x.strip()]
    if s.kind == "dict":
        return parse_assignments(text, s.arg or s.name)
    return text


def check(s: Setting, value: Any, label: str | None = None) -> Any:
    """The value if valid for `s` (a command-line string already converted), else a ConfigError
    naming `label` (the command-line name) or the variable."""
    name = label or s.name
    if s.kind == "bool":
        if not isinstance(value, bool | int):
            raise ConfigError(f"{name}={value!r} is not True or False")
        value = bool(value)
    elif s.kind == "int":
        if s.default == "" and value in ("", None):
            return ""
        if isinstance(value, str):
            try:
                value = int(value)
            except ValueError:
                raise ConfigError(f"{name}={value!r} is not an integer") from None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{name}={value!r} is not a whole number ≥ 0")
    elif s.kind == "list":
        if isinstance(value, str):
            value = [value] if value else []
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{name}={value!r} is not a list of strings")
        value = list(value)
    elif s.kind == "dict":
        if not isinstance(value, Mapping):
            raise ConfigError(f"{name}={value!r} is not a dictionary of NAME: VALUE")
    elif not isinstance(value, str):
        raise ConfigError(f"{name}={value!r} is not a string")
    if s.allowed and value not in s.allowed:
        choices = ", ".join(str(a) for a in s.allowed if a != "")
        raise ConfigError(
            f"{name}={value!r}; use one of {choices}" + (" (or leave it empty)" if "" in s.allowed else "")
        )
    if s.name == "FFU_OEM_NAME" and (not value or any(c.isspace() for c in value)):
        raise ConfigError(f"{name}={value!r}: an OEM name is one word without spaces")
    return value


def defaults() -> dict[str, Any]:
    """Fresh copies of every default (mutable ones are not shared between environments)."""
    return {
        s.name: (type(s.default)(s.default) if isinstance(s.default, list | dict) else s.default)
        for s in SETTINGS
    }


def apply(get: Callable[[str], Any], arguments: Mapping[str, str]) -> dict[str, Any]:
    """Every setting's value: the command line's where given, else the environment's (`get`),
    validated; then the release policy. Raises ConfigError naming the variable."""
    values: dict[str, Any] = {}
    environ_epoch = os.environ.get("SOURCE_DATE_EPOCH", "")
    for s in SETTINGS:
        if s.name == "SOURCE_DATE_EPOCH" and s.arg not in arguments and environ_epoch != "":
            # the standard variable a user exports wins over the SConstruct's fixed value
            values[s.name] = check(s, from_text(s, environ_epoch), "SOURCE_DATE_EPOCH (environment)")
        elif s.arg and s.arg in arguments:
            try:
                values[s.name] = check(s, from_text(s, arguments[s.arg]), s.arg)
            except ConfigError as exc:
                raise ConfigError(f"{exc}; see `scons -h`") from None
        else:
            values[s.name] = check(s, get(s.name))
    return _policy(values)


def _policy(v: dict[str, Any]) -> dict[str, Any]:
    """Signing mode and the folders of packages signed with another certificate."""
    mode = v["FFU_SIGN"]
    if mode == "":
        mode = "command" if v["FFU_SIGN_COMMAND"] else "key" if v["FFU_SIGN_CERT"] else "test"
    if v["FFU_CONFIG"] == "Retail" and mode in ("test", "none"):
        raise ConfigError(
            "CONFIG=Retail needs your own code-signing certificate: scons CONFIG=Retail SIGN_CERT=oem.pfx "
            "(password in FFU_SIGN_PASSWORD) or SIGN_CERT=oem.crt SIGN_KEY=oem.key, or SIGN_COMMAND='your-sign-tool'"
        )
    v["FFU_SIGN"] = mode
    if mode != "test" and v["FFU_BLD_DIR"] == BY_NAME["FFU_BLD_DIR"].default:
        # packages signed with another certificate live apart from test-signed ones
        config = v["FFU_CONFIG"].lower()
        v["FFU_BLD_DIR"] = f"#build/${{FFU_CPU}}/{config + '-' if config else ''}signed"
    epoch = v["SOURCE_DATE_EPOCH"]
    if epoch == "":
        text = os.environ.get("SOURCE_DATE_EPOCH", "")
        if text == "":
            epoch = DEFAULT_EPOCH
        else:
            try:
                epoch = int(text)
            except ValueError:
                raise ConfigError(
                    f"SOURCE_DATE_EPOCH={text!r} is not an integer (seconds since 1970)"
                ) from None
    v["SOURCE_DATE_EPOCH"] = epoch
    variables = dict(v["FFU_VARIABLES"])
    variables.setdefault("OEMNAME", v["FFU_OEM_NAME"])
    if v["FFU_PRODUCT"]:
        variables.setdefault("PROD", v["FFU_PRODUCT"])
    v["FFU_VARIABLES"] = {str(k): str(x) for k, x in variables.items()}
    return v


def unknown_arguments(arguments: Mapping[str, str], extra: tuple[str, ...] = ()) -> list[str]:
    return sorted(a for a in arguments if a not in BY_ARG and a not in extra)


def _default_text(s: Setting, value: Any = None) -> str:
    value = s.default if value is None else value
    if s.kind == "bool":
        return "1" if value else "0"
    if s.kind == "list":
        return ";".join(value) or "(none)"
    if s.kind == "dict":
        return ";".join(f"{k}={v}" for k, v in sorted(value.items())) or "(none)"
    return str(value) if value != "" else "(empty)"


def help_text(current: Mapping[str, Any] | None = None) -> str:
    """`scons -h`: the command-line options, then the construction variables set in an SConstruct;
    defaults as the SConstruct set them (`current`) where given."""
    current = current or {}
    lines = ["ffuforge options (NAME=value on the command line):", ""]
    for s in SETTINGS:
        if s.arg:
            values = "|".join(str(a) for a in s.allowed if a != "") if s.allowed else s.kind
            lines.append(
                f"  {s.arg}={values}  (default {_default_text(s, current.get(s.name))}; sets {s.name})"
            )
            lines.append(f"      {s.help}")
    lines += ["", "ffuforge construction variables (set in the SConstruct):", ""]
    for s in SETTINGS:
        if not s.arg:
            lines.append(f"  {s.name} (default {_default_text(s, current.get(s.name))}): {s.help}")
    return "\n".join(lines) + "\n"


def markdown() -> str:
    """The README's table of variables."""
    rows = ["| variable | command line | default | values | meaning |", "|---|---|---|---|---|"]
    for s in SETTINGS:
        values = ", ".join(f"`{a}`" for a in s.allowed if a != "") if s.allowed else s.kind
        default = _default_text(s)
        rows.append(f"| `{s.name}` | {f'`{s.arg}=`' if s.arg else ''} | `{default}` | {values} | {s.help} |")
    return "\n".join(rows) + "\n"
