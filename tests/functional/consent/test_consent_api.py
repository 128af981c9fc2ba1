"""The consent API (Open Banking account-access-consent pattern): create, authorise or reject, read, delete, expire
(the consent issue, item 6)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from gateway.errors import Unauthorized
from gateway.oauth.bearer import BearerTokenChecker
from gateway.storage.consent import Consent, ConsentRequest
from gateway.storage.models import Authorization
from tests.functional.oauth.helpers import CLIENT_SCOPE, SCOPE, basic

API = "/oauth/consent-requests"


@pytest.fixture
def client_token(browser, app_client) -> str:
    response = browser.app.post(
        "/oauth/token",
        {"grant_type": "client_credentials", "scope": CLIENT_SCOPE},
        headers={"Authorization": basic(app_client.client_id, app_client.client_secret)},
    )
    return response.json["access_token"]


def _create(browser, token, status=201, **fields):
    body = {"scope": SCOPE, **fields}
    return browser.app.post_json(API, body, headers={"Authorization": f"Bearer {token}"}, status=status)


def _get(browser, token, consent_request_id, status=200):
    return browser.app.get(f"{API}/{consent_request_id}", headers={"Authorization": f"Bearer {token}"}, status=status)


def test_create_answers_awaiting_authorisation_with_an_id(browser, client_token):
    response = _create(browser, client_token)
    assert response.json["status"] == "AwaitingAuthorisation" and response.headers["Location"].endswith(
        response.json["consent_request_id"]
    )


def test_create_needs_a_client_token(browser, app_client):
    response = browser.app.post_json(API, {"scope": SCOPE}, status=401)
    assert "WWW-Authenticate" in response.headers


def test_a_scope_beyond_the_registration_is_refused(browser, client_token):
    assert _create(browser, client_token, status=400, scope="FB=1_3_4_51").status_int == 400


def test_authorising_it_through_the_consent_screen_makes_it_authorised(browser, alice, client_token):
    created = _create(browser, client_token).json
    browser.grant(browser.start(consent_request_id=created["consent_request_id"]))
    shown = _get(browser, client_token, created["consent_request_id"]).json
    assert shown["status"] == "Authorised" and "/Authorization/" in shown["authorization_uri"]


def test_rejecting_it_makes_it_rejected(browser, alice, client_token):
    created = _create(browser, client_token).json
    flow = browser.start(consent_request_id=created["consent_request_id"])
    browser.login(flow)
    browser.decide(flow, "deny")
    assert _get(browser, client_token, created["consent_request_id"]).json["status"] == "Rejected"


def test_delete_by_the_app_revokes_it_and_its_tokens(browser, alice, client_token, db, services):
    created = _create(browser, client_token).json
    flow, params = browser.grant(browser.start(consent_request_id=created["consent_request_id"]))
    tokens = browser.redeem(flow, params["code"])
    browser.app.delete(
        f"{API}/{created['consent_request_id']}",
        headers={"Authorization": f"Bearer {client_token}"},
        status=204,
    )
    with pytest.raises(Unauthorized):
        BearerTokenChecker(services.digester).principal(db, f"Bearer {tokens['access_token']}")
    assert _get(browser, client_token, created["consent_request_id"]).json["status"] == "Revoked"


def test_past_its_expiration_it_is_expired_and_its_tokens_stop(browser, alice, client_token, db, services):
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    created = _create(browser, client_token, expiration_date_time=soon).json
    flow, params = browser.grant(browser.start(consent_request_id=created["consent_request_id"]))
    tokens = browser.redeem(flow, params["code"])
    authorization = db.scalars(select(Authorization).where(Authorization.customer_id == alice.id)).one()
    checker = BearerTokenChecker(services.digester, clock=lambda: dt.datetime.now(dt.UTC) + dt.timedelta(minutes=6))
    with pytest.raises(Unauthorized):
        checker.principal(db, f"Bearer {tokens['access_token']}")
    assert authorization.expires_at <= int((dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)).timestamp())


def test_the_worker_marks_it_expired(browser, alice, client_token, db, services):
    from gateway.consent.lifecycle import expire_due

    created = _create(
        browser,
        client_token,
        expiration_date_time=(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    ).json
    browser.grant(browser.start(consent_request_id=created["consent_request_id"]))
    expire_due(db, services.settings, now=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=6))
    db.flush()
    assert db.get(ConsentRequest, created["consent_request_id"]).status == "Expired"


def test_the_data_window_becomes_the_authorizations_published_period(browser, alice, client_token, db):
    created = _create(browser, client_token, data_from="2025-01-01T00:00:00Z", data_to="2025-07-01T00:00:00Z").json
    browser.grant(browser.start(consent_request_id=created["consent_request_id"]))
    consent = db.scalars(select(Consent)).one()
    assert (
        consent.authorization.published_period_start,
        consent.authorization.published_period_duration,
    ) == (
        int(dt.datetime(2025, 1, 1, tzinfo=dt.UTC).timestamp()),
        181 * 86400,
    )


def test_another_apps_consent_request_is_not_found(browser, client_token, db, services, app):
    from tests.functional.oauth.helpers import make_client

    created = _create(browser, client_token).json
    other = make_client(db, services.settings, services.digester, name="Other App")
    token = browser.app.post(
        "/oauth/token",
        {"grant_type": "client_credentials", "scope": CLIENT_SCOPE},
        headers={"Authorization": basic(other.client_id, other.client_secret)},
    ).json["access_token"]
    assert _get(browser, token, created["consent_request_id"], status=404).status_int == 404


def test_an_authorization_request_naming_an_answered_consent_request_is_refused(browser, alice, client_token):
    created = _create(browser, client_token).json
    browser.grant(browser.start(consent_request_id=created["consent_request_id"]))
    flow = browser.start(consent_request_id=created["consent_request_id"])
    assert browser.consent_page(flow, status=400).status_int == 400
