"""Extracted packages kept between builds (ffuforge.image.extractcache): hits, misses, eviction, damaged
entries, the same errors in the same order with and without it and with worker processes, hostile
CABs still refused; end to end, an incremental MainOS equal to a clean build's."""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from pathlib import Path

import pytest

from ffuforge.errors import ConfigError, FFUError, FormatError
from ffuforge.formats import cab, fsimage, fstools
from ffuforge.image import extractcache, install, partition
from ffuforge.package.build import build_variant
from ffuforge.util import workers

from helpers import plan, wm
from oracles import require_tool
from scons_util import copy_workspace, scons

EPOCH = 1577836800


def _cab(tmp_path: Path, body: str, name: str = "Pkg", content: str | None = None, extra: str = "") -> Path:
    d = tmp_path / f"src-{name}"
    d.mkdir(parents=True, exist_ok=True)
    (d / "a.txt").write_text(content if content is not None else f"a from {name}\n")
    v = plan(wm(d, body, name=name, extra=extra))[0]
    out = tmp_path / "cabs" / v.cab_name
    build_variant(v, out)
    return out


def _files(tmp_path: Path, name: str, dest: str = "$(runtime.system32)", content: str | None = None) -> Path:
    return _cab(
        tmp_path,
        f'<files><file source=".\\a.txt" destinationDir="{dest}"/></files>',
        name=name,
        content=content,
    )


def _altered(good: Path, out: Path) -> Path:
    """The CAB with its payload changed after update.mum was written (same size, other bytes)."""
    with cab.CabReader(good) as r:
        members = {m.name: r.read(m, 1 << 24) for m in r.members}
    payload = next(n for n in members if n.endswith("\\a.txt"))
    members[payload] = bytes(b ^ 1 for b in members[payload])
    cab.write_cab(out, [cab.CabMember(n, data=d) for n, d in members.items()])
    return out


def _stage(cabs, work: Path, cache: Path | None, jobs: int = 1, name: str = "MainOS") -> install.Staging:
    return partition.stage(name, cabs, work, epoch=EPOCH, cache_dir=cache, jobs=jobs)


def _entries(cache: Path) -> list[str]:
    return sorted(e for e in os.listdir(cache) if e != extractcache.SOURCES) if cache.exists() else []


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def counting(monkeypatch):
    """The CABs actually extracted (in this process)."""
    seen: list[str] = []
    real = install.parse_package

    def parse(cab_path, part, store):
        seen.append(Path(cab_path).name)
        return real(cab_path, part, store)

    monkeypatch.setattr(install, "parse_package", parse)
    return seen


# ------------------------------------------------------------------------------- hit, miss, eviction


def test_hit_links_the_kept_files_and_extracts_nothing(tmp_path, counting):
    a, b = _files(tmp_path, "A"), _files(tmp_path, "B", "$(runtime.system32)\\sub")
    cache = tmp_path / "cache"
    first = _stage([a, b], tmp_path / "w1", cache)
    assert sorted(counting) == sorted([a.name, b.name]) and len(_entries(cache)) == 2
    counting.clear()
    second = _stage([a, b], tmp_path / "w2", cache)
    assert counting == []
    assert second.manifest() == first.manifest()
    assert _tree(tmp_path / "w2" / "root") == _tree(tmp_path / "w1" / "root")
    staged = tmp_path / "w2/root/Windows/System32/a.txt"
    kept = [p for p in cache.rglob("*") if p.is_file() and p.read_bytes() == b"a from A\n"]
    assert len(kept) == 1 and os.path.samestat(staged.stat(), kept[0].stat())  # a hard link, not a copy
    assert not staged.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)  # read-only
    # the result is that of installing the packages without any cache
    plain = install.Staging("MainOS", tmp_path / "plain" / "root")
    for c in (a, b):
        install.install_package(plain, c)
    assert {k: vars(v) for k, v in plain.files.items()} == {
        k: vars(v) for k, v in second.files.items() if v.package != partition.REGISTRY_OWNER
    }


