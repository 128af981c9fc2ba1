"""Token buckets of the per-client rate limits, shared by every worker process and node (RFC 6585 §4).

One row per limited key (``espi:{client_id}``, ``validate:{address}``): the tokens left and when they were last
refilled, in epoch seconds. Workers do not write this row on every request: :mod:`gateway.web.rate_limit` takes
tokens from it in batches (:func:`take_tokens`, one short transaction) and spends them in memory. The outbox worker
deletes rows left idle for a day (:func:`purge_idle_buckets`): such a bucket is full again, so forgetting it changes
nothing.
"""

from __future__ import annotations

import dataclasses
import math

from sqlalchemy import Connection, Float, String, bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from gateway.storage.base import Base

__all__ = ["KEY_LENGTH", "Lease", "RateLimitBucket", "purge_idle_buckets", "take_tokens"]

KEY_LENGTH = 200


class RateLimitBucket(Base):
    """The shared token bucket of one key (``espi:{client_id}`` or ``validate:{address}``)."""

    __tablename__ = "rate_limit_bucket"

    key: Mapped[str] = mapped_column(String(KEY_LENGTH), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    refilled_at: Mapped[float] = mapped_column(Float)
    """Epoch seconds of the last refill (the clock of the node that took tokens last)."""


# Run on every lease: prebuilt statements keep its transaction to a few cheap round trips.
_LOCK_ROW = (
    select(RateLimitBucket.tokens, RateLimitBucket.refilled_at)
    .where(RateLimitBucket.key == bindparam("key"))
    .with_for_update()
)
_WRITE_ROW = (
    update(RateLimitBucket)
    .where(RateLimitBucket.key == bindparam("row_key"))
    .values(tokens=bindparam("tokens"), refilled_at=bindparam("refilled_at"))
)


@dataclasses.dataclass(frozen=True, slots=True)
class Lease:
    """What one :func:`take_tokens` call got: ``granted`` whole tokens, or the seconds until one is there."""

    granted: int
    wait: float
    """Seconds until the bucket holds a whole token again (0 when ``granted`` > 0)."""


def take_tokens(connection: Connection, key: str, *, want: int, rate: float, burst: int, now: float) -> Lease:
    """Refill ``key``'s bucket and take up to ``want`` whole tokens from it, inside the caller's transaction.

    The refill is ``rate`` tokens per second since ``refilled_at``, capped at ``burst``; a missing row is a full
    bucket. The row is locked first (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE``, opened by
    the engine factory, already holds the database's write lock), so two workers never take the same token. A
    refusal writes nothing. Clocks of different nodes may disagree: time never runs backwards for a bucket (a node
    whose clock is behind refills nothing and leaves ``refilled_at`` where it was).
    """
    row = connection.execute(_LOCK_ROW, {"key": key}).first()
    if row is None:
        values = {"key": key, "tokens": float(burst), "refilled_at": now}
        # Insert-if-absent, so that two workers creating the same bucket never fail on the primary key.
        if connection.dialect.name == "postgresql":
            connection.execute(
                pg_insert(RateLimitBucket).values(**values).on_conflict_do_nothing(index_elements=["key"])
            )
        else:
            connection.execute(
                sqlite_insert(RateLimitBucket).values(**values).on_conflict_do_nothing(index_elements=["key"])
            )
        row = connection.execute(_LOCK_ROW, {"key": key}).one()
    tokens, refilled_at = float(row.tokens), float(row.refilled_at)
    available = min(float(burst), tokens + max(0.0, now - refilled_at) * rate)
    granted = min(want, math.floor(available))
    if granted < 1:
        return Lease(granted=0, wait=(1.0 - available) / rate)
    connection.execute(
        _WRITE_ROW, {"row_key": key, "tokens": available - granted, "refilled_at": max(now, refilled_at)}
    )
    return Lease(granted=granted, wait=0.0)


def purge_idle_buckets(session: Session, *, idle_before: float) -> int:
    """Delete buckets that gave out no token since ``idle_before`` (epoch seconds); a periodic job.

    A day-old bucket has refilled to ``burst`` for any rate above ``burst / 86400`` per second, so a new, full row
    created on the next request is the same bucket.
    """
    result = session.execute(delete(RateLimitBucket).where(RateLimitBucket.refilled_at < idle_before))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
