"""case followers and bundles

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 01:18:15.154865
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Named, so that SQLite's batch mode can create and drop it.
BUNDLE_FK = "fk_cases_bundle_id_cases"


def upgrade() -> None:
    op.create_table(
        "case_followers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("joined_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id", "user_id", name="uq_case_followers_case_user"),
    )
    with op.batch_alter_table("case_followers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_followers_user_id"), ["user_id"], unique=False)

    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bundle_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("reporters", sa.Integer(), nullable=False, server_default="1")
        )
        batch_op.create_index(batch_op.f("ix_cases_bundle_id"), ["bundle_id"], unique=False)
        batch_op.create_index(
            "ix_cases_category_status_created",
            ["category", "status", "created_at"],
            unique=False,
        )
        batch_op.create_foreign_key(BUNDLE_FK, "cases", ["bundle_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_constraint(BUNDLE_FK, type_="foreignkey")
        batch_op.drop_index("ix_cases_category_status_created")
        batch_op.drop_index(batch_op.f("ix_cases_bundle_id"))
        batch_op.drop_column("reporters")
        batch_op.drop_column("bundle_id")

    with op.batch_alter_table("case_followers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_followers_user_id"))

    op.drop_table("case_followers")
