"""Regressions for the security review: hostile forms, client lockout, odd characters, refused approvals."""

from __future__ import annotations

import time
from urllib.parse import quote

import pytest
from sqlalchemy import func, select

from gateway.errors import BadRequest
from gateway.storage.models import ApplicationInformation, ApplicationStatus, Authorization, Subscription
from gateway.storage.oauth import PendingAuthorizationRequest
from tests.functional.oauth.helpers import CLIENT_SCOPE, basic, pkce_pair, query_of

CC = {"grant_type": "client_credentials", "scope": CLIENT_SCOPE}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/revoke", "/oauth/introspect"])
def test_a_form_with_thousands_of_names_is_refused_at_once(testapp, path):
    body = "&".join(f"{number:x}=" for number in range(12_000))
    body = body[: body.rfind("&", 0, 64 * 1024)]
    started = time.perf_counter()
    response = testapp.post(path, body, headers=FORM, status=400)
    assert (response.json["error"], time.perf_counter() - started < 1.0) == ("invalid_request", True)


def test_a_correct_secret_from_another_source_works_after_a_strangers_failures(testapp, client):
    stranger = {"REMOTE_ADDR": "203.0.113.66"}
    for _ in range(10):
        testapp.post(
            "/oauth/token",
            CC,
            headers={"Authorization": basic(client.client_id, "guess")},
            extra_environ=stranger,
            expect_errors=True,
        )
    testapp.post(
        "/oauth/token",
        CC,
        headers={"Authorization": basic(client.client_id, client.client_secret)},
        extra_environ={"REMOTE_ADDR": "198.51.100.7"},
        status=200,
    )


def test_the_guessing_source_stays_blocked_even_with_the_correct_secret(testapp, client):
    guesser = {"REMOTE_ADDR": "203.0.113.66"}
    for _ in range(10):
        testapp.post(
            "/oauth/token",
            CC,
            headers={"Authorization": basic(client.client_id, "guess")},
            extra_environ=guesser,
            expect_errors=True,
        )
    testapp.post(
        "/oauth/token",
        CC,
        headers={"Authorization": basic(client.client_id, client.client_secret)},
        extra_environ=guesser,
        status=429,
    )


@pytest.mark.parametrize("state", ["a|b[c]", "x y+z/=&?#%41", "ünï{}<>\"'`^\\"])
def test_state_with_unusual_characters_round_trips_byte_exact(client, obtain_code, state):
    grant = obtain_code(client, state=state)
    assert query_of(grant.location)["state"] == state


def _authorize_with_raw_state(authorize_url, client, raw_state: str) -> str:
    _verifier, challenge = pkce_pair()
    url = authorize_url(client.client_id, state=None, code_challenge=challenge, code_challenge_method="S256")
    return f"{url}&state={raw_state}"


def test_authorize_with_raw_special_characters_keeps_state_exact(testapp, db, client, authorize_url):
    response = testapp.get(_authorize_with_raw_state(authorize_url, client, "a|b[c]"), status=303)
    pending = db.get(PendingAuthorizationRequest, query_of(response.headers["Location"])["request"])
    assert pending.state == "a|b[c]"


def test_authorize_with_a_malformed_escape_keeps_it_as_text(testapp, db, client, authorize_url):
    response = testapp.get(_authorize_with_raw_state(authorize_url, client, "%zz"), status=303)
    pending = db.get(PendingAuthorizationRequest, query_of(response.headers["Location"])["request"])
    assert pending.state == "%zz"


@pytest.mark.parametrize("scope", ["a|b", "%zz"])
def test_token_body_with_odd_characters_reaches_the_grant(testapp, client, scope):
    response = testapp.post(
        "/oauth/token",
        f"grant_type=client_credentials&scope={scope}",
        headers={"Authorization": basic(client.client_id, client.client_secret), **FORM},
        status=400,
    )
    assert response.json["error"] == "invalid_scope"


def _pending_request(testapp, authorize_url, client) -> str:
    _verifier, challenge = pkce_pair()
    response = testapp.get(
        authorize_url(client.client_id, code_challenge=challenge, code_challenge_method="S256"), status=303
    )
    return query_of(response.headers["Location"])["request"]


def _customer_rows(db, model, alice) -> int:
    return db.scalar(select(func.count()).select_from(model).where(model.customer_id == alice.id))


def test_approval_for_a_revoked_application_writes_nothing(testapp, db, requests_service, authorize_url, alice, client):
    request_id = _pending_request(testapp, authorize_url, client)
    db.get(ApplicationInformation, client.application.id).status = ApplicationStatus.REVOKED
    db.flush()
    with pytest.raises(BadRequest):
        requests_service.approve(db, request_id, alice, [point.id for point in alice.usage_points])
    assert (_customer_rows(db, Authorization, alice), db.get(PendingAuthorizationRequest, request_id).decided_at) == (
        0,
        None,
    )


def test_approval_refused_by_oauthlib_rolls_back_its_writes(
    testapp, db, requests_service, authorize_url, alice, client
):
    request_id = _pending_request(testapp, authorize_url, client)
    pending = db.get(PendingAuthorizationRequest, request_id)
    # As if the request had changed under the customer: oauthlib now refuses it as a fatal client error.
    pending.request_uri = pending.request_uri.replace(quote(client.client_id), "no-such-client")
    db.flush()
    with pytest.raises(BadRequest):
        requests_service.approve(db, request_id, alice, [point.id for point in alice.usage_points])
    assert (
        _customer_rows(db, Authorization, alice),
        _customer_rows(db, Subscription, alice),
        db.get(PendingAuthorizationRequest, request_id).decided_at,
    ) == (0, 0, None)
