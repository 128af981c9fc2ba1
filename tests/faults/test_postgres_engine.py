"""The PostgreSQL engine's protections: a server-side statement timeout, and pooled connections checked before use."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from gateway.storage.engine import make_engine
from tests.support.postgres import PostgresCluster

pytestmark = pytest.mark.postgres


def test_the_statement_timeout_is_applied_to_every_connection(own_cluster: PostgresCluster) -> None:
    engine = make_engine(own_cluster.url(), statement_timeout_ms=1234)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar() == "1234ms"
    finally:
        engine.dispose()


def test_a_runaway_query_is_cancelled_by_the_statement_timeout(own_cluster: PostgresCluster) -> None:
    engine = make_engine(own_cluster.url(), statement_timeout_ms=200)
    try:
        with engine.connect() as conn, pytest.raises(OperationalError, match="statement timeout"):
            conn.execute(text("SELECT pg_sleep(5)"))
    finally:
        engine.dispose()


def test_a_pooled_connection_killed_by_a_server_restart_is_replaced(own_cluster: PostgresCluster) -> None:
    engine = make_engine(own_cluster.url(), pool_size=1)
    try:
        with engine.connect() as conn:
            before = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        assert engine.pool.checkedin() == 1  # the connection waits in the pool, its server process about to die
        own_cluster.restart()
        with engine.connect() as conn:  # pool_pre_ping notices the dead connection and opens a new one
            after = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        assert after != before
    finally:
        engine.dispose()
