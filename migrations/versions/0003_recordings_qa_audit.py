"""recordings index, QA scores and the audit log

Revision ID: 0003
Revises: 0002
Create Date: 2024-06-12

Written by hand and frozen: it does not import the models, so later changes
to them cannot change what this revision creates. The CHECK lists are the
``RecordingStatus`` and ``AuditAction`` values as of this revision.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RECORDING_STATUSES = "'present', 'purged', 'missing'"
AUDIT_ACTIONS = "'play', 'export', 'score', 'hold', 'release', 'purge'"


def upgrade() -> None:
    op.create_table(
        "recordings",
        sa.Column("call_id", sa.String(length=64), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("duration_ms", sa.BigInteger(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("campaign", sa.String(length=64), nullable=True),
        sa.Column("agent", sa.String(length=64), nullable=True),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("purge_after_ms", sa.BigInteger(), nullable=False),
        sa.Column("legal_hold", sa.Boolean(), nullable=False),
        sa.Column("hold_reason", sa.Text(), nullable=True),
        sa.Column("hold_by", sa.String(length=128), nullable=True),
        sa.Column("purged_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("call_id", name=op.f("pk_recordings")),
        sa.CheckConstraint(f"status IN ({RECORDING_STATUSES})", name=op.f("ck_recordings_status")),
        sa.CheckConstraint("length(sha256) = 64", name=op.f("ck_recordings_sha256")),
        sa.CheckConstraint(
            "duration_ms >= 0 AND size_bytes >= 0 AND purge_after_ms >= created_at_ms",
            name=op.f("ck_recordings_sizes"),
        ),
        sa.CheckConstraint(
            "NOT legal_hold OR (hold_reason IS NOT NULL AND hold_by IS NOT NULL)",
            name=op.f("ck_recordings_hold"),
        ),
        sa.CheckConstraint(
            "(status = 'purged') = (purged_at_ms IS NOT NULL)",
            name=op.f("ck_recordings_purged_at"),
        ),
        sa.CheckConstraint(
            "NOT (legal_hold AND status = 'purged')", name=op.f("ck_recordings_held_not_purged")
        ),
    )
    op.create_index(
        op.f("ix_recordings_status_purge_after_ms"), "recordings", ["status", "purge_after_ms"]
    )
    op.create_table(
        "qa_scores",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("call_id", sa.String(length=64), nullable=False),
        sa.Column("scorecard", sa.String(length=64), nullable=False),
        sa.Column("scorecard_version", sa.Integer(), nullable=False),
        sa.Column("reviewer", sa.String(length=128), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.Column("failed", sa.Boolean(), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("scored_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_qa_scores")),
        sa.ForeignKeyConstraint(
            ["call_id"], ["cdrs.call_id"], name=op.f("fk_qa_scores_call_id_cdrs")
        ),
        sa.CheckConstraint("total >= 0 AND total <= 100", name=op.f("ck_qa_scores_total")),
        sa.CheckConstraint("NOT failed OR total = 0", name=op.f("ck_qa_scores_failed_is_zero")),
        sa.CheckConstraint("scorecard_version >= 1", name=op.f("ck_qa_scores_scorecard_version")),
    )
    op.create_index(op.f("ix_qa_scores_call_id"), "qa_scores", ["call_id"])
    op.create_index(
        op.f("ix_qa_scores_reviewer_scored_at_ms"), "qa_scores", ["reviewer", "scored_at_ms"]
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("who", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("call_id", sa.Text(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
        sa.CheckConstraint(f"action IN ({AUDIT_ACTIONS})", name=op.f("ck_audit_log_action")),
    )
    op.create_index(op.f("ix_audit_log_at_ms"), "audit_log", ["at_ms"])
    op.create_index(op.f("ix_audit_log_call_id_at_ms"), "audit_log", ["call_id", "at_ms"])


def downgrade() -> None:
    op.drop_index(op.f("ix_audit_log_call_id_at_ms"), table_name="audit_log")
    op.drop_index(op.f("ix_audit_log_at_ms"), table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index(op.f("ix_qa_scores_reviewer_scored_at_ms"), table_name="qa_scores")
    op.drop_index(op.f("ix_qa_scores_call_id"), table_name="qa_scores")
    op.drop_table("qa_scores")
    op.drop_index(op.f("ix_recordings_status_purge_after_ms"), table_name="recordings")
    op.drop_table("recordings")
