"""The retail customer: the person or business whose data the gateway guards (ESPI ``RetailCustomer``)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from sqlalchemy import Boolean, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gateway.storage.base import Base, UTCDateTime, utcnow
from gateway.storage.usage import EspiResourceMixin

if TYPE_CHECKING:
    from gateway.storage.usage import UsagePoint

__all__ = ["RetailCustomer"]


class RetailCustomer(EspiResourceMixin, Base):
    """A customer who logs in, owns usage points and grants consents.

    ``password_hash`` is an Argon2id PHC string (RFC 9106), never the password. ``password_changed_at`` lets refresh
    tokens issued before a password change die with it (RFC 9700 §4.14.2).
    """

    __tablename__ = "retail_customer"

    username: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(254))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    password_changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)

    usage_points: Mapped[list[UsagePoint]] = relationship(
        back_populates="customer", cascade="all, delete-orphan", passive_deletes=True, order_by="UsagePoint.id"
    )
