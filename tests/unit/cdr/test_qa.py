"""QA's pure parts: scorecards from TOML, scoring a call, sampling calls to review."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdr.qa import AnswersError, QaError, Scorecard, ScorecardError, sample, score
from cdr.record import CallRecord, Outcome

ROOT = Path(__file__).resolve().parents[3]
STANDARD = ROOT / "deploy" / "qa" / "standard-script.toml"

CARD = Scorecard.from_toml(
    """
name = "t"
version = 3
[[items]]
key = "greeting"
label = "开场问候"
weight = 1
max_points = 5
[[items]]
key = "pitch"
label = "产品介绍"
weight = 3
max_points = 10
[[items]]
key = "honest"
label = "合规"
weight = 1
max_points = 1
fatal = true
"""
)


# -- scorecards ------------------------------------------------------------------


def test_the_shipped_scorecard_loads_with_the_script_items() -> None:
    card = Scorecard.load(STANDARD)
    assert card.ref == "standard-script@1"
    assert [item.key for item in card.items] == [
        "greeting",
        "self_introduction",
        "needs_discovery",
        "product_explanation",
        "compliance_no_false_promises",
        "closing",
    ]
    assert [item.key for item in card.items if item.fatal] == ["compliance_no_false_promises"]
    assert card.item("greeting").label == "开场问候"
    # Every label is Chinese: what the floor's reviewers read.
    assert all(any("\u4e00" <= c <= "\u9fff" for c in item.label) for item in card.items)


def test_every_problem_of_a_scorecard_is_named() -> None:
    text = """
