"""A shared cache (CACHE=) that cannot ship bad bytes: damaged entries, a killed store, a full or
read-only cache disk.

Every case ends the same way: scons exits 0 only with the clean build's bytes under every output
name (sparse-aware digests of an independent clean build without a cache), says what it ignored
in one line, and `scons -q` agrees that everything is up to date. A damaged entry is replaced, so
a second checkout then takes every entry from the cache without a warning.

What is real and what is simulated: the damage is done to real entries of a real cache (a flipped
byte, the file cut in half, a block cut out of its middle: `fallocate --collapse-range` for the
sparse partition image); the full disk is a real tmpfs of 2 MiB (needs root, skipped otherwise);
the read-only cache is a tmpfs remounted read-only (root ignores file modes, a read-only mount
binds it); the killed store is a real SIGKILL of scons while a `.partial` file is in the cache.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from outputs_util import assert_complete, copy_tree, snapshot
from scons_util import copy_workspace

pytestmark = pytest.mark.e2e
OUT = "build/arm64/SampleA/Test"
RECORD = ".ffuforge"
TAG = "ffuforge-cache-entry-v1"


def _environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("SOURCE_DATE_EPOCH", "FFU_SIGN_PASSWORD")}


def _scons(ws: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "SCons", "-Q", *args],
        cwd=ws,
        capture_output=True,
        text=True,
        env=_environ(),
        timeout=timeout,
    )


def _ok(proc: subprocess.CompletedProcess) -> None:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Traceback" not in out, out


def _warnings(proc: subprocess.CompletedProcess) -> list[str]:
    return [ln for ln in proc.stderr.splitlines() if ln.startswith("scons: warning:")]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A clean build without a cache, and a cache filled by another checkout's build."""
    base = tmp_path_factory.mktemp("ref")
    ws = copy_workspace(base / "ws")
    _ok(_scons(ws))
    outputs, temps = snapshot(ws)
    assert not temps
    nightly = copy_workspace(base / "nightly")
    cache = base / "cache"
    proc = _scons(nightly, f"CACHE={cache}")
    _ok(proc)
    assert not _warnings(proc), proc.stderr
    sources = copy_workspace(base / "sources")
    return {"outputs": outputs, "cache": cache, "sources": sources, "ws": ws}


def _fresh(reference, path: Path) -> Path:
    """A new checkout: the sample's sources, nothing built."""
    return copy_tree(reference["sources"], path)


def _records(cache: Path) -> dict[Path, tuple[str, int]]:
    """Cache entry -> (kind, size), from the records beside them (the entry must be there)."""
    out = {}
    for rec in cache.glob(f"*/*{RECORD}"):
        parts = rec.read_text().split()
        entry = rec.with_name(rec.name[: -len(RECORD)])
        if parts[0] == TAG and entry.exists():
            out[entry] = (parts[1], int(parts[2]))
    return out


def _entry(cache: Path, kind: str) -> Path:
    """An entry of `kind`: the largest (a partition image: MainOS, with its file system)."""
    found = [(size, e) for e, (k, size) in _records(cache).items() if k == kind]
    assert found, f"no {kind} entry in the cache"
    if kind == "image":
        found = [f for f in found if f[0] < 1 << 30]  # not the 7 GiB Data volume: MainOS
    return max(found)[1]


def _data_offset(path: Path, at: int) -> int:
    """An offset holding data at or after `at` (partition images are mostly holes)."""
    with open(path, "rb") as fh:
        try:
            return os.lseek(fh.fileno(), at, os.SEEK_DATA)
        except OSError:
            return os.lseek(fh.fileno(), 0, os.SEEK_DATA)


