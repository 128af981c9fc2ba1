"""Token endpoint hygiene and client authentication (RFC 6749 §2.3, §3.2, §5.2; checklist rows 23-26, 33)."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from gateway.storage.models import ClientRole
from tests.functional.oauth.helpers import CLIENT_SCOPE, basic, make_client

CC = {"grant_type": "client_credentials", "scope": CLIENT_SCOPE}


def test_get_is_405_json(testapp):
    response = testapp.get("/oauth/token", status=405)
    assert response.content_type == "application/json"


def test_parameters_in_the_query_are_refused(testapp, client):
    response = testapp.post(
        "/oauth/token?grant_type=client_credentials",
        CC,
        headers={"Authorization": basic(client.client_id, client.client_secret)},
        status=400,
    )
    assert response.json["error"] == "invalid_request"


def test_duplicated_parameters_are_refused(testapp, client):
    response = testapp.post(
        "/oauth/token",
        "grant_type=client_credentials&grant_type=client_credentials",
        headers={
            "Authorization": basic(client.client_id, client.client_secret),
            "Content-Type": "application/x-www-form-urlencoded",
        },
        status=400,
    )
    assert response.json["error"] == "invalid_request"


def test_json_body_is_refused(testapp, client):
    response = testapp.post_json(
        "/oauth/token",
        CC,
        headers={"Authorization": basic(client.client_id, client.client_secret)},
        status=400,
    )
    assert response.json["error"] == "invalid_request"


def test_unknown_grant_type_is_unsupported(testapp, client):
    response = testapp.post(
        "/oauth/token",
        {"grant_type": "urn:ietf:params:oauth:grant-type:device_code", "device_code": "x"},
        headers={"Authorization": basic(client.client_id, client.client_secret)},
        status=400,
    )
    assert response.json["error"] == "unsupported_grant_type"


def test_client_secret_basic_works(testapp, client):
    response = testapp.post(
        "/oauth/token", CC, headers={"Authorization": basic(client.client_id, client.client_secret)}
    )
    assert response.json["token_type"] == "Bearer"


def test_basic_credentials_are_url_decoded(testapp, db, services):
    registered = make_client(db, services.settings, services.digester)
    header = basic(quote(registered.client_id, safe=""), quote(registered.client_secret, safe=""))
    assert testapp.post("/oauth/token", CC, headers={"Authorization": header}).status_int == 200


def test_client_secret_post_for_a_post_client(testapp, db, services):
    registered = make_client(db, services.settings, services.digester, auth_method="client_secret_post")
    form = {**CC, "client_id": registered.client_id, "client_secret": registered.client_secret}
    assert testapp.post("/oauth/token", form).status_int == 200


def test_registered_auth_method_is_honoured(testapp, client):
    form = {**CC, "client_id": client.client_id, "client_secret": client.client_secret}
    response = testapp.post("/oauth/token", form, status=401)
    assert response.json["error"] == "invalid_client"


def test_basic_and_body_secret_at_once_is_invalid_client(testapp, client):
    form = {**CC, "client_id": client.client_id, "client_secret": client.client_secret}
    response = testapp.post(
        "/oauth/token",
        form,
        headers={"Authorization": basic(client.client_id, client.client_secret)},
        status=401,
    )
    assert response.json["error"] == "invalid_client"


def test_basic_client_differing_from_body_client_id_is_401_invalid_client(testapp, client, other_client):
    form = {**CC, "client_id": other_client.client_id}
    response = testapp.post(
        "/oauth/token",
        form,
        headers={"Authorization": basic(client.client_id, client.client_secret)},
        status=401,
    )
    assert response.json["error"] == "invalid_client"


def test_bad_basic_credentials_get_401_with_basic_challenge(testapp, client):
    response = testapp.post("/oauth/token", CC, headers={"Authorization": basic(client.client_id, "wrong")}, status=401)
    assert response.json["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"].startswith("Basic ")


def test_unknown_client_is_invalid_client(testapp):
    response = testapp.post("/oauth/token", CC, headers={"Authorization": basic("gbc_nobody", "x" * 43)}, status=401)
    assert response.json["error"] == "invalid_client"


def test_malformed_basic_header_is_invalid_client(testapp):
    response = testapp.post("/oauth/token", CC, headers={"Authorization": "Basic !!!"}, status=401)
    assert response.json["error"] == "invalid_client"


def test_guessing_client_secrets_is_throttled(testapp, client):
    for _ in range(10):
        testapp.post("/oauth/token", CC, headers={"Authorization": basic(client.client_id, "guess")}, status=401)
    response = testapp.post(
        "/oauth/token",
        CC,
        headers={"Authorization": basic(client.client_id, client.client_secret)},
        status=429,
    )
    assert int(response.headers["Retry-After"]) > 0


def test_client_secrets_are_at_least_128_bits(client):
    import base64

    raw = base64.urlsafe_b64decode(client.client_secret + "=" * (-len(client.client_secret) % 4))
    assert len(raw) * 8 >= 128


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/revoke", "/oauth/introspect"])
def test_no_cors_on_oauth_endpoints(testapp, client, path):
    response = testapp.post(
        path,
        {"token": "x"} if path != "/oauth/token" else CC,
        headers={
            "Origin": "https://evil.example",
            "Authorization": basic(client.client_id, client.client_secret),
        },
    )
    assert "Access-Control-Allow-Origin" not in response.headers


def test_public_client_cannot_use_client_credentials(testapp, public_client):
    response = testapp.post("/oauth/token", {**CC, "client_id": public_client.client_id}, status=(400, 401))
    assert response.json["error"] in ("invalid_client", "unauthorized_client")


def test_custodian_role_clients_get_custodian_tokens(testapp, db, services):
    admin = make_client(db, services.settings, services.digester, roles=(ClientRole.CUSTODIAN_ADMIN,))
    body = testapp.post("/oauth/token", CC, headers={"Authorization": basic(admin.client_id, admin.client_secret)}).json
    assert body["resourceURI"].endswith("/Batch/RetailCustomer")
    assert "refresh_token" not in body
