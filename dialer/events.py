"""Domain events: the contract between the telephony core and its consumers.

CDRs, quotas, metrics and the MQTT feed only ever see these. Every event is a
frozen, slotted dataclass carrying the schema version, the call id (one id per
call attempt, from creation to the end of wrap-up), the wall-clock instant in
UTC milliseconds (for what is shown and stored) and the monotonic instant in
seconds (for every duration). Adding a field is allowed; renaming one or
changing its meaning needs a new ``SCHEMA_VERSION``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

SCHEMA_VERSION = 1


class CallOutcome(StrEnum):
    """How a customer (or agent) leg ended, as the rest of the floor sees it."""

    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    INVALID_NUMBER = "invalid_number"
    UNAVAILABLE = "unavailable"
    DECLINED = "declined"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    AUTH_FAILED = "auth_failed"
    TRUNK_FAILURE = "trunk_failure"
    REJECTED = "rejected"


class HangupBy(StrEnum):
    LOCAL = "local"
    REMOTE = "remote"


# Q.850 causes that say more than the SIP status does: carriers often map
# "powered off" and "unallocated number" to a bare 480 or 404, and the cause
# in the Reason header (RFC 3326) is the only reliable signal.
_CAUSE_OUTCOME: dict[int, CallOutcome] = {
    1: CallOutcome.INVALID_NUMBER,  # unallocated (unassigned) number
    3: CallOutcome.INVALID_NUMBER,  # no route to destination
    17: CallOutcome.BUSY,  # user busy
    18: CallOutcome.NO_ANSWER,  # no user responding
    19: CallOutcome.NO_ANSWER,  # no answer from user (user alerted)
    20: CallOutcome.UNAVAILABLE,  # subscriber absent (powered off)
    21: CallOutcome.DECLINED,  # call rejected
    22: CallOutcome.INVALID_NUMBER,  # number changed
    27: CallOutcome.UNAVAILABLE,  # destination out of order
    28: CallOutcome.INVALID_NUMBER,  # invalid number format
    34: CallOutcome.TRUNK_FAILURE,  # no circuit/channel available
    38: CallOutcome.TRUNK_FAILURE,  # network out of order
    41: CallOutcome.TRUNK_FAILURE,  # temporary failure
    42: CallOutcome.TRUNK_FAILURE,  # switching equipment congestion
}

_STATUS_OUTCOME: dict[int, CallOutcome] = {
    401: CallOutcome.AUTH_FAILED,
    403: CallOutcome.DECLINED,
    404: CallOutcome.INVALID_NUMBER,
    407: CallOutcome.AUTH_FAILED,
    408: CallOutcome.TIMEOUT,
    410: CallOutcome.INVALID_NUMBER,
    480: CallOutcome.UNAVAILABLE,
    484: CallOutcome.INVALID_NUMBER,
    486: CallOutcome.BUSY,
    487: CallOutcome.CANCELLED,
    600: CallOutcome.BUSY,
    603: CallOutcome.DECLINED,
    604: CallOutcome.INVALID_NUMBER,
}


def classify_final(status: int, q850_cause: int | None = None) -> CallOutcome:
    """Map a final SIP status (and Q.850 cause, if any) to an outcome."""
    if 200 <= status < 300:
        return CallOutcome.ANSWERED
    if status == 487:
        # Our own CANCEL: the cause (often 16 or 31) says nothing about the callee.
        return CallOutcome.CANCELLED
    if q850_cause is not None and q850_cause in _CAUSE_OUTCOME:
        return _CAUSE_OUTCOME[q850_cause]
    if status in _STATUS_OUTCOME:
        return _STATUS_OUTCOME[status]
    if 500 <= status < 600:
        return CallOutcome.TRUNK_FAILURE
    return CallOutcome.REJECTED


def parse_q850_reason(value: str) -> int | None:
    """The cause of a ``Reason: Q.850;cause=17;text="..."`` header (RFC 3326)."""
    protocol, _, params = value.partition(";")
    if protocol.strip().upper() != "Q.850":
        return None
    for param in params.split(";"):
        name, _, raw = param.partition("=")
        if name.strip().lower() == "cause":
            try:
                return int(raw.strip().strip('"'))
            except ValueError:
                return None
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Common envelope of every event."""

    kind: ClassVar[str] = "event"
    at_ms: int
    mono: float

    def to_json(self) -> str:
        body: dict[str, Any] = {"schema": SCHEMA_VERSION, "kind": self.kind}
        body.update(dataclasses.asdict(self))
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEvent(Event):
    """Something that happened to one call attempt, keyed by its call id."""

    call_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CallStarted(CallEvent):
    kind: ClassVar[str] = "call_started"
    target: str
    trunk: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallProgress(CallEvent):
    """A provisional response: 180 ringing, or 183 with early media."""

    kind: ClassVar[str] = "call_progress"
    status: int
    early_media: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class CallAnswered(CallEvent):
    kind: ClassVar[str] = "call_answered"
    status: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CallEnded(CallEvent):
    """The final word on a leg: outcome, SIP status and Q.850 cause."""

    kind: ClassVar[str] = "call_ended"
    outcome: CallOutcome
    status: int | None
    q850_cause: int | None
    hangup_by: HangupBy | None
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class IncomingCall(CallEvent):
    kind: ClassVar[str] = "incoming_call"
    caller: str
    target: str
    source: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PhoneRegistered(Event):
    kind: ClassVar[str] = "phone_registered"
    extension: str
    contact: str
    expires: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PhoneUnregistered(Event):
    kind: ClassVar[str] = "phone_unregistered"
    extension: str
    contact: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaRenegotiated(CallEvent):
    """A re-INVITE on an established leg was answered: new address, or hold/unhold.

    ``held`` is true when the remote no longer sends us media (sendonly on its
    side of a hold, or inactive).
    """

    kind: ClassVar[str] = "media_renegotiated"
    held: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class CallBridged(CallEvent):
    """Customer and agent audio are relayed from ``mono`` on: talk time starts here."""

    kind: ClassVar[str] = "call_bridged"
    agent_leg: str  # the agent leg's SIP Call-ID (a nailed-up leg outlives the call)


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaTimeout(CallEvent):
    """No RTP from a connected party for ``silent_s``: a dead line, so the call is ended."""

    kind: ClassVar[str] = "media_timeout"
    leg: str  # "customer" or "agent"
    silent_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class DtmfReceived(CallEvent):
    kind: ClassVar[str] = "dtmf_received"
    leg: str
    digit: str
    duration_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingClosed(CallEvent):
    """A call's two-channel recording is complete on disk (agent left, customer right)."""

    kind: ClassVar[str] = "recording_closed"
    path: str
    sha256: str
    duration_ms: int
    size_bytes: int
    agent_speech_ms: int
    customer_speech_ms: int
    overlap_ms: int
    longest_silence_ms: int
    repaired: bool = False  # closed at start-up after a crash, not by the call's end


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingFailed(CallEvent):
    """The recording stopped (a full disk, say); the call itself goes on."""

    kind: ClassVar[str] = "recording_failed"
    path: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentStateChanged(Event):
    """An agent's state moved; ``mono`` is the instant, so time in each state is exact.

    ``reason`` is the pause reason code (or the system's, e.g. ``phone_lost``);
    ``billable`` says whether that pause counts as paid working time.
    """

    kind: ClassVar[str] = "agent_state_changed"
    agent: str
    previous: str
    state: str
    reason: str | None = None
    billable: bool | None = None
    call_id: str | None = None


