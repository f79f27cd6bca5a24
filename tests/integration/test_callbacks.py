"""Scheduled callbacks (预约回拨): an agent's promise to the customer, kept by the dialer.

What a floor expects, from the code's own words (``CampaignRunner.disposition``:
"goes back to this agent unless callback_anyone"; the hopper: "callbacks due
for this agent, then callbacks due for anyone", only "inside a calling
window"; ``skip_preview``: "the next preview moves on"; the lead store: "no
lead is dialed twice"): a due callback comes before new leads, to its own
agent only (however late: nothing promises a grace period), to anyone with
``callback_anyone``, inside the calling windows, across a restart, once.

Real pieces: the service on loopback, simulated desk phones and customers
(``SimLine``), the lead store on SQLite; the hopper also on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support import Seen, service_config, until

from dialer.agents.state import AgentPolicy, AgentState
from dialer.app import Service, running_service, wall_clock
from dialer.calls.manager import Dial
from dialer.campaigns.hopper import AgentDayCounts, CampaignHours, Hopper, LeadCandidate, MixTarget
from dialer.campaigns.recycling import Callback, Decision, LeadState, RetryRules
from dialer.campaigns.trunks import TrunkPool, TrunkSpec
from dialer.campaigns.windows import CallingWindows
from dialer.dialing.pacing import MIN_ABANDON_MESSAGE_S
from dialer.dialing.runner import CampaignRunner, DialMode, TrunkAddress
from dialer.leads.csv_import import import_leads
from dialer.sim.line import AnswerPlan, SimLine
from dialer.store.database import Database
from dialer.store.leads import LeadStore

pytestmark = pytest.mark.integration

ALL_DAY = CampaignHours(CallingWindows.parse({"mon-sun": ["00:00-24:00"]}), "UTC")
PROGRESSIVE = AgentPolicy(wrap_up_limit_s=60.0)
PER_CALL = AgentPolicy(wrap_up_limit_s=60.0, persistent_connection=False)


# -- the hopper on its own -------------------------------------------------------------


def candidate(
    lead_id: str, *, priority: int = 0, callback: Callback | None = None
) -> LeadCandidate:
    return LeadCandidate(
        lead_id=lead_id,
        phone="+8613700000001",
        timezone=None,
        priority=priority,
        state=LeadState.NEW if callback is None else LeadState.CALLBACK,
        next_attempt_at=None if callback is None else callback.at,
        attempts=0 if callback is None else 1,
        is_follow_up=False,
        callback=callback,
        campaign_id="c1",
    )


def pick(leads: list[LeadCandidate], now: datetime, agent: str, hours: CampaignHours) -> list[str]:
    picked = Hopper.pick(
        leads,
        now,
        agent_id=agent,
        windows={"c1": hours},
        mix=MixTarget(),
        agent_counts=AgentDayCounts(),
        limit=10,
    )
    return [lead.lead_id for lead in picked]


NOW = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)


def test_a_due_callback_comes_first_for_its_agent_and_never_for_another() -> None:
    leads = [
        candidate("N1", priority=9),  # a new lead of the highest priority
        candidate("CB", callback=Callback("CB", NOW - timedelta(minutes=1), "a1")),
        candidate("LATER", callback=Callback("LATER", NOW + timedelta(minutes=5), "a1")),
    ]
    assert pick(leads, NOW, "a1", ALL_DAY) == ["CB", "N1"]
    assert pick(leads, NOW, "a2", ALL_DAY) == ["N1"]
    # However late its agent is (signed out all week): no grace, it stays theirs.
    assert pick(leads, NOW + timedelta(days=7), "a2", ALL_DAY) == ["N1"]


def test_a_callback_for_anyone_goes_to_whichever_agent_asks() -> None:
    leads = [
        candidate("N1", priority=9),
        candidate("ANY", callback=Callback("ANY", NOW - timedelta(minutes=1), None)),
        candidate("MINE", callback=Callback("MINE", NOW - timedelta(seconds=1), "a2")),
    ]
    assert pick(leads, NOW, "a1", ALL_DAY) == ["ANY", "N1"]
    assert pick(leads, NOW, "a2", ALL_DAY) == ["MINE", "ANY", "N1"]  # its own one first


def test_a_callback_due_outside_the_calling_window_waits_for_the_window() -> None:
    hours = CampaignHours(CallingWindows.parse({"mon-sun": ["09:00-18:00"]}), "Asia/Shanghai")
    # Promised for 07:30 Beijing time (23:30 UTC): the window opens at 09:00 (01:00 UTC).
    at = datetime(2026, 5, 3, 23, 30, tzinfo=UTC)
    leads = [candidate("CB", callback=Callback("CB", at, "a1"))]
    assert pick(leads, at + timedelta(minutes=30), "a1", hours) == []
    assert pick(leads, datetime(2026, 5, 4, 1, 5, tzinfo=UTC), "a1", hours) == ["CB"]


# -- a floor: the service, desk phones, customers, the store -----------------------------


@dataclass
class Node:
    service: Service
    runner: CampaignRunner
    seen: Seen


@contextlib.asynccontextmanager
async def lines() -> AsyncIterator[tuple[SimLine, SimLine]]:
    """Desk phones (every agent's, answering at once) and customers (answer, talk until hung up)."""
    desk = SimLine("desk", lambda call: AnswerPlan(200, ring_s=0.05), tone_hz=440.0)
    customers = SimLine("customers", lambda call: AnswerPlan(200, ring_s=0.1), tone_hz=1000.0)
    for line in (desk, customers):
        await line.start(wall_clock())
    try:
        yield desk, customers
    finally:
        for line in (desk, customers):
            await line.close()


@contextlib.asynccontextmanager
async def store_with(
    tmp_path: Path, phones: list[str], due: Mapping[str, tuple[datetime, str | None]] | None = None
) -> AsyncIterator[LeadStore]:
    """Campaign c1 on SQLite with one lead per phone, ids L1, L2, ... in order; the leads
    of ``due`` are callbacks promised by an agent (or None: anyone) for a time."""
    async with Database(f"sqlite+aiosqlite:///{tmp_path / 'dialer.db'}") as database:
        await database.upgrade()
        ids = (f"L{n}" for n in itertools.count(1))
        store = LeadStore(database, new_id=lambda: next(ids))
        now = datetime.now(UTC)
        await store.create_campaign("c1", "Callbacks", "progressive", "UTC", now=now)
        rows = "".join(f"{phone},客户\r\n" for phone in phones)
        await store.import_report("c1", import_leads(f"电话,姓名\r\n{rows}".encode()), now=now)
        for lead_id, (at, agent_id) in (due or {}).items():
            await seed_callback(store, lead_id, at, agent_id)
        yield store


@contextlib.asynccontextmanager
async def node(
    tmp_path: Path,
    name: str,
    store: LeadStore,
    customers: SimLine,
    *,
    mode: DialMode = DialMode.PROGRESSIVE,
    policy: AgentPolicy = PROGRESSIVE,
    abandon_message: bytes = b"",
    trunks: TrunkPool | None = None,
) -> AsyncIterator[Node]:
    async with running_service(service_config(tmp_path / name)) as service:
        seen = Seen()
        service.subscribe(seen)
        host, port = customers.address
        runner = CampaignRunner(
            service.calls,
            campaign_id="c1",
            hours=ALL_DAY,
            rules=RetryRules(),
            route=(
                None
                if trunks is not None
                else lambda number: Dial(f"sip:{number.lstrip('+')}@{host}:{port}", (host, port))
            ),
            trunks=trunks,
            trunk_addresses={"t1": TrunkAddress(host, port)} if trunks is not None else None,
            ring_timeout_s=15.0,
            mode=mode,
            policy=policy,
            store=store,
            node=name,
            abandon_message=abandon_message,
        )
        await runner.load()
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop))
        try:
            yield Node(service, runner, seen)
        finally:
            stop.set()
            await task
            for agent in runner.agents.values():
                if agent.leg is not None:
                    service.calls.disconnect_agent(agent.leg)
            for attempt_call in [d.call_id for d in runner.dialed]:
                with contextlib.suppress(Exception):
                    service.calls.hangup(attempt_call, reason="test over")
            await asyncio.sleep(0.3)  # the BYEs go out
            await runner.close()


