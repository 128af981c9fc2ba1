"""Delivering the outbox: claim due messages, deliver outside any transaction, record the outcome, back off on failure.

Claiming is a short transaction: ``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL (several workers never claim the
same row; SQLite's ``BEGIN IMMEDIATE`` serialises writers instead) sets a lease (``claimed_until``). Delivery then
happens with no transaction open, so a slow SMTP server holds no locks. Success marks the row delivered, by whom
(``delivered_by``: the worker's ``host:pid``); failure schedules the next attempt with exponential backoff and
jitter, and after ``max_attempts`` the row is marked failed and kept (ESPI-NOTES §9: failed deliveries must be
noticed and recorded). A worker that dies mid-delivery leaves a lease that lapses, and another worker retries:
delivery is at least once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import http.client
import ipaddress
import logging
import os
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from gateway.config import Settings, is_loopback_host
from gateway.outbox.mailer import Mailer, build_message, mailer_for
from gateway.outbox.queue import MAIL, NOTIFICATION
from gateway.storage.base import utcnow
from gateway.storage.outbox import DELIVERED_BY_LENGTH, OutboxMessage, OutboxState

__all__ = [
    "Deliverer",
    "DeliveryReport",
    "UnsafeNotifyTarget",
    "backoff",
    "default_deliverers",
    "deliver_due",
    "is_development",
    "post_notification",
    "post_to_app",
    "register_deliverer",
    "worker_identity",
]

log = logging.getLogger(__name__)

Deliverer = Callable[[dict[str, Any]], None]
"""Delivers one payload or raises (any exception means: retry later)."""

LEASE = dt.timedelta(minutes=5)
LEASE_MARGIN = dt.timedelta(seconds=60)
"""A delivery is started only while at least this much of the lease is left: longer than one delivery may take
(HTTP 10 s, SMTP 30 s timeouts), so the lease cannot lapse mid-delivery and let another worker deliver it again."""
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


def worker_identity() -> str:
    """This process as ``host:pid``, recorded as ``delivered_by`` on what it delivers (several nodes, several workers).

    Asked at each pass rather than once at import: a forked process has a pid of its own.
    """
    pid = f":{os.getpid()}"
    return socket.gethostname()[: DELIVERED_BY_LENGTH - len(pid)] + pid


class UnsafeNotifyTarget(Exception):
    """A notify URI whose host resolves to an address the gateway must not call (SSRF: private, loopback, …)."""


def is_development(settings: Settings) -> bool:
    """Whether the gateway runs on a loopback base URL (development): only then may apps be called on loopback."""
    return is_loopback_host(urlsplit(settings.base_url).hostname)


def _allowed_address(address: str, *, allow_loopback: bool) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return allow_loopback
    # Private, link-local (cloud metadata at 169.254.169.254), unique-local, shared, reserved, multicast: never.
    return ip.is_global and not ip.is_multicast


def _connect(host: str, port: int, deadline: float, *, allow_loopback: bool) -> socket.socket:
    """Resolve ``host`` now (not at registration: DNS may have changed) and connect to an allowed address only.

    The connection goes to the address that was checked, so a second DNS answer cannot redirect it (rebinding).
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise OSError(f"cannot resolve {host!r}: {error}") from None
    allowed = [info for info in infos if _allowed_address(str(info[4][0]), allow_loopback=allow_loopback)]
    if len(allowed) != len(infos) or not allowed:
        raise UnsafeNotifyTarget(f"notify host {host!r} resolves to an address the gateway does not call")
    last: OSError | None = None
    for family, kind, proto, _name, address in allowed:
        sock = socket.socket(family, kind, proto)
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            sock.connect(address)
        except OSError as error:
            sock.close()
            last = error
            continue
        return sock
    raise last or OSError(f"cannot connect to {host!r}")


