"""Throttle counters kept in the database, so limits hold across worker processes and nodes (RFC 9700 §4.15)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.storage.base import Base, UTCDateTime

__all__ = ["ThrottleCounter"]


class ThrottleCounter(Base):
    """Failures counted under one key (e.g. ``password-user:alice``) in a fixed window."""

    __tablename__ = "throttle_counter"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    blocked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
