"""scheduled report runs; files the bot uploads

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-22 06:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "report_runs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("period_start", sa.DateTime(), nullable=False),
        sa.Column("period_end", sa.DateTime(), nullable=False),
        sa.Column("queued_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("kind", "period_start", name="uq_report_runs_period"),
    )
    op.create_table(
        "outbox_files",
        sa.Column("key", sa.String(length=32), primary_key=True),
        sa.Column("filename", sa.String(length=120), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_outbox_files_created_at", "outbox_files", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_outbox_files_created_at", table_name="outbox_files")
    op.drop_table("outbox_files")
    op.drop_table("report_runs")
