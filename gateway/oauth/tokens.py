"""Token bookkeeping shared by the grants, revocation and the consent lifecycle (RFC 6749 §10.4, RFC 7009 §2.1).

Only digests are stored (RFC 9700 §4.14). Tokens issued together share a *family*: the tokens of one authorization
code or one password grant and every refresh rotation after it. Revoking a family is how a replayed code, a reused
refresh token or a revoked refresh token kill everything derived from the same grant. Query functions take the
session first and never commit: the caller owns the transaction.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from gateway.storage.models import Authorization, OAuthToken, TokenType

__all__ = [
    "new_family_id",
    "revoke_authorization_tokens",
    "revoke_customer_refresh_tokens",
    "revoke_family",
    "revoke_token_row",
]


def new_family_id() -> str:
    """A fresh family identifier (random UUID: it carries no meaning and no personal data)."""
    return str(uuid.uuid4())


def revoke_family(session: Session, family_id: str, now: dt.datetime) -> int:
    """Revoke every live token of ``family_id`` (RFC 9700 §4.14.2, RFC 6749 §4.1.2); return how many."""
    result = session.execute(
        update(OAuthToken)
        .where(OAuthToken.family_id == family_id, OAuthToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def revoke_token_row(session: Session, token: OAuthToken, now: dt.datetime) -> None:
    """Revoke ``token`` and what derives from it (RFC 7009 §2.1).

    A token of a family takes the whole family with it: revoking an access token also revokes its refresh token
    and revoking a refresh token also revokes its access tokens. A lone token (client_credentials) dies alone.
    """
    if token.family_id is not None:
        revoke_family(session, token.family_id, now)
    session.execute(
        update(OAuthToken)
        .where(OAuthToken.id == token.id, OAuthToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )


def revoke_authorization_tokens(session: Session, authorization_id: int, now: dt.datetime) -> int:
    """Revoke every token issued under an ESPI Authorization (a consent revoked: checklist row 37)."""
    result = session.execute(
        update(OAuthToken)
        .where(OAuthToken.authorization_id == authorization_id, OAuthToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def revoke_customer_refresh_tokens(session: Session, customer_id: int, now: dt.datetime) -> int:
    """Revoke the refresh tokens of every consent of a customer (e.g. on a password change, RFC 9700 §4.14.2).

    The refresh check also compares issue times with ``password_changed_at``, so this is belt and braces.
    """
    authorization_ids = select(Authorization.id).where(Authorization.customer_id == customer_id)
    result = session.execute(
        update(OAuthToken)
        .where(
            OAuthToken.authorization_id.in_(authorization_ids),
            OAuthToken.revoked_at.is_(None),
            or_(OAuthToken.token_type == TokenType.REFRESH, OAuthToken.token_type == TokenType.ACCESS),
        )
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
