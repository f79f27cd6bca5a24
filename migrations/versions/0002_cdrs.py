"""cdrs: one call detail record per call attempt

Revision ID: 0002
Revises: 0001
Create Date: 2024-06-10

Written by hand and frozen: it does not import the models, so later changes
to them cannot change what this revision creates. The CHECK lists are the
``Outcome`` and ``AnsweredBy`` values as of this revision.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OUTCOMES = (
    "'answered', 'busy', 'no_answer', 'invalid_number', 'unavailable', 'declined',"
    " 'cancelled', 'timeout', 'auth_failed', 'trunk_failure', 'rejected', 'transferred',"
    " 'interrupted'"
)
ANSWERED_BY = "'human', 'machine', 'unknown'"
RECORDING = (
    "recording_path",
    "recording_sha256",
    "recording_duration_ms",
    "recording_size_bytes",
    "agent_speech_ms",
    "customer_speech_ms",
    "recording_repaired",
)
RECORDING_ABSENT = " AND ".join(f"{column} IS NULL" for column in RECORDING)
RECORDING_PRESENT = " AND ".join(f"{column} IS NOT NULL" for column in RECORDING)

INDEXES = {
    "ix_cdrs_created_at_ms_call_id": ["created_at_ms", "call_id"],
    "ix_cdrs_ended_at_ms": ["ended_at_ms"],
    "ix_cdrs_agent_created_at_ms": ["agent", "created_at_ms"],
    "ix_cdrs_campaign_created_at_ms": ["campaign", "created_at_ms"],
    "ix_cdrs_status_node": ["status", "node"],
}


def upgrade() -> None:
    op.create_table(
        "cdrs",
        sa.Column("call_id", sa.String(length=64), nullable=False),
        sa.Column("campaign", sa.String(length=64), nullable=True),
        sa.Column("lead_id", sa.String(length=64), nullable=True),
        sa.Column("agent", sa.String(length=64), nullable=True),
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=True),
        sa.Column("number", sa.String(length=64), nullable=False),
        sa.Column("trunk", sa.String(length=64), nullable=True),
        sa.Column("caller_id", sa.String(length=64), nullable=True),
        sa.Column("attempt_of", sa.String(length=64), nullable=True),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("ringing_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("answered_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("bridged_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("ended_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("ring_ms", sa.BigInteger(), nullable=False),
        sa.Column("talk_ms", sa.BigInteger(), nullable=False),
        sa.Column("billable_ms", sa.BigInteger(), nullable=False),
        sa.Column("held_ms", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("sip_status", sa.Integer(), nullable=True),
        sa.Column("q850_cause", sa.Integer(), nullable=True),
        sa.Column("hangup_by", sa.String(length=16), nullable=True),
        sa.Column("end_reason", sa.Text(), nullable=False),
        sa.Column("answered_by", sa.String(length=16), nullable=False),
        sa.Column("abandoned", sa.Boolean(), nullable=False),
        sa.Column("media_timeout_leg", sa.String(length=16), nullable=True),
        sa.Column("wrap_up_ms", sa.BigInteger(), nullable=True),
        sa.Column("disposition", sa.String(length=64), nullable=True),
        sa.Column("callback_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("effective", sa.Boolean(), nullable=False),
        sa.Column("effective_rule", sa.String(length=128), nullable=False),
        sa.Column("recording_path", sa.Text(), nullable=True),
        sa.Column("recording_sha256", sa.String(length=64), nullable=True),
        sa.Column("recording_duration_ms", sa.BigInteger(), nullable=True),
        sa.Column("recording_size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("agent_speech_ms", sa.BigInteger(), nullable=True),
        sa.Column("customer_speech_ms", sa.BigInteger(), nullable=True),
        sa.Column("recording_repaired", sa.Boolean(), nullable=True),
        sa.Column("recording_error", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("opened_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("closed_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("qa_score", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("call_id", name=op.f("pk_cdrs")),
        sa.CheckConstraint("status IN ('open', 'closed')", name=op.f("ck_cdrs_status")),
        sa.CheckConstraint(
            "(status = 'closed' AND closed_at_ms IS NOT NULL)"
            " OR (status = 'open' AND closed_at_ms IS NULL)",
            name=op.f("ck_cdrs_closed_at"),
        ),
        sa.CheckConstraint(f"outcome IN ({OUTCOMES})", name=op.f("ck_cdrs_outcome")),
        sa.CheckConstraint(f"answered_by IN ({ANSWERED_BY})", name=op.f("ck_cdrs_answered_by")),
        sa.CheckConstraint(
            "ring_ms >= 0 AND talk_ms >= 0 AND billable_ms >= 0 AND held_ms >= 0",
            name=op.f("ck_cdrs_durations"),
        ),
        sa.CheckConstraint(
            f"({RECORDING_ABSENT}) OR ({RECORDING_PRESENT})", name=op.f("ck_cdrs_recording")
        ),
    )
    for name, columns in INDEXES.items():
        op.create_index(op.f(name), "cdrs", columns)


def downgrade() -> None:
    for name in reversed(INDEXES):
        op.drop_index(op.f(name), table_name="cdrs")
    op.drop_table("cdrs")
