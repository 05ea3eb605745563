"""CAB facts kept between runs: reused only while the CAB is the same file, never after a code
change, never for a file written within the racy window, never for an error."""

import os
import time

import pytest

from ffuforge.errors import FormatError
from ffuforge.image import cabfacts


def _aged(path, data: bytes):
    path.write_bytes(data)
    old = time.time_ns() - 10 * cabfacts.RACY_NS
    os.utime(path, ns=(old, old))
    return path


def test_kept_across_processes_until_the_file_changes(tmp_path):
    store = str(tmp_path / "facts")
    cab = _aged(tmp_path / "a.cab", b"one")
    reads = []

    def read():
        reads.append(cab.read_bytes())
        return (len(reads[-1]), 1)

    first = cabfacts.CabFacts(store)
    assert first.get(cab, "sizes", read) == (3, 1)
    first.save()
    second = cabfacts.CabFacts(store)  # a later run
    assert second.get(cab, "sizes", read) == (3, 1) and len(reads) == 1
    assert (second.hits, second.misses) == (1, 0)
    # rewritten by rename (as every writer of ours does): a new inode, same size and mtime
    st = os.stat(cab)
    tmp = tmp_path / "new"
    tmp.write_bytes(b"two")
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp, cab)
    assert second.get(cab, "sizes", read) == (3, 1) and len(reads) == 2


def test_racy_files_and_errors_are_not_kept(tmp_path):
    facts = cabfacts.CabFacts(str(tmp_path / "facts"))
    fresh = tmp_path / "fresh.cab"
    fresh.write_bytes(b"x")
    facts.get(fresh, "layout", lambda: {})
    assert not facts.dirty and str(fresh) not in facts.entries

    def bad():
        raise FormatError("not a CBS package", "bad.cab")

    old = _aged(tmp_path / "bad.cab", b"y")
    for _ in range(2):
        with pytest.raises(FormatError):
            facts.get(old, "sizes", bad)
    assert facts.misses == 3 and not facts.dirty


def test_code_change_and_foreign_file_start_afresh(tmp_path, monkeypatch):
    store = tmp_path / "facts"
    cab = _aged(tmp_path / "a.cab", b"one")
    facts = cabfacts.CabFacts(str(store))
    facts.get(cab, "sizes", lambda: (1, 1))
    facts.save()
    assert cabfacts.CabFacts(str(store)).entries
    monkeypatch.setattr(cabfacts.toolsig, "fingerprint", lambda module: "other code")
    assert cabfacts.CabFacts(str(store)).entries == {}
    monkeypatch.undo()
    store.write_bytes(b"\0garbage")
    assert cabfacts.CabFacts(str(store)).entries == {}


def test_removed_cabs_are_dropped_on_save(tmp_path):
    store = str(tmp_path / "facts")
    a, b = _aged(tmp_path / "a.cab", b"a"), _aged(tmp_path / "b.cab", b"b")
    facts = cabfacts.CabFacts(store)
    facts.get(a, "sizes", lambda: (1, 1))
    facts.get(b, "sizes", lambda: (1, 1))
    b.unlink()
    facts.save()
    assert set(cabfacts.CabFacts(store).entries) == {str(a)}


def test_a_cab_this_build_wrote_is_kept_at_once(tmp_path):
    """Within the racy window, a CAB is kept when its writer recorded exactly the size and mtime it
    has now (the state SCons records with the writer's content signature); any other state is not."""
    facts = cabfacts.CabFacts(str(tmp_path / "facts"))
    ours, other = tmp_path / "ours.cab", tmp_path / "other.cab"
    ours.write_bytes(b"built")
    other.write_bytes(b"built")
    st = os.stat(ours)
    facts.written = {
        str(ours): (st.st_size, st.st_mtime_ns, "sig"),
        str(other): (5, st.st_mtime_ns - 1, "sig"),
    }
    facts.get(ours, "sizes", lambda: (5, 1))
    facts.get(other, "sizes", lambda: (5, 1))
    assert str(ours) in facts.entries and str(other) not in facts.entries
    ours.write_bytes(b"rewritten in place")  # no longer what the writer left: read again, not kept anew
    reads = []
    facts.get(ours, "sizes", lambda: reads.append(1) or (18, 1))
    assert reads == [1] and facts.entries[str(ours)][0][0] == 5
