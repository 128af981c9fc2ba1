"""Consent requests: the Open Banking account-access-consent pattern for Green Button (ESPI-NOTES §6; pure domain).

An app holding a client access token (client_credentials) creates a consent request — scope, optional expiration,
optional data window — and receives an id and the status ``AwaitingAuthorisation``. It sends the customer to
``/oauth/authorize`` with ``consent_request_id=<id>``; the customer authorizes it whole (``Authorised``, choosing which
usage points) or rejects it (``Rejected``). The app may read it back at any time and delete it (``Revoked``, which
revokes the consent and its tokens); past its expiration it is ``Expired`` and its tokens stop working. The data
window limits which readings the consent's tokens may read (the Authorization's ``publishedPeriod``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.config import Settings
from gateway.consent.lifecycle import (
    DecisionContext,
    RevokedBy,
    authorization_uri,
    record_event,
    revoke_consent,
    set_request_status,
)
from gateway.errors import BadRequest, Conflict, NotFound
from gateway.oauth.scope import ScopeError, parse_scope
from gateway.security.digests import new_secret
from gateway.storage.base import utcnow
from gateway.storage.consent import (
    Consent,
    ConsentEventKind,
    ConsentRequest,
    ConsentRequestStatus,
    ConsentStatus,
)
from gateway.storage.models import ApplicationInformation
from gateway.storage.oauth import PendingAuthorizationRequest

__all__ = [
    "create_consent_request",
    "delete_consent_request",
    "get_consent_request",
    "parse_timestamp",
    "refresh_status",
    "to_json",
    "usable_for",
]

_MAX_LIFETIME = dt.timedelta(days=3 * 366)


def parse_timestamp(name: str, value: Any) -> dt.datetime | None:
    """An ISO 8601 date-time with an offset (``2027-01-31T00:00:00Z``), as Open Banking sends them; else 400."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 40:
        raise BadRequest(f"{name} must be an ISO 8601 date-time string")
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name} must be an ISO 8601 date-time, got {value!r}") from None
    if parsed.tzinfo is None:
        raise BadRequest(f"{name} must carry a time zone offset (e.g. Z)")
    return parsed.astimezone(dt.UTC).replace(microsecond=0)


def create_consent_request(
    session: Session,
    application: ApplicationInformation,
    *,
    scope: str,
    expiration_at: dt.datetime | None = None,
    data_from: dt.datetime | None = None,
    data_to: dt.datetime | None = None,
    now: dt.datetime | None = None,
) -> ConsentRequest:
    """Create a consent request for ``application`` (status ``AwaitingAuthorisation``).

    The scope must lie within one the application registered (ESPI-NOTES §5); the expiration in the future and at
    most three years ahead; the data window ordered.
    """
    now = now or utcnow()
    try:
        parsed = parse_scope(scope)
        registered = [parse_scope(text) for text in application.scopes]
    except ScopeError as error:
        raise BadRequest(f"invalid scope: {error}") from None
    if not parsed.within_any(registered):
        raise BadRequest("the scope exceeds what the application registered")
    if expiration_at is not None and not now < expiration_at <= now + _MAX_LIFETIME:
        raise BadRequest("expiration_date_time must be in the future and at most three years ahead")
    if data_from is not None and data_to is not None and data_from >= data_to:
        raise BadRequest("data_from must be before data_to")
    consent_request = ConsentRequest(
        id=f"ocr_{new_secret(24)}",
        application_id=application.id,
        scope=str(parsed),
        expiration_at=expiration_at,
        data_from=data_from,
        data_to=data_to,
        status=ConsentRequestStatus.AWAITING_AUTHORISATION,
        created_at=now,
        status_updated_at=now,
    )
    session.add(consent_request)
    session.flush()
    record_event(
        session,
        consent_request_id=consent_request.id,
        kind=ConsentEventKind.REQUESTED,
        actor="app",
        at=now,
        detail={"scope": consent_request.scope},
    )
    session.flush()
    return consent_request


def refresh_status(session: Session, consent_request: ConsentRequest, now: dt.datetime) -> None:
    """Move a consent request past its expiration to ``Expired`` (revoking an authorised consent's tokens)."""
    if consent_request.expiration_at is None or consent_request.expiration_at > now:
        return
    if consent_request.status == ConsentRequestStatus.AWAITING_AUTHORISATION:
        set_request_status(consent_request, ConsentRequestStatus.EXPIRED, now)
        record_event(
            session,
            consent_request_id=consent_request.id,
            kind=ConsentEventKind.EXPIRED,
            actor="system",
            at=now,
        )
        session.flush()


