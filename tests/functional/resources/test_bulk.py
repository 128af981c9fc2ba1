"""``Batch/Bulk/{bulkId}`` (FB 35): the app's subscriptions whose scope carries BR={bulkId}, each with its own grant."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import email.utils
import gzip
import json
import os
import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import webob
import webtest
from lxml import etree
from sqlalchemy import func, select

from gateway.app import create_app
from gateway.commands import bulk as bulk_command
from gateway.commands.output import run_handler
from gateway.config import Settings
from gateway.espi.writer import batch_list_document
from gateway.notifications import BATCH_LIST
from gateway.outbox.bulk_builder import DOWNLOAD_GRACE, LEASE, BuildOutcome, BulkBuilder, purge_bulks
from gateway.outbox.worker import run_once
from gateway.services import Services
from gateway.storage import migrate
from gateway.storage.application import ApplicationInformation, ApplicationStatus
from gateway.storage.authorization import Authorization, AuthorizationKind, AuthorizationStatus, Subscription
from gateway.storage.base import utcnow
from gateway.storage.bulk import (
    BuiltFeed,
    BulkChunk,
    BulkRequest,
    claim_next_bulk,
    create_bulk_request,
    finish_bulk_build,
)
from gateway.storage.engine import session_scope
from gateway.storage.outbox import OutboxMessage
from tests.conftest import BASE_URL, make_settings
from tests.functional.oauth.helpers import CLIENT_SCOPE, basic, make_client, make_customer
from tests.functional.resources.conftest import (
    ATOM,
    BASE,
    FULL_SCOPE,
    CustomerToken,
    bearer,
    build_tree,
    entry_kinds,
    links,
    parse,
)

BULK_SCOPE = FULL_SCOPE + ";BR=bulk-1"


@pytest.fixture
def bulk_client(db, services):
    return make_client(
        db, services.settings, services.digester, name="Bulk App", scopes=(BULK_SCOPE, FULL_SCOPE, CLIENT_SCOPE)
    )


@pytest.fixture
def bulk_client_token(testapp, bulk_client) -> str:
    return testapp.post(
        "/oauth/token",
        {"grant_type": "client_credentials", "scope": CLIENT_SCOPE},
        headers={"Authorization": basic(bulk_client.client_id, bulk_client.client_secret)},
    ).json["access_token"]


def subscriptions_in(root) -> set[int]:
    found = set()
    for link in root.iter(f"{ATOM}link"):
        href = link.get("href") or ""
        if "/Subscription/" in href and link.get("rel") == "self" and "/UsagePoint/" in href:
            found.add(int(href.split("/Subscription/")[1].split("/")[0]))
    return found


def test_bulk_holds_every_bulk_subscription_and_nothing_else(
    testapp, tree, bob_tree, bob, customer_token, bulk_client, bulk_client_token, valid
):
    alice_bulk = customer_token(client=bulk_client, scope=BULK_SCOPE)
    bob_bulk = customer_token(client=bulk_client, scope=BULK_SCOPE, customer=bob)
    alice_plain = customer_token(client=bulk_client, scope=FULL_SCOPE)
    root = valid(testapp.get(f"{BASE}/Batch/Bulk/bulk-1", headers=bearer(bulk_client_token)).body)
    assert subscriptions_in(root) == {alice_bulk.subscription_id, bob_bulk.subscription_id}
    assert alice_plain.subscription_id not in subscriptions_in(root)
    assert entry_kinds(root).count("UsagePoint") == 3


def test_bulk_applies_each_grants_window(testapp, tree, customer_token, bulk_client, bulk_client_token, valid):
    from tests.functional.resources.conftest import DAY, START

    customer_token(client=bulk_client, scope=BULK_SCOPE, window=(START, DAY))
    root = valid(testapp.get(f"{BASE}/Batch/Bulk/bulk-1", headers=bearer(bulk_client_token)).body)
    assert entry_kinds(root).count("IntervalBlock") == 1


def test_bulk_excludes_revoked_consents(testapp, tree, customer_token, bulk_client, bulk_client_token):
    token = customer_token(client=bulk_client, scope=BULK_SCOPE)
    testapp.delete(f"{BASE}/Authorization/{token.authorization_id}", headers=bearer(bulk_client_token), status=204)
    root = testapp.get(f"{BASE}/Batch/Bulk/bulk-1", headers=bearer(bulk_client_token)).body
    assert b"<entry>" not in root


def test_bulk_pages_by_subscription(
    testapp, tree, bob_tree, bob, customer_token, bulk_client, bulk_client_token, valid
):
    customer_token(client=bulk_client, scope=BULK_SCOPE)
    customer_token(client=bulk_client, scope=BULK_SCOPE, customer=bob)
    first = valid(
        testapp.get(f"{BASE}/Batch/Bulk/bulk-1", {"max-results": "1"}, headers=bearer(bulk_client_token)).body
    )
    assert len(subscriptions_in(first)) == 1 and links(first, "next")
    second = valid(
        testapp.get(
            f"{BASE}/Batch/Bulk/bulk-1", {"max-results": "1", "start-index": "2"}, headers=bearer(bulk_client_token)
        ).body
    )
    assert len(subscriptions_in(second)) == 1 and not links(second, "next")
    assert subscriptions_in(first) != subscriptions_in(second)


def test_bulk_conditional_get(testapp, tree, customer_token, bulk_client, bulk_client_token):
    customer_token(client=bulk_client, scope=BULK_SCOPE)
    etag = testapp.get(f"{BASE}/Batch/Bulk/bulk-1", headers=bearer(bulk_client_token)).headers["ETag"]
    testapp.get(f"{BASE}/Batch/Bulk/bulk-1", headers={**bearer(bulk_client_token), "If-None-Match": etag}, status=304)


@pytest.mark.parametrize("bulk_id", ["unknown", "bulk-2", "a" * 65, "bad%20id"])
def test_unknown_bulk_is_404(testapp, bulk_client_token, bulk_id):
    testapp.get(f"{BASE}/Batch/Bulk/{bulk_id}", headers=bearer(bulk_client_token), status=404)


def test_registered_bulk_without_consents_is_an_empty_feed(testapp, bulk_client_token, valid):
    root = valid(testapp.get(f"{BASE}/Batch/Bulk/bulk-1", headers=bearer(bulk_client_token)).body)
    assert entry_kinds(root) == []


def test_another_apps_bulk_is_404(testapp, db, services, tree, customer_token, bulk_client, client_token):
    customer_token(client=bulk_client, scope=BULK_SCOPE)
    testapp.get(f"{BASE}/Batch/Bulk/bulk-1", headers=bearer(client_token), status=404)


@pytest.mark.parametrize("kind", ["none", "customer", "registration", "custodian"])
def test_bulk_matrix(testapp, tree, customer_token, bulk_client, custodian_token, kind):
    token = {
        "none": None,
        "customer": customer_token(client=bulk_client, scope=BULK_SCOPE).token,
        "registration": bulk_client.registration_access_token,
        "custodian": custodian_token,
    }[kind]
    testapp.get(
        f"{BASE}/Batch/Bulk/bulk-1", headers=bearer(token) if token else {}, status=401 if token is None else 403
    )


def test_bulk_bad_parameter_is_400(testapp, bulk_client_token):
    assert (
        "depth"
        in testapp.get(f"{BASE}/Batch/Bulk/bulk-1", {"depth": "-"}, headers=bearer(bulk_client_token), status=400).json[
            "description"
        ]
    )


# -- very large bulks: 202 Accepted, built by the worker, served from the database (ESPI-NOTES §9) ------------------

ALICE_READINGS = 3 * 96 + 24
"""What the estimate sees in alice's tree: three daily 15-minute blocks and one hourly block."""
LOCATION = f"{BASE_URL}{BASE}/Batch/Bulk/bulk-1"


