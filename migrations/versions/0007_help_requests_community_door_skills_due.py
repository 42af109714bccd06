"""help requests: community, private door, skills wanted, durable due times; volunteer contact

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 02:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("community", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("help_door", sa.String(length=200), nullable=True))
        batch.add_column(
            sa.Column("help_skills", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
        batch.add_column(sa.Column("help_due_at", sa.DateTime(), nullable=True))
        batch.add_column(
            sa.Column("help_stage", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
        batch.create_index("ix_cases_help_due_at", ["help_due_at"])
    with op.batch_alter_table("volunteers") as batch:
        batch.add_column(sa.Column("contact", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("volunteers") as batch:
        batch.drop_column("contact")
    with op.batch_alter_table("cases") as batch:
        batch.drop_index("ix_cases_help_due_at")
        batch.drop_column("help_stage")
        batch.drop_column("help_due_at")
        batch.drop_column("help_skills")
        batch.drop_column("help_door")
        batch.drop_column("community")
