"""Background access (issue item 7): list offline subscriptions, mint short-lived tokens for at most 5 at once."""

from __future__ import annotations

import time

import pytest

from gateway.storage.models import Authorization, AuthorizationStatus
from tests.functional.oauth.helpers import basic, make_client
from tests.functional.resources.conftest import BASE, FULL_SCOPE, CustomerToken, bearer

OFFLINE = FULL_SCOPE + " offline_access"
LIST = "/oauth/background/subscriptions"
TOKENS = "/oauth/background/tokens"


# FB 37 values the listing refuses (gateway/web/params.py): not digits, negative, zero, longer than 18 digits. A huge
# value that fits in 18 digits is honoured instead (max-results is clamped, start-index pages past the end).
BAD_PAGING = [
    (name, value)
    for name in ("max-results", "start-index")
    for value in ("ten", "1e3", "+1", " 1", "", "-1", "0", "1" + "0" * 18, "9" * 40)
]


def mint(testapp, token: str, ids, status: int = 200):
    return testapp.post_json(TOKENS, {"subscription_ids": ids}, headers=bearer(token), status=status)


def expire(db, consent: CustomerToken) -> None:
    """Let the consent's grant run out while it stays active: its Authorization's expires_at is in the past."""
    authorization = db.get(Authorization, consent.authorization_id)
    assert authorization.status == AuthorizationStatus.ACTIVE
    authorization.expires_at = int(time.time()) - 60
    db.flush()


def test_lists_only_offline_active_consents(testapp, tree, customer_token, client_token):
    offline = customer_token(scope=OFFLINE)
    customer_token()  # online only
    listed = testapp.get(LIST, headers=bearer(client_token)).json
    assert [s["subscription_id"] for s in listed["subscriptions"]] == [offline.subscription_id]
    assert listed["subscriptions"][0]["resourceURI"].endswith(f"/Batch/Subscription/{offline.subscription_id}")
    assert listed["total"] == 1


def test_listing_pages(testapp, tree, customer_token, client_token):
    ids = [customer_token(scope=OFFLINE).subscription_id for _ in range(3)]
    first = testapp.get(LIST, {"max-results": "2"}, headers=bearer(client_token)).json
    assert [s["subscription_id"] for s in first["subscriptions"]] == ids[:2] and "start-index=3" in first["next"]
    rest = testapp.get(first["next"].removeprefix("http://127.0.0.1:8000"), headers=bearer(client_token)).json
    assert [s["subscription_id"] for s in rest["subscriptions"]] == ids[2:] and "next" not in rest


def test_minted_token_reads_its_subscription_only(testapp, tree, customer_token, client_token, valid):
    offline = customer_token(scope=OFFLINE)
    other = customer_token(scope=OFFLINE)
    (issued,) = mint(testapp, client_token, [offline.subscription_id]).json["tokens"]
    assert issued["expires_in"] <= 300 and issued["token_type"] == "Bearer"
    valid(testapp.get(offline.batch(), headers=bearer(issued["access_token"])).body)
    testapp.get(other.batch(), headers=bearer(issued["access_token"]), status=403)


def test_never_for_revoked_or_online_consents(testapp, tree, customer_token, client_token):
    revoked = customer_token(scope=OFFLINE)
    online = customer_token()
    testapp.delete(f"{BASE}/Authorization/{revoked.authorization_id}", headers=bearer(client_token), status=204)
    body = mint(testapp, client_token, [revoked.subscription_id, online.subscription_id, 999999]).json
    assert body["tokens"] == []
    assert {e["subscription_id"] for e in body["errors"]} == {revoked.subscription_id, online.subscription_id, 999999}
    assert {e["error"] for e in body["errors"]} == {"unavailable"}


def test_expired_consents_are_never_listed(testapp, db, tree, customer_token, client_token):
    live = customer_token(scope=OFFLINE)
    expired = customer_token(scope=OFFLINE)
    expire(db, expired)
    listed = testapp.get(LIST, headers=bearer(client_token)).json
    assert [s["subscription_id"] for s in listed["subscriptions"]] == [live.subscription_id]
    assert listed["total"] == 1


