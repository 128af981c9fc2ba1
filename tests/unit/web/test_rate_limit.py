"""Per-client rate limits with ``Retry-After`` (RFC 6585 §4), shared through the database by every worker and node.

Clocks are injected, so refill, lease expiry and ``Retry-After`` are exact. The shared tests run on each backend of
the suite against the migrated engine itself (each lease commits, as in production); every test uses limiter names
of its own and deletes its rows afterwards.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, delete, event, insert, select

from gateway.errors import TooManyRequests
from gateway.outbox.worker import run_once
from gateway.services import Services
from gateway.storage.rate_limit import RateLimitBucket, purge_idle_buckets
from gateway.web.rate_limit import OUTAGE_BACKOFF, RateLimiter, address_key, sessions_bind
from tests.support.server import free_port

START = 1_800_000_000.0


class Clock:
    """Epoch seconds that move only when the test says so."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def accepted(limiter: RateLimiter, key: str = "client", times: int = 1) -> int:
    """How many of ``times`` checks of ``key`` pass."""
    passed = 0
    for _ in range(times):
        try:
            limiter.check(key)
        except TooManyRequests:
            continue
        passed += 1
    return passed


def retry_after(limiter: RateLimiter, key: str = "client") -> int:
    with pytest.raises(TooManyRequests) as refused:
        limiter.check(key)
    return int(refused.value.headers["Retry-After"])


# -- one process's own bucket (no database) -------------------------------------------------------------------------


def test_in_memory_a_burst_passes_then_429():
    limiter = RateLimiter(rate=1, burst=3, clock=Clock())
    assert accepted(limiter, times=5) == 3


def test_in_memory_tokens_refill_at_the_rate():
    clock = Clock()
    limiter = RateLimiter(rate=2, burst=4, clock=clock)
    accepted(limiter, times=4)
    clock.advance(1.5)
    assert accepted(limiter, times=5) == 3


def test_in_memory_the_bucket_never_holds_more_than_the_burst():
    clock = Clock()
    limiter = RateLimiter(rate=10, burst=3, clock=clock)
    clock.advance(3600)
    assert accepted(limiter, times=10) == 3


@pytest.mark.parametrize(
    ("rate", "expected"),
    [(1.0, 1), (0.5, 2), (0.25, 4), (1 / 60, 60), (100.0, 1)],
    ids=["1/s", "0.5/s", "0.25/s", "1/min", "100/s"],
)
def test_in_memory_retry_after_is_the_wait_for_one_token(rate: float, expected: int):
    limiter = RateLimiter(rate=rate, burst=1, clock=Clock())
    limiter.check("client")
    assert retry_after(limiter) == expected


def test_in_memory_retry_after_shrinks_as_the_token_refills():
    clock = Clock()
    limiter = RateLimiter(rate=0.1, burst=1, clock=clock)
    limiter.check("client")
    clock.advance(7.5)
    assert retry_after(limiter) == 3


def test_in_memory_each_key_has_its_own_bucket():
    limiter = RateLimiter(rate=1, burst=1, clock=Clock())
    limiter.check("a")
    assert accepted(limiter, "b") == 1


def test_rate_zero_disables_the_limit():
    limiter = RateLimiter(rate=0, burst=1, clock=Clock())
    assert accepted(limiter, times=100) == 100


def test_the_429_names_the_limit():
    limiter = RateLimiter(rate=0.5, burst=2, clock=Clock())
    accepted(limiter, times=2)
    with pytest.raises(TooManyRequests) as refused:
        limiter.check("client")
    assert "30 requests per minute (bursts of 2)" in str(refused.value)


@pytest.mark.parametrize(
    ("rate", "burst", "expected"),
    [(10, 50, 5), (10, 8, 2), (0.001, 2, 1), (1000, 50, 12), (50, 1, 1)],
)
def test_the_largest_lease(rate: float, burst: int, expected: int):
    assert RateLimiter(rate=rate, burst=burst).max_lease == expected


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.9", "203.0.113.9"),
        (None, "unknown"),
        ("not-an-address", "not-an-address"),
    ],
)
def test_address_keys(address: str | None, key: str):
    assert address_key(address) == key


