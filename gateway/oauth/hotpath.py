"""Reads and single-statement writes for the hot paths (bearer checks, client_credentials), outside the request's
write transaction.

On SQLite the engine factory opens every transaction with ``BEGIN IMMEDIATE`` so that two writers never deadlock; a
request that only *reads* a token then still takes the database's write lock, and the gunicorn workers queue behind
each other (SQLite's busy handler sleeps in millisecond steps). Token lookups need no transaction at all: one
``SELECT`` in autocommit mode sees every committed revocation (WAL readers never wait for writers), so a revocation
still takes effect on the very next request on any worker. Likewise a client_credentials token is one ``INSERT``
that depends on nothing else the request writes: in autocommit mode the write lock is held for that statement only.
This module gives those statements their own autocommit connection (foreign keys and durability settings as in
the engine factory).

PostgreSQL has no such lock: there, and whenever the request's session is bound to a connection rather than an
engine (the test suite's savepoint-per-test isolation), or once the request's session has begun a transaction (its
writes must stay atomic and visible to its reads), everything simply goes through the request's session.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

__all__ = ["HotPath"]


def _autocommit_connection(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # autocommit: no BEGIN, each statement is its own transaction
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")  # as the engine factory: WAL commits without an fsync each
    cursor.close()


class HotPath:
    """Hand out autocommit connections and sessions on SQLite; ``None`` (use the request's session) elsewhere."""

    _instances: ClassVar[weakref.WeakKeyDictionary[Engine, HotPath]] = weakref.WeakKeyDictionary()

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._autocommit: Engine | None = None
        self._held_connections: Engine | None = None
        self._lock = threading.Lock()
        self._held = threading.local()
        self._every_held: list[tuple[int, Connection]] = []

    @classmethod
    def for_engine(cls, engine: Engine) -> HotPath:
        """The one instance per engine, so that a process keeps one small autocommit pool."""
        with _REGISTRY_LOCK:
            instance = cls._instances.get(engine)
            if instance is None:
                instance = cls._instances[engine] = cls(engine)
            return instance

    def _autocommit_engine(self) -> Engine:
        # Built lazily, so that a forked gunicorn worker builds its own and never shares the master's connections.
        if self._autocommit is None:
            with self._lock:
                if self._autocommit is None:
                    # Nothing is ever left open on these connections, so returning one needs no ROLLBACK.
                    autocommit = create_engine(self._engine.url, pool_size=2, max_overflow=4, pool_reset_on_return=None)
                    event.listen(autocommit, "connect", _autocommit_connection)
                    self._autocommit = autocommit
        return self._autocommit

    def _held_engine(self) -> Engine:
        """Connections held by threads come from an engine without a pool: however many threads a worker runs,
        they never take the pooled connections that :meth:`connection` hands out."""
        if self._held_connections is None:
            with self._lock:
                if self._held_connections is None:
                    held = create_engine(self._engine.url, poolclass=NullPool)
                    event.listen(held, "connect", _autocommit_connection)
                    self._held_connections = held
        return self._held_connections

    def _applies(self, session: Session | sessionmaker[Session] | Engine) -> bool:
        if self._engine.dialect.name != "sqlite":
            return False
        if isinstance(session, Engine):
            return True  # a caller of its own (the rate limiter), outside any request's session
        if isinstance(session, sessionmaker):
            # The request's session is not made yet, so it has no transaction: what matters is what it binds to.
            return isinstance(session.kw.get("bind"), Engine)
        # Inside a transaction the session must see its own uncommitted writes and keep them atomic: use it.
        return isinstance(session.get_bind(), Engine) and not session.in_transaction()

    @contextmanager
    def connection(self, session: Session) -> Iterator[Connection]:
        """A connection for reads, or for one write that needs no other write of the request to be atomic with."""
        if not self._applies(session):
            yield session.connection()
            return
        with self._autocommit_engine().connect() as connection:
            yield connection

    def connection_for(self, session: Session | sessionmaker[Session]) -> Connection | None:
        """A new autocommit connection beside ``session`` (the caller closes it), or ``None`` to use ``session``.

        ``session`` may also be the factory of a request's session not made yet (see
        :class:`gateway.web.middleware.RequestContext`): nothing then makes one just to ask.

        A statement executed on it commits on its own: SQLite's driver is in autocommit mode on these connections
        and no ``BEGIN`` is ever emitted (the engine factory's ``BEGIN IMMEDIATE`` hook is not installed here).
        """
        if not self._applies(session):
            return None
        return self._autocommit_engine().connect()

    @contextmanager
    def single_statement(self, session: Session | sessionmaker[Session] | Engine) -> Iterator[Connection | None]:
        """A connection for one statement whose result the caller consumes at once, or ``None``.

        Two callers run a single statement per request: the token lookup of a request that needs nothing else from
        the database (``GET …/UsagePoint/{u}``, whose row rides along with the token's), and the rate limiter's
        lease (one ``INSERT … ON CONFLICT … RETURNING``, :func:`gateway.storage.rate_limit.take_tokens`). Checking
        a connection out of the pool and back in around it would cost about as much as the statement, so each
        thread keeps one autocommit connection for them instead. Nothing is ever left open on it (the statement's
        cursor is closed at once; no transaction is begun at the driver: a write commits by itself), so holding it
        between requests holds no lock and no WAL snapshot. After a database error it is discarded, and a forked
        process never uses its parent's (it is keyed by the process id). ``None`` where the hot path does not apply
        (see :meth:`connection`; an ``Engine`` asks for itself).
        """
        if not self._applies(session):
            yield None
            return
        pid = os.getpid()
        connection: Connection | None = getattr(self._held, "connection", None)
        if connection is None or getattr(self._held, "pid", None) != pid or connection.closed or connection.invalidated:
            connection = self._held.connection = self._held_engine().connect()
            self._held.pid = pid
            with self._lock:
                self._every_held.append((pid, connection))
        try:
            yield connection
        except DBAPIError:
            # Whatever the database said, a fresh connection answers the next request.
            self._held.connection = None
            with self._lock:
                self._every_held.remove((pid, connection))
            connection.invalidate()
            raise

    def dispose(self) -> None:
        """Close the connections this process holds or pools (at shutdown; a thread still holding one makes anew)."""
        with self._lock:
            held, self._every_held = self._every_held, []
        pid = os.getpid()
        for owner, connection in held:
            if owner == pid and not connection.closed:  # never a parent's, inherited through a fork
                connection.close()
        for engine in (self._autocommit, self._held_connections):
            if engine is not None:
                engine.dispose()


_REGISTRY_LOCK = threading.Lock()
