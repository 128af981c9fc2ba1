"""https enforcement and trusted proxies (RFC 6749 §10.9, RFC 9700 §2)."""

from __future__ import annotations

import falcon
import falcon.testing
import pytest

from gateway.errors import register_error_handling
from gateway.web.transport import TransportSecurityMiddleware


class Echo:
    def on_get(self, req, resp):
        resp.media = {"scheme": req.context.scheme, "client_ip": req.context.client_ip}


def client(*, require_https: bool, trusted: tuple[str, ...] = ()) -> falcon.testing.TestClient:
    app = falcon.App(middleware=[TransportSecurityMiddleware(require_https=require_https, trusted_proxies=trusted)])
    register_error_handling(app)
    app.add_route("/echo", Echo())
    app.add_route("/healthz", Echo())
    return falcon.testing.TestClient(app)


def test_plain_http_is_refused_when_the_gateway_is_public():
    result = client(require_https=True).simulate_get("/echo", remote_addr="203.0.113.9")
    assert result.status_code == 403
    assert result.json["error"] == "https_required"


def test_https_is_accepted():
    result = client(require_https=True).simulate_get("/echo", protocol="https", remote_addr="203.0.113.9")
    assert result.json == {"scheme": "https", "client_ip": "203.0.113.9"}


def test_health_probe_over_http_is_allowed():
    assert client(require_https=True).simulate_get("/healthz").status_code == 200


def test_forwarded_headers_from_an_untrusted_peer_are_ignored():
    result = client(require_https=True, trusted=("10.0.0.0/8",)).simulate_get(
        "/echo", remote_addr="203.0.113.9", headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "1.2.3.4"}
    )
    assert result.status_code == 403


def test_forwarded_headers_from_a_trusted_proxy_are_believed():
    result = client(require_https=True, trusted=("10.0.0.0/8",)).simulate_get(
        "/echo",
        remote_addr="10.1.2.3",
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.7, 10.9.9.9"},
    )
    assert result.json == {"scheme": "https", "client_ip": "198.51.100.7"}


def test_client_cannot_spoof_its_address_through_a_trusted_proxy():
    # The client sent "X-Forwarded-For: 127.0.0.1"; our proxy appended the real address.
    result = client(require_https=True, trusted=("10.0.0.0/8",)).simulate_get(
        "/echo",
        remote_addr="10.1.2.3",
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "127.0.0.1, 198.51.100.7"},
    )
    assert result.json["client_ip"] == "198.51.100.7"


def test_loopback_development_allows_http():
    result = client(require_https=False).simulate_get("/echo")
    assert result.json["scheme"] == "http"


@pytest.mark.parametrize("bad", ["not-an-ip", "10.0.0.0/33"])
def test_bad_trusted_proxy_setting_is_a_configuration_error(tmp_path, bad):
    from gateway.config import ConfigurationError, Settings

    with pytest.raises(ConfigurationError, match="GATEWAY_TRUSTED_PROXIES"):
        Settings.from_env({"GATEWAY_VAR_DIR": str(tmp_path), "GATEWAY_TRUSTED_PROXIES": bad})


def test_a_client_supplied_forwarded_proto_before_the_proxys_is_ignored():
    # A proxy that appends: the client's claim comes first, the proxy's truth last.
    result = client(require_https=True, trusted=("10.0.0.0/8",)).simulate_get(
        "/echo", remote_addr="10.1.2.3", headers={"X-Forwarded-Proto": "https, http"}
    )
    assert result.status_code == 403
