"""Engine and session factories: SQLite for the embedded default, PostgreSQL for production, one code path.

SQLite gets SQLAlchemy's documented recipe for the Python 3.11 driver (``isolation_level=None`` and an explicit
``BEGIN``) so SAVEPOINT rollback works, plus foreign keys, WAL and a busy timeout. PostgreSQL gets a checked pool
(``pool_pre_ping``) and a server-side statement timeout so a runaway query cannot pin a worker.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["make_engine", "make_session_factory", "session_scope"]


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the driver, decide where transactions begin (the driver's legacy mode breaks SAVEPOINTs).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_on_begin(connection: Any) -> None:
    # IMMEDIATE takes the write lock up front: two writers never deadlock upgrading a read lock.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(
    database_url: str, *, pool_size: int = 5, statement_timeout_ms: int = 30_000, echo: bool = False
) -> Engine:
    """Create the engine for ``database_url`` (``sqlite:///path`` or ``postgresql+psycopg://…``)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, echo=echo)
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    if url.get_backend_name() == "postgresql":
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg")
        connect_args: dict[str, Any] = {"application_name": "greenbutton-gateway", "connect_timeout": 10}
        if statement_timeout_ms:
            connect_args["options"] = f"-c statement_timeout={statement_timeout_ms}"
        return create_engine(
            url,
            echo=echo,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=True,
            pool_recycle=1800,
            connect_args=connect_args,
        )
    raise ValueError(f"unsupported database {url.get_backend_name()!r}: use sqlite:/// or postgresql+psycopg://")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit (the response is written after the commit)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A unit of work for the CLI and workers: commit on success, roll back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
