"""Edits of XML documents that keep every byte the edit does not touch.

FMs, FMFileLists and OEMInputs are hand-written files with comments, their own indentation and
attributes wrapped over lines; re-serialising them with lxml would rewrite all of that (attribute
layout, ``" />"``, the declaration's quotes). So the document is parsed twice: by
:mod:`.xmlsafe` (hardened, the error messages every reader gives, DOCTYPEs refused) and by expat
only for where each element starts and ends. An edit then splices text at those offsets: a new
child goes after the last child, indented like its siblings; a removed element takes its line with
it. The original encoding (UTF-8 with or without BOM, UTF-16) is written back.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field
from pathlib import Path
from xml.parsers import expat

from . import xmlsafe

_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))


@dataclass
class Node:
    """One element: local name, attributes and byte offsets in the document's UTF-8 text."""

    name: str
    attrs: dict[str, str]
    start: int
    tag_end: int  # just after the start tag's '>'
    end: int = -1  # just after the end tag (== tag_end for <x/>)
    children: list[Node] = field(default_factory=list)
    parent: Node | None = None

    @property
    def empty(self) -> bool:
        return self.end == self.tag_end

    def find(self, *path: str) -> Node | None:
        node: Node | None = self
        for name in path:
            node = next((c for c in node.children if c.name == name), None) if node else None
        return node

    def all(self, name: str) -> list[Node]:
        return [c for c in self.children if c.name == name]

    def text(self, doc: Doc) -> str:
        return "" if self.empty else doc.data[self.tag_end : self.end].decode("utf-8").rsplit("</", 1)[0]


def _tag_end(data: bytes, pos: int) -> int:
    """Offset just past the '>' of the tag starting at `pos` ('>' inside quotes does not count)."""
    quote = 0
    for i in range(pos, len(data)):
        ch = data[i]
        if quote:
            if ch == quote:
                quote = 0
        elif ch in (0x22, 0x27):
            quote = ch
        elif ch == 0x3E:
            return i + 1
    return len(data)


class Doc:
    """An XML file held as UTF-8 bytes with an element tree of offsets; edits rebuild the tree."""

    def __init__(self, raw: bytes, display: str):
        self.display = display
        self.bom, self.codec = b"", "utf-8"
        for bom, codec in _BOMS:
            if raw.startswith(bom):
                self.bom, self.codec = bom, codec
                raw = raw[len(bom) :]
                break
        text = raw.decode(self.codec)
        self.data = text.encode("utf-8")
        xmlsafe.parse_bytes(self.bom + raw, display)  # the hardened reader's verdict first
        self.root = self._index()

    @classmethod
    def load(cls, path: Path, display: str) -> Doc:
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            from ..errors import ConfigError

            raise ConfigError(f"cannot read file: {exc.strerror}", display) from None
        return cls(raw, display)

    def _index(self) -> Node:
        stack: list[Node] = []
        roots: list[Node] = []
        parser = expat.ParserCreate(encoding="UTF-8")
        data = self.data

        def start(name: str, attrs: dict[str, str]) -> None:
            pos = parser.CurrentByteIndex
            node = Node(name.rpartition(":")[2], attrs, pos, _tag_end(data, pos))
            if stack:
                node.parent = stack[-1]
                stack[-1].children.append(node)
            else:
                roots.append(node)
            stack.append(node)

        def end(_name: str) -> None:
            node = stack.pop()
            if data[node.tag_end - 2 : node.tag_end] == b"/>":
                node.end = node.tag_end
            else:
                node.end = _tag_end(data, parser.CurrentByteIndex)

        parser.StartElementHandler = start
        parser.EndElementHandler = end
        parser.Parse(data, True)
        return roots[0]

    def bytes(self) -> bytes:
        return self.bom + self.data.decode("utf-8").encode(self.codec)

    def line_of(self, node: Node) -> int:
        return self.data.count(b"\n", 0, node.start) + 1

    def _indent_at(self, pos: int) -> str:
        line_start = self.data.rfind(b"\n", 0, pos) + 1
        lead = self.data[line_start:pos].decode("utf-8")
        return lead if lead.strip() == "" else ""

    def unit(self) -> str:
        """The document's indentation step (a child's indent less its parent's), two spaces if none."""
        for node in self._walk(self.root):
            if node.children and node.parent is not None:
                outer, inner = self._indent_at(node.start), self._indent_at(node.children[0].start)
                if inner.startswith(outer) and len(inner) > len(outer):
                    return inner[len(outer) :]
        return "  "

    def _walk(self, node: Node):
        yield node
        for c in node.children:
            yield from self._walk(c)

    def _splice(self, start: int, end: int, text: str) -> None:
        self.data = self.data[:start] + text.encode("utf-8") + self.data[end:]
        self.root = self._index()

    def append(self, parent: Node, snippet: str) -> None:
        """Add `snippet` (one element, lines indented by two spaces per level) as the last child."""
        unit = self.unit()
        outer = self._indent_at(parent.start)
        if parent.children:
            inner = self._indent_at(parent.children[0].start) or outer + unit
        else:
            inner = outer + unit
        lines = snippet.strip("\n").split("\n")
        body = "\n".join(
            (inner if i else "") + unit * ((len(ln) - len(ln.lstrip(" "))) // 2) + ln.lstrip(" ")
            for i, ln in enumerate(lines)
        )
        if parent.empty:
            head = self.data[parent.start : parent.tag_end - 2].decode("utf-8").rstrip()
            self._splice(parent.start, parent.end, f"{head}>\n{inner}{body}\n{outer}</{self._qname(parent)}>")
        elif parent.children:
            self._splice(parent.children[-1].end, parent.children[-1].end, f"\n{inner}{body}")
        else:
            content = self.data[parent.tag_end : parent.end].decode("utf-8")
            between = content[: content.rfind("</")]
            if re.sub(r"<!--.*?-->", "", between, flags=re.S).strip():
                from ..errors import ConfigError

                raise ConfigError(
                    f"<{parent.name}> holds text; cannot add an element to it",
                    self.display,
                    self.line_of(parent),
                )
            kept = between.rstrip()
            tail = between[len(kept) :]
            pos = parent.tag_end + len(kept.encode("utf-8"))
            close = "" if "\n" in tail else f"\n{outer}"
            self._splice(pos, pos + len(tail.encode("utf-8")), f"\n{inner}{body}{close or tail}")

    def _qname(self, node: Node) -> str:
        m = re.match(rb"<([^\s/>]+)", self.data[node.start : node.tag_end])
        return m.group(1).decode("utf-8") if m else node.name

    def remove(self, node: Node) -> None:
        """Remove `node` and, when it stands on its own line, that line."""
        start = node.start
        line_start = self.data.rfind(b"\n", 0, start) + 1
        if self.data[line_start:start].strip() == b"" and line_start > 0:
            start = line_start - 1
        self._splice(start, node.end, "")
