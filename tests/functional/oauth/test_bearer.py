"""The bearer principal that ESPI resources build on (RFC 6750; ESPI-NOTES §3): one kind per token, checked live."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import update

from gateway.errors import Forbidden, Unauthorized
from gateway.oauth.bearer import BearerTokenChecker
from gateway.oauth.scope import parse_scope
from gateway.storage.models import Authorization, AuthorizationStatus, ClientRole, OAuthToken
from tests.functional.oauth.helpers import CLIENT_SCOPE, PASSWORD, SCOPE, basic, make_client


@pytest.fixture
def checker(services) -> BearerTokenChecker:
    return BearerTokenChecker(services.digester)


def client_token(testapp, client) -> str:
    return testapp.post(
        "/oauth/token",
        {"grant_type": "client_credentials", "scope": CLIENT_SCOPE},
        headers={"Authorization": basic(client.client_id, client.client_secret)},
    ).json["access_token"]


def test_customer_token_principal(checker, db, client, obtain_code, redeem, alice):
    body = redeem(client, obtain_code(client)).json
    principal = checker.principal(db, f"Bearer {body['access_token']}")
    assert principal.kind == "customer"
    assert principal.customer_id == alice.id
    assert body["resourceURI"].endswith(f"/Batch/Subscription/{principal.subscription_id}")
    assert body["authorizationURI"].endswith(f"/Authorization/{principal.authorization_id}")
    assert principal.scope is not None and principal.scope.has(1, 3, 4)
    assert principal.scope_text == SCOPE
    assert principal.client_id == client.client_id


def test_client_token_principal_carries_no_customer(checker, db, testapp, client):
    principal = checker.principal(db, f"Bearer {client_token(testapp, client)}")
    assert principal.kind == "client"
    assert principal.customer_id is None and principal.subscription_id is None


def test_registration_token_principal(checker, db, client):
    principal = checker.principal(db, f"Bearer {client.registration_access_token}")
    assert principal.kind == "registration"
    assert principal.application_id == client.application.id


@pytest.mark.parametrize(("role", "kind"), [(ClientRole.CUSTODIAN_ADMIN, "custodian"), (ClientRole.UPLOAD, "upload")])
def test_operator_token_principals(checker, db, services, testapp, role, kind):
    operator = make_client(db, services.settings, services.digester, roles=(role,))
    assert checker.principal(db, f"Bearer {client_token(testapp, operator)}").kind == kind


def test_password_token_principal_is_the_owners(checker, db, testapp, self_access_client, alice):
    body = testapp.post(
        "/oauth/token",
        {"grant_type": "password", "username": "alice", "password": PASSWORD, "scope": SCOPE},
        headers={"Authorization": basic(self_access_client.client_id, self_access_client.client_secret)},
    ).json
    principal = checker.principal(db, f"Bearer {body['access_token']}")
    assert principal.kind == "customer" and principal.customer_id == alice.id


def test_wrong_kind_is_403(checker, db, client):
    principal = checker.principal(db, f"Bearer {client.registration_access_token}")
    with pytest.raises(Forbidden):
        principal.require("client", "customer")
    assert principal.require("registration") is principal


def test_missing_function_block_is_403(checker, db, testapp, client):
    principal = checker.principal(db, f"Bearer {client_token(testapp, client)}")
    with pytest.raises(Forbidden):
        principal.require_blocks(4)


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Bearer a b", "Basic abc", "bearer-nope", "Bearer " + "x" * 600]
)
def test_malformed_or_missing_header_is_401(checker, db, header):
    with pytest.raises(Unauthorized) as raised:
        checker.principal(db, header)
    assert raised.value.headers["WWW-Authenticate"].startswith("Bearer")


def test_token_elsewhere_is_401_even_with_a_header(checker, db, testapp, client):
    token = client_token(testapp, client)
    with pytest.raises(Unauthorized):
        checker.principal(db, f"Bearer {token}", token_elsewhere=True)


def test_refresh_token_is_not_a_bearer_token(checker, db, client, obtain_code, redeem):
    body = redeem(client, obtain_code(client)).json
    with pytest.raises(Unauthorized):
        checker.principal(db, f"Bearer {body['refresh_token']}")


def test_expired_token_is_401(checker, db, testapp, client):
    token = client_token(testapp, client)
    db.execute(update(OAuthToken).values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))
    db.flush()
    with pytest.raises(Unauthorized):
        checker.principal(db, f"Bearer {token}")


def test_revoked_consent_is_401_on_the_next_request(checker, db, client, obtain_code, redeem):
    body = redeem(client, obtain_code(client)).json
    checker.principal(db, f"Bearer {body['access_token']}")
    db.execute(update(Authorization).values(status=AuthorizationStatus.REVOKED))
    db.flush()
    with pytest.raises(Unauthorized):
        checker.principal(db, f"Bearer {body['access_token']}")


def test_revoked_application_is_401(checker, db, testapp, client):
    token = client_token(testapp, client)
    client.application.status = 4
    db.flush()
    with pytest.raises(Unauthorized):
        checker.principal(db, f"Bearer {token}")


def test_missing_grant_type_is_a_json_error(testapp, client):
    response = testapp.post(
        "/oauth/token",
        {"scope": CLIENT_SCOPE},
        headers={"Authorization": basic(client.client_id, client.client_secret)},
        status=400,
    )
    assert response.json["error"] in ("unsupported_grant_type", "invalid_request")


def test_customer_principal_carries_its_consent_grant(checker, db, client, obtain_code, redeem):
    body = redeem(client, obtain_code(client)).json
    principal = checker.principal(db, f"Bearer {body['access_token']}")
    assert principal.grant is not None
    assert principal.grant.subscription_id == principal.subscription_id
    assert principal.grant.customer_id == principal.customer_id
    assert principal.grant.function_blocks == parse_scope(SCOPE).function_blocks


def test_other_principals_carry_no_grant(checker, db, testapp, client):
    principal, usage_point = checker.principal_and_usage_point(db, f"Bearer {client_token(testapp, client)}", 1)
    assert principal.grant is None and usage_point is None


def test_the_usage_point_of_the_subscription_comes_with_the_token(checker, db, client, obtain_code, redeem, alice):
    body = redeem(client, obtain_code(client)).json
    point = alice.usage_points[1]
    principal, row = checker.principal_and_usage_point(db, f"Bearer {body['access_token']}", point.id)
    assert principal.kind == "customer"
    assert row is not None and (row.id, row.uuid, row.customer_id) == (point.id, point.uuid, alice.id)


def test_a_usage_point_outside_the_subscription_does_not(checker, db, client, obtain_code, redeem, bob):
    body = redeem(client, obtain_code(client)).json
    principal, row = checker.principal_and_usage_point(db, f"Bearer {body['access_token']}", bob.usage_points[0].id)
    assert principal.kind == "customer" and row is None
