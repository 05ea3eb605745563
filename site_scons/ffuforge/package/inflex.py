"""INF lexing: decoding, sections, logical lines, quoting and [Strings] substitution.

Turns INF bytes into an :class:`~.infmodel.Inf` without interpreting any section; the import
walk (:mod:`.inf`) gives sections their meaning.  Bounded in size (:data:`MAX_INF_BYTES`,
:data:`MAX_LINE_CHARS`) so a stray binary never costs more than a bounded read.
"""

from __future__ import annotations

import codecs
import os
import re
from pathlib import Path

from ..errors import ConfigError, FormatError
from ..util.paths import open_regular
from .infmodel import Inf, InfLine, InfSection

__all__ = ["MAX_INF_BYTES", "MAX_LINE_CHARS", "WS", "parse_inf", "parse_inf_bytes", "parse_inf_text"]

MAX_INF_BYTES = 16 * 1024 * 1024
MAX_LINE_CHARS = 64 * 1024

WS = " \t\f\v\x00\x1a"  # \x1a: DOS end-of-file marker left in old INFs
_LINE_SPLIT = re.compile(r"\r\n|\r|\n")
_TOKEN = re.compile(r"%([^%]*)%")
_WHOLE_TOKEN = re.compile(r"%([^%]+)%")


def _latin1_fallback(exc: UnicodeError) -> tuple[str, int]:
    # cp1252 leaves 0x81/0x8D/0x8F/0x90/0x9D undefined; Windows maps them to the C1 controls.
    assert isinstance(exc, UnicodeDecodeError)
    return exc.object[exc.start : exc.end].decode("latin-1"), exc.end


codecs.register_error("ffuforge.inf.latin1", _latin1_fallback)


def parse_inf(path: str | Path, display_name: str | None = None, *, lcid: int = 0x0409) -> Inf:
    """Read and lex an INF file; errors name ``display_name`` (default: the path)."""
    name = display_name if display_name is not None else str(path)
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_INF_BYTES:
            raise _too_big(size, name)
        with os.fdopen(open_regular(p), "rb") as fh:
            data = fh.read(MAX_INF_BYTES + 1)
    except OSError as exc:
        raise ConfigError(
            f"cannot read INF ({exc.strerror or exc}); check the inf source path", name
        ) from exc
    return parse_inf_bytes(data, name, lcid=lcid)


def parse_inf_bytes(data: bytes, name: str, *, lcid: int = 0x0409) -> Inf:
    if len(data) > MAX_INF_BYTES:
        raise _too_big(len(data), name)
    text, encoding = _decode(data)
    return parse_inf_text(text, name, lcid=lcid, encoding=encoding)


def parse_inf_text(text: str, name: str, *, lcid: int = 0x0409, encoding: str = "text") -> Inf:
    if len(text) > MAX_INF_BYTES:
        raise _too_big(len(text), name)
    raw = _lex(text, name)
    strings = _strings_table(raw, lcid)
    sections: dict[str, InfSection] = {}
    for key, (sname, sline, rlines) in raw.items():
        sec = InfSection(sname, sline)
        is_strings = key == "strings" or key.startswith("strings.")
        for lineno, rkey, rvalues in rlines:
            if is_strings:
                ln = InfLine(lineno, rkey, tuple(rvalues))
            else:
                ln = _substitute(lineno, rkey, rvalues, strings)
            sec.lines.append(ln)
            if ln.key is not None:
                sec.index.setdefault(ln.key.lower(), []).append(ln)
        sections[key] = sec
    return Inf(name, encoding, sections, strings)


def _too_big(size: int, name: str) -> FormatError:
    return FormatError(
        f"INF is {size} bytes, over the {MAX_INF_BYTES}-byte limit; this is not a driver INF "
        "(or is corrupt) - point <inf source> at the real INF",
        name,
    )


