"""Calls made of two legs: place them, bridge them when both answer, end them together.

The manager sits between the SIP endpoint and the media relay. It reads the
endpoint's events after every burst of activity (on the next loop turn, never
from inside an adapter's flush), tells the relay what each leg negotiated, and
hangs up what must end: the other leg when one side hangs up, both when the
media times out. Every event, the endpoint's and the relay's, goes to the
subscribers in the order it happened.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from dialer.events import (
    CallAnswered,
    CallCleared,
    CallEnded,
    CallEvent,
    CallOutcome,
    CallProgress,
    ClearedBy,
    Event,
    HangupBy,
    MediaRenegotiated,
    MediaTimeout,
)
from dialer.media.bridge import Side
from dialer.sip.call import LegConfig
from dialer.sip.endpoint import SipEndpoint
from dialer.sip.sdp import make_offer

from .relay import MediaRelay

log = logging.getLogger(__name__)

# How a ringing desk phone says no: its agent's answer, not the system's.
_REFUSALS = frozenset({CallOutcome.BUSY, CallOutcome.DECLINED})

Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Dial:
    """Where and how to place one leg."""

    target: str  # Request-URI
    destination: Address  # where the INVITE goes (trunk, phone contact, proxy)
    extra_headers: tuple[tuple[str, str], ...] = ()
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    trunk: str | None = None
    caller_id: str | None = None  # the From user the callee sees; None: "dialer"


@dataclass(frozen=True, slots=True)
class _Waiting:
    """A customer not dialed yet: dialed once the agent's phone has answered."""

    dial: Dial
    record_early_media: bool


class _NotDialedError(Exception):
    """The call ended before its customer's INVITE could leave."""


@dataclass
class _Call:
    call_id: str
    customer_leg: str
    agent_leg: str
    owns_agent_leg: bool  # a per-call agent connection ends with the call
    record: bool
    answered: set[Side] = field(default_factory=set)
    bridged: bool = False
    ended: bool = False
    waiting: _Waiting | None = None  # the customer's INVITE has not left yet
    dialing: bool = False  # the agent answered: the customer's INVITE is on its way


@dataclass
class AgentLeg:
    """A persistent ("nailed-up") connection to an agent's desk phone."""

    agent_id: str
    leg_id: str
    answered: bool = False
    call_id: str | None = None  # the customer call bridged into it now


