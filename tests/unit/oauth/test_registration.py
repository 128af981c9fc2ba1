"""Client registration checks: notify URIs the gateway may call, client names that stay on one line."""

from __future__ import annotations

import pytest

from gateway.errors import BadRequest
from gateway.oauth.registration import register_client, validate_notify_uri
from gateway.storage.models import ClientRole
from tests.functional.oauth.helpers import make_client


@pytest.mark.parametrize(
    "uri",
    [
        "http://app.example.com/notify",
        "https://127.0.0.1/notify",
        "https://localhost/notify",
        "https://10.1.2.3/notify",
        "https://172.16.0.1/notify",
        "https://192.168.0.10/notify",
        "https://169.254.169.254/latest/meta-data/",
        "https://100.64.0.1/notify",
        "https://0.0.0.0/notify",
        "https://[::1]/notify",
        "https://[fd00::1]/notify",
        "https://[fe80::1]/notify",
        "https://[::ffff:10.0.0.1]/notify",
        "https://user:pw@app.example.com/notify",
        "https://app.example.com/notify#x",
        "ftp://app.example.com/notify",
    ],
)
def test_notify_uris_the_gateway_must_not_call_are_refused(uri):
    with pytest.raises(BadRequest):
        validate_notify_uri(uri)


@pytest.mark.parametrize("uri", ["https://app.example.com/notify", "https://93.184.215.14:8443/n?x=1"])
def test_public_https_notify_uris_are_accepted(uri):
    assert validate_notify_uri(uri) == uri


@pytest.mark.parametrize("uri", ["http://127.0.0.1:9000/notify", "https://[::1]/notify"])
def test_loopback_notify_uris_are_accepted_in_development(uri):
    assert validate_notify_uri(uri, development=True) == uri


@pytest.mark.parametrize("uri", ["http://app.example.com/notify", "http://10.0.0.1/notify"])
def test_development_still_refuses_plain_http_off_loopback_and_private_hosts(uri):
    with pytest.raises(BadRequest):
        validate_notify_uri(uri, development=True)


def test_register_client_checks_the_notify_uri(db, services):
    with pytest.raises(BadRequest):
        register_client(
            db,
            services.settings.replace(base_url="https://gateway.example.com"),
            services.digester,
            name="Metadata Thief",
            redirect_uris=["https://app.example.com/cb"],
            notify_uri="https://169.254.169.254/latest/meta-data/",
        )


@pytest.mark.parametrize("name", ["Evil\r\nBcc: spy@evil.example", "Tab\tbed", "Line\u2028separated", "Nul\x00"])
def test_client_names_with_control_characters_are_refused(db, services, name):
    with pytest.raises(BadRequest):
        make_client(db, services.settings, services.digester, name=name)


@pytest.mark.parametrize(
    "grant_types", [("authorization_code",), ("client_credentials",), ("password", "refresh_token")]
)
def test_a_third_party_app_needs_two_espi_grant_types(db, services, grant_types):
    """Its ApplicationInformation lists two or more ``grant_types`` (espi.xsd: ``minOccurs="2"``)."""
    with pytest.raises(BadRequest, match="at least two of the ESPI grant types"):
        make_client(db, services.settings, services.digester, grant_types=grant_types)


def test_the_custodians_own_clients_may_use_one_grant_type(db, services):
    uploader = make_client(
        db, services.settings, services.digester, roles=(ClientRole.UPLOAD,), grant_types=("client_credentials",)
    )
    assert uploader.application.grant_types == ["client_credentials"]
    assert not uploader.application.is_third_party


def test_a_public_client_by_default_uses_the_code_flow_and_refresh_tokens(db, services):
    public = make_client(db, services.settings, services.digester, public=True, grant_types=())
    assert public.application.grant_types == ["authorization_code", "refresh_token"]
