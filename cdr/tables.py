"""The ``cdrs`` table: one row per call attempt, open while the call runs, closed once.

A row is inserted ``open`` when the call starts (a snapshot that later
updates refresh) and becomes ``closed`` exactly once, with the finished
``CallRecord``; a closed row is never rewritten (only ``qa_score``, which QA
sets afterwards). The CHECK constraints keep that state honest on every
database: ``closed_at_ms`` is set exactly when the row is closed, durations
are never negative, and a recording is either wholly described or absent.

Every ``CallRecord`` field is a column of the same name; the recording's
fields are flattened (``recording_path`` ... ``customer_speech_ms``). Columns
holding free text (reasons, paths, errors) are unbounded TEXT so no accepted
record is ever refused for its length; identifiers are bounded and the store
checks their lengths before writing.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .models import CdrBase
from .record import AnsweredBy, Outcome

CALL_ID_LENGTH = 64
ID_LENGTH = 64  # campaign, lead, agent, trunk and node ids
NUMBER_LENGTH = 64  # as dialed; E.164 is at most 16 characters
SHORT_LENGTH = 16  # direction, mode, hangup_by, answered_by, media_timeout_leg
OUTCOME_LENGTH = 32
DISPOSITION_LENGTH = 64
RULE_LENGTH = 128  # "name@version"
SHA256_LENGTH = 64  # hex digest


class CdrStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


def one_of(column: str, values: Iterable[str]) -> str:
    """SQL text of a CHECK that ``column`` holds one of ``values``."""
    listed = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({listed})"


DURATION_COLUMNS = ("ring_ms", "talk_ms", "billable_ms", "held_ms")
RECORDING_COLUMNS = (
    "recording_path",
    "recording_sha256",
    "recording_duration_ms",
    "recording_size_bytes",
    "agent_speech_ms",
    "customer_speech_ms",
    "recording_repaired",
)
_RECORDING_ALL_NULL = " AND ".join(f"{column} IS NULL" for column in RECORDING_COLUMNS)
_RECORDING_NONE_NULL = " AND ".join(f"{column} IS NOT NULL" for column in RECORDING_COLUMNS)


class CdrRow(CdrBase):
    __tablename__ = "cdrs"
    __table_args__ = (
        Index(None, "created_at_ms", "call_id"),
        Index(None, "ended_at_ms"),
        Index(None, "agent", "created_at_ms"),
        Index(None, "campaign", "created_at_ms"),
        Index(None, "status", "node"),
        CheckConstraint(one_of("status", CdrStatus), name="status"),
        CheckConstraint(
            f"(status = '{CdrStatus.CLOSED.value}' AND closed_at_ms IS NOT NULL)"
            f" OR (status = '{CdrStatus.OPEN.value}' AND closed_at_ms IS NULL)",
            name="closed_at",
        ),
        CheckConstraint(one_of("outcome", Outcome), name="outcome"),
        CheckConstraint(one_of("answered_by", AnsweredBy), name="answered_by"),
        CheckConstraint(
            " AND ".join(f"{column} >= 0" for column in DURATION_COLUMNS), name="durations"
        ),
        CheckConstraint(f"({_RECORDING_ALL_NULL}) OR ({_RECORDING_NONE_NULL})", name="recording"),
    )

    call_id: Mapped[str] = mapped_column(String(CALL_ID_LENGTH), primary_key=True)
    campaign: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    lead_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    agent: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    direction: Mapped[str] = mapped_column(String(SHORT_LENGTH))
    mode: Mapped[str | None] = mapped_column(String(SHORT_LENGTH))
    number: Mapped[str] = mapped_column(String(NUMBER_LENGTH))
    trunk: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    caller_id: Mapped[str | None] = mapped_column(String(NUMBER_LENGTH))
    attempt_of: Mapped[str | None] = mapped_column(String(CALL_ID_LENGTH))

    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    ringing_at_ms: Mapped[int | None] = mapped_column(BigInteger)
    answered_at_ms: Mapped[int | None] = mapped_column(BigInteger)
    bridged_at_ms: Mapped[int | None] = mapped_column(BigInteger)
    ended_at_ms: Mapped[int | None] = mapped_column(BigInteger)

    ring_ms: Mapped[int] = mapped_column(BigInteger)
    talk_ms: Mapped[int] = mapped_column(BigInteger)
    billable_ms: Mapped[int] = mapped_column(BigInteger)
    held_ms: Mapped[int] = mapped_column(BigInteger)

    outcome: Mapped[str] = mapped_column(String(OUTCOME_LENGTH))
    sip_status: Mapped[int | None] = mapped_column(Integer)
    q850_cause: Mapped[int | None] = mapped_column(Integer)
    hangup_by: Mapped[str | None] = mapped_column(String(SHORT_LENGTH))
    end_reason: Mapped[str] = mapped_column(Text)
    answered_by: Mapped[str] = mapped_column(String(SHORT_LENGTH))
    abandoned: Mapped[bool] = mapped_column(Boolean)
    media_timeout_leg: Mapped[str | None] = mapped_column(String(SHORT_LENGTH))

    wrap_up_ms: Mapped[int | None] = mapped_column(BigInteger)
    disposition: Mapped[str | None] = mapped_column(String(DISPOSITION_LENGTH))
    disposition_note: Mapped[str] = mapped_column(Text, server_default="")
    callback_at_ms: Mapped[int | None] = mapped_column(BigInteger)

    effective: Mapped[bool] = mapped_column(Boolean)
    effective_rule: Mapped[str] = mapped_column(String(RULE_LENGTH))

    recording_path: Mapped[str | None] = mapped_column(Text)
    recording_sha256: Mapped[str | None] = mapped_column(String(SHA256_LENGTH))
    recording_duration_ms: Mapped[int | None] = mapped_column(BigInteger)
    recording_size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    agent_speech_ms: Mapped[int | None] = mapped_column(BigInteger)
    customer_speech_ms: Mapped[int | None] = mapped_column(BigInteger)
    recording_repaired: Mapped[bool | None] = mapped_column(Boolean)
    recording_error: Mapped[str | None] = mapped_column(Text)

    status: Mapped[str] = mapped_column(String(8))
    opened_at_ms: Mapped[int] = mapped_column(BigInteger)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger)
    closed_at_ms: Mapped[int | None] = mapped_column(BigInteger)
    node: Mapped[str] = mapped_column(String(ID_LENGTH))
    qa_score: Mapped[float | None] = mapped_column(Float)
