"""client_credentials (RFC 6749 §4.4) and the ESPI client access token contract (ESPI-NOTES §3-4)."""

from __future__ import annotations

from sqlalchemy import select

from gateway.storage.models import Authorization, AuthorizationKind, ClientRole
from tests.functional.oauth.helpers import CLIENT_SCOPE, basic, make_client

RB = "http://127.0.0.1:8000/DataCustodian/espi/1_1/resource"
STATUS = "/DataCustodian/espi/1_1/resource/ReadServiceStatus"


def client_token(testapp, client, **form):
    data = {"grant_type": "client_credentials", "scope": CLIENT_SCOPE, **form}
    return testapp.post("/oauth/token", data, headers={"Authorization": basic(client.client_id, client.client_secret)})


def test_client_token_response_is_the_espi_contract(testapp, client, db):
    response = client_token(testapp, client)
    body = response.json
    authorization = db.scalar(select(Authorization).where(Authorization.kind == AuthorizationKind.CLIENT))
    assert set(body) == {
        "access_token",
        "token_type",
        "expires_in",
        "scope",
        "resourceURI",
        "authorizationURI",
    }
    assert body["resourceURI"] == f"{RB}/Authorization"
    assert body["authorizationURI"] == f"{RB}/Authorization/{authorization.id}"
    assert body["scope"] == CLIENT_SCOPE
    assert response.headers["Cache-Control"] == "no-store"


def test_scopeless_request_gets_the_registered_default(testapp, client):
    body = testapp.post(
        "/oauth/token",
        {"grant_type": "client_credentials"},
        headers={"Authorization": basic(client.client_id, client.client_secret)},
    ).json
    assert body["scope"]


def test_offline_access_is_not_for_client_credentials(testapp, client):
    response = testapp.post(
        "/oauth/token",
        {"grant_type": "client_credentials", "scope": f"{CLIENT_SCOPE} offline_access"},
        headers={"Authorization": basic(client.client_id, client.client_secret)},
        status=400,
    )
    assert response.json["error"] == "invalid_scope"


def test_the_same_client_authorization_is_reused(testapp, client):
    first = client_token(testapp, client).json
    second = client_token(testapp, client).json
    assert first["authorizationURI"] == second["authorizationURI"]
    assert first["access_token"] != second["access_token"]


def test_client_token_reads_service_status(testapp, client):
    token = client_token(testapp, client).json["access_token"]
    response = testapp.get(STATUS, headers={"Authorization": f"Bearer {token}"})
    assert response.content_type == "application/atom+xml"
    assert b"<currentStatus>1</currentStatus>" in response.body


def test_registration_token_is_forbidden_on_service_status(testapp, client):
    response = testapp.get(STATUS, headers={"Authorization": f"Bearer {client.registration_access_token}"}, status=403)
    assert "insufficient_scope" in response.headers["WWW-Authenticate"]


def test_no_token_is_401(testapp):
    response = testapp.get(STATUS, status=401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_token_in_query_is_refused(testapp, client):
    token = client_token(testapp, client).json["access_token"]
    testapp.get(f"{STATUS}?access_token={token}", status=401)
    testapp.get(f"{STATUS}?access_token={token}", headers={"Authorization": f"Bearer {token}"}, status=401)


def test_unknown_token_is_401(testapp):
    testapp.get(STATUS, headers={"Authorization": "Bearer nope"}, status=401)


def test_upload_client_gets_an_upload_token(testapp, db, services):
    uploader = make_client(db, services.settings, services.digester, roles=(ClientRole.UPLOAD,))
    token = client_token(testapp, uploader).json["access_token"]
    testapp.get(STATUS, headers={"Authorization": f"Bearer {token}"}, status=403)


def test_client_without_the_grant_is_unauthorized_client(testapp, db, services):
    code_only = make_client(
        db, services.settings, services.digester, grant_types=("authorization_code", "refresh_token")
    )
    response = testapp.post(
        "/oauth/token",
        {"grant_type": "client_credentials"},
        headers={"Authorization": basic(code_only.client_id, code_only.client_secret)},
        status=400,
    )
    assert response.json["error"] == "unauthorized_client"
