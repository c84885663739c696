"""login throttle: locked_until (per-account backoff, device cookies, address slowing)

Revision ID: 5b1e0c7d2a94
Revises: af6915d62580
Create Date: 2026-12-05 10:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import kit.db

revision: str = "5b1e0c7d2a94"
down_revision: str | Sequence[str] | None = "af6915d62580"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("login_throttle") as batch:
        batch.add_column(
            sa.Column("locked_until", kit.db.UtcDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("login_throttle") as batch:
        batch.drop_column("locked_until")
