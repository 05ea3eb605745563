"""xmledit: edits splice text and leave every other byte of the file as it was."""

import codecs
import difflib
from pathlib import Path

import pytest

from ffuforge.errors import FFUError
from ffuforge.util.xmledit import Doc

ROOT = Path(__file__).resolve().parents[2]


def _only_added(before: bytes, after: bytes) -> list[str]:
    """The lines `after` adds; fails if any line of `before` changed or went away."""
    a, b = before.decode().splitlines(), after.decode().splitlines()
    added = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        assert op in ("equal", "insert"), (op, a[i1:i2], b[j1:j2])
        if op == "insert":
            added += b[j1:j2]
    return added


def test_append_keeps_comments_wrapped_attributes_and_indentation():
    raw = (ROOT / "packages/OEMFMFileList.xml").read_bytes()
    doc = Doc(raw, "OEMFMFileList.xml")
    doc.append(doc.root.find("FMs"), '<FM ID="X" Path="x.xml" />')
    assert _only_added(raw, doc.bytes()) == ['    <FM ID="X" Path="x.xml" />']
    assert b'CPUType="CPU_TYPE" Critical="true" />' in doc.bytes()  # the wrapped, spaced original


def test_nested_snippet_takes_the_sibling_indentation():
    raw = (ROOT / "packages/OEMFM.xml").read_bytes()
    doc = Doc(raw, "OEMFM.xml")
    doc.append(doc.root.find("Features", "OEM"), "<A>\n  <B>x</B>\n</A>")
    assert _only_added(raw, doc.bytes()) == ["      <A>", "        <B>x</B>", "      </A>"]
    assert b"<!-- Contoso OEM feature manifest" in doc.bytes()


@pytest.mark.parametrize(
    "body, expected",
    [
        ("<R>\n  <P />\n</R>\n", "<R>\n  <P>\n    <C />\n  </P>\n</R>\n"),
        ("<R>\n  <P></P>\n</R>\n", "<R>\n  <P>\n    <C />\n  </P>\n</R>\n"),
        (
            "<R>\n  <P>\n    <!-- keep -->\n  </P>\n</R>\n",
            "<R>\n  <P>\n    <!-- keep -->\n    <C />\n  </P>\n</R>\n",
        ),
        ("<R>\n\t<P>\n\t\t<Q />\n\t</P>\n</R>\n", "<R>\n\t<P>\n\t\t<Q />\n\t\t<C />\n\t</P>\n</R>\n"),
    ],
)
def test_append_into_empty_commented_and_tab_indented_parents(body, expected):
    doc = Doc(body.encode(), "x.xml")
    doc.append(doc.root.find("P"), "<C />")
    assert doc.bytes().decode() == expected


def test_remove_takes_its_line_and_nothing_else():
    raw = b'<?xml version="1.0"?>\n<R>\n  <F>a</F>\n  <F>b</F> <!-- b stays? no: same line -->\n  <F>c</F>\n</R>\n'
    doc = Doc(raw, "x.xml")
    doc.remove(doc.root.children[0])
    assert (
        doc.bytes()
        == b'<?xml version="1.0"?>\n<R>\n  <F>b</F> <!-- b stays? no: same line -->\n  <F>c</F>\n</R>\n'
    )
    doc.remove(doc.root.children[1])
    assert doc.bytes() == b'<?xml version="1.0"?>\n<R>\n  <F>b</F> <!-- b stays? no: same line -->\n</R>\n'


@pytest.mark.parametrize(
    "bom, codec", [(codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (b"", "utf-8")]
)
def test_encoding_and_byte_order_mark_are_written_back(bom, codec):
    decl = "utf-16" if "16" in codec else "utf-8"
    text = f'<?xml version="1.0" encoding="{decl}"?>\n<R xmlns="urn:x">\n  <P>é</P>\n</R>\n'
    doc = Doc(bom + text.encode(codec), "x.xml")
    doc.append(doc.root, "<Q>ü</Q>")
    out = doc.bytes()
    assert out.startswith(bom)
    assert out[len(bom) :].decode(codec) == text.replace("</P>\n", "</P>\n  <Q>ü</Q>\n")


def test_the_hardened_reader_judges_first():
    with pytest.raises(FFUError, match="DOCTYPE"):
        Doc(b'<!DOCTYPE r [<!ENTITY a "b">]><r>&a;</r>', "bomb.xml")
    with pytest.raises(FFUError, match=r"x.xml:2: malformed XML"):
        Doc(b"<r>\n<a></r>", "x.xml")
    doc = Doc(b"<r><t>text</t></r>", "t.xml")
    with pytest.raises(FFUError, match="t.xml:1: <t> holds text"):
        doc.append(doc.root.find("t"), "<x />")


def test_attribute_values_with_angle_brackets_do_not_end_a_tag():
    doc = Doc(b"<r><p a=\"x>y\" b='>'></p></r>", "x.xml")
    doc.append(doc.root.find("p"), "<c />")
    assert b"<p a=\"x>y\" b='>'>" in doc.bytes() and b"<c />" in doc.bytes()
