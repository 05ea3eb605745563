"""Package builds in worker processes (-jN): the same bytes and the same errors as in-process."""

import os
import shutil

import pytest

from ffuforge.errors import FFUError
from ffuforge.util import workers

from scons_util import copy_workspace, scons


def _located_error(message, file, line):
    raise FFUError(message, file, line)


def test_call_returns_and_raises_as_a_direct_call():
    try:
        assert workers.call(os.path.join, "a", "b", jobs=2) == os.path.join("a", "b")
        with pytest.raises(FFUError) as info:
            workers.call(_located_error, "bad thing", "x.wm.xml", 7, jobs=2)
        assert str(info.value) == "x.wm.xml:7: bad thing"
        assert (info.value.file, info.value.line) == ("x.wm.xml", 7)
    finally:
        workers.shutdown()


@pytest.mark.e2e
def test_parallel_build_is_byte_identical_and_fails_alike(tmp_path):
    out = {}
    for j in ("-j1", "-j2"):
        ws = copy_workspace(tmp_path / j)
        scons(ws, j, "packages")
        pkgs = ws / "build" / "arm64" / "packages"
        out[j] = {p.name: p.read_bytes() for p in sorted(pkgs.iterdir()) if p.suffix == ".cab"}
        (ws / "packages" / "Custom.Files" / "readme.txt").write_bytes(b"")
        shutil.rmtree(pkgs)
        failed = scons(ws, j, "packages", check=False)
        assert failed.returncode == 2
        out[j, "error"] = [ln for ln in failed.stderr.splitlines() if ln.startswith("scons: ***")]
    assert out["-j1"] and out["-j1"] == out["-j2"]
    assert out["-j1", "error"] == out["-j2", "error"]
    assert "readme.txt is empty" in out["-j2", "error"][0]
