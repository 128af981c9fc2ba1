"""The consent journey in a real browser: login, consent with a subset of meters, deny, revoke, history."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from sqlalchemy import select

from gateway.storage.consent import Consent
from gateway.storage.engine import session_scope
from gateway.storage.models import Subscription
from tests.support.live_gateway import PASSWORD, LiveGateway


def _log_in(page, gateway: LiveGateway, **extra: str) -> None:
    url, _ = gateway.authorize_url(**extra)
    page.goto(url)
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/consent?request=*")


def _query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def _grant(page, gateway: LiveGateway) -> None:
    _log_in(page, gateway)
    page.get_by_label("I have read and accept the Terms & Conditions").check()
    page.get_by_role("button", name="Authorize", exact=True).click()
    page.wait_for_url(f"{gateway.fake_app.redirect_uri}*")


def test_login_then_consent_to_a_subset_of_usage_points(page, gateway):
    _log_in(page, gateway, state="browser-state")
    assert page.get_by_role("heading", name="Share your energy data with Energy App?").is_visible()
    assert page.get_by_text("15-minute electricity usage").is_visible()
    page.get_by_label("Alice meter 2").uncheck()
    page.get_by_label("Alice meter 3").uncheck()
    page.get_by_label("I have read and accept the Terms & Conditions").check()
    page.get_by_role("button", name="Authorize", exact=True).click()
    # Chrome applies form-action to the redirect after the POST: the app's origin must be allowed, and it is.
    page.wait_for_url(f"{gateway.fake_app.redirect_uri}*")
    params = _query(page.url)
    with session_scope(gateway.services.sessions) as session:
        consent = session.scalars(select(Consent).order_by(Consent.id.desc()).limit(1)).one()
        subscription = session.get(Subscription, consent.authorization.subscription.id)
        shared = [point.description for point in subscription.usage_points]
    assert (params["state"], "code" in params, shared) == ("browser-state", True, ["Alice meter 1"])
    assert page.csp_violations == []


def test_deny_returns_access_denied_to_the_app(page, gateway):
    _log_in(page, gateway)
    page.get_by_role("button", name="Do not authorize").click()
    page.wait_for_url(f"{gateway.fake_app.redirect_uri}*")
    assert _query(page.url)["error"] == "access_denied"


def test_the_consent_form_works_with_the_keyboard_alone(page, gateway):
    _log_in(page, gateway)
    page.get_by_label("I have read and accept the Terms & Conditions").focus()
    page.keyboard.press("Space")
    page.get_by_role("button", name="Authorize", exact=True).focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"{gateway.fake_app.redirect_uri}*")
    assert "code" in _query(page.url)


def test_dashboard_revoke_with_confirmation(page, gateway):
    _grant(page, gateway)
    page.goto(f"{gateway.base_url}/consents")
    page.get_by_role("link", name="Revoke access for Energy App").first.click()
    assert page.get_by_role("heading", name="Revoke access for Energy App?").is_visible()
    page.get_by_role("button", name="Proceed").click()
    page.wait_for_url("**/consents?revoked=1")
    assert page.get_by_role("status").inner_text().startswith("Access revoked")


def test_history_tab_shows_the_revoked_consent(page, gateway):
    _grant(page, gateway)
    page.goto(f"{gateway.base_url}/consents")
    page.get_by_role("link", name="Revoke access for Energy App").first.click()
    page.get_by_role("button", name="Proceed").click()
    page.get_by_role("link", name="History").click()
    page.wait_for_url("**/consents/history")
    assert page.get_by_text("Revoked", exact=True).first.is_visible()
    page.get_by_text("History of this consent").first.click()
    assert page.get_by_text("Revoked by you").first.is_visible()
