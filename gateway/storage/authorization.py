"""ESPI ``Authorization`` and ``Subscription``: what an application may read, and the data set it reads.

An Authorization is the ESPI record of a grant (NAESB REQ.21 ESPI §… "Authorization"): status 1 active, 0 revoked,
2 denied. A customer-level Authorization has exactly one Subscription: the usage points the customer shared. The
token response's ``resourceURI`` points at ``Batch/Subscription/{subscription}`` and ``authorizationURI`` at the
Authorization (ESPI-NOTES §4). Tokens are never stored here.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, Column, ForeignKey, Index, SmallInteger, String, Table, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gateway.storage.base import Base, UTCDateTime
from gateway.storage.usage import EspiResourceMixin

if TYPE_CHECKING:
    from gateway.storage.application import ApplicationInformation
    from gateway.storage.customer import RetailCustomer
    from gateway.storage.usage import UsagePoint

__all__ = ["Authorization", "AuthorizationKind", "AuthorizationStatus", "Subscription", "subscription_usage_point"]


class AuthorizationStatus:
    """ESPI ``AuthorizationStatus`` codes."""

    REVOKED = 0
    ACTIVE = 1
    DENIED = 2


class AuthorizationKind:
    """Which kind of access an Authorization records.

    ``customer``: a retail customer's consent (authorization_code or password grant). ``client``: a third party's own
    access (client_credentials: its Authorization feed, Bulk, ReadServiceStatus). ``registration``: the access to its
    own ApplicationInformation. ``custodian``: the utility's operator or upload client.
    """

    CUSTOMER = "customer"
    CLIENT = "client"
    REGISTRATION = "registration"
    CUSTODIAN = "custodian"


subscription_usage_point = Table(
    "subscription_usage_point",
    Base.metadata,
    Column("subscription_id", ForeignKey("subscription.id", ondelete="CASCADE"), primary_key=True),
    Column("usage_point_id", ForeignKey("usage_point.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Authorization(EspiResourceMixin, Base):
    """The ESPI Authorization record (element order and meaning as in the ESPI ``Authorization`` type)."""

    __tablename__ = "authorization"
    # At most one active Authorization of a client's own (client_credentials) and one per customer, client and scope
    # for the password grant: the token endpoint creates them on first use, and two concurrent first requests must
    # not create two (the loser of the race retries and reuses the winner's; see GatewayRequestValidator).
    __table_args__ = (
        Index(
            "uq_authorization_active_client_kind",
            "application_id",
            "kind",
            unique=True,
            sqlite_where=text("kind IN ('client', 'custodian') AND status = 1"),
            postgresql_where=text("kind IN ('client', 'custodian') AND status = 1"),
        ),
        Index(
            "uq_authorization_active_password",
            "application_id",
            "customer_id",
            "scope",
            unique=True,
            sqlite_where=text("kind = 'customer' AND grant_type = 'password' AND status = 1"),
            postgresql_where=text("kind = 'customer' AND grant_type = 'password' AND status = 1"),
        ),
    )

    kind: Mapped[str] = mapped_column(String(16))
    application_id: Mapped[int] = mapped_column(
        ForeignKey("application_information.id", ondelete="CASCADE"), index=True
    )
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("retail_customer.id", ondelete="CASCADE"), index=True)
    status: Mapped[int] = mapped_column(SmallInteger)
    authorized_period_start: Mapped[int | None] = mapped_column(BigInteger)
    authorized_period_duration: Mapped[int | None] = mapped_column(BigInteger)
    published_period_start: Mapped[int | None] = mapped_column(BigInteger)
    published_period_duration: Mapped[int | None] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    """Epoch seconds when the grant ends (ESPI ``expires_at``)."""
    grant_type: Mapped[str | None] = mapped_column(String(32))
    scope: Mapped[str] = mapped_column(String(256))
    token_type: Mapped[str] = mapped_column(String(16), default="Bearer")
    error: Mapped[str | None] = mapped_column(String(64))
    error_description: Mapped[str | None] = mapped_column(String(256))
    error_uri: Mapped[str | None] = mapped_column(String(2048))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    application: Mapped[ApplicationInformation] = relationship()
    customer: Mapped[RetailCustomer | None] = relationship()
    subscription: Mapped[Subscription | None] = relationship(back_populates="authorization", uselist=False)


class Subscription(EspiResourceMixin, Base):
    """ESPI ``Subscription``: the usage points (and, through the scope, the data) an Authorization covers."""

    __tablename__ = "subscription"

    authorization_id: Mapped[int] = mapped_column(ForeignKey("authorization.id", ondelete="CASCADE"), unique=True)
    application_id: Mapped[int] = mapped_column(
        ForeignKey("application_information.id", ondelete="CASCADE"), index=True
    )
    customer_id: Mapped[int] = mapped_column(ForeignKey("retail_customer.id", ondelete="CASCADE"), index=True)
    last_accessed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    authorization: Mapped[Authorization] = relationship(back_populates="subscription")
    usage_points: Mapped[list[UsagePoint]] = relationship(secondary=subscription_usage_point, order_by="UsagePoint.id")
