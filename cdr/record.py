"""The call detail record: one row per call attempt, as managers and QA read it.

A ``CallRecord`` is what the builder folds a call's events into and what the
store, the exports, the reports and the quotas read. Instants are UTC
milliseconds since the epoch (what is shown and stored); durations are
milliseconds measured on the monotonic clock of the node that carried the
call, so a wall-clock step never stretches a talk time.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    """How the attempt ended: the customer leg's outcome, or what the CDR layer knows."""

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
    TRANSFERRED = "transferred"  # this attempt handed the customer to another agent
    INTERRUPTED = "interrupted"  # the node died before the call ended: closed at restart


class AnsweredBy(StrEnum):
    HUMAN = "human"
    MACHINE = "machine"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingRef:
    """Where the call's two-channel recording is and what it holds."""

    path: str
    sha256: str
    duration_ms: int
    size_bytes: int
    agent_speech_ms: int
    customer_speech_ms: int
    repaired: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRecord:
    """One call attempt, from its creation to the end of the agent's wrap-up."""

    call_id: str
    campaign: str | None = None
    lead_id: str | None = None
    agent: str | None = None
    direction: str = "outbound"
    mode: str | None = None
    number: str = ""  # E.164; views mask it for roles that must not see it
    trunk: str | None = None
    caller_id: str | None = None
    attempt_of: str | None = None  # the first attempt of a failover or transfer chain

    created_at_ms: int
    ringing_at_ms: int | None = None
    answered_at_ms: int | None = None
    bridged_at_ms: int | None = None
    ended_at_ms: int | None = None

    ring_ms: int = 0  # first provisional (or creation) to answer or end
    talk_ms: int = 0  # bridged to end: the customer and the agent could hear each other
    billable_ms: int = 0  # answered to end: what the carrier bills
    held_ms: int = 0  # customer on hold within the talk time

    outcome: Outcome
    sip_status: int | None = None
    q850_cause: int | None = None
    hangup_by: str | None = None  # "agent", "customer", "system"
    end_reason: str = ""
    answered_by: AnsweredBy = AnsweredBy.UNKNOWN
    abandoned: bool = False  # a live answer that reached no agent
    media_timeout_leg: str | None = None

    wrap_up_ms: int | None = None
    disposition: str | None = None
    disposition_note: str = ""  # what the agent wrote with the disposition
    callback_at_ms: int | None = None

    effective: bool = False
    effective_rule: str = ""  # "name@version" of the rule that judged it

    recording: RecordingRef | None = None
    recording_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