@pytest.fixture
def tuned_testapp(settings, services) -> Callable[..., webtest.TestApp]:
    """The app under other settings (same database), e.g. another async threshold."""

    def build(**changes: object) -> webtest.TestApp:
        tuned = dataclasses.replace(services, settings=settings.replace(**changes))
        return webtest.TestApp(
            create_app(tuned.settings, services=tuned),
            extra_environ={"REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1:8000"},
        )

    return build


@pytest.fixture
def async_testapp(tuned_testapp) -> webtest.TestApp:
    """Every bulk holding interval data goes the 202 way."""
    return tuned_testapp(bulk_async_readings=0)


@pytest.fixture
def alice_bulk(tree, customer_token, bulk_client) -> CustomerToken:
    return customer_token(client=bulk_client, scope=BULK_SCOPE)


def build_all(services, **options: Any) -> list[BuildOutcome]:
    return BulkBuilder(services, **options).build_due()


def jobs(db) -> list[BulkRequest]:
    db.expire_all()
    return list(db.scalars(select(BulkRequest).order_by(BulkRequest.id)))


def test_a_large_bulk_is_accepted_with_its_canonical_url(async_testapp, alice_bulk, bulk_client_token):
    response = async_testapp.get(
        f"{BASE}/Batch/Bulk/bulk-1",
        [("start-index", "1"), ("updated-min", "2020-01-01T00:00:00Z"), ("cachebuster", "x"), ("depth", "10")],
        headers=bearer(bulk_client_token),
        status=202,
    )
    assert response.headers["Location"] == f"{LOCATION}?updated-min=2020-01-01T00%3A00%3A00Z"
    assert response.headers["Retry-After"] == "10" and response.headers["Cache-Control"] == "no-store"
    assert response.json["state"] == "pending" and response.json["location"] == response.headers["Location"]


