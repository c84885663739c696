"""failed-attempt counters (support membership checks)

Revision ID: 8a3c5e7f9b12
Revises: 6f1d3b8e2a40
Create Date: 2026-12-06 05:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import kit.db

revision: str = "8a3c5e7f9b12"
down_revision: str | Sequence[str] | None = "6f1d3b8e2a40"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "attempt_throttle",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_started_at", kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_attempt_throttle")),
    )


def downgrade() -> None:
    op.drop_table("attempt_throttle")
