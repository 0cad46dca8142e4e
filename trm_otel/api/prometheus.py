"""Prometheus text exposition (0.0.4, or OpenMetrics 1.0 with exemplars): families in, one scrape body out.

    >>> family = MetricFamily("trm_otel_up", "gauge", "1 while the daemon runs.")
    >>> family.add({"version": "0.1.0"}, 1)
    >>> print(render([family]), end="")
    # HELP trm_otel_up 1 while the daemon runs.
    # TYPE trm_otel_up gauge
    trm_otel_up{version="0.1.0"} 1

The 0.0.4 text format is the default: every Prometheus version and every
scraper that speaks the Prometheus protocol reads it. A scraper whose
``Accept`` asks for OpenMetrics (:func:`wants_openmetrics`; Prometheus does
when exemplar storage is on) gets ``render(..., openmetrics=True)``: the
same samples, counter metadata named without ``_total``, exemplars on
histogram bucket lines (``... 12 # {trace_id="...",span_id="..."} 842.1
1764467400.123``), and the closing ``# EOF``. Exemplars exist only there:
the 0.0.4 format has no syntax for them. Names coming from OpenTelemetry (``service.name``) are sanitized
the way the Collector's Prometheus exporter does it (invalid characters
become ``_``) so dashboards written for the Collector match, and label
values are escaped, so a span name holding a quote or a newline cannot break
the whole scrape.
"""

from __future__ import annotations

import functools
import logging
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from trm_otel.series_source import label_value

__all__ = [
    "CONTENT_TYPE",
    "OPENMETRICS_CONTENT_TYPE",
    "MetricFamily",
    "Sample",
    "escape_label_value",
    "exemplar_text",
    "families_from_samples",
    "format_value",
    "label_name",
    "label_text",
    "metric_name",
    "render",
    "sanitize_labels",
    "wants_openmetrics",
]

_logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
#: OpenMetrics caps an exemplar's label set at 128 UTF-8 characters (names and values).
_EXEMPLAR_LABEL_CHARS = 128

SampleKind = Literal["counter", "gauge"]
FamilyKind = Literal["counter", "gauge", "histogram"]

_INVALID_METRIC_CHARS = re.compile(r"[^a-zA-Z0-9_:]")
_INVALID_LABEL_CHARS = re.compile(r"[^a-zA-Z0-9_]")


@dataclass(frozen=True, slots=True)
class Sample:
    """One value of the daemon's own telemetry, as the daemon hands it to ``/metrics``.

    ``name`` may use OTel dots (``pipeline.accepted``); the scrape prefixes
    ``trm_otel_`` and, for counters, suffixes ``_total`` when missing, so
    callers name things once, the OTel way, and the exposition still follows
    Prometheus conventions. Samples sharing a name form one family; its HELP
    and TYPE come from the first of them.
    """

    name: str
    kind: SampleKind
    help: str
    labels: Mapping[str, Any]
    value: float