# -- the cluster-wide bucket -----------------------------------------------------------------------------------------


@pytest.fixture
def name(migrated_engine: Engine) -> Iterator[str]:
    """A limiter name of this test's own; its bucket rows are deleted afterwards."""
    value = f"t{uuid.uuid4().hex[:12]}"
    yield value
    with migrated_engine.begin() as connection:
        connection.execute(delete(RateLimitBucket).where(RateLimitBucket.key.startswith(f"{value}:")))


def shared(engine: Engine, name: str, clock: Clock, *, rate: float, burst: int) -> RateLimiter:
    return RateLimiter(rate=rate, burst=burst, bind=engine, name=name, clock=clock)


def stored_tokens(engine: Engine, name: str, key: str = "client") -> float | None:
    with engine.connect() as connection:
        return connection.scalar(select(RateLimitBucket.tokens).where(RateLimitBucket.key == f"{name}:{key}"))


class StatementCounter:
    """Counts the SQL statements executed while installed against ``engine``'s database, by any engine: on SQLite the
    limiter leases on an autocommit connection of the hot path's own engine (gateway.oauth.hotpath)."""

    def __init__(self, engine: Engine) -> None:
        self.url = engine.url
        self.count = 0

    def _count(self, connection: Any, *args: Any) -> None:
        if connection.engine.url == self.url:
            self.count += 1

    def __enter__(self) -> StatementCounter:
        event.listen(Engine, "before_cursor_execute", self._count)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(Engine, "before_cursor_execute", self._count)


def test_shared_a_burst_passes_then_429(migrated_engine: Engine, name: str):
    limiter = shared(migrated_engine, name, Clock(), rate=1, burst=3)
    assert accepted(limiter, times=6) == 3


def test_shared_a_new_bucket_is_created_full(migrated_engine: Engine, name: str):
    limiter = shared(migrated_engine, name, Clock(), rate=1, burst=3)
    limiter.check("client")
    assert stored_tokens(migrated_engine, name) == 2.0


def test_shared_tokens_refill_at_the_rate(migrated_engine: Engine, name: str):
    clock = Clock()
    limiter = shared(migrated_engine, name, clock, rate=2, burst=4)
    accepted(limiter, times=5)
    clock.advance(1.5)
    assert accepted(limiter, times=5) == 3


def test_shared_leases_grow_while_they_are_spent(migrated_engine: Engine, name: str):
    # rate 10, burst 40: leases of 1, 2, 4, then the largest, 5.
    limiter = shared(migrated_engine, name, Clock(), rate=10, burst=40)
    remaining = []
    for _ in range(4):
        limiter.check("client")
        remaining.append(stored_tokens(migrated_engine, name))
    assert remaining == [39.0, 37.0, 37.0, 33.0]


def test_shared_a_leased_token_is_spent_without_the_database(migrated_engine: Engine, name: str):
    limiter = shared(migrated_engine, name, Clock(), rate=10, burst=40)
    accepted(limiter, times=7)  # leases 1, 2, 4: all spent
    limiter.check("client")  # a lease of 5, one spent
    with StatementCounter(migrated_engine) as statements:
        assert accepted(limiter, times=4) == 4
    assert statements.count == 0


def test_shared_unspent_tokens_expire_with_their_lease(migrated_engine: Engine, name: str):
    clock = Clock()
    limiter = shared(migrated_engine, name, clock, rate=10, burst=40)
    accepted(limiter, times=8)  # leases 1, 2, 4, 5: 4 tokens of the last one unspent
    assert stored_tokens(migrated_engine, name) == 28.0
    clock.advance(1.0)  # the lease expires; 10 tokens refill
    limiter.check("client")
    # A new lease was taken (as large as what the expired one served: 1); the 4 unspent tokens did not come back.
    assert stored_tokens(migrated_engine, name) == 37.0


