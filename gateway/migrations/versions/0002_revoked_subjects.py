"""revoked subjects: accounts closed and clients revoked at identity, whose tokens the
gateway refuses while they are still in date

Revision ID: 5b1e7c2d9a40
Revises: 409889f43239
Create Date: 2026-11-29 07:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import kit.db

revision: str = "5b1e7c2d9a40"
down_revision: str | Sequence[str] | None = "409889f43239"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "revoked_subject",
        sa.Column("subject", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("revoked_at", kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("subject", name=op.f("pk_revoked_subject")),
    )


def downgrade() -> None:
    op.drop_table("revoked_subject")
