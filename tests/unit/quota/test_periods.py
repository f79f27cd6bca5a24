"""Quota days, weeks and months on the floor's clock, with a configurable day start."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from quota.periods import Periods, month_key, to_ms, week_key

SHANGHAI = Periods("Asia/Shanghai")


def ms(text: str) -> int:
    """UTC milliseconds of an ISO instant with its offset."""
    return to_ms(datetime.fromisoformat(text))


def test_a_call_before_the_day_start_belongs_to_the_previous_day() -> None:
    five = Periods("Asia/Shanghai", time(5, 0))
    assert five.day_of(ms("2024-03-05T04:59:59.999+08:00")) == date(2024, 3, 4)
    assert five.day_of(ms("2024-03-05T05:00:00.000+08:00")) == date(2024, 3, 5)
    # With midnight as the boundary the same two instants are one day.
    assert SHANGHAI.day_of(ms("2024-03-05T04:59:59.999+08:00")) == date(2024, 3, 5)


def test_the_same_instant_is_a_different_day_in_utc_and_in_shanghai() -> None:
    instant = ms("2024-03-31T16:30:00+00:00")  # 00:30 on April 1st in Shanghai
    assert Periods("UTC").day_of(instant) == date(2024, 3, 31)
    assert SHANGHAI.day_of(instant) == date(2024, 4, 1)
    assert SHANGHAI.keys(instant).month == "2024-04"
    assert Periods("UTC").keys(instant).month == "2024-03"


def test_weeks_start_on_monday_and_cross_month_boundaries() -> None:
    # 2024-04-28 is a Sunday; Monday 2024-04-29 to Sunday 2024-05-05 is one week.
    assert week_key(date(2024, 4, 28)) == date(2024, 4, 22)
    assert week_key(date(2024, 5, 1)) == date(2024, 4, 29)
    assert week_key(date(2024, 5, 5)) == date(2024, 4, 29)
    assert week_key(date(2024, 5, 6)) == date(2024, 5, 6)
    days = Periods.week_days(date(2024, 5, 2))
    assert days[0] == date(2024, 4, 29) and days[-1] == date(2024, 5, 5)
    assert {month_key(d) for d in days} == {"2024-04", "2024-05"}


def test_day_bounds_follow_the_boundary_and_contain_exactly_the_days_instants() -> None:
    five = Periods("Asia/Shanghai", time(5, 0))
    start, end = five.day_bounds_ms(date(2024, 3, 5))
    assert end - start == 24 * 3600 * 1000
    assert start == ms("2024-03-05T05:00:00+08:00")
    assert five.day_of(start) == date(2024, 3, 5)
    assert five.day_of(end - 1) == date(2024, 3, 5)
    assert five.day_of(end) == date(2024, 3, 6)


def test_a_dst_day_is_23_hours_and_calls_stay_on_their_local_day() -> None:
    berlin = Periods("Europe/Berlin", time(5, 0))
    start, end = berlin.day_bounds_ms(date(2024, 3, 30))  # clocks go forward on the 31st, 02:00
    assert end - start == 23 * 3600 * 1000
    assert berlin.day_of(ms("2024-03-31T04:59:00+02:00")) == date(2024, 3, 30)
    assert berlin.day_of(ms("2024-03-31T05:00:00+02:00")) == date(2024, 3, 31)


def test_milliseconds_are_exact_far_from_the_epoch() -> None:
    instant = datetime(2038, 1, 19, 3, 14, 7, 999_000, tzinfo=UTC)
    assert to_ms(instant) == 2147483647999
    assert SHANGHAI.local(2147483647999) == instant
    assert SHANGHAI.local(2147483647999).utcoffset() == timedelta(hours=8)


def test_bad_zone_and_naive_instants_are_refused_with_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="'Mars/Olympus' is not an IANA time zone"):
        Periods("Mars/Olympus")
    with pytest.raises(ValueError, match="has no time zone"):
        to_ms(datetime(2024, 3, 5, 9, 0))