@dataclass(slots=True)
class MetricFamily:
    """One ``# HELP`` / ``# TYPE`` block and its sample lines, rendered as added.

    Lines are rendered when added, so a histogram's label set is sanitized
    and escaped once per series rather than once per bucket (a scrape of a
    few thousand series has tens of thousands of bucket lines).
    """

    name: str
    kind: FamilyKind
    help: str
    lines: list[str] = field(default_factory=list)
    exemplars: dict[int, str] = field(default_factory=dict)  # line index -> OpenMetrics exemplar text

    def add(self, labels: Mapping[str, Any], value: float, suffix: str = "") -> None:
        """One sample; ``suffix`` (``_sum``, ``_count``) extends the family name."""
        self.lines.append(_line(self.name + suffix, label_text(labels), value))

    def add_histogram(
        self,
        labels: Mapping[str, Any],
        buckets: Iterable[tuple[float, float]],
        total: float,
        count: float,
        exemplars: Mapping[int, tuple[Mapping[str, str], float, float | None]] | None = None,
    ) -> None:
        """One classic histogram series: ``(le, cumulative count)`` pairs ending at +Inf, ``_sum``, ``_count``.

        ``exemplars`` maps a bucket's position to ``(labels, value,
        timestamp s or None)``; only OpenMetrics renders them.
        """
        if self.kind != "histogram":
            raise ValueError(f"{self.name} is a {self.kind}, not a histogram")
        clean = sanitize_labels(labels)
        if "le" in clean:
            raise ValueError(f"{self.name}: the label 'le' is reserved for bucket bounds")
        text = _joined(clean)
        prefix = f"{text}," if text else ""
        bucket = self.name + "_bucket"
        first = len(self.lines)
        self.lines.extend(_line(bucket, f'{prefix}le="{format_value(le)}"', n) for le, n in buckets)
        for position, (exemplar_labels, value, timestamp) in (exemplars or {}).items():
            rendered = exemplar_text(exemplar_labels, value, timestamp)
            if rendered:
                self.exemplars[first + position] = rendered
        self.lines.append(_line(self.name + "_sum", text, total))
        self.lines.append(_line(self.name + "_count", text, count))


def metric_name(name: str) -> str:
    """``traces.span.metrics`` -> ``traces_span_metrics``; never starts with a digit."""
    cleaned = _INVALID_METRIC_CHARS.sub("_", name)
    return f"_{cleaned}" if not cleaned or cleaned[0].isdigit() else cleaned


@functools.lru_cache(maxsize=1024)
def label_name(name: str) -> str:
    """``service.name`` -> ``service_name``.

    A leading digit gets a ``_`` prefix and a leading ``__`` (reserved by
    Prometheus for internal labels such as ``__name__``) a ``key`` prefix,
    as the Collector's Prometheus translation does. Cached: a scrape asks
    for the same few names once per sample line.
    """
    cleaned = _INVALID_LABEL_CHARS.sub("_", name)
    if not cleaned or cleaned[0].isdigit():
        cleaned = f"_{cleaned}"
    return f"key{cleaned}" if cleaned.startswith("__") else cleaned


def sanitize_labels(labels: Mapping[str, Any]) -> dict[str, str]:
    """Labels with Prometheus names and string values.

    Two attributes that sanitize to the same name (``a.b`` and ``a_b``) are
    joined with ``;`` in the order of their original names, as the OTel
    Prometheus compatibility spec asks, instead of one silently winning.
    Otherwise the given order is kept, so ``le`` can come last as usual.
    """
    grouped: dict[str, list[tuple[str, str]]] = {}
    for key, value in labels.items():
        grouped.setdefault(label_name(str(key)), []).append((str(key), label_value(value)))
    return {
        name: pairs[0][1] if len(pairs) == 1 else ";".join(value for _, value in sorted(pairs))
        for name, pairs in grouped.items()
    }


