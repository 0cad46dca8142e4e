"""Our queries as PromQL over the names Prometheus gives the same OTel metrics.

    >>> from trm_otel.query import parse_query
    >>> to_promql(parse_query('p95(traces.span.metrics.duration{service.name="shop"}[5m]) by (span.name)'))
    'histogram_quantile(0.95, sum by (le, span_name) (rate(traces_span_metrics_duration_milliseconds_bucket{service_name="shop"}[5m])))'
    >>> to_promql(parse_query("rate(system.network.io[1m]) by (network.io.direction)"))
    'sum by (network_io_direction) (rate(system_network_io_bytes_total[1m]))'

Used by the Grafana export, so a dashboard also works against a Prometheus
fed by the Collector (spanmetrics connector, hostmetrics receiver,
Prometheus exporter with unit and type suffixes). Names follow the OTel to
Prometheus rules: non-alphanumerics become ``_``, the unit is appended
(``By`` -> ``bytes``, ``ms`` -> ``milliseconds``, ``1`` on a gauge ->
``ratio``, ``{...}`` annotations dropped) and monotonic counters end in
``_total``. Span latency reads the connector's
``traces_span_metrics_duration_milliseconds`` histogram and
``traces_span_metrics_calls_total`` counter.

A statistic PromQL cannot express over those series (``min``/``max`` of a
histogram, ``apdex``, ``error_rate`` of a metric that is not spans) has no
translation: :func:`to_promql` returns ``None`` and the caller keeps the
original text. Without a ``[range]`` the Grafana interval variables are
used (``$__rate_interval`` for rates, ``$__interval`` over gauges).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from trm_otel.query import Query
from trm_otel.query.reducers import ERROR_STATUS
from trm_otel.series_source import CALLS_METRIC, DURATION_METRIC, Matcher

__all__ = [
    "KNOWN_LABELS",
    "KnownMetric",
    "known_metric",
    "label_from_prometheus",
    "legend_from_grafana",
    "legend_to_grafana",
    "metric_from_prometheus",
    "prometheus_label",
    "prometheus_name",
    "selector_to_promql",
    "to_promql",
]

#: Label names trm-otel's own series carry (spanmetrics dimensions, host metric attributes).
KNOWN_LABELS: tuple[str, ...] = (
    "service.name", "span.name", "span.kind", "status.code", "host.name",
    "cpu.mode", "system.memory.state", "system.paging.state", "system.device", "disk.io.direction",
    "system.filesystem.mountpoint", "system.filesystem.type", "system.filesystem.state",
    "network.interface.name", "network.io.direction", "process.pid", "process.executable.name",
)
_DURATION = "traces_span_metrics_duration_milliseconds"
_CALLS = "traces_span_metrics_calls_total"
_UNIT_WORDS = {"By": "bytes", "s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}
_INVALID = re.compile(r"[^A-Za-z0-9_]")
_LEGEND_LABEL = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.:/-]*)\s*\}\}")
_RANGE_UNITS = (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0), ("ms", 0.001))


@dataclass(frozen=True, slots=True)
class KnownMetric:
    """A metric trm-otel itself produces: its OTel kind and unit, and its Prometheus name."""

    name: str
    kind: str  # gauge | counter | updowncounter
    unit: str

    @property
    def kind_text(self) -> str:
        return "up-down counter" if self.kind == "updowncounter" else self.kind

    @property
    def prometheus(self) -> str:
        return prometheus_name(self.name, self.kind, self.unit)


def known_metric(name: str) -> KnownMetric | None:
    """The host/process metric called ``name``, as the system monitor defines it; else ``None``."""
    return _known().get(name)


@lru_cache(maxsize=1)
def _known() -> dict[str, KnownMetric]:
    from trm_otel.system.instruments import INSTRUMENTS, TOP_N_INSTRUMENTS  # the OTel SDK: import on first use

    return {s.name: KnownMetric(s.name, s.kind, s.unit) for s in (*INSTRUMENTS, *TOP_N_INSTRUMENTS)}


def prometheus_label(label: str) -> str:
    """``service.name`` -> ``service_name``; a leading digit gets a ``_`` in front."""
    out = _INVALID.sub("_", label)
    return f"_{out}" if out[:1].isdigit() else out


def label_from_prometheus(label: str) -> str:
    """``service_name`` -> ``service.name`` for the labels in :data:`KNOWN_LABELS`; others unchanged.

    Underscores are ambiguous (``span_name`` could have been either), so
    only names trm-otel itself produces are turned back.
    """
    return {prometheus_label(name): name for name in KNOWN_LABELS}.get(label, label)


def metric_from_prometheus(name: str) -> str:
    """``traces_span_metrics_calls_total`` -> ``traces.span.metrics.calls``, likewise for the host
    metrics and the duration histogram's series; other names unchanged."""
    if name == _CALLS:
        return CALLS_METRIC
    if name in (_DURATION, f"{_DURATION}_bucket", f"{_DURATION}_sum", f"{_DURATION}_count"):
        return DURATION_METRIC
    return {m.prometheus: m.name for m in _known().values()}.get(name, name)