async def sign_in(n: Node, agent_id: str, desk: SimLine) -> None:
    host, port = desk.address
    await n.runner.sign_in(agent_id, Dial(f"sip:{agent_id}@{host}:{port}", (host, port)))


def state(n: Node, agent_id: str) -> AgentState:
    return n.runner.agents[agent_id].agent.state


async def promise_callback(
    n: Node, agent_id: str, within: timedelta, *, anyone: bool = False
) -> tuple[str, datetime]:
    """The agent's next call is answered, hung up, and dispositioned "callback" ``within``
    from now (timed at the disposition, so a slow machine cannot make it due early)."""
    calls = len(n.runner.dialed)
    await until(n.seen, lambda: state(n, agent_id) is AgentState.TALKING, 15)
    assert len(n.runner.dialed) == calls + 1
    lead_id = n.runner.dialed[-1].lead_id
    assert lead_id is not None
    n.runner.hang_up(agent_id)
    await until(n.seen, lambda: state(n, agent_id) is AgentState.WRAP_UP, 10)
    at = datetime.now(UTC) + within
    await n.runner.disposition(agent_id, "callback", callback_at=at, callback_anyone=anyone)
    await n.runner.drain()
    return lead_id, at


async def seed_callback(store: LeadStore, lead_id: str, at: datetime, agent_id: str | None) -> None:
    """A callback as the runner stores it: the claim, then the decision with its Callback."""
    assert await store.claim(lead_id, "node-0/a1", datetime.now(UTC))
    decision = Decision(LeadState.CALLBACK, at, 1, "answered: 'callback'")
    await store.apply_decision(lead_id, decision, Callback(lead_id, at, agent_id))


