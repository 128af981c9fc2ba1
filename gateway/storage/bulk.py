"""Durable ESPI bulk requests (REQ.21 FB 35 REST bulk; ESPI-NOTES §9): the job, its stored feed, what it holds.

A very large ``Batch/Bulk/{bulkId}`` is answered 202 Accepted and built in the background. Its record is a
:class:`BulkRequest`, one per *canonical key* (the application, the bulk id and the normalised FB 37 query), unique in
the database so that two nodes receiving the same request at once create one job, never two. The job moves through
:class:`BulkState`: pending → building (a worker holds the lease) → ready (or back to pending after a failed attempt,
with backoff; failed after the last one).

The built feed lives in the database, not on a node's disk, because several nodes share one PostgreSQL and any of them
must serve it: :class:`BulkChunk` rows hold consecutive slices (about 1 MiB each) of *one* gzip stream (RFC 1952), so a
client accepting gzip gets the stored bytes as they are and any other client gets them inflated on the fly. Chunks
carry the ``build_id`` of the attempt that wrote them: a worker that lost its lease can never mix its chunks into
another attempt's result. :data:`bulk_subscription` records which subscriptions a ready result holds, so a consent
revoked or expired after the build is noticed (:func:`lost_access`) and the stored result dropped before it can leak.

Every function takes the session first and never commits: the caller (a request, the worker) owns the transaction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from gateway.storage.authorization import Authorization, AuthorizationStatus, Subscription
from gateway.storage.base import Base, UTCDateTime

__all__ = [
    "BuiltFeed",
    "BulkChunk",
    "BulkClaim",
    "BulkPurge",
    "BulkRequest",
    "BulkState",
    "bulk_subscription",
    "chunk_data",
    "claim_next_bulk",
    "create_bulk_request",
    "delete_build_chunks",
    "discard_bulk_request",
    "find_bulk_request",
    "finish_bulk_build",
    "has_bulk_requests",
    "insert_bulk_request",
    "list_bulk_requests",
    "lost_access",
    "mark_failure_reported",
    "purge_bulk_requests",
    "record_bulk_failure",
    "release_bulk_claim",
    "renew_bulk_lease",
    "store_chunk",
]


class BulkState:
    """Where a bulk request stands."""

    PENDING = "pending"
    """Waiting for a worker: never tried yet, or retried after ``next_attempt_at`` (backoff)."""
    BUILDING = "building"
    """A worker holds the lease (``lease_until``) and writes chunks; a lapsed lease makes it claimable again."""
    READY = "ready"
    """Built and stored until ``expires_at`` (the retention period)."""
    FAILED = "failed"
    """Every attempt failed (``last_error``); answered once with an error, then the next request starts over."""


class BulkRequest(Base):
    """One ``Batch/Bulk/{bulkId}`` job and the metadata of its stored result."""

    __tablename__ = "bulk_request"
    __table_args__ = (
        # The canonical key: concurrent requests on two nodes insert one row; the loser reads the winner's.
        UniqueConstraint("application_id", "bulk_id", "query"),
        Index("ix_bulk_request_due", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("application_information.id", ondelete="CASCADE"))
    bulk_id: Mapped[str] = mapped_column(String(64))
    """The ``BR`` value of the scopes (ESPI-NOTES §5)."""
    query: Mapped[str] = mapped_column(String(512))
    """The normalised FB 37 parameters (names sorted, defaults left out; empty when none): part of the key."""
    state: Mapped[str] = mapped_column(String(16), default=BulkState.PENDING)
    estimated_readings: Mapped[int] = mapped_column(BigInteger, default=0)
    """The estimate that sent the request down the asynchronous path (0 when the client asked for it)."""
    requested_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    """When the current (or last) attempt was claimed."""
    ready_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    """When the result was stored: its ``Last-Modified``."""
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    """End of retention: the result's ``Expires``; afterwards the next request starts a new build."""
    failed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    failure_reported_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    """When a client was told of the failure: the next request starts over."""
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    build_id: Mapped[str | None] = mapped_column(String(32))
    """The attempt holding the lease, then the attempt whose chunks are the result (a random token)."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    subscriptions: Mapped[int | None] = mapped_column(Integer)
    """How many subscriptions the stored result holds."""
    feed_bytes: Mapped[int | None] = mapped_column(BigInteger)
    """Size of the feed (identity coding)."""
    stored_bytes: Mapped[int | None] = mapped_column(BigInteger)
    """Size of the stored gzip stream (what a gzip-accepting client downloads)."""
    chunks: Mapped[int | None] = mapped_column(Integer)
    digest: Mapped[str | None] = mapped_column(String(64))
    """BLAKE2b of the feed: the ETag's source."""


