"""Hardened XML loading shared by every XML model.

Entities are never resolved, DTDs and the network are never consulted, and any DOCTYPE is
refused outright: real package projects, FMs and OEMInputs never carry one, so a DOCTYPE can
only be an entity bomb or an external-entity probe.
"""

from __future__ import annotations

import os
from pathlib import Path

from lxml import etree

from ..errors import FFUError
from .paths import open_regular

MAX_XML_BYTES = 64 * 1024 * 1024


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def parse_bytes(data: bytes, name: str) -> etree._Element:
    """Parse XML bytes into a root element, or raise FFUError naming file and line."""
    if len(data) > MAX_XML_BYTES:
        raise FFUError(f"XML file is larger than {MAX_XML_BYTES} bytes; refusing to parse", name)
    try:
        root = etree.fromstring(data, _parser(), base_url=None)
    except etree.XMLSyntaxError as exc:
        line = exc.lineno or None
        msg = exc.msg or str(exc)
        # lxml appends "(<name>, line N)"; the location is already in our prefix.
        msg = msg.split(" (line ")[0].split(", line ")[0]
        msg = " ".join(msg.split())  # libxml2 may end a message with a newline: keep the error one line
        raise FFUError(f"malformed XML: {msg}; fix the markup", name, line) from None
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise FFUError("DOCTYPE/DTD declarations are not allowed (entity expansion refused)", name, 1)
    return root


def parse_file(path: str | Path, display: str | None = None) -> etree._Element:
    """Read and parse an XML file; `display` is the name used in error messages."""
    name = display or str(path)
    try:
        with os.fdopen(open_regular(path), "rb") as fh:
            data = fh.read(MAX_XML_BYTES + 1)
    except OSError as exc:
        raise FFUError(f"cannot read file: {exc.strerror}", name) from None
    return parse_bytes(data, name)


def localname(el: etree._Element) -> str:
    tag = el.tag  # not etree.QName: it rejects a namespace URI containing '}' with a ValueError
    return tag.rpartition("}")[2] if tag.startswith("{") else tag


def namespace(el: etree._Element) -> str | None:
    tag = el.tag
    return tag[1:].rpartition("}")[0] if tag.startswith("{") else None


def elements(parent: etree._Element):
    """Child elements only (comments and processing instructions are skipped)."""
    return [c for c in parent if isinstance(c.tag, str)]
