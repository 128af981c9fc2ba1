"""``Batch/Bulk/{bulkId}`` (FB 35): the app's subscriptions whose scope carries BR={bulkId}, each with its own grant."""

from __future__ import annotations

import pytest

from tests.functional.oauth.helpers import CLIENT_SCOPE, basic, make_client
from tests.functional.resources.conftest import (
    ATOM,
    BASE,
    FULL_SCOPE,
    bearer,
    entry_kinds,
    links,
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
