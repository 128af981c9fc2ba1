"""Building very large ESPI bulks in the background (REQ.21 FB 35 REST bulk, FB 39 push; ESPI-NOTES §9).

``GET Batch/Bulk/{bulkId}`` answers a very large bulk with 202 Accepted and records a pending
:class:`gateway.storage.bulk.BulkRequest` (:mod:`gateway.resources.bulk`). A worker then:

1. **claims** the next due job in a short transaction, under a lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, as the
   outbox does: two workers never claim the same job). A killed worker's lease lapses and another worker claims the
   job again; every claim counts an attempt, so a job that keeps killing its worker ends failed, not looping.
2. **builds** the feed with the very writer of the synchronous path (:func:`gateway.resources.bulk.bulk_feed`), every
   access decision (active, unexpired consents, each grant's usage points, window and function blocks) taken again
   now. The feed is compressed as one gzip stream (RFC 1952) and written to the database in chunks of about 1 MiB as
   they fill, each in its own short transaction that also renews the lease: memory stays bounded, SQLite's write lock
   is held for one chunk at a time, and any node can serve the result.
3. **finishes** in one transaction: the job becomes ready (with its retention) only if this attempt still holds the
   lease, together with the bulk-ready BatchList in the outbox (:func:`gateway.notifications.notify_bulk_ready`), so
   the notification exists exactly when the result does, and is sent once.

A failed attempt is retried with the outbox's backoff (30 s, then 60 s, ±20 %), at most :data:`MAX_BUILD_ATTEMPTS`
times; then the job is failed and the next request reports it once and starts over. :func:`purge_bulks`, run in every
worker pass, deletes results past retention, results a revoked or expired consent invalidates, and old failures.

Builds run in their own thread of ``gateway worker`` (:func:`run_bulk_builder`): a build can take minutes, and
notification delivery must not wait for it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import logging
import secrets
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from urllib.parse import parse_qs

from sqlalchemy.orm import Session

from gateway.errors import NotFound
from gateway.espi.links import ResourceLinks
from gateway.notifications import notify_bulk_ready
from gateway.oauth.hotpath import HotPath
from gateway.outbox.delivery import backoff
from gateway.resources.bulk import BulkContents, bulk_contents, bulk_feed, canonical_url, select_bulk
from gateway.services import Services
from gateway.storage.base import utcnow
from gateway.storage.bulk import (
    BuiltFeed,
    BulkClaim,
    BulkPurge,
    BulkState,
    claim_next_bulk,
    delete_build_chunks,
    finish_bulk_build,
    has_bulk_requests,
    purge_bulk_requests,
    record_bulk_failure,
    release_bulk_claim,
    renew_bulk_lease,
    store_chunk,
)
from gateway.storage.engine import session_scope
from gateway.web.http_cache import GZIP_LEVEL
from gateway.web.params import parse_query

__all__ = [
    "CHUNK_BYTES",
    "DOWNLOAD_GRACE",
    "LEASE",
    "MAX_BUILD_ATTEMPTS",
    "BuildOutcome",
    "BulkBuilder",
    "FeedWriter",
    "purge_bulks",
    "run_bulk_builder",
]

log = logging.getLogger(__name__)

LEASE = dt.timedelta(minutes=2)
"""How long a claim holds without news from its worker; renewed with every chunk and at least every :data:`RENEW`."""
RENEW = dt.timedelta(seconds=30)
MAX_BUILD_ATTEMPTS = 3
"""Attempts per job (a worker killed mid-build counts as one) before it is failed."""
CHUNK_BYTES = 1 << 20
"""Compressed bytes per stored chunk: one row, one round trip per ~1 MiB when serving."""
DOWNLOAD_GRACE = dt.timedelta(minutes=10)
"""How long after ``Expires`` a result is actually deleted, so that a download begun just before can finish."""

FeedWriter = Callable[[Session, BulkContents, str], Iterator[bytes]]
"""Writes a bulk's feed from its contents and ``self`` URL (the default is the synchronous path's writer)."""


class LeaseLost(Exception):
    """This attempt's lease lapsed and another worker claimed the job: stop, and leave it to that worker."""


class BuildStopped(Exception):
    """The worker is shutting down: hand the job back at once."""


@dataclasses.dataclass(frozen=True, slots=True)
class BuildOutcome:
    """What one claimed job came to: ``ready``, ``pending`` (retried later), ``failed``, ``lost`` or ``released``."""

    bulk_request_id: int
    state: str
    error: str | None = None


