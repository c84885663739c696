"""ceased purposes: a purpose the privacy center declared ceased, refused from its date on

Revision ID: 3c5e1a7d9b20
Revises: 7b07628cbbfc
Create Date: 2026-11-30 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import kit.db

revision: str = "3c5e1a7d9b20"
down_revision: str | Sequence[str] | None = "7b07628cbbfc"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ceased_purpose",
        sa.Column("purpose", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("cessation_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("effective_date", sa.Date(), nullable=False),
        sa.Column("recorded_at", kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("purpose", name=op.f("pk_ceased_purpose")),
    )


def downgrade() -> None:
    op.drop_table("ceased_purpose")
