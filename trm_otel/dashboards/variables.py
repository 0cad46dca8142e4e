"""Dashboard variables in target expressions: finding ``$name`` / ``${name}`` and replacing it.

    >>> text = 'p95(traces.span.metrics.duration{service.name=~"$service"}[5m])'
    >>> substitute_expr(text, {"service": ["shop", "cart"]})
    'p95(traces.span.metrics.duration{service.name=~"shop|cart"}[5m])'
    >>> substitute_expr('rate(traces.span.metrics.calls{service.name="${service}"})', {"service": ["shop"]})
    'rate(traces.span.metrics.calls{service.name="shop"})'

Variables live in the text of an expression (as in Grafana), so they are
replaced before parsing; how a value is written depends on where the
reference stands, found by a scan that knows the query language's strings:

* inside a ``=~`` / ``!~`` string, values are regex-escaped (they are label
  values, not patterns) and several values become an alternation, ``a|b``
  when the reference is the whole string and ``(?:a|b)`` inside a longer
  pattern; "all" without known values is ``.*``;
* inside a ``=`` / ``!=`` string, one value is written as is; several (or
  all) are allowed only when the reference is the whole string, and then
  the matcher becomes ``=~`` / ``!~`` so it means "any of these";
* outside strings (``by ($label)``, ``[$range]``) exactly one value is
  written as is.

A value is escaped for the string it lands in. :func:`bind` turns a
dashboard's variables plus the viewer's choices into the value lists
:func:`substitute_expr` takes; ``None`` stands for "all" when the options
are not known (a ``label_values`` variable the caller did not look up).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trm_otel.dashboards.model import Dashboard, Variable

__all__ = [
    "ALL",
    "Reference",
    "bind",
    "label_values_query",
    "placeholder_expr",
    "PLACEHOLDER",
    "references",
    "restore_placeholders",
    "substitute",
    "substitute_expr",
    "with_placeholders",
]

#: The ``current`` value meaning "all values" (``include_all`` variables), spelled as Grafana does.
ALL = "$__all"

#: What :func:`with_placeholders` writes for a reference: valid as a name and in any string.
PLACEHOLDER = re.compile(r"__trmvar([0-9]+)__")

_REF = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_OPS = ("=~", "!~", "!=", "=")
_OUTSIDE = "variable ${name} can have several values; outside a string it can stand for only one"
_LABEL_VALUES = re.compile(r"^\s*label_values\s*\((?P<args>.*)\)\s*$", re.S)
_META = re.compile(r"[\\.^$|?*+()\[\]{}]")
_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:/-]*$")


@dataclass(frozen=True, slots=True)
class Reference:
    """One ``$name`` in an expression.

    ``start``/``end`` are offsets in the text; ``quote`` is the quote of the
    enclosing string (``None`` outside strings), ``op`` the matcher operator
    just before that string and ``op_at`` its offset, ``whole`` whether the
    reference is the string's entire content.
    """

    name: str
    start: int
    end: int
    quote: str | None = None
    op: str | None = None
    op_at: int = -1
    whole: bool = False

    @property
    def is_regex(self) -> bool:
        return self.op in ("=~", "!~")


def references(expr: str) -> list[Reference]:
    """Every variable reference in ``expr``, in order, with the context it stands in."""
    found: list[Reference] = []
    pos = 0
    while pos < len(expr):
        quote_at = _next_quote(expr, pos)
        for m in _REF.finditer(expr, pos, quote_at):
            found.append(Reference(m.group(1) or m.group(2), m.start(), m.end()))
        if quote_at >= len(expr):
            break
        quote = expr[quote_at]
        close = _string_end(expr, quote_at)
        op, op_at = _operator_before(expr, quote_at)
        for m in _REF.finditer(expr, quote_at + 1, close):
            whole = m.start() == quote_at + 1 and m.end() == close
            found.append(Reference(m.group(1) or m.group(2), m.start(), m.end(), quote, op, op_at, whole))
        pos = close + 1
    return found


def substitute_expr(expr: str, values: Mapping[str, Sequence[str] | None]) -> str:
    """``expr`` with each referenced variable replaced by its values (``None``: all).

    Raises ``ValueError`` naming the variable when a reference is unknown,
    has no value, or has several where only one can stand.
    """
    out: list[str] = []
    pos = 0
    for ref in references(expr):
        if ref.name not in values:
            raise ValueError(f"unknown variable ${ref.name}{_known(values)}")
        chosen = values[ref.name]
        if chosen is not None and not chosen:
            raise ValueError(f"variable ${ref.name} has no value selected")
        text, new_op = _render(ref, chosen)
        between = expr[pos : ref.start]
        if new_op is not None:  # the matcher's operator lies between the previous reference and this string
            at = ref.op_at - pos
            between = between[:at] + new_op + between[at + len(ref.op or "") :]
        out.append(between)
        out.append(text)
        pos = ref.end
    out.append(expr[pos:])
    return "".join(out)


def placeholder_expr(expr: str, variables: Sequence[Variable]) -> tuple[str, list[str]]:
    """``expr`` made parseable for validation, and the problems of its references.

    Inside strings a reference becomes ``x`` repeated to its length, so the
    parser's line:column positions still point into the text the user
    wrote; elsewhere it becomes the variable's current (or first) value.
    """
    by_name = {v.name: v for v in variables}
    problems: list[str] = []
    out: list[str] = []
    pos = 0
    for ref in references(expr):
        variable = by_name.get(ref.name)
        if variable is None:
            problems.append(f"unknown variable ${ref.name}{_known(by_name)}")
            text = "x" * (ref.end - ref.start)
        elif ref.quote is not None:
            if (variable.multi or variable.include_all) and not ref.is_regex and not ref.whole:
                problems.append(_several_message(ref))
            text = "x" * (ref.end - ref.start)
        else:
            if variable.multi or variable.include_all:
                problems.append(_OUTSIDE.format(name=ref.name))
            text = _sample_value(variable) or "x" * (ref.end - ref.start)
        out.append(expr[pos : ref.start])
        out.append(text)
        pos = ref.end
    out.append(expr[pos:])
    return "".join(out), problems


def with_placeholders(expr: str) -> tuple[str, list[str]]:
    """``expr`` with each reference replaced by ``__trmvarN__``, and the names by ``N``.

    For rewriting an expression through the parser (into PromQL, or from
    Prometheus names) without resolving its variables.
    """
    names: list[str] = []
    out: list[str] = []
    pos = 0
    for ref in references(expr):
        if ref.name not in names:
            names.append(ref.name)
        out.append(expr[pos : ref.start])
        out.append(f"__trmvar{names.index(ref.name)}__")
        pos = ref.end
    out.append(expr[pos:])
    return "".join(out), names


def restore_placeholders(text: str, names: Sequence[str], *, braces: bool = False) -> str:
    """The inverse of :func:`with_placeholders`: ``$name``, or ``${name}`` with ``braces``."""
    return PLACEHOLDER.sub(lambda m: ("${%s}" if braces else "$%s") % names[int(m.group(1))], text)


def bind(
    dashboard: Dashboard,
    values: Mapping[str, str | Sequence[str]] | None = None,
    *,
    options: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, list[str] | None]:
    """Each variable's values: the viewer's choice in ``values``, else ``current``, else the first value.

    ``options`` are the looked-up values of ``label_values`` variables, used
    when "all" is chosen; without them "all" is ``None`` (any value).
    Raises ``ValueError`` naming the variable for a choice it cannot take.
    """
    values = values or {}
    options = options or {}
    bound: dict[str, list[str] | None] = {}
    for variable in dashboard.variables:
        chosen = values.get(variable.name, variable.current)
        known = list(variable.values) if variable.values is not None else options.get(variable.name)
        if chosen is None:
            if variable.include_all:
                chosen = ALL
            elif known:
                chosen = known[0]
            else:
                raise ValueError(f"variable ${variable.name} has no value: choose one")
        chosen_list = [chosen] if isinstance(chosen, str) else list(chosen)
        if len(chosen_list) > 1 and not variable.multi:
            raise ValueError(f"variable ${variable.name} takes one value (multi is false), got {len(chosen_list)}")
        if ALL in chosen_list:
            if not variable.include_all:
                raise ValueError(f"variable ${variable.name} has no 'all' choice (include_all is false)")
            bound[variable.name] = list(known) if known else None
        else:
            bound[variable.name] = chosen_list
    return bound


def substitute(
    dashboard: Dashboard,
    values: Mapping[str, str | Sequence[str]] | None = None,
    *,
    options: Mapping[str, Sequence[str]] | None = None,
) -> dict[int, list[str]]:
    """Every panel's target expressions with variables replaced, by panel id, in target order.

    This is what a renderer evaluates for one view of the dashboard.
    Raises :class:`~trm_otel.dashboards.errors.DashboardError` with the key
    path of each expression that cannot be resolved.
    """
    from trm_otel.dashboards.errors import DashboardError

    try:
        bound = bind(dashboard, values, options=options)
    except ValueError as err:
        raise DashboardError([("variables", str(err))]) from None
    resolved: dict[int, list[str]] = {}
    problems: list[tuple[str, str]] = []
    for i, panel in enumerate(dashboard.panels):
        exprs = resolved.setdefault(panel.id, [])
        for j, target in enumerate(panel.targets):
            try:
                exprs.append(substitute_expr(target.expr, bound))
            except ValueError as err:
                problems.append((f"panels[{i}].targets[{j}].expr", str(err)))
    if problems:
        raise DashboardError(problems)
    return resolved


def label_values_query(text: str) -> tuple[str | None, str]:
    """``(selector or None, label)`` of ``label_values(label)`` / ``label_values(selector, label)``.

    The selector is returned as text (checked by the caller with the query
    parser); ``ValueError`` when the text is not of this form.
    """
    match = _LABEL_VALUES.match(text)
    hint = f"expected label_values(label) or label_values(metric{{...}}, label), got {text!r}"
    if match is None:
        raise ValueError(hint)
    args = match.group("args")
    selector, comma, label = args.rpartition(",")
    label = label.strip()
    if not _LABEL.match(label) or (comma and not selector.strip()):
        raise ValueError(hint)
    return (selector.strip() if comma else None), label


# --- rendering values ---------------------------------------------------------


def _render(ref: Reference, chosen: Sequence[str] | None) -> tuple[str, str | None]:
    """The replacement text, and the operator the matcher must become (or ``None``)."""
    several = chosen is None or len(chosen) > 1
    if ref.quote is None:
        if several:
            raise ValueError(_OUTSIDE.format(name=ref.name))
        assert chosen is not None
        return chosen[0], None
    if not ref.is_regex and not several:
        assert chosen is not None
        return _escape_for(ref, chosen[0]), None
    if not ref.is_regex and not ref.whole:
        raise ValueError(_several_message(ref))
    if chosen is None:
        pattern = ".*"
    elif len(chosen) == 1:
        pattern = _regex_escape(chosen[0])
    else:
        alternation = "|".join(_regex_escape(v) for v in chosen)
        pattern = alternation if ref.whole else f"(?:{alternation})"
    new_op = {"=": "=~", "!=": "!~"}.get(ref.op or "")
    return _escape_for(ref, pattern), new_op


def _regex_escape(value: str) -> str:
    """Only the metacharacters, so ``GET /v1.0`` stays readable (and valid RE2, for Grafana's users)."""
    return _META.sub(r"\\\g<0>", value)


def _escape_for(ref: Reference, value: str) -> str:
    if ref.quote == "`":
        if "`" in value:
            raise ValueError(f"variable ${ref.name}: a value containing '`' cannot go into a `backtick` string")
        return value
    return value.replace("\\", "\\\\").replace(ref.quote or '"', "\\" + (ref.quote or '"')).replace("\n", "\\n")


def _several_message(ref: Reference) -> str:
    return (
        f"variable ${ref.name} can have several values, but in '{ref.op or '='}' it can stand for only one; "
        f"make it the whole string or use '=~'"
    )


def _sample_value(variable: Variable) -> str | None:
    current = variable.current
    if isinstance(current, str) and current != ALL:
        return current
    if isinstance(current, tuple) and current and current[0] != ALL:
        return current[0]
    return variable.values[0] if variable.values else None


def _known(names: Mapping[str, object]) -> str:
    return f" (dashboard variables: {', '.join(sorted(names))})" if names else " (the dashboard has no variables)"


# --- scanning -----------------------------------------------------------------


def _next_quote(expr: str, pos: int) -> int:
    positions = [i for i in (expr.find(q, pos) for q in "\"'`") if i >= 0]
    return min(positions) if positions else len(expr)


def _string_end(expr: str, start: int) -> int:
    """Offset of the closing quote of the string opened at ``start`` (end of text if unterminated)."""
    quote = expr[start]
    pos = start + 1
    while pos < len(expr):
        char = expr[pos]
        if char == quote:
            return pos
        if char == "\\" and quote != "`":
            pos += 2
            continue
        pos += 1
    return len(expr)


def _operator_before(expr: str, quote_at: int) -> tuple[str | None, int]:
    before = expr[:quote_at].rstrip()
    for op in _OPS:
        if before.endswith(op):
            return op, len(before) - len(op)
    return None, -1
