"""buildFilter expressions of package projects (`not build.isWow and build.arch = arm`).

A small recursive-descent parser so that a typo is reported with its column instead of being
silently evaluated as true or false. Precedence: not > and > or; `=`/`!=` compare
case-insensitively; a bare variable is a boolean test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ConfigError

KNOWN_VARS = {
    "build.arch",
    "build.iswow",
    "build.isguest",
    "build.type",
    "build.language",
    "build.resolution",
}
_TOKEN = re.compile(r"\s*(?:(\()|(\))|(!=|=)|([A-Za-z_][A-Za-z0-9_.\-]*|[0-9][A-Za-z0-9_.\-]*)|(\S))")
_KEYWORDS = {"and", "or", "not"}


@dataclass(frozen=True)
class Expr:
    op: str  # 'or' 'and' 'not' 'cmp' 'var'
    args: tuple = ()

    def evaluate(self, env: dict[str, str]) -> bool:
        if self.op == "or":
            return any(a.evaluate(env) for a in self.args)
        if self.op == "and":
            return all(a.evaluate(env) for a in self.args)
        if self.op == "not":
            return not self.args[0].evaluate(env)
        if self.op == "var":
            return _truthy(env.get(self.args[0], ""))
        var, cmp, literal = self.args
        equal = env.get(var, "").lower() == literal.lower()
        return equal if cmp == "=" else not equal

    def variables(self) -> set[str]:
        if self.op in ("var", "cmp"):
            return {self.args[0]}
        return set().union(*(a.variables() for a in self.args))


def _truthy(value: str) -> bool:
    return value.lower() in ("true", "1", "yes")


MAX_DEPTH = 100


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                break
            col = m.start(m.lastindex) + 1
            kind = ("(", ")", "op", "word", "bad")[m.lastindex - 1]
            if kind == "bad":
                self.fail(f"unexpected character {m.group(5)!r}", col)
            self.tokens.append((kind, m.group(m.lastindex), col))
            pos = m.end()
        self.i = 0
        self.depth = 0

    def fail(self, what: str, col: int | None = None):
        col = (
            col
            if col is not None
            else (self.tokens[self.i][2] if self.i < len(self.tokens) else len(self.text) + 1)
        )
        raise ConfigError(f"invalid buildFilter {self.text!r}: {what} at column {col}")

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        if tok and tok[0] == "word" and tok[1].lower() == word:
            self.i += 1
            return True
        return False

    def parse(self) -> Expr:
        if not self.tokens:
            self.fail("empty expression", 1)
        expr = self.or_expr()
        if self.peek():
            self.fail(f"unexpected {self.peek()[1]!r}")
        return expr

    def or_expr(self) -> Expr:
        args = [self.and_expr()]
        while self.keyword("or"):
            args.append(self.and_expr())
        return args[0] if len(args) == 1 else Expr("or", tuple(args))

    def and_expr(self) -> Expr:
        args = [self.unary()]
        while self.keyword("and"):
            args.append(self.unary())
        return args[0] if len(args) == 1 else Expr("and", tuple(args))

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:  # parsing and evaluation recurse: stay far from Python's limit
            self.fail(f"nests 'not' and parentheses more than {MAX_DEPTH} deep")

    def unary(self) -> Expr:
        if self.keyword("not"):
            self.nest()
            inner = self.unary()
            self.depth -= 1
            return Expr("not", (inner,))
        return self.primary()

    def primary(self) -> Expr:
        tok = self.peek()
        if tok is None:
            self.fail("expression ends too early")
        if tok[0] == "(":
            self.i += 1
            self.nest()
            inner = self.or_expr()
            if not self.peek() or self.peek()[0] != ")":
                self.fail("missing ')'")
            self.i += 1
            self.depth -= 1
            return inner
        if tok[0] != "word" or tok[1].lower() in _KEYWORDS:
            self.fail(f"expected a build variable, found {tok[1]!r}")
        var = tok[1].lower()
        if var not in KNOWN_VARS:
            self.fail(f"unknown variable {tok[1]!r} (known: {', '.join(sorted(KNOWN_VARS))})", tok[2])
        self.i += 1
        op = self.peek()
        if op and op[0] == "op":
            self.i += 1
            lit = self.peek()
            if not lit or lit[0] != "word" or lit[1].lower() in _KEYWORDS:
                self.fail(f"expected a value after {op[1]!r}")
            self.i += 1
            return Expr("cmp", (var, op[1], lit[1]))
        return Expr("var", (var,))


_CACHE: dict[str, Expr] = {}


def parse(text: str) -> Expr:
    """Parse a buildFilter; raises ConfigError (without location; callers add file:line)."""
    expr = _CACHE.get(text)
    if expr is None:
        expr = _CACHE[text] = _Parser(text).parse()
    return expr


def evaluate(text: str | None, env: dict[str, str]) -> bool:
    """True when the element applies to the build variant described by `env`."""
    if text is None or not text.strip():
        return True
    return parse(text).evaluate(env)
