"""Alert rule labels and annotations as Prometheus writes them, rendered by Jinja2.

    >>> t = compile_template("{{ $labels.service.name }}: P95 {{ $value | humanize }} ms for {{ 90 | humanizeDuration }}")
    >>> t.render({"service.name": "shop"}, 1234.5)
    'shop: P95 1.234k ms for 1m 30s'
    >>> compile_template("{{ $valeu }}")
    Traceback (most recent call last):
    ...
    trm_otel.alerting.rule_templates.RuleTemplateError: line 1: unknown variable $valeu (use $labels, $value or $externalURL)

Rule files are copied from Prometheus, so rule templates speak its
dialect, translated to Jinja2 before compiling:

* ``$labels.service.name``: the instance's label. Label names contain dots,
  so the *longest* name-shaped path after ``$labels.`` is the label name
  (``$labels.service.name | upper`` works; for a method call on a label
  write ``$labels["service.name"].startswith("x")``). ``$labels["a.b"]``
  works too; a missing label reads as ``""``, as in Prometheus.
* ``$value``: the condition's value (float), or nothing (renders ``""``)
  for ``absent``; ``$externalURL``: the daemon's external URL.
* filters ``humanize`` (``1234.5 -> 1.234k``, ``0.0012 -> 1.2m``),
  ``humanizeDuration`` (seconds: ``90 -> 1m 30s``, ``0.25 -> 250ms``) and
  ``humanizePercentage`` (``0.1234 -> 12.34%``), also in Go's call form
  ``{{ humanize $value }}``; for printf use Jinja's
  ``{{ "%.2f" | format($value) }}``.
* anything else is Jinja: ``{{ "high" if $value > 500 else "elevated" }}``.

Only ``{{ }}`` and ``{% %}`` blocks are translated; text outside them and
string literals inside them are left alone. Templates compile once, when
rules load: a syntax error, an unknown ``$variable``, name or filter raises
:class:`RuleTemplateError` (a ``ValueError``) with the template line, so the
loader reports it at the rule's key. Rendering runs in Jinja's immutable
sandbox with ``*`` and ``**`` bounded (a rule file must not be able to
exhaust the daemon's memory); a template that fails while rendering (a
label that is not a number given to ``humanize``) never raises: it renders
``<error expanding template: ...>``, as Prometheus does, and logs a warning
the first time.
"""

from __future__ import annotations

import difflib
import logging
import math
import re
from collections.abc import Mapping
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from trm_otel.errors import TrmOtelError

__all__ = [
    "RuleTemplate",
    "RuleTemplateError",
    "compile_template",
    "humanize",
    "humanize_duration",
    "humanize_percentage",
]

_log = logging.getLogger("trm_otel.alerting.rule_templates")

#: ``$name`` of Prometheus -> the Jinja variable.
_VARIABLES = {"labels": "labels", "value": "value", "externalURL": "external_url"}
_BLOCK = re.compile(r"(\{\{[-+]?)(.*?)([-+]?\}\})|(\{%[-+]?)(.*?)([-+]?%\})", re.S)
_PIECE = re.compile(
    r"""(?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')"""
    r"|\$labels\.(?P<path>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)"
    r"|\$(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<dollar>\$)",
    re.S,
)
_FILTER_NAMES = ("humanize", "humanizeDuration", "humanizePercentage")
_GO_CALL = re.compile(r"\s*(?P<filter>" + "|".join(_FILTER_NAMES) + r")\s+(?P<arg>[^\s|(].*?)\s*", re.S)
#: Longest string or list a template may build with ``*``, and largest exponent of ``**``.
_MAX_LENGTH = 100_000
_MAX_EXPONENT = 1000


class RuleTemplateError(TrmOtelError, ValueError):
    """A template that cannot compile; ``line`` is 1-based within the template."""

    def __init__(self, message: str, line: int) -> None:
        self.message = message
        self.line = line
        super().__init__(f"line {line}: {message}")


