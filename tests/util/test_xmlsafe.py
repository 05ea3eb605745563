"""ffuforge.util.xmlsafe: lone-CR line numbers, did-you-mean, attribute checks (entity and huge-node
attacks are in tests/e2e/test_hostile.py, through every reader)."""

from __future__ import annotations

import pytest
from lxml import etree

from ffuforge.errors import ConfigError
from ffuforge.util import xmlsafe

DOC = '<?xml version="1.0" encoding="{enc}"?>\n<a>\n<b x="1\n2"/>\n\n<c/>\n</a>\n'


def _lines(root) -> list[int]:
    return [el.sourceline for el in root.iter()]


@pytest.mark.parametrize("enc", ["utf-8", "utf-16", "utf-16-le", "utf-16-be", "windows-1252"])
def test_lone_cr_counts_lines_like_lf(enc):
    lf = DOC.format(enc="utf-16" if enc.startswith("utf-16") else enc)
    data_lf = lf.encode(enc)
    data_cr = lf.replace("\n", "\r").encode(enc)
    if enc in ("utf-16-le", "utf-16-be"):  # with the byte-order mark libxml2 and we go by
        bom = "\ufeff".encode(enc)
        data_lf, data_cr = bom + data_lf, bom + data_cr
    by_lf, by_cr = xmlsafe.parse_bytes(data_lf, "x"), xmlsafe.parse_bytes(data_cr, "x")
    assert _lines(by_cr) == _lines(by_lf) == [2, 4, 6]  # an element's line is where its start tag ends
    assert by_cr[0].get("x") == by_lf[0].get("x") == "1 2"  # XML 2.11 + 3.3.3: the same document


def test_crlf_and_mixed_line_ends():
    data = b"<a>\r\n<b/>\r<c/>\n<d/></a>"
    assert _lines(xmlsafe.parse_bytes(data, "x")) == [1, 2, 3, 4]


def test_lone_cr_in_an_error_message_line():
    with pytest.raises(Exception, match=r"^x:3: malformed XML"):
        xmlsafe.parse_bytes(b"<a>\r<b>\r</a>", "x")


@pytest.mark.parametrize(
    "name,known,hint",
    [
        ("destinatonDir", ["source", "destinationDir", "name"], "; did you mean destinationDir?"),
        ("keyname", ["keyName", "buildFilter"], "; did you mean keyName? (names are case-sensitive)"),
        ("zzz", ["source", "name"], ""),
    ],
)
def test_suggest(name, known, hint):
    assert xmlsafe.suggest(name, known) == hint


def test_check_attributes():
    el = etree.fromstring(
        b'<file xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="t" source="a" '
        b'destinatonDir="b"/>'
    )
    with pytest.raises(ConfigError, match=r"^f:1: unknown attribute destinatonDir= on <file>; did you mean "):
        xmlsafe.check_attributes(el, ("source", "destinationDir"), "f")
    with pytest.raises(ConfigError, match="valid but ffuforge does not implement it"):
        xmlsafe.check_attributes(el, ("source",), "f", unimplemented=("destinatonDir",))
    xmlsafe.check_attributes(el, ("SOURCE", "DESTINATONDIR"), "f", fold=True)
    with pytest.raises(ConfigError, match=r"<file> takes a, b$"):
        xmlsafe.check_attributes(el, ("b", "a"), "f")
    with pytest.raises(ConfigError, match=r"\(it takes none\)$"):
        xmlsafe.check_attributes(el, (), "f")
