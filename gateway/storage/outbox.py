"""The durable outbox: messages (mail, notifications to apps) queued in the same transaction as the change they report.

The transactional-outbox pattern: a consent grant and the mail that announces it commit together or not at all, and a
worker delivers afterwards with retries, so a slow or broken mail server never blocks or breaks the consent itself.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.storage.base import Base, UTCDateTime, utcnow

__all__ = ["DELIVERED_BY_LENGTH", "OutboxMessage", "OutboxState"]

DELIVERED_BY_LENGTH = 128
"""Room for ``host:pid`` (a Linux host name has at most 64 characters); a longer name is cut, never the pid."""


class OutboxState:
    """Where a message stands: waiting (possibly after failed attempts), delivered, or given up."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class OutboxMessage(Base):
    """One message to deliver. ``kind`` picks the deliverer (``mail``, ``notification``, …); ``payload`` is its input.

    A worker claims due rows (``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL) by setting ``claimed_until``, delivers
    outside the transaction, then records the outcome; a crashed worker's claim lapses and another worker retries.
    """

    __tablename__ = "outbox_message"
    __table_args__ = (Index("ix_outbox_message_due", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default=OutboxState.PENDING)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    delivered_by: Mapped[str | None] = mapped_column(String(DELIVERED_BY_LENGTH))
    """Which worker process delivered it (``host:pid``, :func:`gateway.outbox.delivery.worker_identity`): with
    several nodes and their workers, which one sent each message (``gateway notifications list``)."""
    last_error: Mapped[str | None] = mapped_column(Text)