def test_a_rewritten_cab_misses_and_the_old_entry_goes(tmp_path, counting):
    a, b = _files(tmp_path, "A"), _files(tmp_path, "B", "$(runtime.system32)\\sub")
    cache = tmp_path / "cache"
    _stage([a, b], tmp_path / "w", cache)
    before = _entries(cache)
    counting.clear()
    _files(tmp_path, "A", content="a from A, edited\n")  # rebuilt in place: new bytes, same name
    _stage([a, b], tmp_path / "w", cache)
    assert counting == [a.name]
    after = _entries(cache)
    assert len(after) == 2 and len(set(before) & set(after)) == 1
    assert (tmp_path / "w/root/Windows/System32/a.txt").read_text() == "a from A, edited\n"
    # the same bytes written again (a CacheDir copy, a rebuild): another file, so extracted again
    counting.clear()
    shutil.copy2(b, f"{b}.tmp")
    os.replace(f"{b}.tmp", b)
    _stage([a, b], tmp_path / "w", cache)
    assert counting == [b.name]


def test_entries_the_latest_build_did_not_use_are_removed(tmp_path, counting):
    a, b = _files(tmp_path, "A"), _files(tmp_path, "B", "$(runtime.system32)\\sub")
    cache = tmp_path / "cache"
    _stage([a, b], tmp_path / "w", cache)
    (cache / f"{extractcache.TEMP_PREFIX}left-by-a-killed-build").mkdir()
    (cache / "stray").mkdir()
    _stage([a], tmp_path / "w", cache)
    assert len(_entries(cache)) == 1 and _entries(cache)[0].startswith(a.name)
    # a failing build keeps what it had (the next build after the fix still finds it)
    bad = _altered(b, tmp_path / "bad.cab")
    with pytest.raises(FFUError, match="does not match its SHA-256"):
        _stage([a, bad], tmp_path / "w", cache)
    assert len(_entries(cache)) == 1 and _entries(cache)[0].startswith(a.name)


# ------------------------------------------------------------------------------- damaged entries


@pytest.mark.parametrize(
    "damage",
    [
        "truncated member",
        "member rewritten",
        "record missing",
        "record garbage",
        "record of another key",
        "member missing",
    ],
)
def test_damaged_entry_is_extracted_again(tmp_path, counting, damage):
    a = _files(tmp_path, "A")
    cache = tmp_path / "cache"
    _stage([a], tmp_path / "w", cache)
    (entry,) = [cache / e for e in _entries(cache)]
    member = next(
        p for p in entry.iterdir() if p.name != extractcache.RECORD and p.read_bytes() == b"a from A\n"
    )
    record = entry / extractcache.RECORD
    if damage in ("truncated member", "member rewritten"):
        member.chmod(0o644)
        member.write_bytes(b"a from " if damage == "truncated member" else b"B from A\n")
        os.utime(member, ns=(member.stat().st_atime_ns, member.stat().st_mtime_ns + 1_000_000_000))
    elif damage == "record missing":
        record.unlink()
    elif damage == "record garbage":
        record.write_bytes(b'{"format": 1, "key": ')
    elif damage == "record of another key":
        rec = json.loads(record.read_bytes())
        rec["key"] = "0" * 64
        record.write_text(json.dumps(rec))
    else:
        member.unlink()
    counting.clear()
    _stage([a], tmp_path / "w", cache)
    assert counting == [a.name]
    assert (tmp_path / "w/root/Windows/System32/a.txt").read_bytes() == b"a from A\n"
    assert len(_entries(cache)) == 1


