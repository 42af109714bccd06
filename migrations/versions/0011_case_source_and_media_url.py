"""case source (telegram or an Open311 integration) and external media url

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        # Every existing case was filed in Telegram.
        batch.add_column(
            sa.Column(
                "source", sa.String(length=40), nullable=False, server_default="telegram"
            )
        )
        batch.add_column(sa.Column("media_url", sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("media_url")
        batch.drop_column("source")