class Direction(StrEnum):
    OUTBOUND = "outbound"
    INBOUND = "inbound"


class ClearedBy(StrEnum):
    """Who ended a bridged (or bridging) call, as a manager reads a CDR."""

    AGENT = "agent"
    CUSTOMER = "customer"
    SYSTEM = "system"  # media timeout, ring timeout, sign-out, shutdown


@dataclass(frozen=True, slots=True, kw_only=True)
class CallAssigned(CallEvent):
    """What a call attempt is for: published by the dialer before its INVITE goes out.

    ``attempt_of`` is the call id of the first attempt of a chain (a trunk
    failover, a transfer): each attempt keeps its own id and its own CDR.
    """

    kind: ClassVar[str] = "call_assigned"
    campaign: str | None
    lead_id: str | None
    agent: str | None
    mode: str
    direction: Direction
    number: str
    caller_id: str | None = None
    trunk: str | None = None
    attempt_of: str | None = None
    record: bool = False  # a recording follows the call's end if it is bridged


@dataclass(frozen=True, slots=True, kw_only=True)
class CallCleared(CallEvent):
    """The call as a whole is over (both legs told to end), and who ended it."""

    kind: ClassVar[str] = "call_cleared"
    by: ClearedBy
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class CallTransferred(CallEvent):
    """The customer moved to another agent: this attempt ends, ``new_call_id`` begins."""

    kind: ClassVar[str] = "call_transferred"
    new_call_id: str
    to_agent: str


DISPOSITION_NOTE_MAX = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class DispositionSet(CallEvent):
    """The agent's result for the call (in wrap-up); ``callback_at_ms`` for a callback."""

    kind: ClassVar[str] = "disposition_set"
    agent: str
    code: str
    callback_at_ms: int | None = None
    note: str = ""  # the agent's free text, at most DISPOSITION_NOTE_MAX characters


@dataclass(frozen=True, slots=True, kw_only=True)
class AnsweringClassified(CallEvent):
    """Who answered: a live person, a machine (voicemail, announcement) or unknown."""

    kind: ClassVar[str] = "answering_classified"
    answered_by: str  # "human", "machine" or "unknown"


@dataclass(frozen=True, slots=True, kw_only=True)
class EarlyMediaScreened(CallEvent):
    """A ringing leg's early audio (183) was classified, and the call released for it.

    ``verdict`` is the screening class (``sit``, ``announcement``), ``sit`` its
    SIT subtype if any, ``outcome`` what the call ends as (its CDR's outcome),
    ``after_s`` the audio it took to decide.
    """

    kind: ClassVar[str] = "early_media_screened"
    verdict: str
    outcome: CallOutcome
    after_s: float
    sit: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PacingDecided(Event):
    """One predictive pacing decision of a campaign, with every input it used.

    Published at most once a second per campaign (and whenever calls are
    launched), for metrics and boards; rates are shares of live answers.
    """

    kind: ClassVar[str] = "pacing_decided"
    campaign: str
    launch: int
    mode: str  # "predictive", "progressive" (held back near the cap) or "idle"
    limit: str  # what bounded the launch count
    dial_level: float  # calls in flight per working agent
    ready: int
    working: int
    ringing: int
    waiting: int
    answer_rate: float
    expected_free: float
    expected_answers: float
    risk: float
    occupancy: float
    abandon_rate_today: float
    abandon_rate_30d: float
