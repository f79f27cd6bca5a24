"""Counting CDRs per agent and day: exact counts, replays, new vs follow-up, targets, weeks."""

from __future__ import annotations

import copy
import json
import tomllib
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cdr.record import CallRecord, Outcome
from dialer.config import AgentConfig
from quota.counters import AgentProfile, QuotaCounters, reconcile
from quota.periods import to_ms
from quota.policy import Policy, QuotaError, parse_policy

SHANGHAI = ZoneInfo("Asia/Shanghai")
DEFAULT = Path(__file__).parents[3] / "deploy" / "quota" / "default-policy.toml"
RAW: dict[str, Any] = tomllib.loads(DEFAULT.read_text(encoding="utf-8"))
MONDAY = date(2024, 3, 4)


def policy(**top: Any) -> Policy:
    raw = copy.deepcopy(RAW)
    raw.update(top)
    return parse_policy(raw)


def small_policy() -> Policy:
    """10 effective calls a day for everyone: week arithmetic with small numbers."""
    raw = copy.deepcopy(RAW)
    raw["active"] = ["small"]
    raw["rule_sets"].append(
        {
            "name": "small",
            "version": 1,
            "effective_from": date(2024, 1, 1),
            "tiers": [{"name": "all", "targets": {"effective_calls": 10}}],
        }
    )
    return parse_policy(raw)


def at(day: date, hour: int = 10, minute: int = 0) -> int:
    return to_ms(datetime.combine(day, time(hour, minute), tzinfo=SHANGHAI))


def record(
    call_id: str,
    *,
    agent: str | None = "a1",
    when: int | None = None,
    lead: str | None = "L1",
    campaign: str = "k1",
    bridged: bool = True,
    effective: bool | None = None,
    talk_ms: int = 60_000,
    disposition: str | None = None,
    attempt_of: str | None = None,
) -> CallRecord:
    created = at(MONDAY) if when is None else when
    return CallRecord(
        call_id=call_id,
        campaign=campaign,
        lead_id=lead,
        agent=agent,
        number="+8613800000001",
        attempt_of=attempt_of,
        created_at_ms=created,
        answered_at_ms=created + 4000 if bridged else None,
        bridged_at_ms=created + 4020 if bridged else None,
        ended_at_ms=created + 4020 + talk_ms,
        talk_ms=talk_ms if bridged else 0,
        outcome=Outcome.ANSWERED if bridged else Outcome.NO_ANSWER,
        disposition=disposition,
        effective=bridged if effective is None else effective,
        effective_rule="default@1",
    )


def test_counts_are_exact_per_agent_and_day() -> None:
    counters = QuotaCounters(policy())
    counters.apply(record("c1", talk_ms=61_234))
    counters.apply(record("c2", talk_ms=29_999, effective=False, lead="L2"))
    counters.apply(record("c3", bridged=False, lead="L3"))
    counters.apply(record("c4", agent="a2", lead="L4"))
    counters.apply(record("c5", when=at(MONDAY + timedelta(days=1)), lead="L5"))
    monday = counters.counts("a1", MONDAY)
    assert (monday["dials"], monday["connects"], monday["effective_calls"]) == (3, 2, 1)
    assert monday["talk_ms"] == 61_234 + 29_999
    assert monday["talk_minutes"] == (61_234 + 29_999) / 60_000
    assert counters.counts("a2", MONDAY)["dials"] == 1
    assert counters.counts("a1", MONDAY + timedelta(days=1))["effective_calls"] == 1


def test_a_replayed_cdr_changes_nothing_and_produces_no_progress() -> None:
    counters = QuotaCounters(policy())
    first = counters.apply(record("c1", disposition="callback"))
    assert [p.counts["effective_calls"] for p in first] == [1]
    before = counters.day_counts()
    assert counters.apply(record("c1", disposition="callback")) == []
    assert counters.apply(record("c1", talk_ms=999_000, disposition="sale")) == []
    assert counters.day_counts() == before
    assert (counters.replays, counters.conflicts) == (2, 1)