def test_the_202_body_is_xml_for_xml_clients(async_testapp, alice_bulk, bulk_client_token):
    response = async_testapp.get(
        f"{BASE}/Batch/Bulk/bulk-1", headers={**bearer(bulk_client_token), "Accept": "application/atom+xml"}, status=202
    )
    assert etree.fromstring(response.body).findtext("state") == "pending"


def test_repeated_requests_are_the_same_job(async_testapp, db, alice_bulk, bulk_client_token):
    first = async_testapp.get(f"{BASE}/Batch/Bulk/bulk-1", headers=bearer(bulk_client_token), status=202)
    again = async_testapp.get(
        f"{BASE}/Batch/Bulk/bulk-1", {"max-results": "1000"}, headers=bearer(bulk_client_token), status=202
    )
    assert first.headers["Location"] == again.headers["Location"] == LOCATION
    assert len(jobs(db)) == 1


@pytest.mark.parametrize(("threshold", "status"), [(ALICE_READINGS - 1, 202), (ALICE_READINGS, 200)])
def test_the_estimate_decides_between_202_and_streaming(
    tuned_testapp, alice_bulk, bulk_client_token, threshold, status
):
    testapp = tuned_testapp(bulk_async_readings=threshold)
    testapp.get(f"{BASE}/Batch/Bulk/bulk-1", headers=bearer(bulk_client_token), status=status)


def test_a_small_bulk_goes_async_when_the_client_prefers(testapp, alice_bulk, bulk_client_token):
    response = testapp.get(
        f"{BASE}/Batch/Bulk/bulk-1", headers={**bearer(bulk_client_token), "Prefer": "respond-async"}, status=202
    )
    assert response.headers["Preference-Applied"] == "respond-async"


def test_the_built_feed_is_what_the_synchronous_path_serves(
    testapp, async_testapp, services, tree, bob_tree, bob, customer_token, bulk_client, bulk_client_token, valid
):
    customer_token(client=bulk_client, scope=BULK_SCOPE)
    customer_token(client=bulk_client, scope=BULK_SCOPE, customer=bob)
    params = {"published-min": "2024-01-02T00:00:00Z", "max-results": "5"}
    location = async_testapp.get(
        f"{BASE}/Batch/Bulk/bulk-1", params, headers=bearer(bulk_client_token), status=202
    ).headers["Location"]
    assert [outcome.state for outcome in build_all(services)] == ["ready"]
    path = location.removeprefix(BASE_URL)
    built = async_testapp.get(path, headers=bearer(bulk_client_token), status=200)
    synchronous = testapp.get(path, headers=bearer(bulk_client_token), status=200)
    assert built.body == synchronous.body
    assert entry_kinds(valid(built.body)).count("UsagePoint") == 3


def raw_get(testapp: webtest.TestApp, path: str, headers: dict[str, str]) -> webob.Response:
    """GET without WebTest's silent decoding of gzip bodies."""
    request = webob.Request.blank(
        path, headers=headers, environ={"REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1:8000"}
    )
    return request.get_response(testapp.app)


