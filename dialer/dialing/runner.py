"""A campaign's dialing: manual, preview and progressive modes over the call manager.

- progressive: one customer call per READY agent, over the agent's persistent
  leg (the desk phone was called once at sign-in), bridged on answer;
- preview: the agent is shown the next lead and accepts (it is dialed) or
  skips it (the skip is recorded and the lead stays for the next turn);
- manual: the agent submits a number; it is normalised, checked against
  do-not-call and dialed from the campaign.

Preview and manual work over a per-call connection when the agent signed in
without one (the desk phone rings with each call) and over the persistent
leg otherwise.

The pure parts decide: the agent state machine (``dialer.agents.state``), the
hopper (which lead next), calling windows and the retry rules
(``dialer.campaigns``). This module only wires them to the call manager:
sign an agent in (call the desk phone once), dial for every READY agent,
bridge on answer, give a ring at least ``ring_timeout_s`` (never under 15 s)
before cancelling it as no answer, and recycle the lead by its outcome.

Leads live in memory here; claiming them through the database (so that two
nodes never dial one lead) comes with the storage layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from dialer.agents.state import Agent, AgentInput, AgentPolicy, AgentState
from dialer.calls.manager import CallManager, Dial
from dialer.campaigns.hopper import AgentDayCounts, CampaignHours, Hopper, LeadCandidate, MixTarget
from dialer.campaigns.recycling import Callback, Decision, LeadState, RetryRules, decide
from dialer.campaigns.trunks import NoRoute, NoRouteReason, TrunkPool
from dialer.events import (
    AgentStateChanged,
    CallAnswered,
    CallAssigned,
    CallBridged,
    CallEnded,
    CallOutcome,
    ClearedBy,
    Direction,
    DispositionSet,
    Event,
    PhoneUnregistered,
)
from dialer.leads.phone import CHINA, NumberingPlan, normalise
from dialer.store.leads import LeadStore

log = logging.getLogger(__name__)

RING_TIMEOUT = "ring_timeout"  # CallCleared.reason of a customer who never answered
MIN_RING_S = 15.0  # DESIGN.md: a ring is never given up before 15 s
TICK_S = 0.1
RECONCILE_S = 5.0  # how often each agent's state is checked against its real legs
SKIP_DEFERRAL = timedelta(minutes=30)  # a skipped lead comes back to the hopper after this


class DialMode(StrEnum):
    MANUAL = "manual"
    PREVIEW = "preview"
    PROGRESSIVE = "progressive"


@dataclass(frozen=True, slots=True)
class Skip:
    """A previewed lead the agent passed over: recorded, so cherry-picking shows."""

    lead_id: str
    agent_id: str
    reason: str
    at: datetime


@dataclass
class FloorAgent:
    agent: Agent
    phone: Dial
    extension: str | None = None  # the desk phone's registration, to notice it leaving
    leg: str | None = None
    counts: AgentDayCounts = field(default_factory=AgentDayCounts)
    preview: LeadCandidate | None = None


@dataclass(frozen=True, slots=True)
class TrunkAddress:
    """Where a trunk of the pool takes its INVITEs."""

    host: str
    port: int = 5060
    username: str | None = None
    password: str | None = field(default=None, repr=False)


@dataclass
class _Attempt:
    call_id: str
    lead_id: str | None  # None: a manual dial of a number, not a lead
    agent_id: str
    started: float
    trunk: str | None = None
    tried: frozenset[str] = frozenset()
    reservation: str = ""  # the agent is reserved under the first try's call id
    number: str = ""
    answered: bool = False
    bridged: bool = False
    rang_out: bool = False


@dataclass(frozen=True, slots=True)
class Dialed:
    """One dial attempt, for the audit trail (and the tests' 'never twice' check)."""

    lead_id: str | None
    call_id: str
    agent_id: str
    at: datetime
    trunk: str | None = None
    number: str = ""


class CampaignRunner:
    def __init__(
        self,
        calls: CallManager,
        *,
        campaign_id: str,
        hours: CampaignHours,
        rules: RetryRules,
        route: Callable[[str], Dial] | None = None,
        trunks: TrunkPool | None = None,
        trunk_addresses: Mapping[str, TrunkAddress] | None = None,
        do_not_call: Callable[[str], bool] = lambda number: False,
        ring_timeout_s: float = 30.0,
        mode: DialMode = DialMode.PROGRESSIVE,
        plan: NumberingPlan = CHINA,
        record: bool = True,
        record_early_media: bool = False,
        policy: AgentPolicy | None = None,
        mix: MixTarget | None = None,
        wall_now: Callable[[], datetime] = lambda: datetime.now(UTC),
        store: LeadStore | None = None,
        node: str = "node-1",
        caller_id: str | None = None,
    ) -> None:
        if ring_timeout_s < MIN_RING_S:
            raise ValueError(
                f"campaign {campaign_id}: ring_timeout_s {ring_timeout_s} is under the "
                f"{MIN_RING_S:g} s a customer is always given to answer"
            )
        if (route is None) == (trunks is None):
            raise ValueError(f"campaign {campaign_id}: give either route or trunks, not both")
        missing = sorted(set(trunks.health()) - set(trunk_addresses or {})) if trunks else []
        if missing:
            raise ValueError(f"campaign {campaign_id}: no address for trunks {', '.join(missing)}")
        self.trunks = trunks
        self.mode = DialMode(mode)
        self.plan = plan
        self.record = record
        self.record_early_media = record_early_media
        self.store = store
        self.node = node
        self.caller_id = caller_id  # the campaign's own; else the trunk's rotation
        # Writes go to the database in the order things happened, off the call path.
        self._writes: asyncio.Queue[Callable[[], Awaitable[object]]] = asyncio.Queue()
        self.write_failures = 0
        self._writer: asyncio.Task[None] | None = None
        self.skips: list[Skip] = []
        self.trunk_addresses = dict(trunk_addresses or {})
        self.do_not_call = do_not_call
        self.calls = calls
        self.campaign_id = campaign_id
        self.hours = hours
        self.rules = rules
        self.route = route
        self.ring_timeout_s = ring_timeout_s
        self.policy = policy or AgentPolicy(wrap_up_limit_s=0.0)
        self.mix = mix or MixTarget()
        self.wall_now = wall_now
        self.leads: dict[str, LeadCandidate] = {}
        self.agents: dict[str, FloorAgent] = {}
        self.dialed: list[Dialed] = []
        self.agent_events: list[AgentStateChanged] = []
        self._attempts: dict[str, _Attempt] = {}
        # Answered calls whose lead waits for the agent's disposition (wrap-up).
        self._pending: dict[str, LeadCandidate] = {}
        self._pending_call: dict[str, str] = {}  # agent -> the call id it dispositions
        self.dispositions: list[tuple[str, str, str]] = []  # (lead id, agent id, code)
        self._dnc_added: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop = asyncio.get_running_loop()
        calls.subscribers.append(self.on_event)

    # -- setup -----------------------------------------------------------

    async def load(self, limit: int = 100_000) -> int:
        """Take the campaign's dialable leads from the store; how many."""
        assert self.store is not None, "load() needs a store"
        found = await self.store.candidates(self.campaign_id, self.wall_now(), limit)
        self.leads = {lead.lead_id: lead for lead in found}
        return len(found)

    def _persist(self, write: Callable[[], Awaitable[object]]) -> None:
        if self.store is None:
            return
        if self._writer is None:
            self._writer = self._loop.create_task(self._write_all(), name="campaign-writes")
        self._writes.put_nowait(write)

    async def _write_all(self) -> None:
        while True:
            write = await self._writes.get()
            try:
                await write()
            except Exception:
                # Logged and counted; the call goes on (the journal comes with the CDRs).
                self.write_failures += 1
                log.exception("campaign %s: a database write failed", self.campaign_id)
            finally:
                self._writes.task_done()

    async def drain(self) -> None:
        """Wait until every write so far is in the database."""
        await self._writes.join()

    async def close(self) -> None:
        await self.drain()
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer

    def add_leads(self, leads: list[LeadCandidate]) -> None:
        for lead in leads:
            if lead.lead_id in self.leads:
                raise ValueError(f"lead {lead.lead_id} is already in campaign {self.campaign_id}")
            self.leads[lead.lead_id] = lead

    async def sign_in(self, agent_id: str, phone: Dial, *, extension: str | None = None) -> None:
        """Sign in and ask to be ready: READY applies once the phone's leg is up."""
        floor = FloorAgent(Agent(agent_id, self.policy), phone, extension)
        self.agents[agent_id] = floor
        self._apply(floor, AgentInput.SIGN_IN)
        self._apply(floor, AgentInput.READY)
        if self.policy.persistent_connection:
            floor.leg = await self.calls.connect_agent(agent_id, phone)

    def ready(self, agent_id: str) -> None:
        self._apply(self._floor(agent_id), AgentInput.READY)

    def pause(self, agent_id: str, reason: str) -> None:
        """Pause with a reason code; asked during a call, it applies when the call ends."""
        self._apply(self._floor(agent_id), AgentInput.PAUSE, reason=reason)

    def hang_up(self, agent_id: str) -> str:
        """End the agent's current call from the agent's side; its call id."""
        for attempt in self._attempts.values():
            if attempt.agent_id == agent_id:
                self.calls.hangup(attempt.call_id, by=ClearedBy.AGENT, reason="agent hung up")
                return attempt.call_id
        raise ValueError(f"agent {agent_id} has no call to hang up")

    def _floor(self, agent_id: str) -> FloorAgent:
        floor = self.agents.get(agent_id)
        if floor is None:
            raise ValueError(f"agent {agent_id} is not signed in to campaign {self.campaign_id}")
        return floor

    # -- the loop --------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        next_reconcile = self._loop.time() + RECONCILE_S
        while not stop.is_set():
            now = self._loop.time()
            if now >= next_reconcile:
                next_reconcile = now + RECONCILE_S
                self.reconcile(now)
            for attempt in list(self._attempts.values()):
                if not attempt.answered and now - attempt.started >= self.ring_timeout_s:
                    attempt.rang_out = True
                    self.calls.hangup(
                        attempt.call_id, by=ClearedBy.SYSTEM, reason=RING_TIMEOUT
                    )
            for floor in self.agents.values():
                change = floor.agent.handle_timer(now, self._wall(now))
                if change is not None:
                    self._agent_changed(change)
                self._settle_undispositioned()
                if (
                    self.mode is DialMode.PROGRESSIVE
                    and floor.agent.state is AgentState.READY
                    and floor.leg is not None
                ):
                    await self._dial_for(floor)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), TICK_S)

    def reconcile(self, now: float) -> None:
        """Correct any agent whose state disagrees with its legs (a lost event, a bug)."""
        for agent_id, floor in self.agents.items():
            leg = self.calls.agent_legs.get(floor.leg) if floor.leg is not None else None
            bridged = next(
                (
                    a.reservation
                    for a in self._attempts.values()
                    if a.agent_id == agent_id and a.bridged
                ),
                None,
            )
            for change in floor.agent.reconcile(
                leg is not None and leg.answered, bridged, now, self._wall(now)
            ):
                log.warning("agent %s drifted; corrected to %s", agent_id, change.state)
                self._agent_changed(change)

    @property
    def drift_corrections(self) -> int:
        return sum(floor.agent.drift_corrections for floor in self.agents.values())

    # -- preview and manual -------------------------------------------------

    async def preview_next(self, agent_id: str) -> LeadCandidate | None:
        """Show the agent the next lead (the dialer picks it); reserves the agent for it."""
        floor = self._ready_agent(agent_id)
        if floor.preview is not None:
            return floor.preview
        while True:
            lead = self._pick(floor)
            if lead is None:
                return None
            if await self._claim(lead, floor):
                break
        self.leads[lead.lead_id] = dataclasses.replace(
            lead, state=LeadState.IN_PROGRESS, callback=None
        )
        floor.preview = lead
        self._apply(floor, AgentInput.RESERVE, call_id=f"preview-{lead.lead_id}")
        return lead

    async def accept_preview(self, agent_id: str) -> str:
        """Dial the previewed lead; returns the call id."""
        floor = self.agents[agent_id]
        lead = floor.preview
        if lead is None:
            raise ValueError(f"agent {agent_id} has no lead in preview")
        floor.preview = None
        attempt = _Attempt("", lead.lead_id, agent_id, self._loop.time())
        attempt.reservation = f"preview-{lead.lead_id}"
        dial = self._route(attempt, lead)
        if dial is None:
            self.leads[lead.lead_id] = lead  # no route now: the lead waits as it was
            self._apply(floor, AgentInput.RELEASE)
            raise ValueError(f"lead {lead.lead_id}: no trunk can take {lead.phone} now")
        self._count(floor, lead)
        await self._place(floor, attempt, dial)
        return attempt.call_id

    def skip_preview(self, agent_id: str, reason: str) -> None:
        """Pass over the previewed lead: it goes back as it was, and the skip is kept."""
        floor = self.agents[agent_id]
        lead = floor.preview
        if lead is None:
            raise ValueError(f"agent {agent_id} has no lead in preview")
        if not reason.strip():
            raise ValueError(f"agent {agent_id}: a skip needs a reason")
        floor.preview = None
        # Back as it was, but not at the head of the queue: the next preview moves on.
        self.leads[lead.lead_id] = dataclasses.replace(
            lead, next_attempt_at=self.wall_now() + SKIP_DEFERRAL
        )
        self.skips.append(Skip(lead.lead_id, agent_id, reason, self.wall_now()))
        store = self.store
        if store is not None:
            # The database keeps no deferral: the skipped lead is simply free again.
            self._persist(lambda: store.release(lead.lead_id))
        self._apply(floor, AgentInput.RELEASE)

    async def manual_dial(self, agent_id: str, raw_number: str) -> str:
        """Dial a number the agent typed, from this campaign; returns the call id."""
        floor = self.agents.get(agent_id)
        if floor is None:
            raise ValueError(f"agent {agent_id} is not signed in to campaign {self.campaign_id}")
        number = normalise(raw_number, self.plan)  # InvalidNumber names what is wrong
        if self._on_dnc(number):
            raise ValueError(f"{number} is on the do-not-call list")
        if floor.agent.state not in (AgentState.READY, AgentState.PAUSED):
            raise ValueError(f"agent {agent_id} is {floor.agent.state.value}, not free to dial")
        probe = self._number_only(number)
        attempt = _Attempt("", None, agent_id, self._loop.time())
        dial = self._route(attempt, probe)
        if dial is None:
            raise ValueError(f"no trunk can take {number} now")
        self._apply(floor, AgentInput.RESERVE, call_id=attempt.reservation)
        await self._place(floor, attempt, dial, number=number)
        return attempt.call_id

    async def _claim(self, lead: LeadCandidate, floor: FloorAgent) -> bool:
        """Take the lead in the database, so no other dialer (or node) dials it too."""
        if self.store is None:
            return True
        claimer = f"{self.node}/{floor.agent.agent_id}"
        if await self.store.claim(lead.lead_id, claimer, self.wall_now()):
            return True
        self.leads.pop(lead.lead_id, None)  # taken elsewhere, or on do-not-call
        return False

    async def disposition(
        self,
        agent_id: str,
        code: str,
        *,
        callback_at: datetime | None = None,
        callback_anyone: bool = False,
    ) -> None:
        """The agent's result for the call just ended; ends wrap-up, recycles the lead.

        A callback disposition needs ``callback_at`` (the time agreed with the
        customer) and goes back to this agent unless ``callback_anyone``; a
        do-not-call disposition puts the number on the campaign's list.
        """
        lead = self._pending.get(agent_id)
        if lead is None:
            raise ValueError(f"agent {agent_id} has no answered call waiting for a disposition")
        decision = decide(
            CallOutcome.ANSWERED,
            lead.attempts,
            self.wall_now(),
            self.rules,
            disposition=code,
            callback_at=callback_at,
        )  # a bad code or a callback without a time raises here, and nothing changes
        del self._pending[agent_id]
        call_id = self._pending_call.pop(agent_id, "")
        self.dispositions.append((lead.lead_id, agent_id, code))
        mono = self._loop.time()
        self.calls.publish(
            DispositionSet(
                call_id=call_id,
                at_ms=self._wall(mono),
                mono=mono,
                agent=agent_id,
                code=code,
                callback_at_ms=(
                    int(callback_at.timestamp() * 1000) if callback_at is not None else None
                ),
            )
        )
        callback = None
        if decision.lead_state is LeadState.CALLBACK and callback_at is not None:
            callback = Callback(lead.lead_id, callback_at, None if callback_anyone else agent_id)
        self._record_decision(lead, decision, callback)
        if decision.lead_state is LeadState.DNC:
            self._dnc_added.add(lead.phone)
            store = self.store
            if store is not None:
                reason = f"disposition {code!r} by agent {agent_id}"
                now = self.wall_now()
                self._persist(lambda: store.add_dnc(lead.phone, self.campaign_id, reason, now))
        floor = self.agents[agent_id]
        if floor.agent.state is AgentState.WRAP_UP:
            self._apply(floor, AgentInput.READY)

    def _record_decision(
        self, lead: LeadCandidate, decision: Decision, callback: Callback | None = None
    ) -> None:
        self.leads[lead.lead_id] = dataclasses.replace(
            lead,
            state=decision.lead_state,
            next_attempt_at=decision.next_attempt_at,
            attempts=decision.attempts,
            callback=callback,
        )
        store = self.store
        if store is not None:
            self._persist(lambda: store.apply_decision(lead.lead_id, decision, callback))

    def _settle_undispositioned(self) -> None:
        """Wrap-up ran out without a disposition: the answered lead is done as it stands."""
        for agent_id, lead in list(self._pending.items()):
            if self.agents[agent_id].agent.state is not AgentState.WRAP_UP:
                del self._pending[agent_id]
                self._pending_call.pop(agent_id, None)
                self._record_decision(
                    lead, decide(CallOutcome.ANSWERED, lead.attempts, self.wall_now(), self.rules)
                )

    def _number_only(self, number: str) -> LeadCandidate:
        """A stand-in lead for a manual dial: routed like a lead, recycled like none."""
        return LeadCandidate(
            lead_id=f"manual-{number}",
            phone=number,
            timezone=None,
            priority=0,
            state=LeadState.NEW,
            next_attempt_at=None,
            attempts=0,
            is_follow_up=False,
            callback=None,
            campaign_id=self.campaign_id,
        )

    def _on_dnc(self, number: str) -> bool:
        return number in self._dnc_added or self.do_not_call(number)

    def _ready_agent(self, agent_id: str) -> FloorAgent:
        floor = self.agents.get(agent_id)
        if floor is None:
            raise ValueError(f"agent {agent_id} is not signed in to campaign {self.campaign_id}")
        if floor.agent.state is not AgentState.READY and floor.preview is None:
            raise ValueError(f"agent {agent_id} is {floor.agent.state.value}, not ready")
        return floor

    def _pick(self, floor: FloorAgent) -> LeadCandidate | None:
        while True:
            picked = Hopper.pick(
                self.leads.values(),
                self.wall_now(),
                agent_id=floor.agent.agent_id,
                windows={self.campaign_id: self.hours},
                mix=self.mix,
                agent_counts=floor.counts,
                limit=1,
            )
            if not picked:
                return None
            lead = picked[0]
            if not self._on_dnc(lead.phone):
                return lead
            # Checked at dial time: the number may have been added since the import.
            self.leads[lead.lead_id] = dataclasses.replace(lead, state=LeadState.DNC)

    def _count(self, floor: FloorAgent, lead: LeadCandidate) -> None:
        if lead.is_follow_up:
            floor.counts = dataclasses.replace(floor.counts, follow_up=floor.counts.follow_up + 1)
        else:
            floor.counts = dataclasses.replace(floor.counts, new=floor.counts.new + 1)

    # -- progressive -----------------------------------------------------------

    async def _dial_for(self, floor: FloorAgent) -> None:
        lead = self._pick(floor)
        if lead is None or floor.leg is None:
            return
        if not await self._claim(lead, floor):
            return
        attempt = _Attempt("", lead.lead_id, floor.agent.agent_id, self._loop.time())
        dial = self._route(attempt, lead)
        if dial is None:
            return
        self.leads[lead.lead_id] = dataclasses.replace(
            lead, state=LeadState.IN_PROGRESS, callback=None
        )
        self._apply(floor, AgentInput.RESERVE, call_id=attempt.reservation)
        self._count(floor, lead)
        await self._place(floor, attempt, dial)

    def _route(self, attempt: _Attempt, lead: LeadCandidate) -> Dial | None:
        """A new call id and where it goes; None (lead left as it is, or failed) if nowhere."""
        attempt.call_id = str(uuid.uuid4())
        attempt.reservation = attempt.reservation or attempt.call_id
        attempt.number = lead.phone
        if self.trunks is None:
            assert self.route is not None
            return self.route(lead.phone)
        chosen = self.trunks.choose(lead.phone, self._loop.time(), exclude=attempt.tried)
        if isinstance(chosen, NoRoute):
            if chosen.reason is NoRouteReason.NOT_ACCEPTED and lead.lead_id in self.leads:
                log.warning("lead %s: %s", lead.lead_id, chosen)
                self.leads[lead.lead_id] = dataclasses.replace(lead, state=LeadState.FAILED)
            return None  # busy, rate limited or down: the lead waits for the next tick
        attempt.trunk = chosen.trunk
        attempt.tried = attempt.tried | {chosen.trunk}
        address = self.trunk_addresses[chosen.trunk]
        return Dial(
            f"sip:{chosen.dial_string}@{address.host}:{address.port}",
            (address.host, address.port),
            username=address.username,
            password=address.password,
            trunk=chosen.trunk,
            caller_id=self.caller_id or chosen.caller_id,
        )

    async def _place(
        self, floor: FloorAgent, attempt: _Attempt, dial: Dial, *, number: str = ""
    ) -> None:
        self._attempts[attempt.call_id] = attempt
        now = self._loop.time()
        self.calls.publish(
            CallAssigned(
                call_id=attempt.call_id,
                at_ms=self._wall(now),
                mono=now,
                campaign=self.campaign_id,
                lead_id=attempt.lead_id,
                agent=attempt.agent_id,
                mode=self.mode.value if attempt.lead_id is not None else DialMode.MANUAL.value,
                direction=Direction.OUTBOUND,
                number=number or attempt.number,
                caller_id=dial.caller_id,
                trunk=attempt.trunk,
                attempt_of=attempt.reservation if attempt.reservation != attempt.call_id else None,
                record=self.record,
            )
        )
        store = self.store
        if store is not None:
            started = self.wall_now()
            self._persist(
                lambda: store.record_attempt_started(
                    attempt.call_id,
                    lead_id=attempt.lead_id,
                    campaign_id=self.campaign_id,
                    agent_id=attempt.agent_id,
                    number=number or attempt.number,
                    trunk=attempt.trunk,
                    started_at=started,
                )
            )
        self.dialed.append(
            Dialed(
                attempt.lead_id,
                attempt.call_id,
                attempt.agent_id,
                self.wall_now(),
                attempt.trunk,
                number or attempt.number,
            )
        )
        try:
            if floor.leg is not None:
                await self.calls.call_for_agent(
                    floor.leg,
                    dial,
                    call_id=attempt.call_id,
                    record=self.record,
                    record_early_media=self.record_early_media,
                )
            else:
                # Per-call connection: the desk phone rings with the customer's call.
                await self.calls.bridge_call(
                    dial,
                    floor.phone,
                    call_id=attempt.call_id,
                    record=self.record,
                    record_early_media=self.record_early_media,
                )
        except Exception:
            log.exception("dialing lead %s failed", attempt.lead_id)
            self._finish(attempt, CallOutcome.TRUNK_FAILURE, None)

    # -- what happened ---------------------------------------------------

    def on_event(self, event: Event) -> None:
        if isinstance(event, PhoneUnregistered):
            for floor in self.agents.values():
                if floor.extension == event.extension and floor.leg is not None:
                    self._apply(floor, AgentInput.PHONE_LOST)
                    self.calls.disconnect_agent(floor.leg)
            return
        if not isinstance(event, CallAnswered | CallBridged | CallEnded):
            return
        owner = self._agent_of_leg(event.call_id)
        if owner is not None:
            if isinstance(event, CallAnswered):
                self._apply(owner, AgentInput.PHONE_CONNECTED)
            elif isinstance(event, CallEnded):
                owner.leg = None
                if owner.agent.state is not AgentState.SIGNED_OUT:
                    self._apply(owner, AgentInput.PHONE_LOST)
            return
        attempt = self._attempts.get(event.call_id)
        if attempt is None:
            return
        if isinstance(event, CallAnswered):
            attempt.answered = True
        elif isinstance(event, CallBridged):
            attempt.bridged = True
            self._apply(
                self.agents[attempt.agent_id], AgentInput.BRIDGED, call_id=attempt.reservation
            )
        else:
            outcome = CallOutcome.NO_ANSWER if attempt.rang_out else event.outcome
            self._finish(attempt, outcome, event.status, event.q850_cause)

    def _finish(
        self,
        attempt: _Attempt,
        outcome: CallOutcome,
        status: int | None,
        cause: int | None = None,
    ) -> None:
        self._attempts.pop(attempt.call_id, None)
        store = self.store
        if store is not None:
            ended = self.wall_now()
            self._persist(
                lambda: store.record_attempt_ended(
                    attempt.call_id,
                    ended_at=ended,
                    outcome=outcome,
                    sip_status=status,
                    q850_cause=cause,
                    bridged=attempt.bridged,
                )
            )
        lead = self.leads.get(attempt.lead_id) if attempt.lead_id is not None else None
        if self.trunks is not None and attempt.trunk is not None:
            self.trunks.release(attempt.trunk)
            self.trunks.on_result(attempt.trunk, status, self._loop.time())
            if outcome is CallOutcome.TRUNK_FAILURE and self._fail_over(attempt):
                return
        floor = self.agents[attempt.agent_id]
        awaits_disposition = (
            lead is not None
            and outcome is CallOutcome.ANSWERED
            and attempt.bridged
            and self.policy.wrap_up_limit_s > 0
        )
        if lead is not None and awaits_disposition:
            self._pending[attempt.agent_id] = lead
            self._pending_call[attempt.agent_id] = attempt.call_id
        elif lead is not None:
            self._record_decision(lead, decide(outcome, lead.attempts, self.wall_now(), self.rules))
        if floor.agent.state is AgentState.TALKING:
            self._apply(floor, AgentInput.CALL_ENDED)
        elif floor.agent.state is AgentState.RESERVED:
            self._apply(floor, AgentInput.RELEASE)

    def _fail_over(self, attempt: _Attempt) -> bool:
        """Try the same number on the next trunk at once; the agent stays reserved for it."""
        floor = self.agents[attempt.agent_id]
        if floor.agent.state is not AgentState.RESERVED:
            return False
        lead = self.leads.get(attempt.lead_id or "") or self._number_only(attempt.number)
        retry = _Attempt(
            "",
            attempt.lead_id,
            attempt.agent_id,
            self._loop.time(),
            tried=attempt.tried,
            reservation=attempt.reservation,
        )
        dial = self._route(retry, lead)
        if dial is None:
            return False
        task = self._loop.create_task(self._place(floor, retry, dial))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    def _agent_of_leg(self, leg: str) -> FloorAgent | None:
        for floor in self.agents.values():
            if floor.leg == leg:
                return floor
        return None

    def _apply(
        self,
        floor: FloorAgent,
        what: AgentInput,
        *,
        call_id: str | None = None,
        reason: str | None = None,
    ) -> None:
        now = self._loop.time()
        change = floor.agent.apply(what, now, self._wall(now), call_id=call_id, reason=reason)
        if change is not None:
            self._agent_changed(change)

    def _agent_changed(self, change: AgentStateChanged) -> None:
        self.agent_events.append(change)
        self.calls.publish(change)  # the same ordered stream as the calls' events

    def _wall(self, now: float) -> int:
        return self.calls.endpoint.clock.wall(now)
