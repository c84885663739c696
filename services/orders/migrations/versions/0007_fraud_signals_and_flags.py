"""anti-fraud: blind-indexed signals per order, and flagged accounts (ids and counts only)

Revision ID: 2e7b94d0c5a1
Revises: 5d2f8a61c3e9
Create Date: 2026-12-06 03:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import kit.db

revision: str = "2e7b94d0c5a1"
down_revision: str | Sequence[str] | None = "5d2f8a61c3e9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "fraud_signal",
        sa.Column("order_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("buyer_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("phone_index", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("address_index", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("placed_at", kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("order_id", name=op.f("pk_fraud_signal")),
    )
    with op.batch_alter_table("fraud_signal", schema=None) as batch_op:
        batch_op.create_index(
            "ix_fraud_signal_buyer_id_placed_at", ["buyer_id", "placed_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_fraud_signal_phone_index"), ["phone_index"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_fraud_signal_placed_at"), ["placed_at"], unique=False)
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
    with op.batch_alter_table("fraud_signal", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fraud_signal_placed_at"))
        batch_op.drop_index(batch_op.f("ix_fraud_signal_phone_index"))
        batch_op.drop_index("ix_fraud_signal_buyer_id_placed_at")
    op.drop_table("fraud_signal")