def get_consent_request(
    session: Session, application_id: int, consent_request_id: str, *, now: dt.datetime | None = None
) -> ConsentRequest:
    """The application's own consent request, status brought up to date; another app's is :class:`NotFound`."""
    consent_request = session.get(ConsentRequest, consent_request_id) if len(consent_request_id) <= 48 else None
    if consent_request is None or consent_request.application_id != application_id:
        raise NotFound("no such consent request")
    refresh_status(session, consent_request, now or utcnow())
    return consent_request


def consent_of(session: Session, consent_request: ConsentRequest) -> Consent | None:
    """The consent that answered ``consent_request`` (``Authorised`` or ``Rejected``), if any."""
    return session.scalar(
        select(Consent).where(Consent.consent_request_id == consent_request.id).order_by(Consent.id.desc()).limit(1)
    )


def delete_consent_request(
    session: Session,
    settings: Settings,
    application_id: int,
    consent_request_id: str,
    *,
    now: dt.datetime | None = None,
) -> ConsentRequest:
    """The app withdraws its consent request: ``Revoked``; an authorised consent is revoked with all its tokens."""
    now = now or utcnow()
    consent_request = get_consent_request(session, application_id, consent_request_id, now=now)
    if consent_request.status in (
        ConsentRequestStatus.REVOKED,
        ConsentRequestStatus.EXPIRED,
        ConsentRequestStatus.REJECTED,
    ):
        return consent_request
    if consent_request.status == ConsentRequestStatus.AUTHORISED:
        consent = consent_of(session, consent_request)
        if consent is not None and consent.status == ConsentStatus.ACTIVE:
            revoke_consent(session, settings, consent, by=RevokedBy.APP, context=DecisionContext(), now=now)
    if consent_request.status != ConsentRequestStatus.REVOKED:
        set_request_status(consent_request, ConsentRequestStatus.REVOKED, now)
        record_event(
            session,
            consent_request_id=consent_request.id,
            kind=ConsentEventKind.REVOKED_BY_APP,
            actor="app",
            at=now,
        )
    session.flush()
    return consent_request


def usable_for(
    session: Session,
    pending: PendingAuthorizationRequest,
    consent_request_id: str,
    *,
    now: dt.datetime,
    lock: bool = False,
) -> ConsentRequest:
    """The consent request an authorization request refers to, checked: same app, awaiting, unexpired, scope within.

    Raises :class:`NotFound` (another app's or unknown id: no oracle) or :class:`Conflict` (already answered).
    ``lock`` (when deciding) locks the row until the transaction ends and checks its committed status: two
    authorization requests naming the same consent request cannot both authorise it (PostgreSQL; SQLite
    serialises writers anyway).
    """
    consent_request = (
        session.get(ConsentRequest, consent_request_id, with_for_update=True, populate_existing=True)
        if lock
        else session.get(ConsentRequest, consent_request_id)
    )
    if consent_request is None or consent_request.application_id != pending.application_id:
        raise NotFound("the consent request named by the app does not exist")
    refresh_status(session, consent_request, now)
    if consent_request.status != ConsentRequestStatus.AWAITING_AUTHORISATION:
        raise Conflict(f"the app's consent request is {consent_request.status}, not awaiting authorisation")
    if not parse_scope(consent_request.scope).is_within(parse_scope(pending.scope)):
        raise Conflict("the app's consent request asks for more than its authorization request")
    return consent_request


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_json(session: Session, settings: Settings, consent_request: ConsentRequest) -> dict[str, Any]:
    """The API representation (field names after Open Banking's, in snake case)."""
    document: dict[str, Any] = {
        "consent_request_id": consent_request.id,
        "status": consent_request.status,
        "scope": consent_request.scope,
        "creation_date_time": _iso(consent_request.created_at),
        "status_update_date_time": _iso(consent_request.status_updated_at),
        "expiration_date_time": _iso(consent_request.expiration_at),
        "data_from": _iso(consent_request.data_from),
        "data_to": _iso(consent_request.data_to),
    }
    consent = consent_of(session, consent_request)
    if consent is not None and consent.authorization_id is not None:
        document["authorization_uri"] = authorization_uri(settings, consent.authorization_id)
    return document
