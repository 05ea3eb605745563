"""Directories that differ only in case are one directory, as on Windows: `system32\\drivers` from
one package and `System32\\drivers` from another land in one folder, spelt the same whatever order
the packages are installed in; files that differ only in case still collide (they are one file)."""

import os

import pytest

from ffuforge.errors import ConfigError
from ffuforge.formats import fstools
from ffuforge.image import install
from ffuforge.package.build import build_variant

from helpers import plan, wm


def _cab(tmp_path, name, dest, file_name="x.txt"):
    d = tmp_path / name
    d.mkdir()
    (d / file_name).write_text(f"{name}\n")
    body = f'<files><file source=".\\{file_name}" destinationDir="{dest}"/></files>'
    v = plan(wm(d, body, name=name))[0]
    out = tmp_path / "cabs" / v.cab_name
    build_variant(v, out)
    return out


def _stage(tmp_path, cabs, tag):
    st = install.Staging("MainOS", tmp_path / f"root-{tag}")
    st.root.mkdir(parents=True)
    parsed = []
    for i, cab in enumerate(cabs):
        store = tmp_path / f"store-{tag}-{i}"
        store.mkdir()
        parsed.append((install.parse_package(cab, "MainOS", store), store))
    install.prime_spellings(st, [p for p, _ in parsed])
    for p, store in parsed:
        install.replay(st, p, store)
    return st


def _tree(root):
    return sorted(
        os.path.relpath(os.path.join(d, n), root) for d, dirs, files in os.walk(root) for n in dirs + files
    )


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (1, 2, 0)])
def test_mixed_case_directories_merge_in_any_order(tmp_path, order):
    cabs = [
        _cab(tmp_path, "A", "$(runtime.windows)\\system32\\Contoso\\drivers", "a.sys"),
        _cab(tmp_path, "B", "$(runtime.windows)\\SYSTEM32\\CONTOSO\\Drivers", "b.sys"),
        _cab(tmp_path, "C", "$(runtime.system32)\\contoso\\DRIVERS", "c.sys"),
    ]
    st = _stage(tmp_path, [cabs[i] for i in order], "".join(map(str, order)))
    expected = [
        "Windows",
        "Windows/System32",
        "Windows/System32/CONTOSO",
        "Windows/System32/CONTOSO/DRIVERS",
        "Windows/System32/CONTOSO/DRIVERS/a.sys",
        "Windows/System32/CONTOSO/DRIVERS/b.sys",
        "Windows/System32/CONTOSO/DRIVERS/c.sys",
    ]
    assert [
        p for p in _tree(st.root) if "servicing" not in p
    ] == expected  # "Windows\\System32" as the partition writer spells it
    assert sorted(f.path for f in st.files.values() if "servicing" not in f.path) == [
        "Windows\\System32\\CONTOSO\\DRIVERS\\a.sys",
        "Windows\\System32\\CONTOSO\\DRIVERS\\b.sys",
        "Windows\\System32\\CONTOSO\\DRIVERS\\c.sys",
    ]
    fstools.scan(st.root)  # what the file system writers read: one spelling, no case clash


def test_files_differing_only_in_case_still_collide(tmp_path):
    a = _cab(tmp_path, "A", "$(runtime.system32)\\Contoso", "x.txt")
    b = _cab(tmp_path, "B", "$(runtime.system32)\\contoso", "X.TXT")
    with pytest.raises(ConfigError, match=r"file \\Windows\\System32\\Contoso\\X.TXT is installed by both"):
        _stage(tmp_path, [a, b], "ab")
