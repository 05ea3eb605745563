"""Text rules shared by FMs, FMFileLists and OEMInputs: case folding, CPU names, filters, placeholders.

Language/Resolution filters, `%VAR%`/`$(var)` placeholders and implicit feature IDs are plain
string functions with no XML in them, kept apart so that the OEMInput loader and the resolver use
them without reaching into the FM loader.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from ...errors import ConfigError

# ------------------------------------------------------------------------------- small helpers


def fold(text: str) -> str:
    """The comparison key for case-insensitive values (feature IDs, SOC, partitions, ...)."""
    return text.casefold()


def same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and fold(a) == fold(b)


def parse_bool(text: str | None, file: str, line: int | None, what: str) -> bool | None:
    if text is None:
        return None
    value = text.strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise ConfigError(f"{what} must be true or false, not {text!r}", file, line)


CPU_TYPES = {"arm": "ARM", "arm64": "ARM64", "x86": "X86", "amd64": "AMD64"}
_CPU_ALIASES = {"x64": "amd64"}


def normalize_cpu(text: str) -> str | None:
    """'ARM', 'arm', 'x64', 'AMD64' -> 'arm' / 'amd64' ...; None when not a CPU type."""
    value = text.strip().lower()
    value = _CPU_ALIASES.get(value, value)
    return value if value in CPU_TYPES else None


def hint_name(name: str, known: Iterable[str]) -> str:
    for k in known:
        if k.lower() == name.lower():
            return f" (element names are case-sensitive: write <{k}>)"
    return ""


# ----------------------------------------------------------------------------- filters

LANG_RE = re.compile(r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$")
RES_RE = re.compile(r"^[0-9]{1,6}[xX][0-9]{1,6}$")


@dataclass(frozen=True)
class Filter:
    """A Language/Resolution filter: `*`, `(a;b)` or `!(a;b)`."""

    kind: str  # 'all' | 'only' | 'except'
    items: tuple[str, ...] = ()  # as written
    what: str = "language"  # 'language' | 'resolution'

    def __str__(self) -> str:
        if self.kind == "all":
            return "*"
        body = "(" + ";".join(self.items) + ")"
        return "!" + body if self.kind == "except" else body

    def select(self, values: Iterable[str]) -> tuple[bool, tuple[str, ...]]:
        """(included, the image values that justify it) for an image with `values`."""
        values = tuple(values)
        wanted = {fold(x) for x in self.items}
        if self.kind == "all":
            return True, values
        hits = tuple(v for v in values if fold(v) in wanted)
        if self.kind == "only":
            return bool(hits), hits
        return not hits, tuple(v for v in values if fold(v) not in wanted)


def parse_filter(
    text: str, what: str = "language", file: str | None = None, line: int | None = None
) -> Filter:
    """Parse `*`, `(a;b)`, `!(a;b)`; languages must look like `en-US`, resolutions like `1024x768`."""
    attr = "Language" if what == "language" else "Resolution"
    raw = text.strip()

    def bad(msg: str) -> ConfigError:
        return ConfigError(f"{attr}={text!r}: {msg}; write '*', '(a;b)' or '!(a;b)'", file, line)

    if raw == "*":
        return Filter("all", (), what)
    kind = "only"
    if raw.startswith("!"):
        kind, raw = "except", raw[1:].strip()
    if not (raw.startswith("(") and raw.endswith(")")):
        raise bad("the list must be in parentheses")
    body = raw[1:-1]
    if "(" in body or ")" in body:
        raise bad("nested parentheses")
    items = tuple(x.strip() for x in body.split(";"))
    if not body.strip() or any(not x for x in items):
        raise bad("empty item in the list")
    check = LANG_RE if what == "language" else RES_RE
    for item in items:
        if not check.match(item):
            sample = "en-US" if what == "language" else "1024x768"
            raise bad(f"{item!r} is not a {what} like {sample} (items are separated by ';')")
    return Filter(kind, items, what)


# ------------------------------------------------------------------------- placeholders

_PLACEHOLDER = re.compile(r"%([A-Za-z_][A-Za-z0-9_]*)%|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")

#: placeholders that point into Microsoft's kit (MSPackages / FMFiles); without a Microsoft
#: package root, what depends on them is reported as skipped instead of failing.
MS_PLACEHOLDERS = frozenset({"mspackageroot", "mspkg_dir", "akroot", "kitsroot", "wpdkcontentroot"})


class Variables(Mapping[str, str]):
    """A case-insensitive variable map (Windows environment semantics)."""

    def __init__(self, *maps: Mapping[str, str] | None):
        self._d: dict[str, tuple[str, str]] = {}
        for m in maps:
            for k, v in (m or {}).items():
                self._d[k.casefold()] = (k, str(v))

    def __getitem__(self, key: str) -> str:
        return self._d[key.casefold()][1]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.casefold() in self._d

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self._d.values())

    def __len__(self) -> int:
        return len(self._d)


def placeholders(text: str) -> list[str]:
    """The placeholders in `text`, as written (`%PKGBLD_DIR%`, `$(cputype)`)."""
    return [m.group(0) for m in _PLACEHOLDER.finditer(text)]


def placeholder_name(token: str) -> str:
    return token[1:-1] if token.startswith("%") else token[2:-1]


def expand(text: str, variables: Mapping[str, str]) -> tuple[str, list[str]]:
    """Substitute `%VAR%` and `$(var)` once (no recursion); return (text, unresolved tokens)."""
    vars_ = variables if isinstance(variables, Variables) else Variables(variables)
    missing: list[str] = []

    def sub(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        if name in vars_:
            return vars_[name]
        missing.append(m.group(0))
        return m.group(0)

    return _PLACEHOLDER.sub(sub, text), missing


def is_ms_placeholder(token: str) -> bool:
    return placeholder_name(token).casefold() in MS_PLACEHOLDERS


# ------------------------------------------------------------------------ implicit IDs


def fm_implicit_id(owner: str, feature_id: str) -> str:
    """FM side: `X` -> `OEM_X` (or `MS_X`), unless it already starts with that prefix."""
    prefix = "OEM_" if owner == "OEM" else "MS_"
    return feature_id if feature_id.upper().startswith(prefix) else prefix + feature_id


def input_implicit_id(owner: str, feature: str) -> str:
    """OEMInput side: `<OEM><Feature>X` always becomes `OEM_X` (`MS_X` for Microsoft)."""
    return ("OEM_" if owner == "OEM" else "MS_") + feature