def test_a_cdr_without_agent_counts_for_no_one_but_is_remembered() -> None:
    counters = QuotaCounters(policy())
    assert counters.apply(record("c1", agent=None, bridged=False)) == []
    assert counters.day_counts() == {}
    assert counters.apply(record("c1", agent=None, bridged=False)) == []
    assert counters.replays == 1
    assert "c1" in counters.calls()


def test_follow_up_worthy_customers_and_records_are_distinct_customers_per_day() -> None:
    counters = QuotaCounters(policy())
    counters.apply(record("c1", lead="L1", disposition="callback"))
    counters.apply(record("c2", lead="L1", disposition="sale"))  # the same customer again
    counters.apply(record("c3", lead="L2", disposition=" Interested "))
    counters.apply(record("c4", lead="L3", disposition="not_interested"))
    counters.apply(record("c5", lead="L4"))  # no disposition: not recorded
    tuesday = MONDAY + timedelta(days=1)
    counters.apply(record("c6", lead="L1", disposition="callback", when=at(tuesday)))
    monday = counters.counts("a1", MONDAY)
    assert monday["follow_up_customers"] == 2  # L1, L2
    assert monday["customer_records"] == 3  # L1, L2, L3
    assert counters.counts("a1", tuesday)["follow_up_customers"] == 1


def test_the_first_connected_contact_is_new_and_later_ones_are_follow_ups() -> None:
    counters = QuotaCounters(policy())
    t = at(MONDAY, 9)
    counters.apply(record("busy", lead="L1", bridged=False, when=t))  # never reached
    counters.apply(record("first", lead="L1", when=t + 60_000))
    counters.apply(record("second", lead="L1", when=t + 3_600_000))
    counters.apply(record("other-campaign", lead="L1", campaign="k2", when=t + 7_200_000))
    counts = counters.counts("a1", MONDAY)
    assert (counts["new_customer_calls"], counts["follow_up_calls"]) == (2, 1)


def test_a_transfer_continues_one_contact_and_is_not_a_follow_up() -> None:
    counters = QuotaCounters(policy())
    t = at(MONDAY, 9)
    counters.apply(record("leg1", agent="a1", lead="L1", when=t))
    counters.apply(record("leg2", agent="a2", lead="L1", when=t + 90_000, attempt_of="leg1"))
    assert counters.counts("a2", MONDAY)["new_customer_calls"] == 1
    assert counters.counts("a2", MONDAY)["follow_up_calls"] == 0
    counters.apply(record("next-day", agent="a2", lead="L1", when=t + 86_400_000))
    assert counters.counts("a2", MONDAY + timedelta(days=1))["follow_up_calls"] == 1


def test_an_earlier_call_arriving_late_reclassifies_the_later_one_and_republishes_it() -> None:
    counters = QuotaCounters(policy())
    tuesday = MONDAY + timedelta(days=1)
    counters.apply(record("later", agent="a2", lead="L1", when=at(tuesday)))
    assert counters.counts("a2", tuesday)["new_customer_calls"] == 1
    published = counters.apply(record("earlier", agent="a1", lead="L1", when=at(MONDAY)))
    assert [(p.agent, p.day) for p in published] == [("a1", MONDAY), ("a2", tuesday)]
    assert published[1].counts["follow_up_calls"] == 1
    assert published[1].counts["new_customer_calls"] == 0
    assert counters.counts("a1", MONDAY)["new_customer_calls"] == 1


def test_progress_has_the_tier_targets_shortfall_and_attainment_of_the_day() -> None:
    agent = AgentConfig(
        id="a1", extension="1001", team="东区", level="junior", start_date=date(2024, 3, 1)
    )
    counters = QuotaCounters(policy(), [agent])
    for i in range(30):
        counters.apply(record(f"c{i}", lead=f"L{i}", when=at(date(2024, 3, 15))))
        counters.apply(record(f"d{i}", lead=f"M{i}", when=at(date(2024, 3, 16))))
    day_15 = counters.progress("a1", date(2024, 3, 15))
    day_16 = counters.progress("a1", date(2024, 3, 16))
    assert day_15.team == "东区"
    assert (day_15.tiers, day_16.tiers) == (("new_agent",), ("standard",))
    assert day_15.shortfall["effective_calls"] == 80 - 30
    assert day_15.attainment["effective_calls"] == 30 / 80
    # 2024-03-16 is a Saturday: not a work day, so no target, and its calls still count.
    assert day_16.targets["effective_calls"] == 0
    assert day_16.counts["effective_calls"] == 30


