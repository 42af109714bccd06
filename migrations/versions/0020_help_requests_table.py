"""help_requests: the 邻里互助 part of a case in its own table, moved out of cases"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"

# help_requests column <- cases column
MOVED = {
    "needed_when": "needed_when",
    "door": "help_door",
    "skills": "help_skills",
    "volunteer_id": "claimed_by",
    "volunteer_name": "claimed_by_name",
    "progress": "help_progress",
    "due_at": "help_due_at",
    "stage": "help_stage",
}


def upgrade() -> None:
    op.create_table(
        "help_requests",
        sa.Column("case_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("needed_when", sa.String(length=200), nullable=True),
        sa.Column("door", sa.String(length=200), nullable=True),
        sa.Column("skills", sa.JSON(), nullable=False),
        sa.Column("volunteer_id", sa.BigInteger(), nullable=True),
        sa.Column("volunteer_name", sa.String(length=128), nullable=True),
        sa.Column("progress", sa.String(length=16), nullable=True),
        sa.Column("due_at", sa.DateTime(), nullable=True),
        sa.Column("stage", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"]),
        sa.PrimaryKeyConstraint("case_id"),
    )
    op.create_index("ix_help_requests_due_at", "help_requests", ["due_at"])
    op.create_index("ix_help_requests_volunteer_id", "help_requests", ["volunteer_id"])
    targets = ", ".join(["case_id", *MOVED])
    sources = ", ".join(["id", *MOVED.values()])
    op.execute(
        f"INSERT INTO help_requests ({targets}) SELECT {sources} FROM cases WHERE kind = 'help'"
    )
    with op.batch_alter_table("cases") as batch:
        batch.drop_index("ix_cases_help_due_at")
        for column in MOVED.values():
            batch.drop_column(column)


def downgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("needed_when", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("claimed_by", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("claimed_by_name", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("help_progress", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("help_door", sa.String(length=200), nullable=True))
        batch.add_column(
            sa.Column("help_skills", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
        batch.add_column(sa.Column("help_due_at", sa.DateTime(), nullable=True))
        batch.add_column(
            sa.Column("help_stage", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
        batch.create_index("ix_cases_help_due_at", ["help_due_at"])
    for target, source in MOVED.items():
        op.execute(
            f"UPDATE cases SET {source} = (SELECT {target} FROM help_requests"
            " WHERE help_requests.case_id = cases.id)"
            " WHERE id IN (SELECT case_id FROM help_requests)"
        )
    op.drop_index("ix_help_requests_volunteer_id", table_name="help_requests")
    op.drop_index("ix_help_requests_due_at", table_name="help_requests")
    op.drop_table("help_requests")