def test_an_expired_consent_gets_no_token_and_the_answer_a_revoked_one_gets(
    testapp, db, tree, customer_token, client_token
):
    live = customer_token(scope=OFFLINE)
    expired = customer_token(scope=OFFLINE)
    revoked = customer_token(scope=OFFLINE)
    expire(db, expired)
    testapp.delete(f"{BASE}/Authorization/{revoked.authorization_id}", headers=bearer(client_token), status=204)
    body = mint(testapp, client_token, [live.subscription_id, expired.subscription_id, revoked.subscription_id]).json
    assert [t["subscription_id"] for t in body["tokens"]] == [live.subscription_id]
    refusals = {error.pop("subscription_id"): error for error in body["errors"]}
    assert refusals[expired.subscription_id] == refusals[revoked.subscription_id]


@pytest.mark.parametrize(("name", "value"), BAD_PAGING)
def test_bad_paging_values_are_400_naming_the_parameter(testapp, client_token, name, value):
    response = testapp.get(LIST, {name: value}, headers=bearer(client_token), status=400)
    assert name in response.json["description"]


@pytest.mark.parametrize("name", ["max-results", "start-index"])
def test_huge_paging_values_within_18_digits_are_honoured(testapp, tree, customer_token, client_token, name):
    offline = customer_token(scope=OFFLINE)
    listed = testapp.get(LIST, {name: "9" * 18}, headers=bearer(client_token)).json
    expected = [offline.subscription_id] if name == "max-results" else []
    assert ([s["subscription_id"] for s in listed["subscriptions"]], listed["total"]) == (expected, 1)


def test_minted_token_dies_with_the_consent(testapp, tree, customer_token, client_token):
    offline = customer_token(scope=OFFLINE)
    (issued,) = mint(testapp, client_token, [offline.subscription_id]).json["tokens"]
    testapp.delete(f"{BASE}/Authorization/{offline.authorization_id}", headers=bearer(client_token), status=204)
    testapp.get(offline.batch(), headers=bearer(issued["access_token"]), status=401)


def test_at_most_five_per_request(testapp, tree, customer_token, client_token):
    ids = [customer_token(scope=OFFLINE).subscription_id for _ in range(6)]
    assert "at most 5" in mint(testapp, client_token, ids, status=400).json["description"]
    assert len(mint(testapp, client_token, ids[:5]).json["tokens"]) == 5


@pytest.mark.parametrize("body", [{"subscription_ids": []}, {"subscription_ids": ["x"]}, {"subscription_ids": 3}, {}])
def test_bad_requests(testapp, client_token, body):
    testapp.post_json(TOKENS, body, headers=bearer(client_token), status=400)


def test_form_body_works(testapp, tree, customer_token, client_token):
    offline = customer_token(scope=OFFLINE)
    response = testapp.post(TOKENS, {"subscription_id": str(offline.subscription_id)}, headers=bearer(client_token))
    assert len(response.json["tokens"]) == 1


def test_another_apps_subscriptions_are_unavailable(testapp, db, services, tree, customer_token):
    offline = customer_token(scope=OFFLINE)
    other = make_client(db, services.settings, services.digester, name="Other")
    other_token = testapp.post(
        "/oauth/token",
        {"grant_type": "client_credentials", "scope": "FB=3_34_35_36_40_41"},
        headers={"Authorization": basic(other.client_id, other.client_secret)},
    ).json["access_token"]
    assert testapp.get(LIST, headers=bearer(other_token)).json["subscriptions"] == []
    assert mint(testapp, other_token, [offline.subscription_id]).json["tokens"] == []


@pytest.mark.parametrize("kind", ["none", "customer", "registration", "no_fb40"])
def test_matrix(testapp, db, services, tree, customer_token, app_client, kind):
    if kind == "no_fb40":
        testapp_token = testapp.post(
            "/oauth/token",
            {"grant_type": "client_credentials", "scope": "FB=3_34_35"},
            headers={"Authorization": basic(app_client.client_id, app_client.client_secret)},
        )
        token = testapp_token.json["access_token"]
    else:
        token = {
            "none": None,
            "customer": customer_token().token,
            "registration": app_client.registration_access_token,
        }[kind]
    headers = bearer(token) if token else {}
    status = 401 if token is None else 403
    testapp.get(LIST, headers=headers, status=status)
    testapp.post_json(TOKENS, {"subscription_ids": [1]}, headers=headers, status=status)


def test_metadata_advertises_the_background_access_endpoints(testapp):
    metadata = testapp.get("/.well-known/oauth-authorization-server").json
    assert metadata["background_subscriptions_endpoint"] == "http://127.0.0.1:8000/oauth/background/subscriptions"
    assert metadata["background_token_endpoint"] == "http://127.0.0.1:8000/oauth/background/tokens"
