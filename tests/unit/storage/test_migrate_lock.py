"""Migrations under the migration lock: nodes take turns, waiters give up clearly, old code refuses a newer schema.

The lock is held from the test through its documented contract (PostgreSQL advisory lock key, SQLite lock file), and
the waiting side is a real ``gateway init`` process: it says it is waiting before it waits, which makes the order of
events deterministic without sleeping.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import Engine, func, select, text

from gateway.storage import migrate
from gateway.storage.engine import make_engine
from tests.conftest import BASE_URL, TEST_SECRET_KEY

ROOT = Path(__file__).resolve().parents[3]
DOCUMENTED_LOCK_KEY = 8985746159438923273
WAIT_NOTICE = "waiting up to"


@pytest.fixture
def engine(fresh_database_url: str) -> Iterator[Engine]:
    engine = make_engine(fresh_database_url)
    yield engine
    engine.dispose()


@contextlib.contextmanager
def holding_the_lock(engine: Engine) -> Iterator[int | None]:
    """Hold the migration lock as another node would; yield the holder's PostgreSQL backend pid (None on SQLite)."""
    if engine.dialect.name == "postgresql":
        other_node = make_engine(engine.url.render_as_string(hide_password=False))
        try:
            with other_node.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": DOCUMENTED_LOCK_KEY})
                yield connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        finally:
            other_node.dispose()  # closing the session releases its advisory lock
        return
    fd = os.open(f"{engine.url.database}.migrate.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield None
    finally:
        os.close(fd)


def start_init(engine: Engine, tmp_path: Path, name: str, **environ: str) -> tuple[subprocess.Popen[bytes], Path]:
    """``gateway init`` in a process of its own, its stderr in a file."""
    log = tmp_path / f"{name}.log"
    env = {
        **os.environ,
        "GATEWAY_DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "GATEWAY_VAR_DIR": str(tmp_path / "var"),
        "GATEWAY_SECRET_KEY": TEST_SECRET_KEY,
        "GATEWAY_BASE_URL": BASE_URL,
        **environ,
    }
    with log.open("wb") as output:
        process = subprocess.Popen([sys.executable, "-m", "gateway", "init"], env=env, stdout=output, stderr=output)
    return process, log


def wait_for_notice(process: subprocess.Popen[bytes], log: Path, timeout: float = 120.0) -> None:
    """Return once ``process`` has said it waits for the lock; fail if it finishes or stays silent instead."""
    deadline = time.monotonic() + timeout
    while WAIT_NOTICE not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"gateway init did not wait for the lock (exit {process.poll()}):\n{log.read_text()}")
        time.sleep(0.05)


def finish(process: subprocess.Popen[bytes], log: Path) -> int:
    try:
        return process.wait(120)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"gateway init did not finish once the lock was free:\n{log.read_text()}")


def test_lock_key_is_derived_from_its_name_and_documented() -> None:
    deploy_doc = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    assert migrate.advisory_lock_key(migrate.MIGRATION_LOCK_NAME) == migrate.MIGRATION_LOCK_KEY == DOCUMENTED_LOCK_KEY
    assert f"pg_advisory_lock({DOCUMENTED_LOCK_KEY})" in deploy_doc


def test_lock_holders_query_names_the_two_halves_of_the_key() -> None:
    classid, objid = (DOCUMENTED_LOCK_KEY >> 32) & 0xFFFFFFFF, DOCUMENTED_LOCK_KEY & 0xFFFFFFFF
    assert f"classid = {classid} AND objid = {objid} AND objsubid = 1" in migrate.MIGRATION_LOCK_HOLDERS_SQL


def test_an_upgrade_waits_for_the_lock_holder_then_migrates(engine: Engine, tmp_path: Path) -> None:
    with holding_the_lock(engine):
        process, log = start_init(engine, tmp_path, "waiter")
        wait_for_notice(process, log)
        assert (process.poll(), migrate.current_revision(engine)) == (None, None)
    assert finish(process, log) == 0, log.read_text()
    assert migrate.current_revision(engine) == migrate.head_revision(engine)


def test_two_nodes_upgrading_a_fresh_database_at_once_both_succeed(engine: Engine, tmp_path: Path) -> None:
    with holding_the_lock(engine):
        nodes = [start_init(engine, tmp_path, f"node{n}") for n in (1, 2)]
        for process, log in nodes:
            wait_for_notice(process, log)
    statuses = [finish(process, log) for process, log in nodes]
    with engine.connect() as connection:
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    assert (statuses, versions) == ([0, 0], [migrate.head_revision(engine)]), [log.read_text() for _, log in nodes]


