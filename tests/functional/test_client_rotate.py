"""``gateway client rotate-secret``: a new client secret (and registration token) without re-registering the app.

The CLI runs in-process against a fresh database; the token endpoint is the real WSGI app on that same database.
"""

from __future__ import annotations

import json

import pytest
import webtest
from sqlalchemy import select

from gateway.app import create_app
from gateway.config import Settings
from gateway.customers import add_customer
from gateway.services import Services
from gateway.storage.engine import session_scope
from gateway.storage.models import ApplicationInformation, ApplicationStatus
from tests.functional.oauth.helpers import PASSWORD, basic
from tests.functional.test_cli import run, run_json

APPLICATION_INFORMATION = "/DataCustodian/espi/1_1/resource/ApplicationInformation/{id}"


@pytest.fixture
def initialised(capsys, cli_environ) -> dict[str, str]:
    run_json(capsys, cli_environ, "init", "--json")
    return cli_environ


@pytest.fixture
def registered(capsys, initialised) -> dict:
    return run_json(
        capsys, initialised, "client", "add", "--name", "Leaky App", "--redirect-uri", "https://app.example.com/cb"
    )


@pytest.fixture
def services(initialised):
    built = Services.build(Settings.from_env(initialised))
    yield built
    built.engine.dispose()


@pytest.fixture
def http(services) -> webtest.TestApp:
    app = create_app(services.settings, services=services)
    return webtest.TestApp(app, extra_environ={"REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1:8000"})


def client_token(http, client_id: str, secret: str, *, status: int = 200) -> webtest.TestResponse:
    return http.post(
        "/oauth/token",
        {"grant_type": "client_credentials"},
        headers={"Authorization": basic(client_id, secret)},
        status=status,
    )


def test_the_new_secret_works_at_the_token_endpoint(capsys, initialised, registered, http):
    rotated = run_json(capsys, initialised, "client", "rotate-secret", registered["client_id"])
    assert client_token(http, registered["client_id"], rotated["client_secret"]).json["token_type"] == "Bearer"


def test_the_old_secret_is_invalid_client_at_once(capsys, initialised, registered, http):
    run_json(capsys, initialised, "client", "rotate-secret", registered["client_id"])
    response = client_token(http, registered["client_id"], registered["client_secret"], status=401)
    assert response.json["error"] == "invalid_client"


def test_only_the_new_secrets_digest_is_stored(capsys, initialised, registered, services):
    rotated = run_json(capsys, initialised, "client", "rotate-secret", registered["client_id"], "--json")
    with session_scope(services.sessions) as session:
        stored = session.scalar(select(ApplicationInformation.client_secret_digest))
    assert (stored, rotated["client_secret"] != registered["client_secret"]) == (
        services.digester.digest(rotated["client_secret"]),
        True,
    )


def test_grants_made_before_the_rotation_keep_working(capsys, initialised, http, services):
    with session_scope(services.sessions) as session:
        add_customer(session, services.passwords, username="ivy", email="ivy@example.com", password=PASSWORD)
    own = run_json(
        capsys,
        initialised,
        "client",
        "add",
        "--name",
        "Ivy's own",
        "--redirect-uri",
        "https://ivy.example.com/cb",
        "--grant-type",
        "password",
        "--grant-type",
        "refresh_token",
        "--owner",
        "ivy",
    )
    grant = http.post(
        "/oauth/token",
        {"grant_type": "password", "username": "ivy", "password": PASSWORD},
        headers={"Authorization": basic(own["client_id"], own["client_secret"])},
    ).json
    rotated = run_json(capsys, initialised, "client", "rotate-secret", own["client_id"])
    refreshed = http.post(
        "/oauth/token",
        {"grant_type": "refresh_token", "refresh_token": grant["refresh_token"]},
        headers={"Authorization": basic(own["client_id"], rotated["client_secret"])},
    )
    assert refreshed.json["authorizationURI"] == grant["authorizationURI"]


def test_the_registration_token_is_kept_unless_asked(capsys, initialised, registered, http):
    rotated = run_json(capsys, initialised, "client", "rotate-secret", registered["client_id"])
    http.get(
        APPLICATION_INFORMATION.format(id=registered["id"]),
        headers={"Authorization": f"Bearer {registered['registration_access_token']}"},
    )
    assert "registration_access_token" not in rotated


def test_with_registration_token_the_old_one_is_revoked(capsys, initialised, registered, http):
    run_json(capsys, initialised, "client", "rotate-secret", registered["client_id"], "--registration-token")
    http.get(
        APPLICATION_INFORMATION.format(id=registered["id"]),
        headers={"Authorization": f"Bearer {registered['registration_access_token']}"},
        status=401,
    )


def test_with_registration_token_a_new_one_works(capsys, initialised, registered, http):
    rotated = run_json(capsys, initialised, "client", "rotate-secret", registered["client_id"], "--registration-token")
    response = http.get(
        APPLICATION_INFORMATION.format(id=registered["id"]),
        headers={"Authorization": f"Bearer {rotated['registration_access_token']}"},
    )
    assert rotated["registration_client_uri"] == registered["registration_client_uri"]
    assert response.status_int == 200


def test_an_unknown_client_id_is_an_error(capsys, initialised):
    status, out, err = run(capsys, initialised, "client", "rotate-secret", "gbc_nosuchclient")
    assert (status, out, err) == (1, "", "error: no client with client_id 'gbc_nosuchclient'\n")


def test_a_public_client_is_refused(capsys, initialised):
    public = run_json(
        capsys,
        initialised,
        "client",
        "add",
        "--name",
        "Phone",
        "--public",
        "--redirect-uri",
        "http://127.0.0.1:7777/cb",
        "--grant-type",
        "authorization_code",
        "--grant-type",
        "refresh_token",
    )
    status, out, err = run(capsys, initialised, "client", "rotate-secret", public["client_id"])
    assert (status, out, "public client" in err, err.startswith("error: ")) == (1, "", True, True)


def test_json_errors_are_machine_readable(capsys, initialised):
    status, _, err = run(capsys, initialised, "client", "rotate-secret", "gbc_nosuchclient", "--json")
    assert (status, json.loads(err)["error"]) == (1, "not_found")


def test_a_deregistered_client_is_refused(capsys, initialised, registered, services):
    with session_scope(services.sessions) as session:
        application = session.scalar(select(ApplicationInformation))
        assert application is not None
        application.status = ApplicationStatus.REVOKED
    status, out, err = run(capsys, initialised, "client", "rotate-secret", registered["client_id"])
    assert (status, out, "deregistered" in err) == (1, "", True)
