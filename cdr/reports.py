"""Activity reports per agent, team or campaign (分组/座席电销活动统计), and their periods.

A report folds CDRs, as they stream from the store, into one row per group.
The definitions, so that every board and export agrees:

- dials: call attempts (every CDR in the period);
- connects (接通): attempts the customer's side answered (person or machine);
  connect rate = connects / dials;
- effective: CDRs judged effective by the versioned rule (never re-judged here);
- talk: summed over bridged calls, and averaged over them (a connect the
  agent never heard adds no talk and does not dilute the average);
- abandoned: live answers that reached no agent; abandon rate = abandoned /
  live answers (answers not classified as a machine), the pacing cap's basis;
- dispositions: how many calls ended with each disposition code.

Periods are local: a day starts at the floor's ``day_starts`` in its zone, a
week on Monday, a month on the 1st; bounds are UTC milliseconds, the end
exclusive, as the store's ``search`` takes them.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import AsyncIterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .record import AnsweredBy, CallRecord

GroupBy = Literal["agent", "team", "campaign"]
Period = Literal["day", "week", "month"]

_GROUPINGS = ("agent", "team", "campaign")
_PERIODS = ("day", "week", "month")


class ReportError(ValueError):
    """A report asked for with arguments that cannot work; the message names them."""


@dataclass(frozen=True, slots=True)
class ReportRow:
    group: str | None  # None: no agent / no team / no campaign
    dials: int
    connects: int
    connect_rate: float  # 0–1
    effective: int
    bridged: int
    talk_ms_total: int
    talk_ms_average: int  # over bridged calls, rounded to the millisecond
    live_answers: int
    abandoned: int
    abandon_rate: float  # abandoned / live answers, 0–1
    dispositions: Mapping[str, int] = field(default_factory=dict)


class _Tally:
    __slots__ = (
        "abandoned",
        "bridged",
        "connects",
        "dials",
        "dispositions",
        "effective",
        "live_answers",
        "talk_ms",
    )

    def __init__(self) -> None:
        self.dials = 0
        self.connects = 0
        self.effective = 0
        self.bridged = 0
        self.talk_ms = 0
        self.live_answers = 0
        self.abandoned = 0
        self.dispositions: Counter[str] = Counter()

    def add(self, record: CallRecord) -> None:
        self.dials += 1
        if record.answered_at_ms is not None:
            self.connects += 1
            if record.answered_by is not AnsweredBy.MACHINE:
                self.live_answers += 1
        if record.effective:
            self.effective += 1
        if record.bridged_at_ms is not None:
            self.bridged += 1
            self.talk_ms += record.talk_ms
        if record.abandoned:
            self.abandoned += 1
        if record.disposition is not None:
            self.dispositions[record.disposition] += 1

    def row(self, group: str | None) -> ReportRow:
        return ReportRow(
            group=group,
            dials=self.dials,
            connects=self.connects,
            connect_rate=self.connects / self.dials if self.dials else 0.0,
            effective=self.effective,
            bridged=self.bridged,
            talk_ms_total=self.talk_ms,
            talk_ms_average=round(self.talk_ms / self.bridged) if self.bridged else 0,
            live_answers=self.live_answers,
            abandoned=self.abandoned,
            abandon_rate=self.abandoned / self.live_answers if self.live_answers else 0.0,
            dispositions=dict(sorted(self.dispositions.items())),
        )


def _group_of(record: CallRecord, by: str, team_of: Mapping[str, str] | None) -> str | None:
    if by == "agent":
        return record.agent
    if by == "campaign":
        return record.campaign
    assert team_of is not None
    return team_of.get(record.agent) if record.agent is not None else None


async def report(
    records: AsyncIterable[CallRecord],
    *,
    by: GroupBy,
    team_of: Mapping[str, str] | None = None,
) -> list[ReportRow]:
    """One row per group, ordered by group name, the group-less row (None) last.

    ``by="team"`` needs ``team_of`` (agent → team); an agent missing from it
    is counted in the None row rather than dropped.
    """
    if by not in _GROUPINGS:
        raise ReportError(f"cannot group by {by!r}: choose one of {', '.join(_GROUPINGS)}")
    if by == "team" and team_of is None:
        raise ReportError("a report by team needs team_of, the team of each agent")
    tallies: dict[str | None, _Tally] = {}
    async for record in records:
        group = _group_of(record, by, team_of)
        tally = tallies.get(group)
        if tally is None:
            tally = tallies[group] = _Tally()
        tally.add(record)
    ordered = sorted(tallies, key=lambda group: (group is None, group or ""))
    return [tallies[group].row(group) for group in ordered]


def _zone(tz: ZoneInfo | str) -> ZoneInfo:
    if isinstance(tz, ZoneInfo):
        return tz
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ReportError(f"unknown time zone {tz!r}: use an IANA name like 'Asia/Shanghai'") from (
            exc
        )


def period_bounds(
    day: date, period: Period, tz: ZoneInfo | str, day_starts: time = time(0)
) -> tuple[int, int]:
    """The period holding ``day`` as UTC milliseconds ``[start, end)``.

    A day runs from ``day_starts`` local time to the same time the next day
    (23 or 25 hours across a daylight-saving change); a week starts on Monday;
    a month on the 1st.
    """
    if period not in _PERIODS:
        raise ReportError(f"unknown period {period!r}: choose one of {', '.join(_PERIODS)}")
    if day_starts.tzinfo is not None:
        raise ReportError(
            f"day_starts {day_starts.isoformat()} must be a local wall-clock time without a zone"
        )
    zone = _zone(tz)
    if isinstance(day, datetime):
        day = day.date()
    if period == "day":
        first, after = day, day + timedelta(days=1)
    elif period == "week":
        first = day - timedelta(days=day.weekday())
        after = first + timedelta(days=7)
    else:
        first = day.replace(day=1)
        after = (first + timedelta(days=32)).replace(day=1)

    def at(local_day: date) -> int:
        moment = datetime.combine(local_day, day_starts, tzinfo=zone)
        return round(moment.timestamp() * 1000)

    return at(first), at(after)


def _dispositions(rows: Sequence[ReportRow]) -> list[str]:
    return sorted({code for row in rows for code in row.dispositions})


_CSV_COLUMNS = (
    "group",
    "dials",
    "connects",
    "connect_rate",
    "effective",
    "bridged",
    "talk_s_total",
    "talk_s_average",
    "live_answers",
    "abandoned",
    "abandon_rate",
)


def _seconds(ms: int) -> str:
    whole, part = divmod(ms, 1000)
    return f"{whole}.{part:03d}"


def render_csv(rows: Sequence[ReportRow]) -> bytes:
    """The report as Excel-ready CSV: UTF-8 with BOM, CRLF, one column per disposition."""
    codes = _dispositions(rows)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow([*_CSV_COLUMNS, *(f"disposition:{code}" for code in codes)])
    for row in rows:
        writer.writerow(
            [
                row.group if row.group is not None else "",
                row.dials,
                row.connects,
                f"{row.connect_rate:.4f}",
                row.effective,
                row.bridged,
                _seconds(row.talk_ms_total),
                _seconds(row.talk_ms_average),
                row.live_answers,
                row.abandoned,
                f"{row.abandon_rate:.4f}",
                *(row.dispositions.get(code, 0) for code in codes),
            ]
        )
    return ("\ufeff" + text.getvalue()).encode("utf-8")


def render_json(rows: Sequence[ReportRow]) -> bytes:
    """The report as a UTF-8 JSON array of objects, durations in milliseconds."""
    documents = [
        {
            "group": row.group,
            "dials": row.dials,
            "connects": row.connects,
            "connect_rate": row.connect_rate,
            "effective": row.effective,
            "bridged": row.bridged,
            "talk_ms_total": row.talk_ms_total,
            "talk_ms_average": row.talk_ms_average,
            "live_answers": row.live_answers,
            "abandoned": row.abandoned,
            "abandon_rate": row.abandon_rate,
            "dispositions": dict(row.dispositions),
        }
        for row in rows
    ]
    return json.dumps(documents, ensure_ascii=False, indent=2).encode("utf-8")
