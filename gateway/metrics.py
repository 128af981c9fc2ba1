"""Prometheus metrics: request counts and latencies by route and status, plus state read from the database.

Request metrics live in each worker process; under gunicorn with several workers, ``gateway serve`` switches
prometheus_client to its multiprocess mode (:func:`enable_multiprocess`) so a scrape of any worker reports the sum
over all of them. Business gauges (tokens issued, notifications pending or failed) are read from the database at
scrape time, so every node reports the same, cluster-wide truth. The falcon side is :mod:`gateway.web.metrics`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import mark_process_dead
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

__all__ = [
    "MULTIPROC_ENV",
    "DatabaseCollector",
    "Metrics",
    "enable_multiprocess",
    "outbox_gauges",
    "token_gauges",
    "worker_exited",
]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def enable_multiprocess(directory: Path) -> None:
    """Switch prometheus_client to multiprocess mode, with a clean ``directory`` (call before forking workers)."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(directory)
    # Metric children pick their value class at creation: re-read it now that the environment says multiprocess.
    values.ValueClass = values.get_value_class()


def worker_exited(pid: int) -> None:
    """gunicorn ``child_exit`` hook: fold a dead worker's live gauges away."""
    if os.environ.get(MULTIPROC_ENV):
        mark_process_dead(pid)


class Metrics:
    """The request metrics of one app (their own registry, so tests can build many apps in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "gateway_http_requests",
            "HTTP requests answered, by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "gateway_http_request_duration_seconds",
            "Time to produce the response (streamed bodies excluded), by method and route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)


class DatabaseCollector(Collector):
    """Gauges computed from the database at scrape time (consistent across nodes)."""

    def __init__(self, sessions: sessionmaker[Session], queries: Sequence[Callable[[Session], Iterable[Metric]]]):
        self._sessions = sessions
        self._queries = queries

    def collect(self) -> Iterable[Metric]:
        with self._sessions() as session:
            for query in self._queries:
                yield from query(session)


def token_gauges(session: Session) -> Iterable[Metric]:
    """``gateway_oauth_tokens``: tokens issued, by type and state (live, revoked, expired)."""
    from gateway.storage.base import utcnow
    from gateway.storage.oauth import OAuthToken

    now = utcnow()
    family = GaugeMetricFamily(
        "gateway_oauth_tokens", "OAuth tokens stored, by type and state.", labels=["type", "state"]
    )
    rows = session.execute(
        select(OAuthToken.token_type, OAuthToken.revoked_at.is_(None), OAuthToken.expires_at, func.count()).group_by(
            OAuthToken.token_type, OAuthToken.revoked_at.is_(None), OAuthToken.expires_at
        )
    ).all()
    totals: dict[tuple[str, str], int] = {}
    for token_type, live, expires_at, count in rows:
        state = "revoked" if not live else ("expired" if expires_at is not None and expires_at <= now else "live")
        totals[(token_type, state)] = totals.get((token_type, state), 0) + count
    for (token_type, state), count in sorted(totals.items()):
        family.add_metric([token_type, state], count)
    yield family


def outbox_gauges(session: Session) -> Iterable[Metric]:
    """``gateway_outbox_messages``: outbox rows by kind and state, and the age of the oldest one still pending.

    ``state="pending"`` counts messages waiting for a first or a retried attempt, ``failed`` those given up after
    their last attempt (ESPI-NOTES §9: failed deliveries must be noticed). Alert on ``failed`` rising and on
    ``gateway_outbox_oldest_pending_seconds`` growing: a receiver is down or no worker runs.
    """
    from gateway.storage.base import utcnow
    from gateway.storage.outbox import OutboxMessage, OutboxState

    family = GaugeMetricFamily(
        "gateway_outbox_messages", "Outbox messages (mail, notifications), by kind and state.", labels=["kind", "state"]
    )
    rows = session.execute(
        select(OutboxMessage.kind, OutboxMessage.state, func.count()).group_by(OutboxMessage.kind, OutboxMessage.state)
    ).all()
    counts = {(kind, state): count for kind, state, count in rows}
    # Always report pending and failed for the known kinds, so an alert on them has a series even at zero.
    for kind in {"mail", "notification", *(kind for kind, _ in counts)}:
        for state in (OutboxState.PENDING, OutboxState.FAILED):
            counts.setdefault((kind, state), 0)
    for (kind, state), count in sorted(counts.items()):
        family.add_metric([kind, state], count)
    yield family
    oldest = session.scalar(
        select(func.min(OutboxMessage.created_at)).where(OutboxMessage.state == OutboxState.PENDING)
    )
    age = GaugeMetricFamily(
        "gateway_outbox_oldest_pending_seconds", "Age of the oldest outbox message not yet delivered (0 when none)."
    )
    age.add_metric([], max(0.0, (utcnow() - oldest).total_seconds()) if oldest is not None else 0.0)
    yield age
