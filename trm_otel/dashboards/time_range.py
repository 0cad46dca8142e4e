"""Dashboard time ranges: presets, relative times (``now-2d``), ISO-8601 times, and a step.

    >>> now = 1_764_476_400.0                      # 2025-11-30T04:20:00Z
    >>> resolve("now-6h", "now", now) == (now - 6 * 3600, now)
    True
    >>> resolve("2025-11-29T00:00:00Z", "now/d", now)   # to the end of today, UTC
    (1764374400.0, 1764547200.0)
    >>> auto_step(now - 24 * 3600, now)          # 24h in at most ~300 points
    300.0

Relative times read as Grafana users write them (a fact of its format, so
a dashboard's ``time`` carries over both ways): ``now``, then any number of
``+N<unit>`` / ``-N<unit>`` offsets and ``/<unit>`` roundings applied left
to right, units ``s m h d w M y`` (``M`` months and ``y`` years are calendar
arithmetic). A rounding snaps to the start of the unit, or, for the ``to``
end of a range, to the start of the next one (ranges are half-open, so
``now/d`` to ``now/d`` is today). Everything is in UTC: the daemon has no
notion of the viewer's time zone, and a naive ISO time is taken as UTC.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime, timedelta, timezone

__all__ = ["NICE_STEPS", "PRESETS", "auto_step", "check_time", "preset", "resolve", "resolve_range", "resolve_time"]

#: The range picker's presets: each ``X`` means ``now-X`` to ``now``.
PRESETS: tuple[str, ...] = ("1h", "6h", "24h", "7d", "30d")

#: Steps a chart is evaluated at, in seconds; 10 s is the daemon's window.
NICE_STEPS: tuple[float, ...] = (
    10, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400,
)

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_UNITS = "s, m, h, d, w, M or y"
_FORMS = "use now, now-30m, now-2d, now/d or an ISO-8601 time such as 2025-11-30T04:20:00Z"
_STEP = re.compile(r"([+-])([0-9]+)([A-Za-z]+)|/([A-Za-z]+)")
_DURATION = re.compile(r"([0-9]+)([smhdw])")


def resolve(from_: str, to: str, now_s: float) -> tuple[float, float]:
    """``(start_s, end_s)`` of a dashboard's ``time`` at ``now_s``; ``ValueError`` names the bad value.

    The end must lie after the start: an empty range would draw an empty
    chart without saying why.
    """
    start = resolve_time(from_, now_s)
    end = resolve_time(to, now_s, round_up=True)
    if not start < end:
        raise ValueError(f"time range: from {from_!r} must be before to {to!r}")
    return start, end


def resolve_range(range_: str, now_s: float) -> tuple[float, float]:
    """The last ``range_`` up to now: a preset (``6h``) or any duration in s m h d w (``90m``, ``1d12h``).

    This is the ``range=`` parameter of the API and of panel renders.
    """
    seconds = _duration_seconds(range_)
    if seconds is None:
        raise ValueError(f"not a time range: {range_!r} (use one of {', '.join(PRESETS)} or a duration such as 90m)")
    return now_s - seconds, float(now_s)


def preset(name: str) -> tuple[str, str]:
    """A preset's ``(from, to)``: ``"6h"`` is ``("now-6h", "now")``."""
    if name not in PRESETS:
        raise ValueError(f"unknown time range preset {name!r} (expected one of {', '.join(PRESETS)})")
    return f"now-{name}", "now"


def check_time(text: str) -> None:
    """Raise ``ValueError`` naming ``text`` unless it is a time :func:`resolve_time` reads."""
    resolve_time(text, 1_700_000_000.0)


def resolve_time(text: str, now_s: float, *, round_up: bool = False) -> float:
    """Unix seconds of one time; ``round_up`` makes ``/unit`` snap to the next unit's start (for ``to``)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"not a time: {text!r} ({_FORMS})")
    value = text.strip()
    if value.startswith("now"):
        return _relative(value, now_s, round_up)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"not a time: {text!r} ({_FORMS})") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def auto_step(start_s: float, end_s: float, max_points: int = 300, *, min_step_s: float = 10.0) -> float:
    """The smallest step from :data:`NICE_STEPS` (at least ``min_step_s``) giving at most ``max_points`` points.

    Nice steps keep the points of a chart on round times, so two panels of
    one dashboard and two refreshes of one panel line up; past a week the
    step is a whole number of days.
    """
    if max_points < 1:
        raise ValueError(f"max_points must be at least 1, got {max_points}")
    if not (math.isfinite(start_s) and math.isfinite(end_s)) or not start_s < end_s:
        raise ValueError(f"time range: start {start_s!r} must be before end {end_s!r}")
    raw = max((end_s - start_s) / max_points, min_step_s)
    for step in NICE_STEPS:
        if step >= raw:
            return float(step)
    return float(math.ceil(raw / 86400) * 86400)


# --- relative times -----------------------------------------------------------


def _relative(text: str, now_s: float, round_up: bool) -> float:
    moment = datetime.fromtimestamp(now_s, tz=timezone.utc)
    pos = 3
    while pos < len(text):
        step = _STEP.match(text, pos)
        if step is None:
            raise ValueError(f"not a time: {text!r} ({_FORMS})")
        sign, amount, unit, rounding = step.groups()
        unit = _unit(text, rounding or unit)
        try:
            if rounding is not None:
                moment = _round(moment, unit, round_up)
            else:
                moment = _shift(moment, int(amount) * (1 if sign == "+" else -1), unit)
        except (OverflowError, OSError, ValueError):  # past year 1 or 9999
            raise ValueError(f"not a time: {text!r} is out of range") from None
        pos = step.end()
    return moment.timestamp()


def _unit(text: str, unit: str) -> str:
    if unit not in _UNIT_SECONDS and unit not in ("M", "y"):
        raise ValueError(f"not a time: {text!r}: unknown unit {unit!r} (use {_UNITS})")
    return unit


def _shift(moment: datetime, amount: int, unit: str) -> datetime:
    if unit in _UNIT_SECONDS:
        return moment + timedelta(seconds=amount * _UNIT_SECONDS[unit])
    months = moment.year * 12 + moment.month - 1 + (amount * 12 if unit == "y" else amount)
    year, month = divmod(months, 12)
    day = min(moment.day, _days_in_month(year, month + 1))
    return moment.replace(year=year, month=month + 1, day=day)


def _round(moment: datetime, unit: str, round_up: bool) -> datetime:
    if unit == "s":
        start = moment.replace(microsecond=0)
    elif unit == "m":
        start = moment.replace(second=0, microsecond=0)
    elif unit == "h":
        start = moment.replace(minute=0, second=0, microsecond=0)
    else:
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        if unit == "w":
            start -= timedelta(days=start.weekday())  # ISO weeks start on Monday
        elif unit == "M":
            start = start.replace(day=1)
        elif unit == "y":
            start = start.replace(month=1, day=1)
    return _shift(start, 1, unit) if round_up else start


def _days_in_month(year: int, month: int) -> int:
    following = date(year + (month == 12), month % 12 + 1, 1)
    return (following - timedelta(days=1)).day


def _duration_seconds(text: str) -> float | None:
    if not isinstance(text, str):
        return None
    pos, total = 0, 0
    for part in _DURATION.finditer(text):
        if part.start() != pos:
            return None
        total += int(part.group(1)) * _UNIT_SECONDS[part.group(2)]
        pos = part.end()
    return float(total) if pos == len(text) and total > 0 else None