class CallManager:
    def __init__(
        self,
        endpoint: SipEndpoint,
        relay: MediaRelay,
        *,
        flush: Callable[[], None],
        media_host: str,
    ) -> None:
        self.endpoint = endpoint
        self.relay = relay
        self._flush = flush
        self.media_host = media_host
        self.subscribers: list[Callable[[Event], None]] = []
        self._calls: dict[str, _Call] = {}
        self._by_leg: dict[str, _Call] = {}
        self.agent_legs: dict[str, AgentLeg] = {}
        self._scheduled = False
        # Events published while subscribers run (an agent's state change in
        # reaction to a call's end) wait their turn, so every subscriber sees
        # one and the same order.
        self._outbox: deque[Event] = deque()
        self._delivering = False
        self._loop = asyncio.get_running_loop()
        self._tasks: set[asyncio.Task[None]] = set()
        relay.emit = self._on_relay_event
        # Subscribers attach right after the service starts: they get these first.
        self._loop.call_soon(self._publish_repairs)

    def _publish_repairs(self) -> None:
        for event in self.relay.repair_events(self._loop.time()):
            self._publish(event)

    # -- placing calls -------------------------------------------------

    async def place_leg(
        self,
        leg_id: str,
        side: Side,
        dial: Dial,
        before_invite: Callable[[], object] | None = None,
    ) -> None:
        """Open media ports for a leg, offer them and send the INVITE."""
        leg = await self.relay.open_leg(leg_id, side)
        if before_invite is not None:
            before_invite()
        host, port = self.endpoint.local
        offer = make_offer(
            self.media_host,
            leg.port,
            session_id=self.relay.rng.getrandbits(31),
            version=1,
        )
        config = LegConfig(
            call_id=leg_id,
            target=dial.target,
            local_uri=f"sip:{dial.caller_id or 'dialer'}@{host}",
            contact=f"sip:dialer@{host}:{port}",
            via_host=host,
            via_port=port,
            sdp=offer.to_bytes(),
            extra_headers=dial.extra_headers,
            username=dial.username,
            password=dial.password,
            trunk=dial.trunk,
        )
        self.endpoint.place_call(config, dial.destination, self._loop.time())
        self._flush()
        self._schedule()

    async def _place_customer(
        self, call_id: str, customer: Dial, record: bool, record_early_media: bool
    ) -> None:
        # The bridge exists before the INVITE leaves, so no early media is missed.
        await self.place_leg(
            call_id,
            Side.CUSTOMER,
            customer,
            lambda: self.relay.create_bridge(
                call_id, call_id, record=record, record_early_media=record_early_media
            ),
        )

    async def bridge_call(
        self,
        customer: Dial,
        agent: Dial,
        *,
        call_id: str | None = None,
        record: bool = True,
        record_early_media: bool = False,
    ) -> str:
        """Call the agent's phone, then the customer once it answered; bridge on answer.

        A customer must never pick up to silence while a desk phone rings (or
        never answers), so the customer's INVITE waits for the agent. If the
        agent's leg ends first, the customer was never dialed: its
        ``CallEnded`` (``cancelled``, no SIP status) says so. The call id is
        the customer leg's SIP Call-ID; the agent leg (a per-call connection
        here) is ended with the call.
        """
        call_id = call_id or str(uuid.uuid4())
        agent_leg = f"{call_id}-agent"
        call = _Call(call_id, call_id, agent_leg, owns_agent_leg=True, record=record)
        call.waiting = _Waiting(customer, record_early_media)
        self._calls[call_id] = call
        self._by_leg[call_id] = call
        self._by_leg[agent_leg] = call
        await self.place_leg(agent_leg, Side.AGENT, agent)
        return call_id

    def _dial_waiting_customer(self, call: _Call) -> None:
        waiting = call.waiting
        if waiting is None or call.ended or call.dialing:
            return
        call.dialing = True

        def leaving() -> None:
            if call.ended:  # the agent hung up while the customer's ports were opening
                raise _NotDialedError
            call.waiting = None
            self.relay.create_bridge(
                call.call_id,
                call.customer_leg,
                record=call.record,
                record_early_media=waiting.record_early_media,
            )

        async def place() -> None:
            try:
                await self.place_leg(call.customer_leg, Side.CUSTOMER, waiting.dial, leaving)
            except _NotDialedError:
                self.relay.close_leg(call.customer_leg)
            except Exception:
                log.exception("call %s: the customer leg could not be placed", call.call_id)
                if call.customer_leg not in self.endpoint.calls:
                    self.relay.close_leg(call.customer_leg)
                    call.waiting = waiting  # never dialed: its end says so
                failed = "the customer leg could not be placed"
                self._end(call, self._loop.time(), ClearedBy.SYSTEM, failed)

        task = self._loop.create_task(place(), name=f"dial-customer-{call.call_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def connect_agent(self, agent_id: str, phone: Dial) -> str:
        """Call the agent's phone once (with its auto-answer headers) and keep the leg up.

        Customers are then bridged into this leg the moment they answer
        (``call_for_agent``); the leg outlives each call.
        """
        leg_id = f"agent-{agent_id}-{uuid.uuid4().hex[:12]}"
        self.agent_legs[leg_id] = AgentLeg(agent_id, leg_id)
        await self.place_leg(leg_id, Side.AGENT, phone)
        return leg_id

    async def call_for_agent(
        self,
        agent_leg: str,
        customer: Dial,
        *,
        call_id: str | None = None,
        record: bool = True,
        record_early_media: bool = False,
    ) -> str:
        """Dial a customer for an agent on a persistent connection; bridge on answer."""
        leg = self.agent_legs.get(agent_leg)
        if leg is None or not leg.answered:
            raise ValueError(f"agent leg {agent_leg} is not connected")
        if leg.call_id is not None:
            raise ValueError(f"agent leg {agent_leg} is already in call {leg.call_id}")
        call_id = call_id or str(uuid.uuid4())
        call = _Call(call_id, call_id, agent_leg, owns_agent_leg=False, record=record)
        call.answered.add(Side.AGENT)
        leg.call_id = call_id
        self._calls[call_id] = call
        self._by_leg[call_id] = call
        await self._place_customer(call_id, customer, record, record_early_media)
        return call_id

    async def dial_customer(
        self,
        customer: Dial,
        *,
        call_id: str | None = None,
        record: bool = True,
        record_early_media: bool = False,
    ) -> str:
        """Dial a customer for no agent yet (predictive): ``connect`` one once it answers."""
        call_id = call_id or str(uuid.uuid4())
        call = _Call(call_id, call_id, "", owns_agent_leg=False, record=record)
        self._calls[call_id] = call
        self._by_leg[call_id] = call
        await self._place_customer(call_id, customer, record, record_early_media)
        return call_id

    def connect(self, call_id: str, agent_leg: str) -> None:
        """Give a customer dialed for no agent an agent's persistent leg; bridged if answered."""
        call = self._calls.get(call_id)
        if call is None or call.ended:
            raise ValueError(f"call {call_id} is not in progress")
        if call.agent_leg:
            raise ValueError(f"call {call_id} already has agent leg {call.agent_leg}")
        leg = self.agent_legs.get(agent_leg)
        if leg is None or not leg.answered:
            raise ValueError(f"agent leg {agent_leg} is not connected")
        if leg.call_id is not None:
            raise ValueError(f"agent leg {agent_leg} is already in call {leg.call_id}")
        call.agent_leg = agent_leg
        leg.call_id = call_id
        call.answered.add(Side.AGENT)
        if Side.CUSTOMER in call.answered:
            call.bridged = True
            self.relay.connect(call_id, agent_leg, self._loop.time())

    async def abandon(self, call_id: str, message: bytes, *, reason: str) -> bool:
        """Play ``message`` to a customer no agent took, then end the call; True if heard whole."""
        call = self._calls.get(call_id)
        if call is None or call.ended or call.agent_leg:
            raise ValueError(f"call {call_id} is not a customer waiting for an agent")
        heard = await self.relay.play(call_id, message)
        self.hangup(call_id, by=ClearedBy.SYSTEM, reason=reason)
        return heard

    def disconnect_agent(self, agent_leg: str) -> None:
        """End a persistent connection (sign-out); a call in it ends too."""
        if agent_leg in self.endpoint.calls:
            self.endpoint.hangup(agent_leg, self._loop.time())
            self._flush()

    def hangup(
        self, call_id: str, *, by: ClearedBy = ClearedBy.SYSTEM, reason: str = ""
    ) -> None:
        """End a call from our side: both legs; ``by`` says who asked (for the CDR)."""
        call = self._calls.get(call_id)
        if call is not None:
            self._end(call, self._loop.time(), by, reason or "hung up by the dialer")

    # -- events --------------------------------------------------------

    def activity(self) -> None:
        """The adapters' hook: something happened; look at it on the next turn."""
        self._schedule()

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._process)

    def _process(self) -> None:
        self._scheduled = False
        events = self.endpoint.take_events()
        now = self._loop.time()
        for event in events:
            try:
                self._handle(event, now)
            except Exception:
                log.exception("call manager failed on %s", event.kind)
            self._publish(event)
        if events:
            self._flush()

    def _handle(self, event: Event, now: float) -> None:
        if not isinstance(event, CallEvent):
            return
        if isinstance(event, CallProgress | CallAnswered | MediaRenegotiated):
            # Whatever the leg belongs to, its media follows its SDP (the relay
            # ignores legs it has no ports for).
            media = self.endpoint.media_of(event.call_id)
            if media is not None:
                self.relay.negotiated(event.call_id, media, now)
        agent_leg = self.agent_legs.get(event.call_id)
        if agent_leg is not None:
            self._handle_agent_leg(agent_leg, event, now)
            return
        call = self._by_leg.get(event.call_id)
        if call is None:
            return
        side = Side.CUSTOMER if event.call_id == call.customer_leg else Side.AGENT
        if isinstance(event, CallAnswered):
            call.answered.add(side)
            if side is Side.AGENT:
                self._dial_waiting_customer(call)
            if call.answered == {Side.CUSTOMER, Side.AGENT} and not call.ended:
                call.bridged = True
                self.relay.connect(call.call_id, call.agent_leg, now)
        elif isinstance(event, CallEnded):
            self.relay.close_leg(event.call_id)
            remote = event.hangup_by is HangupBy.REMOTE
            if side is Side.CUSTOMER:
                by = ClearedBy.CUSTOMER if remote else ClearedBy.SYSTEM
            else:
                # A ringing desk phone refused (busy, declined) is the agent's doing too.
                refused = Side.AGENT not in call.answered and event.outcome in _REFUSALS
                by = ClearedBy.AGENT if remote or refused else ClearedBy.SYSTEM
            self._end(call, now, by, f"{side.value} leg ended: {event.outcome.value}")
            self._by_leg.pop(event.call_id, None)

    def _handle_agent_leg(self, leg: AgentLeg, event: CallEvent, now: float) -> None:
        if isinstance(event, CallAnswered):
            leg.answered = True
        elif isinstance(event, CallEnded):
            # The desk phone dropped (or we signed the agent out): its call ends with it.
            del self.agent_legs[leg.leg_id]
            call = self._calls.get(leg.call_id) if leg.call_id is not None else None
            if call is not None:
                by = ClearedBy.AGENT if event.hangup_by is HangupBy.REMOTE else ClearedBy.SYSTEM
                self._end(call, now, by, "agent connection ended")
            self.relay.close_leg(leg.leg_id)

    def _on_relay_event(self, event: Event) -> None:
        if isinstance(event, MediaTimeout):
            call = self._calls.get(event.call_id)
            if call is not None:
                log.warning(
                    "call %s: no media from the %s for %.1f s",
                    call.call_id,
                    event.leg,
                    event.silent_s,
                )
                self._publish(event)
                self._end(call, event.mono, ClearedBy.SYSTEM, f"no media from the {event.leg}")
                self._flush()
                self._schedule()
                return
        self._publish(event)

    def _end(self, call: _Call, now: float, by: ClearedBy, reason: str) -> None:
        if not call.ended:
            call.ended = True
            self._publish(
                CallCleared(
                    call_id=call.call_id,
                    at_ms=self.endpoint.clock.wall(now),
                    mono=now,
                    by=by,
                    reason=reason,
                )
            )
            self.relay.end(call.call_id, now)
            agent_leg = self.agent_legs.get(call.agent_leg)
            if agent_leg is not None and agent_leg.call_id == call.call_id:
                agent_leg.call_id = None  # free for the next customer
            if call.waiting is not None:
                call.waiting = None
                self._by_leg.pop(call.customer_leg, None)
                self._publish(
                    CallEnded(
                        call_id=call.customer_leg,
                        at_ms=self.endpoint.clock.wall(now),
                        mono=now,
                        outcome=CallOutcome.CANCELLED,
                        status=None,
                        q850_cause=None,
                        hangup_by=HangupBy.LOCAL,
                        reason="never dialed: " + reason,
                    )
                )
        legs = [call.customer_leg] + ([call.agent_leg] if call.owns_agent_leg else [])
        for leg in legs:
            if leg in self.endpoint.calls:
                self.endpoint.hangup(leg, now)
        if all(leg not in self.endpoint.calls for leg in legs):
            self._calls.pop(call.call_id, None)
        self._flush()

    def publish(self, event: Event) -> None:
        """Hand an event from elsewhere (agents, campaigns) to every subscriber, in order."""
        self._publish(event)

    def _publish(self, event: Event) -> None:
        self._outbox.append(event)
        if self._delivering:
            return
        self._delivering = True
        try:
            while self._outbox:
                queued = self._outbox.popleft()
                for subscriber in self.subscribers:
                    try:
                        subscriber(queued)
                    except Exception:
                        log.exception("event subscriber failed on %s", queued.kind)
        finally:
            self._delivering = False
