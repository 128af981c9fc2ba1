"""A registered third-party application (ESPI ``ApplicationInformation``, OAuth client per RFC 6749 §2).

Client secrets are random (≥ 128 bits) and stored only as keyed digests: a fast HMAC is right for random secrets,
slow KDFs are for human passwords (RFC 9700 §4.15, ESPI-NOTES §4).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from sqlalchemy import JSON, Boolean, ColumnElement, ForeignKey, SmallInteger, String, cast
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gateway.storage.base import Base, UTCDateTime
from gateway.storage.usage import EspiResourceMixin

if TYPE_CHECKING:
    from gateway.storage.customer import RetailCustomer

__all__ = ["ApplicationInformation", "ApplicationStatus", "ClientRole"]


class ApplicationStatus:
    """ESPI ``DataCustodianApplicationStatus`` codes."""

    REVIEW = 1
    PRODUCTION = 2
    ON_HOLD = 3
    REVOKED = 4


class ClientRole:
    """What a client may do besides acting for customers who consent.

    ``third_party``: an ordinary Green Button app. ``custodian_admin``: the utility's own operator client (root
    collections, exports). ``upload``: may POST customer data (``Batch/RetailCustomer/{c}/UsagePoint``).
    ``self_access``: a customer's own client for the password grant, bound to ``owner_customer_id``.
    """

    THIRD_PARTY = "third_party"
    CUSTODIAN_ADMIN = "custodian_admin"
    UPLOAD = "upload"
    SELF_ACCESS = "self_access"
    ALL = (THIRD_PARTY, CUSTODIAN_ADMIN, UPLOAD, SELF_ACCESS)


ESPI_GRANT_TYPES = frozenset({"authorization_code", "client_credentials", "refresh_token"})
"""The grant types an ESPI ``ApplicationInformation`` can list (the schema's ``GrantType``; ``password`` is ours)."""
MIN_ESPI_GRANT_TYPES = 2
"""ESPI's ``ApplicationInformation`` lists at least two ``grant_types`` (``minOccurs="2"`` in espi.xsd 3.3 and 4.0)."""


class ApplicationInformation(EspiResourceMixin, Base):
    """A client registration; fields keep their ESPI names in snake case."""

    __tablename__ = "application_information"

    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    client_secret_digest: Mapped[str | None] = mapped_column(String(64))
    """HMAC-SHA256 of the secret under the gateway's key; ``None`` for public clients."""
    client_name: Mapped[str] = mapped_column(String(256))
    software_id: Mapped[str] = mapped_column(String(256))
    software_version: Mapped[str] = mapped_column(String(32), default="1.0")
    client_uri: Mapped[str | None] = mapped_column(String(2048))
    logo_uri: Mapped[str | None] = mapped_column(String(2048))
    tos_uri: Mapped[str | None] = mapped_column(String(2048))
    policy_uri: Mapped[str | None] = mapped_column(String(2048))
    contacts: Mapped[list[str]] = mapped_column(JSON, default=list)
    redirect_uris: Mapped[list[str]] = mapped_column(JSON)
    notify_uri: Mapped[str | None] = mapped_column(String(2048))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    grant_types: Mapped[list[str]] = mapped_column(JSON)
    roles: Mapped[list[str]] = mapped_column(JSON, default=lambda: [ClientRole.THIRD_PARTY])
    token_endpoint_auth_method: Mapped[str] = mapped_column(String(32), default="client_secret_basic")
    """``client_secret_basic``, ``client_secret_post`` or ``none`` (public); honoured per client (RFC 7591 §2)."""
    require_pkce: Mapped[bool] = mapped_column(Boolean, default=True)
    """PKCE is required by default for every client and always for public ones (RFC 9700 §2.1.1)."""
    status: Mapped[int] = mapped_column(SmallInteger, default=ApplicationStatus.PRODUCTION)
    third_party_application_type: Mapped[int | None] = mapped_column(SmallInteger)
    third_party_application_use: Mapped[int | None] = mapped_column(SmallInteger)
    third_party_application_status: Mapped[int | None] = mapped_column(SmallInteger)
    third_party_phone: Mapped[str | None] = mapped_column(String(32))
    client_id_issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    client_secret_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    owner_customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("retail_customer.id", ondelete="CASCADE"), index=True
    )

    owner: Mapped[RetailCustomer | None] = relationship()

    @property
    def is_third_party(self) -> bool:
        """An ESPI third-party registration (ESPI-NOTES §6), served as ``ApplicationInformation``; the custodian's own
        clients (operator, upload, customers' self-access) are not: ``gateway client`` manages them."""
        return ClientRole.THIRD_PARTY in (self.roles or ())

    @classmethod
    def third_party_filter(cls) -> ColumnElement[bool]:
        """SQL for :attr:`is_third_party`. ``roles`` is a JSON list written by SQLAlchemy's serializer, so its text
        holds the role quoted, on SQLite and PostgreSQL alike."""
        return cast(cls.roles, String).like(f'%"{ClientRole.THIRD_PARTY}"%')

    @property
    def is_public(self) -> bool:
        """A public client has no secret (RFC 6749 §2.1) and must use PKCE."""
        return self.client_secret_digest is None