def test_the_result_is_served_as_stored_gzip_or_inflated(async_testapp, services, db, alice_bulk, bulk_client_token):
    async_testapp.get(f"{BASE}/Batch/Bulk/bulk-1", headers=bearer(bulk_client_token), status=202)
    build_all(services, chunk_bytes=512)
    assert jobs(db)[0].chunks > 3
    path = f"{BASE}/Batch/Bulk/bulk-1"
    zipped = raw_get(async_testapp, path, {**bearer(bulk_client_token), "Accept-Encoding": "gzip"})
    plain = raw_get(async_testapp, path, {**bearer(bulk_client_token), "Accept-Encoding": "identity"})
    assert (zipped.status_int, plain.status_int) == (200, 200)
    assert zipped.headers["Content-Encoding"] == "gzip" and "Content-Encoding" not in plain.headers
    assert gzip.decompress(zipped.body) == plain.body
    assert [int(r.headers["Content-Length"]) for r in (zipped, plain)] == [len(zipped.body), len(plain.body)]


def test_the_result_carries_validators_and_its_retention(async_testapp, services, db, alice_bulk, bulk_client_token):
    async_testapp.get(f"{BASE}/Batch/Bulk/bulk-1", headers=bearer(bulk_client_token), status=202)
    build_all(services)
    response = async_testapp.get(f"{BASE}/Batch/Bulk/bulk-1", headers=bearer(bulk_client_token), status=200)
    (job,) = jobs(db)
    assert email.utils.parsedate_to_datetime(response.headers["Last-Modified"]) == job.ready_at
    assert email.utils.parsedate_to_datetime(response.headers["Expires"]) == job.ready_at + dt.timedelta(days=1)
    async_testapp.get(
        f"{BASE}/Batch/Bulk/bulk-1",
        headers={**bearer(bulk_client_token), "If-None-Match": response.headers["ETag"]},
        status=304,
    )


def test_the_builder_queues_exactly_one_bulk_ready_batch_list(
    async_testapp, services, db, alice_bulk, bulk_client, bulk_client_token
):
    db.get(ApplicationInformation, bulk_client.application.id).notify_uri = "https://app.example.com/notify"
    db.flush()
    location = async_testapp.get(
        f"{BASE}/Batch/Bulk/bulk-1", {"depth": "3"}, headers=bearer(bulk_client_token), status=202
    ).headers["Location"]
    build_all(services)
    build_all(services)
    db.expire_all()
    pushed = list(db.scalars(select(OutboxMessage).where(OutboxMessage.kind == BATCH_LIST)))
    assert [(m.payload["uri"], m.payload["resources"], m.payload["reason"]) for m in pushed] == [
        ("https://app.example.com/notify", [location], "bulk")
    ]
    document = etree.fromstring(batch_list_document(pushed[0].payload["resources"]))
    assert [r.text for r in document] == [f"{LOCATION}?depth=3"]


def test_a_revoked_app_is_not_told_its_bulk_is_ready(
    async_testapp, services, db, alice_bulk, bulk_client, bulk_client_token
):
    application = db.get(ApplicationInformation, bulk_client.application.id)
    application.notify_uri = "https://app.example.com/notify"
    db.flush()
    async_testapp.get(f"{BASE}/Batch/Bulk/bulk-1", headers=bearer(bulk_client_token), status=202)
    application.status = ApplicationStatus.REVOKED
    db.flush()
    build_all(services)
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind == BATCH_LIST)) == 0


def test_while_building_the_answer_stays_202_for_the_same_job(
    async_testapp, services, db, alice_bulk, bulk_client_token
):
    async_testapp.get(f"{BASE}/Batch/Bulk/bulk-1", headers=bearer(bulk_client_token), status=202)
    with session_scope(services.sessions) as session:
        claim_next_bulk(session, now=utcnow(), lease=LEASE, build_id="a" * 32, max_attempts=3)
    response = async_testapp.get(f"{BASE}/Batch/Bulk/bulk-1", headers=bearer(bulk_client_token), status=202)
    assert response.json["state"] == "building" and len(jobs(db)) == 1