def dials_of(n: Node, lead_id: str) -> list[str | None]:
    return [d.agent_id for d in n.runner.dialed if d.lead_id == lead_id]


# -- the runner, end to end ----------------------------------------------------------------


@pytest.mark.parametrize("anyone", [False, True], ids=["pinned", "anyone"])
async def test_a_callback_waits_for_its_signed_out_agent_or_goes_to_anyone(
    tmp_path: Path, anyone: bool
) -> None:
    async with (
        store_with(tmp_path, ["13700000001"]) as store,
        lines() as (desk, customers),
        node(tmp_path, "n1", store, customers) as n,
    ):
        await sign_in(n, "a1", desk)
        lead_id, at = await promise_callback(n, "a1", timedelta(seconds=2), anyone=anyone)
        stored = await store.lead(lead_id)
        assert (stored.state, stored.callback_at) == (LeadState.CALLBACK, at)
        assert stored.callback_agent == (None if anyone else "a1")
        assert n.runner.dialed[-1].agent_id == "a1"
        n.runner.sign_out("a1")  # the promise's agent goes home
        await sign_in(n, "a2", desk)
        await until(n.seen, lambda: state(n, "a2") is AgentState.READY, 10)
        if anyone:
            await until(n.seen, lambda: len(dials_of(n, lead_id)) == 2, 10)
            assert dials_of(n, lead_id) == ["a1", "a2"]
            assert n.runner.dialed[-1].at >= at
            return
        await asyncio.sleep(max(0.0, (at - datetime.now(UTC)).total_seconds()) + 1.5)
        assert dials_of(n, lead_id) == ["a1"]  # due, a2 idle and ready: still a1's
        assert (await store.lead(lead_id)).state is LeadState.CALLBACK
        await sign_in(n, "a1", desk)  # back at the desk: the promise is kept
        await until(n.seen, lambda: len(dials_of(n, lead_id)) == 2, 10)
        assert dials_of(n, lead_id) == ["a1", "a1"]


async def test_a_paused_agents_callback_waits_and_comes_before_new_leads_when_ready(
    tmp_path: Path,
) -> None:
    due = {"L3": (datetime.now(UTC) - timedelta(minutes=1), "a1")}
    async with (
        store_with(tmp_path, ["13700000001", "13700000002", "13700000003"], due) as store,
        lines() as (desk, customers),
        node(tmp_path, "n1", store, customers) as n,
    ):
        await sign_in(n, "a2", desk)  # first in the loop: it would take the callback if it could
        await until(n.seen, lambda: state(n, "a2") is AgentState.TALKING, 15)
        await sign_in(n, "a1", desk)
        n.runner.pause("a1", "break")
        await until(n.seen, lambda: state(n, "a1") is AgentState.PAUSED, 10)
        n.runner.hang_up("a2")
        await until(n.seen, lambda: state(n, "a2") is AgentState.WRAP_UP, 10)
        await n.runner.disposition("a2", "sale")
        await until(n.seen, lambda: len(n.runner.dialed) == 2, 15)  # a2's next: a new lead
        assert [(d.lead_id, d.agent_id) for d in n.runner.dialed] == [("L1", "a2"), ("L2", "a2")]
        n.runner.ready("a1")
        await until(n.seen, lambda: len(n.runner.dialed) == 3, 15)
        assert (n.runner.dialed[-1].lead_id, n.runner.dialed[-1].agent_id) == ("L3", "a1")


async def test_a_callback_survives_a_restart_and_still_belongs_to_its_agent(
    tmp_path: Path,
) -> None:
    async with store_with(tmp_path, ["13700000001"]) as store, lines() as (desk, customers):
        async with node(tmp_path, "before", store, customers) as n:
            await sign_in(n, "a1", desk)
            lead_id, at = await promise_callback(n, "a1", timedelta(seconds=2))
            n.runner.sign_out("a1")
        async with node(tmp_path, "after", store, customers) as n:  # the restarted node
            await sign_in(n, "a2", desk)
            await until(n.seen, lambda: state(n, "a2") is AgentState.READY, 10)
            await asyncio.sleep(max(0.0, (at - datetime.now(UTC)).total_seconds()) + 0.2)
            await n.runner.refresh()  # what the node's lead refresh does every few seconds
            assert lead_id in n.runner.leads
            callback = n.runner.leads[lead_id].callback
            assert callback is not None and (callback.agent_id, callback.at) == ("a1", at)
            await asyncio.sleep(1.0)
            assert dials_of(n, lead_id) == []  # a2 is ready, but it is a1's promise
            await sign_in(n, "a1", desk)
            await until(n.seen, lambda: dials_of(n, lead_id) == ["a1"], 10)
        assert [a.agent_id for a in await store.attempts_for(lead_id)] == ["a1", "a1"]