def escape_label_value(value: str) -> str:
    r"""Backslash, double quote and newline escaped (``\\``, ``\"``, ``\n``)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """A sample value: integers without ``.0``, ``NaN``, ``+Inf``, ``-Inf``."""
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    if number.is_integer() and abs(number) < 2**53:
        return str(int(number))
    return repr(number)


def label_text(labels: Mapping[str, Any]) -> str:
    """``a="x",b="y"``: sanitized names, escaped values, no braces."""
    return _joined(sanitize_labels(labels))


def _joined(clean: Mapping[str, str]) -> str:
    return ",".join(f'{key}="{escape_label_value(value)}"' for key, value in clean.items())


def _line(name: str, label_text: str, value: float) -> str:
    return f"{name}{{{label_text}}} {format_value(value)}" if label_text else f"{name} {format_value(value)}"


def render(families: Iterable[MetricFamily], *, openmetrics: bool = False) -> str:
    """The exposition body: each family's HELP and TYPE once, then its samples.

    Empty families are left out. A family whose name was already written is
    skipped with a warning rather than failing the scrape: a second
    ``# TYPE`` for a name makes Prometheus reject the whole target. With
    ``openmetrics`` the body is OpenMetrics 1.0 text (see the module doc).
    """
    out: list[str] = []
    seen: set[str] = set()
    for family in families:
        if not family.lines:
            continue
        if family.name in seen:
            _logger.warning("metric family %s is exposed twice; the second is left out", family.name)
            continue
        seen.add(family.name)
        if not openmetrics:
            out.append(f"# HELP {family.name} {_escape_help(family.help)}")
            out.append(f"# TYPE {family.name} {family.kind}")
            out.extend(family.lines)
            continue
        # OpenMetrics names a counter family without the _total its samples carry.
        name = family.name.removesuffix("_total") if family.kind == "counter" else family.name
        out.append(f"# HELP {name} {escape_label_value(family.help)}")
        out.append(f"# TYPE {name} {family.kind}")
        if family.exemplars:
            out.extend(
                f"{line} # {family.exemplars[i]}" if i in family.exemplars else line
                for i, line in enumerate(family.lines)
            )
        else:
            out.extend(family.lines)
    if openmetrics:
        out.append("# EOF")
    return "\n".join(out) + "\n" if out else ""


def exemplar_text(labels: Mapping[str, str], value: float, timestamp_s: float | None = None) -> str:
    """``{trace_id="..."} 842.1 1764467400.123``: an OpenMetrics exemplar, or "" if its labels are too long."""
    clean = sanitize_labels(labels)
    if sum(len(k) + len(v) for k, v in clean.items()) > _EXEMPLAR_LABEL_CHARS:
        return ""
    text = "{" + _joined(clean) + "} " + format_value(value)
    return text if timestamp_s is None else f"{text} {timestamp_s:.3f}"


def wants_openmetrics(accept: str) -> bool:
    """True when an ``Accept`` header prefers OpenMetrics text to the 0.0.4 format.

    Prometheus sends ``application/openmetrics-text;version=1.0.0;q=0.5,
    ...,text/plain;version=0.0.4;q=0.3,*/*;q=0.2`` when it wants exemplars.
    OpenMetrics is chosen when it is listed (version 1.0.0, 0.0.1 or none)
    with a quality above 0 and at least that of ``text/plain``.
    """
    best_om = best_text = -1.0
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        version = None
        for param in params:
            name, _, value = param.partition("=")
            name = name.strip().lower()
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
            elif name == "version":
                version = value.strip()
        media = media.lower()
        if media == "application/openmetrics-text" and version in (None, "1.0.0", "0.0.1"):
            best_om = max(best_om, quality)
        elif media == "text/plain":
            best_text = max(best_text, quality)
    return best_om > 0 and best_om >= best_text


def families_from_samples(samples: Iterable[Sample], prefix: str = "trm_otel_") -> list[MetricFamily]:
    """Group the daemon's samples into families, with Prometheus-style names.

    A sample whose kind disagrees with its family's first sample is left
    out (with a warning): one name cannot be both a counter and a gauge,
    and ``x`` as a gauge next to ``x_total`` as a counter would collide in
    OpenMetrics, so families are matched by the name without ``_total``.
    """
    families: dict[str, MetricFamily] = {}
    for sample in samples:
        full = metric_name(sample.name)
        if not full.startswith(prefix):
            full = prefix + full
        base = full.removesuffix("_total")
        family = families.get(base)
        if family is None:
            name = base + "_total" if sample.kind == "counter" else full
            family = families[base] = MetricFamily(name, sample.kind, sample.help)
        elif family.kind != sample.kind:
            _logger.warning("metric %s is a %s, not a %s; sample left out", base, family.kind, sample.kind)
            continue
        family.add(sample.labels, sample.value)
    return list(families.values())
