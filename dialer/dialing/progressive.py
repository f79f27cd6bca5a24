"""Progressive dialing: one customer call per ready agent, over the agent's persistent leg.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dialer.agents.state import Agent, AgentInput, AgentPolicy, AgentState
from dialer.calls.manager import CallManager, Dial
from dialer.campaigns.hopper import AgentDayCounts, CampaignHours, Hopper, LeadCandidate, MixTarget
from dialer.campaigns.recycling import LeadState, RetryRules, decide
from dialer.events import (
    AgentStateChanged,
    CallAnswered,
    CallBridged,
    CallEnded,
    CallOutcome,
    Event,
    PhoneUnregistered,
)

log = logging.getLogger(__name__)

MIN_RING_S = 15.0  # DESIGN.md: a ring is never given up before 15 s
TICK_S = 0.1


@dataclass
class FloorAgent:
    agent: Agent
    phone: Dial
    extension: str | None = None  # the desk phone's registration, to notice it leaving
    leg: str | None = None
    counts: AgentDayCounts = field(default_factory=AgentDayCounts)


@dataclass
class _Attempt:
    call_id: str
    lead_id: str
    agent_id: str
    started: float
    answered: bool = False
    bridged: bool = False
    rang_out: bool = False


@dataclass(frozen=True, slots=True)
class Dialed:
    """One dial attempt, for the audit trail (and the tests' 'never twice' check)."""

    lead_id: str
    call_id: str
    agent_id: str
    at: datetime


class ProgressiveCampaign:
    def __init__(
        self,
        calls: CallManager,
        *,
        campaign_id: str,
        hours: CampaignHours,
        rules: RetryRules,
        route: Callable[[str], Dial],
        ring_timeout_s: float = 30.0,
        policy: AgentPolicy | None = None,
        mix: MixTarget | None = None,
        wall_now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if ring_timeout_s < MIN_RING_S:
            raise ValueError(
                f"campaign {campaign_id}: ring_timeout_s {ring_timeout_s} is under the "
                f"{MIN_RING_S:g} s a customer is always given to answer"
            )
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
        self._loop = asyncio.get_running_loop()
        calls.subscribers.append(self.on_event)

    # -- setup -----------------------------------------------------------

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
        floor.leg = await self.calls.connect_agent(agent_id, phone)

    def ready(self, agent_id: str) -> None:
        self._apply(self.agents[agent_id], AgentInput.READY)

    # -- the loop --------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            now = self._loop.time()
            for attempt in list(self._attempts.values()):
                if not attempt.answered and now - attempt.started >= self.ring_timeout_s:
                    attempt.rang_out = True
                    self.calls.hangup(attempt.call_id)
            for floor in self.agents.values():
                change = floor.agent.handle_timer(now, self._wall(now))
                if change is not None:
                    self.agent_events.append(change)
                if floor.agent.state is AgentState.READY and floor.leg is not None:
                    await self._dial_for(floor)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), TICK_S)

    async def _dial_for(self, floor: FloorAgent) -> None:
        picked = Hopper.pick(
            self.leads.values(),
            self.wall_now(),
            agent_id=floor.agent.agent_id,
            windows={self.campaign_id: self.hours},
            mix=self.mix,
            agent_counts=floor.counts,
            limit=1,
        )
        if not picked or floor.leg is None:
            return
        lead = picked[0]
        call_id = str(uuid.uuid4())
        self.leads[lead.lead_id] = dataclasses.replace(lead, state=LeadState.IN_PROGRESS)
        self._attempts[call_id] = _Attempt(
            call_id, lead.lead_id, floor.agent.agent_id, self._loop.time()
        )
        self._apply(floor, AgentInput.RESERVE, call_id=call_id)
        self.dialed.append(Dialed(lead.lead_id, call_id, floor.agent.agent_id, self.wall_now()))
        if lead.is_follow_up:
            floor.counts = dataclasses.replace(floor.counts, follow_up=floor.counts.follow_up + 1)
        else:
            floor.counts = dataclasses.replace(floor.counts, new=floor.counts.new + 1)
        try:
            await self.calls.call_for_agent(floor.leg, self.route(lead.phone), call_id=call_id)
        except Exception:
            log.exception("dialing lead %s failed", lead.lead_id)
            self._finish(self._attempts[call_id], CallOutcome.TRUNK_FAILURE)

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
            self._apply(self.agents[attempt.agent_id], AgentInput.BRIDGED, call_id=attempt.call_id)
        else:
            outcome = CallOutcome.NO_ANSWER if attempt.rang_out else event.outcome
            self._finish(attempt, outcome)

    def _finish(self, attempt: _Attempt, outcome: CallOutcome) -> None:
        self._attempts.pop(attempt.call_id, None)
        lead = self.leads[attempt.lead_id]
        decision = decide(outcome, lead.attempts, self.wall_now(), self.rules)
        self.leads[lead.lead_id] = dataclasses.replace(
            lead,
            state=decision.lead_state,
            next_attempt_at=decision.next_attempt_at,
            attempts=decision.attempts,
        )
        floor = self.agents[attempt.agent_id]
        if floor.agent.state is AgentState.TALKING:
            self._apply(floor, AgentInput.CALL_ENDED)
        elif floor.agent.state is AgentState.RESERVED:
            self._apply(floor, AgentInput.RELEASE)

    def _agent_of_leg(self, leg: str) -> FloorAgent | None:
        for floor in self.agents.values():
            if floor.leg == leg:
                return floor
        return None

    def _apply(self, floor: FloorAgent, what: AgentInput, *, call_id: str | None = None) -> None:
        now = self._loop.time()
        change = floor.agent.apply(what, now, self._wall(now), call_id=call_id)
        if change is not None:
            self.agent_events.append(change)

    def _wall(self, now: float) -> int:
        return self.calls.endpoint.clock.wall(now)
