"""The policy file: the seeds' numbers, tier choice by tenure and level, versions, errors."""

from __future__ import annotations

import copy
import tomllib
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from quota.policy import (
    PolicyError,
    add_months,
    completed_months,
    load_policy,
    parse_policy,
)

DEFAULT = Path(__file__).parents[3] / "deploy" / "quota" / "default-policy.toml"
RAW: dict[str, Any] = tomllib.loads(DEFAULT.read_text(encoding="utf-8"))


def with_changes(**top: Any) -> dict[str, Any]:
    raw = copy.deepcopy(RAW)
    raw.update(top)
    return raw


def problems_of(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        parse_policy(raw)
    assert str(caught.value).count("\n  ") == len(caught.value.problems)
    return caught.value.problems


def test_the_shipped_policy_carries_the_seeds_numbers() -> None:
    policy = load_policy(DEFAULT)
    assert policy.active == ("effective_calls",)
    assert policy.calendar.timezone == "Asia/Shanghai"
    assert policy.assessment.weekly_floor == 0.9
    assert policy.assessment.exempt_days_per_month == 2
    assert policy.assessment.exemption_deadline.hour == 9
    assert policy.calendar.report_minutes_before_end == 10
    start = date(2024, 3, 1)
    every = parse_policy(with_changes(active=["effective_calls", "talk_time", "customer_records"]))
    new = every.targets_for("junior", start, date(2024, 3, 10))
    veteran = every.targets_for("senior", start, date(2024, 12, 1))
    assert dict(new.targets) == {
        "effective_calls": 80,
        "follow_up_customers": 15,
        "talk_minutes": 120,
        "customer_records": 40,
    }
    assert dict(veteran.targets) == {
        "effective_calls": 120,
        "follow_up_customers": 25,
        "talk_minutes": 100,
        "customer_records": 80,
    }
    middle = every.targets_for("middle", start, date(2024, 12, 1))
    assert middle.targets["customer_records"] == 60
    mix = parse_policy(with_changes(active="new_and_follow_up"))
    assert dict(mix.targets_for("junior", None, date(2024, 3, 4)).targets) == {
        "effective_calls": 80,
        "new_customer_calls": 40,
        "follow_up_calls": 40,
    }


def test_the_first_fifteen_days_are_the_new_agent_tier() -> None:
    policy = load_policy(DEFAULT)
    start = date(2024, 3, 1)  # day 1
    day_15, day_16 = date(2024, 3, 15), date(2024, 3, 16)
    assert policy.targets_for("junior", start, day_15).tiers == ("new_agent",)
    assert policy.targets_for("junior", start, day_16).tiers == ("standard",)
    assert policy.targets_for("junior", start, start).targets["effective_calls"] == 80
    assert policy.targets_for("junior", start, day_16).targets["effective_calls"] == 120
    assert policy.targets_for("junior", start, date(2024, 2, 29)).targets == {}
    assert policy.targets_for("junior", None, start).tiers == ("standard",)


@pytest.mark.parametrize(
    ("start", "last_new_day", "first_standard_day"),
    [
        (date(2024, 1, 15), date(2024, 7, 14), date(2024, 7, 15)),
        (date(2024, 8, 31), date(2025, 2, 27), date(2025, 2, 28)),  # clamped to February's end
        (date(2023, 9, 30), date(2024, 3, 29), date(2024, 3, 30)),
    ],
)
def test_the_six_month_edge_is_the_same_day_six_calendar_months_later(
    start: date, last_new_day: date, first_standard_day: date
) -> None:
    policy = parse_policy(with_changes(active=["talk_time"]))
    assert add_months(start, 6) == first_standard_day
    assert completed_months(start, last_new_day) == 5
    assert policy.targets_for("junior", start, last_new_day).targets["talk_minutes"] == 120
    assert policy.targets_for("junior", start, first_standard_day).targets["talk_minutes"] == 100


def test_a_new_version_takes_effect_from_its_date_and_leaves_earlier_days_alone() -> None:
    raw = with_changes()
    raised = copy.deepcopy(raw["rule_sets"][0])
    raised["version"] = 2
    raised["effective_from"] = date(2024, 3, 16)
    raised["tiers"][1]["targets"]["effective_calls"] = 130
    raw["rule_sets"].append(raised)
    policy = parse_policy(raw)
    before = policy.targets_for("junior", None, date(2024, 3, 15))
    after = policy.targets_for("junior", None, date(2024, 3, 16))
    assert (before.rules, before.targets["effective_calls"]) == (("effective_calls@1",), 120)
    assert (after.rules, after.targets["effective_calls"]) == (("effective_calls@2",), 130)
    assert policy.targets_for("junior", None, date(2023, 12, 31)).targets == {}


def test_a_policy_with_many_mistakes_lists_every_one() -> None:
    raw = with_changes(active=["effective_calls", "nope"], colour="blue")
    raw["calendar"]["timezone"] = "Asia/Atlantis"
    raw["assessment"]["weekly_floor"] = 1.5
    raw["rule_sets"][0]["tiers"][0]["targets"]["effective_calls"] = -5
    raw["rule_sets"][0]["tiers"][1]["targets"]["happiness"] = 3
    raw["rule_sets"][1]["tiers"][0]["tenure_before_months"] = 7  # overlaps the standard tier
    raw["rule_sets"][3]["tiers"][2]["levels"] = ["senior", "principal"]
    problems = problems_of(raw)
    expected = [
        "colour: unknown key",
        "calendar.timezone: 'Asia/Atlantis' is not an IANA time zone",
        "assessment.weekly_floor: 1.5 is not a share above 0 and at most 1",
        "rule_sets[0].tiers[0].targets.effective_calls: -5 is negative",
        "rule_sets[0].tiers[1].targets.happiness: unknown rule",
        "rule_sets[1] (talk_time@1): tiers 'first_six_months' and 'standard' overlap for level "
        "junior",
        "rule_sets[3].tiers[2].levels: unknown level 'principal'",
        "active: unknown rule set 'nope'",
    ]
    for text in expected:
        assert any(p.startswith(text) for p in problems), (text, problems)
    # junior, middle and senior each overlap in talk_time: one line per level.
    assert sum("overlap for level" in p for p in problems) == 3
    assert len(problems) == len(expected) + 2


def test_gaps_and_tiers_that_match_nothing_are_named() -> None:
    raw = with_changes()
    tiers = raw["rule_sets"][0]["tiers"]
    tiers[1]["tenure_from_days"] = 20  # days 15..19 have no tier
    tiers.append({"name": "nobody", "levels": [], "targets": {}})
    tiers.append({"name": "never", "tenure_from_days": 10, "tenure_before_days": 10})
    problems = problems_of(raw)
    assert "rule_sets[0].tiers[2].levels: an empty list matches no agent" in problems
    assert "rule_sets[0].tiers[3]: tenure from 10 before 10 days matches no agent" in problems
    raw["rule_sets"][0]["tiers"] = tiers[:2]
    gaps = problems_of(raw)
    assert gaps == [
        f"rule_sets[0] (effective_calls@1): no tier for level {level} "
        "from 15 up to 20 completed days"
        for level in ("junior", "middle", "senior")
    ]


def test_versions_that_collide_or_run_backwards_are_refused() -> None:
    raw = with_changes()
    same_day = copy.deepcopy(raw["rule_sets"][0])
    same_day["version"] = 2
    backwards = copy.deepcopy(raw["rule_sets"][0])
    backwards["version"] = 3
    backwards["effective_from"] = date(2023, 6, 1)
    raw["rule_sets"] += [same_day, backwards]
    problems = problems_of(raw)
    assert (
        "rule_sets[0] and rule_sets[4]: versions 1 and 2 of 'effective_calls' both take effect "
        "on 2024-01-01" in problems
    )
    assert any(p.startswith("rule_sets[0] and rule_sets[5]: version 3 of") for p in problems)
    assert any(p.startswith("rule_sets[4] and rule_sets[5]: version 3 of") for p in problems)


def test_two_active_rule_sets_may_not_set_the_same_target() -> None:
    problems = problems_of(with_changes(active=["effective_calls", "new_and_follow_up"]))
    assert problems == [
        "active: rule sets 'effective_calls' and 'new_and_follow_up' both set effective_calls; "
        "a target can come from one active rule set only"
    ]


def test_mixed_tenure_units_and_missing_keys_are_reported() -> None:
    raw = with_changes()
    del raw["active"]
    raw["rule_sets"][0]["tiers"][0]["tenure_before_months"] = 1
    del raw["rule_sets"][2]["effective_from"]
    problems = problems_of(raw)
    assert any(p.startswith("active: required") for p in problems)
    assert any(
        p.startswith("rule_sets[0].tiers[0]: tenure mixes days and months") for p in problems
    )
    assert "rule_sets[2].effective_from: required" in problems


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="file not found"):
        load_policy(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("active = [\n", encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_policy(broken)
    assert caught.value.problems[0].startswith(f"{broken}: not valid TOML")
    bad = tmp_path / "bad.toml"
    bad.write_text(DEFAULT.read_text(encoding="utf-8").replace("= 80,", "= -80,"), "utf-8")
    with pytest.raises(PolicyError) as negative:
        load_policy(bad)
    assert str(bad) in str(negative.value)
    assert any("-80 is negative" in p for p in negative.value.problems)


def test_string_times_and_dates_are_read_like_toml_ones() -> None:
    raw = with_changes()
    raw["calendar"]["day_starts"] = "05:00"
    raw["rule_sets"][0]["effective_from"] = "2024-02-01"
    policy = parse_policy(raw)
    assert policy.calendar.day_starts.hour == 5
    assert policy.rule_sets["effective_calls"][0].effective_from == date(2024, 2, 1)
    raw["calendar"]["day_starts"] = "5 o'clock"
    assert problems_of(raw) == [
        'calendar.day_starts: expected a local time such as 05:00, got "5 o\'clock"'
    ]
