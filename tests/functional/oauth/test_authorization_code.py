"""The authorization_code grant with PKCE through the real app (RFC 6749 §4.1, RFC 7636, RFC 9207)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, update

from gateway.storage.models import Authorization, AuthorizationCode, AuthorizationStatus, OAuthToken
from tests.functional.oauth.helpers import (
    LOOPBACK_REDIRECT,
    OTHER_REDIRECT,
    REDIRECT,
    SCOPE,
    basic,
    pkce_pair,
    query_of,
)

RB = "http://127.0.0.1:8000/DataCustodian/espi/1_1/resource"


def test_authorize_hands_off_to_login_with_a_pending_request(testapp, client, authorize_url):
    _verifier, challenge = pkce_pair()
    response = testapp.get(authorize_url(client.client_id, code_challenge=challenge, code_challenge_method="S256"))
    assert response.status_int == 303
    assert response.headers["Location"].startswith("/login?request=")


def test_code_redeems_for_espi_token_response(testapp, client, obtain_code, redeem, db):
    grant = obtain_code(client)
    assert query_of(grant.location)["state"] == "xyz-state"
    assert query_of(grant.location)["iss"] == "http://127.0.0.1:8000"
    response = redeem(client, grant)
    body = response.json
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == SCOPE
    authorization = db.scalar(select(Authorization).order_by(Authorization.id.desc()))
    assert body["resourceURI"] == f"{RB}/Batch/Subscription/{authorization.subscription.id}"
    assert body["authorizationURI"] == f"{RB}/Authorization/{authorization.id}"
    assert "refresh_token" in body
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"


def test_state_is_echoed_byte_exact(client, obtain_code):
    state = "a b+c/d%e&f=g~ü"
    grant = obtain_code(client, state=state)
    assert query_of(grant.location)["state"] == state


def test_code_replay_is_refused_and_revokes_its_tokens(testapp, client, obtain_code, redeem):
    grant = obtain_code(client)
    first = redeem(client, grant).json
    second = redeem(client, grant, status=400)
    assert second.json["error"] == "invalid_grant"
    status = testapp.get(
        "/DataCustodian/espi/1_1/resource/ReadServiceStatus",
        headers={"Authorization": f"Bearer {first['access_token']}"},
        status=401,
    )
    assert status.status_int == 401
    refreshed = testapp.post(
        "/oauth/token",
        {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        headers={"Authorization": basic(client.client_id, client.client_secret)},
        status=400,
    )
    assert refreshed.json["error"] == "invalid_grant"


def test_expired_code_is_invalid_grant(client, obtain_code, redeem, db):
    grant = obtain_code(client)
    db.execute(update(AuthorizationCode).values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))
    db.flush()
    assert redeem(client, grant, status=400).json["error"] == "invalid_grant"


def test_code_is_bound_to_its_client(client, other_client, obtain_code, redeem):
    grant = obtain_code(client)
    assert redeem(other_client, grant, status=400).json["error"] == "invalid_grant"
    # The rightful client can still redeem it: another client cannot even burn it.
    redeem(client, grant)


def test_redirect_uri_must_match_the_authorization_request(client, obtain_code, redeem):
    grant = obtain_code(client)
    response = redeem(client, grant, redirect_uri=OTHER_REDIRECT, status=(400, 401))
    assert response.json["error"] in ("invalid_grant", "invalid_request")


def test_wrong_verifier_is_invalid_grant(client, obtain_code, redeem):
    grant = obtain_code(client)
    other_verifier, _ = pkce_pair()
    assert redeem(client, grant, code_verifier=other_verifier, status=400).json["error"] == "invalid_grant"


def test_missing_verifier_is_refused(client, obtain_code, redeem):
    grant = obtain_code(client)
    assert redeem(client, grant, code_verifier=None, status=400).json["error"] == "invalid_request"


@pytest.mark.parametrize(
    "params",
    [
        {},  # no challenge at all
        {"code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"},  # method missing (oauthlib: plain)
        {"code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "plain"},
        {"code_challenge": "short", "code_challenge_method": "S256"},
    ],
    ids=["none", "missing-method", "plain", "malformed"],
)
def test_pkce_s256_is_required(testapp, client, authorize_url, params):
    response = testapp.get(authorize_url(client.client_id, **params), status=302)
    query = query_of(response.headers["Location"])
    assert response.headers["Location"].startswith(REDIRECT)
    assert query["error"] == "invalid_request"
    assert query["iss"] == "http://127.0.0.1:8000"
    assert query["state"] == "xyz-state"


def test_pkce_downgrade_is_refused(testapp, db, services, obtain_code, redeem):
    from tests.functional.oauth.helpers import make_client

    lax = make_client(db, services.settings, services.digester, name="Legacy", require_pkce=False)
    grant = obtain_code(lax, pkce=False)
    verifier, _ = pkce_pair()
    response = redeem(lax, grant, code_verifier=verifier, status=400)
    assert response.json["error"] == "invalid_request"


def test_code_without_pkce_for_lax_client_works(db, services, obtain_code, redeem):
    from tests.functional.oauth.helpers import make_client

    lax = make_client(db, services.settings, services.digester, name="Legacy", require_pkce=False)
    grant = obtain_code(lax, pkce=False)
    redeem(lax, grant)


def test_public_client_redeems_with_pkce_only(public_client, obtain_code, redeem):
    grant = obtain_code(public_client)
    body = redeem(public_client, grant).json
    assert "access_token" in body


@pytest.mark.parametrize(
    "redirect_uri",
    [
        REDIRECT + "/x",
        REDIRECT + "?a=1",
        REDIRECT + "#f",
        "https://app.example.com@evil.example/callback",
        "https://APP.example.com/callback",
        REDIRECT + "/",
        "http://app.example.com/callback",
        "https://evil.example/callback",
    ],
)
def test_redirect_uri_must_match_exactly_and_errors_never_redirect(testapp, client, authorize_url, redirect_uri):
    response = testapp.get(authorize_url(client.client_id, redirect_uri=redirect_uri), status=400)
    assert "Location" not in response.headers
    assert response.json["error"] == "invalid_request"


def test_loopback_redirect_may_vary_its_port(testapp, client, authorize_url):
    _, challenge = pkce_pair()
    url = authorize_url(
        client.client_id,
        redirect_uri="http://127.0.0.1:53123/cb",
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    assert testapp.get(url).status_int == 303
    assert LOOPBACK_REDIRECT.endswith(":9000/cb")


def test_unknown_client_gets_an_error_page_not_a_redirect(testapp, authorize_url):
    response = testapp.get(authorize_url("gbc_nobody"), status=400, headers={"Accept": "text/html"})
    assert "Location" not in response.headers
    assert "text/html" in response.content_type


def test_repeated_parameters_are_refused_without_redirect(testapp, client, authorize_url):
    response = testapp.get(authorize_url(client.client_id) + "&state=again", status=400)
    assert "Location" not in response.headers


@pytest.mark.parametrize("response_type", ["token", "code token", "none", "id_token"])
def test_implicit_and_other_response_types_are_off(testapp, client, authorize_url, response_type):
    response = testapp.get(authorize_url(client.client_id, response_type=response_type), status=302)
    assert query_of(response.headers["Location"])["error"] in (
        "unsupported_response_type",
        "unauthorized_client",
    )
    assert "#" not in response.headers["Location"]


def test_invalid_scope_redirects_with_error_and_iss(testapp, client, authorize_url):
    _, challenge = pkce_pair()
    for scope in ("FB=1_3;Bogus=1", "FB=x", "FB=1_3_99", "FB=1_3 FB=4", "IntervalDuration=900"):
        response = testapp.get(
            authorize_url(client.client_id, scope=scope, code_challenge=challenge, code_challenge_method="S256"),
            status=302,
        )
        query = query_of(response.headers["Location"])
        assert query["error"] == "invalid_scope", scope
        assert query["iss"] == "http://127.0.0.1:8000"


def test_scope_beyond_registration_is_invalid_scope(testapp, client, authorize_url):
    _, challenge = pkce_pair()
    response = testapp.get(
        authorize_url(client.client_id, scope="FB=1_3_4_17", code_challenge=challenge, code_challenge_method="S256"),
        status=302,
    )
    assert query_of(response.headers["Location"])["error"] == "invalid_scope"


def test_deny_redirects_with_access_denied_state_and_iss(testapp, client, authorize_url, requests_service, db):
    _, challenge = pkce_pair()
    response = testapp.get(authorize_url(client.client_id, code_challenge=challenge, code_challenge_method="S256"))
    request_id = query_of(response.headers["Location"])["request"]
    location = requests_service.deny(db, request_id)
    assert location.startswith(REDIRECT + "?")
    assert query_of(location) == {
        "error": "access_denied",
        "error_description": "the customer declined the request",
        "state": "xyz-state",
        "iss": "http://127.0.0.1:8000",
    }


def test_granted_scope_may_be_narrower_but_not_wider(client, obtain_code, redeem):
    from gateway.errors import BadRequest

    narrower = "FB=1_3_4;IntervalDuration=900;BlockDuration=monthly;HistoryLength=13"
    grant = obtain_code(client, granted_scope=narrower)
    assert redeem(client, grant).json["scope"] == narrower
    with pytest.raises(BadRequest):
        obtain_code(client, granted_scope="FB=1_3_4_5_13_14_15_39")


def test_approve_refuses_another_customers_usage_points(
    testapp, client, authorize_url, requests_service, db, alice, bob
):
    from gateway.errors import BadRequest

    _, challenge = pkce_pair()
    response = testapp.get(authorize_url(client.client_id, code_challenge=challenge, code_challenge_method="S256"))
    request_id = query_of(response.headers["Location"])["request"]
    with pytest.raises(BadRequest):
        requests_service.approve(db, request_id, alice, [bob.usage_points[0].id])


def test_a_request_is_decided_once(testapp, client, authorize_url, requests_service, db, alice):
    from gateway.errors import Conflict

    _, challenge = pkce_pair()
    response = testapp.get(authorize_url(client.client_id, code_challenge=challenge, code_challenge_method="S256"))
    request_id = query_of(response.headers["Location"])["request"]
    requests_service.deny(db, request_id)
    with pytest.raises(Conflict):
        requests_service.approve(db, request_id, alice, [alice.usage_points[0].id])


def test_tokens_and_codes_are_stored_as_digests(client, obtain_code, redeem, db):
    grant = obtain_code(client)
    body = redeem(client, grant).json
    digests = set(db.scalars(select(OAuthToken.digest))) | set(db.scalars(select(AuthorizationCode.digest)))
    for secret in (grant.code, body["access_token"], body["refresh_token"], client.client_secret):
        assert secret not in digests
        assert all(secret not in digest for digest in digests)


def test_revoked_consent_kills_the_access_token(testapp, client, obtain_code, redeem, db):
    body = redeem(client, obtain_code(client)).json
    db.execute(update(Authorization).values(status=AuthorizationStatus.REVOKED))
    db.flush()
    response = testapp.post(
        "/oauth/token",
        {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        headers={"Authorization": basic(client.client_id, client.client_secret)},
        status=400,
    )
    assert response.json["error"] == "invalid_grant"


def test_expired_requests_and_codes_are_purged(client, obtain_code, db):
    from gateway.oauth.authorize import purge_expired_requests
    from gateway.storage.oauth import PendingAuthorizationRequest

    obtain_code(client)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    assert purge_expired_requests(db, later) == 2
    assert db.scalar(select(PendingAuthorizationRequest)) is None
