"""reporting clock and refusals: an incident's regulator deadline and filing; what a
refused purpose looked like when it was refused

Revision ID: 7c4a2e9f0b13
Revises: a4f764eba837
Create Date: 2026-12-06 02:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import kit.db

revision: str = "7c4a2e9f0b13"
down_revision: str | Sequence[str] | None = "a4f764eba837"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("security_incident") as batch:
        batch.add_column(
            sa.Column(
                "level",
                sqlmodel.sql.sqltypes.AutoString(length=30),
                nullable=False,
                server_default="general",
            )
        )
        batch.add_column(
            sa.Column("regulator_deadline", kit.db.UtcDateTime(timezone=True), nullable=True)
        )
        batch.add_column(
            sa.Column("regulator_filed_at", kit.db.UtcDateTime(timezone=True), nullable=True)
        )
        batch.add_column(
            sa.Column(
                "regulator_reference", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True
            )
        )
    with op.batch_alter_table("consent_record") as batch:
        batch.add_column(
            sa.Column(
                "purpose_fingerprint", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("consent_record") as batch:
        batch.drop_column("purpose_fingerprint")
    with op.batch_alter_table("security_incident") as batch:
        batch.drop_column("regulator_reference")
        batch.drop_column("regulator_filed_at")
        batch.drop_column("regulator_deadline")
        batch.drop_column("level")