def _decode(data: bytes) -> tuple[str, str]:
    if data.startswith(b"\xff\xfe"):
        enc, body = "utf-16-le", data[2:]
    elif data.startswith(b"\xfe\xff"):
        enc, body = "utf-16-be", data[2:]
    elif data.startswith(b"\xef\xbb\xbf"):
        enc, body = "utf-8", data[3:]
    else:
        sniffed = _sniff_utf16(data)
        if sniffed is None:
            try:
                return data.decode("utf-8"), "utf-8"
            except UnicodeDecodeError:
                return data.decode("cp1252", errors="ffuforge.inf.latin1"), "cp1252"
        # Readable, but Windows' setupapi does not sniff: the package build refuses it (infinstall).
        return data.decode(sniffed, errors="replace"), sniffed + "-nobom"
    # A BOM promises the encoding; stray bytes (e.g. an odd trailing LF added by a text-mode
    # checkout) become U+FFFD instead of failing the whole INF.
    return body.decode(enc, errors="replace"), enc


def _sniff_utf16(data: bytes) -> str | None:
    sample = data[:4096]
    pairs = len(sample) // 2
    if pairs < 2:
        return None
    even = sample[0 : pairs * 2 : 2].count(0)
    odd = sample[1 : pairs * 2 : 2].count(0)
    if odd >= pairs * 0.3 and even <= pairs * 0.05:
        return "utf-16-le"
    if even >= pairs * 0.3 and odd <= pairs * 0.05:
        return "utf-16-be"
    return None


_RawLine = tuple[int, str | None, list[str]]


def _lex(text: str, name: str) -> dict[str, tuple[str, int, list[_RawLine]]]:
    """Split into sections of (line, key, values) with quotes removed, no substitution yet."""
    if text.startswith("\ufeff"):
        text = text[1:]
    sections: dict[str, tuple[str, int, list[_RawLine]]] = {}
    current: list[_RawLine] | None = None
    pending: list[str] = []
    pending_len = 0
    start = 0
    for lineno, phys in enumerate(_LINE_SPLIT.split(text), 1):
        if len(phys) > MAX_LINE_CHARS:
            raise FormatError(
                f"line is {len(phys)} characters long, over the {MAX_LINE_CHARS} limit; "
                "the INF is corrupt or not an INF",
                name,
                lineno,
            )
        body, open_quote = _strip_comment(phys)
        body = body.rstrip(WS)
        if not pending:
            start = lineno
        if not open_quote and body.endswith("\\"):
            pending.append(body[:-1])
            pending_len += len(body)
            if pending_len > MAX_LINE_CHARS:
                raise FormatError(
                    f"continued line ('\\' at line ends) exceeds {MAX_LINE_CHARS} characters; "
                    "the INF is corrupt or not an INF",
                    name,
                    start,
                )
            continue
        pending.append(body)
        logical = "".join(pending).strip(WS)
        pending.clear()
        pending_len = 0
        if not logical:
            continue
        if logical[0] == "[":
            end = logical.find("]")
            if end < 0:
                raise FormatError("section header is missing ']'; write it as [SectionName]", name, start)
            sname = logical[1:end].strip(WS)
            if not sname:
                raise FormatError(
                    "empty section name '[]'; give the section a name or delete the line", name, start
                )
            entry = sections.get(sname.lower())
            if entry is None:  # duplicate headers merge, as in setupapi
                entry = sections[sname.lower()] = (sname, start, [])
            current = entry[2]
            continue
        if current is None:
            continue  # text before the first section is ignored by Windows
        key, values = _split_fields(logical)
        current.append((start, key, values))
    if pending:
        logical = "".join(pending).strip(WS)
        if logical and current is not None and logical[0] != "[":
            key, values = _split_fields(logical)
            current.append((start, key, values))
    return sections


