"""OAuth 2.0 state: authorization codes and tokens, stored only as digests (RFC 6749, RFC 9700 §4.14).

A token row is found by the keyed digest of the bearer string, never by the string itself, so a database dump holds
nothing usable. Refresh tokens belong to a *family* (all rotations of one grant) so that reuse of a rotated token can
revoke the whole family (RFC 9700 §4.14.2). Dead rows are deleted by the worker (:func:`purge_dead_tokens`), except
those reuse detection and the consent history still read.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, and_, delete, exists, func, or_, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from gateway.storage.base import Base, UTCDateTime, utcnow
from gateway.storage.throttle import ThrottleCounter

if TYPE_CHECKING:
    from gateway.storage.application import ApplicationInformation
    from gateway.storage.authorization import Authorization

__all__ = [
    "AuthorizationCode",
    "OAuthToken",
    "PendingAuthorizationRequest",
    "SubjectKind",
    "ThrottleCounter",
    "TokenType",
    "purge_dead_tokens",
]

PURGE_BATCH = 10_000
"""Token rows :func:`purge_dead_tokens` deletes at most per call (a first purge of a large table goes in steps)."""


class TokenType:
    """What a stored token is."""

    ACCESS = "access"
    REFRESH = "refresh"
    REGISTRATION = "registration"


class SubjectKind:
    """Whom a token speaks for: what a resource may let it read (ESPI-NOTES §3)."""

    CUSTOMER = "customer"
    CLIENT = "client"
    REGISTRATION = "registration"
    CUSTODIAN = "custodian"
    UPLOAD = "upload"


class OAuthToken(Base):
    """An access, refresh or registration access token (RFC 6749 §1.4-1.5, RFC 7591 §3)."""

    __tablename__ = "oauth_token"
    __table_args__ = (
        # Every bearer check is one lookup by digest and must see a revocation at once on any node (no cache), so
        # the unique index covers the columns that check reads (PostgreSQL index-only scans; SQLite ignores INCLUDE).
        Index(
            "uq_oauth_token_digest",
            "digest",
            unique=True,
            postgresql_include=[
                "token_type",
                "subject_kind",
                "application_id",
                "authorization_id",
                "expires_at",
                "revoked_at",
            ],
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))
    token_type: Mapped[str] = mapped_column(String(16))
    subject_kind: Mapped[str | None] = mapped_column(String(16))
    """A :class:`SubjectKind`; ``None`` on registration tokens minted before it existed (read as registration)."""
    offline_access: Mapped[bool] = mapped_column(Boolean, default=False)
    application_id: Mapped[int] = mapped_column(
        ForeignKey("application_information.id", ondelete="CASCADE"), index=True
    )
    authorization_id: Mapped[int | None] = mapped_column(ForeignKey("authorization.id", ondelete="CASCADE"), index=True)
    scope: Mapped[str] = mapped_column(String(1024))
    family_id: Mapped[str | None] = mapped_column(String(36), index=True)
    """All refresh rotations of one grant, and the access tokens they issued, share a family."""
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("oauth_token.id", ondelete="SET NULL"))
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    rotated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    application: Mapped[ApplicationInformation] = relationship()
    authorization: Mapped[Authorization | None] = relationship()


class AuthorizationCode(Base):
    """A single-use authorization code (RFC 6749 §4.1.2), bound to client, redirect URI and PKCE challenge."""

    __tablename__ = "oauth_authorization_code"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    application_id: Mapped[int] = mapped_column(
        ForeignKey("application_information.id", ondelete="CASCADE"), index=True
    )
    authorization_id: Mapped[int] = mapped_column(ForeignKey("authorization.id", ondelete="CASCADE"), index=True)
    redirect_uri: Mapped[str] = mapped_column(String(2048))
    scope: Mapped[str] = mapped_column(String(1024))
    code_challenge: Mapped[str | None] = mapped_column(String(128))
    code_challenge_method: Mapped[str | None] = mapped_column(String(8))
    nonce_state: Mapped[str | None] = mapped_column(String(512))
    family_id: Mapped[str] = mapped_column(String(36), index=True)
    """The token family the code's tokens join: a replayed code revokes it (RFC 6749 §4.1.2)."""
    offline_access: Mapped[bool] = mapped_column(Boolean, default=False)
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    redeemed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class PendingAuthorizationRequest(Base):
    """An authorization request validated at ``/oauth/authorize`` and waiting for the customer's decision.

    Kept server-side (RFC 9700 §4.7: the consent form then carries only this id, nothing to tamper with). The id is a
    random handle with ≥ 128 bits; the request expires after about ten minutes and is decided once.
    """

    __tablename__ = "oauth_pending_authorization"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    application_id: Mapped[int] = mapped_column(
        ForeignKey("application_information.id", ondelete="CASCADE"), index=True
    )
    request_uri: Mapped[str] = mapped_column(Text)
    """The authorization request URI as received; re-validated by oauthlib when the customer decides."""
    redirect_uri: Mapped[str] = mapped_column(String(2048))
    scope: Mapped[str] = mapped_column(String(1024))
    """The requested ESPI scope, canonical form."""
    offline_access: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str | None] = mapped_column(String(1024))
    code_challenge: Mapped[str | None] = mapped_column(String(128))
    code_challenge_method: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(String(16))
    """``approved`` or ``denied`` once decided."""
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("retail_customer.id", ondelete="CASCADE"), index=True)
    authorization_id: Mapped[int | None] = mapped_column(ForeignKey("authorization.id", ondelete="SET NULL"))

    application: Mapped[ApplicationInformation] = relationship()


