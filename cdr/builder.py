"""Fold one call attempt's ordered events into its ``CallRecord``.

Pure: no clock, no I/O. The collector decides which events belong to a call;
this module only interprets them, so a scenario test can list a call's events
and assert the row. Instants come from ``at_ms`` (UTC wall milliseconds),
durations from differences of ``mono`` (seconds), rounded to milliseconds and
never negative (events of one burst may carry instants a hair apart).

The stream of a call may hold:

- the call's own events (``call_id`` equal to the call id): the customer leg,
  whose SIP Call-ID is the call id, and what the dialer says about the call;
- ``AgentStateChanged`` and ``DispositionSet`` routed to it (their call id is
  the agent's reservation, i.e. the first attempt of a chain, so it may differ);
- the ``CallEnded`` of the agent leg named by ``CallBridged.agent_leg``.

Anything else, a second ``CallAssigned``/start/answer/bridge/end, or an
agent's event for another agent than the call's, is an impossible stream and
raises ``BuildError`` naming every problem at once.

Semantics:

- ``created_at_ms``: the first own event (``CallAssigned``, ``CallStarted`` or
  ``IncomingCall``). Campaign, lead, agent, mode, direction, number, caller id,
  trunk and ``attempt_of`` come from ``CallAssigned``; the trunk falls back to
  ``CallStarted.trunk``, the number to ``CallStarted.target`` (or the caller
  of an ``IncomingCall``, which also makes the direction inbound), the agent
  to the one agent whose events were routed here.
- The attempt ends at the customer's ``CallEnded``, or at ``CallTransferred``
  if that came first (the customer leg then lives on in the new attempt, so
  its later events are not this attempt's and are ignored).
- ``ringing_at_ms``: first ``CallProgress``; ``answered_at_ms``: the customer's
  ``CallAnswered``; ``bridged_at_ms``: ``CallBridged``; ``ended_at_ms``: the
  end above, or for an interrupted call the ``CallCleared`` instant if known.
- ``ring_ms``: first provisional to the answer (or the end if never
  answered), 0 if it never rang; ``talk_ms``: bridge to end; ``billable_ms``:
  answer to end; ``held_ms``: time between ``MediaRenegotiated(held=True)``
  and the next ``held=False`` (or the end), clipped to the talk time.
- ``outcome``: ``TRANSFERRED`` for a transfer, else the ``CallEnded`` outcome;
  a ``CANCELLED`` call whose ``CallCleared`` reason is ``ring_timeout`` (our
  CANCEL after the ring time) is ``NO_ANSWER``; one released by early-media
  screening (``EarlyMediaScreened``) is the screening's outcome. ``interrupted=True`` (what a
  crash leaves) gives ``INTERRUPTED`` when the end is not in the stream, with
  durations up to the ``CallCleared`` if known, else the last event; when the
  end is known the call's real outcome stands and only wrap-up is cut short.
  Without ``interrupted`` a stream with no end is an error.
- ``hangup_by``: ``CallCleared.by``; else ``"agent"`` if the bridged agent leg
  ended from the phone's side before the customer leg; else the customer
  leg's ``hangup_by``: remote is ``"customer"``, local is ``"system"``.
  ``end_reason``: the ``CallCleared`` reason, else the ``CallEnded`` reason,
  else for a transfer ``"transferred to AGENT as CALL_ID"``.
- ``answered_by`` from the last ``AnsweringClassified`` (else unknown);
  ``abandoned``: answered, never bridged, not a machine, and ended (not
  transferred, not interrupted).
- ``wrap_up_ms``: from the agent entering ``wrap_up`` to leaving it (or to the
  last event known if it has not left); None without a wrap-up.
- ``disposition``/``disposition_note``/``callback_at_ms`` from the last ``DispositionSet``;
  ``recording`` from the last ``RecordingClosed``, ``recording_error`` from
  the last ``RecordingFailed``.
- ``effective``: bridged, outcome answered or transferred, and the rule's
  verdict on talk time, answerer, customer speech (None without a recording)
  and disposition. ``effective_rule`` is always the rule's ``name@version``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from dialer.events import (
    AgentStateChanged,
    AnsweringClassified,
    CallAnswered,
    CallAssigned,
    CallBridged,
    CallCleared,
    CallEnded,
    CallEvent,
    CallProgress,
    CallStarted,
    CallTransferred,
    DispositionSet,
    EarlyMediaScreened,
    Event,
    HangupBy,
    IncomingCall,
    MediaRenegotiated,
    MediaTimeout,
    RecordingClosed,
    RecordingFailed,
)

from .effective import EffectiveRule
from .record import AnsweredBy, CallRecord, Outcome, RecordingRef

RING_TIMEOUT = "ring_timeout"  # the CallCleared reason of our CANCEL after the ring time
WRAP_UP = "wrap_up"  # AgentState.WRAP_UP's value (cdr/ may not import dialer.agents)

_ANSWERED_BY = {a.value: a for a in AnsweredBy}


class BuildError(ValueError):
    """A call's event stream that no real call can produce; the message lists every problem."""


