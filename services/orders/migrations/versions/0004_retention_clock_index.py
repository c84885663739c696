"""retention clock index: orders not yet anonymised, by clock then id (the sweep's walk)

Revision ID: 9e4b2c7a1f53
Revises: 3c5e1a7d9b20
Create Date: 2026-11-29 08:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9e4b2c7a1f53"
down_revision: str | Sequence[str] | None = "3c5e1a7d9b20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOT_ANONYMISED = sa.text("anonymised_at IS NULL")


def upgrade() -> None:
    op.drop_index(op.f("ix_orders_retention_starts_at"), table_name="orders")
    op.create_index(
        "ix_orders_retention_clock",
        "orders",
        ["retention_starts_at", "id"],
        postgresql_where=NOT_ANONYMISED,
        sqlite_where=NOT_ANONYMISED,
    )


def downgrade() -> None:
    op.drop_index("ix_orders_retention_clock", table_name="orders")
    op.create_index(
        op.f("ix_orders_retention_starts_at"), "orders", ["retention_starts_at"], unique=False
    )
