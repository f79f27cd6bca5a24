from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialer.campaigns.hopper import (
    AgentDayCounts,
    CampaignHours,
    Hopper,
    LeadCandidate,
    MixTarget,
)
from dialer.campaigns.recycling import DIALABLE_STATES, Callback, LeadState
from dialer.campaigns.windows import CallingWindows, CampaignError

# Monday 2024-06-03 03:00 UTC: 11:00 in Shanghai (open), 05:00 in Berlin (closed).
NOW = datetime(2024, 6, 3, 3, 0, tzinfo=UTC)
SEEDS = CallingWindows.parse({"mon-fri": ["10:30-12:00", "15:30-17:30"], "sat": ["10:30-12:00"]})
SEED_MIX = MixTarget()  # 40 new + 40 follow-up
NO_CALLS_YET = AgentDayCounts()
HOURS = {"c1": CampaignHours(SEEDS, "Asia/Shanghai"), "eu": CampaignHours(SEEDS, "Europe/Berlin")}


def lead(lead_id: str, **changes: Any) -> LeadCandidate:
    base = LeadCandidate(
        lead_id=lead_id,
        phone="+8613800000000",
        timezone=None,
        priority=0,
        state=LeadState.QUEUED,
        next_attempt_at=NOW - timedelta(hours=1),
        attempts=0,
        is_follow_up=False,
        callback=None,
        campaign_id="c1",
    )
    return dataclasses.replace(base, **changes)


def callback(
    lead_id: str, agent_id: str | None, at: datetime = NOW, **changes: Any
) -> LeadCandidate:
    return lead(
        lead_id, state=LeadState.CALLBACK, callback=Callback(lead_id, at, agent_id), **changes
    )


def pick(
    candidates: list[LeadCandidate],
    *,
    limit: int = 10,
    mix: MixTarget = SEED_MIX,
    counts: AgentDayCounts = NO_CALLS_YET,
    now: datetime = NOW,
) -> list[str]:
    picked = Hopper.pick(
        candidates, now, agent_id="a1", windows=HOURS, mix=mix, agent_counts=counts, limit=limit
    )
    return [c.lead_id for c in picked]


def test_callbacks_for_this_agent_then_for_anyone_then_the_rest() -> None:
    candidates = [
        lead("n1", priority=9),
        callback("any1", None, NOW - timedelta(minutes=30)),
        callback("mine2", "a1", NOW - timedelta(minutes=1)),
        callback("mine1", "a1", NOW - timedelta(minutes=5)),
        callback("theirs", "a2", NOW - timedelta(hours=1)),
    ]
    assert pick(candidates) == ["mine1", "mine2", "any1", "n1"]


def test_callback_not_yet_due_waits() -> None:
    assert pick([callback("later", "a1", NOW + timedelta(seconds=1)), lead("n1")]) == ["n1"]


def test_callback_is_due_at_its_time_exactly() -> None:
    assert pick([callback("now", None, NOW)]) == ["now"]


def test_not_due_leads_are_skipped_and_never_scheduled_leads_are_due() -> None:
    candidates = [
        lead("future", next_attempt_at=NOW + timedelta(minutes=1)),
        lead("due", next_attempt_at=NOW),
        lead("fresh", state=LeadState.NEW, next_attempt_at=None),
    ]
    assert pick(candidates) == ["fresh", "due"]


@pytest.mark.parametrize("state", sorted(set(LeadState) - DIALABLE_STATES - {LeadState.CALLBACK}))
def test_final_and_busy_states_are_never_picked(state: LeadState) -> None:
    assert pick([lead("x", state=state)]) == []


def test_closed_window_in_the_leads_zone_is_skipped() -> None:
    candidates = [
        lead("berlin", timezone="Europe/Berlin"),
        lead("shanghai", timezone="Asia/Shanghai"),
        lead("default"),  # campaign c1 dials in Shanghai
        lead("eu-default", campaign_id="eu"),
        lead("eu-in-shanghai", campaign_id="eu", timezone="Asia/Shanghai"),
    ]
    assert sorted(pick(candidates)) == ["default", "eu-in-shanghai", "shanghai"]


def test_callback_outside_the_window_waits_too() -> None:
    assert pick([callback("cb", "a1", timezone="America/New_York")]) == []


def test_priority_then_oldest_then_lead_id() -> None:
    candidates = [
        lead("b", next_attempt_at=NOW - timedelta(hours=2)),
        lead("a", next_attempt_at=NOW - timedelta(hours=2)),
        lead("old", next_attempt_at=NOW - timedelta(days=1)),
        lead("vip", priority=5),
        lead("never", next_attempt_at=None, state=LeadState.NEW),
    ]
    assert pick(candidates) == ["vip", "never", "old", "a", "b"]


def test_mix_follows_the_category_further_behind() -> None:
    candidates = [lead(f"n{i}") for i in range(5)] + [
        lead(f"f{i}", is_follow_up=True, priority=9) for i in range(5)
    ]
    # 30 of 40 follow-ups done but only 10 of 40 new: new calls first despite priority.
    picked = pick(candidates, limit=3, counts=AgentDayCounts(new=10, follow_up=30))
    assert picked == ["n0", "n1", "n2"]


def test_mix_is_proportional_to_unequal_targets() -> None:
    candidates = [lead(f"n{i:02d}") for i in range(50)] + [
        lead(f"f{i:02d}", is_follow_up=True) for i in range(50)
    ]
    picked = pick(candidates, limit=40, mix=MixTarget(new=20, follow_up=60))
    assert sum(p.startswith("n") for p in picked) == 10
    assert picked[:4] == ["f00", "n00", "f01", "f02"]


