"""The consent lifecycle: grant, deny, refresh, revoke, expire — each recorded, each announced (pure domain, no falcon).

Every change of a :class:`~gateway.storage.consent.Consent` appends a :class:`~gateway.storage.consent.ConsentEvent`
(never edits one) and keeps the derived ESPI ``Authorization`` in step (status 1 active, 0 revoked, 2 denied; ESPI
REQ.21 ``AuthorizationStatus``). A revocation or expiry revokes every token of the Authorization in the same
transaction, so the next bearer check (which reads the database on every request) refuses them (checklist row 37,
RFC 7009 §2.1). Mails to the customer and the app and the app's ESPI notification are queued in the outbox in the same
transaction (:mod:`gateway.outbox.queue`): sending never blocks or breaks the consent action.

Functions take the session first and never commit: the caller owns the transaction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.config import Settings
from gateway.consent import mail
from gateway.oauth.tokens import revoke_authorization_tokens
from gateway.outbox.queue import enqueue_notification
from gateway.storage.base import utcnow
from gateway.storage.consent import (
    Consent,
    ConsentEvent,
    ConsentEventKind,
    ConsentRequest,
    ConsentRequestStatus,
    ConsentStatus,
)
from gateway.storage.models import (
    ApplicationInformation,
    Authorization,
    AuthorizationKind,
    AuthorizationStatus,
    OAuthToken,
    RetailCustomer,
    Subscription,
)
from gateway.storage.oauth import PendingAuthorizationRequest

__all__ = [
    "TERMS_VERSION",
    "DecisionContext",
    "RevokedBy",
    "active_consents",
    "consent_request_id_of",
    "customer_consent",
    "expire_due",
    "last_access",
    "past_consents",
    "record_denial",
    "record_event",
    "record_grant",
    "record_refresh",
    "revoke_consent",
    "set_request_status",
]

TERMS_VERSION = "2026-11-01"
"""Version of the Terms & Conditions shown on the consent screen; stored with each consent."""


class RevokedBy:
    """Who ended a consent: the event kind differs (the consent issue, item 3)."""

    CUSTOMER = "customer"
    APP = "app"
    OPERATOR = "operator"


_REVOKE_EVENT = {
    RevokedBy.CUSTOMER: ConsentEventKind.REVOKED_BY_CUSTOMER,
    RevokedBy.APP: ConsentEventKind.REVOKED_BY_APP,
    RevokedBy.OPERATOR: ConsentEventKind.REVOKED_BY_OPERATOR,
}


@dataclasses.dataclass(frozen=True, slots=True)
class DecisionContext:
    """How a decision reached us: the browser's address and user agent (kept as evidence, trimmed)."""

    client_ip: str | None = None
    user_agent: str | None = None

    def trimmed(self) -> tuple[str | None, str | None]:
        return (self.client_ip or None), (self.user_agent[:512] if self.user_agent else None)


def record_event(
    session: Session,
    *,
    kind: str,
    actor: str,
    at: dt.datetime,
    consent: Consent | None = None,
    consent_request_id: str | None = None,
    context: DecisionContext | None = None,
    detail: dict[str, Any] | None = None,
) -> ConsentEvent:
    """Append one event to a consent's (or consent request's) history (append-only; the consent issue, item 4)."""
    ip, agent = (context or DecisionContext()).trimmed()
    event = ConsentEvent(
        consent_id=consent.id if consent is not None else None,
        consent_request_id=consent_request_id or (consent.consent_request_id if consent is not None else None),
        kind=kind,
        actor=actor,
        occurred_at=at,
        client_ip=ip,
        user_agent=agent,
        detail=detail or {},
    )
    session.add(event)
    return event


def authorization_uri(settings: Settings, authorization_id: int) -> str:
    """The ESPI URL of an Authorization (what notifications and API answers point at; ESPI-NOTES §2)."""
    return f"{settings.resource_base_url}/Authorization/{authorization_id}"


def consent_request_id_of(pending: PendingAuthorizationRequest) -> str | None:
    """The ``consent_request_id`` parameter of the stored authorization request, if the app sent one."""
    for name, value in parse_qsl(urlsplit(pending.request_uri).query, keep_blank_values=True):
        if name == "consent_request_id":
            return value[:48] or None
    return None


def _epoch(value: dt.datetime) -> int:
    return int(value.timestamp())


