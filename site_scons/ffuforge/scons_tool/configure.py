"""The settings table applied to an environment: command line, validation, release policy, help.

SCons restores the keyword arguments given to Environment() after its tools ran, so the command
line cannot be applied in generate(); it is applied here, on first use by any ffuforge method (or
explicitly by `configure(env)` in an SConstruct that reads the values itself), and again whenever
the settings changed since (an env.Replace between two calls).
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import FFUError
from . import settings
from .nodes import fail

_HELP_ADDED: list[bool] = []


def _arguments() -> dict[str, str]:
    try:
        from SCons.Script import ARGUMENTS
    except ImportError:  # pragma: no cover - outside scons
        return {}
    return dict(ARGUMENTS)


def _launch_dir() -> str:
    try:
        from SCons.Script import GetLaunchDir
    except ImportError:  # pragma: no cover - outside scons
        return os.getcwd()
    return GetLaunchDir()


def top_relative(text: str, top: str, launch: str) -> str:
    """A path given on the command line, as the tool's settings hold it: `#rel` (relative to the
    top of the tree) or absolute. Relative paths mean the top of the tree (the SConstruct's
    folder, `-C`'s), not the folder of the SConscript that happens to use them (`packages/`);
    a path that exists only relative to the directory scons was started from (`scons -u`,
    `-C` from elsewhere) means that one."""
    text = text.strip()
    if not text or text.startswith("#") or os.path.isabs(text):
        return text
    at_top = os.path.normpath(os.path.join(top, text))
    at_launch = os.path.normpath(os.path.join(launch, text))
    chosen = at_launch if not os.path.exists(at_top) and os.path.exists(at_launch) else at_top
    rel = os.path.relpath(chosen, top)
    return chosen if rel == ".." or rel.startswith("../") else "#" + rel


def plain_path(text: str) -> str:
    """`#rel` as a plain path relative to the top of the tree (SCons runs there), for consumers
    that do not know SCons' `#` (CacheDir, the Microsoft package root)."""
    return (text[1:].lstrip("/") or ".") if text.startswith("#") else text


def _arguments_at_top(env, arguments: dict[str, str]) -> dict[str, str]:
    """`arguments` with every path option (and SIGN_CHAIN's items) made top-relative."""
    top, launch = env.Dir("#").abspath, _launch_dir()
    out = dict(arguments)
    for s in settings.SETTINGS:
        if s.arg in out and (s.kind == "path" or s.name == "FFU_SIGN_CHAIN"):
            parts = out[s.arg].split(";") if s.kind == "list" else [out[s.arg]]
            out[s.arg] = ";".join(top_relative(p, top, launch) for p in parts if p.strip())
    return out


def configured(env) -> Any:
    """`env` with every setting applied and checked (idempotent; cheap when nothing changed)."""
    key = tuple(repr(env.get(s.name)) for s in settings.SETTINGS)
    if env.get("_FFU_CONFIGURED") == key:
        return env
    # The command line applies once, to the environment the tool was loaded into (and what it was
    # cloned from afterwards keeps it): a Clone(FFU_CPU="x86") for a second CPU stays x86.
    first = "_FFU_CONFIGURED" not in env
    arguments = _arguments_at_top(env, _arguments()) if first else {}
    if first:
        add_help({s.name: env.get(s.name) for s in settings.SETTINGS})
    try:
        values = settings.apply(lambda name: env.get(name, settings.BY_NAME[name].default), arguments)
    except FFUError as exc:
        fail(str(exc))
    env.Replace(**values)
    cache = env["FFU_CACHE"]
    if cache and env.get("_FFU_CACHE_SET") != cache:
        env.CacheDir(plain_path(cache))  # the tool's CacheDir class keeps partition images sparse
        env["_FFU_CACHE_SET"] = cache
    env["_FFU_CONFIGURED"] = tuple(repr(env.get(s.name)) for s in settings.SETTINGS)
    return env


def configure(env, *, strict_arguments: bool = False, extra_arguments: tuple[str, ...] = ()) -> Any:
    """Apply the settings now (an SConstruct that reads `env["FFU_CPU"]` etc. calls this first).
    With `strict_arguments`, a command-line NAME=value that is neither an ffuforge option nor in
    `extra_arguments` stops the build (a typo such as PRODCUT=)."""
    if strict_arguments:
        unknown = settings.unknown_arguments(_arguments(), extra_arguments)
        if unknown:
            fail(f"unknown variable(s): {', '.join(unknown)}; see `scons -h`")
    return configured(env)


def add_help(current: dict[str, Any]) -> None:
    """The settings' help in `scons -h`, once per run, with the SConstruct's defaults."""
    if _HELP_ADDED:
        return
    _HELP_ADDED.append(True)
    import SCons.Script

    # append=True with no help yet would put all of SCons' own options first
    SCons.Script.Help(settings.help_text(current), append=SCons.Script.help_text is not None)
