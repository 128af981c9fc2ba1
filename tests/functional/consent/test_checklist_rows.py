"""Security checklist rows 11 to 17, 21 and 37 (the consent-related ones), each a black-box test against the real
gateway under gunicorn on 127.0.0.1 (shared/SECURITY-CHECKLIST.md)."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import select, update

from gateway.errors import Unauthorized
from gateway.oauth.bearer import BearerTokenChecker
from gateway.outbox.worker import run_once
from gateway.storage.consent import Consent
from gateway.storage.engine import session_scope
from gateway.storage.models import OAuthToken, RetailCustomer
from tests.conftest import EmptyDatabases
from tests.support.live_gateway import SCOPE, LiveBrowser, LiveGateway, live_gateway


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, empty_databases: EmptyDatabases) -> Iterator[LiveGateway]:
    with live_gateway(tmp_path_factory.mktemp("rows"), database_url=empty_databases.new("rows")) as running:
        yield running


@pytest.fixture
def browser(gateway: LiveGateway) -> LiveBrowser:
    return LiveBrowser(gateway)


def _query(location: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query, keep_blank_values=True).items()}


def _token_is_refused(gateway: LiveGateway, access_token: str) -> bool:
    with session_scope(gateway.services.sessions) as session:
        try:
            BearerTokenChecker(gateway.services.digester).principal(session, f"Bearer {access_token}")
        except Unauthorized:
            return True
    return False


def _introspect(gateway: LiveGateway, token: str) -> dict[str, object]:
    response = requests.post(
        f"{gateway.base_url}/oauth/introspect",
        data={"token": token},
        headers={"Authorization": gateway.basic()},
        timeout=10,
    )
    return dict(response.json())


def test_row_11_csrf_state_echoed_and_forms_bound_to_the_session(gateway, browser):
    state = "a b+c/ä=&%"
    request_id, _ = browser.start(state=state)
    assert browser.login(request_id).status_code == 303
    _, form = browser.consent_form(request_id)
    other = LiveBrowser(gateway)
    other.login(username="bob", password="bob-green-button")
    foreign_token = other.csrf(other.get("/consents"))
    refused = [
        browser.post("/consent", {k: v for k, v in form.items() if k != "csrf_token"}),
        browser.post("/consent", {**form, "csrf_token": "forged"}),
        browser.post("/consent", {**form, "csrf_token": foreign_token}),
        other.post("/consent", form),  # another session's cookie with this session's token
    ]
    assert [(r.status_code, "Location" in r.headers) for r in refused] == [(403, False)] * 4
    granted = browser.post("/consent", form)
    assert _query(granted.headers["Location"])["state"] == state
    login_without_token = LiveBrowser(gateway).post("/login", {"username": "alice", "password": "x"})
    assert login_without_token.status_code == 403


def test_row_12_consent_form_cannot_be_tampered_with(gateway, browser):
    request_id, _ = browser.start()
    browser.login(request_id)
    _, form = browser.consent_form(request_id)
    tampered = [
        {**form, "client_id": "someone-else"},
        {**form, "redirect_uri": "https://evil.example.com/cb"},
        {**form, "scope": "FB=1_3_4_5_13_14_15_39_51"},
        {**form, "request": "not-the-request-id"},
    ]
    statuses = [browser.post("/consent", data).status_code for data in tampered]
    with session_scope(gateway.services.sessions) as session:
        bob_point = session.scalar(select(RetailCustomer).where(RetailCustomer.username == "bob")).usage_points[0].id
    foreign_point = browser.post("/consent", {**form, "usage_point": [str(bob_point)]})
    assert statuses == [400, 400, 400, 404] and foreign_point.status_code == 400
    # The untampered decision still works and grants exactly the requested scope (⊆ requested ∩ registered).
    location = browser.post("/consent", form).headers["Location"]
    assert "code" in _query(location)


def test_row_13_no_framing(gateway, browser):
    request_id, _ = browser.start()
    pages = [browser.get(f"/login?request={request_id}")]
    browser.login(request_id)
    pages += [
        browser.get(f"/consent?request={request_id}"),
        browser.get("/consents"),
        browser.get("/consents/history"),
    ]
    assert all(
        "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
        and page.headers["X-Frame-Options"] == "DENY"
        for page in pages
    )


def test_row_14_no_307_after_a_credentials_post(gateway, browser):
    request_id, _ = browser.start()
    login = browser.login(request_id)
    consent = browser.decide(request_id)
    assert (login.status_code, consent.status_code) == (303, 303)


def test_row_15_no_referrer_leaks_and_no_third_party_resources(gateway, browser):
    request_id, _ = browser.start()
    login_page = browser.get(f"/login?request={request_id}")
    browser.login(request_id)
    consent_page = browser.get(f"/consent?request={request_id}")
    for page in (login_page, consent_page):
        assert page.headers["Referrer-Policy"] == "no-referrer"
        resources = re.findall(r'<(?:link|script|img|iframe)[^>]+(?:src|href)="([^"]+)"', page.text)
        assert resources and all(url.startswith("/") and not url.startswith("//") for url in resources)
        assert "'unsafe-inline'" not in page.headers["Content-Security-Policy"]


def test_row_16_no_cors_on_the_authorization_endpoint(gateway, browser):
    url, _ = gateway.authorize_url()
    response = browser.get(url, headers={"Origin": "https://evil.example.com"})
    preflight = requests.options(
        url,
        headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "GET"},
        timeout=10,
    )
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Origin" not in preflight.headers


def test_row_17_success_and_error_redirects_carry_iss(gateway, browser):
    request_id, _ = browser.start()
    browser.login(request_id)
    success = _query(browser.decide(request_id).headers["Location"])
    denied_id, _ = browser.start()
    error = _query(browser.decide(denied_id, "deny").headers["Location"])
    assert success["iss"] == error["iss"] == gateway.base_url and error["error"] == "access_denied"


def test_row_21_refresh_dies_with_the_consent_the_password_or_idleness(gateway, browser):
    def refresh(token: str) -> str:
        return str(gateway.token_request(grant_type="refresh_token", refresh_token=token).json().get("error"))

    revoked = browser.grant_and_redeem()
    consent_id = _latest_consent(gateway)
    page = browser.get(f"/consents/{consent_id}/revoke")
    browser.post(f"/consents/{consent_id}/revoke", {"csrf_token": browser.csrf(page)})

    after_password = browser.grant_and_redeem()
    with session_scope(gateway.services.sessions) as session:
        alice = session.scalar(select(RetailCustomer).where(RetailCustomer.username == "alice"))
        previous = alice.password_changed_at
        alice.password_changed_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)

    idle = browser.grant_and_redeem()
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=400)
    with session_scope(gateway.services.sessions) as session:
        session.execute(
            update(OAuthToken)
            .where(OAuthToken.digest == gateway.services.digester.digest(idle["refresh_token"]))
            .values(issued_at=old, last_used_at=old)
        )
    results = [refresh(revoked["refresh_token"]), refresh(after_password["refresh_token"])]
    with session_scope(gateway.services.sessions) as session:
        session.scalar(select(RetailCustomer).where(RetailCustomer.username == "alice")).password_changed_at = previous
    results.append(refresh(idle["refresh_token"]))
    assert results == ["invalid_grant"] * 3


def _latest_consent(gateway: LiveGateway) -> str:
    with session_scope(gateway.services.sessions) as session:
        return session.scalars(select(Consent.public_id).order_by(Consent.id.desc()).limit(1)).one()


def test_row_37_dashboard_revoke_kills_everything_at_once(gateway, browser):
    tokens = browser.grant_and_redeem()
    consent_id = _latest_consent(gateway)
    confirmation = browser.get(f"/consents/{consent_id}/revoke")
    assert "Proceed" in confirmation.text
    gateway.fake_app.notifications.clear()
    assert browser.post(f"/consents/{consent_id}/revoke", {"csrf_token": browser.csrf(confirmation)}).status_code == 303
    refresh = gateway.token_request(grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    history = browser.get("/consents/history").text
    run_once(gateway.services)
    assert _token_is_refused(gateway, tokens["access_token"])
    assert refresh.json()["error"] == "invalid_grant"
    assert _introspect(gateway, tokens["access_token"]) == {"active": False}
    assert consent_id in history and "Revoked" in history
    assert _notified(gateway, tokens["authorizationURI"])


def _notified(gateway: LiveGateway, url: str, timeout: float = 15.0) -> bool:
    """True once a BatchList naming ``url`` reached the app. The served gateway runs its own outbox worker, which may
    have leased the message before this test's ``run_once``: then it is delivered by that worker, a moment later."""
    deadline = time.monotonic() + timeout
    while not any(url.encode() in body for body in gateway.fake_app.notifications):
        if time.monotonic() > deadline:
            return False
        run_once(gateway.services)
        time.sleep(0.1)
    return True


def test_row_37_api_delete_kills_everything_at_once(gateway, browser):
    client_token = gateway.client_token()
    headers = {"Authorization": f"Bearer {client_token}"}
    created = requests.post(
        f"{gateway.base_url}/oauth/consent-requests", json={"scope": SCOPE}, headers=headers, timeout=10
    )
    consent_request_id = created.json()["consent_request_id"]
    tokens = browser.grant_and_redeem(consent_request_id=consent_request_id)
    deleted = requests.delete(
        f"{gateway.base_url}/oauth/consent-requests/{consent_request_id}", headers=headers, timeout=10
    )
    shown = requests.get(f"{gateway.base_url}/oauth/consent-requests/{consent_request_id}", headers=headers, timeout=10)
    refresh = gateway.token_request(grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert deleted.status_code == 204 and shown.json()["status"] == "Revoked"
    assert _token_is_refused(gateway, tokens["access_token"]) and refresh.json()["error"] == "invalid_grant"
    assert _introspect(gateway, tokens["access_token"]) == {"active": False}
