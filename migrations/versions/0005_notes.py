"""The agent's note with a disposition, the reviewer's comment with a QA score

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03

Written by hand and frozen, like the others. Both columns are text that
defaults to empty, so rows written before this revision read as "no note".
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cdrs") as batch:
        batch.add_column(
            sa.Column("disposition_note", sa.Text(), nullable=False, server_default="")
        )
    with op.batch_alter_table("qa_scores") as batch:
        batch.add_column(sa.Column("comment", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("qa_scores") as batch:
        batch.drop_column("comment")
    with op.batch_alter_table("cdrs") as batch:
        batch.drop_column("disposition_note")
