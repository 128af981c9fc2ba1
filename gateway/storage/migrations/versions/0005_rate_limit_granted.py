"""rate-limit buckets remember how many tokens the last take granted, so a lease is one statement

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A NOT NULL column with a server default is a plain ALTER TABLE ADD COLUMN on both backends.
    with op.batch_alter_table("rate_limit_bucket", schema=None) as batch_op:
        batch_op.add_column(sa.Column("granted", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("rate_limit_bucket", schema=None) as batch_op:
        batch_op.drop_column("granted")
