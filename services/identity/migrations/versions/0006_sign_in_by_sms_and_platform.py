"""sign-in by SMS code and by mini-program platform: sms_code, mini_program_identity

Revision ID: 7c3d9e1f4a26
Revises: 8a3c6e1f0b27
Create Date: 2026-12-06 02:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import kit.db

revision: str = "7c3d9e1f4a26"
down_revision: str | Sequence[str] | None = "8a3c6e1f0b27"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sms_code",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("phone_index", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("code_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("created_at", kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("used_at", kit.db.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_code")),
    )
    op.create_index(op.f("ix_sms_code_phone_index"), "sms_code", ["phone_index"], unique=False)
    op.create_table(
        "mini_program_identity",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("account_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("platform", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("app_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("openid_index", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("openid_encrypted", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("unionid_encrypted", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("session_key_encrypted", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("created_at", kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mini_program_identity")),
        sa.UniqueConstraint("openid_index", name=op.f("uq_mini_program_identity_openid_index")),
    )
    op.create_index(
        op.f("ix_mini_program_identity_account_id"),
        "mini_program_identity",
        ["account_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_mini_program_identity_account_id"), table_name="mini_program_identity")
    op.drop_table("mini_program_identity")
    op.drop_index(op.f("ix_sms_code_phone_index"), table_name="sms_code")
    op.drop_table("sms_code")
