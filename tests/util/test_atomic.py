"""Atomic outputs: renamed into place whole, with the permissions open() would give them."""

import os
import stat

import pytest

from ffuforge.util import atomic


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_outputs_get_the_mode_open_gives(tmp_path):
    atomic.write_bytes(tmp_path / "a.json", b"{}")
    with open(tmp_path / "b.json", "wb") as fh:
        fh.write(b"{}")
    mode = stat.S_IMODE((tmp_path / "a.json").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "b.json").stat().st_mode) == 0o666 & ~_umask()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json"]  # no temp file left


def test_failed_block_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic.atomic_output(tmp_path / "x.ffu") as fh:
        fh.write(b"half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