def prometheus_name(name: str, kind: str, unit: str) -> str:
    """The Prometheus name of an OTel metric: underscores, unit word, ``_total`` for counters."""
    base = prometheus_label(name)
    word = "ratio" if unit == "1" and kind == "gauge" else _UNIT_WORDS.get(unit, "")
    if not word and unit and not unit.startswith("{") and unit != "1":
        word = prometheus_label(unit)
    if word and not base.endswith(f"_{word}"):
        base = f"{base}_{word}"
    return f"{base}_total" if kind == "counter" else base


def legend_to_grafana(legend: str) -> str:
    """``{{span.name}}`` -> ``{{span_name}}``: legend labels under their Prometheus names."""
    return _LEGEND_LABEL.sub(lambda m: "{{" + prometheus_label(m.group(1)) + "}}", legend)


def legend_from_grafana(legend: str) -> str:
    """``{{span_name}}`` -> ``{{span.name}}`` for the labels in :data:`KNOWN_LABELS`."""
    return _LEGEND_LABEL.sub(lambda m: "{{" + label_from_prometheus(m.group(1)) + "}}", legend)


def to_promql(query: Query) -> str | None:
    """``query`` in PromQL, or ``None`` when PromQL cannot say the same thing."""
    by = tuple(prometheus_label(label) for label in query.by)
    if query.metric in (DURATION_METRIC, CALLS_METRIC):
        return _spans(query, by)
    known = known_metric(query.metric)
    if known is not None:
        if known.kind == "counter":
            return _counter(query, known.prometheus, by)
        return _gauge(query, known.prometheus, by)
    name = prometheus_label(query.metric)
    if query.quantile is not None:
        return _quantile(query, f"{name}_bucket", by)
    return _counter(query, name, by) or _gauge(query, name, by)


def selector_to_promql(metric: str, matchers: Sequence[Matcher], range_s: float | None) -> str:
    """A heatmap's series: bucket rates summed by ``le`` (for Grafana's ``format: heatmap``)."""
    name = _DURATION if metric in (DURATION_METRIC, CALLS_METRIC) else prometheus_label(metric)
    return _agg("sum", ("le",), f"rate({_selector(f'{name}_bucket', matchers)}{_range(range_s, True)})")


# --- per kind -----------------------------------------------------------------


def _spans(query: Query, by: tuple[str, ...]) -> str | None:
    rng = _range(query.range_s, True)
    if query.quantile is not None:
        return _quantile(query, f"{_DURATION}_bucket", by)

    def rate(name: str, extra: Sequence[Matcher] = ()) -> str:
        return _agg("sum", by, f"rate({_selector(name, (*query.matchers, *extra))}{rng})")

    if query.stat == "rate":
        return rate(_CALLS)
    if query.stat == "count":
        return _agg("sum", by, f"increase({_selector(_CALLS, query.matchers)}{rng})")
    if query.stat == "sum":
        return _agg("sum", by, f"increase({_selector(f'{_DURATION}_sum', query.matchers)}{rng})")
    if query.stat == "avg":
        return f"{rate(f'{_DURATION}_sum')} / {rate(f'{_DURATION}_count')}"
    if query.stat == "error_rate":
        return f"{rate(_CALLS, (Matcher('status.code', '=', ERROR_STATUS),))} / {rate(_CALLS)}"
    return None  # min, max, apdex: not from buckets


def _quantile(query: Query, bucket: str, by: tuple[str, ...]) -> str:
    assert query.quantile is not None
    inner = _agg("sum", ("le", *by), f"rate({_selector(bucket, query.matchers)}{_range(query.range_s, True)})")
    return f"histogram_quantile({query.quantile:g}, {inner})"


def _counter(query: Query, name: str, by: tuple[str, ...]) -> str | None:
    rng = _range(query.range_s, True)
    if query.stat == "rate":
        return _agg("sum", by, f"rate({_selector(name, query.matchers)}{rng})")
    if query.stat == "sum":
        return _agg("sum", by, f"increase({_selector(name, query.matchers)}{rng})")
    return None


def _gauge(query: Query, name: str, by: tuple[str, ...]) -> str | None:
    series = _selector(name, query.matchers)
    if query.stat == "count":
        return _agg("count", by, series)
    outer = {"avg": "avg", "min": "min", "max": "max", "last": "sum"}.get(query.stat)
    if outer is None:
        return None
    return _agg(outer, by, f"{query.stat}_over_time({series}{_range(query.range_s, False)})")


# --- text ---------------------------------------------------------------------


def _agg(fn: str, by: Sequence[str], inner: str) -> str:
    return f"{fn} by ({', '.join(by)}) ({inner})" if by else f"{fn}({inner})"


def _selector(name: str, matchers: Sequence[Matcher]) -> str:
    if not matchers:
        return name
    return name + "{" + ", ".join(f"{prometheus_label(m.name)}{m.op}{_string(m.value)}" for m in matchers) + "}"


def _string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _range(range_s: float | None, rate: bool) -> str:
    if range_s is None:
        return "[$__rate_interval]" if rate else "[$__interval]"
    remaining = round(range_s * 1000)
    parts: list[str] = []
    for unit, seconds in _RANGE_UNITS:
        count, remaining = divmod(remaining, round(seconds * 1000))
        if count:
            parts.append(f"{count}{unit}")
    return f"[{''.join(parts) or '1ms'}]"
