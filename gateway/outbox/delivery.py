"""Delivering the outbox: claim due messages, deliver outside any transaction, record the outcome, back off on failure.

Claiming is a short transaction: ``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL (several workers never claim the
same row; SQLite's ``BEGIN IMMEDIATE`` serialises writers instead) sets a lease (``claimed_until``). Delivery then
happens with no transaction open, so a slow SMTP server holds no locks. Success marks the row delivered; failure
schedules the next attempt with exponential backoff and jitter, and after ``max_attempts`` the row is marked failed
and kept (ESPI-NOTES §9: failed deliveries must be noticed and recorded). A worker that dies mid-delivery leaves a
lease that lapses, and another worker retries: delivery is at least once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import random
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any
from xml.sax.saxutils import escape

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from gateway.config import Settings
from gateway.outbox.mailer import Mailer, build_message, mailer_for
from gateway.outbox.queue import MAIL, NOTIFICATION
from gateway.storage.base import utcnow
from gateway.storage.outbox import OutboxMessage, OutboxState

__all__ = [
    "Deliverer",
    "DeliveryReport",
    "backoff",
    "default_deliverers",
    "deliver_due",
    "register_deliverer",
]

log = logging.getLogger(__name__)

Deliverer = Callable[[dict[str, Any]], None]
"""Delivers one payload or raises (any exception means: retry later)."""

LEASE = dt.timedelta(minutes=5)
MAX_ATTEMPTS = 12
_BASE_DELAY = 30.0
_MAX_DELAY = 6 * 3600.0


def backoff(attempts: int, *, rng: Callable[[], float] = random.random) -> dt.timedelta:
    """Delay before attempt ``attempts + 1``: 30 s doubling up to 6 h, with ±20 % jitter (no thundering herd)."""
    delay = min(_MAX_DELAY, _BASE_DELAY * (2 ** max(0, attempts - 1)))
    return dt.timedelta(seconds=delay * (0.8 + 0.4 * rng()))


@dataclasses.dataclass(slots=True)
class DeliveryReport:
    """What one :func:`deliver_due` pass did."""

    delivered: int = 0
    retried: int = 0
    failed: int = 0

    @property
    def attempted(self) -> int:
        return self.delivered + self.retried + self.failed


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A notify URI was validated at registration; a redirect elsewhere is not followed (SSRF)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def batch_list(resources: list[str]) -> bytes:
    """An ESPI ``BatchList`` document (ESPI-NOTES §9)."""
    items = "".join(f"<resources>{escape(url)}</resources>" for url in resources)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<BatchList xmlns="http://naesb.org/espi">{items}</BatchList>\n'
    ).encode()


def post_notification(payload: dict[str, Any], *, timeout: float = 10.0) -> None:
    """POST a BatchList to the app's notify URI; anything but 2xx raises (and is retried)."""
    request = urllib.request.Request(  # noqa: S310 - the URI was validated as http(s) at registration
        payload["uri"],
        data=batch_list(list(payload["resources"])),
        method="POST",
        headers={"Content-Type": "application/atom+xml", "User-Agent": "greenbutton-gateway"},
    )
    opener = urllib.request.build_opener(_NoRedirects)
    with opener.open(request, timeout=timeout) as response:
        status = response.status
    if not 200 <= status < 300:
        raise RuntimeError(f"notify URI answered {status}")


_FACTORIES: dict[str, Callable[[Settings], Deliverer]] = {}


def register_deliverer(kind: str, factory: Callable[[Settings], Deliverer]) -> None:
    """Teach every worker a new message kind (e.g. a bulk-ready BatchList): ``factory(settings)`` builds its
    deliverer. Call at import time of the module that enqueues that kind."""
    _FACTORIES[kind] = factory


def default_deliverers(settings: Settings, *, mailer: Mailer | None = None) -> dict[str, Deliverer]:
    """The deliverers of every known kind: mail, notification, and those added with :func:`register_deliverer`."""
    chosen = mailer or mailer_for(settings.smtp_url, settings.mail_outbox_dir)
    domain = settings.base_url.split("://", 1)[1].split("/", 1)[0].split(":", 1)[0]

    def send_mail(payload: dict[str, Any]) -> None:
        chosen.send(
            build_message(
                sender=settings.mail_from,
                to=list(payload["to"]),
                subject=str(payload["subject"]),
                text=str(payload["text"]),
                reply_to=payload.get("reply_to"),
                msgid_domain=domain,
            )
        )

    deliverers: dict[str, Deliverer] = {kind: factory(settings) for kind, factory in _FACTORIES.items()}
    deliverers.update({MAIL: send_mail, NOTIFICATION: post_notification})
    return deliverers


def _claim(
    session_factory: sessionmaker[Session], now: dt.datetime, limit: int
) -> list[tuple[int, str, dict[str, Any]]]:
    with session_factory() as session, session.begin():
        query = (
            select(OutboxMessage)
            .where(
                OutboxMessage.state == OutboxState.PENDING,
                OutboxMessage.next_attempt_at <= now,
                or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until <= now),
            )
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(limit)
        )
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = session.scalars(query).all()
        for row in rows:
            row.claimed_until = now + LEASE
        return [(row.id, row.kind, dict(row.payload)) for row in rows]


def _finish(
    session_factory: sessionmaker[Session], message_id: int, lease: dt.datetime, values: dict[str, Any]
) -> None:
    with session_factory() as session, session.begin():
        # Only while we still hold the lease: a worker whose lease lapsed must not overwrite a newer outcome.
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id, OutboxMessage.claimed_until == lease)
            .values(**values, claimed_until=None)
        )


def deliver_due(
    session_factory: sessionmaker[Session],
    deliverers: Mapping[str, Deliverer],
    *,
    limit: int = 50,
    clock: Callable[[], dt.datetime] = utcnow,
    max_attempts: int = MAX_ATTEMPTS,
) -> DeliveryReport:
    """Deliver up to ``limit`` due messages once; return what happened. Safe to run in several workers at once."""
    now = clock()
    lease = now + LEASE
    report = DeliveryReport()
    for message_id, kind, payload in _claim(session_factory, now, limit):
        with session_factory() as session:
            attempts = (
                session.scalar(select(OutboxMessage.attempts).where(OutboxMessage.id == message_id)) or 0
            )
        deliverer = deliverers.get(kind)
        try:
            if deliverer is None:
                raise LookupError(f"no deliverer for outbox kind {kind!r}")
            deliverer(payload)
        except Exception as error:  # any failure is retried; the reason is recorded, never a secret
            attempts += 1
            reason = f"{type(error).__name__}: {error}"[:1000]
            if attempts >= max_attempts:
                report.failed += 1
                log.error(
                    "outbox message %s (%s) failed for good after %s attempts: %s",
                    message_id,
                    kind,
                    attempts,
                    reason,
                )
                _finish(
                    session_factory,
                    message_id,
                    lease,
                    {"attempts": attempts, "last_error": reason, "state": OutboxState.FAILED},
                )
            else:
                report.retried += 1
                log.warning(
                    "outbox message %s (%s) attempt %s failed: %s", message_id, kind, attempts, reason
                )
                _finish(
                    session_factory,
                    message_id,
                    lease,
                    {
                        "attempts": attempts,
                        "last_error": reason,
                        "next_attempt_at": clock() + backoff(attempts),
                    },
                )
            continue
        report.delivered += 1
        _finish(
            session_factory,
            message_id,
            lease,
            {
                "attempts": attempts + 1,
                "state": OutboxState.DELIVERED,
                "delivered_at": clock(),
                "last_error": None,
            },
        )
    return report
