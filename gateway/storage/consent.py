"""Consent records: what a customer shared, with whom, when and how, and the append-only history of each consent.

A :class:`Consent` is the lawful basis of every data flow (the consent issue; ESPI REQ.21 "Authorization"): the ESPI
``Authorization`` row is derived from it (status 1 active, 0 revoked, 2 denied) and tokens hang off that Authorization.
The record keeps a snapshot of what the customer saw (application name and version, scope, usage points, data
window, terms version) so that later changes to the application or the customer's meters never rewrite history.

:class:`ConsentEvent` rows are append-only: no code path updates or deletes them, and database triggers refuse it
(see :mod:`gateway.storage.append_only`). :class:`ConsentRequest` is the Open Banking account-access-consent pattern
(ESPI-NOTES §6): an app asks for a consent id before the customer arrives. :class:`CustomerSession` holds browser
sessions server-side so that logout takes effect on every node.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gateway.storage.append_only import append_only
from gateway.storage.base import Base, UTCDateTime, utcnow

if TYPE_CHECKING:
    from gateway.storage.application import ApplicationInformation
    from gateway.storage.authorization import Authorization
    from gateway.storage.customer import RetailCustomer

__all__ = [
    "Consent",
    "ConsentEvent",
    "ConsentEventKind",
    "ConsentRequest",
    "ConsentRequestStatus",
    "ConsentStatus",
    "CustomerSession",
]


class ConsentStatus:
    """Where a consent stands. ``active`` maps to ESPI status 1, ``denied`` to 2, ``revoked``/``expired`` to 0."""

    ACTIVE = "active"
    DENIED = "denied"
    REVOKED = "revoked"
    EXPIRED = "expired"


class ConsentEventKind:
    """What can happen to a consent; the history is a sequence of these, never edited."""

    REQUESTED = "requested"
    GRANTED = "granted"
    DENIED = "denied"
    REFRESHED = "refreshed"
    REVOKED_BY_CUSTOMER = "revoked_by_customer"
    REVOKED_BY_APP = "revoked_by_app"
    REVOKED_BY_OPERATOR = "revoked_by_operator"
    EXPIRED = "expired"
    ALL = (
        REQUESTED,
        GRANTED,
        DENIED,
        REFRESHED,
        REVOKED_BY_CUSTOMER,
        REVOKED_BY_APP,
        REVOKED_BY_OPERATOR,
        EXPIRED,
    )


class ConsentRequestStatus:
    """Open Banking account-access-consent statuses (v3.1 plus v4's ``Expired``), spelt as Open Banking spells them."""

    AWAITING_AUTHORISATION = "AwaitingAuthorisation"
    AUTHORISED = "Authorised"
    REJECTED = "Rejected"
    REVOKED = "Revoked"
    EXPIRED = "Expired"


class ConsentRequest(Base):
    """A consent asked for by an app with a client token before the customer arrives (ESPI-NOTES §6).

    The app names the scope, an optional expiration and an optional data window; the customer later accepts or rejects
    it whole. After creation the app cannot alter it, only delete (revoke) it.
    """

    __tablename__ = "consent_request"

    id: Mapped[str] = mapped_column(String(48), primary_key=True)
    """Random, opaque (``ocr_`` + 128+ bits): the ``consent_request_id`` of the authorization request."""
    application_id: Mapped[int] = mapped_column(
        ForeignKey("application_information.id", ondelete="CASCADE"), index=True
    )
    scope: Mapped[str] = mapped_column(String(256))
    expiration_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    data_from: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    data_to: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(32), default=ConsentRequestStatus.AWAITING_AUTHORISATION)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    status_updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    application: Mapped[ApplicationInformation] = relationship()


class Consent(Base):
    """One customer decision about one authorization request, with a snapshot of everything it covered."""

    __tablename__ = "consent"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'denied', 'revoked', 'expired')", name="status"),
        Index("ix_consent_customer_status", "customer_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(36), unique=True)
    """A random UUID: what pages and mails show (the integer id is an implementation detail)."""
    # No ON DELETE CASCADE: consent records are evidence and outlive neither silently nor by accident.
    customer_id: Mapped[int] = mapped_column(ForeignKey("retail_customer.id"), index=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("application_information.id"), index=True)
    authorization_id: Mapped[int | None] = mapped_column(ForeignKey("authorization.id"), unique=True)
    application_name: Mapped[str] = mapped_column(String(256))
    application_version: Mapped[str] = mapped_column(String(32))
    requested_scope: Mapped[str] = mapped_column(String(256))
    granted_scope: Mapped[str | None] = mapped_column(String(256))
    offline_access: Mapped[bool] = mapped_column(Boolean, default=False)
    usage_points: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    """Snapshot of the shared usage points: ``[{"id": …, "uuid": …, "description": …}]``."""
    data_from: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    data_to: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, index=True)
    status: Mapped[str] = mapped_column(String(16))
    requested_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    """When it stopped being active (revoked or expired)."""
    client_ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    terms_version: Mapped[str | None] = mapped_column(String(32))
    authorization_request_id: Mapped[str | None] = mapped_column(String(64))
    consent_request_id: Mapped[str | None] = mapped_column(ForeignKey("consent_request.id"), index=True)

    customer: Mapped[RetailCustomer] = relationship()
    application: Mapped[ApplicationInformation] = relationship()
    authorization: Mapped[Authorization | None] = relationship()
    events: Mapped[list[ConsentEvent]] = relationship(
        order_by="ConsentEvent.id",
        viewonly=True,
        primaryjoin="Consent.id == foreign(ConsentEvent.consent_id)",
    )


@append_only
class ConsentEvent(Base):
    """One entry of a consent's history. Append-only: inserted, never updated or deleted (triggers enforce it)."""

    __tablename__ = "consent_event"
    __table_args__ = (CheckConstraint("consent_id IS NOT NULL OR consent_request_id IS NOT NULL", name="subject"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    consent_id: Mapped[int | None] = mapped_column(ForeignKey("consent.id"), index=True)
    consent_request_id: Mapped[str | None] = mapped_column(ForeignKey("consent_request.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(16))
    """``customer``, ``app``, ``operator`` or ``system``."""
    client_ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class CustomerSession(Base):
    """A logged-in browser (server-side session, so logout and expiry hold on every node; OWASP ASVS V3).

    Only the keyed digest of the cookie value is stored: a database dump cannot be replayed as a cookie.
    """

    __tablename__ = "customer_session"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("retail_customer.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    client_ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(Text)
