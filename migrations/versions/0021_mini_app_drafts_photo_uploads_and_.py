"""mini app: residents' drafts, the photos uploaded for them, the submissions filed"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"


def upgrade() -> None:
    op.create_table(
        "webapp_drafts",
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("user_id"),
    )
    op.create_table(
        "photo_uploads",
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"]),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_photo_uploads_case_id", "photo_uploads", ["case_id"])
    op.create_index("ix_photo_uploads_created_at", "photo_uploads", ["created_at"])
    op.create_index("ix_photo_uploads_user_id", "photo_uploads", ["user_id"])
    op.create_table(
        "webapp_submissions",
        sa.Column("submission", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"]),
        sa.PrimaryKeyConstraint("submission"),
    )
    op.create_index("ix_webapp_submissions_user_id", "webapp_submissions", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_webapp_submissions_user_id", table_name="webapp_submissions")
    op.drop_table("webapp_submissions")
    op.drop_index("ix_photo_uploads_user_id", table_name="photo_uploads")
    op.drop_index("ix_photo_uploads_created_at", table_name="photo_uploads")
    op.drop_index("ix_photo_uploads_case_id", table_name="photo_uploads")
    op.drop_table("photo_uploads")
    op.drop_table("webapp_drafts")
