"""Token buckets of the per-client rate limits, shared by every worker process and node (RFC 6585 §4).

One row per limited key (``espi:{client_id}``, ``validate:{address}``): the tokens left and when they were last
refilled, in epoch seconds. Workers do not write this row on every request: :mod:`gateway.web.rate_limit` takes
tokens from it in batches (:func:`take_tokens`, one statement) and spends them in memory. The outbox worker
deletes rows left idle for a day (:func:`purge_idle_buckets`): such a bucket is full again, so forgetting it changes
nothing.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from sqlalchemy import Connection, Float, Integer, String, bindparam, case, cast, delete, func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.sql.dml import ReturningInsert

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
    granted: Mapped[int] = mapped_column(Integer, server_default="0")
    """Whole tokens the last :func:`take_tokens` handed out (0: it refused), read back with ``RETURNING``."""


@dataclasses.dataclass(frozen=True, slots=True)
class Lease:
    """What one :func:`take_tokens` call got: ``granted`` whole tokens, or the seconds until one is there."""

    granted: int
    wait: float
    """Seconds until the bucket holds a whole token again (0 when ``granted`` > 0)."""


@functools.cache
def _take_statement(dialect: str) -> ReturningInsert[Any]:
    """Refill and take in one ``INSERT … ON CONFLICT DO UPDATE … RETURNING`` (SQLite ≥ 3.35, PostgreSQL).

    Every expression of the ``SET`` list reads the row as it was before the statement (SQL's rule for ``UPDATE``), so
    ``available`` is the refilled balance and ``granted`` what is taken from it; the statement holds the row's lock
    (PostgreSQL) or the database's write lock (SQLite) only while it runs.
    """
    bucket = RateLimitBucket.__table__
    now = bindparam("now", type_=Float)
    rate = bindparam("rate", type_=Float)
    burst = bindparam("burst", type_=Float)
    want = bindparam("want", type_=Integer)
    least: Any
    greatest: Any
    if dialect == "postgresql":
        insert: Any = pg_insert
        least, greatest = func.least, func.greatest

        def whole(value: Any) -> Any:
            return cast(func.floor(value), Integer)
    else:
        insert = sqlite_insert
        least, greatest = func.min, func.max  # SQLite's scalar min()/max() of two arguments

        def whole(value: Any) -> Any:
            return cast(value, Integer)  # truncates, and the balance is never negative: floor

    available = least(burst, bucket.c.tokens + greatest(0.0, now - bucket.c.refilled_at) * rate)
    granted = case((available >= 1.0, least(want, whole(available))), else_=0)
    statement = insert(bucket).values(
        key=bindparam("key"), tokens=bindparam("fresh_tokens"), refilled_at=now, granted=bindparam("fresh_granted")
    )
    return statement.on_conflict_do_update(  # type: ignore[no-any-return]
        index_elements=[bucket.c.key],
        set_={
            "tokens": available - granted,
            # A node whose clock is behind the row's refills nothing and leaves the time where it was.
            "refilled_at": greatest(now, bucket.c.refilled_at),
            "granted": granted,
        },
    ).returning(bucket.c.tokens, bucket.c.granted)


def take_tokens(connection: Connection, key: str, *, want: int, rate: float, burst: int, now: float) -> Lease:
    """Refill ``key``'s bucket and take up to ``want`` whole tokens from it: one statement.

    The refill is ``rate`` tokens per second since ``refilled_at``, capped at ``burst``; a missing row is a full
    bucket, created with the take. The statement locks the row (SQLite: the write lock) while it runs, so two workers
    never take the same token, and it needs no transaction of its own: run alone in autocommit mode, it is one. A
    refusal takes nothing; it stores the refilled balance, which is the same bucket. Clocks of different nodes may
    disagree: time never runs backwards for a bucket (a node whose clock is behind refills nothing).
    """
    fresh = min(want, burst)
    row = connection.execute(
        _take_statement(connection.dialect.name),
        {
            "key": key,
            "now": now,
            "rate": rate,
            "burst": float(burst),
            "want": want,
            "fresh_tokens": float(burst - fresh),
            "fresh_granted": fresh,
        },
    ).one()
    tokens, granted = row[0], row[1]
    if granted >= 1:
        return Lease(granted=int(granted), wait=0.0)
    return Lease(granted=0, wait=(1.0 - float(tokens)) / rate)


def purge_idle_buckets(session: Session, *, idle_before: float) -> int:
    """Delete buckets that gave out no token since ``idle_before`` (epoch seconds); a periodic job.

    A day-old bucket has refilled to ``burst`` for any rate above ``burst / 86400`` per second, so a new, full row
    created on the next request is the same bucket.
    """
    result = session.execute(delete(RateLimitBucket).where(RateLimitBucket.refilled_at < idle_before))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