class BulkChunk(Base):
    """One slice of a stored result's gzip stream; ``position`` orders the slices of one ``build_id``."""

    __tablename__ = "bulk_chunk"

    bulk_request_id: Mapped[int] = mapped_column(ForeignKey("bulk_request.id", ondelete="CASCADE"), primary_key=True)
    build_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


bulk_subscription = Table(
    "bulk_subscription",
    Base.metadata,
    Column("bulk_request_id", ForeignKey("bulk_request.id", ondelete="CASCADE"), primary_key=True),
    # Indexed for the cascade when a subscription is deleted (and so the link disappears: access lost).
    Column("subscription_id", ForeignKey("subscription.id", ondelete="CASCADE"), primary_key=True, index=True),
)
"""The subscriptions a ready result holds (checked against their Authorizations before serving it)."""


@dataclasses.dataclass(frozen=True, slots=True)
class BulkClaim:
    """A job a worker claimed: what it builds, and the ``build_id`` that proves it still holds the lease."""

    id: int
    application_id: int
    bulk_id: str
    query: str
    build_id: str
    attempts: int


def _epoch(moment: dt.datetime) -> int:
    return int(moment.timestamp())


# -- the request side -------------------------------------------------------------------------------------------


def find_bulk_request(session: Session, *, application_id: int, bulk_id: str, query: str) -> BulkRequest | None:
    """The job of one canonical key, or ``None``."""
    return session.scalar(
        select(BulkRequest).where(
            BulkRequest.application_id == application_id, BulkRequest.bulk_id == bulk_id, BulkRequest.query == query
        )
    )


def create_bulk_request(
    session: Session, *, application_id: int, bulk_id: str, query: str, estimated_readings: int, now: dt.datetime
) -> tuple[BulkRequest, bool]:
    """The job of this key, created pending when there is none; ``True`` when this call created it.

    Never refuses a duplicate request (ESPI-NOTES §9): an existing job is returned as it is.
    """
    existing = find_bulk_request(session, application_id=application_id, bulk_id=bulk_id, query=query)
    if existing is not None:
        return existing, False
    return insert_bulk_request(
        session,
        application_id=application_id,
        bulk_id=bulk_id,
        query=query,
        estimated_readings=estimated_readings,
        now=now,
    )


def insert_bulk_request(
    session: Session, *, application_id: int, bulk_id: str, query: str, estimated_readings: int, now: dt.datetime
) -> tuple[BulkRequest, bool]:
    """Insert a pending job, or return the one another transaction inserted for the same key meanwhile.

    Idempotent under concurrency: the insert runs in a savepoint, and when another transaction (another node) inserted
    the same key first, the unique constraint refuses ours (on PostgreSQL after waiting for the other to commit) and
    the winner's row is returned instead, so two concurrent requests make one job.
    """
    job = BulkRequest(
        application_id=application_id,
        bulk_id=bulk_id,
        query=query,
        state=BulkState.PENDING,
        estimated_readings=estimated_readings,
        requested_at=now,
        next_attempt_at=now,
        attempts=0,
    )
    try:
        with session.begin_nested():
            session.add(job)
    except IntegrityError:
        winner = find_bulk_request(session, application_id=application_id, bulk_id=bulk_id, query=query)
        if winner is None:  # not a duplicate key after all (e.g. the application was deleted): a real error
            raise
        return winner, False
    return job, True


def discard_bulk_request(session: Session, job: BulkRequest | int) -> None:
    """Delete a job with its stored result, its chunks and subscription links (the next request starts over)."""
    if isinstance(job, BulkRequest):
        if job in session:
            # Out of the identity map too: SQLite may give the job that replaces it the same id.
            session.expunge(job)
        bulk_request_id = job.id
    else:
        bulk_request_id = job
    session.execute(delete(BulkChunk).where(BulkChunk.bulk_request_id == bulk_request_id))
    session.execute(delete(bulk_subscription).where(bulk_subscription.c.bulk_request_id == bulk_request_id))
    session.execute(delete(BulkRequest).where(BulkRequest.id == bulk_request_id))


def _live_links(now: dt.datetime) -> Any:
    """``bulk_subscription`` rows whose Authorization is still active and unexpired at ``now``."""
    return (
        select(bulk_subscription.c.bulk_request_id)
        .join(Subscription, Subscription.id == bulk_subscription.c.subscription_id)
        .join(Authorization, Authorization.id == Subscription.authorization_id)
        .where(Authorization.status == AuthorizationStatus.ACTIVE, Authorization.expires_at > _epoch(now))
    )


