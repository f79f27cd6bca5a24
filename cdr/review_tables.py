"""The tables of the review side: the recordings index, QA scores and the audit log.

``recordings`` links every recording file to its call id (never by time) and
carries its retention: when it may be purged, whether a legal hold keeps it,
and what became of it. ``qa_scores`` keeps every reviewer's score of a call,
the items as given, under the scorecard's name and version. ``audit_log`` is
the trail of who played, exported, scored, held, released or purged what,
including the attempts that were refused.

The schema is owned by ``migrations/versions/0003_recordings_qa_audit.py``;
these models describe the same tables. The invariants are CHECK constraints,
so no code path can, say, purge a held recording.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from .models import CdrBase
from .tables import CALL_ID_LENGTH, CdrRow, one_of

ID_LENGTH = 64  # campaign, agent and scorecard names
WHO_LENGTH = 128  # a user, "retention", "node-3/agent-17"
PATH_LENGTH = 1024
SHA256_HEX_LENGTH = 64
STATUS_LENGTH = 16


class RecordingStatus(StrEnum):
    PRESENT = "present"  # the file is where the index says (as far as we last knew)
    PURGED = "purged"  # deleted by retention: the row stays as the record that it existed
    MISSING = "missing"  # the file was gone when we looked: nobody here deleted it


class AuditAction(StrEnum):
    PLAY = "play"
    EXPORT = "export"
    SCORE = "score"
    HOLD = "hold"
    RELEASE = "release"
    PURGE = "purge"


class RecordingRow(CdrBase):
    __tablename__ = "recordings"
    __table_args__ = (
        Index(None, "status", "purge_after_ms"),
        CheckConstraint(one_of("status", RecordingStatus), name="status"),
        CheckConstraint(f"length(sha256) = {SHA256_HEX_LENGTH}", name="sha256"),
        CheckConstraint(
            "duration_ms >= 0 AND size_bytes >= 0 AND purge_after_ms >= created_at_ms",
            name="sizes",
        ),
        CheckConstraint(
            "NOT legal_hold OR (hold_reason IS NOT NULL AND hold_by IS NOT NULL)", name="hold"
        ),
        CheckConstraint("(status = 'purged') = (purged_at_ms IS NOT NULL)", name="purged_at"),
        CheckConstraint("NOT (legal_hold AND status = 'purged')", name="held_not_purged"),
    )

    call_id: Mapped[str] = mapped_column(String(CALL_ID_LENGTH), primary_key=True)
    path: Mapped[str] = mapped_column(String(PATH_LENGTH))
    sha256: Mapped[str] = mapped_column(String(SHA256_HEX_LENGTH))
    duration_ms: Mapped[int] = mapped_column(BigInteger)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    campaign: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    agent: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    purge_after_ms: Mapped[int] = mapped_column(BigInteger)
    legal_hold: Mapped[bool] = mapped_column(Boolean)
    hold_reason: Mapped[str | None] = mapped_column(Text)
    hold_by: Mapped[str | None] = mapped_column(String(WHO_LENGTH))
    purged_at_ms: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(STATUS_LENGTH))


class QaScoreRow(CdrBase):
    __tablename__ = "qa_scores"
    __table_args__ = (
        Index(None, "call_id"),
        Index(None, "reviewer", "scored_at_ms"),
        CheckConstraint("total >= 0 AND total <= 100", name="total"),
        CheckConstraint("NOT failed OR total = 0", name="failed_is_zero"),
        CheckConstraint("scorecard_version >= 1", name="scorecard_version"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey(CdrRow.call_id))
    scorecard: Mapped[str] = mapped_column(String(ID_LENGTH))
    scorecard_version: Mapped[int] = mapped_column(Integer)
    reviewer: Mapped[str] = mapped_column(String(WHO_LENGTH))
    total: Mapped[float] = mapped_column(Float)
    failed: Mapped[bool] = mapped_column(Boolean)
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    scored_at_ms: Mapped[int] = mapped_column(BigInteger)
    comment: Mapped[str] = mapped_column(Text, server_default="")


class AuditRow(CdrBase):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index(None, "at_ms"),
        Index(None, "call_id", "at_ms"),
        CheckConstraint(one_of("action", AuditAction), name="action"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at_ms: Mapped[int] = mapped_column(BigInteger)
    who: Mapped[str] = mapped_column(String(WHO_LENGTH))
    action: Mapped[str] = mapped_column(String(STATUS_LENGTH))
    # No foreign key and no length: refused attempts on unknown or malformed ids are logged too.
    call_id: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[str] = mapped_column(Text)
    ok: Mapped[bool] = mapped_column(Boolean)
