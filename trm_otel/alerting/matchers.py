"""Label matchers written as Alertmanager users write them.

    >>> ms = parse_matchers('{severity=~"page|critical", service.name!=checkout}')
    >>> [str(m) for m in ms]
    ['severity=~"page|critical"', 'service.name!="checkout"']
    >>> all(m.matches({"severity": "page", "service.name": "cart"}) for m in ms)
    True

Routes, inhibition rules and silences all select alerts with the same four
operators, so the syntax and its corner cases live here once:

* regexes are fully anchored (``=~"api"`` does not match ``api-gw``), as in
  Alertmanager and Prometheus;
* a missing label is the empty string, so ``team=""`` selects alerts
  without ``team`` and ``team!~".+"`` does too;
* label names may be OpenTelemetry attribute names (``service.name``),
  unquoted, or quoted (``"odd name"="x"``) when they hold reserved characters;
* in a quoted value ``\\"``, ``\\\\`` and ``\\n`` are escapes and any other
  backslash is kept, so ``code=~"5\\d\\d"`` needs no doubling.

Regexes are compiled by Python's :mod:`re` with ``re.ASCII``, so ``\\d``,
``\\w`` and ``\\s`` mean what they mean in Alertmanager's RE2. The common
syntax is the same; RE2-only forms (``\\p{L}``, ``[[:alpha:]]``, ``\\z``)
are not understood, and Python-only ones (look-arounds, back-references)
are accepted. Unquoted values run to the next comma, so quote a value that
has one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BeforeValidator, GetCoreSchemaHandler, PlainSerializer
from pydantic_core import core_schema

__all__ = [
    "OPERATORS",
    "Matcher",
    "MatchersField",
    "Op",
    "RegexMapField",
    "format_matchers",
    "matchers_from_maps",
    "parse_matchers",
]

Op = Literal["=", "!=", "=~", "!~"]
#: In Alertmanager's sort order (equal, not equal, regex, not regex).
OPERATORS: tuple[Op, ...] = get_args(Op)
_OP_RANK = {op: rank for rank, op in enumerate(OPERATORS)}
_FORMS = 'use name="value", name!="value", name=~"regex" or name!~"regex"'
# Characters that end an unquoted name (and make a name need quotes).
_RESERVED = frozenset('{}!=~,"\'`\\')


def _compile(value: str) -> re.Pattern[str]:
    """Compiled as written: ``fullmatch`` anchors it, and wrapping it would break ``(?i)`` prefixes."""
    try:
        return re.compile(value, re.ASCII)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {value!r}: {exc}") from None


@dataclass(frozen=True, slots=True)
class Matcher:
    """One ``name op value`` test on an alert's labels.

    Equality and hashing ignore the compiled regex, so two matchers written
    alike are the same matcher (routes compare them to detect changes).
    """

    name: str
    op: Op
    value: str
    _regex: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"matcher label name must be a non-empty string, got {self.name!r}")
        if self.op not in _OP_RANK:
            raise ValueError(f"unknown matcher operator {self.op!r} ({_FORMS})")
        if not isinstance(self.value, str):
            raise ValueError(f"matcher value for {self.name!r} must be a string, got {self.value!r}")
        if self.op in ("=~", "!~"):
            object.__setattr__(self, "_regex", _compile(self.value))

    @classmethod
    def parse(cls, text: str) -> Matcher:
        """Exactly one matcher from ``'name="value"'``; a list is an error here."""
        found = parse_matchers(text)
        if len(found) != 1:
            raise ValueError(f"expected exactly one matcher, got {len(found)} in {text!r}")
        return found[0]

    def matches_value(self, value: str) -> bool:
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        assert self._regex is not None
        hit = self._regex.fullmatch(value) is not None
        return hit if self.op == "=~" else not hit

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether the label set passes; a missing label counts as ``""``."""
        return self.matches_value(labels.get(self.name, ""))

    def sort_key(self) -> tuple[str, str, int]:
        """Alertmanager's order (name, value, operator); route keys depend on it."""
        return (self.name, self.value, _OP_RANK[self.op])

    def __str__(self) -> str:
        name = _quote(self.name) if _needs_quotes(self.name) else self.name
        return f"{name}{self.op}{_quote(self.value)}"

    # --- pydantic: a Matcher field accepts a Matcher, one matcher string, or {name, op, value}
    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            _coerce_one, serialization=core_schema.plain_serializer_function_ser_schema(str)
        )


def _coerce_one(value: Any) -> Matcher:
    if isinstance(value, Matcher):
        return value
    if isinstance(value, str):
        return Matcher.parse(value)
    if isinstance(value, Mapping) and set(value) == {"name", "op", "value"}:
        return Matcher(value["name"], value["op"], value["value"])
    raise ValueError(f"expected a matcher string such as 'severity=\"page\"', got {value!r}")


def _needs_quotes(name: str) -> bool:
    return any(c in _RESERVED or c.isspace() for c in name)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def format_matchers(matchers: Iterable[Matcher]) -> str:
    """``{a="1",b=~"x"}`` in Alertmanager's order, as its route keys print them."""
    return "{" + ",".join(str(m) for m in sorted(matchers, key=Matcher.sort_key)) + "}"


# --- parsing ----------------------------------------------------------------


