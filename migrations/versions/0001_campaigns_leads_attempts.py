"""campaigns, leads, dial attempts and do-not-call

Revision ID: 0001
Revises:
Create Date: 2024-06-03

Written by hand and frozen: it does not import the models, so later changes
to them cannot change what this revision creates. The CHECK lists are the
``LeadState`` and ``CallOutcome`` values as of this revision.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEAD_STATES = "'new', 'queued', 'in_progress', 'callback', 'done', 'failed', 'dnc', 'exhausted'"
OUTCOMES = (
    "'answered', 'busy', 'no_answer', 'invalid_number', 'unavailable', 'declined',"
    " 'cancelled', 'timeout', 'auth_failed', 'trunk_failure', 'rejected'"
)
CLAIMED = (
    "state = 'in_progress' AND claimed_by IS NOT NULL AND claimed_at IS NOT NULL"
    " AND claimed_from IS NOT NULL"
)
UNCLAIMED = (
    "state <> 'in_progress' AND claimed_by IS NULL AND claimed_at IS NULL AND claimed_from IS NULL"
)


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
    )
    op.create_table(
        "leads",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("campaign_id", sa.String(length=64), nullable=False),
        sa.Column("phone", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("is_follow_up", sa.Boolean(), nullable=False),
        sa.Column("callback_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("callback_agent", sa.String(length=64), nullable=True),
        sa.Column("claimed_by", sa.String(length=128), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_from", sa.String(length=32), nullable=True),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_leads")),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_leads_campaign_id_campaigns")
        ),
        sa.UniqueConstraint("campaign_id", "phone", name=op.f("uq_leads_campaign_id_phone")),
        sa.CheckConstraint(f"state IN ({LEAD_STATES})", name=op.f("ck_leads_state")),
        sa.CheckConstraint(
            f"claimed_from IS NULL OR (claimed_from IN ({LEAD_STATES})"
            " AND claimed_from <> 'in_progress')",
            name=op.f("ck_leads_claimed_from"),
        ),
        sa.CheckConstraint(f"({CLAIMED}) OR ({UNCLAIMED})", name=op.f("ck_leads_claim")),
        sa.CheckConstraint(
            "state <> 'callback' OR callback_at IS NOT NULL", name=op.f("ck_leads_callback")
        ),
        sa.CheckConstraint(
            "callback_agent IS NULL OR callback_at IS NOT NULL",
            name=op.f("ck_leads_callback_agent"),
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_leads_attempts")),
    )
    op.create_index(
        op.f("ix_leads_campaign_id_state_next_attempt_at"),
        "leads",
        ["campaign_id", "state", "next_attempt_at"],
    )
    op.create_table(
        "dial_attempts",
        sa.Column("call_id", sa.String(length=255), nullable=False),
        sa.Column("lead_id", sa.String(length=64), nullable=True),
        sa.Column("campaign_id", sa.String(length=64), nullable=False),
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("number", sa.String(length=64), nullable=False),
        sa.Column("trunk", sa.String(length=64), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("sip_status", sa.Integer(), nullable=True),
        sa.Column("q850_cause", sa.Integer(), nullable=True),
        sa.Column("bridged", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("call_id", name=op.f("pk_dial_attempts")),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_dial_attempts_lead_id_leads")
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_dial_attempts_campaign_id_campaigns")
        ),
        sa.CheckConstraint(
            f"outcome IS NULL OR outcome IN ({OUTCOMES})", name=op.f("ck_dial_attempts_outcome")
        ),
        sa.CheckConstraint(
            "ended_at IS NULL OR ended_at >= started_at",
            name=op.f("ck_dial_attempts_ended_after_started"),
        ),
    )
    op.create_index(op.f("ix_dial_attempts_lead_id"), "dial_attempts", ["lead_id"])
    op.create_index(
        op.f("ix_dial_attempts_campaign_id_outcome"), "dial_attempts", ["campaign_id", "outcome"]
    )
    op.create_table(
        "do_not_call",
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("phone", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope", "phone", name=op.f("pk_do_not_call")),
    )


def downgrade() -> None:
    op.drop_table("do_not_call")
    op.drop_index(op.f("ix_dial_attempts_campaign_id_outcome"), table_name="dial_attempts")
    op.drop_index(op.f("ix_dial_attempts_lead_id"), table_name="dial_attempts")
    op.drop_table("dial_attempts")
    op.drop_index(op.f("ix_leads_campaign_id_state_next_attempt_at"), table_name="leads")
    op.drop_table("leads")
    op.drop_table("campaigns")
