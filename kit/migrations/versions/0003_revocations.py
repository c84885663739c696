"""revocations: subjects identity revoked, kept until their tokens have expired

Revision ID: kit_revocation
Revises: kit_0002
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import kit.db

revision: str = "kit_revocation"
down_revision: str | Sequence[str] | None = "kit_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "revocation",
        sa.Column("subject", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("revoked_at", kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("subject", name=op.f("pk_revocation")),
    )
    op.create_index(op.f("ix_revocation_expires_at"), "revocation", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_revocation_expires_at"), table_name="revocation")
    op.drop_table("revocation")
