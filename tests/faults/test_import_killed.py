"""``gateway import`` killed with SIGKILL mid-way leaves no partial data, on SQLite and on PostgreSQL.

Each file is imported in one transaction (``gateway.espi.ingest``): a process that dies before its commit leaves
nothing behind, whatever it had already written. The test waits until the import has visibly written (PostgreSQL's
table grows with the uncommitted rows; SQLite's write-ahead log fills), kills it, and counts.

The killed import's usage points have a consenting app with a notify URI, so its FB 39 push would be queued in the
same transaction (``gateway.notifications.import_and_notify``): no BatchList may survive the kill either, while a
committed import of the same usage points does queue one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text

from gateway.config import Settings
from gateway.customers import add_customer, get_customer_by_username
from gateway.services import Services
from gateway.storage import migrate
from gateway.storage.engine import session_scope
from gateway.storage.models import IntervalBlock, MeterReading, UsagePoint, interval_reading_table
from tests.faults.feeds import write_feed
from tests.faults.live import environ_for
from tests.functional.push_fixtures import add_active_consent, batch_lists
from tests.support.postgres import PostgresCluster

WRITTEN_BYTES = {"sqlite": 2 << 20, "postgresql": 8 << 20}
"""Kill once this much has been written for the running import: well inside it. The whole feed takes ~9 MB on
SQLite (which writes to its log only once its 2 MB page cache spills) and ~28 MB on PostgreSQL."""


@pytest.fixture(scope="module")
def big_feed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """Eight meter-years of 15-minute data (280,320 readings, ~58 MB of XML), written once for both backends."""
    path = tmp_path_factory.mktemp("feeds") / "big.xml"
    return path, write_feed(path, usage_points=8, days=365, seed=2)


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
            for table in (UsagePoint.__table__, MeterReading.__table__, IntervalBlock.__table__, interval_reading_table)
        }


def _import(environ: dict[str, str], feed: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "gateway", "import", str(feed), "--customer", "alice"],
        env={**os.environ, **environ},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _database(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> tuple[str, Callable[[Engine], int]]:
    """The database URL and a probe for how many bytes the running import has written so far."""
    if backend == "sqlite":
        path = tmp_path / "import.sqlite3"
        wal = Path(f"{path}-wal")
        return f"sqlite:///{path}", lambda engine: wal.stat().st_size if wal.exists() else 0
    cluster: PostgresCluster = request.getfixturevalue("own_cluster")

    def relation_size(engine: Engine) -> int:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT pg_total_relation_size('interval_reading')")).scalar_one())

    return cluster.create_database("import_killed"), relation_size


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_an_import_killed_mid_way_leaves_no_partial_data(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path, big_feed: tuple[Path, int]
) -> None:
    database_url, written = _database(request, backend, tmp_path)
    environ = environ_for(tmp_path, database_url, 8000)
    services = Services.build(Settings.from_env(environ))
    migrate.upgrade(services.engine)
    with session_scope(services.sessions) as session:
        add_customer(session, services.passwords, username="alice", email="a@example.com", password="x" * 16)
    # The big feed's first day (same seed, so the same usage points): the consent below covers what it will change.
    small = tmp_path / "small.xml"
    write_feed(small, usage_points=8, days=1, seed=2)
    big, readings = big_feed
    try:
        assert _import(environ, small).wait(60) == 0
        with session_scope(services.sessions) as session:
            add_active_consent(session, services, get_customer_by_username(session, "alice"))
        before = _counts(services.engine)
        baseline = written(services.engine)
        process = _import(environ, big)
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            if written(services.engine) - baseline >= WRITTEN_BYTES[backend]:
                break
            time.sleep(0.05)
        progressed = written(services.engine) - baseline
        os.kill(process.pid, signal.SIGKILL)
        status = process.wait(30)
        after = _counts(services.engine)
        pushes_after_kill = batch_lists(services.engine)
        # The database is still usable: a later import goes through.
        third = tmp_path / "third.xml"
        write_feed(third, usage_points=1, days=1, seed=3)
        assert _import(environ, third).wait(60) == 0
        finally_counts = _counts(services.engine)
        # And the consent is live: a committed second day of the same usage points queues its BatchList.
        second_day = tmp_path / "second_day.xml"
        write_feed(second_day, usage_points=8, days=2, seed=2)
        assert _import(environ, second_day).wait(60) == 0
        pushes_committed = batch_lists(services.engine)
    finally:
        services.engine.dispose()
    print(f"{backend}: killed after {progressed} bytes written of a {readings}-reading import; counts {before}")
    assert status == -signal.SIGKILL
    assert progressed >= WRITTEN_BYTES[backend]
    assert after == before
    assert pushes_after_kill == []
    assert finally_counts["interval_reading"] == before["interval_reading"] + 96
    assert [payload["reason"] for payload in pushes_committed] == ["data"]
