"""Run real scons in a copy of the sample workspace."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKSPACE_PARTS = ("SConstruct", "site_scons", "packages", "bsp", "products", "testcerts")


def copy_workspace(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for part in WORKSPACE_PARTS:
        src = ROOT / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=shutil.ignore_patterns("__pycache__", "build"))
        elif src.exists():
            shutil.copy2(src, dest / part)
    return dest


def scons(cwd: Path, *args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("SOURCE_DATE_EPOCH", None) if env is None or "SOURCE_DATE_EPOCH" not in env else None
    proc = subprocess.run(
        [sys.executable, "-m", "SCons", "-Q", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=600,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"scons {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def built(proc: subprocess.CompletedProcess, verb: str = "Package") -> list[str]:
    return sorted(re.findall(rf"^{verb} (\S+)$", proc.stdout, re.M))


def stored_csigs(ws) -> dict[str, str]:
    """path (relative to ws) -> content signature, as SCons stored it."""
    db = next((ws / "build").glob(".sconsign-py*.dblite"))
    out = subprocess.run(
        [str(Path(sys.executable).with_name("sconsign")), "-c", str(db)],
        cwd=ws,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    csigs, directory = {}, ""
    for line in out.splitlines():
        if line.startswith("=== "):
            directory = line[4:].rstrip(":")
        elif ": " in line:
            name, csig = line.split(": ", 1)
            csigs[f"{directory}/{name}"] = csig.strip()
    return csigs