def test_a_node_gives_up_after_the_lock_timeout_naming_the_lock_and_its_holder(engine: Engine) -> None:
    with holding_the_lock(engine) as holder_pid, pytest.raises(migrate.MigrationLockTimeout) as raised:
        migrate.upgrade(engine, lock_timeout=0.5)
    message = str(raised.value)
    if engine.dialect.name == "postgresql":
        expected = [f"advisory lock {DOCUMENTED_LOCK_KEY}", f"held by pid {holder_pid}", "pg_locks"]
    else:
        expected = [f"{engine.url.database}.migrate.lock", "fuser"]
    assert [part for part in ["gave up after 0.5 s", *expected] if part not in message] == [], message


def test_a_timed_out_node_leaves_the_database_untouched(engine: Engine) -> None:
    with holding_the_lock(engine), contextlib.suppress(migrate.MigrationLockTimeout):
        migrate.upgrade(engine, lock_timeout=0.5)
    assert migrate.current_revision(engine) is None


def test_init_reports_a_lock_timeout_as_an_error(engine: Engine, tmp_path: Path) -> None:
    with holding_the_lock(engine):
        process, log = start_init(engine, tmp_path, "impatient", GATEWAY_MIGRATION_LOCK_TIMEOUT="1")
        status = finish(process, log)
    output = log.read_text()
    assert (status, "error: gave up after 1 s waiting for the migration lock" in output) == (1, True), output


def simulate_a_newer_release(engine: Engine) -> None:
    migrate.upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE from_the_future (id INTEGER PRIMARY KEY)"))
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))


def test_a_database_ahead_of_the_code_is_refused(engine: Engine) -> None:
    simulate_a_newer_release(engine)
    with pytest.raises(migrate.DatabaseAheadOfCode, match=r"at revision 9999, which this version .* does not know"):
        migrate.upgrade(engine)


def test_a_refused_database_keeps_its_newer_schema(engine: Engine) -> None:
    simulate_a_newer_release(engine)
    with contextlib.suppress(migrate.DatabaseAheadOfCode):
        migrate.upgrade(engine)
    assert migrate.current_revision(engine) == "9999"
    assert "from_the_future" in sa.inspect(engine).get_table_names()


@pytest.mark.parametrize(
    ("setup", "status"),
    [
        (lambda engine: None, "empty"),
        (lambda engine: migrate.upgrade(engine, "0001"), "behind"),
        (migrate.upgrade, "at head"),
        (simulate_a_newer_release, "ahead"),
    ],
)
def test_migration_state_tells_where_the_database_stands(engine, setup, status):
    setup(engine)
    assert migrate.migration_state(engine).status == status


# The 0001 tables a customer's usage lives in, declared here as 0001 created them (not through the models, which
# follow head): data written by the first release must come through every later migration.
_v1 = sa.MetaData()
_customer = sa.Table(
    "retail_customer",
    _v1,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("username", sa.String(64)),
    sa.Column("email", sa.String(254)),
    sa.Column("password_changed_at", sa.DateTime(timezone=True)),
    sa.Column("is_active", sa.Boolean),
    sa.Column("uuid", sa.Uuid),
    sa.Column("published", sa.DateTime(timezone=True)),
    sa.Column("updated", sa.DateTime(timezone=True)),
)
_usage_point = sa.Table(
    "usage_point",
    _v1,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("customer_id", sa.Integer),
    sa.Column("service_kind", sa.SmallInteger),
    sa.Column("uuid", sa.Uuid),
    sa.Column("published", sa.DateTime(timezone=True)),
    sa.Column("updated", sa.DateTime(timezone=True)),
)
_reading_type = sa.Table(
    "reading_type",
    _v1,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("uom", sa.SmallInteger),
    sa.Column("interval_length", sa.Integer),
    sa.Column("uuid", sa.Uuid),
    sa.Column("published", sa.DateTime(timezone=True)),
    sa.Column("updated", sa.DateTime(timezone=True)),
)
_meter_reading = sa.Table(
    "meter_reading",
    _v1,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("usage_point_id", sa.Integer),
    sa.Column("reading_type_id", sa.Integer),
    sa.Column("uuid", sa.Uuid),
    sa.Column("published", sa.DateTime(timezone=True)),
    sa.Column("updated", sa.DateTime(timezone=True)),
)
_interval_block = sa.Table(
    "interval_block",
    _v1,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("meter_reading_id", sa.Integer),
    sa.Column("start", sa.BigInteger),
    sa.Column("duration", sa.Integer),
    sa.Column("uuid", sa.Uuid),
    sa.Column("published", sa.DateTime(timezone=True)),
    sa.Column("updated", sa.DateTime(timezone=True)),
)
_interval_reading = sa.Table(
    "interval_reading",
    _v1,
    sa.Column("interval_block_id", sa.Integer, primary_key=True),
    sa.Column("start", sa.BigInteger, primary_key=True),
    sa.Column("duration", sa.Integer),
    sa.Column("value", sa.BigInteger),
)
_DAY_START = 1_700_000_000