def test_a_rule_change_mid_month_applies_from_its_date_only() -> None:
    raw = copy.deepcopy(RAW)
    raised = copy.deepcopy(raw["rule_sets"][0])
    raised.update(version=2, effective_from=date(2024, 3, 13))
    raised["tiers"][1]["targets"]["effective_calls"] = 130
    raw["rule_sets"].append(raised)
    counters = QuotaCounters(parse_policy(raw))
    tuesday, wednesday = date(2024, 3, 12), date(2024, 3, 13)
    assert counters.progress("a1", tuesday).targets["effective_calls"] == 120
    assert counters.progress("a1", tuesday).rules == ("effective_calls@1",)
    assert counters.progress("a1", wednesday).targets["effective_calls"] == 130
    week = counters.week_attainment("a1", tuesday)
    assert week.targets["effective_calls"] == 120 * 2 + 130 * 3


def test_pro_rating_scales_the_day_and_the_week_target() -> None:
    counters = QuotaCounters(small_policy())
    progress = counters.set_availability("a1", MONDAY, 0.75)  # signed in two hours late
    assert progress.targets["effective_calls"] == 7.5
    assert progress.available_fraction == 0.75
    assert counters.week_attainment("a1", MONDAY).targets["effective_calls"] == 7.5 + 4 * 10
    with pytest.raises(ValueError, match=r"available fraction 1\.5 is not a share between 0 and 1"):
        counters.set_availability("a1", MONDAY, 1.5)


def test_an_exempt_day_leaves_the_week_target_and_its_calls_still_count() -> None:
    counters = QuotaCounters(small_policy())
    tuesday = MONDAY + timedelta(days=1)
    asked = datetime.combine(tuesday, time(8, 30), tzinfo=SHANGHAI)
    progress = counters.request_exemption("a1", tuesday, asked, approved_by="lead-1")
    assert progress.exempt and progress.targets["effective_calls"] == 0
    for i in range(36):
        counters.apply(record(f"c{i}", lead=f"L{i}", when=at(MONDAY + timedelta(days=i % 3))))
    week = counters.week_attainment("a1", MONDAY)
    assert week.exempt_days == (tuesday,)
    assert week.targets["effective_calls"] == 40
    assert week.counts["effective_calls"] == 36
    assert week.overall == 0.9 and week.passed


def test_the_weekly_floor_is_judged_on_the_week_total() -> None:
    counters = QuotaCounters(small_policy())
    # 44 calls, all on Monday: the day is far over, the week is under 90 % of 50.
    for i in range(44):
        counters.apply(record(f"c{i}", lead=f"L{i}"))
    week = counters.week_attainment("a1", MONDAY)
    assert week.counts["effective_calls"] == 44 and not week.passed
    assert week.shortfall["effective_calls"] == 6
    counters.apply(record("c44", lead="L44", when=at(MONDAY + timedelta(days=4))))
    assert counters.week_attainment("a1", MONDAY).passed
    assert counters.week_attainment("a1", MONDAY, through=MONDAY).targets["effective_calls"] == 10


def test_a_week_across_a_month_boundary_sums_both_months_and_tiers() -> None:
    agent = AgentProfile("a1", start_date=date(2024, 4, 16))  # day 15 is Tuesday 04-30
    counters = QuotaCounters(policy(), [agent])
    counters.apply(record("april", lead="L1", when=at(date(2024, 4, 30))))
    counters.apply(record("may", lead="L2", when=at(date(2024, 5, 2))))
    week = counters.week_attainment("a1", date(2024, 5, 2))
    assert week.week == date(2024, 4, 29)
    assert week.counts["effective_calls"] == 2
    assert week.targets["effective_calls"] == 80 * 2 + 120 * 3
    assert counters.month_totals("a1", "2024-04")["effective_calls"] == 1
    assert counters.month_totals("a1", "2024-05")["effective_calls"] == 1