def test_half_written_entry_is_never_used(tmp_path, counting, monkeypatch):
    """A build killed while filling an entry leaves only a temp directory: never read, removed."""
    a = _files(tmp_path, "A")
    cache = tmp_path / "cache"
    real_dump = json.dump

    def killed(*args, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(json, "dump", killed)
    with pytest.raises(KeyboardInterrupt):
        _stage([a], tmp_path / "w", cache)
    assert _entries(cache) == []  # nothing under a final name, no temp either
    (cache / f"{extractcache.TEMP_PREFIX}{a.name}.{'0' * 32}-x").mkdir()  # as SIGKILL would leave it
    monkeypatch.setattr(json, "dump", real_dump)
    counting.clear()
    _stage([a], tmp_path / "w", cache)
    assert counting == [a.name]
    assert [e for e in _entries(cache) if e.startswith(extractcache.TEMP_PREFIX)] == []


# ------------------------------------------------------------------------------ errors, in order


def _scenarios(tmp_path: Path) -> dict[str, tuple[str, list[Path]]]:
    a = _files(tmp_path, "A")
    b = _files(tmp_path, "B")  # the same file as A
    sub = _files(tmp_path, "Sub", "$(runtime.system32)\\sub")
    bad = _altered(sub, tmp_path / "altered.cab")
    reg = '<regKeys><regKey keyName="$(hklm.software)\\K"><regValue name="v" type="REG_SZ" value="{}"/></regKey></regKeys>'
    r1, r2 = _cab(tmp_path, reg.format(1), name="R1"), _cab(tmp_path, reg.format(2), name="R2")
    drv = _cab(
        tmp_path,
        '<files><file source=".\\a.txt" destinationDir="$(runtime.system32)" name="drivers"/></files>',
        name="Drv",
    )
    under = _files(tmp_path, "Under", "$(runtime.system32)\\drivers")
    efi = _cab(
        tmp_path,
        '<onecorePackageInfo targetPartition="EFIESP"/><files><file source=".\\a.txt"/></files>',
        name="Efi",
    )
    return {
        "file collision before a later bad hash": ("MainOS", [a, b, bad]),
        "bad hash before a later collision": ("MainOS", [bad, a, b]),
        "registry conflict": ("MainOS", [sub, r1, r2]),
        "file used as a directory": ("MainOS", [drv, a, under]),
        "directory used as a file": ("MainOS", [under, drv]),
        "wrong partition": ("MainOS", [a, efi]),
        "not a CAB": ("MainOS", [a, tmp_path / "src-A" / "a.txt"]),
        "missing CAB": ("MainOS", [a, tmp_path / "nonexistent.cab"]),
    }


def _error(fn) -> str:
    with pytest.raises(FFUError) as info:
        fn()
    return str(info.value)


def _errors_of(tmp_path: Path, label: str, part: str, cabs: list[Path]) -> dict[str, str]:
    def sequential():
        st = install.Staging(part, tmp_path / "seq" / label / "root")
        for c in cabs:
            install.install_package(st, c)

    cache = tmp_path / "cache" / label
    return {
        "sequential install": _error(sequential),
        "no cache": _error(lambda: _stage(cabs, tmp_path / "w0", None, name=part)),
        "cold cache": _error(lambda: _stage(cabs, tmp_path / "w1", cache, name=part)),
        "warm cache": _error(lambda: _stage(cabs, tmp_path / "w2", cache, name=part)),
        "-j2": _error(lambda: _stage(cabs, tmp_path / "w3", tmp_path / "cache2" / label, jobs=2, name=part)),
    }


def test_errors_are_those_of_a_sequential_install(tmp_path):
    scenarios = _scenarios(tmp_path)
    try:
        for label, (part, cabs) in scenarios.items():
            got = _errors_of(tmp_path, label, part, cabs)
            assert len(set(got.values())) == 1, (label, got)
    finally:
        workers.shutdown()
    assert "installed by both Contoso-Test-A and Contoso-Test-B" in _error(
        lambda: _stage(scenarios["file collision before a later bad hash"][1], tmp_path / "w", None)
    )
    assert "does not match its SHA-256" in _error(
        lambda: _stage(scenarios["bad hash before a later collision"][1], tmp_path / "w", None)
    )


def test_raw_image_twice_in_the_same_order(tmp_path):
    d = tmp_path / "fw"
    d.mkdir()
    (d / "fw.bin").write_bytes(b"\x01" * 5000)
    v = plan(
        wm(
            d,
            '<onecorePackageInfo targetPartition="BOOTLOADER" binaryPartition="true">'
            '<binaryPartition imageSource=".\\fw.bin"/></onecorePackageInfo>',
        )
    )[0]
    build_variant(v, tmp_path / "fw.cab")
    shutil.copy(tmp_path / "fw.cab", tmp_path / "fw2.cab")
    st = _stage([tmp_path / "fw.cab"], tmp_path / "w", tmp_path / "cache", name="BOOTLOADER")
    assert st.raw_image[0].read_bytes() == b"\x01" * 5000 and not st.files
    for cache in (None, tmp_path / "cache"):
        with pytest.raises(
            FFUError, match="gets a raw image from both Contoso-Test-Pkg and Contoso-Test-Pkg"
        ):
            _stage([tmp_path / "fw.cab", tmp_path / "fw2.cab"], tmp_path / "w", cache, name="BOOTLOADER")


def test_workers_give_the_same_staging(tmp_path):
    cabs = [_files(tmp_path, f"P{i}", f"$(runtime.system32)\\p{i}") for i in range(6)]
    try:
        one = _stage(cabs, tmp_path / "w1", tmp_path / "c1")
        two = _stage(cabs, tmp_path / "w2", tmp_path / "c2", jobs=2)
    finally:
        workers.shutdown()
    assert one.manifest() == two.manifest()
    assert _tree(tmp_path / "w1" / "root") == _tree(tmp_path / "w2" / "root")
    assert len(_entries(tmp_path / "c2")) == 6


# ------------------------------------------------------------------------------------ hostile CABs


@pytest.mark.parametrize("jobs", [1, 2])
def test_hostile_cab_is_refused_and_never_kept(tmp_path, jobs):
    good = _files(tmp_path, "A")
    sub = _files(tmp_path, "Sub", "$(runtime.system32)\\sub")
    bad = _altered(sub, tmp_path / "altered.cab")
    with cab.CabReader(good) as r:
        members = {m.name: r.read(m, 1 << 24) for m in r.members}
    mum = (
        members["update.mum"]
        .decode()
        .replace('name="$(runtime.system32)\\a.txt"', 'name="..\\..\\escaped.txt"')
    )
    escaping = tmp_path / "escaping.cab"
    cab.write_cab(
        escaping,
        [cab.CabMember(n, data=mum.encode() if n == "update.mum" else d) for n, d in members.items()],
    )
    cache = tmp_path / "cache"
    try:
        for hostile, message in ((bad, "does not match its SHA-256"), (escaping, "escaped|outside|\\.\\.")):
            with pytest.raises(FFUError, match=message):
                _stage([good, hostile], tmp_path / "w", cache, jobs=jobs)
            assert [e for e in _entries(cache) if not e.startswith(good.name)] == []
    finally:
        workers.shutdown()
    assert not list(tmp_path.parent.glob("escaped.txt")) and not list(tmp_path.rglob("escaped.txt"))


def test_symlinked_stage_directory_still_refused(tmp_path):
    """Placing kept files checks the staged tree as extracting did: never through a symlink."""
    target = tmp_path / "outside"
    target.mkdir()
    root = tmp_path / "stage" / "root"
    (root / "Windows").mkdir(parents=True)
    os.symlink(target, root / "Windows" / "System32")
    st = install.Staging("MainOS", root)
    a = _files(tmp_path, "A")
    store = tmp_path / "store"
    store.mkdir()
    parsed = install.parse_package(a, "MainOS", store)
    with pytest.raises(FFUError, match="not a directory .*symbolic link"):
        install.replay(st, parsed, store)
    assert not list(target.iterdir())


def test_copy_when_hard_links_fail(tmp_path, monkeypatch):
    a = _files(tmp_path, "A")

    def no_link(*args, **kw):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_link)
    _stage([a], tmp_path / "w", tmp_path / "cache")
    staged = tmp_path / "w/root/Windows/System32/a.txt"
    assert staged.read_bytes() == b"a from A\n" and staged.stat().st_nlink == 1
    assert not staged.stat().st_mode & stat.S_IWUSR