def _write_a_day_of_usage(engine: Engine) -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    stamps = {"published": now, "updated": now}
    with engine.begin() as connection:
        customer = connection.execute(
            _customer.insert().values(
                username="alice",
                email="alice@example.com",
                password_changed_at=now,
                is_active=True,
                uuid=uuid.uuid4(),
                **stamps,
            )
        ).inserted_primary_key[0]
        point = connection.execute(
            _usage_point.insert().values(customer_id=customer, service_kind=0, uuid=uuid.uuid4(), **stamps)
        ).inserted_primary_key[0]
        kind = connection.execute(
            _reading_type.insert().values(uom=72, interval_length=900, uuid=uuid.uuid4(), **stamps)
        ).inserted_primary_key[0]
        reading = connection.execute(
            _meter_reading.insert().values(usage_point_id=point, reading_type_id=kind, uuid=uuid.uuid4(), **stamps)
        ).inserted_primary_key[0]
        block = connection.execute(
            _interval_block.insert().values(
                meter_reading_id=reading, start=_DAY_START, duration=86_400, uuid=uuid.uuid4(), **stamps
            )
        ).inserted_primary_key[0]
        connection.execute(
            _interval_reading.insert(),
            [
                {"interval_block_id": block, "start": _DAY_START + 900 * n, "duration": 900, "value": 100 + n}
                for n in range(96)
            ],
        )


def _read_the_day_of_usage(engine: Engine) -> tuple[object, ...]:
    chain = (
        select(_customer.c.username, func.count(), func.sum(_interval_reading.c.value))
        .join(_usage_point, _usage_point.c.customer_id == _customer.c.id)
        .join(_meter_reading, _meter_reading.c.usage_point_id == _usage_point.c.id)
        .join(_interval_block, _interval_block.c.meter_reading_id == _meter_reading.c.id)
        .join(_interval_reading, _interval_reading.c.interval_block_id == _interval_block.c.id)
        .group_by(_customer.c.username)
    )
    with engine.connect() as connection:
        return tuple(tuple(row) for row in connection.execute(chain))


def test_upgrading_from_the_first_release_keeps_its_data(engine: Engine) -> None:
    migrate.upgrade(engine, "0001")
    _write_a_day_of_usage(engine)
    migrate.upgrade(engine)
    assert _read_the_day_of_usage(engine) == (("alice", 96, sum(100 + n for n in range(96))),)


def test_sqlite_batch_rebuild_of_a_parent_table_keeps_its_children(tmp_path: Path) -> None:
    # Alembic's batch mode rebuilds a SQLite table by copy and DROP; with foreign keys on, the DROP cascades into
    # every usage point of every customer. Migrations must run with them off.
    engine = make_engine(f"sqlite:///{tmp_path / 'batch.sqlite3'}")
    migrate.upgrade(engine, "0001")
    _write_a_day_of_usage(engine)
    with migrate.migration_lock(engine) as migration_engine, migration_engine.begin() as connection:
        operations = Operations(MigrationContext.configure(connection, opts={"render_as_batch": True}))
        with operations.batch_alter_table("retail_customer", recreate="always") as batch:
            batch.add_column(sa.Column("nickname", sa.String(64), nullable=True))
    assert _read_the_day_of_usage(engine) == (("alice", 96, sum(100 + n for n in range(96))),)
    engine.dispose()


def test_sqlite_upgrade_refuses_to_finish_with_dangling_foreign_keys(tmp_path: Path) -> None:
    path = tmp_path / "dangling.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine, "0001")
    with contextlib.closing(sqlite3.connect(path)) as raw:  # the driver's default: foreign keys not enforced
        raw.execute(
            "INSERT INTO usage_point (customer_id, service_kind, uuid, published, updated) "
            "VALUES (4242, 0, 'a3f1', '2026-01-01', '2026-01-01')"
        )
        raw.commit()
    with pytest.raises(migrate.MigrationError, match=r"1 rows refer to rows that do not exist .*usage_point"):
        migrate.upgrade(engine)
    engine.dispose()


def test_in_memory_sqlite_migrates_without_a_lock() -> None:
    engine = make_engine("sqlite://")
    migrate.upgrade(engine)
    assert (migrate.sqlite_lock_path(engine), migrate.current_revision(engine)) == (None, migrate.head_revision(engine))
    engine.dispose()