@dataclass(slots=True)
class _Facts:
    """What the stream says, first (or last) of each kind, gathered in one pass."""

    call_id: str
    first: CallEvent | None = None
    assigned: CallAssigned | None = None
    started: CallStarted | None = None
    incoming: IncomingCall | None = None
    progress: CallProgress | None = None
    answered: CallAnswered | None = None
    bridged: CallBridged | None = None
    ended: CallEnded | None = None
    agent_ended: CallEnded | None = None
    cleared: CallCleared | None = None
    transferred: CallTransferred | None = None
    classified: AnsweringClassified | None = None
    screened: EarlyMediaScreened | None = None
    media_timeout: MediaTimeout | None = None
    disposition: DispositionSet | None = None
    recording: RecordingClosed | None = None
    recording_failed: RecordingFailed | None = None
    holds: list[MediaRenegotiated] = field(default_factory=list)
    agent_changes: list[AgentStateChanged] = field(default_factory=list)
    agents: set[str] = field(default_factory=set)
    last_mono: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def over(self) -> bool:
        return self.ended is not None or self.transferred is not None


def build(
    call_id: str,
    events: Sequence[Event],
    rule: EffectiveRule,
    *,
    interrupted: bool = False,
) -> CallRecord:
    """The record of call ``call_id`` from its ordered events (see the module docstring)."""
    facts = _gather(call_id, events)
    if facts.first is None:
        facts.problems.insert(0, f"no event of call {call_id} in the stream")
    elif facts.assigned is None and facts.started is None and facts.incoming is None:
        facts.problems.append("no call_assigned, call_started or incoming_call")
    if facts.first is not None and not facts.over and not interrupted:
        facts.problems.append(
            "the call has not ended (no call_ended or call_transferred); "
            "build it with interrupted=True for what is known"
        )
    agent = facts.assigned.agent if facts.assigned is not None else None
    others = sorted(facts.agents - {agent}) if agent is not None else []
    if agent is None and len(facts.agents) > 1:
        others = sorted(facts.agents)
    if others:
        owner = f"agent {agent}" if agent is not None else "one agent"
        facts.problems.append(f"events of agents {', '.join(others)} routed to a call of {owner}")
    answered_by = _answered_by(facts)
    if facts.problems:
        raise BuildError(f"call {call_id}: " + "; ".join(facts.problems))
    assert facts.first is not None  # no first event is a problem above
    return _record(facts, facts.first, rule, answered_by)


def _gather(call_id: str, events: Sequence[Event]) -> _Facts:
    facts = _Facts(call_id)
    for index, event in enumerate(events):
        facts.last_mono = max(facts.last_mono, event.mono)
        if isinstance(event, AgentStateChanged):
            facts.agent_changes.append(event)
            facts.agents.add(event.agent)
        elif isinstance(event, DispositionSet):
            facts.disposition = event
            facts.agents.add(event.agent)
        elif not isinstance(event, CallEvent):
            facts.problems.append(f"event {index} ({event.kind}) is not a call's event")
        elif event.call_id == call_id:
            if facts.first is None:
                facts.first = event
            _own(facts, index, event)
        elif (
            isinstance(event, CallEnded)
            and facts.bridged is not None
            and event.call_id == facts.bridged.agent_leg
        ):
            if facts.agent_ended is None and facts.ended is None:
                facts.agent_ended = event  # later: we hung it up after the customer
        else:
            facts.problems.append(
                f"event {index} ({event.kind}) is of call {event.call_id}, not of this call"
            )
    return facts


