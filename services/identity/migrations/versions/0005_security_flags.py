"""security flags: accounts flagged by identity's anti-fraud rules (ids and counts only)

Revision ID: 8a3c6e1f0b27
Revises: 9e2b6d41c8a7
Create Date: 2026-12-06 03:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import kit.db

revision: str = "8a3c6e1f0b27"
down_revision: str | Sequence[str] | None = "9e2b6d41c8a7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "security_flag",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("account_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("rule", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("times", sa.Integer(), nullable=False),
        sa.Column("first_at", kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("last_at", kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_security_flag")),
        sa.UniqueConstraint("account_id", "rule", name=op.f("uq_security_flag_account_id_rule")),
    )
    with op.batch_alter_table("security_flag", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_security_flag_last_at"), ["last_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("security_flag", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_security_flag_last_at"))
    op.drop_table("security_flag")
