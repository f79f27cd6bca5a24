from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialer.campaigns.windows import CallingWindows, CampaignError, Window

SEEDS = {"mon-fri": ["10:30-12:00", "15:30-17:30"], "sat": ["10:30-12:00"]}
NY, BERLIN, SHANGHAI = "America/New_York", "Europe/Berlin", "Asia/Shanghai"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def local(tz: str, text: str, *, fold: int = 0) -> datetime:
    """The instant the wall clock in ``tz`` reads ``text`` (its ``fold`` occurrence)."""
    wall = datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz), fold=fold)
    return wall.astimezone(UTC)


def only_sunday(*windows: str) -> CallingWindows:
    return CallingWindows.parse({"sun": list(windows)})


# --- parsing ---------------------------------------------------------------


def test_seed_windows_parse_per_weekday() -> None:
    windows = CallingWindows.parse(SEEDS)
    two = (Window(630, 720), Window(930, 1050))
    assert windows.days == (two, two, two, two, two, (Window(630, 720),), ())


def test_day_lists_ranges_case_and_24_00_are_accepted() -> None:
    windows = CallingWindows.parse({"Sat, sun": ["20:00-24:00", "08:00-09:00"], "wed-thu": []})
    assert windows.days[5] == windows.days[6] == (Window(480, 540), Window(1200, 1440))
    assert windows.days[2] == ()


def test_no_windows_at_all() -> None:
    windows = CallingWindows.parse({})
    assert not windows.has_any()
    assert windows.next_open(utc("2024-06-03 03:00"), SHANGHAI) is None
    assert windows.closes_at(utc("2024-06-03 03:00"), SHANGHAI) is None


@pytest.mark.parametrize(
    ("mapping", "problem"),
    [
        (
            {"monday": ["10:00-11:00"]},
            "windows['monday']: 'monday' is not a day or day range; use mon, tue, wed, thu, "
            "fri, sat, sun or a range such as 'mon-fri'",
        ),
        (
            {"fri-mon": ["10:00-11:00"]},
            "windows['fri-mon']: range 'fri-mon' runs backwards; ranges go Monday to Sunday",
        ),
        ({"mon,mon": []}, "windows['mon,mon']: mon appears twice in the key"),
        (
            {"mon": ["10:00-11:00"], "sun": ["9:00-10:00"]},
            "windows['sun'][0] = '9:00-10:00': expected 'HH:MM-HH:MM' (00:00 to 24:00)",
        ),
        (
            {"mon": ["10:60-11:00"]},
            "windows['mon'][0] = '10:60-11:00': expected 'HH:MM-HH:MM' (00:00 to 24:00)",
        ),
        (
            {"mon": ["24:00-24:00"]},
            "windows['mon'][0] = '24:00-24:00': expected 'HH:MM-HH:MM' (00:00 to 24:00)",
        ),
        (
            {"mon": ["12:00-12:00"]},
            "windows['mon'][0] = '12:00-12:00': end must be after start (no window spans midnight)",
        ),
        (
            {"mon": ["22:00-02:00"]},
            "windows['mon'][0] = '22:00-02:00': end must be after start (no window spans midnight)",
        ),
        ({"mon": [1030]}, "windows['mon'][0] = 1030: expected 'HH:MM-HH:MM'"),
        (
            {"mon": "10:30-12:00"},
            "windows['mon'] must be a list of 'HH:MM-HH:MM' strings, got '10:30-12:00'",
        ),
        (
            {"mon-fri": ["10:30-12:00"], "fri": ["15:00-16:00"]},
            "windows['fri']: fri is already listed under 'mon-fri'",
        ),
        (
            {"mon-tue": ["10:30-12:00", "11:00-13:00"]},
            "windows['mon-tue'][1] = '11:00-13:00' overlaps windows['mon-tue'][0] = "
            "'10:30-12:00'; merge them into one window (on mon, tue)",
        ),
        (
            {"sat": ["12:00-13:00", "10:30-12:00"]},
            "windows['sat'][0] = '12:00-13:00' overlaps windows['sat'][1] = "
            "'10:30-12:00'; merge them into one window (on sat)",
        ),
    ],
)
def test_each_bad_setting_is_named(mapping: dict[str, object], problem: str) -> None:
    with pytest.raises(CampaignError) as caught:
        CallingWindows.parse(mapping, key="windows")  # type: ignore[arg-type]
    assert caught.value.problems == (problem,)


def test_every_problem_is_reported_at_once_under_the_given_key() -> None:
    with pytest.raises(CampaignError) as caught:
        CallingWindows.parse({"xyz": ["1-2"], "sun": ["11:00-10:00"]}, key="campaigns.a.windows")
    assert len(caught.value.problems) == 3
    assert all(p.startswith("campaigns.a.windows[") for p in caught.value.problems)


def test_unknown_time_zone_is_named() -> None:
    with pytest.raises(CampaignError, match="unknown time zone 'Mars/Olympus'"):
        CallingWindows.parse(SEEDS).is_open(utc("2024-06-03 00:00"), "Mars/Olympus")