def test_an_expired_result_is_built_again(async_testapp, services, db, alice_bulk, bulk_client_token):
    async_testapp.get(f"{BASE}/Batch/Bulk/bulk-1", headers=bearer(bulk_client_token), status=202)
    build_all(services)
    (job,) = jobs(db)
    job.expires_at = utcnow() - dt.timedelta(seconds=1)
    db.flush()
    response = async_testapp.get(f"{BASE}/Batch/Bulk/bulk-1", headers=bearer(bulk_client_token), status=202)
    assert response.json["state"] == "pending"
    assert [(j.state, j.attempts) for j in jobs(db)] == [("pending", 0)]
    assert db.scalar(select(func.count()).select_from(BulkChunk)) == 0


def test_the_worker_deletes_results_past_retention(async_testapp, services, db, alice_bulk, bulk_client_token):
    async_testapp.get(f"{BASE}/Batch/Bulk/bulk-1", headers=bearer(bulk_client_token), status=202)
    build_all(services)
    (job,) = jobs(db)
    purged = purge_bulks(db, services, now=job.expires_at + DOWNLOAD_GRACE)
    assert purged.expired == 1 and jobs(db) == []
    async_testapp.get(f"{BASE}/Batch/Bulk/bulk-1", headers=bearer(bulk_client_token), status=202)


def test_a_failing_build_is_retried_then_reported_once_then_started_over(
    async_testapp, services, db, alice_bulk, bulk_client_token
):
    def broken(session, contents, self_href):
        yield b"<?xml"
        raise RuntimeError("disk on fire")

    clock = [utcnow()]
    builder = BulkBuilder(services, write_feed=broken, clock=lambda: clock[0])
    async_testapp.get(f"{BASE}/Batch/Bulk/bulk-1", headers=bearer(bulk_client_token), status=202)
    states = []
    for _ in range(3):
        states.append(builder.build_next().state)
        clock[0] += dt.timedelta(hours=1)
        retrying = async_testapp.get(f"{BASE}/Batch/Bulk/bulk-1", headers=bearer(bulk_client_token), status="*")
        states.append(retrying.status_int)
    assert states == ["pending", 202, "pending", 202, "failed", 500]
    assert retrying.json["error"] == "bulk_build_failed" and "RuntimeError" in retrying.json["description"]
    restarted = async_testapp.get(f"{BASE}/Batch/Bulk/bulk-1", headers=bearer(bulk_client_token), status=202)
    assert restarted.json["attempts"] == 0 and [j.state for j in jobs(db)] == ["pending"]


def test_a_revoked_consent_drops_the_stored_result(
    async_testapp, services, db, tree, bob_tree, bob, customer_token, bulk_client, bulk_client_token
):
    customer_token(client=bulk_client, scope=BULK_SCOPE)
    bob_token = customer_token(client=bulk_client, scope=BULK_SCOPE, customer=bob)
    async_testapp.get(f"{BASE}/Batch/Bulk/bulk-1", headers=bearer(bulk_client_token), status=202)
    build_all(services)
    async_testapp.delete(
        f"{BASE}/Authorization/{bob_token.authorization_id}", headers=bearer(bulk_client_token), status=204
    )
    async_testapp.get(f"{BASE}/Batch/Bulk/bulk-1", headers=bearer(bulk_client_token), status=202)
    build_all(services)
    root = parse(async_testapp.get(f"{BASE}/Batch/Bulk/bulk-1", headers=bearer(bulk_client_token), status=200).body)
    assert bob_token.subscription_id not in subscriptions_in(root) and len(subscriptions_in(root)) == 1


def test_the_worker_drops_results_a_revocation_invalidated(async_testapp, services, db, alice_bulk, bulk_client_token):
    async_testapp.get(f"{BASE}/Batch/Bulk/bulk-1", headers=bearer(bulk_client_token), status=202)
    build_all(services)
    async_testapp.delete(
        f"{BASE}/Authorization/{alice_bulk.authorization_id}", headers=bearer(bulk_client_token), status=204
    )
    assert purge_bulks(db, services, now=utcnow()).revoked == 1 and jobs(db) == []


