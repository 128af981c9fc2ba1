"""refresh_token: rotation, reuse detection, scope rules, death with consent, password and idleness
(RFC 6749 §6, RFC 9700 §4.14; checklist rows 18-21)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update

from gateway.storage.models import OAuthToken, RetailCustomer, TokenType
from tests.functional.oauth.helpers import SCOPE, basic

STATUS = "/DataCustodian/espi/1_1/resource/ReadServiceStatus"
NARROW = "FB=1_3_4;IntervalDuration=900;BlockDuration=monthly;HistoryLength=13"


def refresh(testapp, client, refresh_token, *, status=200, **form):
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, **form}
    return testapp.post(
        "/oauth/token",
        data,
        headers={"Authorization": basic(client.client_id, client.client_secret)},
        status=status,
    )


def resource_status(testapp, token):
    # A customer token is refused on ReadServiceStatus with 403 while valid and 401 once dead.
    return testapp.get(STATUS, headers={"Authorization": f"Bearer {token}"}, expect_errors=True).status_int


def test_refresh_rotates_and_returns_the_espi_fields(testapp, client, obtain_code, redeem):
    first = redeem(client, obtain_code(client)).json
    second = refresh(testapp, client, first["refresh_token"]).json
    assert second["refresh_token"] != first["refresh_token"]
    assert second["resourceURI"] == first["resourceURI"]
    assert second["authorizationURI"] == first["authorizationURI"]
    assert second["scope"] == SCOPE


def test_previous_access_token_dies_on_refresh(testapp, client, obtain_code, redeem):
    first = redeem(client, obtain_code(client)).json
    assert resource_status(testapp, first["access_token"]) == 403
    second = refresh(testapp, client, first["refresh_token"]).json
    assert resource_status(testapp, first["access_token"]) == 401
    assert resource_status(testapp, second["access_token"]) == 403


def test_reuse_within_grace_is_refused_without_killing_the_family(testapp, client, obtain_code, redeem):
    first = redeem(client, obtain_code(client)).json
    second = refresh(testapp, client, first["refresh_token"]).json
    assert refresh(testapp, client, first["refresh_token"], status=400).json["error"] == "invalid_grant"
    refresh(testapp, client, second["refresh_token"])


def test_reuse_after_grace_revokes_the_family(testapp, client, obtain_code, redeem, db):
    first = redeem(client, obtain_code(client)).json
    second = refresh(testapp, client, first["refresh_token"]).json
    db.execute(
        update(OAuthToken)
        .where(OAuthToken.rotated_at.is_not(None))
        .values(rotated_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=60))
    )
    db.flush()
    assert refresh(testapp, client, first["refresh_token"], status=400).json["error"] == "invalid_grant"
    assert refresh(testapp, client, second["refresh_token"], status=400).json["error"] == "invalid_grant"
    assert resource_status(testapp, second["access_token"]) == 401


def test_refresh_token_is_bound_to_its_client(testapp, client, other_client, obtain_code, redeem):
    first = redeem(client, obtain_code(client)).json
    assert refresh(testapp, other_client, first["refresh_token"], status=400).json["error"] == "invalid_grant"
    refresh(testapp, client, first["refresh_token"])


def test_wider_scope_is_invalid_scope(testapp, client, obtain_code, redeem):
    first = redeem(client, obtain_code(client)).json
    wider = "FB=1_3_4_5_13_14_15_39;IntervalDuration=900;BlockDuration=monthly;HistoryLength=13"
    assert refresh(testapp, client, first["refresh_token"], scope=wider, status=400).json["error"] == "invalid_scope"


def test_malformed_scope_on_refresh_is_invalid_scope(testapp, client, obtain_code, redeem):
    first = redeem(client, obtain_code(client)).json
    assert (
        refresh(testapp, client, first["refresh_token"], scope="FB=1;X=2", status=400).json["error"] == "invalid_scope"
    )


def test_narrower_scope_gives_a_narrower_token_and_keeps_the_refresh_scope(testapp, client, obtain_code, redeem):
    first = redeem(client, obtain_code(client)).json
    narrow = refresh(testapp, client, first["refresh_token"], scope=NARROW).json
    assert narrow["scope"] == NARROW
    again = refresh(testapp, client, narrow["refresh_token"]).json
    assert again["scope"] == SCOPE


def test_offline_access_cannot_be_added_on_refresh(testapp, client, obtain_code, redeem):
    first = redeem(client, obtain_code(client)).json
    response = refresh(testapp, client, first["refresh_token"], scope=f"{SCOPE} offline_access", status=400)
    assert response.json["error"] == "invalid_scope"


def test_offline_access_gives_a_long_lived_refresh_token(testapp, client, obtain_code, redeem, db, services):
    body = redeem(client, obtain_code(client, scope=f"{SCOPE} offline_access")).json
    assert body["scope"] == f"{SCOPE} offline_access"
    tokens = db.scalars(select(OAuthToken).where(OAuthToken.token_type == TokenType.REFRESH)).all()
    lifetime = (tokens[-1].expires_at - tokens[-1].issued_at).total_seconds()
    assert lifetime == services.settings.offline_refresh_token_ttl


def test_without_offline_access_the_refresh_token_is_short_lived(testapp, client, obtain_code, redeem, db, services):
    redeem(client, obtain_code(client))
    token = db.scalars(select(OAuthToken).where(OAuthToken.token_type == TokenType.REFRESH)).all()[-1]
    assert (token.expires_at - token.issued_at).total_seconds() == services.settings.refresh_token_ttl


def test_refresh_dies_with_a_password_change(testapp, client, obtain_code, redeem, db, alice):
    first = redeem(client, obtain_code(client)).json
    db.execute(
        update(RetailCustomer)
        .where(RetailCustomer.id == alice.id)
        .values(password_changed_at=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2))
    )
    db.flush()
    assert refresh(testapp, client, first["refresh_token"], status=400).json["error"] == "invalid_grant"


def test_refresh_dies_when_idle(testapp, client, obtain_code, redeem, db, services):
    first = redeem(client, obtain_code(client)).json
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=services.settings.refresh_token_idle_ttl + 5)
    db.execute(update(OAuthToken).where(OAuthToken.token_type == TokenType.REFRESH).values(issued_at=long_ago))
    db.flush()
    assert refresh(testapp, client, first["refresh_token"], status=400).json["error"] == "invalid_grant"


def test_refresh_dies_at_expiry(testapp, client, obtain_code, redeem, db):
    first = redeem(client, obtain_code(client)).json
    db.execute(
        update(OAuthToken)
        .where(OAuthToken.token_type == TokenType.REFRESH)
        .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    )
    db.flush()
    assert refresh(testapp, client, first["refresh_token"], status=400).json["error"] == "invalid_grant"


def test_access_token_is_not_a_refresh_token(testapp, client, obtain_code, redeem):
    first = redeem(client, obtain_code(client)).json
    assert refresh(testapp, client, first["access_token"], status=400).json["error"] == "invalid_grant"


def test_public_client_refreshes_with_its_id(testapp, public_client, obtain_code, redeem):
    first = redeem(public_client, obtain_code(public_client)).json
    response = testapp.post(
        "/oauth/token",
        {
            "grant_type": "refresh_token",
            "refresh_token": first["refresh_token"],
            "client_id": public_client.client_id,
        },
    )
    assert response.json["refresh_token"] != first["refresh_token"]
