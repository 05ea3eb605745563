"""Which CABs products share: products.split and the $(PROD) pre-check, without scons."""

from __future__ import annotations

from ffuforge.scons_tool import products
from ffuforge.scons_tool.plancache import Planned


def _planned(cab: str, content: dict) -> Planned:
    return Planned(cab, cab.removesuffix(".cab"), "MainOS", "Production", content, ())


def test_split_shares_what_is_the_same_for_every_product():
    plans = {
        "A": [_planned("Same.cab", {"x": 1}), _planned("Prod.cab", {"p": "A"}), _planned("OnlyA.cab", {})],
        "B": [_planned("Same.cab", {"x": 1}), _planned("Prod.cab", {"p": "B"})],
    }
    shared, own = products.split(plans)
    assert [v.cab_name for v in shared] == ["Same.cab"]
    assert shared[0] is plans["A"][0]  # built as the first product's
    assert {name: sorted(found) for name, found in own.items()} == {
        "Prod.cab": ["A", "B"],
        "OnlyA.cab": ["A"],
    }
    assert own["Prod.cab"]["B"].content == {"p": "B"}


def test_uses_product_finds_prod_in_any_case_and_utf16(tmp_path):
    plain = tmp_path / "a.wm.xml"
    plain.write_text('<regValue value="$(OEMNAME)" />')
    assert not products.uses_product(str(plain))
    for text in ('<x value="$(PROD)" />', '<x value="$(prod)\\y" />'):
        plain.write_text(text)
        assert products.uses_product(str(plain))
    wide = tmp_path / "w.pkg.xml"
    wide.write_bytes(b"\xff\xfe" + '<x value="$(Prod)" />'.encode("utf-16-le"))
    assert products.uses_product(str(wide))
    assert products.uses_product(str(tmp_path / "missing.wm.xml"))  # planning reports it


def test_relocate_replaces_exact_paths_only():
    data = {"packages": [{"path": "build/p/X.cab", "note": "build/p/X.cab!"}], "n": 1}
    out = products.relocate(data, {"build/p/X.cab": "build/p/A/X.cab"})
    assert out == {"packages": [{"path": "build/p/A/X.cab", "note": "build/p/X.cab!"}], "n": 1}
