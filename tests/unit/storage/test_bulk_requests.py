"""Durable bulk requests (FB 35; ESPI-NOTES §9): one job per canonical key, even under concurrency; leases; retries."""

from __future__ import annotations

import datetime as dt
import threading
from urllib.parse import parse_qs

import pytest
from sqlalchemy import func, select

from gateway.config import Settings
from gateway.resources.bulk import canonical_query
from gateway.services import Services
from gateway.storage import migrate
from gateway.storage.base import utcnow
from gateway.storage.bulk import (
    BulkClaim,
    BulkRequest,
    BulkState,
    claim_next_bulk,
    create_bulk_request,
    insert_bulk_request,
    record_bulk_failure,
    renew_bulk_lease,
    store_chunk,
)
from gateway.storage.engine import session_scope
from gateway.web.params import parse_query
from tests.functional.oauth.helpers import make_client

LEASE = dt.timedelta(minutes=2)
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ({}, ""),
        ({"start-index": "1", "max-results": "1000", "depth": "99"}, ""),
        ({"max-results": "99999"}, "max-results=10000"),
        (
            {"updated-min": "2024-01-01T00:00:00Z", "depth": "3", "published-max": "2024-02-01T00:00:00Z"},
            "depth=3&published-max=2024-02-01T00%3A00%3A00Z&updated-min=2024-01-01T00%3A00%3A00Z",
        ),
        ({"start-index": "3", "cachebuster": "123"}, "start-index=3"),
    ],
)
def test_canonical_query_normalises_and_sorts(raw, canonical):
    assert canonical_query(parse_query(raw)) == canonical


@pytest.mark.parametrize(
    "canonical", ["", "start-index=3", "depth=2&max-results=5&published-min=2024-01-01T00%3A00%3A00Z"]
)
def test_canonical_query_reads_back_as_itself(canonical):
    assert canonical_query(parse_query(parse_qs(canonical, keep_blank_values=True))) == canonical


@pytest.fixture
def application_id(db, services) -> int:
    return make_client(db, services.settings, services.digester).application.id


def _create(session, application_id: int, *, query: str = "", now: dt.datetime = NOW) -> tuple[BulkRequest, bool]:
    return create_bulk_request(
        session, application_id=application_id, bulk_id="bulk-1", query=query, estimated_readings=1, now=now
    )


def test_the_same_key_gives_the_same_job(db, services, application_id):
    first, created = _create(db, application_id)
    db.flush()
    with services.sessions() as other:
        again, created_again = _create(other, application_id)
    assert (created, created_again, again.id) == (True, False, first.id)


def test_another_query_is_another_job(db, application_id):
    first, _ = _create(db, application_id)
    other, created = _create(db, application_id, query="start-index=2")
    assert created and other.id != first.id


def test_an_insert_losing_the_race_returns_the_winners_job(db, services, application_id):
    # Another node inserted the key after this one looked: its insert hits the unique constraint.
    winner, _ = _create(db, application_id)
    db.flush()
    with services.sessions() as loser:
        found, created = insert_bulk_request(
            loser, application_id=application_id, bulk_id="bulk-1", query="", estimated_readings=1, now=NOW
        )
        rows = loser.scalar(select(func.count()).select_from(BulkRequest))
    assert (created, found.id, rows) == (False, winner.id, 1)


def test_concurrent_creations_on_two_connections_make_one_row(cli_environ):
    services = Services.build(Settings.from_env(cli_environ))
    migrate.upgrade(services.engine)
    with session_scope(services.sessions) as session:
        application_id = make_client(session, services.settings, services.digester).application.id
    barrier = threading.Barrier(4)
    found: list[int] = []
    errors: list[BaseException] = []

    def request() -> None:
        try:
            barrier.wait()
            with session_scope(services.sessions) as session:
                job, _ = _create(session, application_id, now=utcnow())
                found.append(job.id)
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=request) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    with services.sessions() as session:
        rows = session.scalar(select(func.count()).select_from(BulkRequest))
    services.engine.dispose()
    assert (errors, rows, len(set(found)), len(found)) == ([], 1, 1, 4)


def _claim(session, *, now: dt.datetime = NOW, build_id: str = "b" * 32, max_attempts: int = 3) -> BulkClaim | None:
    return claim_next_bulk(session, now=now, lease=LEASE, build_id=build_id, max_attempts=max_attempts)


def test_a_claimed_job_is_not_claimed_again_while_its_lease_holds(db, application_id):
    _create(db, application_id)
    assert _claim(db) is not None
    assert _claim(db, now=NOW + LEASE - dt.timedelta(seconds=1), build_id="c" * 32) is None
    again = _claim(db, now=NOW + LEASE, build_id="c" * 32)
    assert again is not None and again.attempts == 2


def test_a_lost_lease_cannot_be_renewed_nor_written_to(db, application_id):
    _create(db, application_id)
    first = _claim(db)
    assert first is not None
    _claim(db, now=NOW + LEASE, build_id="c" * 32)
    assert not renew_bulk_lease(db, first, until=NOW + 2 * LEASE)
    assert not store_chunk(db, first, 0, b"x", lease_until=NOW + 2 * LEASE)


def test_a_job_whose_worker_keeps_dying_ends_failed(db, application_id):
    job, _ = _create(db, application_id)
    for attempt in range(3):
        assert _claim(db, now=NOW + attempt * LEASE, build_id=f"{attempt}" * 32) is not None
    assert _claim(db, now=NOW + 3 * LEASE, build_id="z" * 32) is None
    db.refresh(job)
    assert (job.state, job.last_error.split(":")[0]) == (BulkState.FAILED, "WorkerLost")


def test_a_failed_attempt_waits_for_its_retry_time(db, application_id):
    _create(db, application_id)
    claim = _claim(db)
    assert claim is not None
    retry_at = NOW + dt.timedelta(seconds=30)
    assert record_bulk_failure(db, claim, error="RuntimeError: x", now=NOW, retry_at=retry_at) == BulkState.PENDING
    assert _claim(db, now=retry_at - dt.timedelta(seconds=1)) is None
    assert _claim(db, now=retry_at) is not None
