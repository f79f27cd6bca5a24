"""Activity reports on a hand-made set of CDRs, and the local periods they cover."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from cdr.record import AnsweredBy, CallRecord, Outcome
from cdr.reports import ReportError, ReportRow, period_bounds, render_csv, render_json, report

T0 = int(datetime(2024, 6, 3, 2, 0, tzinfo=UTC).timestamp() * 1000)
SHANGHAI = ZoneInfo("Asia/Shanghai")
TEAMS = {"a1": "north", "a2": "north", "a3": "south"}


def answered(
    n: int,
    agent: str | None,
    campaign: str,
    *,
    by: AnsweredBy = AnsweredBy.HUMAN,
    talk_ms: int | None = None,
    effective: bool = False,
    disposition: str | None = None,
    abandoned: bool = False,
) -> CallRecord:
    start = T0 + n * 60_000
    return CallRecord(
        call_id=f"c{n}",
        agent=agent,
        campaign=campaign,
        created_at_ms=start,
        answered_at_ms=start + 5_000,
        bridged_at_ms=start + 5_020 if talk_ms is not None else None,
        ended_at_ms=start + 5_020 + (talk_ms or 0),
        talk_ms=talk_ms or 0,
        outcome=Outcome.ANSWERED,
        answered_by=by,
        effective=effective,
        disposition=disposition,
        abandoned=abandoned,
    )


def failed(n: int, agent: str | None, campaign: str, outcome: Outcome) -> CallRecord:
    start = T0 + n * 60_000
    return CallRecord(
        call_id=f"c{n}",
        agent=agent,
        campaign=campaign,
        created_at_ms=start,
        ended_at_ms=start + 20_000,
        outcome=outcome,
    )


RECORDS = [
    answered(1, "a1", "c1", talk_ms=60_000, effective=True, disposition="sale"),
    answered(2, "a1", "c1", talk_ms=30_000, disposition="no_interest"),
    failed(3, "a1", "c1", Outcome.BUSY),
    failed(4, "a1", "c1", Outcome.NO_ANSWER),
    answered(5, "a2", "c2", by=AnsweredBy.MACHINE),
    answered(6, "a2", "c2", talk_ms=120_000, effective=True, disposition="sale"),
    answered(7, "a3", "c1", by=AnsweredBy.UNKNOWN, talk_ms=15_000, disposition="callback"),
    answered(8, None, "c1", abandoned=True),  # a live answer no agent was free for
    answered(9, None, "c1", abandoned=True),
    failed(10, "a9", "c2", Outcome.INVALID_NUMBER),  # a9 is in no team
]


async def stream(records: Iterable[CallRecord]) -> AsyncIterator[CallRecord]:
    for record in records:
        yield record


def by_group(rows: list[ReportRow]) -> dict[str | None, ReportRow]:
    return {row.group: row for row in rows}


async def test_report_by_agent() -> None:
    rows = await report(stream(RECORDS), by="agent")
    assert [row.group for row in rows] == ["a1", "a2", "a3", "a9", None]
    groups = by_group(rows)

    a1 = groups["a1"]  # c1-c4: two answered and bridged (60 s, 30 s), busy, no answer
    assert (a1.dials, a1.connects, a1.connect_rate) == (4, 2, 0.5)
    assert (a1.effective, a1.bridged, a1.talk_ms_total, a1.talk_ms_average) == (
        1,
        2,
        90_000,
        45_000,
    )
    assert (a1.live_answers, a1.abandoned, a1.abandon_rate) == (2, 0, 0.0)
    assert a1.dispositions == {"no_interest": 1, "sale": 1}

    a2 = groups["a2"]  # a machine answer (a connect, not live, no talk) and one 120 s sale
    assert (a2.dials, a2.connects, a2.connect_rate) == (2, 2, 1.0)
    assert (a2.bridged, a2.talk_ms_total, a2.talk_ms_average) == (1, 120_000, 120_000)
    assert a2.live_answers == 1

    a3 = groups["a3"]  # an unclassified answer counts as live
    assert (a3.live_answers, a3.talk_ms_average, a3.effective) == (1, 15_000, 0)

    a9 = groups["a9"]
    assert (a9.dials, a9.connects, a9.connect_rate, a9.talk_ms_average) == (1, 0, 0.0, 0)

    nobody = groups[None]  # the abandoned calls reached no agent
    assert (nobody.dials, nobody.live_answers, nobody.abandoned, nobody.abandon_rate) == (
        2,
        2,
        2,
        1.0,
    )


async def test_report_by_team_counts_agents_without_a_team_in_the_none_row() -> None:
    groups = by_group(await report(stream(RECORDS), by="team", team_of=TEAMS))
    assert list(groups) == ["north", "south", None]
    north = groups["north"]  # a1 and a2: c1-c6
    assert (north.dials, north.connects, north.effective) == (6, 4, 2)
    assert north.connect_rate == pytest.approx(4 / 6)
    # Bridged: c1 60 s, c2 30 s, c6 120 s.
    assert (north.bridged, north.talk_ms_total, north.talk_ms_average) == (3, 210_000, 70_000)
    assert north.dispositions == {"no_interest": 1, "sale": 2}
    nobody = groups[None]  # a9's invalid number and the two abandoned calls
    assert (nobody.dials, nobody.connects, nobody.abandoned, nobody.abandon_rate) == (3, 2, 2, 1.0)


async def test_report_by_campaign() -> None:
    groups = by_group(await report(stream(RECORDS), by="campaign"))
    assert list(groups) == ["c1", "c2"]
    c1 = groups["c1"]  # c1-c4, c7, c8, c9
    assert (c1.dials, c1.connects, c1.live_answers) == (7, 5, 5)
    assert (c1.abandoned, c1.abandon_rate) == (2, 2 / 5)
    assert (c1.bridged, c1.talk_ms_total, c1.talk_ms_average) == (3, 105_000, 35_000)
    c2 = groups["c2"]  # c5 (machine), c6, c10
    assert (c2.dials, c2.connects, c2.live_answers, c2.effective) == (3, 2, 1, 1)


async def test_an_empty_period_has_no_rows() -> None:
    assert await report(stream([]), by="agent") == []


async def test_bad_groupings_are_named() -> None:
    with pytest.raises(ReportError, match="cannot group by 'floor'"):
        await report(stream(RECORDS), by="floor")  # type: ignore[arg-type]
    with pytest.raises(ReportError, match="needs team_of"):
        await report(stream(RECORDS), by="team")


async def test_render_csv_is_excel_ready_with_a_column_per_disposition() -> None:
    data = render_csv(await report(stream(RECORDS), by="agent"))
    assert data.startswith(b"\xef\xbb\xbf")
    assert data.count(b"\r\n") == 6 and b"\n" not in data.replace(b"\r\n", b"")
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert list(rows[0])[-3:] == [
        "disposition:callback",
        "disposition:no_interest",
        "disposition:sale",
    ]
    a1 = rows[0]
    assert a1["group"] == "a1" and a1["connect_rate"] == "0.5000"
    assert a1["talk_s_total"] == "90.000" and a1["talk_s_average"] == "45.000"
    assert a1["disposition:sale"] == "1" and a1["disposition:callback"] == "0"
    assert rows[-1]["group"] == "" and rows[-1]["abandon_rate"] == "1.0000"


async def test_render_json_round_trips_the_rows() -> None:
    rows = await report(stream(RECORDS), by="campaign")
    documents = json.loads(render_json(rows))
    assert [d["group"] for d in documents] == ["c1", "c2"]
    assert documents[0]["abandon_rate"] == pytest.approx(0.4)
    assert documents[0]["talk_ms_total"] == 105_000
    assert documents[1]["dispositions"] == {"sale": 1}


# -- periods ---------------------------------------------------------------------


def utc_ms(year: int, month: int, day: int, hour: int, minute: int) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp() * 1000)


def test_a_shanghai_day_starts_at_local_midnight() -> None:
    start, end = period_bounds(date(2024, 6, 3), "day", SHANGHAI, time(0))
    assert start == utc_ms(2024, 6, 2, 16, 0)  # UTC+8, no daylight saving
    assert end - start == 24 * 3_600_000
    assert period_bounds(date(2024, 6, 3), "day", "Asia/Shanghai") == (start, end)


def test_a_floor_day_can_start_at_another_hour() -> None:
    start, end = period_bounds(date(2024, 6, 3), "day", SHANGHAI, time(6, 0))
    assert start == utc_ms(2024, 6, 2, 22, 0)
    assert end == utc_ms(2024, 6, 3, 22, 0)


def test_shanghai_days_are_24_hours_where_other_zones_change_clocks() -> None:
    for day in (date(2024, 3, 10), date(2024, 3, 31), date(2024, 11, 3)):
        start, end = period_bounds(day, "day", SHANGHAI, time(0))
        assert end - start == 24 * 3_600_000
    new_york = ZoneInfo("America/New_York")
    spring = period_bounds(date(2024, 3, 10), "day", new_york, time(0))
    autumn = period_bounds(date(2024, 11, 3), "day", new_york, time(0))
    assert spring[1] - spring[0] == 23 * 3_600_000
    assert autumn[1] - autumn[0] == 25 * 3_600_000


def test_a_week_starts_on_monday() -> None:
    wednesday = date(2024, 6, 5)
    start, end = period_bounds(wednesday, "week", SHANGHAI, time(0))
    assert start == utc_ms(2024, 6, 2, 16, 0)  # Monday 3 June, 00:00 in Shanghai
    assert end == utc_ms(2024, 6, 9, 16, 0)
    assert period_bounds(date(2024, 6, 3), "week", SHANGHAI) == (start, end)
    assert period_bounds(date(2024, 6, 9), "week", SHANGHAI) == (start, end)  # Sunday


def test_months_across_their_boundaries() -> None:
    february = period_bounds(date(2024, 2, 29), "month", SHANGHAI, time(0))
    assert february == (utc_ms(2024, 1, 31, 16, 0), utc_ms(2024, 2, 29, 16, 0))  # leap year
    january = period_bounds(date(2024, 1, 31), "month", SHANGHAI, time(0))
    assert january[1] == february[0]  # the months tile: no gap, no overlap
    december = period_bounds(date(2024, 12, 31), "month", SHANGHAI, time(0))
    assert december == (utc_ms(2024, 11, 30, 16, 0), utc_ms(2024, 12, 31, 16, 0))
    # 23:59:59.999 on 31 May in Shanghai is May; one millisecond later is June.
    may = period_bounds(date(2024, 5, 1), "month", SHANGHAI)
    june = period_bounds(date(2024, 6, 1), "month", SHANGHAI)
    last_of_may = utc_ms(2024, 5, 31, 15, 59) + 59_999
    assert may[0] <= last_of_may < may[1]
    assert june[0] == last_of_may + 1


def test_bad_periods_and_zones_are_named() -> None:
    with pytest.raises(ReportError, match="unknown period 'year'"):
        period_bounds(date(2024, 6, 3), "year", SHANGHAI)  # type: ignore[arg-type]
    with pytest.raises(ReportError, match="unknown time zone 'Asia/Beijing'"):
        period_bounds(date(2024, 6, 3), "day", "Asia/Beijing")
    with pytest.raises(ReportError, match="without a zone"):
        period_bounds(date(2024, 6, 3), "day", SHANGHAI, time(0, tzinfo=UTC))