def purge_dead_tokens(session: Session, *, now: dt.datetime, retention: dt.timedelta, limit: int = PURGE_BATCH) -> int:
    """Delete up to ``limit`` token rows dead for longer than ``retention``; return how many (a periodic job).

    Dead means expired, or (access and registration tokens) revoked, more than ``retention`` before ``now``: such a
    token answers exactly like an unknown one at every endpoint (RFC 6750 §3.1 ``invalid_token``, RFC 7662 §2.2
    inactive, RFC 7009 §2.2 ignored). Rows that are dead but still read are kept:

    - a refresh token until it has *expired* (+ ``retention``), never merely because it was revoked, and while any
      token of its family is still live: presenting a rotated refresh token revokes its whole family (RFC 9700
      §4.14.2), and the family's first issue time is what a refresh is checked against after a password change;
    - the newest token of each Authorization: the consent dashboard shows its issue or last-use time as the app's
      last access (:func:`gateway.consent.lifecycle.last_access`).

    Every reference to a token row is ``parent_id`` (``ON DELETE SET NULL``), read only to revoke the access tokens
    of a refresh token being rotated, which a deleted (dead) row can no longer be.
    """
    # Aliases throughout: the outer DELETE must not correlate with the subqueries' own reads of the table.
    table = OAuthToken.__table__
    token, member, other = table.alias("token"), table.alias("member"), table.alias("other")
    cutoff = now - retention
    last_seen = func.coalesce(token.c.last_used_at, token.c.issued_at)
    newest = (
        select(
            other.c.authorization_id,
            func.max(func.coalesce(other.c.last_used_at, other.c.issued_at)).label("last_seen"),
        )
        .where(other.c.authorization_id.is_not(None))
        .group_by(other.c.authorization_id)
        .subquery("newest")
    )
    family_still_live = exists().where(
        member.c.family_id == token.c.family_id,
        member.c.revoked_at.is_(None),
        or_(member.c.expires_at.is_(None), member.c.expires_at > now),
    )
    dead = (
        select(token.c.id)
        .select_from(token.outerjoin(newest, newest.c.authorization_id == token.c.authorization_id))
        .where(
            or_(
                and_(token.c.expires_at.is_not(None), token.c.expires_at < cutoff),
                and_(
                    token.c.token_type != TokenType.REFRESH,
                    token.c.revoked_at.is_not(None),
                    token.c.revoked_at < cutoff,
                ),
            ),
            or_(token.c.token_type != TokenType.REFRESH, token.c.family_id.is_(None), ~family_still_live),
            or_(token.c.authorization_id.is_(None), last_seen < newest.c.last_seen),
        )
        .limit(limit)
    )
    result = session.execute(
        delete(OAuthToken).where(OAuthToken.id.in_(dead)).execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
