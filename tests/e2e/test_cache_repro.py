"""Shared cache across checkouts, and bit-identical outputs across paths and times."""

import os
import re
import subprocess
from pathlib import Path

import pytest

from ffuforge.formats import blocksig

from scons_util import copy_workspace, scons

pytestmark = pytest.mark.e2e
OUT = Path("build/arm64/SampleA/Test")


def _actions(proc) -> list[str]:
    return re.findall(
        r"^(Package|Partition|Layout|FeatureMerge|StandInPE|StandInBinary|FFU|Resolve) (\S+)",
        proc.stdout,
        re.M,
    )


def _outputs(ws: Path) -> dict[str, bytes]:
    files = sorted((ws / "build/arm64/packages").glob("*.cab")) + sorted(
        (ws / OUT / "partitions").glob("*.img")
    )
    files += [ws / OUT / "Flash.ffu", ws / OUT / "Flash.spdx.json"]
    return {str(f.relative_to(ws)): f for f in files}


def _same(a: Path, b: Path) -> bool:
    return subprocess.run(["cmp", "-s", str(a), str(b)]).returncode == 0


def test_second_checkout_retrieves_everything_from_the_cache(tmp_path):
    cache = tmp_path / "cache"
    first = copy_workspace(tmp_path / "nightly")
    second = copy_workspace(tmp_path / "developer")
    scons(first, f"CACHE={cache}")
    proc = scons(second, f"CACHE={cache}")
    executed = [a for a in _actions(proc) if a[0] != "FFU"]
    assert executed == [], executed  # no package, FM or partition action ran
    assert len(re.findall(r"^Retrieved `", proc.stdout, re.M)) >= 40
    assert ("FFU", str(OUT / "Flash.ffu")) in _actions(proc)  # FFUs are not cached, only re-assembled
    a, b = _outputs(first), _outputs(second)
    assert a.keys() == b.keys()
    for name in a:
        assert _same(a[name], b[name]), name
    # The check of each image entry read every chunk: its digests are kept for the FFU writer,
    # bound to the retrieved file (issue 14), and they are the image's.
    for name in ("EFIESP", "MainOS", "Data"):
        img = second / OUT / "partitions" / f"{name}.img"
        with open(img, "rb") as fh:
            assert blocksig.read_sidecar(img, fh.fileno()) == blocksig.sign_file(img).digests, name
    # Partition images come out of the cache sparse, not as gigabytes of zeros.
    data = second / OUT / "partitions/Data.img"
    assert os.stat(data).st_blocks * 512 < os.stat(data).st_size // 20
    assert not list(cache.rglob("Flash.ffu"))


def test_clean_builds_at_different_paths_and_times_are_identical(tmp_path):
    a = copy_workspace(tmp_path / "a")
    b = copy_workspace(tmp_path / "deeper" / "path" / "b")
    scons(a)
    scons(b, env={"TZ": "Pacific/Auckland"})
    out_a, out_b = _outputs(a), _outputs(b)
    assert len(out_a) > 20
    for name in out_a:
        assert _same(out_a[name], out_b[name]), name
