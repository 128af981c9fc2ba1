"""Queueing messages in the outbox, inside the caller's transaction (the transactional-outbox pattern).

Nothing here talks to the network: :func:`enqueue_mail` and :func:`enqueue_notification` only add a row to the
caller's session, so the message exists if and only if the change it reports commits. :mod:`gateway.outbox.delivery`
delivers later, with retries.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from gateway.storage.base import utcnow
from gateway.storage.outbox import OutboxMessage

__all__ = ["MAIL", "NOTIFICATION", "enqueue", "enqueue_mail", "enqueue_notification"]

MAIL = "mail"
NOTIFICATION = "notification"


def enqueue(session: Session, kind: str, payload: dict[str, Any], *, now: dt.datetime | None = None) -> OutboxMessage:
    """Queue a message of ``kind`` (a registered deliverer's name); other issues add their own kinds."""
    when = now or utcnow()
    message = OutboxMessage(kind=kind, payload=payload, created_at=when, next_attempt_at=when, attempts=0)
    session.add(message)
    session.flush()
    return message


def enqueue_mail(
    session: Session,
    *,
    to: Sequence[str],
    subject: str,
    text: str,
    reply_to: str | None = None,
    now: dt.datetime | None = None,
) -> OutboxMessage | None:
    """Queue a plain-text e-mail (RFC 5322) to ``to``; nothing is queued when there is no recipient."""
    recipients = [address for address in dict.fromkeys(to) if address]
    if not recipients:
        return None
    payload: dict[str, Any] = {"to": recipients, "subject": subject, "text": text}
    if reply_to:
        payload["reply_to"] = reply_to
    return enqueue(session, MAIL, payload, now=now)


def enqueue_notification(
    session: Session,
    *,
    notify_uri: str | None,
    resources: Sequence[str],
    application_id: int | None = None,
    now: dt.datetime | None = None,
) -> OutboxMessage | None:
    """Queue an ESPI ``BatchList`` POST of ``resources`` to an app's ``thirdPartyNotifyUri`` (ESPI-NOTES §9).

    Used when an Authorization changes (granted, revoked, expired): the app then GETs each URL with its token.
    Nothing is queued for an app without a notify URI.
    """
    if not notify_uri or not resources:
        return None
    payload: dict[str, Any] = {
        "uri": notify_uri,
        "resources": list(resources),
        "application_id": application_id,
    }
    return enqueue(session, NOTIFICATION, payload, now=now)
