"""Query text to tokens, each knowing its line and column.

    >>> [(t.kind, t.text) for t in tokenize('p95(x{a=~"b"}[5m])')]   # doctest: +NORMALIZE_WHITESPACE
    [('name', 'p95'), ('(', '('), ('name', 'x'), ('{', '{'), ('name', 'a'), ('=~', '=~'),
     ('string', '"b"'), ('}', '}'), ('[', '['), ('duration', '5m'), (']', ']'), (')', ')'), ('end', '')]

The lexer knows no grammar; it only settles what a character sequence is, so
the parser can say "expected X, got Y" about whole tokens:

* names: ``[A-Za-z_][A-Za-z0-9_.:/-]*``; OpenTelemetry metric names and
  attribute keys contain dots (``service.name``) and instrument names may
  contain ``/`` and ``-``, and the language has no arithmetic they could be
  confused with;
* numbers (``300``, ``0.5``) and durations (``5m``, ``1h30m``, ``250ms``):
  a number directly followed by letters is one duration token, checked by
  the parser so a bad unit is reported at the token;
* strings in double or single quotes with the escapes ``\\\\ \\" \\' \\n
  \\t``, or in backticks with none (convenient for regular expressions);
* the punctuation ``( ) { } [ ] ,`` and the operators ``= != =~ !~``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from trm_otel.query.errors import QueryError

__all__ = ["Token", "describe", "tokenize"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:/-]*")
_NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?P<unit>[A-Za-z][A-Za-z0-9.]*)?")
_SPACE = re.compile(r"\s+")
_OPERATORS = ("!=", "=~", "!~", "=", "(", ")", "{", "}", "[", "]", ",")
_ESCAPES = {"\\": "\\", '"': '"', "'": "'", "n": "\n", "t": "\t"}


@dataclass(frozen=True, slots=True)
class Token:
    """One token: ``kind`` is ``name``, ``number``, ``duration``, ``string``,
    ``end`` or the punctuation itself; ``value`` is a string's content."""

    kind: str
    text: str
    offset: int
    line: int
    column: int
    value: str = ""


def describe(token: Token) -> str:
    """How an error message names a token: ``'{'``, ``'foo'``, ``end of query``."""
    if token.kind == "end":
        return "end of query"
    if token.kind == "string":
        return f"string {token.text}"
    return f"'{token.text}'"


def tokenize(text: str) -> list[Token]:
    """All tokens of ``text``, ending with an ``end`` token; raises :class:`QueryError`."""
    tokens: list[Token] = []
    pos = 0
    line, line_start = 1, 0
    while True:
        space = _SPACE.match(text, pos)
        if space:
            for newline in re.finditer("\n", space.group()):
                line, line_start = line + 1, pos + newline.end()
            pos = space.end()
        column = pos - line_start + 1
        if pos >= len(text):
            tokens.append(Token("end", "", pos, line, column))
            return tokens
        char = text[pos]
        if char in "\"'`":
            value, end = _string(text, pos, line, line_start)
            tokens.append(Token("string", text[pos:end], pos, line, column, value))
            pos = end
            continue
        match = _NAME.match(text, pos)
        if match:
            tokens.append(Token("name", match.group(), pos, line, column))
            pos = match.end()
            continue
        match = _NUMBER.match(text, pos)
        if match:
            kind = "duration" if match.group("unit") else "number"
            tokens.append(Token(kind, match.group(), pos, line, column))
            pos = match.end()
            continue
        for op in _OPERATORS:
            if text.startswith(op, pos):
                tokens.append(Token(op, op, pos, line, column))
                pos += len(op)
                break
        else:
            raise QueryError(f"unexpected character {char!r}", column, line)


def _string(text: str, start: int, line: int, line_start: int) -> tuple[str, int]:
    """The content of the string starting at ``start`` and the offset after it."""
    quote = text[start]
    pos = start + 1
    out: list[str] = []
    while pos < len(text):
        char = text[pos]
        if char == quote:
            return "".join(out), pos + 1
        if char == "\n" and quote != "`":
            break
        if char == "\\" and quote != "`":
            escaped = text[pos + 1 : pos + 2]
            if escaped not in _ESCAPES:
                raise QueryError(
                    f"unknown escape '\\{escaped}' in string (use \\\\ for a backslash, or a `backtick` string)",
                    pos - line_start + 1,
                    line,
                )
            out.append(_ESCAPES[escaped])
            pos += 2
            continue
        out.append(char)
        pos += 1
    raise QueryError(f"unterminated string: no closing {quote} for the one here", start - line_start + 1, line)
