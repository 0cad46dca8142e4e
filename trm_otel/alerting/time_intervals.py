"""Named time intervals that mute routes or make them active (Alertmanager's ``time_intervals``).

    >>> ti = TimeIntervals([{"name": "office", "time_intervals": [
    ...     {"weekdays": ["monday:friday"], "times": [{"start_time": "09:00", "end_time": "17:00"}],
    ...      "location": "Europe/Berlin"}]}])
    >>> ti.active("office", 1795767600.0)  # Friday 2026-11-27 09:20 in Berlin
    True
    >>> ti.active("office", 1795836000.0)  # Saturday 2026-11-28 04:20 in Berlin
    False

The semantics are Alertmanager's, so a config copied from it behaves the
same: a named interval is active when any of its entries contains the
moment; an entry contains it when every field it sets does (unset fields
match everything, an empty entry is always active); ranges are inclusive
except ``end_time``, which is exclusive (``"24:00"`` reaches midnight);
weekday ranges run Sunday to Saturday and cannot wrap
(``["saturday", "sunday"]``, not ``"saturday:sunday"``); negative days of
the month count from its end (``-1`` is the last day); times are read in
``location`` (IANA name, ``Local``, default UTC).

``mute_time_intervals``, the older top-level key, has the same shape;
:meth:`TimeIntervals.from_config` merges both lists.
"""

from __future__ import annotations

import calendar
import functools
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone, tzinfo
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BeforeValidator, PlainSerializer, field_validator, model_validator

from trm_otel.config_types import StrictModel

__all__ = [
    "NamedTimeInterval",
    "TimeInterval",
    "TimeIntervalConfig",
    "TimeIntervalList",
    "TimeIntervals",
    "TimeRange",
]

_WEEKDAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
_MONTHS = (
    "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december",
)  # fmt: skip


def _minutes(text: str) -> int:
    """Minutes since midnight of ``HH:MM``; ``24:00`` only makes sense as an end."""
    parts = text.split(":") if isinstance(text, str) else []
    if len(parts) != 2 or not all(len(p) == 2 and p.isdigit() for p in parts):
        raise ValueError(f"invalid time {text!r}: use HH:MM, e.g. 09:00 or 24:00")
    hours, minutes = int(parts[0]), int(parts[1])
    if minutes > 59 or hours > 24 or (hours == 24 and minutes):
        raise ValueError(f"invalid time {text!r}: out of range 00:00 to 24:00")
    return hours * 60 + minutes


class TimeRange(StrictModel):
    """``start_time`` inclusive, ``end_time`` exclusive, both ``HH:MM`` in the entry's location."""

    start_time: str
    end_time: str

    @field_validator("start_time", "end_time")
    @classmethod
    def _valid_time(cls, value: str) -> str:
        _minutes(value)
        return value

    @model_validator(mode="after")
    def _ordered(self) -> TimeRange:
        if self.start_minute >= self.end_minute:
            raise ValueError(f"start_time {self.start_time} must be before end_time {self.end_time}")
        return self

    @property
    def start_minute(self) -> int:
        return _minutes(self.start_time)

    @property
    def end_minute(self) -> int:
        return _minutes(self.end_time)


# --- inclusive ranges written "a:b" or "a" -------------------------------------


def _split(value: Any, what: str) -> tuple[str, str]:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"invalid {what} {value!r}: use a string such as 'a:b' or 'a'")
    parts = str(value).strip().lower().split(":")
    if len(parts) > 2 or not all(parts):
        raise ValueError(f"invalid {what} range {value!r}: use 'start:end' or a single value")
    return (parts[0], parts[-1])


def _weekday(value: Any) -> tuple[int, int]:
    names = _split(value, "weekday")
    for name in names:
        if name not in _WEEKDAYS:
            raise ValueError(f"{name!r} is not a weekday (use sunday, monday, ... saturday)")
    begin, end = (_WEEKDAYS.index(n) for n in names)
    if begin > end:
        raise ValueError(
            f"weekday range {value!r} wraps past Saturday; weeks run sunday to saturday, so list two ranges"
        )
    return (begin, end)


def _int(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a valid {what}") from None


def _day_of_month(value: Any) -> tuple[int, int]:
    begin, end = (_int(p, "day of the month") for p in _split(value, "days_of_month"))
    for day in (begin, end):
        if day == 0 or not -31 <= day <= 31:
            raise ValueError(f"{day} is not a day of the month: use 1 to 31, or -1 (last day) to -31")
    if begin < 0 < end:
        raise ValueError(f"range {value!r}: when the start day counts from the month end, the end day must too")
    # Negative days are checked against the shortest month, where "-3:5" etc. can never hold.
    if (begin + 28 if begin < 0 else begin) > (end + 28 if end < 0 else end):
        raise ValueError(f"range {value!r}: end day {end} is always before start day {begin}")
    return (begin, end)


def _month(value: Any) -> tuple[int, int]:
    def one(name: str) -> int:
        if name in _MONTHS:
            return _MONTHS.index(name) + 1
        number = _int(name, "month (use january ... december or 1 ... 12)")
        if not 1 <= number <= 12:
            raise ValueError(f"{number} is not a month (use 1 to 12)")
        return number

    begin, end = (one(p) for p in _split(value, "month"))
    if begin > end:
        raise ValueError(f"month range {value!r} wraps past December; list two ranges")
    return (begin, end)


def _year(value: Any) -> tuple[int, int]:
    begin, end = (_int(p, "year") for p in _split(value, "year"))
    if begin <= 0 or end <= 0:
        raise ValueError(f"year range {value!r}: years must be positive")
    if begin > end:
        raise ValueError(f"year range {value!r}: end year {end} is before start year {begin}")
    return (begin, end)


def _as_text(names: tuple[str, ...] | None, offset: int) -> Any:
    def render(rng: tuple[int, int]) -> str:
        parts = [names[n - offset] if names else str(n) for n in rng]
        return parts[0] if rng[0] == rng[1] else f"{parts[0]}:{parts[1]}"

    return PlainSerializer(render)


WeekdayRange = Annotated[tuple[int, int], BeforeValidator(_weekday), _as_text(_WEEKDAYS, 0)]
DayOfMonthRange = Annotated[tuple[int, int], BeforeValidator(_day_of_month), _as_text(None, 0)]
MonthRange = Annotated[tuple[int, int], BeforeValidator(_month), _as_text(_MONTHS, 1)]
YearRange = Annotated[tuple[int, int], BeforeValidator(_year), _as_text(None, 0)]


@functools.lru_cache(maxsize=64)
def _zone(name: str | None) -> tzinfo:
    if name is None or name == "UTC":
        return timezone.utc
    if name == "Local":
        local = datetime.now().astimezone().tzinfo
        assert local is not None
        return local
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}: use an IANA name such as 'Europe/Berlin', or 'UTC'") from None