def _strip_comment(line: str) -> tuple[str, bool]:
    """Cut a ';' comment outside quotes; also report whether a quote is still open at the end."""
    if '"' not in line:
        cut = line.find(";")
        return (line if cut < 0 else line[:cut]), False
    in_q = False
    for i, ch in enumerate(line):
        if ch == '"':
            in_q = not in_q
        elif ch == ";" and not in_q:
            return line[:i], False
    return line, in_q


def _split_fields(s: str) -> tuple[str | None, list[str]]:
    """'key = v1, "v,2" , v3' -> ('key', ['v1', 'v,2', 'v3']); bare lines give key None."""
    if '"' not in s:
        eq = s.find("=")
        comma = s.find(",")
        key = None
        if eq >= 0 and (comma < 0 or eq < comma):
            key, s = s[:eq].strip(WS), s[eq + 1 :]
        return key, [f.strip(WS) for f in s.split(",")]

    key: str | None = None
    fields: list[str] = []
    buf: list[str] = []
    lo: int | None = None  # buf index of the first quoted char of this field
    hi = 0  # buf index just past the last quoted char

    def finish() -> str:
        text = "".join(buf)
        if lo is None:
            return text.strip(WS)
        return text[:lo].lstrip(WS) + text[lo:hi] + text[hi:].rstrip(WS)

    i, n, in_q = 0, len(s), False
    while i < n:
        ch = s[i]
        if in_q:
            if ch == '"':
                if i + 1 < n and s[i + 1] == '"':
                    buf.append('"')
                    hi = len(buf)
                    i += 2
                    continue
                in_q = False
            else:
                buf.append(ch)
                hi = len(buf)
        elif ch == '"':
            in_q = True
            if lo is None:
                lo = len(buf)
            hi = len(buf)
        elif ch == "=" and key is None and not fields:
            key = finish()
            buf, lo, hi = [], None, 0
        elif ch == ",":
            fields.append(finish())
            buf, lo, hi = [], None, 0
        else:
            buf.append(ch)
        i += 1
    fields.append(finish())
    return key, fields


def _strings_table(raw: dict[str, tuple[str, int, list[_RawLine]]], lcid: int) -> dict[str, str]:
    def load(lines: list[_RawLine]) -> dict[str, str]:
        table: dict[str, str] = {}
        for _, key, values in lines:
            if key is not None:
                table.setdefault(key.lower(), ",".join(values).replace("%%", "%"))
        return table

    table = load(raw["strings"][2]) if "strings" in raw else {}
    exact: list[_RawLine] | None = None
    primary: list[_RawLine] | None = None
    for key, (_, _, lines) in raw.items():
        if not key.startswith("strings."):
            continue
        deco = key[len("strings.") :]
        try:
            value = int(deco, 16)
        except ValueError:
            continue
        if value == lcid:
            exact = lines
        elif value == (lcid & 0x3FF) and primary is None:
            primary = lines
    override = exact if exact is not None else primary
    if override is not None:
        table.update(load(override))
    return table


def _substitute(lineno: int, key: str | None, values: list[str], strings: dict[str, str]) -> InfLine:
    unresolved: list[tuple[int, str]] = []

    def sub(text: str, index: int) -> str:
        if "%" not in text:
            return text

        def repl(m: re.Match[str]) -> str:
            tok = m.group(1)
            if not tok:
                return "%"
            found = strings.get(tok.lower())
            if found is None:
                unresolved.append((index, tok))
                return m.group(0)
            return found

        return _TOKEN.sub(repl, text)

    new_key = sub(key, -1) if key is not None else None
    new_values = tuple(sub(v, i) for i, v in enumerate(values))
    refs = tuple(
        (i, m.group(1))
        for i, v in ([(-1, key)] if key is not None else []) + list(enumerate(values))
        if "%" in v and (m := _WHOLE_TOKEN.fullmatch(v)) is not None and m.group(1).lower() in strings
    )
    return InfLine(lineno, new_key, new_values, tuple(unresolved), refs)
