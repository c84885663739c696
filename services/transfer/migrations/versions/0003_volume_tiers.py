"""volume tiers: persons counted per year and sensitivity; contract-necessary transfers

Revision ID: 3b7e9c1d5a20
Revises: 8d2f4b6a1c39
Create Date: 2026-12-06 02:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import kit.db

revision: str = "3b7e9c1d5a20"
down_revision: str | Sequence[str] | None = "8d2f4b6a1c39"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("transfer") as batch:
        batch.add_column(
            sa.Column("contract_necessary", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "volume_person",
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("sensitive", sa.Boolean(), nullable=False),
        sa.Column("subject", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("transfer_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("counted_at", kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("year", "sensitive", "subject", name=op.f("pk_volume_person")),
    )
    op.create_table(
        "volume_counter",
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("sensitive", sa.Boolean(), nullable=False),
        sa.Column("persons", sa.Integer(), nullable=False),
        sa.Column("updated_at", kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("year", "sensitive", name=op.f("pk_volume_counter")),
    )


def downgrade() -> None:
    op.drop_table("volume_counter")
    op.drop_table("volume_person")
    with op.batch_alter_table("transfer") as batch:
        batch.drop_column("contract_necessary")
