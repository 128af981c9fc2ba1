"""Alembic migrations, driven from code: ``gateway init`` and ``gateway serve`` call :func:`upgrade`.

No ``alembic.ini`` is needed: the configuration is built here, pointing at the migration scripts shipped inside the
package, so an installed wheel migrates exactly like a source checkout.

Several nodes start against one database (docs/deploy.md, "Deploying new code"), so an upgrade runs under the
*migration lock*, one per database:

- PostgreSQL: the session-level advisory lock :data:`MIGRATION_LOCK_KEY`, taken on a connection of its own that holds
  it for the whole upgrade while Alembic migrates on another. A node that finds the lock taken waits (up to
  ``lock_timeout``), then finds the schema at head and does nothing. Advisory locks are scoped to the database, and a
  crashed node's lock goes with its connection.
- SQLite: an exclusive ``flock`` on ``<database file>.migrate.lock`` (stdlib ``fcntl``; the kernel drops it when the
  process dies). ``BEGIN IMMEDIATE`` cannot serve: Alembic opens and commits its own transactions. An in-memory
  database belongs to one process and needs no lock.

Before migrating, a database whose revision this version of the code does not know (a newer release migrated it and
the code was rolled back) is refused with :class:`DatabaseAheadOfCode`: old code must not serve a newer schema.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from gateway.storage.engine import make_engine

__all__ = [
    "DEFAULT_LOCK_TIMEOUT",
    "MIGRATIONS_DIR",
    "MIGRATION_LOCK_HOLDERS_SQL",
    "MIGRATION_LOCK_KEY",
    "MIGRATION_LOCK_NAME",
    "DatabaseAheadOfCode",
    "MigrationError",
    "MigrationLockTimeout",
    "MigrationState",
    "advisory_lock_key",
    "alembic_config",
    "current_revision",
    "head_revision",
    "migration_lock",
    "migration_state",
    "sqlite_lock_path",
    "upgrade",
]

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

MIGRATION_LOCK_NAME = "greenbutton-gateway:migrations"
"""The name the PostgreSQL advisory lock key is derived from (:func:`advisory_lock_key`)."""

DEFAULT_LOCK_TIMEOUT = 300.0
"""Seconds a node waits for another node's migration before giving up (``GATEWAY_MIGRATION_LOCK_TIMEOUT``)."""

_LOCK_POLL_SECONDS = 0.1
_LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL SQLSTATE lock_not_available, raised when lock_timeout expires


def advisory_lock_key(name: str) -> int:
    """A PostgreSQL advisory lock key (a signed 64-bit ``bigint``) for ``name``: the first 8 bytes of its SHA-256."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


MIGRATION_LOCK_KEY = advisory_lock_key(MIGRATION_LOCK_NAME)
"""``pg_advisory_lock`` key held while migrating (docs/deploy.md gives its value and how to find its holder)."""

MIGRATION_LOCK_HOLDERS_SQL = (
    "SELECT pid, application_name, client_addr, backend_start, state, query FROM pg_stat_activity WHERE pid IN "
    "(SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND classid = 2092157062 AND objid = 53478921 AND objsubid = 1 "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))"
)
"""Who holds the migration lock. pg_locks shows a bigint advisory key as its high and low 32 bits (classid, objid):
the literal numbers, which operators can paste, are those of :data:`MIGRATION_LOCK_KEY` (a test checks it)."""


class MigrationError(Exception):
    """The schema cannot be migrated; the message says why and what the operator can do."""


class MigrationLockTimeout(MigrationError):
    """Another process held the migration lock longer than this one was willing to wait."""


class DatabaseAheadOfCode(MigrationError):
    """The database is at a revision this version of the gateway does not ship (a newer release migrated it)."""


@dataclasses.dataclass(frozen=True, slots=True)
class MigrationState:
    """Where the database stands against the migrations shipped with this code (``gateway doctor``)."""

    current: str | None
    """The database's revision, ``None`` when it has no schema yet."""
    head: str | None
    """The newest revision this code ships."""
    known: bool
    """Whether ``current`` is one of this code's revisions (always true for an empty database)."""

    @property
    def status(self) -> Literal["empty", "behind", "at head", "ahead"]:
        if not self.known:
            return "ahead"
        if self.current == self.head:
            return "at head"
        return "empty" if self.current is None else "behind"

    def describe(self) -> str:
        """One sentence an operator can act on."""
        status = self.status
        if status == "at head":
            return f"at head ({self.head})"
        if status == "ahead":
            return (
                f"at {self.current}, which this version of the gateway does not know (its newest is {self.head}): "
                "a newer release migrated this database; run that release or newer"
            )
        return f"at {self.current or 'empty'}, head is {self.head}: run `gateway init`"


