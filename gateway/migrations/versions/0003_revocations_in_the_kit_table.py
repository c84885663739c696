"""revocations move to the kit's revocation table, which every app has

The gateway's rows of ``revoked_subject`` are copied into ``revocation`` (kept until every
token they could cover has expired: ``revoked_at`` plus the longest token lifetime and the
leeway), then the table goes.

Revision ID: 7c3d1f0e2b51
Revises: 5b1e7c2d9a40
Create Date: 2026-12-05 21:50:00.000000
"""

from collections.abc import Sequence
from datetime import timedelta

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import kit.db

revision: str = "7c3d1f0e2b51"
down_revision: str | Sequence[str] | None = "5b1e7c2d9a40"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = "kit_revocation"

KEEP = timedelta(seconds=3660)  # kit.settings' default revocation_keep_s

old = sa.table(
    "revoked_subject",
    sa.column("subject", sa.String),
    sa.column("reason", sa.String),
    sa.column("revoked_at", kit.db.UtcDateTime(timezone=True)),
)
new = sa.table(
    "revocation",
    sa.column("subject", sa.String),
    sa.column("reason", sa.String),
    sa.column("revoked_at", kit.db.UtcDateTime(timezone=True)),
    sa.column("expires_at", kit.db.UtcDateTime(timezone=True)),
)


def upgrade() -> None:
    connection = op.get_bind()
    rows = connection.execute(sa.select(old.c.subject, old.c.reason, old.c.revoked_at)).all()
    if rows:
        op.bulk_insert(
            new,
            [
                {
                    "subject": subject,
                    "reason": reason,
                    "revoked_at": revoked_at,
                    "expires_at": revoked_at + KEEP,
                }
                for subject, reason, revoked_at in rows
            ],
        )
    op.drop_table("revoked_subject")


def downgrade() -> None:
    op.create_table(
        "revoked_subject",
        sa.Column("subject", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("revoked_at", kit.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("subject", name=op.f("pk_revoked_subject")),
    )
