"""outbox messages record which worker delivered them (host:pid), so every node's worker can be seen at work

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 02:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Batch mode, as env.py renders for SQLite: a nullable column is a plain ALTER TABLE ADD COLUMN on both backends.
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("delivered_by", sa.String(length=128), nullable=True))


def downgrade() -> None:
    # On SQLite, batch mode copies the table without the column (keeping its index and constraints).
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.drop_column("delivered_by")