def alembic_config(engine: Engine) -> Config:
    """An Alembic configuration bound to ``engine`` (shared through ``config.attributes``)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def _scripts() -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(config)


def upgrade(engine: Engine, revision: str = "head", *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> None:
    """Create or migrate the database schema to ``revision``, holding the migration lock throughout.

    Waits up to ``lock_timeout`` seconds for another process's migration (:class:`MigrationLockTimeout` after that),
    and refuses a database that is ahead of this code (:class:`DatabaseAheadOfCode`) without touching it.
    """
    with migration_lock(engine, timeout=lock_timeout) as migration_engine:
        state = migration_state(migration_engine)
        if not state.known:
            raise DatabaseAheadOfCode(
                f"the database is at revision {state.current}, which this version of the gateway does not know "
                f"(its newest migration is {state.head}): a newer release has migrated it. Refusing to run old code "
                "on a newer schema; deploy that release (or newer), or restore the database from before its upgrade"
            )
        command.upgrade(alembic_config(migration_engine), revision)
        if migration_engine.dialect.name == "sqlite":
            _check_foreign_keys(migration_engine)


def head_revision(engine: Engine) -> str | None:
    """The newest migration shipped with this version of the gateway."""
    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (``None`` for an empty database)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def migration_state(engine: Engine) -> MigrationState:
    """The database's revision, this code's head, and whether this code knows the former."""
    scripts = _scripts()
    current = current_revision(engine)
    known = True
    if current is not None:
        try:
            scripts.get_revision(current)
        except CommandError:
            known = False
    return MigrationState(current=current, head=scripts.get_current_head(), known=known)


@contextlib.contextmanager
def migration_lock(engine: Engine, *, timeout: float = DEFAULT_LOCK_TIMEOUT) -> Iterator[Engine]:
    """Hold the database's migration lock; yield the engine to migrate with while it is held.

    The yielded engine is a dedicated one, disposed afterwards:

    - PostgreSQL: no pool and no statement timeout (a migration may rewrite a large table for longer than a web
      request may run), its sessions named ``greenbutton-gateway migrate`` in ``pg_stat_activity``.
    - SQLite: foreign keys off (Alembic's advice for batch mode). Batch mode rebuilds a table by copying it and
      dropping the original, and with foreign keys on, that DROP deletes every row referring to it through an
      ``ON DELETE CASCADE`` key: a migration of ``retail_customer`` would empty ``usage_point`` and everything below.
      :func:`upgrade` runs ``PRAGMA foreign_key_check`` afterwards instead.

    An in-memory SQLite database is private to its process and born empty: it gets neither lock nor engine of its own.
    """
    if timeout <= 0:
        raise ValueError(f"the migration lock timeout must be positive, got {timeout}")
    if engine.dialect.name == "postgresql":
        with _postgres_migration_lock(engine, timeout) as migration_engine:
            yield migration_engine
    elif engine.dialect.name == "sqlite":
        path = sqlite_lock_path(engine)
        if path is None:
            yield engine
        else:
            with _file_lock(path, timeout):
                migration_engine = make_engine(engine.url.render_as_string(hide_password=False))
                event.listen(migration_engine, "connect", _foreign_keys_off)  # after make_engine's own listener
                try:
                    yield migration_engine
                finally:
                    migration_engine.dispose()
    else:
        raise MigrationError(f"no migration lock for the {engine.dialect.name} backend")


def sqlite_lock_path(engine: Engine) -> Path | None:
    """``<database file>.migrate.lock`` for a SQLite file, ``None`` for an in-memory database."""
    database = engine.url.database
    if not database or database == ":memory:" or engine.url.query.get("mode") == "memory":
        return None
    return Path(f"{database}.migrate.lock")


def _foreign_keys_off(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=OFF")
    cursor.close()


def _check_foreign_keys(engine: Engine) -> None:
    with engine.connect() as connection:
        violations = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
    if violations:
        table, rowid, parent, _ = violations[0]
        raise MigrationError(
            f"after migrating, {len(violations)} rows refer to rows that do not exist (first: {table} rowid {rowid} "
            f"-> {parent}): a migration is wrong; stop, and restore the backup taken before the upgrade"
        )


@contextlib.contextmanager
def _file_lock(path: Path, timeout: float) -> Iterator[None]:
    # The lock file is left in place: removing it would let a waiter lock the unlinked inode while a newcomer locks
    # a fresh file, and both would migrate.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        waiting = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise MigrationLockTimeout(
                        f"gave up after {timeout:g} s waiting for the migration lock {path}: another process is "
                        f"migrating this database. Find it with `fuser -v {path}`; if it is stuck, stop it and retry"
                    ) from None
                if not waiting:
                    log.warning(
                        "waiting up to %g s for the migration lock %s (another process is migrating)", timeout, path
                    )
                    waiting = True
                time.sleep(_LOCK_POLL_SECONDS)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _describe_holders(connection: Connection) -> str:
    rows = connection.execute(text(MIGRATION_LOCK_HOLDERS_SQL)).all()
    if not rows:
        return "no session holds it now"
    return "held by " + ", ".join(
        f"pid {row.pid} ({row.application_name or 'no application name'}"
        f"{f' from {row.client_addr}' if row.client_addr else ''}, connected {row.backend_start:%Y-%m-%d %H:%M:%S %z})"
        for row in rows
    )


@contextlib.contextmanager
def _postgres_migration_lock(engine: Engine, timeout: float) -> Iterator[Engine]:
    migration_engine = create_engine(
        engine.url,
        poolclass=NullPool,
        connect_args={
            "application_name": "greenbutton-gateway migrate",
            "connect_timeout": 10,
            "options": "-c statement_timeout=0",
        },
    )
    try:
        # Autocommit: the lock belongs to the session, and an idle open transaction here would hold back DDL that
        # waits for older transactions (CREATE INDEX CONCURRENTLY) on the migrating connection.
        with migration_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as lock_connection:
            key = {"key": MIGRATION_LOCK_KEY}
            if not lock_connection.execute(text("SELECT pg_try_advisory_lock(:key)"), key).scalar_one():
                log.warning(
                    "waiting up to %g s for the migration lock (PostgreSQL advisory lock %d, %s)",
                    timeout,
                    MIGRATION_LOCK_KEY,
                    _describe_holders(lock_connection),
                )
                lock_connection.execute(text(f"SET lock_timeout = {max(1, round(timeout * 1000))}"))
                try:
                    lock_connection.execute(text("SELECT pg_advisory_lock(:key)"), key)
                except DBAPIError as error:
                    if getattr(error.orig, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
                        raise
                    holders = _describe_holders(lock_connection)
                    raise MigrationLockTimeout(
                        f"gave up after {timeout:g} s waiting for the migration lock (PostgreSQL advisory lock "
                        f"{MIGRATION_LOCK_KEY} on database {engine.url.database}), {holders}. Another node may be "
                        f"migrating a large table; see what it runs with: {MIGRATION_LOCK_HOLDERS_SQL}. "
                        "If it is stuck, end it with SELECT pg_terminate_backend(<pid>) and start again"
                    ) from None
            try:
                yield migration_engine
            finally:
                with contextlib.suppress(DBAPIError):  # a lost connection has released the lock already
                    lock_connection.execute(text("SELECT pg_advisory_unlock(:key)"), key)
    finally:
        migration_engine.dispose()
