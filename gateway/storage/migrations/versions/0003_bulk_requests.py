"""bulk requests: durable Batch/Bulk jobs, their stored feed in chunks, and the subscriptions each result holds

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 11:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bulk_request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("bulk_id", sa.String(length=64), nullable=False),
        sa.Column("query", sa.String(length=512), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("estimated_readings", sa.BigInteger(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ready_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failure_reported_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("build_id", sa.String(length=32), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("subscriptions", sa.Integer(), nullable=True),
        sa.Column("feed_bytes", sa.BigInteger(), nullable=True),
        sa.Column("stored_bytes", sa.BigInteger(), nullable=True),
        sa.Column("chunks", sa.Integer(), nullable=True),
        sa.Column("digest", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["application_information.id"],
            name=op.f("fk_bulk_request_application_id_application_information"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bulk_request")),
        sa.UniqueConstraint("application_id", "bulk_id", "query", name=op.f("uq_bulk_request_application_id")),
    )
    op.create_index("ix_bulk_request_due", "bulk_request", ["state", "next_attempt_at"], unique=False)
    op.create_table(
        "bulk_chunk",
        sa.Column("bulk_request_id", sa.Integer(), nullable=False),
        sa.Column("build_id", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["bulk_request_id"],
            ["bulk_request.id"],
            name=op.f("fk_bulk_chunk_bulk_request_id_bulk_request"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("bulk_request_id", "build_id", "position", name=op.f("pk_bulk_chunk")),
    )
    op.create_table(
        "bulk_subscription",
        sa.Column("bulk_request_id", sa.Integer(), nullable=False),
        sa.Column("subscription_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["bulk_request_id"],
            ["bulk_request.id"],
            name=op.f("fk_bulk_subscription_bulk_request_id_bulk_request"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscription.id"],
            name=op.f("fk_bulk_subscription_subscription_id_subscription"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("bulk_request_id", "subscription_id", name=op.f("pk_bulk_subscription")),
    )
    op.create_index(
        op.f("ix_bulk_subscription_subscription_id"), "bulk_subscription", ["subscription_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_bulk_subscription_subscription_id"), table_name="bulk_subscription")
    op.drop_table("bulk_subscription")
    op.drop_table("bulk_chunk")
    op.drop_index("ix_bulk_request_due", table_name="bulk_request")
    op.drop_table("bulk_request")