def _apply_consent_request(authorization: Authorization, consent_request: ConsentRequest) -> None:
    """Narrow the Authorization to the consent request's expiry and data window (ESPI ``authorizedPeriod``,
    ``publishedPeriod``; Open Banking ExpirationDateTime and TransactionFrom/To)."""
    if consent_request.expiration_at is not None:
        expires = _epoch(consent_request.expiration_at)
        if expires < authorization.expires_at:
            authorization.expires_at = expires
            if authorization.authorized_period_start is not None:
                authorization.authorized_period_duration = max(0, expires - authorization.authorized_period_start)
    if consent_request.data_from is not None or consent_request.data_to is not None:
        start = _epoch(consent_request.data_from) if consent_request.data_from is not None else 0
        authorization.published_period_start = start
        authorization.published_period_duration = (
            _epoch(consent_request.data_to) - start if consent_request.data_to is not None else None
        )


def _usage_point_snapshot(subscription: Subscription | None) -> list[dict[str, Any]]:
    if subscription is None:
        return []
    return [
        {
            "id": point.id,
            "uuid": str(point.uuid),
            "description": point.description or f"Usage point {point.id}",
        }
        for point in subscription.usage_points
    ]


def _announce(session: Session, settings: Settings, consent: Consent, *, granted: bool, now: dt.datetime) -> None:
    """Queue the mails (customer and the app's contacts) and the app's ESPI notification."""
    application = consent.application
    customer = consent.customer
    message = mail.grant_mail(settings, consent) if granted else mail.revoke_mail(settings, consent)
    mail.queue(session, message, to=[customer.email], now=now)
    contacts = [address for address in (application.contacts or []) if "@" in address]
    if contacts:
        app_message = mail.app_grant_mail(settings, consent) if granted else mail.app_revoke_mail(settings, consent)
        mail.queue(session, app_message, to=contacts, now=now)
    if consent.authorization_id is not None:
        enqueue_notification(
            session,
            notify_uri=application.notify_uri,
            resources=[authorization_uri(settings, consent.authorization_id)],
            application_id=application.id,
            now=now,
        )


def _open_consent(
    session: Session,
    *,
    pending: PendingAuthorizationRequest,
    application: ApplicationInformation,
    customer: RetailCustomer,
    authorization: Authorization,
    status: str,
    context: DecisionContext,
    terms_version: str | None,
    consent_request: ConsentRequest | None,
    now: dt.datetime,
) -> Consent:
    ip, agent = context.trimmed()
    expires_at = dt.datetime.fromtimestamp(authorization.expires_at, dt.UTC) if status == ConsentStatus.ACTIVE else None
    published_start = authorization.published_period_start
    published_duration = authorization.published_period_duration
    consent = Consent(
        public_id=str(uuid.uuid4()),
        customer_id=customer.id,
        application_id=application.id,
        authorization_id=authorization.id,
        application_name=application.client_name,
        application_version=application.software_version or "1.0",
        requested_scope=pending.scope,
        granted_scope=authorization.scope if status == ConsentStatus.ACTIVE else None,
        offline_access=pending.offline_access,
        usage_points=_usage_point_snapshot(authorization.subscription) if status == ConsentStatus.ACTIVE else [],
        data_from=(dt.datetime.fromtimestamp(published_start, dt.UTC) if published_start else None),
        data_to=(
            dt.datetime.fromtimestamp(published_start + published_duration, dt.UTC)
            if published_start is not None and published_duration is not None
            else None
        ),
        expires_at=expires_at,
        status=status,
        requested_at=pending.created_at,
        decided_at=now,
        client_ip=ip,
        user_agent=agent,
        terms_version=terms_version,
        authorization_request_id=pending.id,
        consent_request_id=consent_request.id if consent_request is not None else None,
    )
    session.add(consent)
    session.flush()
    # Every consent's history opens with the app's request, whatever the customer decided.
    record_event(
        session,
        consent=consent,
        kind=ConsentEventKind.REQUESTED,
        actor="app",
        at=pending.created_at,
        detail={"scope": pending.scope, "authorization_request_id": pending.id},
    )
    return consent


