"""Failure throttling backed by the database (RFC 9700 §4.15, RFC 6749 §10.10, RFC 6585 §4).

Counters live in the ``throttle_counter`` table rather than in memory so that every worker process and every node
sees the same count: an attacker spreading guesses over a load balancer gains nothing. Each key counts failures in a
fixed window; reaching the limit blocks the key until the window ends, and callers answer 429 with ``Retry-After``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

from sqlalchemy import Connection, bindparam, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from gateway.storage.base import utcnow
from gateway.storage.throttle import ThrottleCounter

__all__ = ["PASSWORD_USER_RULE", "Throttle", "ThrottleRule"]

# Checked on every client authentication: a prebuilt Core statement keeps that check cheap.
_BLOCKED_UNTIL = select(ThrottleCounter.__table__.c.blocked_until).where(
    ThrottleCounter.__table__.c.key == bindparam("key")
)


@dataclasses.dataclass(frozen=True, slots=True)
class ThrottleRule:
    """At most ``limit`` failures per ``window`` seconds for one key; ``prefix`` names the kind of key."""

    prefix: str
    limit: int
    window: int


PASSWORD_USER_RULE = ThrottleRule("password-user", limit=10, window=900)
"""Password guesses per customer, shared by the login page and the password grant (one budget, not two)."""


class Throttle:
    """Count failures per key and say whether (and for how long) a key is blocked."""

    def __init__(self, clock: Callable[[], dt.datetime] = utcnow) -> None:
        self._clock = clock

    @staticmethod
    def key(rule: ThrottleRule, subject: str) -> str:
        """The counter's key (callers may read ``blocked_until`` by it in a query of their own)."""
        return f"{rule.prefix}:{subject.lower()[:180]}"

    _key = key

    def seconds_left(self, blocked_until: dt.datetime | None) -> int | None:
        """Seconds until a key blocked until ``blocked_until`` may try again, or ``None`` when it is not blocked."""
        now = self._clock()
        if blocked_until is None or blocked_until <= now:
            return None
        return max(1, int((blocked_until - now).total_seconds()) + 1)

    def retry_after(self, session: Session | Connection, rule: ThrottleRule, subject: str) -> int | None:
        """Seconds until ``subject`` may try again, or ``None`` when it is not blocked (a read, no lock)."""
        connection = session if isinstance(session, Connection) else session.connection()
        return self.seconds_left(connection.execute(_BLOCKED_UNTIL, {"key": self.key(rule, subject)}).scalar())

    def record_failure(self, session: Session, rule: ThrottleRule, subject: str) -> int | None:
        """Count one failure; return the ``Retry-After`` seconds if the key is now blocked, else ``None``."""
        counter = self._count_failure(session, rule, subject)
        now = self._clock()
        if counter.blocked_until is not None and counter.blocked_until > now:
            return max(1, int((counter.blocked_until - now).total_seconds()) + 1)
        return None

    def count_failure(self, session: Session, rule: ThrottleRule, subject: str) -> int:
        """Count one failure and return how many ``subject`` has in the current window (for warn-only limits)."""
        return self._count_failure(session, rule, subject).failures

    def _count_failure(self, session: Session, rule: ThrottleRule, subject: str) -> ThrottleCounter:
        key = self._key(rule, subject)
        now = self._clock()
        # Insert-if-absent first so two processes never race on creating the row; then update it under a row lock.
        dialect = session.get_bind().dialect.name
        values = {"key": key, "window_started_at": now, "failures": 0, "blocked_until": None}
        if dialect == "postgresql":
            session.execute(pg_insert(ThrottleCounter).values(**values).on_conflict_do_nothing(index_elements=["key"]))
        else:
            session.execute(
                sqlite_insert(ThrottleCounter).values(**values).on_conflict_do_nothing(index_elements=["key"])
            )
        counter = session.scalars(select(ThrottleCounter).where(ThrottleCounter.key == key).with_for_update()).one()
        if counter.window_started_at + dt.timedelta(seconds=rule.window) <= now:
            counter.window_started_at = now
            counter.failures = 0
            counter.blocked_until = None
        counter.failures += 1
        if counter.failures >= rule.limit:
            counter.blocked_until = counter.window_started_at + dt.timedelta(seconds=rule.window)
        session.flush()
        return counter

    def purge(self, session: Session, older_than: dt.timedelta) -> int:
        """Delete counters whose window and block ended more than ``older_than`` ago (a periodic job)."""
        cutoff = self._clock() - older_than
        result = session.execute(
            delete(ThrottleCounter).where(
                ThrottleCounter.window_started_at < cutoff,
                (ThrottleCounter.blocked_until.is_(None)) | (ThrottleCounter.blocked_until < cutoff),
            )
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def reset(self, session: Session, rule: ThrottleRule, subject: str) -> None:
        """Forget the failures of ``subject`` (after a success that proves the secret was known)."""
        counter = session.get(ThrottleCounter, self._key(rule, subject))
        if counter is not None and counter.blocked_until is None:
            session.delete(counter)
