"""The background worker: deliver the outbox, expire consents, forget stale sessions — in a loop or once.

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
from collections.abc import Callable, Mapping

from sqlalchemy import delete

from gateway.consent.lifecycle import expire_due
from gateway.oauth.authorize import purge_expired_requests
from gateway.outbox.delivery import Deliverer, DeliveryReport, default_deliverers, deliver_due
from gateway.security.throttle import Throttle
from gateway.services import Services
from gateway.storage.base import utcnow
from gateway.storage.consent import CustomerSession
from gateway.storage.engine import session_scope

__all__ = ["PassReport", "WorkerThread", "run_once", "run_worker", "spawn_worker"]

log = logging.getLogger(__name__)

THROTTLE_RETENTION = dt.timedelta(days=1)
"""Throttle counters are kept this long after their window and block ended (longer than any rule's window)."""


@dataclasses.dataclass(frozen=True, slots=True)
class PassReport:
    delivery: DeliveryReport
    expired_consents: int
    removed_sessions: int
    purged_requests: int = 0
    """Expired pending authorization requests and authorization codes deleted."""
    purged_throttle_counters: int = 0


def run_once(services: Services, deliverers: Mapping[str, Deliverer] | None = None) -> PassReport:
    """One pass: expire what is due (queuing its mails), forget what is stale, then deliver what is due."""
    now = utcnow()
    with session_scope(services.sessions) as session:
        expired = expire_due(session, services.settings, now=now)
        removed = session.execute(delete(CustomerSession).where(CustomerSession.expires_at <= now)).rowcount  # type: ignore[attr-defined]
        purged_requests = purge_expired_requests(session, now)
        purged_counters = Throttle(clock=lambda: now).purge(session, THROTTLE_RETENTION)
    delivery = deliver_due(services.sessions, deliverers or default_deliverers(services.settings))
    return PassReport(
        delivery=delivery,
        expired_consents=expired,
        removed_sessions=int(removed or 0),
        purged_requests=purged_requests,
        purged_throttle_counters=purged_counters,
    )


def run_worker(
    services: Services,
    *,
    interval: float = 5.0,
    stop: threading.Event | None = None,
    deliverers: Mapping[str, Deliverer] | None = None,
    on_pass: Callable[[PassReport], None] | None = None,
) -> None:
    """Loop until ``stop`` is set; a failing pass is logged and the loop goes on (the database may come back)."""
    stop = stop or threading.Event()
    chosen = deliverers or default_deliverers(services.settings)
    while not stop.is_set():
        try:
            report = run_once(services, chosen)
            if on_pass is not None:
                on_pass(report)
            busy = report.delivery.attempted > 0
        except Exception:
            log.exception("worker pass failed; retrying")
            busy = False
        # Go straight on while there was work (a backlog drains fast), else wait.
        stop.wait(0 if busy else interval)


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
