"""Route the node's one ordered event stream to calls, and say when a call's record is done.

Pure and stateful: ``feed`` each event in the order the service published it,
``tick`` with the monotonic time now and then; both return what the store must
do (open a row, update it, finish it, or keep a call that could not be built).
The builder interprets a call's events; this module only decides which events
are a call's and when the call is over.

Routing:

- A call is known from its first ``CallAssigned``, ``CallStarted`` or
  ``IncomingCall``; later events with its call id go to it. Events of legs it
  does not know (an agent's persistent leg, a per-call agent leg, a call
  started before this collector) are ignored and counted in
  ``ignored_events``.
- The ``CallEnded`` of the agent leg named in the call's ``CallBridged``, if it
  comes before the customer leg's end, goes to the call: the builder reads an
  agent leg ended from the phone's side as ``hangup_by="agent"`` when no
  ``CallCleared`` says otherwise. A persistent leg is followed only while it
  is bridged to that call.
- ``AgentStateChanged`` and ``DispositionSet`` go to the agent's call: an open
  call of that agent whose id, or whose chain (``CallAssigned.attempt_of``, the
  first attempt of a trunk-failover or transfer chain, which is the agent's
  reservation id), is the event's call id; the most recent one if several.
  Failing that, if the call id is of a call already finished, the event is
  late; failing that, it goes to the agent's most recently ended, bridged call
  still waiting for its wrap-up. A call assigned to no agent (predictive:
  launched first, connected to whichever agent is free when it is answered)
  becomes the call of the agent whose event names it.

Completion:

- A call never bridged, or with no agent, is finished by its customer
  ``CallEnded`` or its ``CallTransferred``.
- A bridged call with an agent waits for the agent: if the agent's next state
  change after the end is ``wrap_up`` the call finishes when the agent leaves
  wrap-up (however long the policy allows); any other next change (no wrap-up
  configured) finishes it at once; with no change at all ``tick`` finishes it
  ``agent_grace_s`` after the end.
- A bridged call whose ``CallAssigned`` says it is recorded also waits for its
  ``RecordingClosed`` (or ``RecordingFailed``), which the recorder publishes a
  moment after the end, so the row links its recording; ``tick`` finishes it
  without one ``recording_grace_s`` after the end.
- Finished call ids (and their chain ids) are remembered, the last
  ``remember`` ids (``REMEMBERED`` by default); a later event for one makes no
  second record. A call event, a disposition or a wrap-up change for it is
  counted in ``late_events`` (it would have changed the record); an agent
  merely moving on after it (the release after an unanswered call) is counted
  in ``ignored_events`` like any event of nothing known.
- A stream the builder refuses, or a rule it cannot get, isolates that call:
  one ``Failed`` with the error and the call's events, and the call is
  remembered as finished; every other call goes on.

Snapshots (``Opened`` at the first event, ``Progressed`` at the answer and at
the bridge, ``snapshot()``) are built with ``interrupted=True``: exactly what a
crash at that point would leave.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from dialer.events import (
    AgentStateChanged,
    CallAnswered,
    CallAssigned,
    CallBridged,
    CallEnded,
    CallEvent,
    CallTransferred,
    DispositionSet,
    Event,
    IncomingCall,
    RecordingClosed,
    RecordingFailed,
)

from .builder import WRAP_UP, build
from .effective import EffectiveRule
from .record import CallRecord

REMEMBERED = 10_000


@dataclass(frozen=True, slots=True)
class Opened:
    """A call's first event: a snapshot, so the store can open its row."""

    record: CallRecord


@dataclass(frozen=True, slots=True)
class Progressed:
    """The call was answered or bridged: a snapshot of what is known now."""

    record: CallRecord


@dataclass(frozen=True, slots=True)
class Finished:
    """The call's final record, wrap-up included."""

    record: CallRecord


@dataclass(frozen=True, slots=True)
class Failed:
    """A call whose events could not be built into a record; kept for a person to look at."""

    call_id: str
    error: str
    events: tuple[Event, ...]


Output = Opened | Progressed | Finished | Failed

# A call the dialer placed is announced by CallAssigned before its INVITE; a
# CallStarted alone is a leg of no call (an agent's persistent connection).
_STARTS = (CallAssigned, IncomingCall)


