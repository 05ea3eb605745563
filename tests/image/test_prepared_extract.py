"""Entries the package action prepares (ffuforge.image.extractcache.prepare): the partition uses
them in place and extracts nothing; a CAB written again misses; an unfinished or damaged entry is
never trusted; a package of another partition, and every other bad input, gives the error of a
partition-bound extraction, in the same order; one entry per CAB."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from test_install_cache import _cab, _error, _files, _scenarios, _stage, _tree

from ffuforge.errors import FFUError
from ffuforge.image import extractcache, install


@pytest.fixture
def counting(monkeypatch):
    """The CABs the partition extracted (in this process)."""
    seen: list[str] = []
    real = install.parse_package

    def parse(cab_path, part, store):
        seen.append(Path(cab_path).name)
        return real(cab_path, part, store)

    monkeypatch.setattr(install, "parse_package", parse)
    return seen


def _prepared(cab: Path) -> Path:
    return extractcache.prepared_entry(cab)


def _sources(cache: Path) -> list[str]:
    return [how for _, how in json.loads((cache / extractcache.SOURCES).read_bytes())["cabs"]]


def _manifest(st: install.Staging) -> str:
    return json.dumps(st.manifest(), sort_keys=True)


def test_prepared_entry_is_used_in_place(tmp_path, counting):
    """Prepared CABs are neither extracted by the partition nor copied into its cache; the staged
    tree, its manifest and its file identities equal those of a partition-side extraction."""
    a, b = _files(tmp_path, "A"), _files(tmp_path, "B", "$(runtime.windows)")
    want = _stage([a, b], tmp_path / "ref", None)
    want_tree, want_manifest = _tree(want.root), _manifest(want)
    assert extractcache.prepare(a) and extractcache.prepare(b)
    assert sorted(os.listdir(a.parent / extractcache.DIRNAME)) == sorted([a.name, b.name])
    counting.clear()
    cache = tmp_path / "cache"
    st = _stage([a, b], tmp_path / "w", cache)
    assert counting == []
    assert _sources(cache) == ["package", "package"]
    assert sorted(os.listdir(cache)) == [extractcache.SOURCES]  # nothing copied, nothing kept twice
    assert _tree(st.root) == want_tree and _manifest(st) == want_manifest
    staged = st.root / "Windows/System32/a.txt"
    assert os.stat(staged).st_ino == os.stat(_prepared(a) / "0").st_ino  # a link, not a copy


def test_some_prepared_some_not_with_workers(tmp_path, counting):
    """A mix of prepared CABs, CABs only the partition's cache holds and new ones: the same
    staging as a cold partition-side extraction, with -j1 and -j2."""
    cabs = [_files(tmp_path, n, f"$(runtime.system32)\\{n}") for n in ("A", "B", "C", "D")]
    want = _stage(cabs, tmp_path / "ref", None)
    extractcache.prepare(cabs[0])
    extractcache.prepare(cabs[2])
    cache = tmp_path / "cache"
    for jobs in (1, 2):
        st = _stage(cabs, tmp_path / f"w{jobs}", cache, jobs=jobs)
        assert _tree(st.root) == _tree(want.root) and _manifest(st) == _manifest(want)
    assert _sources(cache) == ["package", "kept", "package", "kept"]


def test_cab_written_again_misses(tmp_path, counting):
    """Any rewrite of the CAB after its entry was made misses: a copy with the same bytes and
    mtime (a CacheDir fetch is a new file), bytes changed in place with size and mtime kept, a new
    build. The partition extracts it, as before."""
    a = _files(tmp_path, "A")
    cache = tmp_path / "cache"
    for rewrite in ("copy with its mtime", "in place, size and mtime kept", "new content"):
        extractcache.prepare(a)
        st0 = os.stat(a)
        if rewrite == "new content":
            a = _files(tmp_path, "A", content="another a\n")
        elif rewrite == "copy with its mtime":
            shutil.copy2(a, tmp_path / "copy.cab")
            os.replace(tmp_path / "copy.cab", a)
        else:
            data = bytearray(a.read_bytes())
            at = data.index(b"a from A")
            data[at] ^= 0x20  # 'A from A': the CAB's checksum no longer holds
            with open(a, "r+b") as fh:
                fh.write(data)
            os.utime(a, ns=(st0.st_atime_ns, st0.st_mtime_ns))
        assert (os.stat(a).st_size, os.stat(a).st_mtime_ns) == (st0.st_size, st0.st_mtime_ns) or (
            rewrite == "new content"
        )
        counting.clear()
        if rewrite == "in place, size and mtime kept":
            with pytest.raises(FFUError):
                _stage([a], tmp_path / "w", cache)
            assert counting == [a.name]
            a = _files(tmp_path, "A")
            continue
        st = _stage([a], tmp_path / "w", cache)
        assert counting == [a.name], rewrite
        assert _sources(cache) == ["extracted"]
        assert (st.root / "Windows/System32/a.txt").read_bytes() == (
            b"another a\n" if rewrite == "new content" else b"a from A\n"
        )


def test_one_entry_per_cab(tmp_path):
    """Preparing a CAB written again replaces its entry: entries do not pile up."""
    a = _files(tmp_path, "A")
    extractcache.prepare(a)
    first = json.loads((_prepared(a) / extractcache.RECORD).read_bytes())["key"]
    a = _files(tmp_path, "A", content="edited\n")
    extractcache.prepare(a)
    assert os.listdir(a.parent / extractcache.DIRNAME) == [a.name]
    assert json.loads((_prepared(a) / extractcache.RECORD).read_bytes())["key"] != first


@pytest.mark.parametrize("damage", ["temp only", "no record", "member gone", "member touched", "bad record"])
def test_unfinished_or_damaged_entry_is_never_trusted(tmp_path, counting, monkeypatch, damage):
    """A build killed while preparing leaves a temp entry (never read, removed when the CAB is
    prepared again); an entry damaged since is a miss: the partition extracts the CAB."""
    a = _files(tmp_path, "A")
    root = a.parent / extractcache.DIRNAME
    if damage == "temp only":

        def killed(*args, **kw):
            raise KeyboardInterrupt

        real_dump = json.dump
        monkeypatch.setattr(json, "dump", killed)  # killed while writing the record
        with pytest.raises(KeyboardInterrupt):
            extractcache.prepare(a)
        monkeypatch.setattr(json, "dump", real_dump)
        assert not _prepared(a).exists() and os.listdir(root) == []
        (root / f"{extractcache.TEMP_PREFIX}{a.name}-x").mkdir()  # what SIGKILL would leave
        shutil.copytree(tmp_path / "src-A", root / f"{extractcache.TEMP_PREFIX}{a.name}-x" / "0")
    else:
        extractcache.prepare(a)
        entry = _prepared(a)
        if damage == "no record":
            (entry / extractcache.RECORD).unlink()
        elif damage == "member gone":
            (entry / "0").unlink()
        elif damage == "member touched":
            os.utime(entry / "0", ns=(0, 0))
        else:
            (entry / extractcache.RECORD).write_text("{")
    counting.clear()
    st = _stage([a], tmp_path / "w", tmp_path / "cache")
    assert counting == [a.name] and (st.root / "Windows/System32/a.txt").read_bytes() == b"a from A\n"
    assert extractcache.prepare(a)
    assert os.listdir(root) == [a.name]  # the temp of the killed build went


def test_partition_mismatch_is_the_same_one_line_error(tmp_path, counting):
    """A prepared entry was made without knowing the partition: using it for another partition
    gives the error a partition-bound extraction gives, and installs nothing."""
    a = _files(tmp_path, "A")
    want = _error(lambda: _stage([a], tmp_path / "w0", None, name="EFIESP"))
    assert "targets partition MainOS, not EFIESP" in want and "\n" not in want
    extractcache.prepare(a)
    counting.clear()
    got = _error(lambda: _stage([a], tmp_path / "w1", tmp_path / "cache", name="EFIESP"))
    assert got == want and counting == []
    assert _stage([a], tmp_path / "w2", tmp_path / "cache").files  # its own partition still takes it


def test_package_of_another_partition_takes_no_part_in_spellings(tmp_path):
    """A prepared package of another partition has no ops where it is used, as a partition-bound
    extraction gives: its directory spellings do not reach an earlier package's error."""
    a = _files(tmp_path, "A", "$(runtime.windows)\\sub")
    b = _files(tmp_path, "B", "$(runtime.windows)\\sub")
    efi = _cab(
        tmp_path,
        '<onecorePackageInfo targetPartition="EFIESP"/><files><file source=".\\a.txt" '
        'destinationDir="$(runtime.windows)\\SUB"/></files>',
        name="Efi",
    )
    want = _error(lambda: _stage([a, b, efi], tmp_path / "w0", None))
    assert "\\Windows\\sub\\a.txt is installed by both" in want
    for c in (a, b, efi):
        assert extractcache.prepare(c)
    assert _error(lambda: _stage([a, b, efi], tmp_path / "w1", tmp_path / "cache")) == want


