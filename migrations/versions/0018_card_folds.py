"""card_folds, fold_digests: cards folded into a digest while a group is over its budget

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 07:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A group's messages of the last minute, counted before each new card (folding.fold).
    op.create_index("ix_outbox_chat_delivered", "outbox", ["chat_id", "delivered_at"])
    op.create_table(
        "fold_digests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("opened_at", sa.DateTime(), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_fold_digests_chat_finished", "fold_digests", ["chat_id", "finished_at"])
    op.create_table(
        "card_folds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("digest_id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.Column("folded_at", sa.DateTime(), nullable=False),
        sa.Column("released_at", sa.DateTime(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_card_folds_digest", "card_folds", ["digest_id"])
    op.create_index("ix_card_folds_case", "card_folds", ["case_id"])


def downgrade() -> None:
    op.drop_index("ix_card_folds_case", table_name="card_folds")
    op.drop_index("ix_card_folds_digest", table_name="card_folds")
    op.drop_table("card_folds")
    op.drop_index("ix_fold_digests_chat_finished", table_name="fold_digests")
    op.drop_table("fold_digests")
    op.drop_index("ix_outbox_chat_delivered", table_name="outbox")