def test_a_killed_workers_job_is_claimed_again_when_its_lease_lapses(
    async_testapp, services, db, alice_bulk, bulk_client_token
):
    async_testapp.get(f"{BASE}/Batch/Bulk/bulk-1", headers=bearer(bulk_client_token), status=202)
    now = utcnow()
    with session_scope(services.sessions) as session:
        killed = claim_next_bulk(session, now=now, lease=LEASE, build_id="k" * 32, max_attempts=3)
    assert build_all(services, clock=lambda: now + LEASE - dt.timedelta(seconds=1)) == []
    outcomes = build_all(services, clock=lambda: now + LEASE + dt.timedelta(seconds=1))
    assert [o.state for o in outcomes] == ["ready"] and jobs(db)[0].attempts == 2
    with session_scope(services.sessions) as session:
        assert not finish_bulk_build(
            session, killed, BuiltFeed([], 0, 0, 0, ""), now=now, retention=dt.timedelta(days=1)
        )
    async_testapp.get(f"{BASE}/Batch/Bulk/bulk-1", headers=bearer(bulk_client_token), status=200)


@pytest.mark.parametrize("kind", ["none", "customer", "registration", "custodian"])
def test_a_stored_bulk_keeps_the_access_matrix(
    async_testapp, services, alice_bulk, bulk_client, bulk_client_token, custodian_token, kind
):
    async_testapp.get(f"{BASE}/Batch/Bulk/bulk-1", headers=bearer(bulk_client_token), status=202)
    build_all(services)
    token = {
        "none": None,
        "customer": alice_bulk.token,
        "registration": bulk_client.registration_access_token,
        "custodian": custodian_token,
    }[kind]
    async_testapp.get(
        f"{BASE}/Batch/Bulk/bulk-1", headers=bearer(token) if token else {}, status=401 if token is None else 403
    )


def test_another_app_never_sees_a_stored_bulk(async_testapp, services, alice_bulk, bulk_client_token, client_token):
    async_testapp.get(f"{BASE}/Batch/Bulk/bulk-1", headers=bearer(bulk_client_token), status=202)
    build_all(services)
    async_testapp.get(f"{BASE}/Batch/Bulk/bulk-1", headers=bearer(client_token), status=404)


def test_chunks_are_stored_as_they_fill(async_testapp, services, db, alice_bulk, bulk_client_token):
    stored_meanwhile: list[int] = []

    def big_feed(session, contents, self_href):
        for index in range(64):
            yield os.urandom(16 * 1024)  # incompressible: 1 MiB of gzip in all
            if index == 48:
                stored_meanwhile.append(db.scalar(select(func.count()).select_from(BulkChunk)))

    async_testapp.get(f"{BASE}/Batch/Bulk/bulk-1", headers=bearer(bulk_client_token), status=202)
    assert [o.state for o in build_all(services, write_feed=big_feed, chunk_bytes=64 * 1024)] == ["ready"]
    assert stored_meanwhile[0] >= 10 and jobs(db)[0].chunks >= 16


def test_a_stopping_worker_hands_its_build_back(async_testapp, services, db, alice_bulk, bulk_client_token):
    stop = threading.Event()

    def interrupted(session, contents, self_href):
        yield b"<?xml"
        stop.set()
        yield b" version='1.0'?>"

    async_testapp.get(f"{BASE}/Batch/Bulk/bulk-1", headers=bearer(bulk_client_token), status=202)
    assert BulkBuilder(services, write_feed=interrupted, stop=stop).build_next().state == "released"
    assert [(j.state, j.attempts, j.lease_until) for j in jobs(db)] == [("pending", 0, None)]
    assert db.scalar(select(func.count()).select_from(BulkChunk)) == 0


def test_a_bulk_gone_by_build_time_fails_at_once(
    async_testapp, services, db, alice_bulk, bulk_client, bulk_client_token
):
    async_testapp.get(f"{BASE}/Batch/Bulk/bulk-1", headers=bearer(bulk_client_token), status=202)
    async_testapp.delete(
        f"{BASE}/Authorization/{alice_bulk.authorization_id}", headers=bearer(bulk_client_token), status=204
    )
    db.get(ApplicationInformation, bulk_client.application.id).scopes = [FULL_SCOPE, CLIENT_SCOPE]
    db.flush()
    (outcome,) = build_all(services)
    assert (outcome.state, outcome.error.split(":")[0], jobs(db)[0].attempts) == ("failed", "NotFound", 1)