def record_grant(
    session: Session,
    settings: Settings,
    *,
    pending: PendingAuthorizationRequest,
    customer: RetailCustomer,
    context: DecisionContext,
    terms_version: str,
    consent_request: ConsentRequest | None = None,
    now: dt.datetime | None = None,
) -> Consent:
    """Record a consent the customer just gave (after :meth:`AuthorizationRequests.approve` created the Authorization).

    Narrows the Authorization to a consent request's expiry and data window, snapshots what was shared, appends the
    ``requested`` and ``granted`` events, marks the consent request ``Authorised`` and queues the mails and the app's
    notification. If the approval turned into an error (the request stopped being valid), records a denial.
    """
    now = now or utcnow()
    if pending.authorization_id is None:
        raise ValueError("the authorization request was not approved")
    authorization = session.get(Authorization, pending.authorization_id)
    assert authorization is not None
    application = authorization.application
    if consent_request is not None and authorization.status == AuthorizationStatus.ACTIVE:
        _apply_consent_request(authorization, consent_request)
    active = authorization.status == AuthorizationStatus.ACTIVE
    consent = _open_consent(
        session,
        pending=pending,
        application=application,
        customer=customer,
        authorization=authorization,
        status=ConsentStatus.ACTIVE if active else ConsentStatus.DENIED,
        context=context,
        terms_version=terms_version,
        consent_request=consent_request,
        now=now,
    )
    if not active:
        record_event(
            session,
            consent=consent,
            kind=ConsentEventKind.DENIED,
            actor="system",
            at=now,
            context=context,
            detail={"reason": "the authorization request was no longer valid"},
        )
        if consent_request is not None:
            set_request_status(consent_request, ConsentRequestStatus.REJECTED, now)
        session.flush()
        return consent
    record_event(
        session,
        consent=consent,
        kind=ConsentEventKind.GRANTED,
        actor="customer",
        at=now,
        context=context,
        detail={
            "scope": consent.granted_scope,
            "usage_point_ids": [point["id"] for point in consent.usage_points],
            "terms_version": terms_version,
            "expires_at": consent.expires_at.isoformat() if consent.expires_at else None,
        },
    )
    if consent_request is not None:
        set_request_status(consent_request, ConsentRequestStatus.AUTHORISED, now)
    session.flush()
    _announce(session, settings, consent, granted=True, now=now)
    return consent


def record_denial(
    session: Session,
    settings: Settings,
    *,
    pending: PendingAuthorizationRequest,
    customer: RetailCustomer,
    context: DecisionContext,
    consent_request: ConsentRequest | None = None,
    now: dt.datetime | None = None,
) -> Consent:
    """Record a refusal (after :meth:`AuthorizationRequests.deny`): an ESPI Authorization with status 2 (denied)."""
    now = now or utcnow()
    application = session.get(ApplicationInformation, pending.application_id)
    assert application is not None
    authorization = Authorization(
        uuid=uuid.uuid4(),
        kind=AuthorizationKind.CUSTOMER,
        application_id=application.id,
        customer_id=customer.id,
        status=AuthorizationStatus.DENIED,
        authorized_period_start=_epoch(now),
        authorized_period_duration=0,
        expires_at=_epoch(now),
        grant_type="authorization_code",
        scope=pending.scope,
        error="access_denied",
        error_description="the customer declined the request",
    )
    session.add(authorization)
    session.flush()
    consent = _open_consent(
        session,
        pending=pending,
        application=application,
        customer=customer,
        authorization=authorization,
        status=ConsentStatus.DENIED,
        context=context,
        terms_version=None,
        consent_request=consent_request,
        now=now,
    )
    record_event(session, consent=consent, kind=ConsentEventKind.DENIED, actor="customer", at=now, context=context)
    if consent_request is not None:
        set_request_status(consent_request, ConsentRequestStatus.REJECTED, now)
    session.flush()
    return consent


def set_request_status(consent_request: ConsentRequest, status: str, now: dt.datetime) -> None:
    """Move a consent request to ``status`` (Open Banking ``StatusUpdateDateTime`` follows)."""
    consent_request.status = status
    consent_request.status_updated_at = now


def _end(
    session: Session,
    settings: Settings,
    consent: Consent,
    *,
    status: str,
    event_kind: str,
    actor: str,
    context: DecisionContext | None,
    now: dt.datetime,
) -> None:
    consent.status = status
    consent.ended_at = now
    authorization = consent.authorization
    if authorization is not None:
        authorization.status = AuthorizationStatus.REVOKED
        authorization.revoked_at = now
        revoke_authorization_tokens(session, authorization.id, now)
    if consent.consent_request_id is not None:
        consent_request = session.get(ConsentRequest, consent.consent_request_id)
        if consent_request is not None:
            set_request_status(
                consent_request,
                ConsentRequestStatus.EXPIRED if status == ConsentStatus.EXPIRED else ConsentRequestStatus.REVOKED,
                now,
            )
    record_event(session, consent=consent, kind=event_kind, actor=actor, at=now, context=context)
    session.flush()
    _announce(session, settings, consent, granted=False, now=now)


