"""The repository's habits, checked with the suite: lint, format, types, layers and module sizes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ffuforge.util import toolsig

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "site_scons" / "ffuforge"
BIN = Path(sys.executable).parent

# Lower layers never import higher ones (ffuforge.errors and the root package are below them all).
LAYERS = ["util", "formats", "signing", "package", "features", "image", "scons_tool", "cli"]


def _tool(name: str) -> str:
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed (./bootstrap --test installs it)")
    return found


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True)


def test_ruff_check():
    proc = _run(_tool("ruff"), "check", "--no-cache", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_format():
    proc = _run(_tool("ruff"), "format", "--no-cache", "--check", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_types_of_the_lower_layers():
    """mypy over ffuforge.util and ffuforge.formats (settings in pyproject.toml)."""
    proc = _run(_tool("mypy"))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _modules() -> dict[str, Path]:
    out = {}
    for m in toolsig.modules():
        f = toolsig.source_file(m)
        assert f is not None
        out[m] = f
    return out


def _layer(module: str) -> int:
    head = module.split(".")[0]
    return LAYERS.index(head) + 1 if head in LAYERS else 0


def test_layers_only_depend_downwards():
    wrong = []
    for module in _modules():
        if module in ("__main__", ""):
            continue  # `python -m ffuforge` runs the CLI; the root package holds the version only
        for dep in toolsig.imports(module):
            if _layer(dep) > _layer(module):
                wrong.append(f"{module} imports {dep}")
    assert not wrong, "upward imports:\n" + "\n".join(wrong)


def test_every_subpackage_is_a_layer():
    assert {p.name for p in LIB.iterdir() if p.is_dir() and (p / "__init__.py").exists()} == set(LAYERS)


def test_module_sizes():
    """No library module over 600 lines; the SCons glue stays thin (no file over 400)."""
    too_big = []
    for module, f in _modules().items():
        lines = f.read_text().count("\n")
        limit = 400 if module.startswith("scons_tool") else 600
        if lines > limit:
            too_big.append(f"{f.relative_to(ROOT)}: {lines} lines (limit {limit})")
    assert not too_big, "\n".join(too_big)


def test_only_scons_tool_imports_scons():
    for module, f in _modules().items():
        if module.startswith("scons_tool"):
            continue
        text = f.read_text()
        assert "import SCons" not in text and "from SCons" not in text, f"{module} imports SCons"
