"""open311_requests: an integrating system's Idempotency-Key and the case it filed

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-14 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "open311_requests",
        sa.Column("integration", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"]),
        sa.PrimaryKeyConstraint("integration", "key"),
    )
    op.create_index("ix_open311_requests_case_id", "open311_requests", ["case_id"])


def downgrade() -> None:
    op.drop_index("ix_open311_requests_case_id", table_name="open311_requests")
    op.drop_table("open311_requests")
