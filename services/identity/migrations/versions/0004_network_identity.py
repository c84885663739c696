"""network identity: the result and pseudonymous network number of a national network
identity authentication

Revision ID: 9e2b6d41c8a7
Revises: 5b1e0c7d2a94
Create Date: 2026-12-06 02:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import kit.db

revision: str = "9e2b6d41c8a7"
down_revision: str | Sequence[str] | None = "5b1e0c7d2a94"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "network_identity",
        sa.Column("account_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("network_number", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("level", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("reference", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("verified_at", kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_network_identity")),
        sa.UniqueConstraint("network_number", name=op.f("uq_network_identity_network_number")),
    )


def downgrade() -> None:
    op.drop_table("network_identity")
