"""Purging dead tokens (GATEWAY_TOKEN_RETENTION): what goes, and what reuse detection and the consent history keep.

Tokens come from real grants at the token endpoint. Time moves by giving :func:`purge_dead_tokens` a later ``now``
and by ageing the stored rows (tokens issued within one second tie as "the newest", which the purge keeps).
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, update

from gateway.consent.lifecycle import last_access
from gateway.outbox.worker import run_once
from gateway.storage.consent import Consent
from gateway.storage.models import OAuthToken, RetailCustomer
from gateway.storage.oauth import purge_dead_tokens
from tests.functional.oauth.helpers import CLIENT_SCOPE, basic

RETENTION = dt.timedelta(days=7)
STATUS = "/DataCustodian/espi/1_1/resource/ReadServiceStatus"


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def refresh(testapp, client, refresh_token, *, status=200):
    return testapp.post(
        "/oauth/token",
        {"grant_type": "refresh_token", "refresh_token": refresh_token},
        headers={"Authorization": basic(client.client_id, client.client_secret)},
        status=status,
    )


def client_token(testapp, client) -> str:
    return testapp.post(
        "/oauth/token",
        {"grant_type": "client_credentials", "scope": CLIENT_SCOPE},
        headers={"Authorization": basic(client.client_id, client.client_secret)},
    ).json["access_token"]


def age_tokens(db, by: dt.timedelta) -> None:
    """Move every stored token ``by`` into the past, as if it had been issued (and used) that much earlier.

    The customers' passwords age too: a refresh is refused for a family older than the customer's password.
    """
    for customer in db.scalars(select(RetailCustomer)).all():
        customer.password_changed_at -= by
    for row in db.scalars(select(OAuthToken)).all():
        row.issued_at -= by
        row.last_used_at = row.last_used_at - by if row.last_used_at else None
        row.rotated_at = row.rotated_at - by if row.rotated_at else None
        row.expires_at = row.expires_at - by if row.expires_at else None
    db.flush()


def token_row(db, services, token: str) -> OAuthToken | None:
    db.expire_all()
    return db.scalar(select(OAuthToken).where(OAuthToken.digest == services.digester.digest(token)))


def purge(db, when: dt.datetime, retention: dt.timedelta = RETENTION) -> int:
    count = purge_dead_tokens(db, now=when, retention=retention)
    db.flush()
    return count


def expiry_of(db, services, token: str) -> dt.datetime:
    row = token_row(db, services, token)
    assert row is not None and row.expires_at is not None
    return row.expires_at


@pytest.fixture
def two_client_tokens(testapp, client, db, services) -> tuple[str, str]:
    older = client_token(testapp, client)
    age_tokens(db, dt.timedelta(minutes=10))
    return older, client_token(testapp, client)


@pytest.fixture
def refreshed_twice(testapp, client, obtain_code, redeem, db) -> tuple[dict, dict, dict]:
    """Three generations of one grant: the code's tokens, then two refresh rotations, ten minutes apart."""
    first = redeem(client, obtain_code(client)).json
    age_tokens(db, dt.timedelta(minutes=10))
    second = refresh(testapp, client, first["refresh_token"]).json
    age_tokens(db, dt.timedelta(minutes=10))
    return first, second, refresh(testapp, client, second["refresh_token"]).json


def test_an_access_token_expired_longer_than_the_retention_is_deleted(two_client_tokens, db, services):
    older, newer = two_client_tokens
    purge(db, expiry_of(db, services, newer) + RETENTION + dt.timedelta(minutes=1))
    assert token_row(db, services, older) is None


def test_the_newest_token_of_an_authorization_is_kept(two_client_tokens, db, services):
    _older, newer = two_client_tokens
    purge(db, expiry_of(db, services, newer) + RETENTION + dt.timedelta(minutes=1))
    assert token_row(db, services, newer) is not None


def test_tokens_within_the_retention_are_kept(two_client_tokens, db, services):
    _older, newer = two_client_tokens
    assert purge(db, expiry_of(db, services, newer) + dt.timedelta(minutes=1)) == 0


def test_a_revoked_access_token_goes_after_the_retention_although_unexpired(
    testapp, client, obtain_code, redeem, db, services
):
    first = redeem(client, obtain_code(client)).json
    age_tokens(db, dt.timedelta(minutes=10))
    refresh(testapp, client, first["refresh_token"])  # revokes the first access token, valid for 50 more minutes
    purge(db, now() + dt.timedelta(minutes=1), retention=dt.timedelta(0))
    assert token_row(db, services, first["access_token"]) is None