def _in_ranges(value: int, ranges: Iterable[tuple[int, int]]) -> bool:
    return any(begin <= value <= end for begin, end in ranges)


class TimeInterval(StrictModel):
    """One entry of a named interval; fields left unset do not restrict it."""

    times: tuple[TimeRange, ...] | None = None
    weekdays: tuple[WeekdayRange, ...] | None = None
    days_of_month: tuple[DayOfMonthRange, ...] | None = None
    months: tuple[MonthRange, ...] | None = None
    years: tuple[YearRange, ...] | None = None
    location: str | None = None

    @field_validator("location")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        _zone(value)
        return value

    def contains(self, when_s: float) -> bool:
        """Whether the Unix time falls inside, read on the wall clock of ``location``."""
        moment = datetime.fromtimestamp(when_s, tz=_zone(self.location))
        if self.times is not None:
            minute = moment.hour * 60 + moment.minute
            if not any(t.start_minute <= minute < t.end_minute for t in self.times):
                return False
        if self.days_of_month is not None and not self._day_matches(moment):
            return False
        if self.months is not None and not _in_ranges(moment.month, self.months):
            return False
        # Python counts Monday as 0; Alertmanager (and our ranges) count Sunday as 0.
        if self.weekdays is not None and not _in_ranges((moment.weekday() + 1) % 7, self.weekdays):
            return False
        if self.years is not None and not _in_ranges(moment.year, self.years):
            return False
        return True

    def _day_matches(self, moment: datetime) -> bool:
        assert self.days_of_month is not None
        length = calendar.monthrange(moment.year, moment.month)[1]
        for begin, end in self.days_of_month:
            first = length + begin + 1 if begin < 0 else begin
            last = length + end + 1 if end < 0 else end
            if first > length:  # "31" in a 30-day month never matches
                continue
            if max(first, 1) <= moment.day <= min(last, length):
                return True
        return False


class NamedTimeInterval(StrictModel):
    """``{name, time_intervals: [...]}``; active when any entry contains the moment (none: never)."""

    name: str
    time_intervals: tuple[TimeInterval, ...] = ()

    @field_validator("name")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("time interval name must not be empty")
        return value

    def contains(self, when_s: float) -> bool:
        return any(entry.contains(when_s) for entry in self.time_intervals)


def _unique_names(intervals: tuple[NamedTimeInterval, ...]) -> tuple[NamedTimeInterval, ...]:
    seen: set[str] = set()
    for interval in intervals:
        if interval.name in seen:
            raise ValueError(f"time interval name {interval.name!r} is defined twice")
        seen.add(interval.name)
    return intervals


#: ``time_intervals: TimeIntervalList = ()`` (or ``mute_time_intervals``) in a config model.
TimeIntervalList = Annotated[tuple[NamedTimeInterval, ...], AfterValidator(_unique_names)]


class TimeIntervals:
    """All named intervals of a config, looked up by name at notification time."""

    def __init__(self, intervals: Iterable[NamedTimeInterval | Mapping[str, Any]] = ()) -> None:
        parsed = tuple(
            i if isinstance(i, NamedTimeInterval) else NamedTimeInterval.model_validate(i) for i in intervals
        )
        self._by_name = {i.name: i for i in _unique_names(parsed)}

    @classmethod
    def from_config(
        cls,
        time_intervals: Iterable[NamedTimeInterval | Mapping[str, Any]] = (),
        mute_time_intervals: Iterable[NamedTimeInterval | Mapping[str, Any]] = (),
    ) -> TimeIntervals:
        """Both top-level keys together; a name may appear in only one of them, once."""
        return cls([*time_intervals, *mute_time_intervals])

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._by_name)

    def active(self, name: str, when_s: float) -> bool:
        """Whether ``name`` holds at ``when_s``; ``KeyError`` for a name never defined."""
        try:
            interval = self._by_name[name]
        except KeyError:
            raise KeyError(f"unknown time interval {name!r}") from None
        return interval.contains(when_s)

    def muted(self, mute_time_intervals: Iterable[str], active_time_intervals: Iterable[str], when_s: float) -> bool:
        """A route's mute decision: inside any mute interval, or outside all of its active ones (if any)."""
        if any(self.active(name, when_s) for name in mute_time_intervals):
            return True
        active = tuple(active_time_intervals)
        return bool(active) and not any(self.active(name, when_s) for name in active)


#: The name the config section uses for one ``{name, time_intervals}`` entry.
TimeIntervalConfig = NamedTimeInterval