async def test_two_nodes_dial_a_callback_once_and_not_before_its_time(tmp_path: Path) -> None:
    async with (
        store_with(tmp_path, ["13700000001"]) as store,
        lines() as (desk, customers),
        node(tmp_path, "n1", store, customers) as one,
        node(tmp_path, "n2", store, customers) as two,  # loaded the same list at start
    ):
        await sign_in(one, "a1", desk)
        lead_id, _ = await promise_callback(one, "a1", timedelta(hours=1))
        await sign_in(two, "a2", desk)
        await until(two.seen, lambda: state(two, "a2") is not AgentState.CONNECTING, 10)
        with contextlib.suppress(AssertionError):  # a dial would come within a tick or two
            await until(two.seen, lambda: bool(two.runner.dialed), 2.0)
        await two.runner.drain()
        assert dials_of(two, lead_id) == []
        stored = await store.lead(lead_id)
        assert (stored.state, stored.callback_agent) == (LeadState.CALLBACK, "a1")
        assert len(await store.attempts_for(lead_id)) == 1


async def test_a_skipped_callback_preview_moves_on_to_the_next_lead(tmp_path: Path) -> None:
    due = {"L2": (datetime.now(UTC) - timedelta(minutes=1), "a1")}
    async with (
        store_with(tmp_path, ["13700000001", "13700000002"], due) as store,
        lines() as (desk, customers),
        node(tmp_path, "n1", store, customers, mode=DialMode.PREVIEW, policy=PER_CALL) as n,
    ):
        await sign_in(n, "a1", desk)
        first = await n.runner.preview_next("a1")
        assert first is not None and first.lead_id == "L2"  # the callback comes first
        n.runner.skip_preview("a1", "customer's meeting runs late")
        await n.runner.drain()  # the agent reads the next card a moment later
        second = await n.runner.preview_next("a1")
        assert second is not None
        assert second.lead_id == "L1"  # "the next preview moves on"
        assert n.runner.dialed == []


async def test_a_predictive_campaign_dials_a_due_callback_before_new_leads(
    tmp_path: Path,
) -> None:
    due = {"L1": (datetime.now(UTC) - timedelta(minutes=1), "a1")}
    message = bytes(int(MIN_ABANDON_MESSAGE_S * 2 * 8000) * 2)
    async with (
        store_with(tmp_path, ["13700000001", "13700000002"], due) as store,
        lines() as (desk, customers),
        node(
            tmp_path, "n1", store, customers, mode=DialMode.PREDICTIVE, abandon_message=message
        ) as n,
    ):
        await sign_in(n, "a1", desk)
        await until(n.seen, lambda: bool(n.runner.dialed), 15)  # the pacing launched a call
        assert n.runner.dialed[0].lead_id == "L1"  # the promise first, as in the other modes


async def test_a_callback_due_while_every_trunk_is_busy_is_dialed_when_one_frees(
    tmp_path: Path,
) -> None:
    due = {"L2": (datetime.now(UTC) - timedelta(minutes=1), "a1")}
    one_channel = TrunkPool([TrunkSpec("t1", max_channels=1, max_cps=10.0)])
    async with (
        store_with(tmp_path, ["13700000001", "13700000002"], due) as store,
        lines() as (desk, customers),
        node(tmp_path, "n1", store, customers, trunks=one_channel) as n,
    ):
        await sign_in(n, "a2", desk)
        await until(n.seen, lambda: state(n, "a2") is AgentState.TALKING, 15)  # the one channel
        await sign_in(n, "a1", desk)
        await until(n.seen, lambda: state(n, "a1") is AgentState.READY, 10)
        await asyncio.sleep(0.5)  # a few ticks of a1 ready with its callback due, no channel
        n.runner.hang_up("a2")
        await until(n.seen, lambda: state(n, "a2") is AgentState.WRAP_UP, 10)
        await n.runner.disposition("a2", "sale")
        with contextlib.suppress(AssertionError):
            await until(n.seen, lambda: bool(dials_of(n, "L2")), 5)
        stored = await store.lead("L2")
        where = f"in memory: {'L2' in n.runner.leads}, stored: {stored.state} {stored.claimed_by}"
        assert dials_of(n, "L2") == ["a1"], where
