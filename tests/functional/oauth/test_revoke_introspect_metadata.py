"""Revocation (RFC 7009), introspection (RFC 7662) and metadata (RFC 8414): checklist rows 10, 30, 31."""

from __future__ import annotations

from tests.functional.oauth.helpers import CLIENT_SCOPE, basic

STATUS = "/DataCustodian/espi/1_1/resource/ReadServiceStatus"


def auth(client):
    return {"Authorization": basic(client.client_id, client.client_secret)}


def client_token(testapp, client):
    return testapp.post(
        "/oauth/token", {"grant_type": "client_credentials", "scope": CLIENT_SCOPE}, headers=auth(client)
    ).json["access_token"]


def test_revoking_an_access_token_takes_effect_at_once(testapp, client):
    token = client_token(testapp, client)
    testapp.get(STATUS, headers={"Authorization": f"Bearer {token}"})
    assert testapp.post("/oauth/revoke", {"token": token}, headers=auth(client)).status_int == 200
    testapp.get(STATUS, headers={"Authorization": f"Bearer {token}"}, status=401)


def test_revoking_another_clients_token_answers_200_but_leaves_it(testapp, client, other_client):
    token = client_token(testapp, client)
    assert testapp.post("/oauth/revoke", {"token": token}, headers=auth(other_client)).status_int == 200
    testapp.get(STATUS, headers={"Authorization": f"Bearer {token}"})


def test_revoking_an_unknown_token_answers_200(testapp, client):
    assert testapp.post("/oauth/revoke", {"token": "unknown"}, headers=auth(client)).status_int == 200


def test_revoking_a_refresh_token_kills_its_access_tokens(testapp, client, obtain_code, redeem):
    body = redeem(client, obtain_code(client)).json
    testapp.post(
        "/oauth/revoke",
        {"token": body["refresh_token"], "token_type_hint": "refresh_token"},
        headers=auth(client),
    )
    introspected = testapp.post("/oauth/introspect", {"token": body["access_token"]}, headers=auth(client)).json
    assert introspected == {"active": False}


def test_revoking_an_access_token_also_revokes_its_refresh_token(testapp, client, obtain_code, redeem):
    body = redeem(client, obtain_code(client)).json
    testapp.post("/oauth/revoke", {"token": body["access_token"]}, headers=auth(client))
    response = testapp.post(
        "/oauth/token",
        {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        headers=auth(client),
        status=400,
    )
    assert response.json["error"] == "invalid_grant"


def test_revocation_needs_client_authentication(testapp, client):
    token = client_token(testapp, client)
    response = testapp.post("/oauth/revoke", {"token": token, "client_id": client.client_id}, status=401)
    assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_revocation_refuses_query_parameters(testapp, client):
    testapp.post("/oauth/revoke?token=x", {"token": "x"}, headers=auth(client), status=400)


def test_introspection_of_an_active_token(testapp, client):
    token = client_token(testapp, client)
    body = testapp.post("/oauth/introspect", {"token": token}, headers=auth(client)).json
    assert body["active"] is True
    assert body["client_id"] == client.client_id
    assert body["scope"] == CLIENT_SCOPE
    assert body["token_type"] == "Bearer"
    assert body["exp"] > body["iat"]
    assert body["resourceURI"].endswith("/Authorization")


def test_introspection_without_credentials_is_401(testapp, client):
    token = client_token(testapp, client)
    testapp.post("/oauth/introspect", {"token": token}, status=401)


def test_introspection_by_a_public_client_id_is_401(testapp, client, public_client):
    token = client_token(testapp, client)
    response = testapp.post("/oauth/introspect", {"token": token, "client_id": public_client.client_id}, status=401)
    assert response.json["error"] == "invalid_client"


def test_introspection_of_a_revoked_token_is_inactive(testapp, client):
    token = client_token(testapp, client)
    testapp.post("/oauth/revoke", {"token": token}, headers=auth(client))
    assert testapp.post("/oauth/introspect", {"token": token}, headers=auth(client)).json == {"active": False}


def test_introspection_of_another_clients_token_is_inactive(testapp, client, other_client):
    token = client_token(testapp, client)
    assert testapp.post("/oauth/introspect", {"token": token}, headers=auth(other_client)).json == {"active": False}


def test_metadata_tells_the_truth(testapp):
    document = testapp.get("/.well-known/oauth-authorization-server").json
    assert document["issuer"] == "http://127.0.0.1:8000"
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["response_types_supported"] == ["code"]
    assert document["response_modes_supported"] == ["query"]
    assert sorted(document["grant_types_supported"]) == sorted(
        ["authorization_code", "client_credentials", "refresh_token", "password"]
    )
    assert "implicit" not in document["grant_types_supported"]
    assert document["token_endpoint"] == "http://127.0.0.1:8000/oauth/token"
    assert document["revocation_endpoint"] == "http://127.0.0.1:8000/oauth/revoke"
    assert document["introspection_endpoint"] == "http://127.0.0.1:8000/oauth/introspect"
    assert document["authorization_response_iss_parameter_supported"] is True
    assert set(document["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
        "none",
    }
