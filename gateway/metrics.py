"""Prometheus metrics: request counts and latencies by route and status, plus state read from the database.

Request metrics and the count of tokens issued live in each worker process; under gunicorn with several workers,
``gateway serve`` switches prometheus_client to its multiprocess mode (:func:`enable_multiprocess`) so a scrape of any
worker reports the sum over all of them (per node: Prometheus sums the nodes). Business gauges (tokens stored,
notifications pending or failed) are read from the database at scrape time, so every node reports the same,
cluster-wide truth. The falcon side is :mod:`gateway.web.metrics`.
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
from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session, sessionmaker

__all__ = [
    "MULTIPROC_ENV",
    "TOKEN_STATES",
    "DatabaseCollector",
    "Metrics",
    "enable_multiprocess",
    "outbox_gauges",
    "outbox_kinds",
    "token_gauges",
    "worker_exited",
]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
TOKEN_STATES = ("live", "rotated", "expired", "revoked")
"""States of ``gateway_oauth_tokens``, in the order they are decided (see :func:`token_gauges`)."""


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
    """The in-process metrics of one app: requests and tokens issued (their own registry, so tests can build many
    apps in one process)."""

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
        self.tokens_issued = Counter(
            "gateway_oauth_tokens_issued",
            "Access tokens issued at the token endpoint by this node's workers, by grant type (RFC 6749 §5.1; a "
            "refresh token issued with one is not counted again). Counted in process, not read from the database: "
            "token rows are purged (GATEWAY_TOKEN_RETENTION), a count of rows would fall. Sum over nodes.",
            ["grant_type"],
            registry=self.registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def token_issued(self, grant_type: str) -> None:
        """Count one token response of ``grant_type`` (called where the tokens are stored)."""
        self.tokens_issued.labels(grant_type).inc()

    def ensure_series(self) -> None:
        """Create the zero series of every grant type, so a rate or an alert has a series before the first token.

        Called at scrape time, not in ``__init__``: a metric child picks its value store when created, and the
        app is built before ``gateway serve`` turns multiprocess mode on; created in the master, a child would
        count in memory that no scrape reads.
        """
        from gateway.oauth.server import GRANT_TYPES

        for grant_type in GRANT_TYPES:
            self.tokens_issued.labels(grant_type)


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
    """``gateway_oauth_tokens``: token rows stored, by type and state, counted by the database (a few rows a scrape).

    A token is ``revoked`` if revoked, else ``expired`` past its lifetime, else ``rotated`` (a refresh token that was
    exchanged, RFC 9700 §4.14.2: kept for reuse detection), else ``live``. Dead rows leave the table after
    GATEWAY_TOKEN_RETENTION (:func:`gateway.storage.oauth.purge_dead_tokens`).
    """
    from gateway.storage.base import utcnow
    from gateway.storage.oauth import OAuthToken, TokenType

    state = case(
        (OAuthToken.revoked_at.is_not(None), "revoked"),
        (and_(OAuthToken.expires_at.is_not(None), OAuthToken.expires_at <= utcnow()), "expired"),
        (OAuthToken.rotated_at.is_not(None), "rotated"),
        else_="live",
    ).label("state")
    # Grouped over a subquery: PostgreSQL cannot tell that two copies of a CASE with a bound ``now`` are equal.
    classified = select(OAuthToken.token_type, state).subquery()
    rows = session.execute(
        select(classified.c.token_type, classified.c.state, func.count()).group_by(
            classified.c.token_type, classified.c.state
        )
    ).all()
    counts: dict[tuple[str, str], int] = {
        (token_type, name): 0
        for token_type in (TokenType.ACCESS, TokenType.REFRESH, TokenType.REGISTRATION)
        for name in TOKEN_STATES
        if name != "rotated" or token_type == TokenType.REFRESH
    }
    counts.update({(token_type, name): count for token_type, name, count in rows})
    family = GaugeMetricFamily(
        "gateway_oauth_tokens",
        "OAuth tokens stored, by type and state (live, rotated, expired, revoked).",
        labels=["type", "state"],
    )
    for (token_type, name), count in sorted(counts.items()):
        family.add_metric([token_type, name], count)
    yield family


def outbox_kinds() -> tuple[str, ...]:
    """Every outbox message kind the gateway queues: each has a deliverer (:mod:`gateway.outbox.delivery`)."""
    from gateway.notifications import BATCH_LIST
    from gateway.outbox.queue import MAIL, NOTIFICATION

    return (MAIL, NOTIFICATION, BATCH_LIST)


def outbox_gauges(session: Session) -> Iterable[Metric]:
    """``gateway_outbox_messages``: outbox rows by kind and state, and the age of the oldest one still pending.

    ``state="pending"`` counts messages waiting for a first or a retried attempt, ``failed`` those given up after
    their last attempt (ESPI-NOTES §9: failed deliveries must be noticed). Alert on ``failed`` rising and on
    ``gateway_outbox_oldest_pending_seconds`` growing: a receiver is down or no worker runs.
    """
    from gateway.storage.base import utcnow
    from gateway.storage.outbox import OutboxMessage, OutboxState

    family = GaugeMetricFamily(
        "gateway_outbox_messages",
        "Outbox messages (mail, notification, espi_batch_list), by kind and state.",
        labels=["kind", "state"],
    )
    rows = session.execute(
        select(OutboxMessage.kind, OutboxMessage.state, func.count()).group_by(OutboxMessage.kind, OutboxMessage.state)
    ).all()
    counts = {(kind, state): count for kind, state, count in rows}
    # Always report pending and failed for every kind, so an alert on them has a series even at zero.
    for kind in {*outbox_kinds(), *(kind for kind, _ in counts)}:
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
