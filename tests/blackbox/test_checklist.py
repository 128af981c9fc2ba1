"""One black-box test per row of /work/shared/SECURITY-CHECKLIST.md that concerns the OAuth endpoints.

Rows 11-16 and 37 belong to the login/consent pages (the consent issue); row 16's endpoint side is here. Each test
speaks HTTP to the gateway running under gunicorn; the consent step is played in-process (see conftest).
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pytest
import requests
from sqlalchemy import update

from gateway.storage.models import Authorization as AuthorizationRecord
from gateway.storage.models import (
    AuthorizationCode,
    AuthorizationStatus,
    ClientRole,
    OAuthToken,
    RetailCustomer,
)
from tests.functional.oauth.helpers import (
    CLIENT_SCOPE,
    OTHER_REDIRECT,
    PASSWORD,
    REDIRECT,
    SCOPE,
    basic,
    pkce_pair,
)

TIMEOUT = 10


def query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def authorize(live, client, **overrides):
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": REDIRECT,
        "scope": SCOPE,
        "state": "s-1",
    }
    params.update(overrides)
    url = live.url("/oauth/authorize?" + urlencode({k: v for k, v in params.items() if v is not None}))
    return requests.get(url, allow_redirects=False, timeout=TIMEOUT)


def get_code(live, client, customer=None, *, redirect_uri=REDIRECT, pkce=True, scope=SCOPE):
    verifier, challenge = pkce_pair() if pkce else (None, None)
    extra = {"code_challenge": challenge, "code_challenge_method": "S256"} if pkce else {}
    handoff = authorize(live, client, redirect_uri=redirect_uri, scope=scope, **extra)
    assert handoff.status_code == 303, handoff.text
    location = live.approve(query(handoff.headers["Location"])["request"], customer or live.customer())
    return query(location)["code"], verifier, location


def token(live, client, form, *, headers=None, auth=True):
    all_headers = dict(headers or {})
    if auth and client.client_secret:
        all_headers.setdefault("Authorization", basic(client.client_id, client.client_secret))
    return requests.post(live.url("/oauth/token"), data=form, headers=all_headers, timeout=TIMEOUT)


def redeem(live, client, code, verifier, redirect_uri=REDIRECT, **extra):
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if verifier is not None:
        form["code_verifier"] = verifier
    form.update(extra)
    return token(live, client, form)


def refresh(live, client, refresh_token, **extra):
    return token(live, client, {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra})


def bearer_status(live, access_token: str) -> int:
    return requests.get(
        live.resource("ReadServiceStatus"),
        headers={"Authorization": f"Bearer {access_token}"},
        timeout=TIMEOUT,
    ).status_code


def client_token(live, client) -> str:
    response = token(live, client, {"grant_type": "client_credentials", "scope": CLIENT_SCOPE})
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def introspect(live, caller, value):
    return requests.post(
        live.url("/oauth/introspect"),
        data={"token": value},
        headers={"Authorization": basic(caller.client_id, caller.client_secret)},
        timeout=TIMEOUT,
    )


@pytest.mark.parametrize(
    "redirect_uri",
    [
        REDIRECT + "/x",
        REDIRECT + "?a=1",
        REDIRECT + "#f",
        "https://app.example.com@evil.example/callback",
        "https://APP.EXAMPLE.COM/callback",
        REDIRECT + "/",
        REDIRECT.replace("https:", "http:"),
    ],
)
def test_row_01_redirect_uri_matched_exactly(live, redirect_uri):
    client = live.client()
    response = authorize(live, client, redirect_uri=redirect_uri)
    assert response.status_code == 400
    assert "Location" not in response.headers


def test_row_01_loopback_redirect_may_vary_the_port_only(live):
    client = live.client()
    _, challenge = pkce_pair()
    ok = authorize(
        live,
        client,
        redirect_uri="http://127.0.0.1:40404/cb",
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    assert ok.status_code == 303
    assert authorize(live, client, redirect_uri="http://127.0.0.1:40404/cb/x").status_code == 400


def test_row_02_never_redirect_for_bad_client_or_redirect_uri(live):
    client = live.client()
    unknown = authorize(live, client, client_id="gbc_unknown")
    assert unknown.status_code == 400 and "Location" not in unknown.headers
    missing = authorize(live, client, redirect_uri=None)
    assert missing.status_code == 400 and "Location" not in missing.headers
    foreign = authorize(live, client, redirect_uri="https://evil.example/cb")
    assert foreign.status_code == 400 and "Location" not in foreign.headers


def test_row_03_token_redirect_uri_must_equal_the_authorization_one(live):
    client = live.client()
    code, verifier, _ = get_code(live, client)
    response = redeem(live, client, code, verifier, redirect_uri=OTHER_REDIRECT)
    assert response.status_code == 400
    assert response.json()["error"] in ("invalid_grant", "invalid_request")


def test_row_04_code_replay_revokes_tokens(live):
    client = live.client()
    code, verifier, _ = get_code(live, client)
    first = redeem(live, client, code, verifier).json()
    second = redeem(live, client, code, verifier)
    assert second.status_code == 400 and second.json()["error"] == "invalid_grant"
    assert bearer_status(live, first["access_token"]) == 401
    assert refresh(live, client, first["refresh_token"]).json()["error"] == "invalid_grant"


def test_row_05_code_redemption_is_atomic(live):
    client = live.client()
    code, verifier, _ = get_code(live, client)
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda _: redeem(live, client, code, verifier).status_code, range(8)))
    assert statuses.count(200) == 1
    assert statuses.count(400) == 7


def test_row_06_expired_code_is_invalid_grant(live):
    client = live.client()
    code, verifier, _ = get_code(live, client)
    assert live.settings.authorization_code_ttl <= 60
    live.execute(
        update(AuthorizationCode)
        .where(AuthorizationCode.digest == live.services.digester.digest(code))
        .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    )
    assert redeem(live, client, code, verifier).json()["error"] == "invalid_grant"


def test_row_07_code_is_bound_to_its_client(live):
    client_a, client_b = live.client(), live.client()
    code, verifier, _ = get_code(live, client_a)
    response = redeem(live, client_b, code, verifier)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "pkce_params",
    [
        {},
        {"code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"},
        {"code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "plain"},
    ],
    ids=["no-challenge", "missing-method", "plain"],
)
def test_row_08_pkce_s256_required(live, pkce_params):
    client = live.client()
    response = authorize(live, client, **pkce_params)
    assert response.status_code == 302
    assert query(response.headers["Location"])["error"] == "invalid_request"


def test_row_08_wrong_verifier_is_invalid_grant(live):
    client = live.client()
    code, _verifier, _ = get_code(live, client)
    other, _ = pkce_pair()
    assert redeem(live, client, code, other).json()["error"] == "invalid_grant"


def test_row_08_public_client_needs_pkce(live):
    client = live.client(public=True, grant_types=("authorization_code", "refresh_token"), require_pkce=False)
    response = authorize(live, client)
    assert query(response.headers["Location"])["error"] == "invalid_request"


def test_row_09_no_pkce_downgrade(live):
    client = live.client(require_pkce=False)
    code, _, _ = get_code(live, client, pkce=False)
    verifier, _ = pkce_pair()
    response = redeem(live, client, code, verifier)
    assert response.status_code == 400


def test_row_10_metadata_tells_the_truth(live):
    document = requests.get(live.url("/.well-known/oauth-authorization-server"), timeout=TIMEOUT).json()
    assert document["issuer"] == live.base_url
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["response_types_supported"] == ["code"]
    assert set(document["grant_types_supported"]) == {
        "authorization_code",
        "client_credentials",
        "refresh_token",
        "password",
    }
    assert "token" not in document["response_types_supported"]
    assert set(document["token_endpoint_auth_methods_supported"]) <= {
        "client_secret_basic",
        "client_secret_post",
        "none",
    }
    for key in ("authorization_endpoint", "token_endpoint", "revocation_endpoint", "introspection_endpoint"):
        assert document[key].startswith(live.base_url)


def test_row_16_no_cors_on_the_authorization_endpoint(live):
    client = live.client()
    response = requests.get(
        live.url(f"/oauth/authorize?response_type=code&client_id={client.client_id}&redirect_uri={quote(REDIRECT)}"),
        headers={"Origin": "https://evil.example"},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert "Access-Control-Allow-Origin" not in response.headers


def test_row_17_iss_on_success_and_error_redirects(live):
    client = live.client()
    _, _, success = get_code(live, client)
    assert query(success)["iss"] == live.base_url
    error = authorize(live, client)  # no PKCE: an error redirect
    assert query(error.headers["Location"])["iss"] == live.base_url
    _, challenge = pkce_pair()
    handoff = authorize(live, client, code_challenge=challenge, code_challenge_method="S256")
    denied = live.deny(query(handoff.headers["Location"])["request"])
    assert query(denied)["iss"] == live.base_url


def test_row_18_refresh_token_bound_to_its_client(live):
    client_a, client_b = live.client(), live.client()
    code, verifier, _ = get_code(live, client_a)
    tokens = redeem(live, client_a, code, verifier).json()
    assert refresh(live, client_b, tokens["refresh_token"]).json()["error"] == "invalid_grant"


def test_row_19_refresh_reuse_revokes_the_family(live):
    client = live.client()
    code, verifier, _ = get_code(live, client)
    first = redeem(live, client, code, verifier).json()
    second = refresh(live, client, first["refresh_token"]).json()
    assert refresh(live, client, first["refresh_token"]).json()["error"] == "invalid_grant"
    assert refresh(live, client, second["refresh_token"]).json()["error"] == "invalid_grant"
    assert introspect(live, client, second["access_token"]).json() == {"active": False}


def test_row_20_refresh_never_widens_scope(live):
    client = live.client()
    code, verifier, _ = get_code(live, client)
    first = redeem(live, client, code, verifier).json()
    wider = "FB=1_3_4_5_13_14_15_39;IntervalDuration=900;BlockDuration=monthly;HistoryLength=13"
    assert refresh(live, client, first["refresh_token"], scope=wider).json()["error"] == "invalid_scope"
    narrow = "FB=1_3_4;IntervalDuration=900;BlockDuration=monthly;HistoryLength=13"
    second = refresh(live, client, first["refresh_token"], scope=narrow).json()
    assert second["scope"] == narrow
    third = refresh(live, client, second["refresh_token"]).json()
    assert third["scope"] == SCOPE


@pytest.mark.parametrize("cause", ["consent", "password", "idle"])
def test_row_21_refresh_dies_with_consent_password_or_idleness(live, cause):
    client = live.client()
    customer = live.customer()
    code, verifier, _ = get_code(live, client, customer)
    tokens = redeem(live, client, code, verifier).json()
    if cause == "consent":
        live.execute(
            update(AuthorizationRecord)
            .where(AuthorizationRecord.customer_id == customer.id)
            .values(status=AuthorizationStatus.REVOKED)
        )
    elif cause == "password":
        live.execute(
            update(RetailCustomer)
            .where(RetailCustomer.id == customer.id)
            .values(password_changed_at=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2))
        )
    else:
        idle = dt.timedelta(seconds=live.settings.refresh_token_idle_ttl + 10)
        live.execute(
            update(OAuthToken)
            .where(OAuthToken.digest == live.services.digester.digest(tokens["refresh_token"]))
            .values(issued_at=dt.datetime.now(dt.UTC) - idle)
        )
    assert refresh(live, client, tokens["refresh_token"]).json()["error"] == "invalid_grant"


def test_row_22_password_grant_allowed_clients_no_oracle_throttled(live):
    customer = live.customer()
    other = live.customer()
    stranger = live.client()  # not registered for the password grant
    for password in (PASSWORD, "wrong password!"):
        response = token(
            live, stranger, {"grant_type": "password", "username": customer.username, "password": password}
        )
        assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"
    own = live.client(roles=(ClientRole.SELF_ACCESS,), grant_types=("password",), owner_customer_id=customer.id)
    form = {"grant_type": "password", "scope": SCOPE}
    unknown = token(live, own, {**form, "username": "nobody-at-all", "password": PASSWORD})
    wrong = token(live, own, {**form, "username": customer.username, "password": "not it at all"})
    assert unknown.status_code == wrong.status_code == 400
    assert unknown.content == wrong.content
    # A self-access client of one customer is no key to another's data.
    assert token(live, own, {**form, "username": other.username, "password": PASSWORD}).status_code == 400
    for _ in range(10):
        token(live, own, {**form, "username": customer.username, "password": "still wrong"})
    blocked = token(live, own, {**form, "username": customer.username, "password": PASSWORD})
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0


def test_row_23_client_secrets_long_and_guessing_throttled(live):
    client = live.client()
    raw = base64.urlsafe_b64decode(client.client_secret + "=" * (-len(client.client_secret) % 4))
    assert len(raw) * 8 >= 128
    for _ in range(10):
        bad = token(
            live,
            client,
            {"grant_type": "client_credentials"},
            headers={"Authorization": basic(client.client_id, "guess")},
        )
        assert bad.status_code == 401
    blocked = token(live, client, {"grant_type": "client_credentials"})
    assert blocked.status_code == 429 and blocked.headers["Retry-After"]


def test_row_24_client_authentication_methods(live):
    client = live.client()
    encoded = basic(quote(client.client_id, safe=""), quote(client.client_secret, safe=""))
    assert (
        token(live, client, {"grant_type": "client_credentials"}, headers={"Authorization": encoded}).status_code == 200
    )
    both = token(live, client, {"grant_type": "client_credentials", "client_secret": client.client_secret})
    assert both.status_code == 401 and both.json()["error"] == "invalid_client"
    # Per-client method honoured: a Basic client posting its secret in the body is refused.
    post_only = {
        "grant_type": "client_credentials",
        "client_id": client.client_id,
        "client_secret": client.client_secret,
    }
    assert token(live, client, post_only, auth=False).status_code == 401
    post_client = live.client(auth_method="client_secret_post")
    form = {
        "grant_type": "client_credentials",
        "client_id": post_client.client_id,
        "client_secret": post_client.client_secret,
    }
    assert token(live, post_client, form, auth=False).status_code == 200


def test_row_25_bad_basic_credentials_get_401_basic_challenge(live):
    client = live.client()
    response = token(
        live,
        client,
        {"grant_type": "client_credentials"},
        headers={"Authorization": basic(client.client_id, "nope")},
    )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert response.json()["error"] == "invalid_client"


def test_row_26_basic_client_differs_from_body_client_id(live):
    client_a, client_b = live.client(), live.client()
    response = token(live, client_a, {"grant_type": "client_credentials", "client_id": client_b.client_id})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_row_27_database_holds_no_usable_secret_or_token(live):
    client = live.client()
    code, verifier, _ = get_code(live, client)
    tokens = redeem(live, client, code, verifier).json()
    access = client_token(live, client)
    dump = live.dump()
    assert client.client_id in dump, "the dump reads no table: nothing was checked"
    for secret in (
        client.client_secret,
        client.registration_access_token,
        code,
        tokens["access_token"],
        tokens["refresh_token"],
        access,
    ):
        assert secret not in dump


def test_row_28_bearer_tokens_only_in_the_authorization_header(live):
    client = live.client()
    access = client_token(live, client)
    status_url = live.resource("ReadServiceStatus")
    assert requests.get(f"{status_url}?access_token={access}", timeout=TIMEOUT).status_code == 401
    assert requests.get(status_url, data={"access_token": access}, timeout=TIMEOUT).status_code == 401
    assert bearer_status(live, access) == 200


def test_row_29_least_privilege(live):
    client = live.client()
    code, verifier, _ = get_code(live, client)
    customer_token = redeem(live, client, code, verifier).json()["access_token"]
    # A customer token reads no client-level resource; a registration token reads nothing but its registration.
    assert bearer_status(live, customer_token) == 403
    assert bearer_status(live, client.registration_access_token) == 403
    # client_credentials never grants customer data: its resourceURI is the app's Authorization feed.
    response = token(live, client, {"grant_type": "client_credentials"}).json()
    assert response["resourceURI"] == live.resource("Authorization")
    assert "Subscription" not in response["resourceURI"]


def test_row_30_revocation(live):
    client, other = live.client(), live.client()
    access = client_token(live, client)
    revoke = lambda caller, value: requests.post(  # noqa: E731
        live.url("/oauth/revoke"),
        data={"token": value},
        headers={"Authorization": basic(caller.client_id, caller.client_secret)},
        timeout=TIMEOUT,
    )
    assert revoke(other, access).status_code == 200
    assert bearer_status(live, access) == 200  # another client's revocation left it alone
    assert revoke(client, access).status_code == 200
    assert bearer_status(live, access) == 401
    assert revoke(client, "never-issued").status_code == 200
    code, verifier, _ = get_code(live, client)
    tokens = redeem(live, client, code, verifier).json()
    assert revoke(client, tokens["refresh_token"]).status_code == 200
    assert refresh(live, client, tokens["refresh_token"]).json()["error"] == "invalid_grant"
    assert introspect(live, client, tokens["access_token"]).json() == {"active": False}


def test_row_31_introspection_only_for_authenticated_confidential_callers(live):
    client = live.client()
    public = live.client(public=True, grant_types=("authorization_code", "refresh_token"))
    access = client_token(live, client)
    url = live.url("/oauth/introspect")
    assert requests.post(url, data={"token": access}, timeout=TIMEOUT).status_code == 401
    assert requests.post(url, data={"token": access, "client_id": public.client_id}, timeout=TIMEOUT).status_code == 401
    assert introspect(live, client, access).json()["active"] is True
    requests.post(
        live.url("/oauth/revoke"),
        data={"token": access},
        headers={"Authorization": basic(client.client_id, client.client_secret)},
        timeout=TIMEOUT,
    )
    assert introspect(live, client, access).json() == {"active": False}


def test_row_32_no_secrets_in_logs_or_caches(live):
    client = live.client()
    code, verifier, _ = get_code(live, client)
    response = redeem(live, client, code, verifier)
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    tokens = response.json()
    refresh(live, client, tokens["refresh_token"])
    requests.get(live.resource("ReadServiceStatus") + f"?access_token={tokens['access_token']}", timeout=TIMEOUT)
    log = live.log()
    assert "/oauth/token" in log  # the access log is being written
    for secret in (client.client_secret, code, verifier, tokens["access_token"], tokens["refresh_token"]):
        assert secret not in log


def test_row_33_token_endpoint_hygiene(live):
    client = live.client()
    url = live.url("/oauth/token")
    auth = {"Authorization": basic(client.client_id, client.client_secret)}
    get = requests.get(url, timeout=TIMEOUT)
    assert get.status_code in (400, 405) and get.headers["Content-Type"].startswith("application/json")
    in_query = requests.post(
        url + "?grant_type=client_credentials",
        data={"grant_type": "client_credentials"},
        headers=auth,
        timeout=TIMEOUT,
    )
    assert in_query.status_code == 400
    duplicated = requests.post(
        url,
        data="grant_type=client_credentials&grant_type=client_credentials",
        headers={**auth, "Content-Type": "application/x-www-form-urlencoded"},
        timeout=TIMEOUT,
    )
    assert duplicated.status_code == 400
    as_json = requests.post(url, json={"grant_type": "client_credentials"}, headers=auth, timeout=TIMEOUT)
    assert as_json.status_code == 400
    for response in (in_query, duplicated, as_json):
        assert response.json()["error"] == "invalid_request"


def test_row_34_unguessable_tokens(live):
    client = live.client()
    session = requests.Session()
    headers = {"Authorization": basic(client.client_id, client.client_secret)}

    def one(_: int) -> str:
        response = session.post(
            live.url("/oauth/token"),
            data={"grant_type": "client_credentials"},
            headers=headers,
            timeout=TIMEOUT,
        )
        return str(response.json()["access_token"])

    with ThreadPoolExecutor(max_workers=4) as pool:
        tokens = list(pool.map(one, range(2_000)))
    assert len(set(tokens)) == len(tokens)
    for value in tokens:
        assert re.fullmatch(r"[A-Za-z0-9_-]{43,}", value)  # ≥ 43 base64url characters: ≥ 256 bits
        assert len(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))) * 8 >= 128


def test_row_35_no_open_redirect_through_errors(live):
    client = live.client()
    response = authorize(live, client, response_type="token", redirect_uri="https://evil.example/")
    assert response.status_code == 400 and "Location" not in response.headers
    error = authorize(live, client, scope="FB=1;Nope=1")
    assert error.headers["Location"].startswith(REDIRECT + "?")
    _, challenge = pkce_pair()
    handoff = authorize(
        live, client, redirect_uri=OTHER_REDIRECT, code_challenge=challenge, code_challenge_method="S256"
    )
    assert live.deny(query(handoff.headers["Location"])["request"]).startswith(OTHER_REDIRECT + "?")


@pytest.mark.parametrize("response_type", ["token", "code token", "code id_token", "none"])
def test_row_36_implicit_and_device_grants_off(live, response_type):
    client = live.client()
    response = authorize(live, client, response_type=response_type)
    assert query(response.headers["Location"])["error"] in (
        "unsupported_response_type",
        "unauthorized_client",
    )
    assert "access_token" not in response.headers["Location"]
    device = token(live, client, {"grant_type": "urn:ietf:params:oauth:grant-type:device_code", "device_code": "x"})
    assert device.json()["error"] == "unsupported_grant_type"