def test_mix_falls_back_to_the_other_category_when_one_runs_dry() -> None:
    candidates = [lead("n1"), lead("f1", is_follow_up=True), lead("f2", is_follow_up=True)]
    picked = pick(candidates, counts=AgentDayCounts(new=0, follow_up=40))
    assert picked == ["n1", "f1", "f2"]


def test_zero_target_category_only_fills_gaps() -> None:
    candidates = [lead("n1"), lead("f1", is_follow_up=True, priority=9)]
    assert pick(candidates, mix=MixTarget(new=40, follow_up=0)) == ["n1", "f1"]


def test_picked_callbacks_count_toward_the_mix() -> None:
    candidates = [
        callback("cb", "a1", is_follow_up=True),
        lead("n1"),
        lead("f1", is_follow_up=True),
    ]
    # 0/1 new vs 1/1 follow-up after the callback: the new lead goes next.
    picked = pick(candidates, mix=MixTarget(new=1, follow_up=1))
    assert picked == ["cb", "n1", "f1"]


def test_limit() -> None:
    candidates = [lead(f"n{i}") for i in range(5)] + [callback("cb", None)]
    assert pick(candidates, limit=0) == []
    assert pick(candidates, limit=1) == ["cb"]
    with pytest.raises(CampaignError, match="limit must be an integer >= 0, got -1"):
        pick(candidates, limit=-1)


def test_misuse_is_refused_with_the_bad_value_named() -> None:
    with pytest.raises(CampaignError, match="lead 'x' appears twice among the candidates"):
        pick([lead("x"), lead("x")])
    with pytest.raises(CampaignError, match="lead 'x': campaign 'nope' has no calling hours"):
        pick([lead("x", campaign_id="nope")])
    with pytest.raises(CampaignError, match="unknown time zone 'Asia/Atlantis'"):
        lead("x", timezone="Asia/Atlantis")
    with pytest.raises(CampaignError, match="a callback goes with the callback state"):
        lead("x", state=LeadState.CALLBACK)
    with pytest.raises(CampaignError, match="a callback goes with the callback state"):
        lead("x", callback=Callback("x", NOW))
    with pytest.raises(CampaignError, match="lead 'x': callback belongs to lead 'y'"):
        lead("x", state=LeadState.CALLBACK, callback=Callback("y", NOW))
    with pytest.raises(CampaignError, match=r"MixTarget\.follow_up must be an integer >= 0"):
        MixTarget(follow_up=-1)
    with pytest.raises(CampaignError, match=r"AgentDayCounts\.new must be an integer >= 0"):
        AgentDayCounts(new=-2)


# --- property ----------------------------------------------------------------

ZONES = [None, "Asia/Shanghai", "Europe/Berlin", "America/New_York"]


@st.composite
def candidate_lists(draw: st.DrawFn) -> list[LeadCandidate]:
    count = draw(st.integers(0, 30))
    out = []
    for index in range(count):
        lead_id = f"L{index:02d}"
        # Dialable states are drawn more often so that most examples pick something.
        state = draw(st.sampled_from([*LeadState, *sorted(DIALABLE_STATES)]))
        due = NOW + timedelta(minutes=draw(st.integers(-600, 600)))
        agent = draw(st.sampled_from([None, "a1", "a2"]))
        out.append(
            lead(
                lead_id,
                timezone=draw(st.sampled_from(ZONES)),
                priority=draw(st.integers(0, 3)),
                state=state,
                next_attempt_at=draw(st.none() | st.just(due)),
                is_follow_up=draw(st.booleans()),
                callback=Callback(lead_id, due, agent) if state is LeadState.CALLBACK else None,
                campaign_id=draw(st.sampled_from(sorted(HOURS))),
            )
        )
    return out


def _dialable_now(c: LeadCandidate, now: datetime) -> bool:
    hours = HOURS[c.campaign_id]
    due = c.callback.at if c.callback is not None else c.next_attempt_at
    return (
        c.state in DIALABLE_STATES
        and (due is None or due <= now)
        and (c.callback is None or c.callback.agent_id in (None, "a1"))
        and hours.windows.is_open(now, c.timezone or hours.timezone)
    )


@settings(max_examples=200, deadline=None)
@given(
    candidate_lists(),
    st.integers(0, 40),
    # Mostly inside the Shanghai window around NOW, sometimes anywhere in two days.
    st.integers(-30, 59).map(lambda m: NOW + timedelta(minutes=m))
    | st.integers(-48, 48).map(lambda h: NOW + timedelta(minutes=30 * h)),
    st.randoms(use_true_random=False),
)
def test_picks_are_due_open_dialable_unique_and_order_free(
    candidates: list[LeadCandidate], limit: int, now: datetime, rng: Any
) -> None:
    picked = Hopper.pick(
        candidates,
        now,
        agent_id="a1",
        windows=HOURS,
        mix=MixTarget(),
        agent_counts=AgentDayCounts(new=3, follow_up=5),
        limit=limit,
    )
    ids = [c.lead_id for c in picked]
    assert len(ids) == len(set(ids))
    assert all(_dialable_now(c, now) for c in picked)
    eligible = [c for c in candidates if _dialable_now(c, now)]
    assert len(picked) == min(limit, len(eligible))
    # Callbacks come first: no callback is left behind a non-callback pick.
    kinds = [c.callback is not None for c in picked]
    assert kinds == sorted(kinds, reverse=True)
    shuffled = list(candidates)
    rng.shuffle(shuffled)
    again = Hopper.pick(
        shuffled,
        now,
        agent_id="a1",
        windows=HOURS,
        mix=MixTarget(),
        agent_counts=AgentDayCounts(new=3, follow_up=5),
        limit=limit,
    )
    assert again == picked