# ------------------------------------------------------------------ filters


def _number(value: Any, name: str) -> float | None:
    if value is None or isinstance(value, jinja2.Undefined) or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: {value!r} is not a number") from None


_LARGE = ("k", "M", "G", "T", "P", "E", "Z", "Y")
_SMALL = ("m", "µ", "n", "p", "f", "a", "z", "y")


def _scaled(number: float, unit: str = "") -> str:
    """4 significant digits with an SI prefix: Prometheus' ``humanize``."""
    if number == 0 or not math.isfinite(number):
        return f"{number:.4g}{unit}"
    prefix = ""
    if abs(number) >= 1:
        for name in _LARGE:
            if abs(number) < 1000:
                break
            number, prefix = number / 1000, name
    else:
        for name in _SMALL:
            if abs(number) >= 1:
                break
            number, prefix = number * 1000, name
    return f"{number:.4g}{prefix}{unit}"


def humanize(value: Any) -> str:
    """``1234.5 -> '1.234k'``, ``0.0012 -> '1.2m'``; ``None`` (no value) gives ``''``."""
    number = _number(value, "humanize")
    return "" if number is None else _scaled(number)


def humanize_duration(value: Any) -> str:
    """Seconds as Prometheus' ``humanizeDuration``: ``90 -> '1m 30s'``, ``93784 -> '1d 2h 3m 4s'``."""
    seconds = _number(value, "humanizeDuration")
    if seconds is None:
        return ""
    if not math.isfinite(seconds) or abs(seconds) < 60:
        return _scaled(seconds, "s") if abs(seconds) < 1 or not math.isfinite(seconds) else f"{seconds:.4g}s"
    sign = "-" if seconds < 0 else ""
    whole = int(abs(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{sign}{days}d {hours}h {minutes}m {secs}s"
    if hours:
        return f"{sign}{hours}h {minutes}m {secs}s"
    return f"{sign}{minutes}m {secs}s"


def humanize_percentage(value: Any) -> str:
    """A fraction as a percentage: ``0.1234 -> '12.34%'``."""
    number = _number(value, "humanizePercentage")
    return "" if number is None else f"{number * 100:.4g}%"


# ---------------------------------------------------------------- sandbox


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with ``*`` and ``**`` unable to build huge values."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if isinstance(right, (int, float)) and abs(right) > _MAX_EXPONENT:
                raise SecurityError(f"exponent {right} is over the limit of {_MAX_EXPONENT}")
            return left**right
        for sized, times in ((left, right), (right, left)):
            if isinstance(sized, (str, list, tuple)) and isinstance(times, int) and len(sized) * times > _MAX_LENGTH:
                raise SecurityError(f"a value longer than {_MAX_LENGTH} is not allowed")
        return left * right


class _Labels(dict):  # type: ignore[type-arg]
    """Labels where a missing name reads as ``""``, as Prometheus' labels do."""

    def __missing__(self, key: object) -> str:
        return ""


def _finalize(value: Any) -> Any:
    # Floats print as Go prints them in Prometheus templates: 300, 0.25, 1e+21 — never 300.0.
    if value is None:
        return ""
    if isinstance(value, float):
        if value != value:
            return "NaN"
        if value in (float("inf"), float("-inf")):
            return "+Inf" if value > 0 else "-Inf"
        return format(value, ".15g")
    return value


_ENV = _Sandbox(autoescape=False, finalize=_finalize, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
_ENV.filters.update(
    humanize=humanize, humanizeDuration=humanize_duration, humanizePercentage=humanize_percentage
)
_KNOWN_NAMES = frozenset(_VARIABLES.values()) | frozenset(_ENV.globals)


# ---------------------------------------------------------------- templates


class RuleTemplate:
    """A compiled template; :meth:`render` never raises."""

    __slots__ = ("source", "_template", "_logged")

    def __init__(self, source: str, template: jinja2.Template | None) -> None:
        self.source = source
        self._template = template
        self._logged = False

    def render(self, labels: Mapping[str, str], value: float | None, external_url: str = "") -> str:
        """The text for one alert instance; ``<error expanding template: ...>`` if rendering fails."""
        if self._template is None:
            return self.source
        try:
            return self._template.render(labels=_Labels(labels), value=value, external_url=external_url)
        except Exception as err:  # noqa: BLE001 - a template must never take an alert down
            if not self._logged:
                self._logged = True
                _log.warning("alert rule template %r failed to render: %s", self.source, err)
            return f"<error expanding template: {err}>"

    def __repr__(self) -> str:
        return f"RuleTemplate({self.source!r})"


def compile_template(text: str) -> RuleTemplate:
    """``text`` translated and compiled; :class:`RuleTemplateError` names the problem and its line."""
    if "{" not in text:
        return RuleTemplate(text, None)
    pieces, pos = [], 0
    for block in _BLOCK.finditer(text):
        _refuse_unclosed(text, pos, block.start())
        pieces += [text[pos : block.start()], _translate_block(text, block)]
        pos = block.end()
    _refuse_unclosed(text, pos, len(text))
    translated = "".join(pieces) + text[pos:]
    try:
        parsed = _ENV.parse(translated)
        unknown = sorted(meta.find_undeclared_variables(parsed) - _KNOWN_NAMES)
        template = _ENV.from_string(parsed)
    except jinja2.TemplateSyntaxError as err:
        raise RuleTemplateError(_explain(err.message or "invalid template"), err.lineno) from None
    if unknown:
        line = next((n.lineno for n in parsed.find_all(nodes.Name) if n.name == unknown[0]), 1)
        raise RuleTemplateError(
            f"unknown name '{unknown[0]}' (use $labels, $value or $externalURL, or set it in the template)", line
        )
    return RuleTemplate(text, template)


def _refuse_unclosed(text: str, start: int, end: int) -> None:
    """Jinja would report the first odd character inside an unclosed block; say what is wrong."""
    found = re.compile(r"\{\{|\{%").search(text, start, end)
    if found:
        closing = "}}" if found.group() == "{{" else "%}"
        line = text.count("\n", 0, found.start()) + 1
        raise RuleTemplateError(f"'{found.group()}' is not closed by '{closing}'", line)


def _translate_block(text: str, block: re.Match[str]) -> str:
    """One ``{{ }}`` or ``{% %}`` block with Prometheus' variables and call form made Jinja."""
    first = 1 if block.group(1) is not None else 4  # {{ expression }} or {% statement %}
    opening, body, closing = block.group(first, first + 1, first + 2)
    base = block.start(first + 1)

    def piece(match: re.Match[str]) -> str:
        if match.group("string") is not None:
            return match.group()
        if match.group("path") is not None:
            return f'labels["{match.group("path")}"]'
        name = match.group("name")
        if name in _VARIABLES:
            return _VARIABLES[name]
        line = text.count("\n", 0, base + match.start()) + 1
        if name is None:
            raise RuleTemplateError("'$' must start $labels, $value or $externalURL", line)
        raise RuleTemplateError(f"unknown variable ${name} (use $labels, $value or $externalURL)", line)

    body = _PIECE.sub(piece, body)
    call = _GO_CALL.fullmatch(body) if opening.startswith("{{") else None
    if call:
        body = f" ({call.group('arg')}) | {call.group('filter')} "
    return f"{opening}{body}{closing}"



def _explain(message: str) -> str:
    """Jinja's "No filter named 'humanise'." with the filters a rule can use."""
    unknown = re.fullmatch(r"No filter named '(.*)'\.?", message)
    if unknown is None:
        return message
    close = difflib.get_close_matches(unknown.group(1), _ENV.filters, n=1)
    hint = f"did you mean {close[0]}?" if close else f"rule filters: {', '.join(_FILTER_NAMES)} and Jinja's"
    return f"unknown filter '{unknown.group(1)}' ({hint})"
