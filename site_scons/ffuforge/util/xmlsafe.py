"""Hardened XML loading shared by every XML model.

Entities are never resolved, DTDs and the network are never consulted, and any DOCTYPE is
refused outright: real package projects, FMs and OEMInputs never carry one, so a DOCTYPE can
only be an entity bomb or an external-entity probe.

Huge-node tricks (a 10 MB text node or attribute, 50 000-character names, elements 256 deep) are
stopped by libxml2's default limits (``huge_tree`` stays off); its message for them suggests
``XML_PARSE_HUGE``, an option a user cannot set, so :func:`parse_bytes` reports the limit in its
own words instead. Lone CR line ends (classic Mac OS files) are made LF before parsing: libxml2
counts lines by LF only and would put every error on line 1, and the XML spec reads a lone CR as a
line end anyway (section 2.11), so the document means the same.

:func:`check_attributes` and :func:`suggest` give every reader the same "unknown attribute …; did
you mean …" error (difflib), so a misspelt ``destinatonDir=`` cannot be ignored silently.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable
from pathlib import Path

from lxml import etree

from ..errors import ConfigError, FFUError
from .paths import open_regular

MAX_XML_BYTES = 64 * 1024 * 1024
# libxml2's limits without XML_PARSE_HUGE (parserInternals.h: XML_MAX_TEXT_LENGTH,
# XML_MAX_NAME_LENGTH; xmlParserMaxDepth), named in our messages.
MAX_TEXT = 10_000_000
MAX_NAME = 50_000
MAX_DEPTH = 256
_LIMITS = (  # (libxml2 message fragment, what we say was too large), first match wins
    ("Text node too long", f"a text node is longer than {MAX_TEXT} bytes"),
    ("Comment too big", f"a comment is longer than {MAX_TEXT} bytes"),
    ("Name too long", f"an element or attribute name is longer than {MAX_NAME} characters"),
    ("Excessive depth", f"elements are nested deeper than {MAX_DEPTH} levels"),
    (
        "Buffer size limit",
        f"an attribute value, CDATA section or processing instruction is longer than {MAX_TEXT} bytes",
    ),
    ("XML_PARSE_HUGE", "a node exceeds the XML size limits"),
    ("Resource limit", "a node exceeds the XML size limits"),
    ("Huge input lookup", "a node exceeds the XML size limits"),
)
_LONE_CR = re.compile(rb"\r(?!\n)")
_UTF16 = ((b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))


def _parser(keep_comments: bool = False) -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=not keep_comments,
        remove_pis=not keep_comments,
    )


def parse_bytes(data: bytes, name: str, keep_comments: bool = False) -> etree._Element:
    """Parse XML bytes into a root element, or raise FFUError naming file and line.

    `keep_comments` keeps comments and processing instructions (and, as always, whitespace), for
    editors that write the document back (:mod:`ffuforge.features.edit`)."""
    if len(data) > MAX_XML_BYTES:
        raise FFUError(f"XML file is larger than {MAX_XML_BYTES} bytes; refusing to parse", name)
    data = _lone_cr_to_lf(data)
    try:
        root = etree.fromstring(data, _parser(keep_comments), base_url=None)
    except etree.XMLSyntaxError as exc:
        line = exc.lineno or None
        msg = exc.msg or str(exc)
        # lxml appends "(<name>, line N)"; the location is already in our prefix.
        msg = msg.split(" (line ")[0].split(", line ")[0]
        msg = " ".join(msg.split())  # libxml2 may end a message with a newline: keep the error one line
        for fragment, what in _LIMITS:
            if fragment in msg:
                raise ConfigError(
                    f"{what}, past the limit of every XML reader in ffuforge; the file is damaged "
                    "or was generated wrongly",
                    name,
                    line,
                ) from None
        raise FFUError(f"malformed XML: {msg}; fix the markup", name, line) from None
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise FFUError("DOCTYPE/DTD declarations are not allowed (entity expansion refused)", name, 1)
    return root


def _lone_cr_to_lf(data: bytes) -> bytes:
    """Lone CRs as LFs, so that libxml2's line numbers count them (UTF-16 by its byte-order mark;
    in UTF-8 and the single-byte encodings 0x0D is only ever CR)."""
    if b"\r" not in data:
        return data
    for bom, codec in _UTF16:
        if data.startswith(bom):
            try:
                text = data[2:].decode(codec)
            except UnicodeDecodeError:
                return data  # libxml2 reports the bad encoding itself
            return bom + re.sub(r"\r(?!\n)", "\n", text).encode(codec)
    if data[:2] in (b"\x00<", b"<\x00"):  # UTF-16 without a byte-order mark: leave it to libxml2
        return data
    return _LONE_CR.sub(b"\n", data)


def suggest(name: str, known: Iterable[str], form: str = "{}") -> str:
    """ "; did you mean X?" for the closest known name (same letters in another case first, then
    difflib), or "". `form` spells the suggestion, e.g. "<{}>" for elements."""
    known = sorted(set(known))
    same_case = [k for k in known if k.lower() == name.lower()]
    if same_case:
        return f"; did you mean {form.format(same_case[0])}? (names are case-sensitive)"
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f"; did you mean {form.format(close[0])}?" if close else ""


def check_attributes(
    el: etree._Element,
    allowed: Iterable[str],
    file: str,
    *,
    unimplemented: Iterable[str] = (),
    fold: bool = False,
) -> None:
    """Refuse any attribute of `el` outside `allowed` with a did-you-mean hint (or the allowed
    list). Namespaced attributes (xsi:*, xml:*) belong to XML, not to the schema. `unimplemented`:
    valid in the schema but not built by ffuforge, refused as such. `fold`: names compare
    case-insensitively (the schema has both spellings)."""
    allowed = tuple(allowed)
    lowered = {a.lower() for a in allowed} if fold else set()
    for attr in el.attrib:
        if attr.startswith("{") or attr in allowed or (fold and attr.lower() in lowered):
            continue
        tag = f"<{localname(el)}>"
        if attr in unimplemented:
            raise ConfigError(
                f"attribute {attr}= on {tag} is valid but ffuforge does not implement it yet; remove it "
                "or file an issue",
                file,
                el.sourceline,
            )
        hint = suggest(attr, allowed) or (f"; {tag} takes {', '.join(sorted(allowed))}" if allowed else "")
        raise ConfigError(
            f"unknown attribute {attr}= on {tag}{hint or ' (it takes none)'}", file, el.sourceline
        )


def check_tree(
    root: etree._Element,
    schema: dict[str, tuple[str, ...]],
    file: str,
    *,
    unimplemented: dict[str, tuple[str, ...]] | None = None,
    fold: frozenset[str] = frozenset(),
) -> None:
    """Check every element's attributes against `schema` (key ``parent/name`` before ``name``);
    elements it does not name are left to the reader, which refuses unknown elements itself."""
    unimplemented = unimplemented or {}
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        name = localname(el)
        parent = el.getparent()
        key = f"{localname(parent)}/{name}" if parent is not None else name
        if key not in schema:
            key = name
        if key in schema:
            check_attributes(
                el, schema[key], file, unimplemented=unimplemented.get(key, ()), fold=key in fold
            )


def parse_file(path: str | Path, display: str | None = None, keep_comments: bool = False) -> etree._Element:
    """Read and parse an XML file; `display` is the name used in error messages."""
    name = display or str(path)
    try:
        with os.fdopen(open_regular(path), "rb") as fh:
            data = fh.read(MAX_XML_BYTES + 1)
    except OSError as exc:
        raise FFUError(f"cannot read file: {exc.strerror}", name) from None
    return parse_bytes(data, name, keep_comments)


def localname(el: etree._Element) -> str:
    tag = el.tag  # not etree.QName: it rejects a namespace URI containing '}' with a ValueError
    return tag.rpartition("}")[2] if tag.startswith("{") else tag


def namespace(el: etree._Element) -> str | None:
    tag = el.tag
    return tag[1:].rpartition("}")[0] if tag.startswith("{") else None


def elements(parent: etree._Element):
    """Child elements only (comments and processing instructions are skipped)."""
    return [c for c in parent if isinstance(c.tag, str)]