def test_a_revoked_refresh_token_is_kept_until_it_has_expired(testapp, client, obtain_code, redeem, db, services):
    grant = redeem(client, obtain_code(client)).json
    testapp.post(
        "/oauth/revoke",
        {"token": grant["refresh_token"], "token_type_hint": "refresh_token"},
        headers={"Authorization": basic(client.client_id, client.client_secret)},
    )
    purge(db, expiry_of(db, services, grant["refresh_token"]) - dt.timedelta(minutes=1), retention=dt.timedelta(0))
    assert token_row(db, services, grant["refresh_token"]) is not None


def _expire_long_ago(db, services, token: str) -> None:
    """The rotated refresh token ``token`` expired (and was last used) long ago: only its family can keep it."""
    long_ago = now() - 3 * RETENTION
    db.execute(
        update(OAuthToken)
        .where(OAuthToken.digest == services.digester.digest(token))
        .values(issued_at=long_ago, last_used_at=long_ago, rotated_at=long_ago, expires_at=long_ago + RETENTION)
    )
    db.flush()


def test_an_expired_refresh_token_is_kept_while_its_family_lives(refreshed_twice, db, services):
    first, _, _ = refreshed_twice
    _expire_long_ago(db, services, first["refresh_token"])
    purge(db, now())
    assert token_row(db, services, first["refresh_token"]) is not None


def test_an_expired_refresh_token_goes_once_its_family_is_dead(testapp, client, refreshed_twice, db, services):
    first, _, third = refreshed_twice
    _expire_long_ago(db, services, first["refresh_token"])
    testapp.post(  # revoking the newest refresh token revokes the whole family
        "/oauth/revoke",
        {"token": third["refresh_token"]},
        headers={"Authorization": basic(client.client_id, client.client_secret)},
    )
    purge(db, now())
    assert token_row(db, services, first["refresh_token"]) is None


def test_a_dead_family_goes_once_past_expiry_and_retention(refreshed_twice, db, services):
    first, second, third = refreshed_twice
    deleted = purge(db, expiry_of(db, services, third["refresh_token"]) + RETENTION + dt.timedelta(minutes=1))
    # All but the tokens of the latest issue (the last access): the first two generations except the refresh token
    # whose use issued the third.
    gone = [token_row(db, services, token) is None for token in (first["access_token"], first["refresh_token"])]
    assert (deleted, gone, token_row(db, services, second["access_token"])) == (3, [True, True], None)


def test_the_consent_keeps_its_last_access_after_a_purge(refreshed_twice, db, services):
    _, _, third = refreshed_twice
    row = token_row(db, services, third["access_token"])
    assert row is not None
    consent = Consent(authorization_id=row.authorization_id)  # all last_access reads of a consent
    before = last_access(db, consent)
    assert purge(db, expiry_of(db, services, third["refresh_token"]) + RETENTION + dt.timedelta(minutes=1)) == 3
    assert last_access(db, consent) == before


def test_reuse_detection_still_revokes_the_family_after_a_purge(testapp, client, obtain_code, redeem, db):
    first = redeem(client, obtain_code(client)).json
    age_tokens(db, dt.timedelta(minutes=10))
    second = refresh(testapp, client, first["refresh_token"]).json
    # The first access token (revoked by the rotation) goes at once; the rotated refresh token must stay.
    assert purge(db, now() + dt.timedelta(minutes=1), retention=dt.timedelta(0)) == 1
    db.execute(
        update(OAuthToken).where(OAuthToken.rotated_at.is_not(None)).values(rotated_at=now() - dt.timedelta(minutes=1))
    )
    db.flush()
    assert refresh(testapp, client, first["refresh_token"], status=400).json["error"] == "invalid_grant"
    assert refresh(testapp, client, second["refresh_token"], status=400).json["error"] == "invalid_grant"


def test_a_purged_access_token_is_refused_like_a_revoked_one(testapp, client, obtain_code, redeem, db):
    first = redeem(client, obtain_code(client)).json
    age_tokens(db, dt.timedelta(minutes=10))
    refresh(testapp, client, first["refresh_token"])
    assert purge(db, now() + dt.timedelta(minutes=1), retention=dt.timedelta(0)) == 1
    response = testapp.get(STATUS, headers={"Authorization": f"Bearer {first['access_token']}"}, status=401)
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


@pytest.mark.parametrize(("purge_tokens", "purged"), [(True, 1), (False, None)])
def test_a_worker_pass_purges_dead_tokens_when_asked(two_client_tokens, db, services, purge_tokens, purged):
    db.execute(update(OAuthToken).where(OAuthToken.expires_at.is_not(None)).values(expires_at=now() - 2 * RETENTION))
    db.flush()
    report = run_once(services, {}, build_bulks=False, purge_tokens=purge_tokens)
    assert report.purged_tokens == purged
