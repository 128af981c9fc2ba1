"""The background worker: deliver the outbox, expire consents, forget stale sessions and tokens — in a loop or once.

``gateway worker`` runs :func:`run_worker` in its own process; ``gateway serve``/``demo`` can run it in a thread of
the gunicorn master (see :class:`WorkerThread`). Several workers may run at once: claims use
``FOR UPDATE SKIP LOCKED`` (:mod:`gateway.outbox.delivery`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping

from sqlalchemy import delete

from gateway.consent.lifecycle import expire_due
from gateway.oauth.authorize import purge_expired_requests
from gateway.outbox.bulk_builder import BulkBuilder, purge_bulks, run_bulk_builder
from gateway.outbox.delivery import Deliverer, DeliveryReport, default_deliverers, deliver_due
from gateway.security.throttle import Throttle
from gateway.services import Services
from gateway.storage.base import utcnow
from gateway.storage.consent import CustomerSession
from gateway.storage.engine import session_scope
from gateway.storage.oauth import PURGE_BATCH, purge_dead_tokens
from gateway.storage.rate_limit import purge_idle_buckets

__all__ = ["PassReport", "WorkerThread", "run_once", "run_worker", "spawn_worker"]

log = logging.getLogger(__name__)

THROTTLE_RETENTION = dt.timedelta(days=1)
"""Throttle counters are kept this long after their window and block ended (longer than any rule's window)."""
RATE_LIMIT_RETENTION = dt.timedelta(days=1)
"""Rate-limit buckets that gave out no token for this long are full again: they are deleted (gateway.web.rate_limit)."""
TOKEN_PURGE_INTERVAL = 3600.0
"""Seconds between two purges of dead tokens by :func:`run_worker`: finding them reads the whole token table."""


@dataclasses.dataclass(frozen=True, slots=True)
class PassReport:
    delivery: DeliveryReport
    expired_consents: int
    removed_sessions: int
    purged_requests: int = 0
    """Expired pending authorization requests and authorization codes deleted."""
    purged_throttle_counters: int = 0
    purged_rate_limit_buckets: int = 0
    purged_bulks: int = 0
    """Stored bulk results deleted: past retention, invalidated by a revoked consent, or failed long ago."""
    built_bulks: int = 0
    """Bulk requests built (only by ``run_once`` itself; :func:`run_worker` builds in a thread of its own)."""
    purged_tokens: int | None = None
    """Dead token rows deleted (GATEWAY_TOKEN_RETENTION); ``None`` when this pass did not purge tokens."""


def run_once(
    services: Services,
    deliverers: Mapping[str, Deliverer] | None = None,
    *,
    build_bulks: bool = True,
    purge_tokens: bool = True,
) -> PassReport:
    """One pass: expire what is due (queuing its mails), forget what is stale (with ``purge_tokens``, dead tokens
    too), then deliver what is due, then (with ``build_bulks``) build the bulk requests due (FB 35;
    :mod:`gateway.outbox.bulk_builder`)."""
    now = utcnow()
    purged_tokens: int | None = None
    with session_scope(services.sessions) as session:
        expired = expire_due(session, services.settings, now=now)
        removed = session.execute(delete(CustomerSession).where(CustomerSession.expires_at <= now)).rowcount  # type: ignore[attr-defined]
        purged_requests = purge_expired_requests(session, now)
        purged_counters = Throttle(clock=lambda: now).purge(session, THROTTLE_RETENTION)
        purged_buckets = purge_idle_buckets(session, idle_before=(now - RATE_LIMIT_RETENTION).timestamp())
        bulks = purge_bulks(session, services, now=now)
        if purge_tokens:
            retention = dt.timedelta(seconds=services.settings.token_retention)
            purged_tokens = purge_dead_tokens(session, now=now, retention=retention)
    delivery = deliver_due(services.sessions, deliverers or default_deliverers(services.settings))
    built = len(BulkBuilder(services).build_due()) if build_bulks else 0
    return PassReport(
        delivery=delivery,
        expired_consents=expired,
        removed_sessions=int(removed or 0),
        purged_requests=purged_requests,
        purged_throttle_counters=purged_counters,
        purged_rate_limit_buckets=purged_buckets,
        purged_bulks=bulks.expired + bulks.revoked + bulks.failed,
        built_bulks=built,
        purged_tokens=purged_tokens,
    )


def run_worker(
    services: Services,
    *,
    interval: float = 5.0,
    stop: threading.Event | None = None,
    deliverers: Mapping[str, Deliverer] | None = None,
    on_pass: Callable[[PassReport], None] | None = None,
) -> None:
    """Loop until ``stop`` is set; a failing pass is logged and the loop goes on (the database may come back).

    Bulk requests are built in a thread of their own (a build can take minutes; deliveries must not wait for it).
    """
    stop = stop or threading.Event()
    chosen = deliverers or default_deliverers(services.settings)
    builder = threading.Thread(
        target=run_bulk_builder,
        args=(services,),
        kwargs={"stop": stop, "interval": interval},
        name="gateway-bulk-builder",
        daemon=True,
    )
    builder.start()
    next_token_purge = time.monotonic()
    while not stop.is_set():
        try:
            purge_tokens = time.monotonic() >= next_token_purge
            report = run_once(services, chosen, build_bulks=False, purge_tokens=purge_tokens)
            if purge_tokens:
                # A full batch means more are waiting (a first purge of a large table): go on next pass.
                more = report.purged_tokens == PURGE_BATCH
                next_token_purge = time.monotonic() + (0.0 if more else TOKEN_PURGE_INTERVAL)
            if on_pass is not None:
                on_pass(report)
            busy = report.delivery.attempted > 0
        except Exception:
            log.exception("worker pass failed; retrying")
            busy = False
        # Go straight on while there was work (a backlog drains fast), else wait.
        stop.wait(0 if busy else interval)
    builder.join(timeout=30)  # it hands an unfinished build back to the queue as soon as it sees ``stop``


class WorkerThread:
    """Run the worker in a daemon thread (for ``gateway serve``/``demo``: one per master process, not per worker)."""

    def __init__(self, services: Services, *, interval: float = 5.0) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=run_worker,
            args=(services,),
            kwargs={"interval": interval, "stop": self._stop},
            name="gateway-outbox-worker",
            daemon=True,
        )

    def start(self) -> WorkerThread:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)


def spawn_worker(environ: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``gateway worker`` as a child process (for ``gateway serve``/``demo``).

    A separate process rather than a thread of the gunicorn master: the master forks its web workers, and a fork while
    another thread holds a lock (logging, the connection pool) can leave the child deadlocked. ``environ`` overrides
    the process environment (the CLI's in-process ``environ``); the child gets SIGTERM when the server stops.
    """
    env = {**os.environ, **(environ or {})}
    return subprocess.Popen([sys.executable, "-m", "gateway", "worker"], env=env)
