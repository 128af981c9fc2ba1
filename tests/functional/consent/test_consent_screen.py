"""The consent screen: plain language, a chosen subset of meters, terms, authorize or deny (the consent issue, items
2 and 3)."""

from __future__ import annotations

from sqlalchemy import select

from gateway.consent.lifecycle import TERMS_VERSION
from gateway.storage.consent import Consent, ConsentEvent, ConsentStatus
from gateway.storage.models import Authorization, AuthorizationStatus, Subscription
from gateway.storage.outbox import OutboxMessage
from tests.functional.oauth.helpers import REDIRECT


def _logged_in_flow(browser):
    flow = browser.start()
    browser.login(flow)
    return flow


def test_the_page_says_what_is_asked_in_plain_language(browser, alice):
    page = browser.consent_page(_logged_in_flow(browser))
    text = page.html.get_text(" ")
    assert all(
        phrase in text
        for phrase in (
            "Energy App",
            "Charts your usage.",
            "15-minute electricity usage",
            "up to 13 months of past data",
            "Alice meter 1",
            "Terms & Conditions",
            "Authorize",
            "Do not authorize",
        )
    )


def test_every_usage_point_is_preselected(browser, alice):
    form = browser.consent_page(_logged_in_flow(browser)).forms["consent-form"]
    boxes = [form.get("usage_point", index=i) for i in range(3)]
    assert all(box.checked for box in boxes)


def test_the_registered_logo_is_not_hotlinked(browser, alice):
    page = browser.consent_page(_logged_in_flow(browser))
    assert "cdn.example.com" not in page.text and page.html.find("img") is None


def test_grant_redirects_to_the_app_with_code_state_and_iss(browser, alice, settings):
    flow, params = browser.grant()
    assert params["state"] == flow.state and params["iss"] == settings.issuer and params["code"]


def test_grant_of_a_subset_shares_only_the_chosen_usage_points(browser, alice, db):
    chosen = alice.usage_points[1].id
    browser.grant(keep=[chosen])
    subscription = db.scalars(select(Subscription).where(Subscription.customer_id == alice.id)).one()
    assert [point.id for point in subscription.usage_points] == [chosen]


def test_no_usage_point_is_refused(browser, alice, db):
    flow = _logged_in_flow(browser)
    response = browser.decide(flow, keep=[], status=400)
    assert "at least one meter" in response.text and db.scalar(select(Consent)) is None


def test_terms_must_be_accepted(browser, alice, db):
    flow = _logged_in_flow(browser)
    response = browser.decide(flow, accept=False, status=400)
    assert "Terms" in response.html.find(id="consent-error").text and db.scalar(select(Consent)) is None


def test_deny_returns_access_denied_with_state_and_iss_to_the_app(browser, alice, settings):
    flow = _logged_in_flow(browser)
    response = browser.decide(flow, "deny")
    location = response.headers["Location"]
    assert (
        location.startswith(REDIRECT + "?") and "error=access_denied" in location and f"state={flow.state}" in location
    )


def test_deny_records_a_denied_consent_and_an_espi_authorization_with_status_2(browser, alice, db):
    browser.decide(_logged_in_flow(browser), "deny")
    consent = db.scalars(select(Consent)).one()
    assert (consent.status, consent.authorization.status) == (
        ConsentStatus.DENIED,
        AuthorizationStatus.DENIED,
    )


def test_the_consent_record_keeps_what_with_whom_when_and_how(browser, alice, db):
    flow, _ = browser.grant(keep=[alice.usage_points[0].id])
    consent = db.scalars(select(Consent)).one()
    assert (
        consent.application_name,
        consent.application_version,
        consent.terms_version,
        consent.authorization_request_id,
        consent.client_ip,
        [p["id"] for p in consent.usage_points],
        consent.granted_scope,
        consent.authorization.status,
    ) == (
        "Energy App",
        "1.0",
        TERMS_VERSION,
        flow.request_id,
        "127.0.0.1",
        [alice.usage_points[0].id],
        consent.authorization.scope,
        AuthorizationStatus.ACTIVE,
    )


def test_the_history_starts_with_requested_then_granted(browser, alice, db):
    browser.grant()
    kinds = [event.kind for event in db.scalars(select(ConsentEvent).order_by(ConsentEvent.id))]
    assert kinds == ["requested", "granted"]


def test_a_grant_queues_mails_to_customer_and_app_and_a_notification(browser, alice, db):
    browser.grant()
    messages = db.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
    assert [(m.kind, m.payload.get("to") or m.payload.get("uri")) for m in messages] == [
        ("mail", ["alice@example.com"]),
        ("mail", ["dev@app.example.com"]),
        ("notification", "https://app.example.com/notify"),
    ]


def test_the_code_redeems_for_tokens_of_the_granted_consent(browser, alice, db):
    flow, params = browser.grant()
    tokens = browser.redeem(flow, params["code"])
    authorization = db.scalars(select(Authorization).where(Authorization.customer_id == alice.id)).one()
    assert tokens["authorizationURI"].endswith(f"/Authorization/{authorization.id}")


def test_a_decided_request_cannot_be_decided_again(browser, alice):
    flow, _ = browser.grant()
    assert browser.consent_page(flow, status=409).status_int == 409


def test_an_anonymous_consent_page_redirects_to_login(browser, alice):
    flow = browser.start()
    response = browser.consent_page(flow, status=303)
    assert response.headers["Location"] == f"/login?request={flow.request_id}"


def test_meters_of_a_commodity_the_scope_does_not_share_are_not_offered(browser, alice, db):
    """The scope names FB 5 (electricity): a gas meter would never be readable, so it is not on the list."""
    gas = alice.usage_points[2]
    gas.service_kind = 1
    db.flush()
    page = browser.consent_page(_logged_in_flow(browser))
    offered = [int(box._value) for box in page.forms["consent-form"].fields["usage_point"]]
    assert offered == [point.id for point in alice.usage_points[:2]]
    assert "Alice meter 3" not in page.text


def test_a_tampered_form_sharing_a_meter_of_another_commodity_is_refused(browser, alice, db):
    gas = alice.usage_points[2]
    gas.service_kind = 1
    db.flush()
    flow = _logged_in_flow(browser)
    form = browser.consent_page(flow).forms["consent-form"]
    form["accept_terms"].checked = True
    fields = [*form.submit_fields(), ("decision", "authorize"), ("usage_point", str(gas.id))]
    response = browser.app.post(form.action, fields, status=400)
    assert f"usage point {gas.id} is a gas meter; this consent shares only electricity meters" in response.text
    assert db.scalar(select(Subscription).where(Subscription.customer_id == alice.id)) is None


def test_a_customer_without_meters_of_the_commodity_is_told_so(browser, alice, db):
    for point in alice.usage_points:
        point.service_kind = 2
    db.flush()
    page = browser.consent_page(_logged_in_flow(browser))
    assert "You have no electricity meters to share yet." in page.html.get_text(" ")
