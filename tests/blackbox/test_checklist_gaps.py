"""What the checklist rows' "test" column asks for that the first black-box tests did not check (rows 12, 22, 27, 31).

Each test completes a row whose main test lives in tests/blackbox/test_checklist.py or
tests/functional/consent/test_checklist_rows.py; names and messages carry the row number.
"""

from __future__ import annotations

import datetime as dt

import requests
from sqlalchemy import update

from gateway.storage.models import ClientRole, OAuthToken
from tests.blackbox.test_checklist import (
    SCOPE,
    client_token,
    get_code,
    introspect,
    redeem,
    token,
)
from tests.functional.oauth.helpers import PASSWORD

NARROW = "FB=1_3_4;IntervalDuration=900;BlockDuration=monthly;HistoryLength=13"
UNREGISTERED = "FB=1_3_4_5_13_14_39_51;IntervalDuration=900;BlockDuration=monthly;HistoryLength=13"


def test_row_31_expired_tokens_introspect_inactive(live):
    """Row 31: an expired token is ``{"active": false}`` (the revoked case is in test_checklist.py)."""
    client = live.client()
    access = client_token(live, client)
    assert introspect(live, client, access).json()["active"] is True
    live.execute(
        update(OAuthToken)
        .where(OAuthToken.digest == live.services.digester.digest(access))
        .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    )
    assert introspect(live, client, access).json() == {"active": False}, "row 31: an expired token is active"


def test_row_22_throttle_is_no_user_oracle(live):
    """Row 22: ten failures lock an unknown username exactly as they lock a real one (same status and body)."""
    customer = live.customer()
    own = live.client(roles=(ClientRole.SELF_ACCESS,), grant_types=("password",), owner_customer_id=customer.id)
    form = {"grant_type": "password", "scope": SCOPE}
    answers = {}
    for username in (customer.username, f"nobody-{customer.username}"):
        for _ in range(10):
            token(live, own, {**form, "username": username, "password": "wrong password!"})
        blocked = token(live, own, {**form, "username": username, "password": "wrong password!"})
        answers[username] = (blocked.status_code, blocked.json().get("error"))
    real, unknown = answers.values()
    assert real[0] == 429, f"row 22: a real user is not throttled after 10 failures: {real}"
    assert real == unknown, f"row 22: the throttle tells real ({real}) from unknown ({unknown}) users"


def test_row_12_granted_scope_within_requested_and_registered(live):
    """Row 12: the token's scope is exactly what was requested (⊆ registered); an unregistered FB is refused."""
    client = live.client()
    code, verifier, _ = get_code(live, client, scope=NARROW)
    granted = redeem(live, client, code, verifier).json()
    assert granted["scope"] == NARROW, f"row 12: requested {NARROW}, granted {granted['scope']}"
    response = requests.get(
        live.url("/oauth/authorize"),
        params={
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": "https://app.example.com/callback",
            "scope": UNREGISTERED,
            "state": "s",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256",
        },
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302 and "error=invalid_scope" in response.headers["Location"], (
        f"row 12: a scope beyond the registered one was not refused: {response.status_code}"
    )


def test_row_27_database_holds_no_password_or_session(live):
    """Row 27: no customer password and no live session cookie value in a dump of the database."""
    customer = live.customer()
    session = requests.Session()
    page = session.get(live.url("/login"), timeout=10)
    csrf = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    session.post(
        live.url("/login"),
        data={"csrf_token": csrf, "username": customer.username, "password": PASSWORD},
        allow_redirects=False,
        timeout=10,
    )
    cookies = [cookie.value for cookie in session.cookies]
    assert cookies, "row 27: login set no cookie"
    dump = live.dump()
    assert PASSWORD not in dump, "row 27: a customer password is stored in clear"
    leaked = [value[:6] for value in cookies if len(value) >= 16 and value in dump]
    assert not leaked, f"row 27: session cookie values stored in clear: {leaked}"
