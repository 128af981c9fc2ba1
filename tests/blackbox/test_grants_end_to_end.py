"""Every grant end to end against the running gateway, driven by a real OAuth client library (requests-oauthlib)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import requests
from oauthlib.oauth2 import BackendApplicationClient, LegacyApplicationClient
from requests.auth import HTTPBasicAuth
from requests_oauthlib import OAuth2Session

from gateway.storage.models import ClientRole
from tests.functional.oauth.helpers import CLIENT_SCOPE, PASSWORD, REDIRECT, SCOPE


def authorize_with_pkce(live, client, customer, *, scope: list[str] | None = None) -> tuple[OAuth2Session, dict]:
    """The whole authorization_code + PKCE dance; the test plays browser and consent UI."""
    oauth = OAuth2Session(client.client_id, redirect_uri=REDIRECT, scope=scope or [SCOPE], pkce="S256")
    url, state = oauth.authorization_url(live.url("/oauth/authorize"))
    handoff = requests.get(url, allow_redirects=False, timeout=10)
    assert handoff.status_code == 303
    request_id = parse_qs(urlsplit(handoff.headers["Location"]).query)["request"][0]
    callback = live.approve(request_id, customer)
    params = parse_qs(urlsplit(callback).query)
    assert params["state"] == [state]
    assert params["iss"] == [live.base_url]
    token = oauth.fetch_token(
        live.url("/oauth/token"), authorization_response=callback, client_secret=client.client_secret
    )
    return oauth, token


def test_authorization_code_with_pkce_then_refresh(live):
    client = live.client()
    customer = live.customer()
    oauth, token = authorize_with_pkce(live, client, customer, scope=[SCOPE, "offline_access"])
    assert token["resourceURI"].startswith(live.resource("Batch/Subscription/"))
    assert token["authorizationURI"].startswith(live.resource("Authorization/"))
    assert token["scope"] == [SCOPE, "offline_access"]
    # A customer token is not a client token: ReadServiceStatus answers 403, not 401.
    assert oauth.get(live.resource("ReadServiceStatus"), timeout=10).status_code == 403

    refreshed = oauth.refresh_token(
        live.url("/oauth/token"), auth=HTTPBasicAuth(client.client_id, client.client_secret), timeout=10
    )
    assert refreshed["refresh_token"] != token["refresh_token"]
    assert refreshed["resourceURI"] == token["resourceURI"]
    old = requests.get(
        live.resource("ReadServiceStatus"),
        headers={"Authorization": f"Bearer {token['access_token']}"},
        timeout=10,
    )
    assert old.status_code == 401


def test_public_client_authorization_code_with_pkce(live):
    client = live.client(public=True, grant_types=("authorization_code", "refresh_token"))
    customer = live.customer()
    oauth = OAuth2Session(client.client_id, redirect_uri=REDIRECT, scope=[SCOPE], pkce="S256")
    url, _state = oauth.authorization_url(live.url("/oauth/authorize"))
    handoff = requests.get(url, allow_redirects=False, timeout=10)
    request_id = parse_qs(urlsplit(handoff.headers["Location"]).query)["request"][0]
    callback = live.approve(request_id, customer)
    token = oauth.fetch_token(live.url("/oauth/token"), authorization_response=callback, include_client_id=True)
    assert token["resourceURI"].startswith(live.resource("Batch/Subscription/"))
    refreshed = oauth.refresh_token(live.url("/oauth/token"), client_id=client.client_id, timeout=10)
    assert refreshed["access_token"] != token["access_token"]


def test_client_credentials(live):
    client = live.client()
    oauth = OAuth2Session(client=BackendApplicationClient(client_id=client.client_id), scope=[CLIENT_SCOPE])
    token = oauth.fetch_token(
        live.url("/oauth/token"),
        client_id=client.client_id,
        client_secret=client.client_secret,
        scope=[CLIENT_SCOPE],
    )
    assert "refresh_token" not in token
    assert token["resourceURI"] == live.resource("Authorization")
    assert token["authorizationURI"].startswith(live.resource("Authorization/"))
    response = oauth.get(live.resource("ReadServiceStatus"), timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/atom+xml")
    assert b"<currentStatus>1</currentStatus>" in response.content


def test_client_credentials_with_client_secret_post(live):
    client = live.client(auth_method="client_secret_post")
    oauth = OAuth2Session(client=BackendApplicationClient(client_id=client.client_id), scope=[CLIENT_SCOPE])
    token = oauth.fetch_token(
        live.url("/oauth/token"),
        client_id=client.client_id,
        client_secret=client.client_secret,
        include_client_id=True,
        scope=[CLIENT_SCOPE],
    )
    assert token["token_type"] == "Bearer"


def test_password_grant_for_a_self_access_client_then_refresh(live):
    customer = live.customer()
    client = live.client(
        roles=(ClientRole.SELF_ACCESS,),
        grant_types=("password", "refresh_token"),
        owner_customer_id=customer.id,
    )
    oauth = OAuth2Session(client=LegacyApplicationClient(client_id=client.client_id), scope=[SCOPE])
    token = oauth.fetch_token(
        live.url("/oauth/token"),
        username=customer.username,
        password=PASSWORD,
        client_id=client.client_id,
        client_secret=client.client_secret,
        scope=[SCOPE],
    )
    assert token["resourceURI"].startswith(live.resource("Batch/Subscription/"))
    refreshed = oauth.refresh_token(
        live.url("/oauth/token"), auth=HTTPBasicAuth(client.client_id, client.client_secret), timeout=10
    )
    assert refreshed["resourceURI"] == token["resourceURI"]
