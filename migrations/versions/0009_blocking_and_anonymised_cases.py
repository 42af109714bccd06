"""blocked users; anonymised cases

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22 03:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("blocked_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("blocked_by", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("block_reason", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("block_notice_at", sa.DateTime(), nullable=True))
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("anonymised_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("anonymised_at")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("block_notice_at")
        batch.drop_column("block_reason")
        batch.drop_column("blocked_by")
        batch.drop_column("blocked_at")
