"""Write a call's events as a readable table, one event a row.

    CALL = table('''
      t(s)    event
      0.000   assigned campaign=c1 lead=L1 agent=a1 number=+8613800000001
      0.010   started target=sip:+8613800000001@trunk trunk=t1
      0.300   progress 180
      4.000   answered
      4.020   bridged agent_leg=leg-a1
      64.020  ended answered status=200 hangup=remote
      64.020  cleared by=customer
      64.021  agent a1 talking->wrap_up
      70.000  disposition a1 sale
      70.001  agent a1 wrap_up->ready
    ''')

The first column is seconds from the call's start: ``mono`` is ``mono0 + t``
and ``at_ms`` is ``at0_ms + round(t * 1000)``. Then a verb, positional words
and ``key=value`` words (shell quoting: ``reason="disk full"``); ``#`` starts
a comment and a ``t(s)`` header line is skipped. Every row takes ``call=ID``
for another call id than the table's (``call=-`` for none, agent rows only).

Verbs (optional parts in brackets):

    assigned   [campaign=] [lead=] [agent=] [mode=progressive] [number=]
               [direction=outbound] [caller_id=] [trunk=] [attempt_of=]
               [record=yes|no]
    started    target= [trunk=]
    incoming   caller= target= [source=]
    progress   STATUS [early]
    answered   [STATUS=200]
    bridged    agent_leg=
    ended      OUTCOME [status=] [cause=] [hangup=remote|local] [reason=]
    cleared    by=agent|customer|system [reason=]
    transferred new=CALL_ID to=AGENT
    held | unheld                       (a re-INVITE put on / took off hold)
    media_timeout LEG [silent=5.0]
    classified human|machine|unknown
    recording  [path=] [sha256=] [duration=ms] [size=] [agent_speech=ms]
               [customer_speech=ms] [repaired]
    recording_failed reason= [path=]
    agent      AGENT PREVIOUS->STATE [reason=] [billable=yes|no]
    disposition AGENT CODE [callback=AT_MS]
    dtmf       LEG DIGIT
    registered EXTENSION                (a phone registration: not a call's event)

A malformed table raises ``ScenarioError`` naming every bad line.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable

from dialer.events import (
    AgentStateChanged,
    AnsweringClassified,
    CallAnswered,
    CallAssigned,
    CallBridged,
    CallCleared,
    CallEnded,
    CallOutcome,
    CallProgress,
    CallStarted,
    CallTransferred,
    ClearedBy,
    Direction,
    DispositionSet,
    DtmfReceived,
    Event,
    HangupBy,
    IncomingCall,
    MediaRenegotiated,
    MediaTimeout,
    PhoneRegistered,
    RecordingClosed,
    RecordingFailed,
)

AT0_MS = 1_700_000_000_000
MONO0 = 1000.0


class ScenarioError(ValueError):
    """A scenario table that cannot be read; the message names every bad line."""


class _Row:
    """One parsed row: its envelope, positional words and keywords, consumed by a verb."""

    def __init__(self, at_ms: int, mono: float, call_id: str, words: list[str]) -> None:
        self.at_ms, self.mono, self.call_id = at_ms, mono, call_id
        self.positional = [w for w in words if "=" not in w]
        self.keywords = dict(w.split("=", 1) for w in words if "=" in w)

    def take(self, key: str, default: str | None = None) -> str | None:
        return self.keywords.pop(key, default)

    def need(self, key: str) -> str:
        value = self.keywords.pop(key, None)
        if value is None:
            raise ScenarioError(f"needs {key}=")
        return value

    def number(self, key: str) -> int | None:
        value = self.take(key)
        return None if value is None else int(value)

    def word(self, index: int, what: str) -> str:
        if index >= len(self.positional):
            raise ScenarioError(f"needs {what}")
        return self.positional[index]

    def flag(self, name: str) -> bool:
        if name in self.positional:
            self.positional.remove(name)
            return True
        return False


def _assigned(row: _Row) -> Event:
    return CallAssigned(
        at_ms=row.at_ms,
        mono=row.mono,
        call_id=row.call_id,
        campaign=row.take("campaign"),
        lead_id=row.take("lead"),
        agent=row.take("agent"),
        mode=row.take("mode") or "progressive",
        direction=Direction(row.take("direction") or "outbound"),
        number=row.take("number", "") or "",
        caller_id=row.take("caller_id"),
        trunk=row.take("trunk"),
        attempt_of=row.take("attempt_of"),
        record=row.take("record") == "yes",
    )


def _ended(row: _Row) -> Event:
    hangup = row.take("hangup")
    return CallEnded(
        at_ms=row.at_ms,
        mono=row.mono,
        call_id=row.call_id,
        outcome=CallOutcome(row.word(0, "an outcome")),
        status=row.number("status"),
        q850_cause=row.number("cause"),
        hangup_by=HangupBy(hangup) if hangup is not None else None,
        reason=row.take("reason", "") or "",
    )


def _recording(row: _Row) -> Event:
    return RecordingClosed(
        at_ms=row.at_ms,
        mono=row.mono,
        call_id=row.call_id,
        path=row.take("path", f"/rec/{row.call_id}.wav") or "",
        sha256=row.take("sha256", "0" * 64) or "",
        duration_ms=row.number("duration") or 0,
        size_bytes=row.number("size") or 0,
        agent_speech_ms=row.number("agent_speech") or 0,
        customer_speech_ms=row.number("customer_speech") or 0,
        overlap_ms=row.number("overlap") or 0,
        longest_silence_ms=row.number("silence") or 0,
        repaired=row.flag("repaired"),
    )


def _agent(row: _Row) -> Event:
    previous, arrow, state = row.word(1, "PREVIOUS->STATE").partition("->")
    if not arrow or not previous or not state:
        raise ScenarioError(f"{row.positional[1]!r} is not PREVIOUS->STATE")
    billable = row.take("billable")
    return AgentStateChanged(
        at_ms=row.at_ms,
        mono=row.mono,
        agent=row.word(0, "an agent"),
        previous=previous,
        state=state,
        reason=row.take("reason"),
        billable=None if billable is None else billable == "yes",
        call_id=None if row.call_id == "-" else row.call_id,
    )


def _simple(row: _Row, verb: str) -> Event:
    at_ms, mono, call_id = row.at_ms, row.mono, row.call_id
    match verb:
        case "started":
            return CallStarted(
                at_ms=at_ms,
                mono=mono,
                call_id=call_id,
                target=row.need("target"),
                trunk=row.take("trunk"),
            )
        case "incoming":
            return IncomingCall(
                at_ms=at_ms,
                mono=mono,
                call_id=call_id,
                caller=row.need("caller"),
                target=row.need("target"),
                source=row.take("source", "pbx") or "",
            )
        case "progress":
            status = int(row.word(0, "a status"))
            return CallProgress(
                at_ms=at_ms,
                mono=mono,
                call_id=call_id,
                status=status,
                early_media=row.flag("early"),
            )
        case "answered":
            status = int(row.positional[0]) if row.positional else 200
            return CallAnswered(at_ms=at_ms, mono=mono, call_id=call_id, status=status)
        case "bridged":
            return CallBridged(
                at_ms=at_ms, mono=mono, call_id=call_id, agent_leg=row.need("agent_leg")
            )
        case "cleared":
            return CallCleared(
                at_ms=at_ms,
                mono=mono,
                call_id=call_id,
                by=ClearedBy(row.need("by")),
                reason=row.take("reason", "") or "",
            )
        case "transferred":
            return CallTransferred(
                at_ms=at_ms,
                mono=mono,
                call_id=call_id,
                new_call_id=row.need("new"),
                to_agent=row.need("to"),
            )
        case "held" | "unheld":
            return MediaRenegotiated(at_ms=at_ms, mono=mono, call_id=call_id, held=verb == "held")
        case "media_timeout":
            return MediaTimeout(
                at_ms=at_ms,
                mono=mono,
                call_id=call_id,
                leg=row.word(0, "a leg"),
                silent_s=float(row.take("silent", "5.0") or 5.0),
            )
        case "classified":
            return AnsweringClassified(
                at_ms=at_ms, mono=mono, call_id=call_id, answered_by=row.word(0, "who answered")
            )
        case "recording_failed":
            return RecordingFailed(
                at_ms=at_ms,
                mono=mono,
                call_id=call_id,
                reason=row.need("reason"),
                path=row.take("path", f"/rec/{call_id}.wav") or "",
            )
        case "disposition":
            return DispositionSet(
                at_ms=at_ms,
                mono=mono,
                call_id=call_id,
                agent=row.word(0, "an agent"),
                code=row.word(1, "a code"),
                callback_at_ms=row.number("callback"),
            )
        case "dtmf":
            return DtmfReceived(
                at_ms=at_ms,
                mono=mono,
                call_id=call_id,
                leg=row.word(0, "a leg"),
                digit=row.word(1, "a digit"),
                duration_ms=100,
            )
        case "registered":
            return PhoneRegistered(
                at_ms=at_ms,
                mono=mono,
                extension=row.word(0, "an extension"),
                contact="sip:phone@127.0.0.1",
                expires=3600,
            )
    raise ScenarioError(f"unknown event {verb!r}")


_VERBS: dict[str, Callable[[_Row], Event]] = {
    "assigned": _assigned,
    "ended": _ended,
    "recording": _recording,
    "agent": _agent,
}
_SIMPLE = {
    "started",
    "incoming",
    "progress",
    "answered",
    "bridged",
    "cleared",
    "transferred",
    "held",
    "unheld",
    "media_timeout",
    "classified",
    "recording_failed",
    "disposition",
    "dtmf",
    "registered",
}


def _row(line: str, call_id: str, at0_ms: int, mono0: float) -> Event | None:
    words = shlex.split(line, comments=True)
    if not words or words[0] == "t(s)":
        return None
    if len(words) < 2:
        raise ScenarioError("needs a time and an event")
    try:
        t = float(words[0])
    except ValueError:
        raise ScenarioError(f"{words[0]!r} is not a time in seconds") from None
    verb, rest = words[1], words[2:]
    row = _Row(at0_ms + round(t * 1000), mono0 + t, call_id, rest)
    row.call_id = row.take("call", call_id) or call_id
    if verb in _VERBS:
        event = _VERBS[verb](row)
    elif verb in _SIMPLE:
        event = _simple(row, verb)
    else:
        raise ScenarioError(f"unknown event {verb!r}")
    if row.keywords:
        raise ScenarioError(f"{verb}: unknown keys {', '.join(sorted(row.keywords))}")
    return event


def table(
    text: str, *, call_id: str = "call-1", at0_ms: int = AT0_MS, mono0: float = MONO0
) -> list[Event]:
    """The events of a scenario table, in its order."""
    events: list[Event] = []
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            event = _row(line, call_id, at0_ms, mono0)
        except (ValueError, IndexError) as error:
            problems.append(f"line {number} ({line.strip()!r}): {error}")
            continue
        if event is not None:
            events.append(event)
    if problems:
        raise ScenarioError("; ".join(problems))
    return events


def ms(t: float, at0_ms: int = AT0_MS) -> int:
    """The wall instant of table time ``t``, for expected rows."""
    return at0_ms + round(t * 1000)
