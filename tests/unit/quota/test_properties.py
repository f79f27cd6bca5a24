"""Property: any interleaving of CDRs, replays and restarts equals a recomputation.

A pool of distinct CDRs (a few agents and leads, some without an agent, some
transfers or failovers of earlier calls, instants across a day boundary, a
week and a month boundary) is applied in a random order; between two CDRs
the test may replay one already seen, restart from ``state()`` through JSON,
or restart by rebuilding from the CDRs seen so far. At the end the counters
must equal ``recompute`` from the distinct CDRs, reconciliation must find no
difference, and the last progress published for each agent-day must be that
day's progress: nothing is lost, nothing counted twice, no change unpublished.
"""

from __future__ import annotations

import copy
import json
import tomllib
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from cdr.record import CallRecord, Outcome
from quota.counters import AgentProfile, QuotaCounters, reconcile
from quota.exemptions import Exemption
from quota.periods import to_ms
from quota.policy import Policy, parse_policy
from quota.progress import QuotaProgress

SHANGHAI = ZoneInfo("Asia/Shanghai")
DEFAULT = Path(__file__).parents[3] / "deploy" / "quota" / "default-policy.toml"
START = datetime(
    2024, 4, 26, 0, 0, tzinfo=SHANGHAI
)  # a Friday: the window spans a week and May 1st
WINDOW_MS = 10 * 86_400_000
AGENTS = (
    AgentProfile("a1", team="t1", level="junior", start_date=date(2024, 4, 20)),
    AgentProfile("a2", team="t1", level="middle"),
    AgentProfile("a3", team=None, level="senior", start_date=date(2023, 11, 2)),
)
EXEMPTIONS = (Exemption("a2", date(2024, 4, 30), START, "lead-1"),)
AVAILABILITY = {("a1", date(2024, 5, 2)): 0.5}


def make_policy() -> Policy:
    raw: dict[str, Any] = tomllib.loads(DEFAULT.read_text(encoding="utf-8"))
    raw = copy.deepcopy(raw)
    raw["active"] = ["new_and_follow_up", "talk_time", "customer_records"]
    raw["calendar"]["day_starts"] = time(5, 0)
    return parse_policy(raw)


POLICY = make_policy()


@st.composite
def cdr_pools(draw: st.DrawFn) -> list[CallRecord]:
    size = draw(st.integers(1, 24))
    pool: list[CallRecord] = []
    for i in range(size):
        bridged = draw(st.booleans())
        created = to_ms(START) + draw(st.integers(0, WINDOW_MS))
        talk_ms = draw(st.integers(0, 900_000)) if bridged else 0
        earlier = [r.call_id for r in pool]
        attempt_of = draw(st.none() | st.sampled_from(earlier)) if earlier else None
        pool.append(
            CallRecord(
                call_id=f"c{i}",
                campaign=draw(st.sampled_from(("k1", "k2"))),
                lead_id=draw(st.sampled_from(("L1", "L2", "L3", None))),
                agent=draw(st.sampled_from(("a1", "a2", "a3", "a4", None))),
                number=draw(st.sampled_from(("+8613800000001", "+8613900000002", ""))),
                attempt_of=attempt_of,
                created_at_ms=created,
                bridged_at_ms=created + 3000 if bridged else None,
                talk_ms=talk_ms,
                outcome=Outcome.ANSWERED if bridged else Outcome.BUSY,
                disposition=draw(
                    st.sampled_from((None, "callback", " Sale", "not_interested", "follow_up"))
                ),
                effective=bridged and draw(st.booleans()),
                effective_rule="default@1",
            )
        )
    return pool


Step = tuple[str, int]


@st.composite
def schedules(draw: st.DrawFn) -> tuple[list[CallRecord], list[Step]]:
    pool = draw(cdr_pools())
    steps: list[Step] = []
    applied: list[int] = []
    for index in draw(st.permutations(range(len(pool)))):
        steps.append(("apply", index))
        applied.append(index)
        for kind in draw(st.lists(st.sampled_from(("replay", "state", "rebuild")), max_size=2)):
            steps.append((kind, draw(st.sampled_from(applied))))
    return pool, steps


def fresh(records: list[CallRecord]) -> QuotaCounters:
    return QuotaCounters.recompute(
        POLICY, records, AGENTS, exemptions=EXEMPTIONS, availability=AVAILABILITY
    )


@settings(max_examples=150, deadline=None)
@given(schedules())
def test_interleavings_replays_and_restarts_equal_a_recomputation(
    schedule: tuple[list[CallRecord], list[Step]],
) -> None:
    pool, steps = schedule
    live = fresh([])
    seen: list[CallRecord] = []
    published: dict[tuple[str, date], QuotaProgress] = {}
    for kind, index in steps:
        if kind == "apply":
            seen.append(pool[index])
            for progress in live.apply(pool[index]):
                published[(progress.agent, progress.day)] = progress
        elif kind == "replay":
            assert live.apply(pool[index]) == []
        elif kind == "state":
            state = json.loads(json.dumps(live.state()))
            live = QuotaCounters.from_state(POLICY, state, AGENTS)
        else:
            live = QuotaCounters.recompute(
                POLICY, seen, AGENTS, exemptions=live.exemptions, availability=live.availability
            )
    expected = fresh(pool)
    assert live.day_counts() == expected.day_counts()
    assert reconcile(live, pool) == []
    assert set(published) == set(expected.day_counts())
    for (agent, day), progress in published.items():
        assert progress == expected.progress(agent, day)


@settings(max_examples=60, deadline=None)
@given(cdr_pools(), st.randoms(use_true_random=False))
def test_recomputation_ignores_order_and_duplicates(pool: list[CallRecord], rng: Any) -> None:
    shuffled = pool + pool
    rng.shuffle(shuffled)
    assert fresh(shuffled).day_counts() == fresh(pool).day_counts()


@settings(max_examples=60, deadline=None)
@given(cdr_pools())
def test_counts_add_up_to_the_cdrs(pool: list[CallRecord]) -> None:
    counters = fresh(pool)
    totals = counters.day_counts().values()
    attributed = [r for r in pool if r.agent is not None]
    assert sum(c["dials"] for c in totals) == len(attributed)
    assert sum(c["talk_ms"] for c in totals) == sum(r.talk_ms for r in attributed)
    effective = sum(r.effective for r in attributed)
    assert sum(c["effective_calls"] for c in totals) == effective
    split = sum(c["new_customer_calls"] + c["follow_up_calls"] for c in totals)
    assert split == effective  # every effective call is exactly one of the two