def _damage(entry: Path, how: str) -> None:
    size = entry.stat().st_size
    if how == "flip":
        off = _data_offset(entry, size // 2)
        with open(entry, "r+b") as fh:
            fh.seek(off)
            b = fh.read(1)
            fh.seek(off)
            fh.write(bytes([b[0] ^ 0x01]))
    elif how == "truncate":
        os.truncate(entry, size // 2)
    elif how == "delete-block":
        block = 4096 if size > 4 * 4096 else max(1, size // 8)
        off = (size // 2) // block * block
        if size > 1 << 20:  # sparse: cut the block out in place, holes kept
            r = subprocess.run(
                ["fallocate", "--collapse-range", "-o", str(off), "-l", str(block), str(entry)],
                capture_output=True,
                text=True,
            )
            if r.returncode != 0:
                pytest.skip(f"fallocate --collapse-range not supported here: {r.stderr.strip()}")
        else:
            data = entry.read_bytes()
            entry.write_bytes(data[:off] + data[off + block :])
    assert entry.stat().st_size != size or how == "flip"


@pytest.mark.parametrize("how", ["flip", "truncate", "delete-block"])
@pytest.mark.parametrize("kind", ["cab", "image", "fm"])
def test_damaged_entry_is_a_miss_and_is_replaced(reference, tmp_path, kind, how):
    cache = tmp_path / "cache"
    copy_tree(reference["cache"], cache)
    entry = _entry(cache, kind)
    _damage(entry, how)
    ws = _fresh(reference, tmp_path / "ws")
    proc = _scons(ws, f"CACHE={cache}")
    _ok(proc)
    warned = _warnings(proc)
    assert len(warned) == 1 and entry.name in warned[0] and "not used, building it" in warned[0], proc.stderr
    assert_complete(ws, reference["outputs"], f"{kind} entry, {how}")
    assert _scons(ws, "-q", f"CACHE={cache}").returncode == 0
    # the damaged entry was replaced by the rebuilt output: another checkout takes all from the cache
    other = _fresh(reference, tmp_path / "other")
    proc = _scons(other, f"CACHE={cache}")
    _ok(proc)
    assert not _warnings(proc), proc.stderr
    assert not re.findall(r"^(Package|Partition|FeatureMerge) ", proc.stdout, re.M), proc.stdout
    assert_complete(other, reference["outputs"], "second checkout")


def test_merged_fm_entries_of_the_v1_signature_are_taken(reference, tmp_path):
    """Merged-FM entries keep their cache names across the chunk-signature change (their action
    does not use it), so records written before it hold another signature: the entry is compared
    byte for byte with the FM this build merges instead, so it is taken without a warning."""
    cache = tmp_path / "cache"
    copy_tree(reference["cache"], cache)
    fms = [e for e, (k, _) in _records(cache).items() if k == "fm"]
    assert fms
    for entry in fms:
        rec = Path(str(entry) + RECORD)
        tag, kind, size, _ = rec.read_text().split()
        rec.write_text(f"{tag} {kind} {size} {'ab' * 32}\n")  # what a v1 record holds: another hash
    ws = _fresh(reference, tmp_path / "ws")
    proc = _scons(ws, f"CACHE={cache}")
    _ok(proc)
    assert not _warnings(proc), proc.stderr
    assert not re.findall(r"^FeatureMerge ", proc.stdout, re.M), proc.stdout
    assert_complete(ws, reference["outputs"], "v1 FM records")


def test_entry_without_its_record_is_not_trusted(reference, tmp_path):
    """An entry SCons itself (or an older ffuforge) stored: nothing says what its bytes should be."""
    cache = tmp_path / "cache"
    copy_tree(reference["cache"], cache)
    entry = _entry(cache, "cab")
    Path(str(entry) + RECORD).unlink()
    _damage(entry, "flip")
    ws = _fresh(reference, tmp_path / "ws")
    proc = _scons(ws, f"CACHE={cache}")
    _ok(proc)
    assert len(_warnings(proc)) == 1 and "no valid record" in _warnings(proc)[0], proc.stderr
    assert_complete(ws, reference["outputs"], "entry without a record")


def test_corrupted_output_in_build_is_rebuilt(reference, tmp_path):
    """A damaged CAB under its output name (with or without CACHE=) does not break later builds."""
    cache = tmp_path / "cache"
    copy_tree(reference["cache"], cache)
    ws = _fresh(reference, tmp_path / "ws")
    _ok(_scons(ws, f"CACHE={cache}"))
    cab = ws / "build/arm64/packages/Contoso.Custom.Files.cab"
    _damage(cab, "flip")
    img = ws / OUT / "partitions/EFIESP.img"
    _damage(img, "truncate")
    _ok(_scons(ws, f"CACHE={cache}"))
    assert_complete(ws, reference["outputs"], "after damage in build/ (cache)")
    _damage(cab, "delete-block")
    _ok(_scons(ws))
    assert_complete(ws, reference["outputs"], "after damage in build/ (no cache)")
    assert _scons(ws, "-q").returncode == 0


def test_ffu_writer_refuses_an_image_of_another_size(reference, tmp_path):
    """Defence behind the checks above: an image cut short gave an FFU with fewer blocks."""
    from ffuforge.errors import FormatError
    from ffuforge.image import stages
    from ffuforge.util.atomic import sparse_copy

    out = reference["ws"] / OUT
    images = {}
    for name in ("BOOTLOADER", "EFIESP", "MainOS", "Data"):
        images[name] = tmp_path / f"{name}.img"
        sparse_copy(out / f"partitions/{name}.img", images[name])
    os.truncate(images["EFIESP"], images["EFIESP"].stat().st_size - 4096)
    with pytest.raises(FormatError, match=r"EFIESP.img.*partition EFIESP .*truncated or replaced"):
        stages.build_ffu(out / "layout.json", images, tmp_path / "Flash.ffu", epoch=1577836800)
    assert not (tmp_path / "Flash.ffu").exists()


# ------------------------------------------------------------------------- storing


def _mount_tmpfs(where: Path, size: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True, text=True
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.strip()}")


def _umount(where: Path) -> None:
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


def _final_entries_are_whole(cache: Path) -> int:
    """Every entry under its final name has a record and the record's size: nothing partial."""
    n = 0
    for sub in cache.iterdir():
        if not sub.is_dir():
            continue
        for f in sub.iterdir():
            if f.name.startswith(".") or f.name.endswith(RECORD):
                continue
            rec = Path(str(f) + RECORD)
            assert rec.exists(), f"entry without a record: {f}"
            assert int(rec.read_text().split()[2]) == f.stat().st_size, f
            n += 1
    return n


def test_full_cache_disk_is_one_warning(reference, tmp_path):
    cache = tmp_path / "cache"
    _mount_tmpfs(cache, "2m")
    try:
        ws = _fresh(reference, tmp_path / "ws")
        proc = _scons(ws, f"CACHE={cache}")
        _ok(proc)
        warned = _warnings(proc)
        assert len(warned) == 1 and "cannot store in the cache" in warned[0], proc.stderr
        assert "No space left on device" in warned[0], warned
        assert_complete(ws, reference["outputs"], "full cache disk")
        assert _final_entries_are_whole(cache) > 0
        # what did fit is good: a second checkout takes it without complaint
        other = _fresh(reference, tmp_path / "other")
        proc = _scons(other, f"CACHE={cache}", "--cache-readonly")
        _ok(proc)
        assert not _warnings(proc), proc.stderr
        assert re.search(r"^Retrieved `", proc.stdout, re.M)
        assert_complete(other, reference["outputs"], "second checkout, full cache")
    finally:
        _umount(cache)


def test_read_only_cache_is_one_warning(reference, tmp_path):
    cache = tmp_path / "cache"
    _mount_tmpfs(cache, "64m")
    try:
        nightly = _fresh(reference, tmp_path / "nightly")
        _ok(_scons(nightly, f"CACHE={cache}", "packages"))  # some entries, then read-only
        subprocess.run(["mount", "-o", "remount,ro", str(cache)], check=True)
        ws = _fresh(reference, tmp_path / "ws")
        proc = _scons(ws, f"CACHE={cache}")
        _ok(proc)
        warned = _warnings(proc)
        assert len(warned) == 1 and "Read-only file system" in warned[0], proc.stderr
        assert re.search(r"^Retrieved `", proc.stdout, re.M)
        assert_complete(ws, reference["outputs"], "read-only cache")
    finally:
        _umount(cache)
    # a cache folder that does not exist and cannot be made: one warning, built without it
    ro = tmp_path / "ro"
    _mount_tmpfs(ro, "1m")
    try:
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
        ws = _fresh(reference, tmp_path / "ws2")
        proc = _scons(ws, f"CACHE={ro / 'cache'}")
        _ok(proc)
        warned = _warnings(proc)
        assert len(warned) == 1 and "cannot be used" in warned[0], proc.stderr
        assert_complete(ws, reference["outputs"], "cache that cannot be made")
    finally:
        _umount(ro)


def test_store_killed_by_sigkill(reference, tmp_path):
    """SIGKILL while an entry is being copied into the cache: the copy is a `.partial` temp file,
    never an entry under its final name; the next build and another checkout are correct."""
    landed = 0
    for attempt in range(6):
        cache = tmp_path / f"cache{attempt}"
        ws = _fresh(reference, tmp_path / f"ws{attempt}")
        proc = subprocess.Popen(
            [sys.executable, "-m", "SCons", "-Q", f"CACHE={cache}"],
            cwd=ws,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=_environ(),
            start_new_session=True,
        )
        seen = False
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                subs = [e.path for e in os.scandir(cache) if e.is_dir()]
                seen = any(n.endswith(".partial") for s in subs for n in os.listdir(s))
            except OSError:
                pass
            if seen:
                os.killpg(proc.pid, signal.SIGKILL)
                break
        proc.wait()
        if not seen:
            continue
        landed += 1
        _final_entries_are_whole(cache)  # asserts: every final entry whole, with its record
        _ok(_scons(ws, f"CACHE={cache}"))
        assert_complete(ws, reference["outputs"], f"after SIGKILL during a cache store (run {attempt})")
        other = _fresh(reference, tmp_path / f"other{attempt}")
        proc2 = _scons(other, f"CACHE={cache}")
        _ok(proc2)
        assert not _warnings(proc2), proc2.stderr
        assert_complete(other, reference["outputs"], "second checkout after the kill")
        if landed >= 2:
            break
    assert landed, "the kill never landed while an entry was being stored"
