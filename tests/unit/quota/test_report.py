"""The end-of-day report (per agent, team and floor; CSV with BOM and JSON) and progress JSON."""

from __future__ import annotations

import copy
import csv
import io
import json
import tomllib
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cdr.record import CallRecord, Outcome
from quota.counters import AgentProfile, QuotaCounters
from quota.periods import to_ms
from quota.policy import Policy, parse_policy
from quota.progress import QuotaProgress
from quota.report import day_report, report_time, write_report

SHANGHAI = ZoneInfo("Asia/Shanghai")
DEFAULT = Path(__file__).parents[3] / "deploy" / "quota" / "default-policy.toml"
RAW: dict[str, Any] = tomllib.loads(DEFAULT.read_text(encoding="utf-8"))
MONDAY = date(2024, 3, 4)
AGENTS = (
    AgentProfile("a1", team="东区", level="junior"),
    AgentProfile("a2", team="东区", level="senior"),
    AgentProfile("a3", team="西区", level="middle"),
    AgentProfile("idle", team="西区", level="junior"),
)


def policy(day_starts: time = time(0, 0)) -> Policy:
    raw = copy.deepcopy(RAW)
    raw["active"] = ["effective_calls", "talk_time"]
    raw["calendar"]["day_starts"] = day_starts
    return parse_policy(raw)


def record(
    call_id: str, agent: str, minute: int, talk_ms: int, disposition: str | None
) -> CallRecord:
    created = to_ms(datetime.combine(MONDAY, time(10, minute), tzinfo=SHANGHAI))
    return CallRecord(
        call_id=call_id,
        campaign="k1",
        lead_id=f"L-{call_id}",
        agent=agent,
        created_at_ms=created,
        bridged_at_ms=created + 3000,
        talk_ms=talk_ms,
        outcome=Outcome.ANSWERED,
        disposition=disposition,
        effective=talk_ms >= 30_000,
        effective_rule="default@1",
    )


def floor() -> QuotaCounters:
    counters = QuotaCounters(policy(), AGENTS)
    counters.apply(record("c1", "a1", 1, 61_500, "callback"))
    counters.apply(record("c2", "a1", 2, 12_000, "not_interested"))
    counters.apply(record("c3", "a2", 3, 95_250, "sale"))
    counters.apply(record("c4", "a3", 4, 40_000, None))
    return counters


def test_report_time_is_ten_minutes_before_the_day_ends_on_the_floors_clock() -> None:
    assert report_time(policy(), MONDAY) == datetime(2024, 3, 4, 23, 50, tzinfo=SHANGHAI)
    late = report_time(policy(time(5, 0)), MONDAY)
    assert late == datetime(2024, 3, 5, 4, 50, tzinfo=SHANGHAI)


def test_rows_for_every_agent_their_teams_and_the_floor_sum_the_agents() -> None:
    generated = datetime(2024, 3, 4, 23, 50, tzinfo=SHANGHAI)
    report = day_report(floor(), MONDAY, generated)
    agents = {r.agent: r for r in report.of("agent")}
    assert set(agents) == {"a1", "a2", "a3", "idle"}
    assert agents["idle"].counts["dials"] == 0
    assert agents["idle"].shortfall["effective_calls"] == 120  # no call: the whole target
    east = next(r for r in report.of("team") if r.team == "东区")
    assert east.counts["dials"] == agents["a1"].counts["dials"] + agents["a2"].counts["dials"]
    assert east.counts["talk_ms"] == 61_500 + 12_000 + 95_250
    assert east.targets["effective_calls"] == 240
    (total,) = report.of("floor")
    assert total.counts["effective_calls"] == 3
    assert total.counts["talk_minutes"] == (61_500 + 12_000 + 95_250 + 40_000) / 60_000
    assert total.targets["talk_minutes"] == 4 * 100


def test_csv_is_utf8_with_bom_and_reads_back_to_the_same_numbers() -> None:
    report = day_report(floor(), MONDAY, datetime(2024, 3, 4, 23, 50, tzinfo=SHANGHAI))
    data = report.to_csv()
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert [r["scope"] for r in rows].count("agent") == 4
    a1 = next(r for r in rows if r["agent"] == "a1")
    assert a1["team"] == "东区" and a1["day"] == "2024-03-04"
    assert (a1["dials"], a1["effective_calls"], a1["talk_ms"]) == ("2", "1", "73500")
    assert a1["follow_up_customers"] == "1"
    assert float(a1["shortfall_effective_calls"]) == 119
    assert a1["rules"] == "effective_calls@1 talk_time@1"


def test_json_report_carries_each_row_and_write_report_keeps_both_files(tmp_path: Path) -> None:
    report = day_report(floor(), MONDAY, datetime(2024, 3, 4, 23, 50, tzinfo=SHANGHAI))
    body = json.loads(report.to_json())
    assert body["day"] == "2024-03-04" and body["timezone"] == "Asia/Shanghai"
    assert len(body["rows"]) == len(report.rows) == 4 + 2 + 1
    csv_path, json_path = write_report(report, tmp_path / "reports")
    assert csv_path.read_bytes() == report.to_csv()
    assert json.loads(json_path.read_text(encoding="utf-8")) == body
    write_report(report, tmp_path / "reports")  # a rerun replaces, leaves nothing partial
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == [
        "quota-2024-03-04.csv",
        "quota-2024-03-04.json",
    ]


def test_progress_json_has_the_envelope_and_never_a_negative_shortfall() -> None:
    progress = floor().progress("a2", MONDAY)
    body = json.loads(progress.to_json())
    assert (body["schema"], body["kind"], body["agent"], body["team"]) == (
        1,
        "quota_progress",
        "a2",
        "东区",
    )
    assert body["day"] == "2024-03-04"
    assert body["counts"]["talk_ms"] == 95_250
    over = QuotaProgress(
        agent="a9",
        team=None,
        day=MONDAY,
        counts={"effective_calls": 130},
        targets={"effective_calls": 120},
    )
    assert over.shortfall["effective_calls"] == 0 and over.met
    assert over.overall == 130 / 120
    with pytest.raises(ValueError, match=r"targets \['talk_minutes'\] have no count"):
        QuotaProgress(agent="a9", team=None, day=MONDAY, counts={}, targets={"talk_minutes": 1})
