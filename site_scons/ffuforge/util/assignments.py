"""`NAME=VALUE;NAME=VALUE` lists, as pkggen's /variables and the command line spell build variables."""

from __future__ import annotations

from ..errors import ConfigError


def parse_assignments(text: str | None, what: str) -> dict[str, str]:
    """The pairs of `text` in order (a later NAME wins); `what` names the option in a message."""
    out: dict[str, str] = {}
    for item in (text or "").split(";"):
        if not item.strip():
            continue
        if "=" not in item:
            raise ConfigError(f"{what} item {item!r} is not NAME=VALUE")
        key, value = item.split("=", 1)
        out[key.strip()] = value
    return out
