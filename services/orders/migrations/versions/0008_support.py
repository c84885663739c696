"""customer service: cases, their communication record, de-identified training exports

Revision ID: 6f1d3b8e2a40
Revises: 2e7b94d0c5a1
Create Date: 2026-12-06 03:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import kit.db

revision: str = "6f1d3b8e2a40"
down_revision: str | Sequence[str] | None = "2e7b94d0c5a1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "support_case",
        sa.Column("id", S(length=40), nullable=False),
        sa.Column("account_id", S(length=40), nullable=False),
        sa.Column("topic", S(length=20), nullable=False),
        sa.Column("order_id", S(length=40), nullable=True),
        sa.Column("opened_by", S(length=10), nullable=False),
        sa.Column("opened_by_id", S(length=40), nullable=False),
        sa.Column("status", S(length=10), nullable=False),
        sa.Column("verified_at", kit.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("verified_by", S(length=40), nullable=True),
        sa.Column("verification_method", S(length=40), nullable=True),
        sa.Column("created_at", kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", kit.db.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_case")),
    )
    with op.batch_alter_table("support_case", schema=None) as batch_op:
        batch_op.create_index(
            "ix_support_case_account_id_created_at", ["account_id", "created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_support_case_created_at"), ["created_at"], unique=False
        )
    op.create_table(
        "support_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", S(length=40), nullable=False),
        sa.Column("author", S(length=10), nullable=False),
        sa.Column("author_id", S(length=40), nullable=False),
        sa.Column("text_encrypted", S(), nullable=False),
        sa.Column("attachments", sa.JSON(), nullable=False),
        sa.Column("sent_at", kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["support_case.id"], name=op.f("fk_support_message_case_id_support_case")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_message")),
    )
    with op.batch_alter_table("support_message", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_support_message_case_id"), ["case_id"], unique=False)
    op.create_table(
        "training_export",
        sa.Column("id", S(length=40), nullable=False),
        sa.Column("created_by", S(length=40), nullable=False),
        sa.Column("created_at", kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("records", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_export")),
    )


def downgrade() -> None:
    op.drop_table("training_export")
    with op.batch_alter_table("support_message", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_support_message_case_id"))
    op.drop_table("support_message")
    with op.batch_alter_table("support_case", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_support_case_created_at"))
        batch_op.drop_index("ix_support_case_account_id_created_at")
    op.drop_table("support_case")