def test_a_worker_pass_builds_due_bulks(async_testapp, services, alice_bulk, bulk_client_token):
    async_testapp.get(f"{BASE}/Batch/Bulk/bulk-1", headers=bearer(bulk_client_token), status=202)
    assert run_once(services, {}, build_bulks=False).built_bulks == 0
    assert run_once(services, {}).built_bulks == 1
    async_testapp.get(f"{BASE}/Batch/Bulk/bulk-1", headers=bearer(bulk_client_token), status=200)


def test_a_bulk_is_built_and_served_across_connections(fresh_database_url, tmp_path, valid):
    """Outside the test suite's one shared connection: the request, the builder's reads (on SQLite an autocommit
    connection), its chunk transactions and the serving each on connections of their own, as in production."""
    settings = make_settings(tmp_path, fresh_database_url, bulk_async_readings=0)
    services = Services.build(settings)
    migrate.upgrade(services.engine)
    with session_scope(services.sessions) as session:
        client = make_client(session, settings, services.digester, name="Bulk App", scopes=(BULK_SCOPE, CLIENT_SCOPE))
        customer = make_customer(session, services.passwords, "alice")
        build_tree(session, customer)
        authorization = Authorization(
            uuid=uuid.uuid4(),
            kind=AuthorizationKind.CUSTOMER,
            application_id=client.application.id,
            customer_id=customer.id,
            status=AuthorizationStatus.ACTIVE,
            expires_at=int(utcnow().timestamp()) + 86_400,
            grant_type="authorization_code",
            scope=BULK_SCOPE,
        )
        session.add(authorization)
        session.flush()
        session.add(
            Subscription(
                uuid=uuid.uuid4(),
                authorization_id=authorization.id,
                application_id=client.application.id,
                customer_id=customer.id,
                usage_points=list(customer.usage_points),
            )
        )
    testapp = webtest.TestApp(
        create_app(settings, services=services), extra_environ={"REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1"}
    )
    token = testapp.post(
        "/oauth/token",
        {"grant_type": "client_credentials", "scope": CLIENT_SCOPE},
        headers={"Authorization": basic(client.client_id, client.client_secret)},
    ).json["access_token"]
    testapp.get(f"{BASE}/Batch/Bulk/bulk-1", headers=bearer(token), status=202)
    outcomes = BulkBuilder(services, chunk_bytes=1024).build_due()
    served = testapp.get(f"{BASE}/Batch/Bulk/bulk-1", headers=bearer(token), status=200)
    with services.sessions() as session:
        chunks = session.scalar(select(BulkRequest.chunks))
    services.engine.dispose()
    assert [o.state for o in outcomes] == ["ready"] and chunks > 1
    assert entry_kinds(valid(served.body)).count("UsagePoint") == 2


def _run_bulk_command(argv: list[str], environ: dict[str, str]) -> int:
    parser = argparse.ArgumentParser(prog="gateway")
    bulk_command.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    args.environ = environ
    return run_handler(args.handler, args)


def test_bulk_list_shows_jobs_and_their_errors(cli_environ, capsys):
    services = Services.build(Settings.from_env(cli_environ))
    migrate.upgrade(services.engine)
    with session_scope(services.sessions) as session:
        application = make_client(session, services.settings, services.digester, scopes=(BULK_SCOPE,)).application
        session.flush()
        for bulk_id, state in (("bulk-1", "failed"), ("bulk-2", "pending")):
            job, _ = create_bulk_request(
                session, application_id=application.id, bulk_id=bulk_id, query="", estimated_readings=9, now=utcnow()
            )
            job.state, job.last_error = state, ("RuntimeError: disk on fire" if state == "failed" else None)
    services.engine.dispose()
    assert _run_bulk_command(["bulk", "list", "--state", "failed", "--json"], cli_environ) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(j["bulk_id"], j["state"], j["last_error"]) for j in listed] == [
        ("bulk-1", "failed", "RuntimeError: disk on fire")
    ]
    assert _run_bulk_command(["bulk", "list"], cli_environ) == 0
    text = capsys.readouterr().out
    assert "bulk-2" in text and "last error: RuntimeError: disk on fire" in text
