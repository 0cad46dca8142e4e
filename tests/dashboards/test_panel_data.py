"""Panel data over the daemon's real stores: every panel type, the heatmap's counts, variables, time and errors."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from trm_otel.dashboards import DashboardError, load_dashboard
from trm_otel.dashboards.defaults import performance
from trm_otel.dashboards.model import TimeRange
from trm_otel.dashboards.panel_data import (
    HEATMAP_BUCKETS,
    MAX_PANEL_EXEMPLARS,
    PanelParameterError,
    PanelReader,
    TimeWindow,
    UnknownPanel,
    bind_variables,
    legend_name,
    rebin,
    time_window,
)
from trm_otel.histogram import ExponentialHistogram
from trm_otel.query import Evaluator, MemorySource

from .data import C, D, DURATIONS, ENDS, NOW, POLICY, SPAN_COUNT, every_type, memory_source

HOUR = TimeWindow(NOW - 3600, NOW, 60.0)


@pytest.fixture(scope="module")
def source() -> MemorySource:
    return memory_source()


@pytest.fixture(scope="module")
def dashboard() -> Any:
    return load_dashboard(every_type())


def data(source: MemorySource, dashboard: Any, panel_id: int, window: TimeWindow = HOUR,
         **chosen: list[str]) -> dict[str, Any]:
    return PanelReader(source, slo=POLICY).panel(dashboard, panel_id, window, bind_variables(dashboard, chosen))


# ------------------------------------------------------------------ over time


def test_line_series_share_round_times_and_match_the_evaluator(source: MemorySource, dashboard: Any) -> None:
    out = data(source, dashboard, 1)
    assert {k: out[k] for k in ("uid", "panel", "type", "title", "start", "end", "step", "unit")} == {
        "uid": "every-type", "panel": 1, "type": "line", "title": "line panel",
        "start": NOW - 3600, "end": NOW, "step": 60.0, "unit": "ms",
    }
    times = np.arange(NOW - 3600, NOW + 1, 60.0).tolist()
    expected = Evaluator(source).range(f"p95({D}[5m]) by (span.name)", times[0], times[-1], 60.0)
    assert [s["name"] for s in out["series"]] == ["GET /cart", "GET /items", "POST /pay"]
    for series, reference in zip(out["series"], expected):
        assert series["target"] == 0 and series["labels"] == reference.labels
        assert series["times"] == times
        by_time = dict(zip(reference.times_s, reference.values))
        assert series["values"] == [by_time.get(t) for t in times]
    assert out["series"][0]["values"][0] is None  # nothing before the hour: null, not zero
    assert all(v is not None for v in out["series"][0]["values"][1:])


def test_bar_counts_add_up_to_the_spans(source: MemorySource, dashboard: Any) -> None:
    out = data(source, dashboard, 2, TimeWindow(NOW - 3600, NOW, 300.0))
    assert [s["name"] for s in out["series"]] == ['{service.name="cart"}', '{service.name="shop"}']
    assert sum(v or 0 for s in out["series"] for v in s["values"]) == SPAN_COUNT  # 5 m range at a 5 m step


def test_a_range_shorter_than_the_step_grows_to_the_step(source: MemorySource) -> None:
    doc = every_type()
    doc["panels"][1]["targets"] = [{"expr": f"count({D}[1m])"}, {"expr": f"rate({D}[1m])"}]
    out = data(source, load_dashboard(doc), 2, TimeWindow(NOW - 3600, NOW, 600.0))
    counts, rates = out["series"]
    assert sum(v or 0 for v in counts["values"]) == SPAN_COUNT  # every request in exactly one point
    reference = Evaluator(source).range(f"rate({D}[10m])", NOW - 3600, NOW, 600.0)[0]
    assert [v for v in rates["values"] if v is not None] == list(reference.values)


def test_scatter_legend_without_placeholders_is_used_as_is(source: MemorySource, dashboard: Any) -> None:
    (series,) = data(source, dashboard, 3)["series"]
    assert series["name"] == "max" and series["labels"] == {}
    assert max(v for v in series["values"] if v is not None) == pytest.approx(max(d.max() for d in DURATIONS.values()))


# ------------------------------------------------------------------ instants


def test_pie_counts_firing_alerts_by_name(source: MemorySource, dashboard: Any) -> None:
    out = data(source, dashboard, 4)
    assert out["series"] == [
        {"target": 0, "name": "ErrorBurst", "labels": {"alertname": "ErrorBurst"}, "value": 2.0},
        {"target": 0, "name": "HighLatency", "labels": {"alertname": "HighLatency"}, "value": 1.0},
    ]  # DiskFull is pending, not counted


def test_the_default_active_alerts_panel_counts_firing_alerts(source: MemorySource) -> None:
    dashboard = performance()
    out = PanelReader(source).panel(dashboard, 2, HOUR, bind_variables(dashboard, {}))
    assert {s["name"]: s["value"] for s in out["series"]} == {"ErrorBurst": 2.0, "HighLatency": 1.0}


def test_stat_without_a_range_covers_the_whole_window(source: MemorySource, dashboard: Any) -> None:
    (series,) = data(source, dashboard, 5, TimeWindow(NOW - 1800, NOW, 30.0))["series"]
    (reference,) = Evaluator(source).instant('avg(system.cpu.utilization{cpu.mode=""}[30m])', NOW)
    assert series["value"] == pytest.approx(reference.value)
    assert series["name"] == 'avg(system.cpu.utilization{cpu.mode=""})'  # no labels, no legend: the expression


def test_table_rows_carry_labels_and_values(source: MemorySource, dashboard: Any) -> None:
    out = data(source, dashboard, 6)
    rows = {(s["labels"]["service.name"], s["labels"]["span.name"]): s["value"] for s in out["series"]}
    assert set(rows) == set(DURATIONS)
    pay = ExponentialHistogram()
    pay.record(DURATIONS[("shop", "POST /pay")])
    assert rows[("shop", "POST /pay")] == pytest.approx(pay.quantile(0.95))
    assert out["series"][0]["name"] == '{service.name="cart", span.name="GET /items"}'


# ------------------------------------------------------------------ heatmap


def test_heatmap_counts_add_up_to_the_span_count_per_step(source: MemorySource, dashboard: Any) -> None:
    window = TimeWindow(NOW - 3600 + 7, NOW, 300.0)  # a start inside a step: the step still shows
    out = data(source, dashboard, 7, window)
    assert out["series"] == [] and out["unit"] == "ms"
    times, buckets, counts = out["times"], out["buckets"], np.array(out["counts"])
    assert times == np.arange(NOW - 3600, NOW, 300.0).tolist()
    assert counts.shape == (len(times), len(buckets)) and 1 < len(buckets) <= HEATMAP_BUCKETS
    assert buckets == sorted(buckets)
    ratios = np.diff(np.log(buckets))
    assert np.allclose(ratios, ratios[0])  # log-spaced
    everything = np.concatenate(list(DURATIONS.values()))
    assert buckets[-1] == pytest.approx(everything.max()) and buckets[0] > everything.min()
    assert counts.sum() == SPAN_COUNT
    ends = np.concatenate([ENDS[key] for key in DURATIONS])
    per_step = np.bincount(((np.floor(ends / 10) * 10 - times[0]) // 300).astype(int), minlength=len(times))
    assert counts.sum(axis=1).tolist() == per_step.tolist()


def test_heatmap_follows_the_variable(source: MemorySource, dashboard: Any) -> None:
    out = data(source, dashboard, 7, service=["cart"])
    assert np.sum(out["counts"]) == len(DURATIONS[("cart", "GET /items")])
    assert out["buckets"][-1] == pytest.approx(DURATIONS[("cart", "GET /items")].max())


def test_heatmap_of_a_range_without_data_is_empty(source: MemorySource, dashboard: Any) -> None:
    out = data(source, dashboard, 7, TimeWindow(NOW - 86400, NOW - 82800, 300.0))
    assert out["buckets"] == [] and len(out["times"]) == 13 and out["counts"] == [[]] * 13


def test_rebin_keeps_every_count_and_puts_zeros_first() -> None:
    a, b = ExponentialHistogram(), ExponentialHistogram()
    a.record([0.0, 0.0, 1.0, 2.0, 400.0])
    b.record(np.geomspace(1, 1000, 50))
    bounds, counts = rebin([a, b, ExponentialHistogram()], np.array([0, 2, 1]), 3)
    assert counts.sum() == 55 and counts[1].sum() == 0
    assert counts[0, 0] >= 3 and counts[0].sum() == 5  # two zeros and 1.0 in the first bucket
    assert bounds[-1] == 1000.0 and len(bounds) == HEATMAP_BUCKETS
    narrow = ExponentialHistogram()
    narrow.record([10.0, 10.05, 10.1])
    bounds, counts = rebin([narrow], np.array([0]), 1)
    assert len(bounds) == 1 and counts.tolist() == [[3]]  # no finer than the sketch's own buckets


def test_rebin_matches_a_bucket_by_bucket_reading_across_scales() -> None:
    rng = np.random.default_rng(3)
    histograms = []
    for i in range(12):
        h = ExponentialHistogram(max_scale=(6, 3, 0)[i % 3])
        h.record(rng.lognormal(3 + i % 4, 0.8, 200))
        if i % 5 == 0:
            h.record([0.0])
        histograms.append(h)
    step_of = np.arange(12) % 4
    bounds, counts = rebin(histograms, step_of, 4)
    expected = np.zeros((4, len(bounds)), dtype=np.int64)
    for h, step in zip(histograms, step_of):
        expected[step, 0] += h.zero_count
        for i, count in enumerate(h.counts.tolist()):
            value = min(max(2.0 ** ((h.offset + i + 0.5) * 2.0**-h.scale), h.min), h.max)
            expected[step, min(int(np.searchsorted(bounds, value)), len(bounds) - 1)] += count
    assert counts.tolist() == expected.tolist()
    assert counts.sum() == sum(h.count for h in histograms)


# ------------------------------------------------------------------ variables


def test_a_variable_narrows_every_target(source: MemorySource, dashboard: Any) -> None:
    out = data(source, dashboard, 1, service=["shop"])
    assert [s["name"] for s in out["series"]] == ["GET /cart", "POST /pay"]
    both = data(source, dashboard, 1, service=["shop", "cart"])
    assert len(both["series"]) == 3


@pytest.mark.parametrize(
    ("chosen", "message"),
    [
        ({"nope": ["x"]}, "var-nope: the dashboard has no variable 'nope' (its variables: service)"),
        ({"service": ["a", "b"]}, "var-service: variable $service takes one value (multi is false), got 2"),
    ],
)
def test_bad_variable_choices_name_the_parameter(chosen: dict[str, list[str]], message: str) -> None:
    doc = every_type()
    doc["variables"][0].update(multi=False, current="shop")
    with pytest.raises(PanelParameterError) as caught:
        bind_variables(load_dashboard(doc), chosen)
    assert str(caught.value) == message


def test_a_variable_without_a_value_is_named() -> None:
    doc = every_type()
    doc["variables"][0].update(multi=False, include_all=False, current=None)
    with pytest.raises(PanelParameterError, match=r"^var-service: variable \$service has no value: choose one"):
        bind_variables(load_dashboard(doc), {})
    assert bind_variables(load_dashboard(doc), {"service": ["shop"]}) == {"service": ["shop"]}


# ------------------------------------------------------------------ errors


def test_unknown_panel() -> None:
    with pytest.raises(UnknownPanel, match="dashboard 'every-type' has no panel with id 99"):
        data(memory_source(), load_dashboard(every_type()), 99)


def test_query_errors_name_the_target_path(source: MemorySource) -> None:
    doc = every_type()
    doc["panels"][3]["targets"].append({"expr": 'count(ALERTS{alertstate="firing"}) by (alertname)'})
    dashboard = load_dashboard(doc)
    with pytest.raises(DashboardError) as caught:
        data(source, dashboard, 4)
    assert caught.value.problems == [(
        "panels[3].targets[1].expr",
        "1:1: count does not apply to 'ALERTS', a gauge (use avg, min, max or last)",
    )]


def test_a_heatmap_of_a_gauge_is_refused_at_its_path(source: MemorySource) -> None:
    doc = every_type()
    doc["panels"][6]["targets"] = [{"expr": "ALERTS"}]
    with pytest.raises(DashboardError) as caught:
        data(source, load_dashboard(doc), 7)
    ((path, message),) = caught.value.problems
    assert path == "panels[6].targets[0].expr" and "ALERTS selects gauge series" in message


def test_targets_share_one_fetch(source: MemorySource) -> None:
    reads: list[tuple[float, float]] = []

    class Counting:
        window_s = source.window_s

        def select(self, *args: Any, **kw: Any) -> Any:
            return source.select(*args, **kw)

        def latency_windows(self, refs: Any, start_s: float, end_s: float, *, step_s: float | None = None) -> Any:
            reads.append((start_s, end_s))
            return source.latency_windows(refs, start_s, end_s, step_s=step_s)

        def scalar_windows(self, *args: Any) -> Any:
            return source.scalar_windows(*args)

    dashboard = performance()
    out = PanelReader(Counting()).panel(dashboard, 1, HOUR, bind_variables(dashboard, {}))  # type: ignore[arg-type]
    assert [s["name"] for s in out["series"]] == ["P50", "P95", "P99"] and len(reads) == 1


# ------------------------------------------------------------------ time


DEFAULT = TimeRange.model_validate({"from": "now-6h", "to": "now"})


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, (NOW - 6 * 3600, NOW, 300.0)),
        ({"range_": "1h"}, (NOW - 3600, NOW, 30.0)),
        ({"range_": "24h"}, (NOW - 86400, NOW, 300.0)),
        ({"from_": "now-2d", "to": "now-1d"}, (NOW - 2 * 86400, NOW - 86400, 300.0)),
        ({"from_": "now-30m"}, (NOW - 1800, NOW, 10.0)),
        ({"from_": "2027-01-15T07:00:00Z", "to": "2027-01-15T08:00:00+00:00"}, (NOW - 3600, NOW, 30.0)),
        ({"range_": "1h", "step": "5m"}, (NOW - 3600, NOW, 300.0)),
    ],
)
def test_time_windows(params: dict[str, str], expected: tuple[float, float, float]) -> None:
    window = time_window(DEFAULT, NOW, **params)
    assert (window.start, window.end, window.step) == expected


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"range_": "1h", "from_": "now-2h"}, "range: give either range or from and to, not both"),
        ({"range_": "soon"}, "range: not a time range: 'soon'"),
        ({"from_": "yesterday"}, "from: not a time: 'yesterday'"),
        ({"from_": "now-1h", "to": "now-2q"}, "to: not a time: 'now-2q': unknown unit 'q'"),
        ({"from_": "now", "to": "now-1h"}, "from: 'now' must be before to 'now-1h'"),
        ({"step": "fast"}, "step: not a duration: 'fast'"),
        ({"step": "500ms"}, "step: must be at least 1s, got '500ms'"),
        ({"range_": "7d", "step": "10s"}, "step: 10s gives 60481 points over the range, over the limit of 11000"),
    ],
)
def test_bad_time_parameters_are_named(params: dict[str, str], message: str) -> None:
    with pytest.raises(PanelParameterError) as caught:
        time_window(DEFAULT, NOW, **params)
    assert str(caught.value).startswith(message)


def test_window_times() -> None:
    assert TimeWindow(95.0, 400.0, 100.0).eval_times().tolist() == [100.0, 200.0, 300.0, 400.0]
    assert TimeWindow(95.0, 400.0, 100.0).step_starts().tolist() == [0.0, 100.0, 200.0, 300.0]
    assert TimeWindow(100.0, 400.0, 100.0).step_starts().tolist() == [0.0, 100.0, 200.0, 300.0]
    assert TimeWindow(110.0, 150.0, 100.0).eval_times().tolist() == [150.0]  # no multiple inside: the end
    assert TimeWindow(110.0, 150.0, 100.0).step_starts().tolist() == [50.0]


@pytest.mark.parametrize(
    ("legend", "labels", "name"),
    [
        ("{{span.name}} ({{ service.name }})", {"span.name": "GET /", "service.name": "shop"}, "GET / (shop)"),
        ("{{missing}}!", {}, "!"),
        ("", {"b": "2", "a": "1"}, '{a="1", b="2"}'),
        ("", {}, "p95(x)"),
    ],
)
def test_legend_names(legend: str, labels: dict[str, str], name: str) -> None:
    assert legend_name(legend, labels, "p95(x)") == name


def test_values_are_never_nan(source: MemorySource) -> None:
    doc = every_type()
    doc["panels"][0]["targets"] = [{"expr": f"error_rate({D}[5m]) by (span.name)"}]
    out = data(source, load_dashboard(doc), 1)
    assert all(v is None or math.isfinite(v) for s in out["series"] for v in s["values"])


# ------------------------------------------------------------------ exemplars


def _with_exemplars(source: MemorySource) -> PanelReader:
    def lookup(tenant: str, matchers: Any, start: float, end: float, limit: int) -> list[Any]:
        assert tenant == "default"
        return source.aggregator.exemplars(matchers, start, end, limit=limit)

    return PanelReader(source, slo=POLICY, exemplars=lookup)


def test_line_and_heatmap_panels_carry_the_slowest_exemplars_of_their_series(
    source: MemorySource, dashboard: Any
) -> None:
    reader = _with_exemplars(source)
    chosen = bind_variables(dashboard, {"service": ["shop"]})
    for panel_id in (1, 7):  # p95 line, heatmap
        out = reader.panel(dashboard, panel_id, HOUR, chosen)
        found = out["exemplars"]
        assert 0 < len(found) <= MAX_PANEL_EXEMPLARS
        assert {e["labels"]["service.name"] for e in found} == {"shop"}  # the variable narrows them too
        durations = [e["duration_ms"] for e in found]
        assert durations == sorted(durations, reverse=True)
        assert len({e["span_id"] for e in found}) == len(found)
        assert all(HOUR.start <= e["time"] < HOUR.end and len(e["span_id"]) == 16 for e in found)
        everything = source.aggregator.exemplars((), HOUR.start, HOUR.end, limit=1000)
        assert max(durations) == max(ex.duration_ms for labels, ex in everything if labels["service.name"] == "shop")


def test_charts_without_span_durations_on_their_axis_carry_no_exemplars(source: MemorySource) -> None:
    reader = _with_exemplars(source)
    board = load_dashboard({
        "uid": "x", "title": "x",
        "panels": [
            {"id": 1, "title": "calls", "type": "line", "grid": {"x": 0, "y": 0, "w": 6, "h": 4},
             "targets": [{"expr": f"rate({C}[5m])"}, {"expr": f"error_rate({D}[5m])"}]},
            {"id": 2, "title": "cpu", "type": "line", "grid": {"x": 6, "y": 0, "w": 6, "h": 4},
             "targets": [{"expr": 'avg(system.cpu.utilization{cpu.mode=""})'}]},
            {"id": 3, "title": "p99", "type": "bar", "grid": {"x": 0, "y": 4, "w": 6, "h": 4},
             "targets": [{"expr": f"p99({D}[5m])"}]},
        ],
    })
    assert reader.panel(board, 1, HOUR, {})["exemplars"] == []
    assert reader.panel(board, 2, HOUR, {})["exemplars"] == []
    assert "exemplars" not in reader.panel(board, 3, HOUR, {})  # only line and heatmap charts draw them
    assert "exemplars" not in PanelReader(source, slo=POLICY).panel(board, 1, HOUR, {})  # no lookup, no key