def test_the_day_boundary_decides_which_day_a_call_counts_to() -> None:
    raw = copy.deepcopy(RAW)
    raw["calendar"]["day_starts"] = time(5, 0)
    counters = QuotaCounters(parse_policy(raw))
    tuesday = MONDAY + timedelta(days=1)
    before = counters.apply(record("c1", lead="L1", when=at(tuesday, 4, 59)))
    after = counters.apply(record("c2", lead="L2", when=at(tuesday, 5, 0)))
    assert (before[0].day, after[0].day) == (MONDAY, tuesday)


def test_state_round_trip_through_json_restores_counts_inputs_and_replay_memory() -> None:
    counters = QuotaCounters(small_policy())
    counters.apply(record("c1", lead="L1", disposition="callback"))
    counters.apply(record("c2", lead="L1", when=at(MONDAY, 15)))
    counters.apply(record("c3", agent=None, bridged=False))
    counters.set_availability("a1", MONDAY, 0.5)
    tuesday = MONDAY + timedelta(days=1)
    counters.request_exemption(
        "a1", tuesday, datetime.combine(MONDAY, time(18), tzinfo=SHANGHAI), "lead-1", "培训 "
    )
    restored = QuotaCounters.from_state(small_policy(), json.loads(json.dumps(counters.state())))
    [exemption] = restored.exemptions
    assert (exemption.approved_by, exemption.reason) == ("lead-1", "培训")
    # A state written before reasons were kept still loads, with no reason.
    older = counters.state()
    older["exemptions"] = [
        {k: v for k, v in e.items() if k != "reason"} for e in older["exemptions"]
    ]
    [old] = QuotaCounters.from_state(small_policy(), older).exemptions
    assert old.reason == "" and old.day == tuesday
    assert restored.day_counts() == counters.day_counts()
    assert restored.progress("a1", MONDAY) == counters.progress("a1", MONDAY)
    assert restored.progress("a1", tuesday).exempt
    assert restored.apply(record("c1", lead="L1")) == []
    assert restored.apply(record("c3", agent=None, bridged=False)) == []
    with pytest.raises(QuotaError, match="schema"):
        QuotaCounters.from_state(small_policy(), {"schema": 99})
    with pytest.raises(QuotaError, match="malformed"):
        QuotaCounters.from_state(small_policy(), {**counters.state(), "calls": [["c9"]]})
    bad_fraction = {**counters.state(), "availability": [["a1", "2024-03-04", 7]]}
    with pytest.raises(QuotaError, match="available fraction 7 is not a share"):
        QuotaCounters.from_state(small_policy(), bad_fraction)


def test_reconcile_finds_nothing_for_the_same_cdrs_and_names_each_difference() -> None:
    records = [record(f"c{i}", lead=f"L{i % 3}", when=at(MONDAY, 9 + i)) for i in range(6)]
    counters = QuotaCounters(policy())
    for item in records:
        counters.apply(item)
    assert reconcile(counters, reversed(records)) == []
    differences = reconcile(counters, records[:-1])
    assert {(d.agent, d.day, d.what, d.live, d.recomputed) for d in differences} == {
        ("a1", MONDAY, "dials", 6, 5),
        ("a1", MONDAY, "connects", 6, 5),
        ("a1", MONDAY, "effective_calls", 6, 5),
        ("a1", MONDAY, "talk_ms", 360_000, 300_000),
        ("a1", MONDAY, "follow_up_calls", 3, 2),
        ("a1", MONDAY, "call c5", 1, 0),
    }
    assert reconcile(counters, records[:-1], days=[MONDAY + timedelta(days=1)]) == []


def test_an_agent_level_the_policy_does_not_know_is_refused() -> None:
    with pytest.raises(QuotaError, match="level 'expert' is not one of the policy's levels"):
        QuotaCounters(policy(), [AgentProfile("a1", level="expert")])
