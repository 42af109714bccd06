"""points: the volunteers' ledger, offer stock and redemption codes

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 04:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ENTRY_KINDS = ("earn", "spend", "adjust", "refund")


def upgrade() -> None:
    op.create_table(
        "redemptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("merchant", sa.String(length=32), nullable=False),
        sa.Column("offer", sa.String(length=32), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.Column("used_by", sa.BigInteger(), nullable=True),
        sa.Column("refunded_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("redemptions") as batch:
        batch.create_index("ix_redemptions_code", ["code"], unique=True)
        batch.create_index("ix_redemptions_user_id", ["user_id"], unique=False)
        batch.create_index("ix_redemptions_used_expires", ["used_at", "expires_at"], unique=False)

    op.create_table(
        "point_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(*ENTRY_KINDS, name="entrykind", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("redemption_id", sa.Integer(), nullable=True),
        sa.Column("counterparty_id", sa.BigInteger(), nullable=True),
        sa.Column("by_id", sa.BigInteger(), nullable=True),
        sa.Column("auto", sa.Boolean(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"]),
        sa.ForeignKeyConstraint(["redemption_id"], ["redemptions.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("point_entries") as batch:
        batch.create_index("ix_point_entries_user_at", ["user_id", "at"], unique=False)
        batch.create_index("ix_point_entries_kind_at", ["kind", "at"], unique=False)

    op.create_table(
        "offer_stock",
        sa.Column("merchant", sa.String(length=32), nullable=False),
        sa.Column("offer", sa.String(length=32), nullable=False),
        sa.Column("taken", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("merchant", "offer"),
    )


def downgrade() -> None:
    op.drop_table("offer_stock")
    with op.batch_alter_table("point_entries") as batch:
        batch.drop_index("ix_point_entries_kind_at")
        batch.drop_index("ix_point_entries_user_at")
    op.drop_table("point_entries")
    with op.batch_alter_table("redemptions") as batch:
        batch.drop_index("ix_redemptions_used_expires")
        batch.drop_index("ix_redemptions_user_id")
        batch.drop_index("ix_redemptions_code")
    op.drop_table("redemptions")