class _ChunkWriter:
    """Compress the feed as one gzip stream and store it chunk by chunk as chunks fill, renewing the lease."""

    def __init__(self, builder: BulkBuilder, claim: BulkClaim) -> None:
        self._builder = builder
        self._claim = claim
        self._compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
        self._digest = hashlib.blake2b(digest_size=16)
        self._buffer = bytearray()
        self._renewed = builder.clock()
        self.feed_bytes = 0
        self.stored_bytes = 0
        self.chunks = 0

    def write(self, data: bytes) -> None:
        self._digest.update(data)
        self.feed_bytes += len(data)
        self._buffer += self._compressor.compress(data)
        if len(self._buffer) >= self._builder.chunk_bytes:
            self._store_full_chunks()
        elif self._builder.clock() - self._renewed >= RENEW:
            self._renew()
        if self._builder.stop.is_set():
            raise BuildStopped

    def finish(self, subscription_ids: Sequence[int]) -> BuiltFeed:
        self._buffer += self._compressor.flush()
        self._store_full_chunks()
        if self._buffer or not self.chunks:
            self._store(bytes(self._buffer))
            self._buffer.clear()
        return BuiltFeed(
            subscription_ids=list(subscription_ids),
            feed_bytes=self.feed_bytes,
            stored_bytes=self.stored_bytes,
            chunks=self.chunks,
            digest=self._digest.hexdigest(),
        )

    def _store_full_chunks(self) -> None:
        size = self._builder.chunk_bytes
        while len(self._buffer) >= size:
            self._store(bytes(self._buffer[:size]))
            del self._buffer[:size]

    def _store(self, data: bytes) -> None:
        now = self._builder.clock()
        with session_scope(self._builder.services.sessions) as session:
            if not store_chunk(session, self._claim, self.chunks, data, lease_until=now + self._builder.lease):
                raise LeaseLost
        self.chunks += 1
        self.stored_bytes += len(data)
        self._renewed = now

    def _renew(self) -> None:
        now = self._builder.clock()
        with session_scope(self._builder.services.sessions) as session:
            if not renew_bulk_lease(session, self._claim, until=now + self._builder.lease):
                raise LeaseLost
        self._renewed = now


