"""The password grant for a customer's own self-access client (RFC 6749 §4.3; checklist row 22)."""

from __future__ import annotations

from sqlalchemy import select

from gateway.storage.models import Authorization, ClientRole
from tests.functional.oauth.helpers import PASSWORD, SCOPE, WIDE_SCOPE, basic, make_client

RB = "http://127.0.0.1:8000/DataCustodian/espi/1_1/resource"


def password_token(testapp, client, username, password, *, status=200, **form):
    data = {"grant_type": "password", "username": username, "password": password, "scope": SCOPE, **form}
    return testapp.post(
        "/oauth/token",
        data,
        headers={"Authorization": basic(client.client_id, client.client_secret)},
        status=status,
    )


def test_self_access_client_gets_a_token_for_all_its_owners_usage_points(testapp, self_access_client, alice, db):
    body = password_token(testapp, self_access_client, "alice", PASSWORD).json
    authorization = db.scalar(select(Authorization).where(Authorization.grant_type == "password"))
    assert body["resourceURI"] == f"{RB}/Batch/Subscription/{authorization.subscription.id}"
    assert body["authorizationURI"] == f"{RB}/Authorization/{authorization.id}"
    assert {point.id for point in authorization.subscription.usage_points} == {p.id for p in alice.usage_points}
    assert "refresh_token" in body


def test_self_access_client_of_alice_gets_nothing_for_bob(testapp, self_access_client, bob):
    response = password_token(testapp, self_access_client, "bob", PASSWORD, status=400)
    assert response.json["error"] == "invalid_grant"


def test_unknown_user_and_wrong_password_get_identical_answers(testapp, self_access_client, alice):
    unknown = password_token(testapp, self_access_client, "nobody", PASSWORD, status=400)
    wrong = password_token(testapp, self_access_client, "alice", "not the password", status=400)
    assert unknown.body == wrong.body


def test_client_without_the_grant_is_refused_before_the_password(testapp, client, alice):
    right = password_token(testapp, client, "alice", PASSWORD, status=400)
    wrong = password_token(testapp, client, "alice", "nope", status=400)
    assert right.json["error"] == wrong.json["error"] == "unauthorized_client"
    assert right.body == wrong.body


def test_failures_are_throttled_per_user(testapp, self_access_client, alice):
    for _ in range(10):
        password_token(testapp, self_access_client, "alice", "nope", status=400)
    response = password_token(testapp, self_access_client, "alice", PASSWORD, status=429)
    assert int(response.headers["Retry-After"]) > 0


def test_failures_are_throttled_per_client(testapp, db, services, alice):
    shared = make_client(
        db, services.settings, services.digester, grant_types=("password",), roles=(ClientRole.SELF_ACCESS,)
    )
    for number in range(50):
        password_token(testapp, shared, f"user{number}", "nope", status=400)
    assert password_token(testapp, shared, "alice", PASSWORD, status=429).headers["Retry-After"]


def test_password_tokens_refresh(testapp, self_access_client, alice):
    body = password_token(testapp, self_access_client, "alice", PASSWORD).json
    refreshed = testapp.post(
        "/oauth/token",
        {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        headers={"Authorization": basic(self_access_client.client_id, self_access_client.client_secret)},
    ).json
    assert refreshed["resourceURI"] == body["resourceURI"]


def test_scope_beyond_registration_is_invalid_scope(testapp, self_access_client, alice):
    response = password_token(testapp, self_access_client, "alice", PASSWORD, scope="FB=1_3_17", status=400)
    assert response.json["error"] == "invalid_scope"
    assert WIDE_SCOPE
