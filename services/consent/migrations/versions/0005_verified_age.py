"""consent: identity's latest verification of each subject, a minor or not (OB-2A-4)

Revision ID: 3f7a2c9d41e8
Revises: 7c4a2e9f0b13
Create Date: 2026-12-06 02:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import kit.db

revision: str = "3f7a2c9d41e8"
down_revision: str | Sequence[str] | None = "7c4a2e9f0b13"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "verified_age",
        sa.Column("subject", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("minor", sa.Boolean(), nullable=False),
        sa.Column("verified_at", kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("event_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.PrimaryKeyConstraint("subject", name=op.f("pk_verified_age")),
    )


def downgrade() -> None:
    op.drop_table("verified_age")
