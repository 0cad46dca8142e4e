"""Alertmanager's time intervals: ranges, locations, negative days of the month."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import BaseModel, ValidationError

from trm_otel.alerting import time_intervals as module
from trm_otel.alerting.time_intervals import NamedTimeInterval, TimeInterval, TimeIntervalList, TimeIntervals

BERLIN = ZoneInfo("Europe/Berlin")


def at(*parts: int, tz: Any = timezone.utc) -> float:
    return datetime(*parts, tzinfo=tz).timestamp()


def entry(**fields: Any) -> TimeInterval:
    return TimeInterval.model_validate(fields)


def test_exported_names() -> None:
    assert sorted(module.__all__) == [
        "NamedTimeInterval",
        "TimeInterval",
        "TimeIntervalConfig",
        "TimeIntervalList",
        "TimeIntervals",
        "TimeRange",
    ]


def test_weekday_ranges_are_inclusive_and_start_on_sunday() -> None:
    workdays = entry(weekdays=["monday:friday"])
    # 2026-11-23 is a Monday.
    assert [workdays.contains(at(2026, 11, 23 + d, 12)) for d in range(7)] == [True] * 5 + [False] * 2
    weekend = entry(weekdays=["Saturday", "SUNDAY"])  # case does not matter
    assert [weekend.contains(at(2026, 11, 23 + d, 12)) for d in range(7)] == [False] * 5 + [True] * 2
    assert entry(weekdays=["sunday:saturday"]).contains(at(2026, 11, 29, 12))


def test_times_are_read_in_the_location_and_end_is_exclusive() -> None:
    office = entry(times=[{"start_time": "09:00", "end_time": "17:00"}], location="Europe/Berlin")
    # Winter: Berlin is UTC+1. Summer: UTC+2. The wall clock is what counts.
    assert office.contains(at(2026, 11, 23, 9, 0, tz=BERLIN))
    assert office.contains(at(2026, 11, 23, 16, 59, tz=BERLIN))
    assert not office.contains(at(2026, 11, 23, 17, 0, tz=BERLIN))
    assert not office.contains(at(2026, 11, 23, 7, 59))  # 08:59 CET
    assert office.contains(at(2026, 11, 23, 8, 0))  # 09:00 CET
    assert not office.contains(at(2026, 7, 6, 15, 30))  # 17:30 CEST
    assert office.contains(at(2026, 7, 6, 14, 30))  # 16:30 CEST
    in_utc = entry(times=[{"start_time": "09:00", "end_time": "17:00"}])
    assert in_utc.contains(at(2026, 11, 23, 16, 30)) and not in_utc.contains(at(2026, 11, 23, 8, 30))


def test_days_of_month_count_back_from_the_month_end() -> None:
    last_day = entry(days_of_month=["-1"])
    assert last_day.contains(at(2026, 2, 28, 12))  # not a leap year
    assert not last_day.contains(at(2028, 2, 28, 12))  # leap year: the 29th is last
    assert last_day.contains(at(2028, 2, 29, 12))
    assert last_day.contains(at(2026, 4, 30, 12)) and not last_day.contains(at(2026, 4, 29, 12))
    last_week = entry(days_of_month=["-7:-1"])
    assert [last_week.contains(at(2026, 11, d, 12)) for d in (23, 24, 30)] == [False, True, True]
    whole_month = entry(days_of_month=["1:-1"])
    assert all(whole_month.contains(at(2026, 2, d, 12)) for d in range(1, 29))
    first_days = entry(days_of_month=["1:5", 15])  # YAML may give a bare number
    assert [first_days.contains(at(2026, 11, d, 12)) for d in (1, 5, 6, 15, 16)] == [True, True, False, True, False]
    the_31st = entry(days_of_month=["31"])
    assert not any(the_31st.contains(at(2026, 11, d, 12)) for d in range(1, 31))
    assert entry(days_of_month=["25:31"]).contains(at(2026, 11, 30, 12))


def test_months_years_and_all_fields_together() -> None:
    quarter = entry(months=["january:march", "12"])
    assert [quarter.contains(at(2026, m, 1, 12)) for m in (1, 3, 4, 11, 12)] == [True, True, False, False, True]
    years = entry(years=["2026:2027"])
    assert years.contains(at(2027, 12, 31, 23, 59)) and not years.contains(at(2028, 1, 1))
    # New Year's Eve in Berlin: 23:30 local is still 2026 there but 22:30 UTC.
    nye = entry(
        times=[{"start_time": "18:00", "end_time": "24:00"}],
        days_of_month=["-1"],
        months=["december"],
        weekdays=["thursday"],
        years=["2026"],
        location="Europe/Berlin",
    )
    assert nye.contains(at(2026, 12, 31, 23, 30, tz=BERLIN))
    assert nye.contains(at(2026, 12, 31, 23, 59, tz=BERLIN))
    assert not nye.contains(at(2027, 1, 1, 0, 0, tz=BERLIN))
    assert not nye.contains(at(2026, 12, 31, 17, 59, tz=BERLIN))


def test_named_intervals() -> None:
    intervals = TimeIntervals(
        [
            {"name": "always", "time_intervals": [{}]},
            {"name": "never", "time_intervals": []},
            {
                "name": "offhours",
                "time_intervals": [
                    {"weekdays": ["saturday", "sunday"]},
                    {
                        "times": [
                            {"start_time": "00:00", "end_time": "09:00"},
                            {"start_time": "18:00", "end_time": "24:00"},
                        ]
                    },
                ],
            },
        ]
    )
    assert intervals.names == {"always", "never", "offhours"}
    monday_noon, monday_night, saturday_noon = at(2026, 11, 23, 12), at(2026, 11, 23, 20), at(2026, 11, 28, 12)
    assert intervals.active("always", monday_noon) and not intervals.active("never", monday_noon)
    assert [intervals.active("offhours", t) for t in (monday_noon, monday_night, saturday_noon)] == [False, True, True]
    with pytest.raises(KeyError, match="unknown time interval 'holidays'"):
        intervals.active("holidays", monday_noon)
    # A route is muted inside any mute interval, or outside all of its active intervals.
    assert intervals.muted(["offhours"], [], monday_night)
    assert not intervals.muted(["offhours"], [], monday_noon)
    assert intervals.muted([], ["offhours"], monday_noon)
    assert not intervals.muted([], ["never", "offhours"], saturday_noon)
    assert not intervals.muted([], [], monday_noon)


def test_from_config_merges_the_old_key_and_refuses_duplicates() -> None:
    new = [NamedTimeInterval(name="weekend", time_intervals=(entry(weekdays=["saturday", "sunday"]),))]
    old = [{"name": "nights", "time_intervals": [{"times": [{"start_time": "22:00", "end_time": "24:00"}]}]}]
    merged = TimeIntervals.from_config(time_intervals=new, mute_time_intervals=old)
    assert merged.names == {"weekend", "nights"}
    with pytest.raises(ValueError, match="time interval name 'weekend' is defined twice"):
        TimeIntervals.from_config(time_intervals=new, mute_time_intervals=[{"name": "weekend"}])


class _Config(BaseModel):
    time_intervals: TimeIntervalList = ()
    mute_time_intervals: TimeIntervalList = ()


def test_config_model_round_trips_to_alertmanager_strings() -> None:
    raw = {
        "time_intervals": [
            {
                "name": "business",
                "time_intervals": [
                    {
                        "times": [{"start_time": "09:00", "end_time": "17:00"}],
                        "weekdays": ["monday:friday", "sunday"],
                        "days_of_month": ["1:5", "-1"],
                        "months": ["january:march", "12"],
                        "years": ["2026:2027"],
                        "location": "Europe/Berlin",
                    }
                ],
            }
        ]
    }
    config = _Config.model_validate(raw)
    dumped = config.model_dump(mode="json", exclude_none=True)["time_intervals"][0]["time_intervals"][0]
    assert dumped["weekdays"] == ["monday:friday", "sunday"]
    assert dumped["days_of_month"] == ["1:5", "-1"]
    assert dumped["months"] == ["january:march", "december"]
    assert dumped["years"] == ["2026:2027"]
    assert _Config.model_validate(config.model_dump(mode="json", exclude_none=True)) == config


@pytest.mark.parametrize(
    ("fields", "loc", "message"),
    [
        ({"weekdays": ["saturday:sunday"]}, ("weekdays", 0), "wraps past Saturday"),
        ({"weekdays": ["mon:fri"]}, ("weekdays", 0), "'mon' is not a weekday"),
        ({"weekdays": ["monday:tuesday:friday"]}, ("weekdays", 0), "use 'start:end' or a single value"),
        ({"days_of_month": ["0"]}, ("days_of_month", 0), "0 is not a day of the month"),
        ({"days_of_month": ["32"]}, ("days_of_month", 0), "32 is not a day of the month"),
        ({"days_of_month": ["-3:5"]}, ("days_of_month", 0), "the end day must too"),
        ({"days_of_month": ["10:2"]}, ("days_of_month", 0), "end day 2 is always before start day 10"),
        ({"days_of_month": ["-1:-3"]}, ("days_of_month", 0), "end day -3 is always before start day -1"),
        ({"months": ["13"]}, ("months", 0), "13 is not a month"),
        ({"months": ["march:january"]}, ("months", 0), "wraps past December"),
        ({"months": ["smarch"]}, ("months", 0), "'smarch' is not a valid month"),
        ({"years": ["2027:2026"]}, ("years", 0), "end year 2026 is before start year 2027"),
        ({"times": [{"start_time": "17:00", "end_time": "09:00"}]}, ("times", 0), "must be before end_time"),
        ({"times": [{"start_time": "9:00", "end_time": "17:00"}]}, ("times", 0, "start_time"), "use HH:MM"),
        ({"times": [{"start_time": "09:00", "end_time": "24:01"}]}, ("times", 0, "end_time"), "out of range"),
        ({"times": [{"start_time": "09:00"}]}, ("times", 0, "end_time"), "Field required"),
        ({"location": "Europe/Berln"}, ("location",), "unknown time zone 'Europe/Berln'"),
        ({"weekday": ["monday"]}, ("weekday",), "Extra inputs are not permitted"),
    ],
)
def test_validation_messages(fields: dict[str, Any], loc: tuple[Any, ...], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        TimeInterval.model_validate(fields)
    errors = info.value.errors()
    assert [tuple(e["loc"]) for e in errors] == [loc]
    assert message in errors[0]["msg"]


def test_duplicate_names_in_one_list() -> None:
    with pytest.raises(ValidationError, match="time interval name 'a' is defined twice"):
        _Config.model_validate({"time_intervals": [{"name": "a"}, {"name": "a"}]})
    with pytest.raises(ValidationError, match="name must not be empty"):
        _Config.model_validate({"time_intervals": [{"name": " "}]})


def test_local_and_utc_locations() -> None:
    assert entry(location="UTC").contains(at(2026, 1, 1))
    assert entry(location="Local", weekdays=["sunday:saturday"]).contains(at(2026, 1, 1))