@dataclass(slots=True)
class _Call:
    call_id: str
    order: int  # when it opened, for "the most recent"
    events: list[Event] = field(default_factory=list)
    chain: str = ""
    campaign: str | None = None
    agent: str | None = None
    agent_leg: str | None = None
    bridged: bool = False
    ended_at: float | None = None  # monotonic instant of the customer end or transfer
    in_wrap_up: bool = False
    records: bool = False  # CallAssigned.record: a bridged call's recording will follow
    agent_done: bool = False
    recording_done: bool = False

    @property
    def expects_recording(self) -> bool:
        return self.records and self.bridged and not self.recording_done

    @property
    def waits_for_agent(self) -> bool:
        return self.ended_at is not None and self.bridged and self.agent is not None


def _about_the_call(event: AgentStateChanged | DispositionSet) -> bool:
    """Whether the event would have changed the call's record (the rest is the agent moving on)."""
    if isinstance(event, DispositionSet):
        return True
    return WRAP_UP in (event.state, event.previous)


class CdrCollector:
    """Fold the node's event stream into one record per call attempt."""

    def __init__(
        self,
        rule_for: Callable[[str | None], EffectiveRule],
        *,
        agent_grace_s: float = 2.0,
        recording_grace_s: float = 10.0,
        remember: int = REMEMBERED,
    ) -> None:
        if not agent_grace_s >= 0:  # also refuses NaN
            raise ValueError(f"agent_grace_s must be a number >= 0, got {agent_grace_s!r}")
        if remember < 1:
            raise ValueError(f"remember must be at least 1 finished call, got {remember!r}")
        self.remember = remember
        self.rule_for = rule_for
        self.agent_grace_s = agent_grace_s
        if not recording_grace_s >= 0:
            raise ValueError(f"recording_grace_s must be a number >= 0, got {recording_grace_s!r}")
        self.recording_grace_s = recording_grace_s
        self.late_events = 0
        self.ignored_events = 0
        self._calls: dict[str, _Call] = {}
        self._legs: dict[str, str] = {}  # bridged agent leg -> its call
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._opened = 0

    # -- what the store asks ------------------------------------------------

    def open_calls(self) -> list[str]:
        """Ids of the calls not finished yet, oldest first."""
        return list(self._calls)

    def snapshot(self, call_id: str) -> CallRecord:
        """What a crash now would leave of an open call; raises BuildError if unbuildable."""
        call = self._calls.get(call_id)
        if call is None:
            raise KeyError(f"call {call_id} is not open in the CDR collector")
        return build(call_id, call.events, self.rule_for(call.campaign), interrupted=True)

    # -- the stream ---------------------------------------------------------

    def feed(self, event: Event) -> list[Output]:
        """Take the next event of the stream; what the store must do about it."""
        if isinstance(event, AgentStateChanged | DispositionSet):
            return self._agent_event(event)
        if not isinstance(event, CallEvent):
            return []  # registrations and the like are not about calls
        call = self._calls.get(event.call_id)
        if call is not None:
            return self._own_event(call, event)
        owner = self._legs.get(event.call_id)
        if owner is not None and isinstance(event, CallEnded):
            call = self._calls[owner]
            call.events.append(event)
            del self._legs[event.call_id]
            return []
        if event.call_id in self._finished:
            self.late_events += 1
            return []
        if isinstance(event, _STARTS):
            return self._open(event)
        self.ignored_events += 1
        return []

    def tick(self, now_mono: float) -> list[Output]:
        """Finish calls whose agent, or recording, kept silent past its grace after the end."""
        out: list[Output] = []
        for call in list(self._calls.values()):
            if call.ended_at is None:
                continue
            since = now_mono - call.ended_at
            if not call.agent_done and not call.in_wrap_up and since >= self.agent_grace_s:
                call.agent_done = True
            if call.expects_recording and since >= self.recording_grace_s:
                call.recording_done = True  # the recorder never answered: the row goes without
            out += self._finish_if_done(call)
        return out

    # -- routing --------------------------------------------------------------

    def _open(self, event: CallEvent) -> list[Output]:
        self._opened += 1
        call = _Call(event.call_id, self._opened, chain=event.call_id)
        self._calls[event.call_id] = call
        self._own_event(call, event)  # a start event neither ends nor progresses a call
        return self._snapshot_or_fail(call, Opened)

    def _own_event(self, call: _Call, event: CallEvent) -> list[Output]:
        call.events.append(event)
        if isinstance(event, CallAssigned):
            call.chain = event.attempt_of or event.call_id
            call.campaign = event.campaign
            call.agent = event.agent
            call.records = event.record
        elif isinstance(event, RecordingClosed | RecordingFailed):
            call.recording_done = True
            return self._finish_if_done(call)
        elif isinstance(event, CallBridged) and call.ended_at is None:
            call.bridged = True
            call.agent_leg = event.agent_leg
            self._legs[event.agent_leg] = call.call_id
        elif isinstance(event, CallEnded | CallTransferred) and call.ended_at is None:
            call.ended_at = event.mono
            self._forget_leg(call)
            call.agent_done = not call.waits_for_agent
            return self._finish_if_done(call)
        if isinstance(event, CallAnswered | CallBridged):
            return self._snapshot_or_fail(call, Progressed)
        return []

    def _agent_event(self, event: AgentStateChanged | DispositionSet) -> list[Output]:
        call = self._agent_call(event)
        if call is None:
            if event.call_id in self._finished and _about_the_call(event):
                self.late_events += 1
            else:
                self.ignored_events += 1
            return []
        call.events.append(event)
        if call.agent is None and event.call_id in (call.call_id, call.chain):
            # A predictive call is launched for no agent; the one it is connected to is its own.
            call.agent = event.agent
        if not isinstance(event, AgentStateChanged) or call.ended_at is None:
            return []
        if call.agent_done:
            return []
        if call.in_wrap_up:
            if event.previous != WRAP_UP:
                return []
            call.in_wrap_up = False
        elif event.state == WRAP_UP:
            call.in_wrap_up = True
            return []
        call.agent_done = True  # out of wrap-up, or no wrap-up configured: the agent went on
        return self._finish_if_done(call)

    def _agent_call(self, event: AgentStateChanged | DispositionSet) -> _Call | None:
        mine = [c for c in self._calls.values() if c.agent in (None, event.agent)]
        if event.call_id is not None:
            named = [c for c in mine if event.call_id in (c.call_id, c.chain)]
            if named:
                return max(named, key=lambda c: c.order)
            if event.call_id in self._finished:
                return None  # late: never handed to a newer call of the agent
        waiting = [
            c for c in mine if c.agent == event.agent and c.waits_for_agent and not c.agent_done
        ]
        if not waiting:
            return None
        return max(waiting, key=lambda c: c.ended_at or 0.0)

    # -- results ------------------------------------------------------------

    def _snapshot_or_fail(self, call: _Call, kind: type[Opened] | type[Progressed]) -> list[Output]:
        try:
            return [kind(self.snapshot(call.call_id))]
        except Exception as error:  # any builder or rule failure isolates this call only
            return [self._fail(call, error)]

    def _finish_if_done(self, call: _Call) -> list[Output]:
        done = call.ended_at is not None and call.agent_done and not call.expects_recording
        return [self._finish(call)] if done else []

    def _finish(self, call: _Call) -> Output:
        try:
            record = build(call.call_id, call.events, self.rule_for(call.campaign))
        except Exception as error:  # any builder or rule failure isolates this call only
            return self._fail(call, error)
        self._close(call)
        return Finished(record)

    def _fail(self, call: _Call, error: Exception) -> Failed:
        self._close(call)
        return Failed(call.call_id, f"{type(error).__name__}: {error}", tuple(call.events))

    def _close(self, call: _Call) -> None:
        self._calls.pop(call.call_id, None)
        self._forget_leg(call)
        for key in (call.call_id, call.chain):
            self._finished[key] = None
            self._finished.move_to_end(key)
        while len(self._finished) > self.remember:
            self._finished.popitem(last=False)

    def _forget_leg(self, call: _Call) -> None:
        if call.agent_leg is not None and self._legs.get(call.agent_leg) == call.call_id:
            del self._legs[call.agent_leg]
