"""subject keys record the version of the master key that wraps them (rotate-master-key)

Revision ID: kit_0004
Revises: kit_revocation
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "kit_0004"
down_revision: str | Sequence[str] | None = "kit_revocation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every key wrapped so far was wrapped by the one master key there was: version 1.
    with op.batch_alter_table("subject_key") as batch:
        batch.add_column(sa.Column("key_version", sa.Integer(), nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("subject_key") as batch:
        batch.drop_column("key_version")