def revoke_consent(
    session: Session,
    settings: Settings,
    consent: Consent,
    *,
    by: str,
    context: DecisionContext | None = None,
    now: dt.datetime | None = None,
) -> bool:
    """Revoke an active consent at once (checklist row 37); return False when it was not active any more.

    Kills every access and refresh token of its Authorization in this transaction (the bearer check reads the
    database on each request, so the very next request fails), sets the Authorization to status 0 with
    ``revoked_at``, appends the event and queues the mails and the app's notification.
    """
    if by not in _REVOKE_EVENT:
        raise ValueError(f"unknown revoker {by!r}")
    now = now or utcnow()
    # Lock the row: two concurrent revocations (two tabs, the app and the customer) record one event, not two.
    session.refresh(consent, with_for_update=True)
    if consent.status != ConsentStatus.ACTIVE:
        return False
    _end(
        session,
        settings,
        consent,
        status=ConsentStatus.REVOKED,
        event_kind=_REVOKE_EVENT[by],
        actor=by,
        context=context,
        now=now,
    )
    return True


def expire_due(
    session: Session, settings: Settings, *, now: dt.datetime | None = None, customer_id: int | None = None
) -> int:
    """Mark consents past their end as expired (tokens revoked, app told) and expire stale consent requests.

    Tokens already stop working at ``Authorization.expires_at`` (the bearer check compares it); this sweep makes the
    records say so and tells the customer and the app. Run by the worker, and before showing a customer's dashboard.
    """
    now = now or utcnow()
    query = select(Consent).where(Consent.status == ConsentStatus.ACTIVE, Consent.expires_at <= now)
    if customer_id is not None:
        query = query.where(Consent.customer_id == customer_id)
    count = 0
    for consent in session.scalars(query.order_by(Consent.id).limit(500)).all():
        session.refresh(consent, with_for_update=True)
        if consent.status != ConsentStatus.ACTIVE:
            continue
        _end(
            session,
            settings,
            consent,
            status=ConsentStatus.EXPIRED,
            event_kind=ConsentEventKind.EXPIRED,
            actor="system",
            context=None,
            now=now,
        )
        count += 1
    if customer_id is None:
        stale = session.scalars(
            select(ConsentRequest).where(
                ConsentRequest.status == ConsentRequestStatus.AWAITING_AUTHORISATION,
                ConsentRequest.expiration_at <= now,
            )
        ).all()
        for consent_request in stale:
            set_request_status(consent_request, ConsentRequestStatus.EXPIRED, now)
            record_event(
                session,
                consent_request_id=consent_request.id,
                kind=ConsentEventKind.EXPIRED,
                actor="system",
                at=now,
            )
            count += 1
    session.flush()
    return count


def record_refresh(
    session: Session,
    authorization_id: int,
    *,
    now: dt.datetime | None = None,
    context: DecisionContext | None = None,
) -> None:
    """Append a ``refreshed`` event to the consent behind ``authorization_id`` (call on each refresh_token grant)."""
    consent = session.scalar(select(Consent).where(Consent.authorization_id == authorization_id))
    if consent is not None:
        record_event(
            session,
            consent=consent,
            kind=ConsentEventKind.REFRESHED,
            actor="app",
            at=now or utcnow(),
            context=context,
        )
        session.flush()


def active_consents(session: Session, customer_id: int) -> Sequence[Consent]:
    """The customer's active consents, newest first (the dashboard)."""
    return session.scalars(
        select(Consent)
        .where(Consent.customer_id == customer_id, Consent.status == ConsentStatus.ACTIVE)
        .order_by(Consent.decided_at.desc(), Consent.id.desc())
    ).all()


def past_consents(session: Session, customer_id: int) -> Sequence[Consent]:
    """Revoked, expired and denied consents, newest first (the dashboard's history tab)."""
    return session.scalars(
        select(Consent)
        .where(Consent.customer_id == customer_id, Consent.status != ConsentStatus.ACTIVE)
        .order_by(Consent.decided_at.desc(), Consent.id.desc())
    ).all()


def customer_consent(session: Session, customer_id: int, public_id: str) -> Consent | None:
    """One of the customer's consents by public id; another customer's consent is simply not found."""
    if not 0 < len(public_id) <= 36:
        return None
    return session.scalar(select(Consent).where(Consent.public_id == public_id, Consent.customer_id == customer_id))


def last_access(session: Session, consent: Consent) -> dt.datetime | None:
    """When the app last used the consent: the later of the Subscription's last read and a token's last use."""
    if consent.authorization_id is None:
        return None
    token_use = session.scalar(
        select(func.max(func.coalesce(OAuthToken.last_used_at, OAuthToken.issued_at))).where(
            OAuthToken.authorization_id == consent.authorization_id
        )
    )
    subscription_use = session.scalar(
        select(Subscription.last_accessed_at).where(Subscription.authorization_id == consent.authorization_id)
    )
    candidates = [value for value in (token_use, subscription_use) if value is not None]
    if not candidates:
        return None
    # func.max over a coalesce loses the column type on SQLite: normalise naive values to UTC.
    normalised = [value if value.tzinfo else value.replace(tzinfo=dt.UTC) for value in candidates]
    return max(normalised)