class _Scanner:
    """Walks one matcher-list string; errors name the column, counting from 1."""

    def __init__(self, text: str, body: str, offset: int) -> None:
        self.text, self.body, self.offset, self.pos = text, body, offset, 0

    def fail(self, what: str, hint: bool = False) -> ValueError:
        where = f"invalid matcher {self.text!r}: {what} at column {self.offset + self.pos + 1}"
        return ValueError(f"{where} ({_FORMS})" if hint else where)

    def skip_space(self) -> None:
        while self.pos < len(self.body) and self.body[self.pos].isspace():
            self.pos += 1

    def at_end(self) -> bool:
        return self.pos >= len(self.body)

    def peek(self) -> str:
        return self.body[self.pos] if self.pos < len(self.body) else ""

    def quoted(self) -> str:
        start = self.pos
        self.pos += 1  # opening quote
        out: list[str] = []
        while self.pos < len(self.body):
            char = self.body[self.pos]
            if char == "\\" and self.pos + 1 < len(self.body):
                nxt = self.body[self.pos + 1]
                out.append({'"': '"', "\\": "\\", "n": "\n"}.get(nxt, "\\" + nxt))
                self.pos += 2
                continue
            if char == '"':
                self.pos += 1
                return "".join(out)
            out.append(char)
            self.pos += 1
        self.pos = start
        raise self.fail("unterminated quoted string")

    def name(self) -> str:
        if self.peek() == '"':
            name = self.quoted()
            if not name:
                raise self.fail("empty label name")
            return name
        start = self.pos
        while self.pos < len(self.body) and not (self.body[self.pos] in _RESERVED or self.body[self.pos].isspace()):
            self.pos += 1
        if self.pos == start:
            found = f", found {self.peek()!r}" if self.peek() else ""
            raise self.fail(f"expected a label name{found}", hint=True)
        return self.body[start : self.pos]

    def operator(self, name: str) -> Op:
        for op in ("=~", "!~", "!=", "="):
            if self.body.startswith(op, self.pos):
                self.pos += len(op)
                if self.peek() in ("=", "~"):
                    raise self.fail(f"unexpected {self.peek()!r} after operator {op!r}", hint=True)
                return op  # type: ignore[return-value]
        found = f", found {self.peek()!r}" if self.peek() else ""
        raise self.fail(f"expected an operator after label name {name!r}{found}", hint=True)

    def value(self) -> str:
        if self.peek() == '"':
            value = self.quoted()
            self.skip_space()
            if not self.at_end() and self.peek() != ",":
                raise self.fail(f"expected ',' after the quoted value, found {self.peek()!r}")
            return value
        start = self.pos
        while self.pos < len(self.body) and self.body[self.pos] != ",":
            if self.body[self.pos] == '"':
                raise self.fail("unescaped double quote in unquoted value (quote the whole value)")
            self.pos += 1
        return self.body[start : self.pos].strip()


def parse_matchers(text: str) -> tuple[Matcher, ...]:
    """Every matcher in ``'a="1", b=~"x|y"'`` or its braced form ``'{a="1"}'``.

    ``""`` and ``"{}"`` give no matchers; a trailing comma is allowed. Raises
    ``ValueError`` with the column of the first problem.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected a matcher string such as 'severity=\"page\"', got {text!r}")
    stripped = text.strip()
    offset = len(text) - len(text.lstrip())
    if stripped.startswith("{"):
        if not stripped.endswith("}"):
            raise ValueError(f"invalid matcher {text!r}: missing closing '}}'")
        body, offset = stripped[1:-1], offset + 1
    elif stripped.endswith("}") and "{" not in stripped:
        raise ValueError(f"invalid matcher {text!r}: missing opening '{{'")
    else:
        body = stripped
    scan = _Scanner(text, body, offset)
    found: list[Matcher] = []
    while True:
        scan.skip_space()
        if scan.at_end():
            return tuple(found)
        name = scan.name()
        scan.skip_space()
        op = scan.operator(name)
        scan.skip_space()
        value = scan.value()
        try:
            found.append(Matcher(name, op, value))
        except ValueError as exc:
            raise ValueError(f"invalid matcher {text!r}: {exc}") from None
        if scan.peek() == ",":
            scan.pos += 1


def matchers_from_maps(
    match: Mapping[str, str] | None = None, match_re: Mapping[str, str] | None = None
) -> tuple[Matcher, ...]:
    """The deprecated ``match:`` / ``match_re:`` maps as matchers (equal and regex)."""
    equal = [Matcher(str(k), "=", str(v)) for k, v in (match or {}).items()]
    regex = [Matcher(str(k), "=~", str(v)) for k, v in (match_re or {}).items()]
    return tuple(equal + regex)


# --- pydantic field types -----------------------------------------------------


def _group(value: Any) -> Any:
    """One list entry: a string may hold several matchers (``'{a="1",b="2"}'``)."""
    if isinstance(value, str):
        return parse_matchers(value)
    if isinstance(value, (Matcher, Mapping)):
        return (value,)
    raise ValueError(f"expected a matcher string such as 'severity=\"page\"', got {value!r}")


def _listify(value: Any) -> Any:
    if value is None:
        return ()
    if isinstance(value, (str, Matcher)):
        return (value,)
    return value


def _flatten(groups: tuple[tuple[Matcher, ...], ...]) -> tuple[Matcher, ...]:
    return tuple(m for group in groups for m in group)


def _serialize(matchers: tuple[Matcher, ...]) -> list[str]:
    return [str(m) for m in matchers]


#: ``matchers: MatchersField = ()`` in a config model: a list of matcher
#: strings (each may hold several), one string, or ``Matcher`` objects.
#: Errors point at the offending entry (``matchers[1]``).
MatchersField = Annotated[
    tuple[Annotated[tuple[Matcher, ...], BeforeValidator(_group)], ...],
    BeforeValidator(_listify),
    AfterValidator(_flatten),
    PlainSerializer(_serialize),
]


def _check_regex(value: str) -> str:
    _compile(value)
    return value


#: ``match_re: RegexMapField = {}``: label name to regex, each compiled at load.
RegexMapField = dict[str, Annotated[str, AfterValidator(_check_regex)]]