def _own(facts: _Facts, index: int, event: CallEvent) -> None:
    """One event of the call itself; the first of a kind that can happen once is kept."""
    where = f"event {index} ({event.kind})"
    if facts.transferred is not None and not isinstance(
        event, CallCleared | RecordingClosed | RecordingFailed | AnsweringClassified
    ):
        return  # the customer leg now belongs to the new attempt
    if facts.ended is not None and isinstance(
        event, CallProgress | CallAnswered | CallBridged | MediaRenegotiated | CallTransferred
    ):
        facts.problems.append(f"{where} after the call ended")
        return
    match event:
        case CallAssigned():
            # An inbound call may be assigned after it arrived; an outbound one is
            # assigned before its INVITE.
            if facts.assigned is not None:
                facts.problems.append(f"{where}: a second call_assigned")
            facts.assigned = facts.assigned or event
        case CallStarted() | IncomingCall():
            if facts.started is not None or facts.incoming is not None:
                facts.problems.append(f"{where}: the call already started")
            elif isinstance(event, CallStarted):
                facts.started = event
            else:
                facts.incoming = event
        case CallProgress():
            facts.progress = facts.progress or event
        case CallAnswered():
            if facts.answered is not None:
                facts.problems.append(f"{where}: a second answer")
            facts.answered = facts.answered or event
        case CallBridged():
            if facts.bridged is not None:
                facts.problems.append(f"{where}: a second bridge")
            facts.bridged = facts.bridged or event
        case CallEnded():
            if facts.ended is not None:
                facts.problems.append(f"{where}: a second end")
            facts.ended = facts.ended or event
        case CallCleared():
            if facts.cleared is not None:
                facts.problems.append(f"{where}: a second call_cleared")
            facts.cleared = facts.cleared or event
        case CallTransferred():
            facts.transferred = event
        case MediaRenegotiated():
            facts.holds.append(event)
        case MediaTimeout():
            facts.media_timeout = facts.media_timeout or event
        case AnsweringClassified():
            facts.classified = event
        case EarlyMediaScreened():
            facts.screened = facts.screened or event
        case RecordingClosed():
            facts.recording = event
        case RecordingFailed():
            facts.recording_failed = event
        case _:
            pass  # DTMF and future kinds say nothing the record holds


def _answered_by(facts: _Facts) -> AnsweredBy:
    if facts.classified is None:
        return AnsweredBy.UNKNOWN
    found = _ANSWERED_BY.get(facts.classified.answered_by)
    if found is None:
        facts.problems.append(
            f"answering_classified: {facts.classified.answered_by!r} is not one of "
            + ", ".join(_ANSWERED_BY)
        )
        return AnsweredBy.UNKNOWN
    return found


def _ms(start: float, end: float) -> int:
    return max(0, round((end - start) * 1000))


def _end(facts: _Facts) -> tuple[float, int | None]:
    """The attempt's end: monotonic instant (for durations) and wall instant (if known)."""
    if facts.transferred is not None:
        return facts.transferred.mono, facts.transferred.at_ms
    if facts.ended is not None:
        return facts.ended.mono, facts.ended.at_ms
    if facts.cleared is not None:
        return facts.cleared.mono, facts.cleared.at_ms
    return facts.last_mono, None


def _held_ms(facts: _Facts, talk_from: float, talk_to: float) -> int:
    total = 0
    held_since: float | None = None
    for change in facts.holds:
        if change.held and held_since is None:
            held_since = change.mono
        elif not change.held and held_since is not None:
            total += _ms(max(held_since, talk_from), min(change.mono, talk_to))
            held_since = None
    if held_since is not None:
        total += _ms(max(held_since, talk_from), talk_to)
    return total


def _outcome(facts: _Facts) -> Outcome:
    if facts.transferred is not None:
        return Outcome.TRANSFERRED
    if facts.ended is None:
        return Outcome.INTERRUPTED
    outcome = Outcome(facts.ended.outcome.value)
    if outcome is Outcome.CANCELLED and facts.screened is not None:
        return Outcome(facts.screened.outcome.value)
    if (
        outcome is Outcome.CANCELLED
        and facts.cleared is not None
        and facts.cleared.reason == RING_TIMEOUT
    ):
        return Outcome.NO_ANSWER
    return outcome


def _hangup_by(facts: _Facts) -> str | None:
    if facts.cleared is not None:
        return facts.cleared.by.value
    if facts.agent_ended is not None and facts.agent_ended.hangup_by is HangupBy.REMOTE:
        return "agent"
    if facts.ended is None or facts.transferred is not None or facts.ended.hangup_by is None:
        return None
    return "customer" if facts.ended.hangup_by is HangupBy.REMOTE else "system"