name = "Bad Name"
version = 0
colour = "red"
[[items]]
key = "greeting"
label = ""
weight = 0
max_points = -1
fatal = "yes"
shade = 1
[[items]]
key = "greeting"
label = "again"
weight = 1
max_points = 1
"""
    with pytest.raises(ScorecardError) as caught:
        Scorecard.from_toml(text, "cards/bad.toml")
    message = str(caught.value)
    for expected in (
        "cards/bad.toml: unknown key 'colour'",
        "cards/bad.toml.name: 'Bad Name'",
        "cards/bad.toml.version: 0 is not a whole number ≥ 1",
        "cards/bad.toml.items[0]: unknown key 'shade'",
        "cards/bad.toml.items[0].label: ''",
        "cards/bad.toml.items[0].weight: 0 is not a number > 0",
        "cards/bad.toml.items[0].max_points: -1 is not a number > 0",
        "cards/bad.toml.items[0].fatal: 'yes' is not true/false",
    ):
        assert expected in message
    # The second item is fine on its own, and not a duplicate of a refused one.
    assert "items[1]" not in message


def test_duplicate_keys_and_an_empty_card_are_refused() -> None:
    one = '[[items]]\nkey = "a"\nlabel = "甲"\nweight = 1\nmax_points = 1\n'
    with pytest.raises(ScorecardError, match=r"items\[1\]\.key: 'a' is used twice"):
        Scorecard.from_toml(f'name = "c"\nversion = 1\n{one}{one}')
    with pytest.raises(ScorecardError, match="at least one"):
        Scorecard.from_toml('name = "c"\nversion = 1\nitems = []')
    with pytest.raises(ScorecardError, match="at least one"):
        Scorecard.from_toml('name = "c"\nversion = 1\n')


def test_invalid_toml_and_unreadable_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ScorecardError, match=r"x\.toml: not valid TOML"):
        Scorecard.from_toml("name = ", "x.toml")
    missing = tmp_path / "nope.toml"
    with pytest.raises(ScorecardError, match=r"nope\.toml: cannot be read"):
        Scorecard.load(missing)


# -- scoring ---------------------------------------------------------------------


def test_the_total_is_the_weighted_share_of_points() -> None:
    result = score(CARD, {"greeting": 5, "pitch": 5, "honest": 1})
    # weights 1, 3, 1: (1 × 5/5 + 3 × 5/10 + 1 × 1/1) / 5 = 3.5 / 5
    assert result.total == 70.0
    assert not result.failed
    assert [item.key for item in result.items] == ["greeting", "pitch", "honest"]
    assert result.items[1].points == 5.0 and result.items[1].max_points == 10.0
    assert score(CARD, {"greeting": 5, "pitch": 10, "honest": 1}).total == 100.0
    assert score(CARD, {"greeting": 0, "pitch": 0, "honest": 1}).total == 20.0


def test_a_failed_fatal_item_scores_the_call_zero() -> None:
    result = score(CARD, {"greeting": 5, "pitch": 10, "honest": 0})
    assert result.total == 0.0
    assert result.failed
    assert [item.key for item in result.items if item.failed_fatal] == ["honest"]


def test_bad_answers_name_every_problem() -> None:
    with pytest.raises(AnswersError) as caught:
        score(CARD, {"greeting": 6, "pitch": -1, "smile": 3, "honest": True})
    message = str(caught.value)
    assert "answer for unknown item 'smile' (scorecard t@3)" in message
    assert "item 'greeting': 6 points is outside 0–5" in message
    assert "item 'pitch': -1 points is outside 0–10" in message
    assert "item 'honest': True is not a number of points" in message
    with pytest.raises(AnswersError, match=r"item 'pitch' \(产品介绍\) has no answer"):
        score(CARD, {"greeting": 1, "honest": 1})
    with pytest.raises(AnswersError, match="nan is not a number"):
        score(CARD, {"greeting": math.nan, "pitch": 1, "honest": 1})


@given(
    st.floats(0, 5),
    st.floats(0, 10),
)
def test_a_passed_call_scores_between_0_and_100(greeting: float, pitch: float) -> None:
    result = score(CARD, {"greeting": greeting, "pitch": pitch, "honest": 1})
    assert 20.0 <= result.total <= 100.0
    assert not result.failed


# -- sampling --------------------------------------------------------------------

DAY0 = int(datetime(2024, 6, 3, 2, 0, tzinfo=UTC).timestamp() * 1000)  # 10:00 in Shanghai
HOUR = 3_600_000


def call(
    n: int,
    agent: str | None,
    at_ms: int,
    *,
    outcome: Outcome = Outcome.ANSWERED,
    bridged: bool = True,
) -> CallRecord:
    return CallRecord(
        call_id=f"c{n:05d}",
        agent=agent,
        created_at_ms=at_ms,
        answered_at_ms=at_ms + 5_000 if outcome is Outcome.ANSWERED else None,
        bridged_at_ms=at_ms + 5_100 if bridged else None,
        ended_at_ms=at_ms + 60_000,
        outcome=outcome,
    )


def test_sample_takes_the_rate_or_the_minimum_per_agent_day() -> None:
    records = [
        *(call(n, "a1", DAY0 + n * 1000) for n in range(40)),  # 10 % of 40: 4
        *(call(100 + n, "a2", DAY0 + n * 1000) for n in range(12)),  # 10 %: 2, minimum 3
        *(call(200 + n, "a3", DAY0 + n * 1000) for n in range(2)),  # fewer than the minimum
        *(call(300 + n, "a1", DAY0 + 24 * HOUR + n * 1000) for n in range(5)),  # a1's next day
    ]
    picked = sample(records, rate=0.1, minimum=3, seed=7)
    counts = Counter(
        (next(r.agent for r in records if r.call_id == c), int(c[1:]) >= 300) for c in picked
    )
    assert counts == {("a1", False): 4, ("a2", False): 3, ("a3", False): 2, ("a1", True): 3}
    assert len(set(picked)) == len(picked)


def test_only_answered_and_bridged_calls_with_an_agent_are_sampled() -> None:
    records = [
        call(1, "a1", DAY0),
        call(2, "a1", DAY0, bridged=False),  # answered, abandoned before an agent
        call(3, "a1", DAY0, outcome=Outcome.BUSY, bridged=False),
        call(4, None, DAY0),
        call(5, "a1", DAY0, outcome=Outcome.TRANSFERRED),
    ]
    assert sample(records, rate=1.0, minimum=10, seed=1) == ["c00001"]


def test_the_day_is_the_floor_s_local_day() -> None:
    # 23:30 and 00:30 in Shanghai are two days there, one UTC day (15:30, 16:30 UTC).
    late = int(datetime(2024, 6, 3, 15, 30, tzinfo=UTC).timestamp() * 1000)
    records = [call(1, "a1", late), call(2, "a1", late + HOUR)]
    assert len(sample(records, rate=0.0, minimum=1, seed=0)) == 1
    shanghai = sample(records, rate=0.0, minimum=1, seed=0, tz=ZoneInfo("Asia/Shanghai"))
    assert shanghai == ["c00001", "c00002"]


def test_the_same_seed_picks_the_same_calls_whatever_the_order() -> None:
    records = [call(n, f"a{n % 3}", DAY0 + n) for n in range(300)]
    first = sample(records, rate=0.05, minimum=2, seed=42)
    assert sample(list(reversed(records)), rate=0.05, minimum=2, seed=42) == first
    others = {tuple(sample(records, rate=0.05, minimum=2, seed=s)) for s in range(5)}
    assert len(others) > 1  # the seed matters


def test_bad_sampling_arguments_are_named() -> None:
    with pytest.raises(QaError) as caught:
        sample([], rate=1.5, minimum=-1, seed=True)
    message = str(caught.value)
    assert "rate 1.5" in message and "minimum -1" in message and "seed True" in message


calls_strategy = st.lists(
    st.tuples(st.sampled_from(["a1", "a2", "a3"]), st.integers(0, 3), st.booleans()),
    max_size=80,
)


@settings(max_examples=60, deadline=None)
@given(calls_strategy, st.floats(0, 1), st.integers(0, 6), st.integers(0, 2**32))
def test_sample_is_a_subset_with_at_least_the_minimum_per_agent_day(
    calls: list[tuple[str, int, bool]], rate: float, minimum: int, seed: int
) -> None:
    records = [
        call(n, agent, DAY0 + day * 24 * HOUR + n, bridged=bridged)
        for n, (agent, day, bridged) in enumerate(calls)
    ]
    picked = sample(records, rate=rate, minimum=minimum, seed=seed)
    eligible = {r.call_id: r for r in records if r.bridged_at_ms is not None}
    assert set(picked) <= set(eligible)
    assert len(set(picked)) == len(picked)
    available: Counter[tuple[str | None, int]] = Counter()
    taken: defaultdict[tuple[str | None, int], int] = defaultdict(int)
    for record in eligible.values():
        available[record.agent, (record.created_at_ms - DAY0) // (24 * HOUR)] += 1
    for call_id in picked:
        record = eligible[call_id]
        taken[record.agent, (record.created_at_ms - DAY0) // (24 * HOUR)] += 1
    for group, n in available.items():
        assert taken[group] >= min(minimum, n)
        assert taken[group] >= math.floor(rate * n)
        assert taken[group] <= max(minimum, math.ceil(rate * n))
    assert sample(records, rate=rate, minimum=minimum, seed=seed) == picked
