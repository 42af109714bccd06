"""outbox: lanes (callback answers first and in no chat's order; bulk notices last)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-20 09:00:00

``lane`` is a small integer (0 callback answer, 1 interactive, 2 bulk; ``models.outbox.Lane``).
Pending callback answers are read on their own, on every pass of the sender and most of all
during a burst of pending messages, so they get an index that leads with status and lane:
(status, lane, next_attempt_at) finds the due answers without walking the pending messages.
The per-chat heads keep using (status, chat_id, id). Rows already queued keep their meaning:
pending answerCallbackQuery rows become lane 0, everything else lane 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(
            sa.Column("lane", sa.SmallInteger(), nullable=False, server_default=sa.text("1"))
        )
    op.execute("UPDATE outbox SET lane = 0 WHERE method = 'answerCallbackQuery'")
    op.create_index("ix_outbox_status_lane_due", "outbox", ["status", "lane", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_outbox_status_lane_due", table_name="outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("lane")