def test_shared_retry_after_is_the_wait_for_one_token(migrated_engine: Engine, name: str):
    clock = Clock()
    limiter = shared(migrated_engine, name, clock, rate=0.25, burst=2)
    accepted(limiter, times=2)
    assert retry_after(limiter) == 4
    clock.advance(2.5)
    assert retry_after(limiter) == 2
    clock.advance(1.5)
    assert accepted(limiter) == 1


def test_shared_a_lease_is_one_statement(migrated_engine: Engine, name: str):
    """Refill and take in one ``INSERT … ON CONFLICT … RETURNING``, for a new bucket and for an existing one (and
    the counter that proves other tests' "no statement" sees the limiter's statements at all)."""
    clock = Clock()
    limiter = shared(migrated_engine, name, clock, rate=1, burst=3)
    with StatementCounter(migrated_engine) as statements:
        limiter.check("client")
    assert statements.count == 1
    clock.advance(2)  # the lease expired: the next check leases again
    with StatementCounter(migrated_engine) as statements:
        limiter.check("client")
    assert statements.count == 1


def test_shared_a_refused_client_does_not_reach_the_database_until_a_token_is_due(migrated_engine: Engine, name: str):
    clock = Clock()
    limiter = shared(migrated_engine, name, clock, rate=0.1, burst=1)
    accepted(limiter, times=2)
    with StatementCounter(migrated_engine) as statements:
        clock.advance(5)
        assert accepted(limiter, times=20) == 0
    assert statements.count == 0


def test_shared_keys_and_names_have_buckets_of_their_own(migrated_engine: Engine, name: str):
    clock = Clock()
    espi = shared(migrated_engine, name, clock, rate=1, burst=1)
    other = RateLimiter(rate=1, burst=1, bind=migrated_engine, name=f"{name}-other", clock=clock)
    try:
        espi.check("a")
        assert (accepted(espi, "b"), accepted(other, "a")) == (1, 1)
    finally:
        with migrated_engine.begin() as connection:
            connection.execute(delete(RateLimitBucket).where(RateLimitBucket.key.startswith(f"{name}-other:")))


def test_two_workers_share_one_budget(migrated_engine: Engine, name: str):
    """Two limiters (two worker processes) on one database admit no more than one bucket's worth."""
    clock = Clock()
    workers = [shared(migrated_engine, name, clock, rate=10, burst=20) for _ in range(2)]
    first = sum(accepted(workers[n % 2]) for n in range(60))
    clock.advance(1.0)  # 10 tokens refill; whatever the workers still held expires
    second = sum(accepted(workers[n % 2]) for n in range(60))
    assert (first, second) == (20, 10)


def test_two_workers_are_both_refused_once_the_budget_is_spent(migrated_engine: Engine, name: str):
    clock = Clock()
    workers = [shared(migrated_engine, name, clock, rate=0.5, burst=10) for _ in range(2)]
    for n in range(10):
        workers[n % 2].check("client")
    assert [retry_after(worker) for worker in workers] == [2, 2]