def lost_access(session: Session, job: BulkRequest, now: dt.datetime) -> bool:
    """Whether a consent behind a ready result was revoked or expired (or its subscription deleted) since the build.

    Access can only shrink that way: an Authorization's scope, window and usage points never change after the grant
    (``PUT Authorization`` may only revoke). One count over the result's links.
    """
    live = session.scalar(
        select(func.count()).select_from(
            _live_links(now).where(bulk_subscription.c.bulk_request_id == job.id).subquery()
        )
    )
    return int(live or 0) < (job.subscriptions or 0)


def mark_failure_reported(session: Session, bulk_request_id: int, now: dt.datetime) -> None:
    """Record that a client was told of the failure: its next request starts a new build."""
    session.execute(
        update(BulkRequest)
        .where(BulkRequest.id == bulk_request_id, BulkRequest.state == BulkState.FAILED)
        .values(failure_reported_at=now)
    )


def chunk_data(session: Session, job_id: int, build_id: str, position: int) -> bytes | None:
    """One stored chunk (one round trip per ~1 MiB), or ``None`` when it is gone (the result was dropped)."""
    data = session.scalar(
        select(BulkChunk.data).where(
            BulkChunk.bulk_request_id == job_id, BulkChunk.build_id == build_id, BulkChunk.position == position
        )
    )
    return None if data is None else bytes(data)


# -- the worker side --------------------------------------------------------------------------------------------


def claim_next_bulk(
    session: Session,
    *,
    now: dt.datetime,
    lease: dt.timedelta,
    build_id: str,
    max_attempts: int,
) -> BulkClaim | None:
    """Claim the next due job under a lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), or ``None``.

    Due: pending with ``next_attempt_at`` passed, or building with a lapsed lease (its worker was killed). Claiming
    counts an attempt, so a job whose builds keep killing their worker ends failed instead of looping; one found
    with no attempt left is marked failed here. Leftover chunks of an interrupted attempt are deleted.
    """
    statement = (
        select(BulkRequest)
        .where(
            BulkRequest.state.in_([BulkState.PENDING, BulkState.BUILDING]),
            BulkRequest.next_attempt_at <= now,
            or_(BulkRequest.lease_until.is_(None), BulkRequest.lease_until <= now),
        )
        .order_by(BulkRequest.next_attempt_at, BulkRequest.id)
        .limit(10)
    )
    if session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update(skip_locked=True)
    for job in session.scalars(statement).all():
        session.execute(delete(BulkChunk).where(BulkChunk.bulk_request_id == job.id))
        if job.attempts >= max_attempts:
            job.state = BulkState.FAILED
            job.failed_at = now
            job.lease_until = None
            job.last_error = "WorkerLost: the build was interrupted (its worker's lease lapsed) on the last attempt"
            continue
        job.state = BulkState.BUILDING
        job.attempts += 1
        job.started_at = now
        job.lease_until = now + lease
        job.build_id = build_id
        session.flush()
        return BulkClaim(job.id, job.application_id, job.bulk_id, job.query, build_id, job.attempts)
    session.flush()
    return None