def _end_reason(facts: _Facts) -> str:
    if facts.cleared is not None and facts.cleared.reason:
        return facts.cleared.reason
    if facts.transferred is not None:
        moved = facts.transferred
        return f"transferred to {moved.to_agent} as {moved.new_call_id}"
    return facts.ended.reason if facts.ended is not None else ""


def _wrap_up_ms(facts: _Facts) -> int | None:
    entered: float | None = None
    for change in facts.agent_changes:
        if entered is None and change.state == WRAP_UP:
            entered = change.mono
        elif entered is not None and change.previous == WRAP_UP:
            return _ms(entered, change.mono)
    return None if entered is None else _ms(entered, facts.last_mono)


def _recording(event: RecordingClosed | None) -> RecordingRef | None:
    if event is None:
        return None
    return RecordingRef(
        path=event.path,
        sha256=event.sha256,
        duration_ms=event.duration_ms,
        size_bytes=event.size_bytes,
        agent_speech_ms=event.agent_speech_ms,
        customer_speech_ms=event.customer_speech_ms,
        repaired=event.repaired,
    )


def _record(
    facts: _Facts, first: CallEvent, rule: EffectiveRule, answered_by: AnsweredBy
) -> CallRecord:
    assigned, started, incoming = facts.assigned, facts.started, facts.incoming
    progress, answered, bridged = facts.progress, facts.answered, facts.bridged
    end_mono, ended_at_ms = _end(facts)
    outcome = _outcome(facts)
    talk_ms = _ms(bridged.mono, end_mono) if bridged is not None else 0
    ring_ms = 0
    if progress is not None:
        ring_ms = _ms(progress.mono, answered.mono if answered is not None else end_mono)
    recording = _recording(facts.recording)
    disposition = facts.disposition.code if facts.disposition is not None else None
    effective = (
        bridged is not None
        and outcome in (Outcome.ANSWERED, Outcome.TRANSFERRED)
        and rule.judge(
            talk_ms=talk_ms,
            answered_by=answered_by,
            customer_speech_ms=recording.customer_speech_ms if recording is not None else None,
            disposition=disposition,
        )
    )
    number = ""
    if assigned is not None:
        number = assigned.number
    elif started is not None:
        number = started.target
    elif incoming is not None:
        number = incoming.caller
    direction = "inbound" if incoming is not None else "outbound"
    agent = next(iter(facts.agents)) if len(facts.agents) == 1 else None
    return CallRecord(
        call_id=facts.call_id,
        campaign=assigned.campaign if assigned is not None else None,
        lead_id=assigned.lead_id if assigned is not None else None,
        agent=(assigned.agent if assigned is not None else None) or agent,
        direction=assigned.direction.value if assigned is not None else direction,
        mode=assigned.mode if assigned is not None else None,
        number=number,
        trunk=(assigned.trunk if assigned is not None else None)
        or (started.trunk if started is not None else None),
        caller_id=assigned.caller_id if assigned is not None else None,
        attempt_of=assigned.attempt_of if assigned is not None else None,
        created_at_ms=first.at_ms,
        ringing_at_ms=progress.at_ms if progress is not None else None,
        answered_at_ms=answered.at_ms if answered is not None else None,
        bridged_at_ms=bridged.at_ms if bridged is not None else None,
        ended_at_ms=ended_at_ms,
        ring_ms=ring_ms,
        talk_ms=talk_ms,
        billable_ms=_ms(answered.mono, end_mono) if answered is not None else 0,
        held_ms=_held_ms(facts, bridged.mono, end_mono) if bridged is not None else 0,
        outcome=outcome,
        sip_status=facts.ended.status if facts.ended is not None else None,
        q850_cause=facts.ended.q850_cause if facts.ended is not None else None,
        hangup_by=_hangup_by(facts),
        end_reason=_end_reason(facts),
        answered_by=answered_by,
        abandoned=(
            answered is not None
            and bridged is None
            and answered_by is not AnsweredBy.MACHINE
            and outcome not in (Outcome.TRANSFERRED, Outcome.INTERRUPTED)
        ),
        media_timeout_leg=facts.media_timeout.leg if facts.media_timeout is not None else None,
        wrap_up_ms=_wrap_up_ms(facts),
        disposition=disposition,
        disposition_note=facts.disposition.note if facts.disposition is not None else "",
        callback_at_ms=facts.disposition.callback_at_ms if facts.disposition else None,
        effective=effective,
        effective_rule=rule.ref,
        recording=recording,
        recording_error=facts.recording_failed.reason if facts.recording_failed else None,
    )
