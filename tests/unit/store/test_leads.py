"""LeadStore on a real SQLite file: imports, candidates, claims, attempts, DNC."""

from __future__ import annotations

import asyncio
import itertools
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialer.campaigns.recycling import DIALABLE_STATES, Callback, Decision, LeadState
from dialer.campaigns.windows import CampaignError
from dialer.events import CallOutcome
from dialer.leads.csv_import import ImportReport, Lead, RowError
from dialer.store.database import Database
from dialer.store.leads import (
    UNFINISHED,
    AttemptError,
    DuplicatePhoneError,
    ImportRefusedError,
    LeadStore,
    NotClaimedError,
    UnknownLeadError,
)
from dialer.store.models import NaiveDatetimeError, StoreError

NOW = datetime(2024, 6, 3, 3, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
PHONES = [f"+86138001380{n:02d}" for n in range(100)]


def report(*phones: str, priorities: dict[str, int] | None = None) -> ImportReport:
    leads = tuple(
        Lead(
            row=row,
            phone=phone,
            raw_phone=phone[3:],
            name=f"customer {row}",
            timezone="Asia/Shanghai" if row % 2 else None,
            priority=(priorities or {}).get(phone, 0),
            extra=MappingProxyType({"company": f"co {row}"}),
        )
        for row, phone in enumerate(phones, start=2)
    )
    return ImportReport("utf-8", ",", len(leads), leads, (), (), (), ())


def counter_ids() -> Callable[[], str]:
    numbers = itertools.count(1)
    return lambda: f"lead-{next(numbers)}"


def queued(at: datetime, attempts: int = 1) -> Decision:
    return Decision(LeadState.QUEUED, at, attempts, "test")


def final(state: LeadState, attempts: int = 1) -> Decision:
    return Decision(state, None, attempts, "test")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated database file; tests copy it instead of migrating each time."""
    path = tmp_path_factory.mktemp("template") / "dialer.db"

    async def migrate() -> None:
        async with Database(f"sqlite+aiosqlite:///{path}") as database:
            await database.upgrade()

    asyncio.run(migrate())
    return path


def fresh_url(template: Path, directory: Path) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "dialer.db"
    shutil.copyfile(template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
async def store(template: Path, tmp_path: Path) -> AsyncIterator[LeadStore]:
    async with Database(fresh_url(template, tmp_path)) as database:
        lead_store = LeadStore(database, new_id=counter_ids())
        await lead_store.create_campaign("c1", "Spring", "progressive", "Asia/Shanghai", now=NOW)
        await lead_store.create_campaign("c2", "Autumn", "preview", "UTC", now=NOW)
        yield lead_store


async def ids(lead_store: LeadStore, now: datetime = NOW, limit: int = 100) -> list[str]:
    return [c.lead_id for c in await lead_store.candidates("c1", now, limit)]


# -- campaigns and imports -------------------------------------------------------


async def test_import_inserts_every_lead_as_new(store: LeadStore) -> None:
    assert await store.import_report("c1", report(*PHONES[:3]), now=NOW) == 3
    lead = await store.lead("lead-2")
    assert (lead.phone, lead.name, lead.timezone, lead.extra) == (
        PHONES[1],
        "customer 3",
        "Asia/Shanghai",
        {"company": "co 3"},
    )
    assert (lead.state, lead.attempts, lead.next_attempt_at, lead.claimed_by) == (
        LeadState.NEW,
        0,
        None,
        None,
    )
    assert lead.created_at == NOW
    assert (await store.counts("c1"))["new"] == 3


async def test_import_of_a_report_with_file_errors_writes_nothing(store: LeadStore) -> None:
    refused = ImportReport(
        "utf-8",
        ",",
        1,
        report(PHONES[0]).leads,  # a refused report carries none, but do not trust it
        (),
        (),
        (),
        (),
        (RowError(1, "phone", "phone", "duplicate column (also column 1)"),),
    )
    with pytest.raises(ImportRefusedError, match="file refused, nothing imported"):
        await store.import_report("c1", refused, now=NOW)
    assert sum((await store.counts("c1")).values()) == 0


async def test_a_phone_already_in_the_campaign_rolls_back_the_whole_import(
    store: LeadStore,
) -> None:
    await store.import_report("c1", report(PHONES[5]), now=NOW)
    with pytest.raises(DuplicatePhoneError, match=r"\+8613800138005 is already in the campaign"):
        await store.import_report("c1", report(PHONES[0], PHONES[1], PHONES[5], PHONES[6]), now=NOW)
    assert await store.counts("c1") == {s.value: int(s is LeadState.NEW) for s in LeadState}
    # The same number in another campaign is fine.
    assert await store.import_report("c2", report(PHONES[5]), now=NOW) == 1


async def test_a_phone_twice_in_the_report_is_refused(store: LeadStore) -> None:
    with pytest.raises(DuplicatePhoneError) as caught:
        await store.import_report("c1", report(PHONES[0], PHONES[1], PHONES[0]), now=NOW)
    assert caught.value.phone == PHONES[0]
    assert sum((await store.counts("c1")).values()) == 0


async def test_import_into_an_unknown_campaign_is_refused(store: LeadStore) -> None:
    with pytest.raises(ImportRefusedError, match="no campaign 'nope'"):
        await store.import_report("nope", report(PHONES[0]), now=NOW)


async def test_an_empty_report_imports_nothing(store: LeadStore) -> None:
    assert await store.import_report("c1", report(), now=NOW) == 0


async def test_campaign_ids_are_unique_and_checked(store: LeadStore) -> None:
    with pytest.raises(StoreError, match="already exists"):
        await store.create_campaign("c1", "again", "preview", "UTC", now=NOW)
    with pytest.raises(ValueError, match="reserved"):
        await store.create_campaign("global", "g", "preview", "UTC", now=NOW)
    with pytest.raises(CampaignError, match="unknown time zone"):
        await store.create_campaign("c3", "x", "preview", "Mars/Olympus", now=NOW)


# -- candidates ------------------------------------------------------------------


async def test_candidates_are_fresh_leads_by_priority(store: LeadStore) -> None:
    priorities = {PHONES[0]: 1, PHONES[1]: 5, PHONES[2]: 5, PHONES[3]: 0}
    await store.import_report("c1", report(*PHONES[:4], priorities=priorities), now=NOW)
    candidates = await store.candidates("c1", NOW, 10)
    assert [c.lead_id for c in candidates] == ["lead-2", "lead-3", "lead-1", "lead-4"]
    first = candidates[0]
    assert (first.phone, first.priority, first.state, first.callback) == (
        PHONES[1],
        5,
        LeadState.NEW,
        None,
    )
    assert (first.timezone, first.campaign_id, first.is_follow_up) == ("Asia/Shanghai", "c1", False)
    assert await ids(store, limit=2) == ["lead-2", "lead-3"]
    assert await ids(store, limit=0) == []


async def test_candidates_respect_due_time_state_and_claims(store: LeadStore) -> None:
    await store.import_report("c1", report(*PHONES[:5]), now=NOW)
    # lead-1 redial due in 10 minutes, lead-2 done, lead-3 claimed now.
    for lead_id, decision in (
        ("lead-1", queued(NOW + 10 * MINUTE)),
        ("lead-2", final(LeadState.DONE)),
    ):
        assert await store.claim(lead_id, "node-1", NOW)
        await store.apply_decision(lead_id, decision)
    assert await store.claim("lead-3", "node-1", NOW)
    assert await ids(store) == ["lead-4", "lead-5"]
    # Due exactly at next_attempt_at; a fresh lead (never due) waited longest.
    assert await ids(store, NOW + 10 * MINUTE) == ["lead-4", "lead-5", "lead-1"]
    assert (await store.candidates("c1", NOW + 10 * MINUTE, 10))[2].next_attempt_at == (
        NOW + 10 * MINUTE
    )
    await store.release("lead-3")
    assert await ids(store) == ["lead-3", "lead-4", "lead-5"]
    assert await store.candidates("c2", NOW, 10) == []


async def test_due_callbacks_come_first_and_carry_their_callback(store: LeadStore) -> None:
    await store.import_report(
        "c1", report(*PHONES[:3], priorities={PHONES[1]: 9, PHONES[2]: 9}), now=NOW
    )
    at = NOW + 5 * MINUTE
    assert await store.claim("lead-1", "node-1", NOW)
    decision = Decision(LeadState.CALLBACK, at, 1, "callback")
    await store.apply_decision("lead-1", decision, Callback("lead-1", at, "agent-7"))
    assert await ids(store) == ["lead-2", "lead-3"]
    candidates = await store.candidates("c1", at, 1)
    assert [c.lead_id for c in candidates] == ["lead-1"]
    assert candidates[0].callback == Callback("lead-1", at, "agent-7")
    assert candidates[0].due_at() == at


# -- claims ----------------------------------------------------------------------


async def test_two_concurrent_claimers_one_wins(store: LeadStore) -> None:
    await store.import_report("c1", report(PHONES[0]), now=NOW)
    won = await asyncio.gather(
        store.claim("lead-1", "node-a", NOW), store.claim("lead-1", "node-b", NOW)
    )
    assert sorted(won) == [False, True]
    lead = await store.lead("lead-1")
    assert lead.claimed_by == ("node-a" if won[0] else "node-b")
    assert (lead.state, lead.claimed_at, lead.claimed_from) == (
        LeadState.IN_PROGRESS,
        NOW,
        LeadState.NEW,
    )


async def test_many_claimers_over_many_leads_never_share_one(store: LeadStore) -> None:
    await store.import_report("c1", report(*PHONES[:20]), now=NOW)
    attempts = [(f"lead-{lead}", f"node-{node}") for lead in range(1, 21) for node in range(1, 6)]
    won = await asyncio.gather(*(store.claim(lead, node, NOW) for lead, node in attempts))
    winners: dict[str, list[str]] = {}
    for (lead, node), ok in zip(attempts, won, strict=True):
        if ok:
            winners.setdefault(lead, []).append(node)
    assert {lead: len(nodes) for lead, nodes in winners.items()} == {
        f"lead-{n}": 1 for n in range(1, 21)
    }
    for lead, nodes in winners.items():
        assert (await store.lead(lead)).claimed_by == nodes[0]


async def test_a_claim_needs_a_dialable_unclaimed_lead(store: LeadStore) -> None:
    await store.import_report("c1", report(*PHONES[:2]), now=NOW)
    assert await store.claim("lead-1", "node-1", NOW)
    assert not await store.claim("lead-1", "node-1", NOW)  # not even by its holder
    await store.apply_decision("lead-1", final(LeadState.EXHAUSTED, 3))
    assert not await store.claim("lead-1", "node-1", NOW)
    assert not await store.claim("no-such-lead", "node-1", NOW)
    with pytest.raises(ValueError, match="claimer"):
        await store.claim("lead-2", "", NOW)


async def test_release_gives_back_the_state_claimed_from(store: LeadStore) -> None:
    await store.import_report("c1", report(*PHONES[:2]), now=NOW)
    at = NOW + 30 * MINUTE
    assert await store.claim("lead-1", "node-1", NOW)
    await store.apply_decision("lead-1", Decision(LeadState.CALLBACK, at, 1, "cb"))
    before = await store.lead("lead-1")
    assert await store.claim("lead-1", "node-2", at)
    assert await store.release("lead-1")
    assert await store.lead("lead-1") == before
    assert (before.state, before.callback_at, before.callback_agent) == (
        LeadState.CALLBACK,
        at,
        None,
    )
    assert not await store.release("lead-1")  # nothing to release
    assert not await store.release("lead-2")


async def test_apply_decision_stores_the_verdict_and_ends_the_claim(store: LeadStore) -> None:
    await store.import_report("c1", report(PHONES[0]), now=NOW)
    assert await store.claim("lead-1", "node-1", NOW)
    await store.apply_decision("lead-1", queued(NOW + 2 * MINUTE, attempts=2))
    lead = await store.lead("lead-1")
    assert (lead.state, lead.next_attempt_at, lead.attempts) == (
        LeadState.QUEUED,
        NOW + 2 * MINUTE,
        2,
    )
    assert (lead.claimed_by, lead.claimed_at, lead.claimed_from) == (None, None, None)
    with pytest.raises(NotClaimedError, match="'queued', not claimed"):
        await store.apply_decision("lead-1", final(LeadState.DONE))
    with pytest.raises(UnknownLeadError):
        await store.apply_decision("nope", final(LeadState.DONE))


async def test_a_new_decision_clears_an_old_callback(store: LeadStore) -> None:
    await store.import_report("c1", report(PHONES[0]), now=NOW)
    assert await store.claim("lead-1", "node-1", NOW)
    await store.apply_decision(
        "lead-1",
        Decision(LeadState.CALLBACK, NOW, 1, "cb"),
        Callback("lead-1", NOW, "agent-1"),
    )
    assert await store.claim("lead-1", "node-1", NOW, agent="agent-1")
    await store.apply_decision("lead-1", final(LeadState.DONE, 2))
    lead = await store.lead("lead-1")
    assert (lead.state, lead.callback_at, lead.callback_agent) == (LeadState.DONE, None, None)


async def test_a_claim_goes_by_the_row_not_by_a_nodes_stale_copy(store: LeadStore) -> None:
    # Another node holds these leads as they were at its start; the rows have moved on.
    await store.import_report("c1", report(PHONES[0], PHONES[1]), now=NOW)
    later = NOW + timedelta(hours=1)
    assert await store.claim("lead-1", "node-1/agent-1", NOW, agent="agent-1")
    await store.apply_decision(
        "lead-1", Decision(LeadState.CALLBACK, later, 1, "cb"), Callback("lead-1", later, "agent-1")
    )
    assert await store.claim("lead-2", "node-1/agent-1", NOW, agent="agent-1")
    await store.apply_decision("lead-2", Decision(LeadState.QUEUED, later, 1, "busy"))
    # Not due yet: the callback before its time, the retry before its delay.
    assert not await store.claim("lead-1", "node-2/agent-1", NOW, agent="agent-1")
    assert not await store.claim("lead-2", "node-2/agent-2", NOW, agent="agent-2")
    # Due: the retry is anyone's, the callback only its agent's.
    assert not await store.claim("lead-1", "node-2/agent-2", later, agent="agent-2")
    assert not await store.claim("lead-1", "node-2/c1", later)  # predictive: no agent
    assert await store.claim("lead-2", "node-2/agent-2", later, agent="agent-2")
    assert await store.claim("lead-1", "node-2/agent-1", later, agent="agent-1")


@pytest.mark.parametrize(
    ("decision", "callback", "message"),
    [
        (final(LeadState.IN_PROGRESS), None, "in progress"),
        (final(LeadState.DONE), Callback("lead-1", NOW), "callback was given"),
        (Decision(LeadState.CALLBACK, NOW, 1, "cb"), Callback("lead-9", NOW), "lead-9"),
        (Decision(LeadState.CALLBACK, None, 1, "cb"), None, "needs a time"),
    ],
)
async def test_inconsistent_decisions_are_refused(
    store: LeadStore, decision: Decision, callback: Callback | None, message: str
) -> None:
    await store.import_report("c1", report(PHONES[0]), now=NOW)
    assert await store.claim("lead-1", "node-1", NOW)
    with pytest.raises(ValueError, match=message):
        await store.apply_decision("lead-1", decision, callback)
    assert (await store.lead("lead-1")).claimed_by == "node-1"


# -- naive datetimes -------------------------------------------------------------

NAIVE = datetime(2024, 6, 3, 3, 0)


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.candidates("c1", NAIVE, 10),
        lambda s: s.claim("lead-1", "node-1", NAIVE),
        lambda s: s.apply_decision("lead-1", queued(NAIVE)),
        lambda s: s.add_dnc(PHONES[0], "global", "asked", NAIVE),
        lambda s: s.import_report("c1", report(PHONES[1]), now=NAIVE),
        lambda s: s.create_campaign("c3", "x", "preview", "UTC", now=NAIVE),
        lambda s: s.record_attempt_started(
            "call-1",
            lead_id="lead-1",
            campaign_id="c1",
            agent_id="a",
            number=PHONES[0],
            trunk=None,
            started_at=NAIVE,
        ),
    ],
)
async def test_naive_datetimes_are_refused(
    store: LeadStore, call: Callable[[LeadStore], Any]
) -> None:
    await store.import_report("c1", report(PHONES[0]), now=NOW)
    assert await store.claim("lead-1", "node-1", NOW)
    with pytest.raises(NaiveDatetimeError, match="timezone-aware"):
        await call(store)


async def test_non_utc_instants_come_back_as_utc(store: LeadStore) -> None:
    await store.import_report("c1", report(PHONES[0]), now=NOW)
    shanghai = NOW.astimezone(ZoneInfo("Asia/Shanghai"))
    assert await store.claim("lead-1", "node-1", shanghai)
    claimed_at = (await store.lead("lead-1")).claimed_at
    assert claimed_at == NOW
    assert claimed_at is not None
    assert claimed_at.tzinfo is UTC


# -- do not call -----------------------------------------------------------------


async def test_dnc_scopes(store: LeadStore) -> None:
    assert await store.add_dnc(PHONES[0], "global", "regulator list", NOW)
    assert await store.add_dnc(PHONES[1], "c1", "asked us", NOW)
    assert not await store.add_dnc(PHONES[1], "c1", "asked again", NOW)
    assert await store.is_dnc(PHONES[0], "c1")
    assert await store.is_dnc(PHONES[0], "c2")
    assert await store.is_dnc(PHONES[1], "c1")
    assert not await store.is_dnc(PHONES[1], "c2")
    assert not await store.is_dnc(PHONES[2], "c1")
    with pytest.raises(ValueError, match=r"E\.164"):
        await store.add_dnc("13800138000", "global", "x", NOW)


async def test_a_number_added_to_dnc_is_no_longer_offered_or_claimable(store: LeadStore) -> None:
    await store.import_report("c1", report(*PHONES[:3]), now=NOW)
    await store.import_report("c2", report(PHONES[1]), now=NOW)
    await store.add_dnc(PHONES[0], "global", "regulator", NOW)
    await store.add_dnc(PHONES[1], "c1", "asked", NOW)
    assert await ids(store) == ["lead-3"]
    assert not await store.claim("lead-1", "node-1", NOW)
    assert not await store.claim("lead-2", "node-1", NOW)
    assert [c.lead_id for c in await store.candidates("c2", NOW, 10)] == ["lead-4"]
    assert await store.claim("lead-4", "node-1", NOW)


# -- attempts and counts ---------------------------------------------------------


async def start(store: LeadStore, call_id: str, lead_id: str | None, at: datetime) -> None:
    await store.record_attempt_started(
        call_id,
        lead_id=lead_id,
        campaign_id="c1",
        agent_id="agent-1",
        number=PHONES[0],
        trunk="trunk-a",
        started_at=at,
    )


async def test_attempts_are_recorded_and_counted(store: LeadStore) -> None:
    await store.import_report("c1", report(*PHONES[:2]), now=NOW)
    await start(store, "call-2", "lead-1", NOW + MINUTE)
    await start(store, "call-1", "lead-1", NOW)
    await start(store, "call-3", None, NOW)  # a manual dial
    await store.record_attempt_ended(
        "call-1",
        ended_at=NOW + MINUTE,
        outcome=CallOutcome.BUSY,
        sip_status=486,
        q850_cause=17,
        bridged=False,
    )
    await store.record_attempt_ended(
        "call-3",
        ended_at=NOW,
        outcome=CallOutcome.ANSWERED,
        sip_status=200,
        q850_cause=None,
        bridged=True,
    )
    attempts = await store.attempts_for("lead-1")
    assert [a.call_id for a in attempts] == ["call-1", "call-2"]
    first = attempts[0]
    assert (first.outcome, first.sip_status, first.q850_cause, first.bridged) == (
        CallOutcome.BUSY,
        486,
        17,
        False,
    )
    assert (first.started_at, first.ended_at, first.trunk) == (NOW, NOW + MINUTE, "trunk-a")
    assert attempts[1].ended_at is None
    counts = await store.attempt_counts("c1")
    assert {k: v for k, v in counts.items() if v} == {"busy": 1, "answered": 1, UNFINISHED: 1}
    assert set(counts) == {o.value for o in CallOutcome} | {UNFINISHED}
    assert await store.attempt_counts("c2") == dict.fromkeys(counts, 0)


async def test_attempt_mistakes_are_refused(store: LeadStore) -> None:
    await store.import_report("c1", report(PHONES[0]), now=NOW)
    await start(store, "call-1", "lead-1", NOW)
    with pytest.raises(AttemptError, match="duplicate call id"):
        await start(store, "call-1", "lead-1", NOW)
    with pytest.raises(AttemptError, match="unknown"):
        await start(store, "call-2", "no-such-lead", NOW)
    with pytest.raises(AttemptError, match="before it started"):
        await store.record_attempt_ended(
            "call-1",
            ended_at=NOW - MINUTE,
            outcome=CallOutcome.BUSY,
            sip_status=486,
            q850_cause=None,
            bridged=False,
        )
    await store.record_attempt_ended(
        "call-1",
        ended_at=NOW,
        outcome=CallOutcome.BUSY,
        sip_status=486,
        q850_cause=None,
        bridged=False,
    )
    with pytest.raises(AttemptError, match="already ended"):
        await store.record_attempt_ended(
            "call-1",
            ended_at=NOW,
            outcome=CallOutcome.BUSY,
            sip_status=486,
            q850_cause=None,
            bridged=False,
        )
    with pytest.raises(AttemptError, match="no attempt 'call-9'"):
        await store.record_attempt_ended(
            "call-9",
            ended_at=NOW,
            outcome=CallOutcome.BUSY,
            sip_status=486,
            q850_cause=None,
            bridged=False,
        )


async def test_counts_by_state(store: LeadStore) -> None:
    await store.import_report("c1", report(*PHONES[:4]), now=NOW)
    await store.import_report("c2", report(PHONES[0]), now=NOW)
    assert await store.claim("lead-1", "n", NOW)
    assert await store.claim("lead-2", "n", NOW)
    await store.apply_decision("lead-2", final(LeadState.DONE))
    counts = await store.counts("c1")
    assert {k: v for k, v in counts.items() if v} == {"new": 2, "in_progress": 1, "done": 1}
    assert set(counts) == {s.value for s in LeadState}


# -- claims under random interleavings -------------------------------------------

LEADS = ("lead-1", "lead-2", "lead-3")
CLAIMERS = ("node-a", "node-b", "node-c")
VERDICTS = (LeadState.QUEUED, LeadState.CALLBACK, LeadState.DONE, LeadState.EXHAUSTED)


@dataclass(frozen=True)
class ClaimBatch:
    claims: tuple[tuple[str, str], ...]  # (lead, claimer), run concurrently


@dataclass(frozen=True)
class Release:
    lead: str


@dataclass(frozen=True)
class Decide:
    lead: str
    state: LeadState
    minutes: int  # next attempt relative to now; <= 0 is due


Step = ClaimBatch | Release | Decide

steps = st.one_of(
    st.builds(
        ClaimBatch,
        st.lists(
            st.tuples(st.sampled_from(LEADS), st.sampled_from(CLAIMERS)), min_size=1, max_size=6
        ).map(tuple),
    ),
    st.builds(Release, st.sampled_from(LEADS)),
    st.builds(Decide, st.sampled_from(LEADS), st.sampled_from(VERDICTS), st.integers(-5, 5)),
)


@dataclass
class Model:
    state: LeadState = LeadState.NEW
    claimed_from: LeadState | None = None
    claimed_by: str | None = None
    next_at: datetime | None = None


async def run_steps(url: str, script: list[Step]) -> None:
    async with Database(url) as database:
        lead_store = LeadStore(database, new_id=counter_ids())
        await lead_store.create_campaign("c1", "c", "progressive", "UTC", now=NOW)
        await lead_store.import_report("c1", report(*PHONES[: len(LEADS)]), now=NOW)
        model = {lead: Model() for lead in LEADS}
        now = NOW
        for step in script:
            now += MINUTE
            if isinstance(step, ClaimBatch):
                won = await asyncio.gather(
                    *(lead_store.claim(lead, who, now) for lead, who in step.claims)
                )
                for lead in {lead for lead, _ in step.claims}:
                    winners = [
                        who
                        for (claimed, who), ok in zip(step.claims, won, strict=True)
                        if ok and claimed == lead
                    ]
                    m = model[lead]
                    ripe = m.next_at is None or m.next_at <= now
                    if m.claimed_by is None and m.state in DIALABLE_STATES and ripe:
                        assert len(winners) == 1, (lead, winners)
                        m.claimed_from, m.state = m.state, LeadState.IN_PROGRESS
                        m.claimed_by = winners[0]
                    else:
                        assert winners == []
            elif isinstance(step, Release):
                m = model[step.lead]
                assert await lead_store.release(step.lead) == (m.claimed_by is not None)
                if m.claimed_by is not None:
                    assert m.claimed_from is not None
                    m.state, m.claimed_by, m.claimed_from = m.claimed_from, None, None
            else:
                m = model[step.lead]
                at = (
                    now + step.minutes * MINUTE
                    if step.state in (LeadState.QUEUED, LeadState.CALLBACK)
                    else None
                )
                decision = Decision(step.state, at, 1, "test")
                if m.claimed_by is None:
                    with pytest.raises(NotClaimedError):
                        await lead_store.apply_decision(step.lead, decision)
                else:
                    await lead_store.apply_decision(step.lead, decision)
                    m.state, m.claimed_by, m.claimed_from, m.next_at = step.state, None, None, at
            for lead, m in model.items():
                stored = await lead_store.lead(lead)
                assert (stored.state, stored.claimed_by) == (m.state, m.claimed_by)
            due = {
                lead
                for lead, m in model.items()
                if m.state in DIALABLE_STATES and (m.next_at is None or m.next_at <= now)
            }
            assert set(await ids(lead_store, now)) == due


@settings(max_examples=30, deadline=None)
@given(script=st.lists(steps, min_size=1, max_size=12))
def test_a_lead_is_never_claimed_twice_at_once(
    template: Path, tmp_path_factory: pytest.TempPathFactory, script: list[Step]
) -> None:
    url = fresh_url(template, tmp_path_factory.mktemp("claims"))
    asyncio.run(run_steps(url, script))
