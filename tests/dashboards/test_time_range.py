"""Time ranges: presets, relative and absolute times, rounding, steps, and the messages for bad ones."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from trm_otel.dashboards.time_range import (
    NICE_STEPS,
    PRESETS,
    auto_step,
    check_time,
    preset,
    resolve,
    resolve_range,
    resolve_time,
)


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


NOW = ts("2025-11-30T04:20:30.250")  # a Sunday


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("now-30m", NOW - 1800),
        ("now-2d", NOW - 2 * 86400),
        ("now+1h", NOW + 3600),
        ("now-1h30m", None),  # not Grafana's syntax: one unit per offset
        ("now-1d-12h", NOW - 36 * 3600),
        ("now-1w", NOW - 7 * 86400),
        ("now/d", ts("2025-11-30T00:00:00")),
        ("now-1d/d", ts("2025-11-29T00:00:00")),
        ("now/h", ts("2025-11-30T04:00:00")),
        ("now/m", ts("2025-11-30T04:20:00")),
        ("now/s", ts("2025-11-30T04:20:30")),
        ("now/w", ts("2025-11-24T00:00:00")),
        ("now/M", ts("2025-11-01T00:00:00")),
        ("now/y", ts("2025-01-01T00:00:00")),
        ("now-1M", ts("2025-10-30T04:20:30.250")),
        ("now-9M", ts("2025-02-28T04:20:30.250")),  # 30 Feb does not exist: the month's last day
        ("now-1y", ts("2024-11-30T04:20:30.250")),
        ("2025-11-29T10:00:00Z", ts("2025-11-29T10:00:00")),
        ("2025-11-29T12:00:00+02:00", ts("2025-11-29T10:00:00")),
        ("2025-11-29T10:00:00.500Z", ts("2025-11-29T10:00:00.500")),
        ("2025-11-29 10:00", ts("2025-11-29T10:00:00")),  # naive: UTC
        ("2025-11-29", ts("2025-11-29T00:00:00")),
    ],
)
def test_times(text: str, expected: float | None) -> None:
    if expected is None:
        with pytest.raises(ValueError):
            resolve_time(text, NOW)
    else:
        assert resolve_time(text, NOW) == pytest.approx(expected)


def test_rounding_in_to_snaps_to_the_end_of_the_unit() -> None:
    assert resolve("now/d", "now/d", NOW) == (ts("2025-11-30T00:00:00"), ts("2025-12-01T00:00:00"))
    assert resolve("now-1d/d", "now-1d/d", NOW) == (ts("2025-11-29T00:00:00"), ts("2025-11-30T00:00:00"))
    assert resolve_time("now/M", NOW, round_up=True) == ts("2025-12-01T00:00:00")
    assert resolve_time("now/y", NOW, round_up=True) == ts("2026-01-01T00:00:00")


def test_resolve_relative_and_absolute() -> None:
    assert resolve("now-6h", "now", NOW) == (NOW - 6 * 3600, NOW)
    assert resolve("2025-11-29T00:00:00Z", "now", NOW) == (ts("2025-11-29T00:00:00"), NOW)
    assert resolve("2025-11-01", "2025-11-02", NOW) == (ts("2025-11-01T00:00:00"), ts("2025-11-02T00:00:00"))


@pytest.mark.parametrize("name", PRESETS)
def test_presets(name: str) -> None:
    seconds = {"1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}[name]
    assert resolve(*preset(name), NOW) == (NOW - seconds, NOW)
    assert resolve_range(name, NOW) == (NOW - seconds, NOW)


def test_range_parameter_takes_any_duration() -> None:
    assert resolve_range("90m", NOW) == (NOW - 5400, NOW)
    assert resolve_range("1d12h", NOW) == (NOW - 36 * 3600, NOW)


FORMS = "use now, now-30m, now-2d, now/d or an ISO-8601 time such as 2025-11-30T04:20:00Z"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: resolve("now", "now-1h", NOW), "time range: from 'now' must be before to 'now-1h'"),
        (lambda: resolve("now", "now", NOW), "time range: from 'now' must be before to 'now'"),
        (lambda: resolve("yesterday", "now", NOW), f"not a time: 'yesterday' ({FORMS})"),
        (lambda: resolve("now-6h", "", NOW), f"not a time: '' ({FORMS})"),
        (lambda: check_time("now-5x"), "not a time: 'now-5x': unknown unit 'x' (use s, m, h, d, w, M or y)"),
        (lambda: check_time("now/q"), "not a time: 'now/q': unknown unit 'q' (use s, m, h, d, w, M or y)"),
        (lambda: check_time("now-"), f"not a time: 'now-' ({FORMS})"),
        (lambda: check_time("nowish"), f"not a time: 'nowish' ({FORMS})"),
        (lambda: check_time("2025-13-01"), f"not a time: '2025-13-01' ({FORMS})"),
        (lambda: check_time("now-99999999y"), "not a time: 'now-99999999y' is out of range"),
        (lambda: check_time(5), f"not a time: 5 ({FORMS})"),
        (lambda: preset("2h"), "unknown time range preset '2h' (expected one of 1h, 6h, 24h, 7d, 30d)"),
        (lambda: resolve_range("5x", NOW), "not a time range: '5x' (use one of 1h, 6h, 24h, 7d, 30d or a duration such as 90m)"),
        (lambda: resolve_range("0m", NOW), "not a time range: '0m' (use one of 1h, 6h, 24h, 7d, 30d or a duration such as 90m)"),
        (lambda: auto_step(10, 10), "time range: start 10 must be before end 10"),
        (lambda: auto_step(0, 10, 0), "max_points must be at least 1, got 0"),
    ],
)
def test_bad_values_are_named(call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError) as caught:
        call()
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("span", "step"),
    [
        (60, 10.0),  # never below the 10 s window
        (3600, 30.0),  # 1h: 120 points
        (6 * 3600, 300.0),  # 6h: 72 points (1m would give 360)
        (24 * 3600, 300.0),
        (7 * 86400, 3600.0),
        (30 * 86400, 3 * 3600.0),
        (365 * 86400, 7 * 86400.0),
        (5 * 365 * 86400, 7 * 86400.0),
        (10 * 365 * 86400, 13 * 86400.0),
    ],
)
def test_auto_step(span: float, step: float) -> None:
    assert auto_step(NOW - span, NOW) == step
    assert span / step <= 300


def test_auto_step_respects_max_points_and_min_step() -> None:
    assert auto_step(0, 3600, max_points=1000) == 10.0
    assert auto_step(0, 3600, max_points=1000, min_step_s=60) == 60.0
    for span in (1, 59, 601, 3599, 10_001, 86_399, 10**6, 10**8):
        step = auto_step(0, span, 300)
        assert span / step <= 300
        assert step in NICE_STEPS or step % 86400 == 0
