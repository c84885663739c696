"""search history: each search of a user, the words encrypted under the user's key

Revision ID: 5d2f8a61c3e9
Revises: b1117ccd4581
Create Date: 2026-12-06 02:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import kit.db

revision: str = "5d2f8a61c3e9"
down_revision: str | Sequence[str] | None = "b1117ccd4581"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "search_entry",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("owner_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("query_encrypted", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("result_count", sa.Integer(), nullable=False),
        sa.Column("personalise", sa.Boolean(), nullable=False),
        sa.Column("searched_at", kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_search_entry")),
    )
    with op.batch_alter_table("search_entry", schema=None) as batch_op:
        batch_op.create_index(
            "ix_search_entry_owner_id_searched_at", ["owner_id", "searched_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_search_entry_searched_at"), ["searched_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("search_entry", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_search_entry_searched_at"))
        batch_op.drop_index("ix_search_entry_owner_id_searched_at")
    op.drop_table("search_entry")