def post_to_app(
    uri: str,
    body: bytes,
    *,
    timeout: float = 10.0,
    allow_loopback: bool = False,
    content_type: str = "application/atom+xml",
) -> int:
    """POST ``body`` to an app's URI within ``timeout`` seconds *in total*; return the status (redirects not followed).

    Per-read socket timeouts do not bound a server trickling one byte at a time, so a watchdog closes the socket
    when the deadline passes. The host is resolved here and must not be private, link-local or (outside
    development) loopback: the URI was checked at registration, but its DNS answer can change since.
    """
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeNotifyTarget(f"notify URI {uri!r} is not an absolute http(s) URL")
    if parts.scheme == "http" and not allow_loopback:
        raise UnsafeNotifyTarget(f"notify URI {uri!r} must use https")
    host = parts.hostname
    port = parts.port or (443 if parts.scheme == "https" else 80)
    deadline = time.monotonic() + timeout
    sock = _connect(host, port, deadline, allow_loopback=allow_loopback)
    expired = threading.Event()

    def cut() -> None:
        expired.set()
        with contextlib.suppress(OSError):  # already closed: the delivery ended meanwhile
            sock.shutdown(socket.SHUT_RDWR)

    watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), cut)
    watchdog.daemon = True
    watchdog.start()
    connection: http.client.HTTPConnection
    try:
        if parts.scheme == "https":
            context = ssl.create_default_context()
            connection = http.client.HTTPSConnection(host, port, context=context, timeout=timeout)
            connection.sock = context.wrap_socket(sock, server_hostname=host)
        else:
            connection = http.client.HTTPConnection(host, port, timeout=timeout)
            connection.sock = sock
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.request(
            "POST", path, body=body, headers={"Content-Type": content_type, "User-Agent": "greenbutton-gateway"}
        )
        response = connection.getresponse()
        response.read(64 * 1024)  # a short body only; the status is what counts
    except (OSError, http.client.HTTPException) as error:
        if expired.is_set():
            raise TimeoutError(f"the app did not answer within {timeout:g} s") from None
        raise error
    finally:
        watchdog.cancel()
        sock.close()
    if expired.is_set():
        # A cut connection can look like a complete answer (the headers just end): it is not one.
        raise TimeoutError(f"the app did not answer within {timeout:g} s")
    return response.status


def batch_list(resources: list[str]) -> bytes:
    """An ESPI ``BatchList`` document (ESPI-NOTES §9)."""
    items = "".join(f"<resources>{escape(url)}</resources>" for url in resources)
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<BatchList xmlns="http://naesb.org/espi">{items}</BatchList>\n'
    ).encode()


def post_notification(payload: dict[str, Any], *, timeout: float = 10.0, allow_loopback: bool = False) -> None:
    """POST a BatchList to the app's notify URI; anything but 2xx raises (and is retried)."""
    status = post_to_app(
        payload["uri"], batch_list(list(payload["resources"])), timeout=timeout, allow_loopback=allow_loopback
    )
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
    notify = functools.partial(post_notification, allow_loopback=is_development(settings))
    deliverers.update({MAIL: send_mail, NOTIFICATION: notify})
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


def _release(session_factory: sessionmaker[Session], message_ids: list[int], lease: dt.datetime) -> None:
    """Hand claimed messages back (those still under our lease) so the next pass of any worker takes them."""
    with session_factory() as session, session.begin():
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(message_ids), OutboxMessage.claimed_until == lease)
            .values(claimed_until=None)
        )


def deliver_due(
    session_factory: sessionmaker[Session],
    deliverers: Mapping[str, Deliverer],
    *,
    limit: int = 50,
    clock: Callable[[], dt.datetime] = utcnow,
    max_attempts: int = MAX_ATTEMPTS,
    delivered_by: str | None = None,
) -> DeliveryReport:
    """Deliver up to ``limit`` due messages once; return what happened. Safe to run in several workers at once.

    Each delivered row records ``delivered_by`` (default: :func:`worker_identity`, this process).
    """
    delivered_by = (delivered_by or worker_identity())[:DELIVERED_BY_LENGTH]
    now = clock()
    lease = now + LEASE
    report = DeliveryReport()
    claimed = _claim(session_factory, now, limit)
    for index, (message_id, kind, payload) in enumerate(claimed):
        if clock() >= lease - LEASE_MARGIN:
            # Slow deliveries used up the lease: once it lapses another worker may claim the rest, and delivering
            # them here as well would send each twice. Hand them back now rather than wait for the lapse.
            _release(session_factory, [claimed_id for claimed_id, _, _ in claimed[index:]], lease)
            break
        with session_factory() as session:
            attempts = session.scalar(select(OutboxMessage.attempts).where(OutboxMessage.id == message_id)) or 0
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
                log.warning("outbox message %s (%s) attempt %s failed: %s", message_id, kind, attempts, reason)
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
                "delivered_by": delivered_by,
                "last_error": None,
            },
        )
    return report