class BulkBuilder:
    """Claims due bulk requests and builds them (see the module docstring); safe to run in several workers at once."""

    def __init__(
        self,
        services: Services,
        *,
        clock: Callable[[], dt.datetime] = utcnow,
        write_feed: FeedWriter | None = None,
        chunk_bytes: int = CHUNK_BYTES,
        lease: dt.timedelta = LEASE,
        max_attempts: int = MAX_BUILD_ATTEMPTS,
        stop: threading.Event | None = None,
    ) -> None:
        self.services = services
        self.clock = clock
        self.links = ResourceLinks(services.settings.resource_base_url)
        self.write_feed: FeedWriter = write_feed or self._bulk_feed
        self.chunk_bytes = chunk_bytes
        self.lease = lease
        self.max_attempts = max_attempts
        self.stop = stop or threading.Event()

    def _bulk_feed(self, session: Session, contents: BulkContents, self_href: str) -> Iterator[bytes]:
        return bulk_feed(
            session,
            contents,
            links=self.links,
            self_href=self_href,
            certification_url=self.services.settings.certification_url,
        )

    def build_due(self, limit: int = 100) -> list[BuildOutcome]:
        """Build due jobs one after the other until none is left (or ``limit``); for ``gateway worker --once``."""
        outcomes: list[BuildOutcome] = []
        while len(outcomes) < limit and not self.stop.is_set():
            outcome = self.build_next()
            if outcome is None:
                break
            outcomes.append(outcome)
        return outcomes

    def build_next(self) -> BuildOutcome | None:
        """Claim the next due job and build it; ``None`` when nothing is due."""
        with session_scope(self.services.sessions) as session:
            claim = claim_next_bulk(
                session,
                now=self.clock(),
                lease=self.lease,
                build_id=secrets.token_hex(16),
                max_attempts=self.max_attempts,
            )
        if claim is None:
            return None
        try:
            built = self._build(claim)
            self._finish(claim, built)
        except BuildStopped:
            with session_scope(self.services.sessions) as session:
                release_bulk_claim(session, claim, now=self.clock())
            return BuildOutcome(claim.id, "released")
        except LeaseLost:
            log.warning("bulk request %s: lease lost to another worker; leaving it", claim.id)
            with session_scope(self.services.sessions) as session:
                delete_build_chunks(session, claim)
            return BuildOutcome(claim.id, "lost")
        except Exception as error:  # every failure is recorded and retried (or reported); never a secret in it
            return self._failed(claim, error)
        log.info("bulk request %s (%s) is ready", claim.id, claim.bulk_id)
        return BuildOutcome(claim.id, BulkState.READY)

    @contextlib.contextmanager
    def _read_session(self) -> Iterator[Session]:
        """A session for the build's reads: on SQLite an autocommit connection (a build reading for minutes must not
        hold the write lock, which ``BEGIN IMMEDIATE`` would take); elsewhere a plain session."""
        session = self.services.sessions()
        connection = HotPath.for_engine(self.services.engine).connection_for(session)
        if connection is not None:
            session.close()
            session = Session(bind=connection, autoflush=False, expire_on_commit=False)
        try:
            yield session
            # Commit, not roll back, a read-only session: under the test suite's savepoints a rollback would take
            # the chunks stored meanwhile on the same connection with it.
            session.commit()
        finally:
            session.close()
            if connection is not None:
                connection.close()

    def _build(self, claim: BulkClaim) -> BuiltFeed:
        query = parse_query(parse_qs(claim.query, keep_blank_values=True))
        self_href = canonical_url(self.links, claim.bulk_id, claim.query)
        with self._read_session() as session:
            selection = select_bulk(
                session, application_id=claim.application_id, bulk_id=claim.bulk_id, query=query, now=self.clock()
            )
            contents = bulk_contents(session, selection)
            writer = _ChunkWriter(self, claim)
            body = self.write_feed(session, contents, self_href)
            try:
                for data in body:
                    writer.write(data)
            finally:
                close = getattr(body, "close", None)
                if close is not None:
                    close()
            return writer.finish(contents.subscription_ids)

    def _finish(self, claim: BulkClaim, built: BuiltFeed) -> None:
        settings = self.services.settings
        with session_scope(self.services.sessions) as session:
            now = self.clock()
            retention = dt.timedelta(seconds=settings.bulk_retention)
            if not finish_bulk_build(session, claim, built, now=now, retention=retention):
                raise LeaseLost
            notify_bulk_ready(
                session,
                settings,
                application_id=claim.application_id,
                bulk_id=claim.bulk_id,
                url=canonical_url(self.links, claim.bulk_id, claim.query),
                now=now,
            )

    def _failed(self, claim: BulkClaim, error: Exception) -> BuildOutcome:
        reason = f"{type(error).__name__}: {error}"[:2000]
        now = self.clock()
        # A bulk that no longer exists will not come back by retrying: fail at once.
        final = isinstance(error, NotFound) or claim.attempts >= self.max_attempts
        retry_at = None if final else now + backoff(claim.attempts)
        with session_scope(self.services.sessions) as session:
            state = record_bulk_failure(session, claim, error=reason, now=now, retry_at=retry_at)
        if state == BulkState.FAILED:
            log.error("bulk request %s failed for good after %s attempts: %s", claim.id, claim.attempts, reason)
        else:
            log.warning("bulk request %s attempt %s failed: %s", claim.id, claim.attempts, reason)
        return BuildOutcome(claim.id, state or "lost", reason)


def purge_bulks(session: Session, services: Services, *, now: dt.datetime) -> BulkPurge:
    """The worker pass's retention sweep (see :func:`gateway.storage.bulk.purge_bulk_requests`)."""
    if not has_bulk_requests(session):
        return BulkPurge()
    retention = dt.timedelta(seconds=services.settings.bulk_retention)
    return purge_bulk_requests(session, now=now, retention=retention, grace=DOWNLOAD_GRACE)


def run_bulk_builder(services: Services, *, stop: threading.Event, interval: float = 5.0) -> None:
    """Build due bulks until ``stop`` is set (the builder thread of ``gateway worker``); failures are logged."""
    builder = BulkBuilder(services, stop=stop)
    while not stop.is_set():
        try:
            outcome = builder.build_next()
        except Exception:
            log.exception("bulk builder pass failed; retrying")
            outcome = None
        stop.wait(0 if outcome is not None else interval)