def test_errors_with_every_cab_prepared_are_a_sequential_installs(tmp_path):
    """The error scenarios of the partition-side cache, with every CAB prepared first: the same
    message as installing the packages one by one (a bad package gets no entry)."""
    for label, (part, cabs) in _scenarios(tmp_path).items():
        st = install.Staging(part, tmp_path / "seq" / label / "root")

        def sequential(st=st, cabs=cabs):
            for c in cabs:
                install.install_package(st, c)

        want = _error(sequential)
        made = [extractcache.prepare(c) for c in cabs]
        if label == "not a CAB":
            assert made == [True, False]
        for jobs in (1, 2):
            got = _error(
                lambda cabs=cabs, jobs=jobs, label=label, part=part: _stage(
                    cabs, tmp_path / f"w-{jobs}", tmp_path / f"c-{label}-{jobs}", jobs=jobs, name=part
                )
            )
            assert got == want, (label, jobs)


def test_prepare_never_fails_the_package(tmp_path, monkeypatch):
    """A file system error while preparing (a full disk) leaves no entry and raises nothing: the
    partition extracts the CAB and reports such an error itself."""
    a = _files(tmp_path, "A")

    def full(*args, **kw):
        raise OSError(28, "No space left on device")

    real = extractcache.tempfile.mkdtemp
    monkeypatch.setattr(extractcache.tempfile, "mkdtemp", full)
    assert extractcache.prepare(a) is False
    monkeypatch.setattr(extractcache.tempfile, "mkdtemp", real)
    assert not _prepared(a).exists()
    with pytest.raises(FFUError):
        _stage([tmp_path / "missing.cab"], tmp_path / "w", tmp_path / "cache")


@pytest.mark.parametrize("how", ["folder writable by others", "entry of another user"])
def test_entry_others_could_change_is_not_trusted(tmp_path, counting, how):
    """Entries sit beside the CABs, which may be in a shared folder: one that another user could
    have planted or changed is ignored (the partition extracts the CAB), and prepare makes none
    in such a folder."""
    a = _files(tmp_path, "A")
    assert extractcache.prepare(a)
    entry = _prepared(a)
    if how == "folder writable by others":
        os.chmod(entry.parent, 0o777)
    elif os.geteuid() == 0:
        os.chown(entry, 65534, 65534)
    else:
        pytest.skip("needs root to give the entry to another user")
    counting.clear()
    _stage([a], tmp_path / "w", tmp_path / "cache")
    assert counting == [a.name] and _sources(tmp_path / "cache") == ["extracted"]
    if how == "folder writable by others":
        assert extractcache.prepare(a) is False