def test_naive_now_is_refused() -> None:
    with pytest.raises(CampaignError, match="now must be timezone-aware"):
        CallingWindows.parse(SEEDS).is_open(datetime(2024, 6, 3, 3), SHANGHAI)


# --- no DST: Asia/Shanghai ---------------------------------------------------


def sh(text: str) -> datetime:
    return local(SHANGHAI, text)


def test_shanghai_weekday_bounds() -> None:
    windows = CallingWindows.parse(SEEDS)  # 2024-06-03 is a Monday
    assert not windows.is_open(sh("2024-06-03 10:29:59"), SHANGHAI)
    assert windows.is_open(sh("2024-06-03 10:30"), SHANGHAI)
    assert windows.closes_at(sh("2024-06-03 11:00"), SHANGHAI) == sh("2024-06-03 12:00")
    assert not windows.is_open(sh("2024-06-03 12:00"), SHANGHAI)
    assert windows.next_open(sh("2024-06-03 12:00"), SHANGHAI) == sh("2024-06-03 15:30")
    assert windows.next_open(sh("2024-06-03 11:00"), SHANGHAI) == sh("2024-06-03 11:00")
    assert windows.closes_at(sh("2024-06-03 17:00"), SHANGHAI) == sh("2024-06-03 17:30")


def test_shanghai_weekend_skips_to_monday() -> None:
    windows = CallingWindows.parse(SEEDS)
    assert windows.is_open(sh("2024-06-08 11:00"), SHANGHAI)  # Saturday
    assert not windows.is_open(sh("2024-06-08 16:00"), SHANGHAI)
    assert windows.next_open(sh("2024-06-08 12:00"), SHANGHAI) == sh("2024-06-10 10:30")


def test_same_instant_open_for_one_lead_closed_for_another() -> None:
    windows = CallingWindows.parse(SEEDS)
    instant = utc("2024-06-03 03:00")  # Mon 11:00 Shanghai, 05:00 Berlin, Sun 23:00 New York
    assert windows.is_open(instant, SHANGHAI)
    assert not windows.is_open(instant, BERLIN)
    assert not windows.is_open(instant, NY)
    assert windows.next_open(instant, BERLIN) == local(BERLIN, "2024-06-03 10:30")
    later = utc("2024-06-03 14:00")  # 22:00 Shanghai, 16:00 Berlin, 10:00 New York
    assert not windows.is_open(later, SHANGHAI)
    assert windows.is_open(later, BERLIN)
    assert not windows.is_open(later, NY)


# --- spring forward ----------------------------------------------------------


def test_new_york_window_starting_in_the_gap_opens_at_first_valid_instant() -> None:
    # 2024-03-10: 02:00 EST jumps to 03:00 EDT (07:00 UTC).
    windows = only_sunday("02:30-04:00")
    assert windows.next_open(utc("2024-03-10 05:00"), NY) == utc("2024-03-10 07:00")
    assert not windows.is_open(utc("2024-03-10 06:59:59"), NY)
    assert windows.is_open(utc("2024-03-10 07:00"), NY)
    assert windows.closes_at(utc("2024-03-10 07:00"), NY) == utc("2024-03-10 08:00")


def test_window_wholly_in_the_gap_never_opens_that_day() -> None:
    windows = only_sunday("02:00-02:45")
    assert windows.next_open(utc("2024-03-10 05:00"), NY) == local(NY, "2024-03-17 02:00")


def test_berlin_spring_forward() -> None:
    # 2024-03-31: 02:00 CET jumps to 03:00 CEST (01:00 UTC).
    windows = only_sunday("02:15-03:30", "10:30-12:00")
    assert windows.next_open(utc("2024-03-30 23:00"), BERLIN) == utc("2024-03-31 01:00")
    assert windows.closes_at(utc("2024-03-31 01:10"), BERLIN) == utc("2024-03-31 01:30")
    # The day is an hour short but a later window keeps its wall-clock hours.
    assert windows.next_open(utc("2024-03-31 02:00"), BERLIN) == utc("2024-03-31 08:30")


# --- fall back ---------------------------------------------------------------


def test_new_york_repeated_time_opens_once_first_occurrence() -> None:
    # 2024-11-03: 02:00 EDT falls back to 01:00 EST (06:00 UTC); 01:xx happens twice.
    windows = only_sunday("01:00-01:30")
    assert windows.next_open(utc("2024-11-03 04:00"), NY) == utc("2024-11-03 05:00")  # 01:00 EDT
    assert windows.closes_at(utc("2024-11-03 05:10"), NY) == utc("2024-11-03 05:30")
    second_pass = local(NY, "2024-11-03 01:10", fold=1)
    assert second_pass == utc("2024-11-03 06:10")
    assert not windows.is_open(second_pass, NY)
    assert windows.next_open(utc("2024-11-03 05:30"), NY) == local(NY, "2024-11-10 01:00")


