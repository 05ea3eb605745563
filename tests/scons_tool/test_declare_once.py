"""A target named by two SConscript readings is declared once; two different specs for it stop in one line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from scons_util import scons

SCONSTRUCT = """
from ffuforge import scons_tool
env = Environment(tools=[scons_tool.generate], FFU_CPU="arm64")
a = env.StandInBinary("out/fw.bin", 4096)
b = env.StandInBinary("out/fw.bin", {size})  # a second reading of one package SConscript
Default(a + b)
"""


def _workspace(tmp_path: Path, size: int) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir(exist_ok=True)
    site = ws / "site_scons"
    if not site.exists():
        shutil.copytree(
            Path(__file__).resolve().parents[2] / "site_scons",
            site,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    (ws / "SConstruct").write_text(SCONSTRUCT.format(size=size))
    return ws


@pytest.mark.e2e
def test_same_spec_twice_is_one_target(tmp_path):
    ws = _workspace(tmp_path, 4096)
    proc = scons(ws)
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr.lower()
    assert (ws / "out/fw.bin").stat().st_size == 4096


@pytest.mark.e2e
def test_different_specs_for_one_target_stop_in_one_line(tmp_path):
    ws = _workspace(tmp_path, 8192)
    proc = scons(ws, check=False)
    assert proc.returncode == 2
    errors = [x for x in proc.stderr.splitlines() if x.startswith("scons: ***")]
    assert errors == [
        "scons: *** out/fw.bin: declared twice with different settings; give each its own target"
    ], proc.stderr
    assert "Traceback" not in proc.stderr and not (ws / "out/fw.bin").exists()