def renew_bulk_lease(session: Session, claim: BulkClaim, *, until: dt.datetime) -> bool:
    """Extend the lease while building; ``False`` when it was lost (lapsed and claimed by another worker)."""
    result = session.execute(
        update(BulkRequest)
        .where(
            BulkRequest.id == claim.id,
            BulkRequest.build_id == claim.build_id,
            BulkRequest.state == BulkState.BUILDING,
        )
        .values(lease_until=until)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def store_chunk(session: Session, claim: BulkClaim, position: int, data: bytes, *, lease_until: dt.datetime) -> bool:
    """Renew the lease and store one chunk, only while the lease is still this attempt's."""
    if not renew_bulk_lease(session, claim, until=lease_until):
        return False
    session.execute(
        insert(BulkChunk).values(bulk_request_id=claim.id, build_id=claim.build_id, position=position, data=data)
    )
    return True


@dataclasses.dataclass(frozen=True, slots=True)
class BuiltFeed:
    """What a finished build wrote."""

    subscription_ids: Sequence[int]
    feed_bytes: int
    stored_bytes: int
    chunks: int
    digest: str


def finish_bulk_build(
    session: Session, claim: BulkClaim, built: BuiltFeed, *, now: dt.datetime, retention: dt.timedelta
) -> bool:
    """Mark the job ready with its result's metadata and links; ``False`` when the lease was lost meanwhile.

    The caller queues the bulk-ready notification in the same transaction, so it exists exactly when this succeeds.
    """
    result = session.execute(
        update(BulkRequest)
        .where(
            BulkRequest.id == claim.id,
            BulkRequest.build_id == claim.build_id,
            BulkRequest.state == BulkState.BUILDING,
        )
        .values(
            state=BulkState.READY,
            ready_at=now,
            expires_at=now + retention,
            lease_until=None,
            last_error=None,
            subscriptions=len(built.subscription_ids),
            feed_bytes=built.feed_bytes,
            stored_bytes=built.stored_bytes,
            chunks=built.chunks,
            digest=built.digest,
        )
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return False
    session.execute(delete(bulk_subscription).where(bulk_subscription.c.bulk_request_id == claim.id))
    if built.subscription_ids:
        session.execute(
            insert(bulk_subscription),
            [{"bulk_request_id": claim.id, "subscription_id": s} for s in sorted(set(built.subscription_ids))],
        )
    return True


def delete_build_chunks(session: Session, claim: BulkClaim) -> None:
    """Delete the chunks one attempt wrote (it failed, lost its lease or was stopped)."""
    session.execute(
        delete(BulkChunk).where(BulkChunk.bulk_request_id == claim.id, BulkChunk.build_id == claim.build_id)
    )


def record_bulk_failure(
    session: Session,
    claim: BulkClaim,
    *,
    error: str,
    now: dt.datetime,
    retry_at: dt.datetime | None,
) -> str | None:
    """Record a failed attempt: pending again until ``retry_at``, or failed for good when it is ``None``.

    Returns the new state, or ``None`` when the lease was lost (another worker owns the job now).
    """
    delete_build_chunks(session, claim)
    values: dict[str, Any] = {"lease_until": None, "last_error": error[:2000]}
    if retry_at is None:
        values.update(state=BulkState.FAILED, failed_at=now, failure_reported_at=None)
    else:
        values.update(state=BulkState.PENDING, next_attempt_at=retry_at)
    result = session.execute(
        update(BulkRequest)
        .where(
            BulkRequest.id == claim.id,
            BulkRequest.build_id == claim.build_id,
            BulkRequest.state == BulkState.BUILDING,
        )
        .values(**values)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return None
    return str(values["state"])


def release_bulk_claim(session: Session, claim: BulkClaim, *, now: dt.datetime) -> None:
    """Hand a job back at once (the worker is stopping): the interrupted attempt does not count."""
    delete_build_chunks(session, claim)
    session.execute(
        update(BulkRequest)
        .where(
            BulkRequest.id == claim.id,
            BulkRequest.build_id == claim.build_id,
            BulkRequest.state == BulkState.BUILDING,
        )
        .values(
            state=BulkState.PENDING,
            lease_until=None,
            next_attempt_at=now,
            attempts=BulkRequest.attempts - 1,
        )
    )


@dataclasses.dataclass(frozen=True, slots=True)
class BulkPurge:
    """What :func:`purge_bulk_requests` deleted."""

    expired: int = 0
    revoked: int = 0
    failed: int = 0


def purge_bulk_requests(
    session: Session, *, now: dt.datetime, retention: dt.timedelta, grace: dt.timedelta
) -> BulkPurge:
    """The worker's retention pass: delete results past retention, results a revoked consent invalidates, and failed
    jobs nobody asked about again within the retention period.

    ``grace`` lets a download begun before ``Expires`` finish; requests already treat the result as expired at
    ``expires_at``.
    """
    expired_ids = list(
        session.scalars(
            select(BulkRequest.id).where(BulkRequest.state == BulkState.READY, BulkRequest.expires_at <= now - grace)
        )
    )
    live = _live_links(now).group_by(bulk_subscription.c.bulk_request_id).add_columns(func.count().label("live"))
    live_counts = live.subquery()
    revoked_ids = list(
        session.scalars(
            select(BulkRequest.id)
            .outerjoin(live_counts, live_counts.c.bulk_request_id == BulkRequest.id)
            .where(
                BulkRequest.state == BulkState.READY,
                func.coalesce(live_counts.c.live, 0) < func.coalesce(BulkRequest.subscriptions, 0),
            )
        )
    )
    failed_ids = list(
        session.scalars(
            select(BulkRequest.id).where(
                BulkRequest.state == BulkState.FAILED, BulkRequest.failed_at <= now - retention
            )
        )
    )
    revoked_only = [job_id for job_id in revoked_ids if job_id not in set(expired_ids)]
    for job_id in (*expired_ids, *revoked_only, *failed_ids):
        discard_bulk_request(session, job_id)
    return BulkPurge(expired=len(expired_ids), revoked=len(revoked_only), failed=len(failed_ids))


def list_bulk_requests(session: Session, *, state: str | None = None, limit: int = 100) -> list[BulkRequest]:
    """Jobs for the operator, newest first."""
    statement = select(BulkRequest)
    if state is not None:
        statement = statement.where(BulkRequest.state == state)
    return list(session.scalars(statement.order_by(BulkRequest.id.desc()).limit(max(1, limit))))


def has_bulk_requests(session: Session) -> bool:
    """Whether any job exists (the worker skips its retention queries otherwise)."""
    return session.scalar(select(BulkRequest.id).limit(1)) is not None