def test_window_spanning_the_repeat_skips_the_second_pass() -> None:
    windows = only_sunday("01:30-03:00")
    assert windows.is_open(utc("2024-11-03 05:45"), NY)  # 01:45 EDT
    assert windows.closes_at(utc("2024-11-03 05:45"), NY) == utc("2024-11-03 06:00")
    assert not windows.is_open(utc("2024-11-03 06:45"), NY)  # 01:45 EST again
    assert windows.next_open(utc("2024-11-03 06:00"), NY) == utc("2024-11-03 07:00")  # 02:00 EST
    assert windows.closes_at(utc("2024-11-03 07:00"), NY) == utc("2024-11-03 08:00")  # 03:00 EST
    assert _open_seconds(windows, NY, utc("2024-11-03 04:00"), utc("2024-11-03 09:00")) == 90 * 60


def test_berlin_fall_back() -> None:
    # 2024-10-27: 03:00 CEST falls back to 02:00 CET (01:00 UTC).
    windows = only_sunday("02:30-02:45")
    assert windows.next_open(utc("2024-10-26 22:00"), BERLIN) == utc("2024-10-27 00:30")
    assert not windows.is_open(utc("2024-10-27 01:35"), BERLIN)  # 02:35 CET
    assert (
        _open_seconds(windows, BERLIN, utc("2024-10-26 22:00"), utc("2024-10-27 04:00")) == 15 * 60
    )


def _open_seconds(windows: CallingWindows, tz: str, start: datetime, end: datetime) -> int:
    total, t = 0, start
    while t < end:
        total += 60 * windows.is_open(t, tz)
        t += timedelta(minutes=1)
    return total


# --- properties --------------------------------------------------------------

ZONES = [NY, BERLIN, SHANGHAI, "Australia/Lord_Howe", "Europe/Dublin", "America/Sao_Paulo"]


def _transitions(tz: str, year: int) -> list[datetime]:
    zone, found = ZoneInfo(tz), []
    t = datetime(year, 1, 1, tzinfo=UTC)
    previous = t.astimezone(zone).utcoffset()
    while t.year == year:
        t += timedelta(hours=1)  # a shift is found within the hour: close enough
        offset = t.astimezone(zone).utcoffset()
        if offset != previous:
            found.append(t)
            previous = offset
    return found


TRANSITIONS = {tz: _transitions(tz, 2018) + _transitions(tz, 2024) for tz in ZONES}


@st.composite
def day_windows(draw: st.DrawFn) -> list[str]:
    # Distinct sorted quarter-hour bounds, paired up: disjoint, never touching.
    bounds = sorted(draw(st.sets(st.integers(0, 96), max_size=6)))
    return [
        f"{_hhmm(start * 15)}-{_hhmm(end * 15)}"
        for start, end in zip(bounds[::2], bounds[1::2], strict=False)
    ]


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


@st.composite
def configs(draw: st.DrawFn) -> CallingWindows:
    mapping = {
        day: draw(day_windows()) for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    }
    return CallingWindows.parse(mapping)


@st.composite
def instants(draw: st.DrawFn) -> tuple[str, datetime]:
    tz = draw(st.sampled_from(ZONES))
    near_transition = draw(st.booleans())
    if TRANSITIONS[tz] and near_transition:
        base = draw(st.sampled_from(TRANSITIONS[tz]))
    else:
        base = draw(st.datetimes(datetime(2015, 1, 1), datetime(2030, 1, 1))).replace(tzinfo=UTC)
    # Mostly within the transition's own hours, where a repeat or gap happens.
    seconds = st.integers(-3 * 3600, 3 * 3600) | st.integers(-36 * 3600, 36 * 3600)
    return tz, base + timedelta(seconds=draw(seconds))


def _wall_clock_open(windows: CallingWindows, t: datetime, tz: str) -> bool:
    # The definition, evaluated directly: the wall time is in a window, and
    # this is its first occurrence.
    wall = t.astimezone(ZoneInfo(tz))
    minute = wall.hour * 60 + wall.minute + (wall.second + wall.microsecond / 1e6) / 60
    inside = any(w.start <= minute < w.end for w in windows.days[wall.weekday()])
    return inside and wall.fold == 0


@settings(max_examples=200, deadline=None)
@given(configs(), instants())
def test_is_open_matches_the_wall_clock_definition(
    windows: CallingWindows, at: tuple[str, datetime]
) -> None:
    tz, t = at
    assert windows.is_open(t, tz) == _wall_clock_open(windows, t, tz)


@settings(max_examples=200, deadline=None)
@given(configs(), instants(), st.floats(0, 1))
def test_next_open_and_closes_at_bound_the_open_stretch(
    windows: CallingWindows, at: tuple[str, datetime], fraction: float
) -> None:
    tz, t = at
    tick = timedelta(microseconds=1)
    closes = windows.closes_at(t, tz)
    opens = windows.next_open(t, tz)
    if windows.is_open(t, tz):
        assert opens == t
        assert closes is not None and closes > t
        assert windows.is_open(closes - tick, tz)
        inside = t + (closes - t) * fraction
        assert inside >= closes or windows.is_open(inside, tz)
        return
    assert closes is None
    if not windows.has_any():
        assert opens is None
        return
    assert opens is not None and t < opens <= t + timedelta(days=8)
    assert windows.is_open(opens, tz)
    assert not windows.is_open(opens - tick, tz)
    between = t + (opens - t) * fraction
    assert between >= opens or not windows.is_open(between, tz)
