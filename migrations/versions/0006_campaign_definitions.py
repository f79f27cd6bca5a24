"""Campaigns defined at run time: their settings, who defined them and when

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

Written by hand and frozen, like the others.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "campaign_definitions",
        sa.Column("campaign_id", sa.String(length=64), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_definitions_campaign_id_campaigns"),
        ),
        sa.PrimaryKeyConstraint("campaign_id", name=op.f("pk_campaign_definitions")),
    )


def downgrade() -> None:
    op.drop_table("campaign_definitions")
