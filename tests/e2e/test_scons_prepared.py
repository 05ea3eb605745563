"""End to end: in a full build every CAB is extracted by the package action that wrote it (in the
parallel package phase), so the partition actions extract nothing; the outputs equal those of a
build whose partitions extract every package themselves (the prepared entries deleted)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ffuforge.image import extractcache

from outputs_util import digest
from scons_util import copy_workspace, scons

pytestmark = pytest.mark.e2e
OUT = Path("build/arm64/SampleA/Test")


def _how(ws: Path) -> dict[str, dict[str, str]]:
    """Where each partition build took its packages from (the partition caches' SOURCES)."""
    out = {}
    for rec in sorted((ws / OUT / "partitions" / extractcache.DIRNAME).glob(f"*/{extractcache.SOURCES}")):
        data = json.loads(rec.read_bytes())
        out[data["partition"]] = {Path(cab).name: how for cab, how in data["cabs"]}
    return out


def _outputs(ws: Path) -> dict[str, str]:
    parts = ws / OUT / "partitions"
    files = [*parts.glob("*.img"), *parts.glob("*.json"), *parts.glob("*.wim"), ws / OUT / "Flash.ffu"]
    return {str(p.relative_to(ws)): digest(p) for p in sorted(files)}


def _entry(entry: Path) -> tuple[dict, dict[str, bytes]]:
    """An entry's parse record (without its key and member mtimes) and its store files' bytes."""
    rec = json.loads((entry / extractcache.RECORD).read_bytes())
    rec["store"] = {n: size for n, (size, _) in rec.pop("store").items()}
    rec.pop("key")
    files = {
        str(p.relative_to(entry)): p.read_bytes()
        for p in sorted(entry.rglob("*"))
        if p.is_file() and p.name != extractcache.RECORD
    }
    return rec, files


def _same_as_the_cabs(ws: Path, scratch: Path) -> None:
    """Every entry a package action made (from the members it wrote: no CAB read) equals the entry
    extracting its CAB gives (the record and every store file): every kind of package the sample
    has, drivers, BCD, the bootloader's binary partition, languages, FIPs and the version package."""
    scratch.mkdir()
    entries = [e for e in (ws / "build").rglob(f"{extractcache.DIRNAME}/*") if "partitions" not in e.parts]
    assert len(entries) > 30
    for entry in entries:
        cab = entry.parent.parent / entry.name
        parsed, ref = extractcache._fill(str(cab), None, str(scratch), cab.name, "k")
        assert parsed.error is None, parsed.error
        assert _entry(entry) == _entry(Path(ref)), cab.name


def test_partitions_extract_nothing_and_equal_a_partition_side_extraction(tmp_path):
    ws = copy_workspace(tmp_path / "ws")
    scons(ws, "-j2")
    how = _how(ws)
    assert {"MainOS", "EFIESP", "UpdateOS", "BOOTLOADER"} <= set(how)
    assert len(how["MainOS"]) > 20
    every = {cab: h for per in how.values() for cab, h in per.items()}
    assert set(every.values()) == {"package"}, every  # generated packages (FIPs, version) too
    prepared = {
        p.parent.parent.name + "/" + p.name
        for p in (ws / "build").rglob(f"{extractcache.DIRNAME}/*")
        if "partitions" not in p.parts
    }
    assert {f"packages/{cab}" for cab in how["EFIESP"]} <= prepared
    _same_as_the_cabs(ws, tmp_path / "ref")
    want = _outputs(ws)

    # the same sources, the partitions extracting every package themselves
    for d in list((ws / "build").rglob(extractcache.DIRNAME)):
        shutil.rmtree(d)
    for rel in want:
        (ws / rel).unlink()
    proc = scons(ws, "-j2")
    assert "Package " not in proc.stdout  # no CAB was written again: nothing was prepared
    assert {h for per in _how(ws).values() for h in per.values()} == {"extracted"}
    assert _outputs(ws) == want
    # the next build reuses the partitions' own entries, and is a no-op
    assert scons(ws, "-q", check=False).returncode == 0