def test_threads_of_two_workers_never_take_a_token_twice(migrated_engine: Engine, name: str):
    """Eight threads over two limiters race for one bucket: the row lock lets out exactly the burst, no more."""
    clock = Clock()  # frozen: no refill and no lease expiry while the threads run
    workers = [shared(migrated_engine, name, clock, rate=100, burst=60) for _ in range(2)]
    counts: list[int] = []
    lock = threading.Lock()

    def hammer(worker: RateLimiter) -> None:
        passed = accepted(worker, times=40)
        with lock:
            counts.append(passed)

    threads = [threading.Thread(target=hammer, args=(workers[n % 2],)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(counts) == 60


def test_shared_clock_behind_the_row_refills_nothing(migrated_engine: Engine, name: str):
    ahead, behind = Clock(START + 100), Clock(START)
    accepted(shared(migrated_engine, name, ahead, rate=1, burst=2), times=2)
    assert accepted(shared(migrated_engine, name, behind, rate=1, burst=2)) == 0


# -- a database outage lets requests through ------------------------------------------------------------------------


@pytest.fixture
def dead_engine(backend: str, tmp_path: Path) -> Iterator[Engine]:
    """An engine whose database cannot be reached (a directory for SQLite, a closed port for PostgreSQL)."""
    if backend == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path}")
    else:
        engine = create_engine(
            f"postgresql+psycopg://gateway@127.0.0.1:{free_port()}/none", connect_args={"connect_timeout": 2}
        )
    yield engine
    engine.dispose()


def test_a_dead_database_lets_requests_through(dead_engine: Engine):
    limiter = RateLimiter(rate=1, burst=1, bind=dead_engine, name="dead", clock=Clock())
    assert accepted(limiter, times=5) == 5


def test_a_dead_database_is_logged_once(dead_engine: Engine, caplog: pytest.LogCaptureFixture):
    clock = Clock()
    limiter = RateLimiter(rate=1, burst=1, bind=dead_engine, name="dead", clock=clock)
    with caplog.at_level(logging.WARNING, logger="gateway.web.rate_limit"):
        accepted(limiter, times=3)
        clock.advance(OUTAGE_BACKOFF)  # asked again after the back-off, failing again: still one line
        accepted(limiter, times=3)
    assert [record.getMessage() for record in caplog.records if "not enforced" in record.getMessage()] == [
        "rate limit 'dead' not enforced: its database is unavailable (OperationalError); "
        "requests pass until it answers again"
    ]


def test_limits_hold_again_once_the_database_answers(tmp_path: Path, migrated_engine: Engine, name: str):
    if migrated_engine.dialect.name != "sqlite":
        pytest.skip("a database that comes back is simulated with a SQLite file")
    path = tmp_path / "late.sqlite3"
    path.mkdir()  # not a database yet: every connection fails
    engine = create_engine(f"sqlite:///{path}")
    clock = Clock()
    limiter = RateLimiter(rate=0.001, burst=1, bind=engine, name=name, clock=clock)
    try:
        outage = accepted(limiter, times=3)
        path.rmdir()
        with engine.begin() as connection:
            RateLimitBucket.__table__.create(connection)
        clock.advance(OUTAGE_BACKOFF)
        assert (outage, accepted(limiter, times=3)) == (3, 1)
    finally:
        engine.dispose()


# -- the application's wiring and the worker's purge -------------------------------------------------------------


def test_under_the_suite_isolation_leases_run_on_the_test_connection(services: Services, db: Any):
    bind = sessions_bind(services.sessions)
    limiter = RateLimiter(rate=1, burst=2, bind=bind, name="iso", clock=Clock())
    accepted(limiter, times=3)
    assert db.scalar(select(RateLimitBucket.tokens).where(RateLimitBucket.key == "iso:client")) == 0.0


def test_purge_deletes_buckets_idle_for_the_retention_only(db: Any):
    db.execute(
        insert(RateLimitBucket),
        [
            {"key": "purge:idle", "tokens": 0.0, "refilled_at": START - 86_401},
            {"key": "purge:busy", "tokens": 0.0, "refilled_at": START - 10},
        ],
    )
    assert purge_idle_buckets(db, idle_before=START - 86_400) == 1
    assert db.scalars(select(RateLimitBucket.key).where(RateLimitBucket.key.startswith("purge:"))).all() == [
        "purge:busy"
    ]


def test_the_worker_pass_purges_idle_buckets(services: Services, db: Any):
    db.execute(insert(RateLimitBucket).values(key="purge:ancient", tokens=0.0, refilled_at=1_000_000.0))
    db.flush()
    assert run_once(services).purged_rate_limit_buckets >= 1
    assert db.scalar(select(RateLimitBucket.key).where(RateLimitBucket.key == "purge:ancient")) is None
