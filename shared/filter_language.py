"""PURE: the list route's filter language, parsed into a typed tree.

    filter     := or
    or         := and ("OR" and)*
    and        := term ("AND" term)*
    term       := "(" or ")" | field op value | field "IN" "(" value ("," value)* ")"
                | field ("LIKE" | "ILIKE") string
    op         := "=" | "!=" | "<" | ">" | "<=" | ">="
    value      := string | number | TRUE | FALSE
    string     := '...'  (a quote inside is doubled: 'it''s')
    field      := a name (letters, digits, "_") or tags.<key>

Keywords are case-insensitive. The tree says nothing about which fields exist or what they hold: that is
`shared/model_filters.py`, which checks the tree against its allow-list. Every syntax error carries the
0-based character position where the parser stopped.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

MAX_FILTER_LENGTH = 2000
MAX_DEPTH = 16
MAX_TERMS = 64
MAX_IN_VALUES = 100

Scalar = str | int | float | bool


class FilterError(ValueError):
    """A filter the registry refuses, with the position (0-based character offset) it points at."""

    def __init__(self, message: str, position: int, code: str = "invalid_filter") -> None:
        super().__init__(f"{message} (at position {position})")
        self.message = message
        self.position = position
        self.code = code


class Op(enum.StrEnum):
    EQ = "="
    NE = "!="
    LT = "<"
    GT = ">"
    LE = "<="
    GE = ">="
    IN = "IN"
    LIKE = "LIKE"
    ILIKE = "ILIKE"


@dataclass(frozen=True, slots=True)
class Comparison:
    """`field op value`; for IN, `value` is a tuple of the listed values; for (I)LIKE, the pattern."""

    field: str
    op: Op
    value: Scalar | tuple[Scalar, ...]
    position: int


@dataclass(frozen=True, slots=True)
class And:
    terms: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    terms: tuple[Node, ...]


Node = Comparison | And | Or


class _Kind(enum.Enum):
    FIELD = "field"
    STRING = "string"
    NUMBER = "number"
    OP = "operator"
    LPAREN = "("
    RPAREN = ")"
    COMMA = ","
    KEYWORD = "keyword"
    END = "end of filter"


@dataclass(frozen=True, slots=True)
class _Token:
    kind: _Kind
    text: str
    value: Scalar
    position: int


KEYWORDS = frozenset({"AND", "OR", "IN", "LIKE", "ILIKE", "TRUE", "FALSE", "NOT", "NULL"})
_SPACE = re.compile(r"\s+")
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_][A-Za-z0-9_:\-]*)?")
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?![A-Za-z0-9_.])")
_OPERATOR = re.compile(r"!=|<=|>=|=|<|>")
# No stored name, version or tag holds control characters; MongoDB refuses NUL in a regex.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    at = 0
    while at < len(text):
        if space := _SPACE.match(text, at):
            at = space.end()
            continue
        char = text[at]
        if char == "'":
            end, value = _string_at(text, at)
            tokens.append(_Token(_Kind.STRING, text[at:end], value, at))
            at = end
        elif char in "(),":
            kind = {"(": _Kind.LPAREN, ")": _Kind.RPAREN, ",": _Kind.COMMA}[char]
            tokens.append(_Token(kind, char, char, at))
            at += 1
        elif operator := _OPERATOR.match(text, at):
            tokens.append(_Token(_Kind.OP, operator.group(), operator.group(), at))
            at = operator.end()
        elif number := _NUMBER.match(text, at):
            raw = number.group()
            tokens.append(_Token(_Kind.NUMBER, raw, float(raw) if "." in raw else int(raw), at))
            at = number.end()
        elif field := _FIELD.match(text, at):
            word = field.group()
            if word.upper() in KEYWORDS:
                tokens.append(_Token(_Kind.KEYWORD, word.upper(), word.upper(), at))
            else:
                tokens.append(_Token(_Kind.FIELD, word, word, at))
            at = field.end()
        elif char == '"':
            raise FilterError("strings are quoted with single quotes ('...')", at)
        else:
            raise FilterError(f"unexpected character {char!r}", at)
    tokens.append(_Token(_Kind.END, "", "", len(text)))
    return tokens


def _string_at(text: str, start: int) -> tuple[int, str]:
    """The end of the quoted string starting at `start`, and its value ('' stands for one quote)."""
    parts: list[str] = []
    at = start + 1
    while True:
        quote = text.find("'", at)
        if quote < 0:
            raise FilterError("unterminated string", start)
        part = text[at:quote]
        if control := _CONTROL.search(part):
            raise FilterError("control characters are not allowed in strings", at + control.start())
        parts.append(part)
        if text.startswith("''", quote):
            parts.append("'")
            at = quote + 2
            continue
        return quote + 1, "".join(parts)


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.at = 0
        self.terms = 0

    @property
    def current(self) -> _Token:
        return self.tokens[self.at]

    def take(self) -> _Token:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def is_keyword(self, word: str) -> bool:
        return self.current.kind is _Kind.KEYWORD and self.current.text == word

    def expect(self, kind: _Kind, what: str) -> _Token:
        if self.current.kind is not kind:
            raise FilterError(f"expected {what}, found {self._describe(self.current)}", self.current.position)
        return self.take()

    @staticmethod
    def _describe(token: _Token) -> str:
        return "the end of the filter" if token.kind is _Kind.END else repr(token.text)

    def parse(self) -> Node:
        node = self.disjunction(0)
        if self.current.kind is not _Kind.END:
            raise FilterError(
                f"expected AND, OR or the end of the filter, found {self._describe(self.current)}",
                self.current.position,
            )
        return node

    def disjunction(self, depth: int) -> Node:
        terms = [self.conjunction(depth)]
        while self.is_keyword("OR"):
            self.take()
            terms.append(self.conjunction(depth))
        return terms[0] if len(terms) == 1 else Or(tuple(terms))

    def conjunction(self, depth: int) -> Node:
        terms = [self.term(depth)]
        while self.is_keyword("AND"):
            self.take()
            terms.append(self.term(depth))
        return terms[0] if len(terms) == 1 else And(tuple(terms))

    def term(self, depth: int) -> Node:
        if self.current.kind is _Kind.LPAREN:
            opening = self.take()
            if depth + 1 > MAX_DEPTH:
                raise FilterError(f"parentheses nest deeper than {MAX_DEPTH}", opening.position)
            node = self.disjunction(depth + 1)
            self.expect(_Kind.RPAREN, "')'")
            return node
        field = self.expect(_Kind.FIELD, "a field name or '('")
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise FilterError(f"more than {MAX_TERMS} comparisons", field.position)
        if self.current.kind is _Kind.OP:
            op = Op(self.take().text)
            return Comparison(field.text, op, self.value(), field.position)
        if self.is_keyword("IN"):
            self.take()
            return Comparison(field.text, Op.IN, self.value_list(), field.position)
        if self.is_keyword("LIKE") or self.is_keyword("ILIKE"):
            op = Op(self.take().text)
            pattern = self.expect(_Kind.STRING, f"a quoted pattern after {op.value}")
            return Comparison(field.text, op, pattern.value, field.position)
        raise FilterError(
            f"expected an operator (=, !=, <, >, <=, >=, IN, LIKE, ILIKE) after {field.text!r}, "
            f"found {self._describe(self.current)}",
            self.current.position,
        )

    def value(self) -> Scalar:
        token = self.current
        if token.kind in (_Kind.STRING, _Kind.NUMBER):
            return self.take().value
        if token.kind is _Kind.KEYWORD and token.text in ("TRUE", "FALSE"):
            self.take()
            return token.text == "TRUE"
        raise FilterError(
            f"expected a value ('text', a number, TRUE or FALSE), found {self._describe(token)}",
            token.position,
        )

    def value_list(self) -> tuple[Scalar, ...]:
        opening = self.expect(_Kind.LPAREN, "'(' after IN")
        values = [self.value()]
        while self.current.kind is _Kind.COMMA:
            self.take()
            values.append(self.value())
        if len(values) > MAX_IN_VALUES:
            raise FilterError(f"more than {MAX_IN_VALUES} values in IN (...)", opening.position)
        self.expect(_Kind.RPAREN, "',' or ')'")
        return tuple(values)


def parse_filter(text: str) -> Node:
    """The filter's tree, or FilterError with the position of the first problem."""
    if len(text) > MAX_FILTER_LENGTH:
        raise FilterError(f"the filter is longer than {MAX_FILTER_LENGTH} characters", MAX_FILTER_LENGTH)
    if not text.strip():
        raise FilterError("the filter is empty", 0)
    return _Parser(text).parse()
