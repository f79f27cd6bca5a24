"""A campaign's dialing: manual, preview, progressive and predictive modes over the call manager.

- progressive: one customer call per READY agent, over the agent's persistent
  leg (the desk phone was called once at sign-in), bridged on answer;
- preview: the agent is shown the next lead and accepts (it is dialed) or
  skips it (the skip is recorded and the lead stays for the next turn);
- manual: the agent submits a number; it is normalised, checked against
  do-not-call and dialed from the campaign;
- predictive: the pacing controller (``dialer.dialing.pacing``) decides every
  tick how many customers to dial for the READY agents; a customer who
  answers is connected to the agent READY longest, at once; one still
  without an agent ``connect_within_s`` after answering hears the campaign's
  short message and is released (an abandoned call; the lead is locked out
  for ``lockout``).

With screening on, a ringing customer's early media (183 Session Progress)
is classified (``dialer.media.screening``); an announcement or a special
information tone releases the call at once with the outcome it means, so it
never rings out and never reaches an agent.

Preview and manual work over a per-call connection when the agent signed in
without one and over the persistent leg otherwise. Per call, the desk phone
(at the contact it is registered from now) rings first and the customer is
dialed once it answered, so no customer picks up to silence; a phone that
declines or rings out ends the attempt as never dialed (``cancelled``: not
the customer's attempt, not the trunk's failure), and a phone that
unregisters mid-call takes its call with it.

The pure parts decide: the agent state machine (``dialer.agents.state``), the
hopper (which lead next), calling windows and the retry rules
(``dialer.campaigns``). This module only wires them to the call manager:
sign an agent in (call the desk phone once), dial for every READY agent,
bridge on answer, give a ring at least ``ring_timeout_s`` (never under 15 s)
before cancelling it as no answer, and recycle the lead by its outcome.

Leads are held in memory and claimed through the database (``LeadStore``)
before each dial, so two nodes never dial one lead.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from dialer.agents.state import Agent, AgentInput, AgentPolicy, AgentState
from dialer.calls.manager import AgentLeg, CallManager, Dial
from dialer.campaigns.hopper import AgentDayCounts, CampaignHours, Hopper, LeadCandidate, MixTarget
from dialer.campaigns.recycling import Callback, Decision, LeadState, RetryRules, decide
from dialer.campaigns.trunks import NoRoute, NoRouteReason, TrunkPool
from dialer.dialing.pacing import (
    MIN_ABANDON_MESSAGE_S,
    FloorState,
    PacingController,
    PacingSettings,
)
from dialer.events import (
    DISPOSITION_NOTE_MAX,
    AgentStateChanged,
    CallAnswered,
    CallAssigned,
    CallBridged,
    CallEnded,
    CallOutcome,
    CallStarted,
    ClearedBy,
    Direction,
    DispositionSet,
    EarlyMediaScreened,
    Event,
    PacingDecided,
    PhoneUnregistered,
)
from dialer.leads.phone import CHINA, NumberingPlan, normalise
from dialer.media.screening import EarlyMediaClassifier, outcome_for
from dialer.store.leads import LeadStore

log = logging.getLogger(__name__)

RING_TIMEOUT = "ring_timeout"  # CallCleared.reason of a customer who never answered
# CallCleared.reason of a call whose desk phone (rung per call) never answered: the
# customer was never dialed, so this is not the customer's no answer.
PHONE_RING_TIMEOUT = "agent_phone_ring_timeout"
PHONE_GONE = "agent_phone_unregistered"  # CallCleared.reason: the desk phone left mid-call
ABANDONED = "abandoned"  # CallCleared.reason of a live customer no agent was free for
SCREENED = "screened"  # CallCleared.reason prefix of a call released by its early media
PACING_EVENT_S = 1.0  # a campaign's PacingDecided at most this often (and on every launch)
UNASSIGNED = ""  # the dial attempt's agent while a predictive customer waits for one
MIN_RING_S = 15.0  # DESIGN.md: a ring is never given up before 15 s
TICK_S = 0.1
RECONCILE_S = 5.0  # how often each agent's state is checked against its real legs
PROMISE_SCAN_S = 1.0  # predictive: how often the leads are searched for agents' due callbacks
SKIP_DEFERRAL = timedelta(minutes=30)  # a skipped lead comes back to the hopper after this


class DialMode(StrEnum):
    MANUAL = "manual"
    PREVIEW = "preview"
    PROGRESSIVE = "progressive"
    PREDICTIVE = "predictive"


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
    # One "next lead" at a time: a second click waits, then is shown the same lead.
    choosing: asyncio.Lock = field(default_factory=asyncio.Lock)


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
    agent_id: str | None  # None: predictive, not connected to an agent (yet)
    started: float
    trunk: str | None = None
    tried: frozenset[str] = frozenset()
    reservation: str = ""  # the agent is reserved under the first try's call id
    number: str = ""
    answered: bool = False
    bridged: bool = False
    rang_out: bool = False
    # The customer's INVITE has left: a per-call agent's desk phone rings first, and
    # the customer is dialed (and its ring timed) only once the phone answered.
    customer_dialed: bool = False
    phone_rang_out: bool = False
    predictive: bool = False
    answered_at: float | None = None
    bridged_at: float | None = None
    abandoned: bool = False  # the message is playing, or played: never connect it now
    screened: bool = False  # its early media has a verdict
    screened_outcome: CallOutcome | None = None  # released for it, with this outcome


@dataclass
class _Screen:
    classifier: EarlyMediaClassifier
    fed_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Dialed:
    """One dial attempt, for the audit trail (and the tests' 'never twice' check)."""

    lead_id: str | None
    call_id: str
    agent_id: str | None  # None: predictive (the agent is known when it is answered)
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
        dispositions: tuple[str, ...] | None = None,
        store: LeadStore | None = None,
        node: str = "node-1",
        caller_id: str | None = None,
        pacing: PacingSettings | None = None,
        abandon_message: bytes = b"",
        screen_early_media: bool = False,
    ) -> None:
        if ring_timeout_s < MIN_RING_S:
            raise ValueError(
                f"campaign {campaign_id}: ring_timeout_s {ring_timeout_s} is under the "
                f"{MIN_RING_S:g} s a customer is always given to answer"
            )
        self.mode = DialMode(mode)
        self.policy = policy or AgentPolicy(wrap_up_limit_s=0.0)
        self.pacing: PacingController | None = None
        if self.mode is DialMode.PREDICTIVE:
            settings = pacing or PacingSettings()
            problems = []
            if not self.policy.persistent_connection:
                problems.append(
                    "predictive dialing connects customers to agents' persistent connections; "
                    "the agent policy has none"
                )
            if ring_timeout_s < settings.min_ring_s:
                problems.append(
                    f"ring_timeout_s {ring_timeout_s:g} is under the pacing's min_ring_s "
                    f"{settings.min_ring_s:g}"
                )
            if len(abandon_message) < MIN_ABANDON_MESSAGE_S * 2 * 8000:
                problems.append(
                    "a predictive campaign needs its abandon message (8 kHz mono 16-bit audio, "
                    f"at least {MIN_ABANDON_MESSAGE_S:g} s), got {len(abandon_message)} octets"
                )
            if problems:
                raise ValueError(f"campaign {campaign_id}: " + "; ".join(problems))
            self.pacing = PacingController(settings)
        self.abandon_message = abandon_message
        self.dialing_paused = False  # pause_dialing: no new calls until resume_dialing
        self.screen_early_media = screen_early_media
        self._screens: dict[str, _Screen] = {}
        self._pacing_published = -float("inf")
        self.last_decision: PacingDecided | None = None
        self.abandoned_calls: list[tuple[str, bool]] = []  # (call id, message heard whole)
        if (route is None) == (trunks is None):
            raise ValueError(f"campaign {campaign_id}: give either route or trunks, not both")
        missing = sorted(set(trunks.health()) - set(trunk_addresses or {})) if trunks else []
        if missing:
            raise ValueError(f"campaign {campaign_id}: no address for trunks {', '.join(missing)}")
        self.trunks = trunks
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
        self.mix = mix or MixTarget()
        self.wall_now = wall_now
        # The results an agent may set, whichever desk it uses (HTTP, MQTT); None: any code.
        self.disposition_codes = dispositions
        self._promised: set[str] = set()  # agents with a callback due (predictive)
        self._promises_scanned = -PROMISE_SCAN_S
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
        self._predictive_counts = AgentDayCounts()  # the mix of a campaign dialing for no agent
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

    async def refresh(self, limit: int = 100_000) -> int:
        """Take leads added to the store since ``load`` (another import); how many were new.

        Leads this runner already holds keep their state here: it is ahead of
        the store's until its writes are flushed."""
        assert self.store is not None, "refresh() needs a store"
        found = await self.store.candidates(self.campaign_id, self.wall_now(), limit)
        new = [lead for lead in found if lead.lead_id not in self.leads]
        self.add_leads(new)
        return len(new)

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

    def sign_out(self, agent_id: str) -> None:
        """Sign out between calls and hang up the persistent connection; refused in a call."""
        floor = self._floor(agent_id)
        state = floor.agent.state
        if state in (AgentState.RESERVED, AgentState.TALKING):
            raise ValueError(f"agent {agent_id} is {state.value}: sign out after the call")
        self._apply(floor, AgentInput.SIGN_OUT)
        if floor.leg is not None:
            self.calls.disconnect_agent(floor.leg)  # its CallEnded finds the agent signed out

    def pause_dialing(self) -> None:
        """A supervisor's pause: no new calls from this campaign; calls in progress go on."""
        self.dialing_paused = True

    def resume_dialing(self) -> None:
        self.dialing_paused = False

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

    def _hang_up_calls_of(self, agent_id: str, reason: str) -> None:
        for attempt in list(self._attempts.values()):
            if attempt.agent_id == agent_id:
                self.calls.hangup(attempt.call_id, by=ClearedBy.SYSTEM, reason=reason)

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
                self._time_ring(attempt, now)
            if self.screen_early_media:
                self._screen(now)
            if self.pacing is not None:
                self._connect_waiting(now)
            for floor in self.agents.values():
                change = floor.agent.handle_timer(now, self._wall(now))
                if change is not None:
                    self._agent_changed(change)
                self._settle_undispositioned()
                if (
                    not self.dialing_paused
                    and floor.agent.state is AgentState.READY
                    and floor.leg is not None
                    and (
                        self.mode is DialMode.PROGRESSIVE
                        or (self.mode is DialMode.PREDICTIVE and self._promises_due(floor, now))
                    )
                ):
                    await self._dial_for(floor)
            if self.pacing is not None and not self.dialing_paused:
                await self._pace(self.pacing, now)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), TICK_S)

    def _time_ring(self, attempt: _Attempt, now: float) -> None:
        """Give up a ring at ``ring_timeout_s``: the customer's, or first the desk phone's."""
        if attempt.answered or now - attempt.started < self.ring_timeout_s:
            return
        if attempt.customer_dialed and not attempt.rang_out:
            attempt.rang_out = True
            self.calls.hangup(attempt.call_id, by=ClearedBy.SYSTEM, reason=RING_TIMEOUT)
        elif not attempt.customer_dialed and not attempt.phone_rang_out:
            attempt.phone_rang_out = True
            self.calls.hangup(attempt.call_id, by=ClearedBy.SYSTEM, reason=PHONE_RING_TIMEOUT)

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
                self._phone_up(floor, leg, now), bridged, now, self._wall(now)
            ):
                log.warning("agent %s drifted; corrected to %s", agent_id, change.state)
                self._agent_changed(change)
            self._let_go_of_preview(floor)

    def _desk_phone(self, floor: FloorAgent, now: float) -> Dial:
        """Where the desk phone is now: a phone that re-registered (rebooted, a new port
        behind NAT) is rung at its new contact, not the one it had at sign-in."""
        registrar = self.calls.endpoint.registrar
        if floor.extension is None or registrar is None:
            return floor.phone
        binding = registrar.newest(floor.extension, now)
        if binding is None or binding.contact == floor.phone.target:
            return floor.phone
        floor.phone = dataclasses.replace(
            floor.phone, target=binding.contact, destination=binding.destination
        )
        return floor.phone

    def _phone_up(self, floor: FloorAgent, leg: AgentLeg | None, now: float) -> bool:
        """Whether the agent's desk phone is really there: its nailed-up leg answered, or for
        an agent rung per call, its extension registered (with no extension to look up, the
        machine's own belief stands: nothing contradicts it)."""
        if self.policy.persistent_connection:
            return leg is not None and leg.answered
        registrar = self.calls.endpoint.registrar
        if floor.extension is None or registrar is None:
            return floor.agent.phone_connected
        return bool(registrar.lookup(floor.extension, now))

    @property
    def drift_corrections(self) -> int:
        return sum(floor.agent.drift_corrections for floor in self.agents.values())

    # -- preview and manual -------------------------------------------------

    async def preview_next(self, agent_id: str) -> LeadCandidate | None:
        """Show the agent the next lead (the dialer picks it); reserves the agent for it."""
        if self.dialing_paused:
            raise ValueError(f"campaign {self.campaign_id} is paused: no leads until it resumes")
        floor = self._ready_agent(agent_id)
        async with floor.choosing:
            return await self._preview_next(agent_id)

    async def _preview_next(self, agent_id: str) -> LeadCandidate | None:
        floor = self._ready_agent(agent_id)  # again: the agent may have moved meanwhile
        if floor.preview is not None:
            return floor.preview
        while True:
            lead = self._pick(floor)
            if lead is None:
                return None
            if await self._claim(lead, floor):
                break
        if floor.agent.state is not AgentState.READY or self.agents.get(agent_id) is not floor:
            # Paused, signed out or its phone lost while the database answered.
            self._let_go(lead)
            raise ValueError(f"agent {agent_id} is {floor.agent.state.value}, not ready")
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
            self._let_go(lead)  # no route now: the lead waits as it was
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
        later = self.wall_now() + SKIP_DEFERRAL
        callback = lead.callback
        if callback is not None:  # a callback is due by its own time
            callback = dataclasses.replace(callback, at=max(callback.at, later))
        self.leads[lead.lead_id] = dataclasses.replace(
            lead, next_attempt_at=later, callback=callback
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

    async def _claim(self, lead: LeadCandidate, floor: FloorAgent | None) -> bool:
        """Take the lead in the database, so no other dialer (or node) dials it too."""
        if self.store is None:
            return True
        agent = floor.agent.agent_id if floor is not None else None
        claimer = f"{self.node}/{agent if agent is not None else self.campaign_id}"
        if await self.store.claim(lead.lead_id, claimer, self.wall_now(), agent=agent):
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
        note: str = "",
    ) -> None:
        """The agent's result for the call just ended; ends wrap-up, recycles the lead.

        A callback disposition needs ``callback_at`` (the time agreed with the
        customer) and goes back to this agent unless ``callback_anyone``; a
        do-not-call disposition puts the number on the campaign's list.
        ``note`` is the agent's free text; it goes to the CDR.
        """
        if len(note) > DISPOSITION_NOTE_MAX:
            raise ValueError(
                f"a disposition note is at most {DISPOSITION_NOTE_MAX} characters, got {len(note)}"
            )
        known = self.disposition_codes
        if known is not None and code not in known:
            raise ValueError(
                f"disposition {code!r} is not one of campaign {self.campaign_id}'s: "
                + ", ".join(known)
            )
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
        manual = lead.lead_id not in self.leads  # the stand-in of a manual dial
        if manual and decision.lead_state is LeadState.CALLBACK:
            raise ValueError(
                f"agent {agent_id}: a manual call has no lead to call back; "
                "schedule the callback on a lead"
            )
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
                note=note,
            )
        )
        callback = None
        if decision.lead_state is LeadState.CALLBACK and callback_at is not None:
            callback = Callback(lead.lead_id, callback_at, None if callback_anyone else agent_id)
        if not manual:
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
            # Wrap-up is over: ready again, or the pause the agent asked for during the call.
            self._apply(floor, AgentInput.WRAP_UP_DONE)

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
                if lead.lead_id not in self.leads:
                    continue  # a manual dial's stand-in: nothing to recycle
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

    def _pick(self, floor: FloorAgent | None) -> LeadCandidate | None:
        """The next lead for ``floor``'s agent, or (None) for whichever agent will take it."""
        while True:
            picked = Hopper.pick(
                self.leads.values(),
                self.wall_now(),
                agent_id=floor.agent.agent_id if floor is not None else UNASSIGNED,
                windows={self.campaign_id: self.hours},
                mix=self.mix,
                agent_counts=floor.counts if floor is not None else self._predictive_counts,
                limit=1,
            )
            if not picked:
                return None
            lead = picked[0]
            if not self._on_dnc(lead.phone):
                return lead
            # Checked at dial time: the number may have been added since the import.
            self.leads[lead.lead_id] = dataclasses.replace(lead, state=LeadState.DNC)

    def _count(self, floor: FloorAgent | None, lead: LeadCandidate) -> None:
        counts = floor.counts if floor is not None else self._predictive_counts
        if lead.is_follow_up:
            counts = dataclasses.replace(counts, follow_up=counts.follow_up + 1)
        else:
            counts = dataclasses.replace(counts, new=counts.new + 1)
        if floor is not None:
            floor.counts = counts
        else:
            self._predictive_counts = counts

    # -- progressive -----------------------------------------------------------

    async def _dial_for(self, floor: FloorAgent) -> None:
        lead = self._pick(floor)
        if lead is None or floor.leg is None:
            return
        if self.mode is DialMode.PREDICTIVE and not self._promised_to(lead, floor):
            # The pacing dials the rest, for whichever agent is free; a promise due but not
            # dialable now (outside the calling window) is looked for again at the next scan.
            self._promised.discard(floor.agent.agent_id)
            return

        if not await self._claim(lead, floor):
            return
        attempt = _Attempt("", lead.lead_id, floor.agent.agent_id, self._loop.time())
        dial = self._route(attempt, lead)
        if dial is None:
            self._let_go(lead)  # every trunk busy: the lead waits, claimed by nobody
            return
        self.leads[lead.lead_id] = dataclasses.replace(
            lead, state=LeadState.IN_PROGRESS, callback=None
        )
        self._apply(floor, AgentInput.RESERVE, call_id=attempt.reservation)
        self._count(floor, lead)
        await self._place(floor, attempt, dial)

    def _promises_due(self, floor: FloorAgent, now: float) -> bool:
        """Whether a callback promised by this agent may be due (looked for once a second:
        the leads are many, the agents' ticks frequent)."""
        if now >= self._promises_scanned + PROMISE_SCAN_S:
            self._promises_scanned = now
            wall = self.wall_now()
            self._promised = {
                lead.callback.agent_id
                for lead in self.leads.values()
                if lead.state is LeadState.CALLBACK
                and lead.callback is not None
                and lead.callback.agent_id is not None
                and lead.callback.at <= wall
            }
        return floor.agent.agent_id in self._promised

    @staticmethod
    def _promised_to(lead: LeadCandidate, floor: FloorAgent) -> bool:
        """A callback the agent promised: in a predictive campaign too, it is dialed for that
        agent alone (reserved, as in progressive), never for whoever happens to be free."""
        return lead.callback is not None and lead.callback.agent_id == floor.agent.agent_id

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
        self, floor: FloorAgent | None, attempt: _Attempt, dial: Dial, *, number: str = ""
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
                    agent_id=attempt.agent_id or UNASSIGNED,
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
        # The ring is timed from the INVITE, not from the decision to dial.
        attempt.started = self._loop.time()
        try:
            if floor is None:
                await self.calls.dial_customer(
                    dial,
                    call_id=attempt.call_id,
                    record=self.record,
                    record_early_media=self.record_early_media,
                )
            elif floor.leg is not None:
                await self.calls.call_for_agent(
                    floor.leg,
                    dial,
                    call_id=attempt.call_id,
                    record=self.record,
                    record_early_media=self.record_early_media,
                )
            else:
                # Per-call connection: the desk phone rings first, then the customer.
                await self.calls.bridge_call(
                    dial,
                    self._desk_phone(floor, now),
                    call_id=attempt.call_id,
                    record=self.record,
                    record_early_media=self.record_early_media,
                )
        except Exception:
            log.exception("dialing lead %s failed", attempt.lead_id)
            self._finish(attempt, CallOutcome.TRUNK_FAILURE, None)

    # -- predictive ------------------------------------------------------------

    def _today(self) -> date:
        """The campaign's local day: which day's abandon tally a call counts in."""
        return self.wall_now().astimezone(ZoneInfo(self.hours.timezone)).date()

    def _free_agents(self) -> list[FloorAgent]:
        """READY agents whose persistent leg is up and empty, READY longest first."""
        free = []
        for floor in self.agents.values():
            leg = self.calls.agent_legs.get(floor.leg) if floor.leg is not None else None
            if (
                floor.agent.state is AgentState.READY
                and leg is not None
                and leg.answered
                and leg.call_id is None
            ):
                free.append(floor)
        return sorted(free, key=lambda f: f.agent.since or 0.0)

    def floor_state(self, now: float) -> FloorState:
        """What the pacing controller is told about this campaign's floor at ``now``."""
        talking: list[float] = []
        wrap_up: list[float] = []
        for floor in self.agents.values():
            since = floor.agent.since if floor.agent.since is not None else now
            if floor.agent.state in (AgentState.TALKING, AgentState.RESERVED):
                talking.append(min(since, now))
            elif floor.agent.state is AgentState.WRAP_UP:
                wrap_up.append(min(since, now))
        predictive = [a for a in self._attempts.values() if a.predictive and a.agent_id is None]
        return FloorState(
            day=self._today(),
            ready=len(self._free_agents()),
            talking=tuple(talking),
            wrap_up=tuple(wrap_up),
            ringing=tuple(min(a.started, now) for a in predictive if not a.answered),
            waiting=sum(1 for a in predictive if a.answered and not a.abandoned),
        )

    async def _pace(self, pacing: PacingController, now: float) -> None:
        decision = pacing.decide(self.floor_state(now), now)
        if decision.launch or now - self._pacing_published >= PACING_EVENT_S:
            self._pacing_published = now
            event = PacingDecided(
                at_ms=self._wall(now),
                mono=now,
                campaign=self.campaign_id,
                launch=decision.launch,
                mode=decision.mode.value,
                limit=decision.limit.value,
                dial_level=decision.dial_level,
                ready=decision.ready,
                working=decision.working,
                ringing=decision.ringing,
                waiting=decision.waiting,
                answer_rate=decision.answer_rate,
                expected_free=decision.expected_free,
                expected_answers=decision.expected_answers,
                risk=decision.risk,
                occupancy=decision.occupancy,
                abandon_rate_today=decision.abandon_rate_today,
                abandon_rate_30d=decision.abandon_rate_30d,
            )
            self.last_decision = event
            self.calls.publish(event)
        for _ in range(decision.launch):
            if not await self._launch():
                break

    async def _launch(self) -> bool:
        """Dial the next lead for whichever agent is free when it answers; False if none."""
        lead = self._pick(None)
        if lead is None:
            return False
        if not await self._claim(lead, None):
            return True  # taken by another node: the next lead may not be
        attempt = _Attempt("", lead.lead_id, None, self._loop.time(), predictive=True)
        dial = self._route(attempt, lead)
        if dial is None:
            self._let_go(lead)
            return False  # no trunk now: the rest of this decision waits for the next tick
        self.leads[lead.lead_id] = dataclasses.replace(
            lead, state=LeadState.IN_PROGRESS, callback=None
        )
        self._count(None, lead)
        await self._place(None, attempt, dial)
        return True

    def _connect_waiting(self, now: float) -> None:
        """Connect answered customers to free agents, oldest answer first; abandon the late."""
        waiting = sorted(
            (
                a
                for a in self._attempts.values()
                if a.predictive and a.answered and a.agent_id is None and not a.abandoned
            ),
            key=lambda a: a.answered_at or 0.0,
        )
        if not waiting:
            return
        free = self._free_agents()
        pacing = self.pacing
        assert pacing is not None
        connect_within = pacing.settings.connect_within_s
        for attempt in waiting:
            answered_at = attempt.answered_at if attempt.answered_at is not None else now
            if free:
                floor = free.pop(0)
                assert floor.leg is not None
                attempt.agent_id = floor.agent.agent_id
                attempt.reservation = attempt.call_id
                self._apply(floor, AgentInput.RESERVE, call_id=attempt.call_id)
                self.calls.connect(attempt.call_id, floor.leg)
                pacing.on_outcome(
                    now, self._today(), answered_live=True, ring_s=answered_at - attempt.started
                )
            elif now - answered_at >= connect_within:
                self._abandon(attempt, now, answered_at)

    def _abandon(self, attempt: _Attempt, now: float, answered_at: float) -> None:
        attempt.abandoned = True
        pacing = self.pacing
        assert pacing is not None
        pacing.on_outcome(
            now,
            self._today(),
            answered_live=True,
            abandoned=True,
            ring_s=answered_at - attempt.started,
        )
        reason = f"{ABANDONED}: no agent free within {pacing.settings.connect_within_s:g} s"

        async def play() -> None:
            try:
                heard = await self.calls.abandon(
                    attempt.call_id, self.abandon_message, reason=reason
                )
            except ValueError:
                heard = False  # the customer hung up as we started
            self.abandoned_calls.append((attempt.call_id, heard))

        task = self._loop.create_task(play(), name=f"abandon-{attempt.call_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _locked_out(self, lead: LeadCandidate) -> Decision:
        """An abandoned lead counts the attempt and is not rung again before the lockout."""
        pacing = self.pacing
        assert pacing is not None
        attempts = lead.attempts + 1
        if attempts >= self.rules.max_attempts:
            return Decision(LeadState.EXHAUSTED, None, attempts, "abandoned on the last attempt")
        return Decision(
            LeadState.QUEUED,
            self.wall_now() + pacing.settings.lockout,
            attempts,
            f"abandoned: locked out for {pacing.settings.lockout_minutes:g} min",
        )

    def _paced_end(self, attempt: _Attempt) -> None:
        """Feed a predictive call's end to the controller: an unanswered ring, or talk time."""
        pacing = self.pacing
        if pacing is None:
            return
        now = self._loop.time()
        if not attempt.answered:
            pacing.on_outcome(
                now, self._today(), answered_live=False, ring_s=max(0.0, now - attempt.started)
            )
        elif attempt.bridged_at is not None:
            pacing.on_talk_ended(max(0.0, now - attempt.bridged_at))
        elif attempt.agent_id is None and not attempt.abandoned:
            # Hung up while waiting for an agent: dropped all the same, and locked out.
            attempt.abandoned = True
            answered_at = attempt.answered_at if attempt.answered_at is not None else now
            pacing.on_outcome(
                now,
                self._today(),
                answered_live=True,
                abandoned=True,
                ring_s=max(0.0, answered_at - attempt.started),
            )

    # -- early-media screening ----------------------------------------------------

    def _screen(self, now: float) -> None:
        """Classify ringing calls' early audio; release the ones it says will never answer."""
        for attempt in list(self._attempts.values()):
            if attempt.answered or attempt.screened or attempt.rang_out:
                continue
            audio = self.calls.relay.early_audio(attempt.call_id)
            if not audio:
                continue
            screen = self._screens.get(attempt.call_id)
            if screen is None:
                screen = self._screens[attempt.call_id] = _Screen(EarlyMediaClassifier())
            # The capture keeps no arrival times: the audio is taken as one contiguous run.
            verdict = screen.classifier.feed(audio, screen.fed_s)
            screen.fed_s += len(audio) / 2 / 8000
            if verdict is None:
                continue
            attempt.screened = True
            outcome = outcome_for(verdict)
            if outcome is None:
                continue  # ringback, silence or unknown: the call rings on
            self.calls.publish(
                EarlyMediaScreened(
                    call_id=attempt.call_id,
                    at_ms=self._wall(now),
                    mono=now,
                    verdict=verdict.kind.value,
                    outcome=outcome,
                    after_s=verdict.decided_after_s,
                    sit=verdict.sit.value if verdict.sit is not None else None,
                )
            )
            attempt.screened_outcome = outcome
            self.calls.hangup(
                attempt.call_id, by=ClearedBy.SYSTEM, reason=f"{SCREENED}: {verdict.kind.value}"
            )

    # -- what happened ---------------------------------------------------

    def on_event(self, event: Event) -> None:
        if isinstance(event, PhoneUnregistered):
            for floor in self.agents.values():
                if floor.extension != event.extension:
                    continue
                if floor.leg is not None:
                    self._apply(floor, AgentInput.PHONE_LOST)
                    self.calls.disconnect_agent(floor.leg)
                elif not self.policy.persistent_connection and floor.agent.phone_connected:
                    # Rung per call: no leg to drop, but a call on the phone that left
                    # ends with it, so the desk never shows a pause with a customer on.
                    self._hang_up_calls_of(floor.agent.agent_id, PHONE_GONE)
                    self._apply(floor, AgentInput.PHONE_LOST)
            return
        if not isinstance(event, CallStarted | CallAnswered | CallBridged | CallEnded):
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
        if isinstance(event, CallStarted):
            attempt.customer_dialed = True
            attempt.started = event.mono  # the customer's ring is its own, whatever came before
        elif isinstance(event, CallAnswered):
            attempt.answered = True
            attempt.answered_at = event.mono
            self._screens.pop(attempt.call_id, None)
            if attempt.predictive:
                self._connect_waiting(event.mono)  # at once: every millisecond is felt
        elif isinstance(event, CallBridged):
            attempt.bridged = True
            attempt.bridged_at = event.mono
            if attempt.agent_id is not None:
                self._apply(
                    self.agents[attempt.agent_id], AgentInput.BRIDGED, call_id=attempt.reservation
                )
        else:
            if attempt.screened_outcome is not None and event.outcome is CallOutcome.CANCELLED:
                outcome = attempt.screened_outcome  # our cancel, for what the early media said
            elif attempt.rang_out:
                outcome = CallOutcome.NO_ANSWER
            else:
                outcome = event.outcome  # the network's own answer crossed our cancel
            self._finish(attempt, outcome, event.status, event.q850_cause)

    def _finish(
        self,
        attempt: _Attempt,
        outcome: CallOutcome,
        status: int | None,
        cause: int | None = None,
    ) -> None:
        self._attempts.pop(attempt.call_id, None)
        self._screens.pop(attempt.call_id, None)
        if attempt.predictive:
            self._paced_end(attempt)
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
                    agent_id=attempt.agent_id if attempt.predictive else None,
                )
            )
        lead = self.leads.get(attempt.lead_id) if attempt.lead_id is not None else None
        if self.trunks is not None and attempt.trunk is not None:
            self.trunks.release(attempt.trunk)
            if attempt.customer_dialed or outcome is CallOutcome.TRUNK_FAILURE:
                # A customer never dialed (the desk phone did not answer) says nothing
                # of the trunk's health.
                self.trunks.on_result(attempt.trunk, status, self._loop.time())
            if outcome is CallOutcome.TRUNK_FAILURE and self._fail_over(attempt):
                return
        if attempt.abandoned and lead is not None:
            self._record_decision(lead, self._locked_out(lead))
            return
        if attempt.agent_id is None:  # predictive, never connected
            if lead is not None:
                self._record_decision(
                    lead, decide(outcome, lead.attempts, self.wall_now(), self.rules)
                )
            return
        floor = self.agents[attempt.agent_id]
        awaits_disposition = (
            outcome is CallOutcome.ANSWERED
            and attempt.bridged
            and self.policy.wrap_up_limit_s > 0
        )
        if awaits_disposition and (lead is not None or attempt.lead_id is None):
            # A manual dial has no lead: its result goes to the CDR, with nothing to recycle.
            pending = lead if lead is not None else self._number_only(attempt.number)
            self._pending[attempt.agent_id] = pending
            self._pending_call[attempt.agent_id] = attempt.call_id
        elif lead is not None:
            self._record_decision(lead, decide(outcome, lead.attempts, self.wall_now(), self.rules))
        if floor.agent.state is AgentState.TALKING:
            self._apply(floor, AgentInput.CALL_ENDED)
        elif floor.agent.state is AgentState.RESERVED:
            self._apply(floor, AgentInput.RELEASE)

    def _fail_over(self, attempt: _Attempt) -> bool:
        """Try the same number on the next trunk at once; the agent stays reserved for it."""
        floor = self.agents[attempt.agent_id] if attempt.agent_id is not None else None
        if floor is not None and floor.agent.state is not AgentState.RESERVED:
            return False
        if floor is None and not attempt.predictive:
            return False
        lead = self.leads.get(attempt.lead_id or "") or self._number_only(attempt.number)
        retry = _Attempt(
            "",
            attempt.lead_id,
            attempt.agent_id,
            self._loop.time(),
            tried=attempt.tried,
            reservation=attempt.reservation,
            predictive=attempt.predictive,
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
        self._let_go_of_preview(floor)

    def _let_go_of_preview(self, floor: FloorAgent) -> None:
        """A lead on the card of an agent no longer held for it (its phone went) goes back
        as it was: not skipped, not dialed, free for the next agent."""
        lead = floor.preview
        if lead is None or floor.agent.state is AgentState.RESERVED:
            return
        floor.preview = None
        self._let_go(lead)

    def _let_go(self, lead: LeadCandidate) -> None:
        """A claimed lead goes back, in memory (as it was, or failed if no trunk ever takes
        its number) and in the database: a claim left behind would keep it from every
        node, even after a restart."""
        held = self.leads.get(lead.lead_id)
        if held is None or held.state is not LeadState.FAILED:
            self.leads[lead.lead_id] = lead
        store = self.store
        if store is not None:
            self._persist(lambda: store.release(lead.lead_id))

    def _agent_changed(self, change: AgentStateChanged) -> None:
        self.agent_events.append(change)
        self.calls.publish(change)  # the same ordered stream as the calls' events

    def _wall(self, now: float) -> int:
        return self.calls.endpoint.clock.wall(now)