# ---------------------------------------------------------------------------------- NTFS fsync


def test_skipping_fsync_changes_no_byte(tmp_path, monkeypatch):
    require_tool("eatmydata")
    require_tool("mkntfs")
    tree = tmp_path / "tree"
    for i in range(30):
        p = tree / f"d{i % 4}" / f"f{i}.bin"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(os.urandom(i * 1499))
    assert fstools.no_fsync()
    synced = fsimage.write_ntfs(
        tree, tmp_path / "a.img", size_bytes=16 << 20, label="MainOS", timestamp=EPOCH
    )
    monkeypatch.setattr(fstools, "no_fsync", lambda: [])
    plain = fsimage.write_ntfs(tree, tmp_path / "b.img", size_bytes=16 << 20, label="MainOS", timestamp=EPOCH)
    assert synced.read_bytes() == plain.read_bytes()


# ------------------------------------------------------------------------------------------- e2e

OUT = Path("build/arm64/SampleA/Test")


@pytest.mark.e2e
def test_incremental_partition_equals_a_clean_build(tmp_path):
    """Build, edit one package, build again (-j1, kept packages reused); a clean -j2 build of the
    edited sources gives the same partitions and FFU."""
    ws = copy_workspace(tmp_path / "incr")
    scons(ws, "-j1")
    cache = ws / OUT / "partitions" / extractcache.DIRNAME / "MainOS"
    prepared = ws / "build/arm64/packages" / extractcache.DIRNAME

    def keys() -> dict[str, str]:  # the package actions' entries (extractcache.prepare), by CAB
        return {e.name: json.loads((e / extractcache.RECORD).read_bytes())["key"] for e in prepared.iterdir()}

    before = keys()
    readme = ws / "packages/Custom.Files/readme.txt"
    readme.write_text(readme.read_text() + "edited\n")
    scons(ws, "-j1")
    after = keys()
    changed = sorted(n for n in after if before.get(n) != after[n])
    assert changed == ["Contoso.Custom.Files.cab"] and set(before) == set(after)  # one replaced
    used = json.loads((cache / extractcache.SOURCES).read_bytes())["cabs"]
    assert len(used) > 20 and {how for _, how in used} == {"package"}  # the partition extracted none
    assert all(not e.startswith(extractcache.TEMP_PREFIX) for e in [*after, *_entries(cache)])
    clean = copy_workspace(tmp_path / "clean")
    shutil.copy2(readme, clean / "packages/Custom.Files/readme.txt")
    scons(clean, "-j2")
    parts = sorted(
        p.relative_to(ws)
        for p in (ws / OUT / "partitions").iterdir()
        if p.suffix in (".img", ".json", ".wim")
    )
    assert len(parts) == 10  # 4 partitions' .img + .json, UpdateOS.wim + .json
    for rel in parts + [OUT / "Flash.ffu"]:
        assert (ws / rel).read_bytes() == (clean / rel).read_bytes(), rel
    assert scons(ws, "-q", check=False).returncode == 0
    proc = scons(ws, "-c", check=False)
    assert proc.returncode == 0 and not cache.exists() and not prepared.exists(), proc.stdout


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))


def test_error_kinds_of_damaged_packages(tmp_path):
    a = _files(tmp_path, "A")
    bad = _altered(a, tmp_path / "bad.cab")
    with pytest.raises(FormatError, match="does not match its SHA-256"):
        _stage([bad], tmp_path / "w", tmp_path / "cache")
    target = tmp_path / "outside"
    target.mkdir()
    root = tmp_path / "stage" / "root"
    (root / "Windows").mkdir(parents=True)
    os.symlink(target, root / "Windows" / "System32")
    store = tmp_path / "store"
    store.mkdir()
    parsed = install.parse_package(a, "MainOS", store)
    with pytest.raises(ConfigError, match="not a directory .*symbolic link"):
        install.replay(install.Staging("MainOS", root), parsed, store)
