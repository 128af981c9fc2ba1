"""The consent dashboard: active consents, revoke with confirmation, history, self-access clients (item 4)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from gateway.errors import Unauthorized
from gateway.oauth.bearer import BearerTokenChecker
from gateway.storage.consent import Consent, ConsentEvent, ConsentStatus
from gateway.storage.models import ApplicationInformation, ApplicationStatus, AuthorizationStatus
from gateway.storage.outbox import OutboxMessage
from tests.functional.oauth.helpers import basic


def _granted(browser, **kwargs):
    flow, params = browser.grant(**kwargs)
    return browser.redeem(flow, params["code"])


def _revoke(browser, db):
    consent = db.scalars(select(Consent)).one()
    page = browser.app.get(f"/consents/{consent.public_id}/revoke")
    return page, page.forms["revoke-form"].submit()


def test_active_consents_show_app_data_meters_and_dates(browser, alice):
    _granted(browser, keep=[alice.usage_points[2].id])
    text = browser.app.get("/consents").html.get_text(" ")
    assert all(
        phrase in text for phrase in ("Energy App", "15-minute electricity usage", "Alice meter 3", "Last access")
    )


def test_revoke_asks_for_confirmation_first(browser, alice, db):
    _granted(browser)
    consent = db.scalars(select(Consent)).one()
    page = browser.app.get(f"/consents/{consent.public_id}/revoke")
    assert "Proceed" in page.text and consent.status == ConsentStatus.ACTIVE


def test_proceed_revokes_and_answers_303(browser, alice, db):
    _granted(browser)
    _, response = _revoke(browser, db)
    db.expire_all()
    consent = db.scalars(select(Consent)).one()
    assert (response.status_int, consent.status, consent.authorization.status) == (
        303,
        ConsentStatus.REVOKED,
        AuthorizationStatus.REVOKED,
    )


def test_after_revoke_the_access_token_fails_on_the_next_request(browser, alice, db, services):
    tokens = _granted(browser)
    _revoke(browser, db)
    with pytest.raises(Unauthorized):
        BearerTokenChecker(services.digester).principal(db, f"Bearer {tokens['access_token']}")


def test_after_revoke_the_refresh_token_is_invalid_grant(browser, alice, db, app_client):
    tokens = _granted(browser)
    _revoke(browser, db)
    response = browser.app.post(
        "/oauth/token",
        {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers={"Authorization": basic(app_client.client_id, app_client.client_secret)},
        status=400,
    )
    assert response.json["error"] == "invalid_grant"


def test_revoke_records_an_event_and_queues_mail_and_notification(browser, alice, db):
    _granted(browser)
    before = len(db.scalars(select(OutboxMessage)).all())
    _revoke(browser, db)
    kinds = [event.kind for event in db.scalars(select(ConsentEvent).order_by(ConsentEvent.id))]
    assert kinds[-1] == "revoked_by_customer" and len(db.scalars(select(OutboxMessage)).all()) == before + 3


def test_history_tab_lists_revoked_consents_with_their_events(browser, alice, db):
    _granted(browser)
    _revoke(browser, db)
    text = browser.app.get("/consents/history").html.get_text(" ")
    assert "Revoked" in text and "Granted by you" in text and "Revoked by you" in text


def test_an_expired_consent_moves_to_history(browser, alice, db):
    _granted(browser)
    consent = db.scalars(select(Consent)).one()
    consent.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    db.flush()
    browser.app.get("/consents")
    db.expire_all()
    assert db.scalars(select(Consent)).one().status == ConsentStatus.EXPIRED


def test_another_customers_consent_is_not_found(browser, new_browser, alice, bob, db):
    _granted(browser)
    consent = db.scalars(select(Consent)).one()
    intruder = new_browser()
    intruder.login(username="bob")
    assert intruder.app.get(f"/consents/{consent.public_id}/revoke", status=404).status_int == 404


def test_revoke_post_from_another_session_is_refused(browser, new_browser, alice, bob, db):
    _granted(browser)
    consent = db.scalars(select(Consent)).one()
    intruder = new_browser()
    intruder.login(username="bob")
    token = intruder.csrf(intruder.app.get("/consents"), "logout-form")
    intruder.app.post(f"/consents/{consent.public_id}/revoke", {"csrf_token": token}, status=404)
    db.expire_all()
    assert db.scalars(select(Consent)).one().status == ConsentStatus.ACTIVE


def test_self_access_clients_are_created_and_revoked_here(browser, alice, db):
    browser.login()
    page = browser.app.get("/consents/self-access")
    form = page.forms["self-access-form"]
    form["name"] = "My meter script"
    created = form.submit(status=201)
    client = db.scalars(
        select(ApplicationInformation).where(ApplicationInformation.owner_customer_id == alice.id)
    ).one()
    revoke_form = next(f for f in created.forms.values() if f.action.endswith(f"/{client.client_id}/revoke"))
    revoke_form.submit(status=303)
    db.expire_all()
    assert (client.grant_types, db.get(ApplicationInformation, client.id).status) == (
        ["password", "refresh_token"],
        ApplicationStatus.REVOKED,
    )
