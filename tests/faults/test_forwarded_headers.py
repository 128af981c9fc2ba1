"""Behind a load balancer: gunicorn believes forwarded headers from exactly the gateway's trusted proxies.

gunicorn's own default (``forwarded_allow_ips`` = loopback) would let any process on the host claim https through
``X-Forwarded-Proto`` although ``GATEWAY_TRUSTED_PROXIES`` is empty, and the https-only gateway would then accept a
plain-http token request (RFC 6749 §3.1, PITFALLS: oauthlib does not enforce https).
"""

from __future__ import annotations

from pathlib import Path

import falcon
import pytest
import requests
from sqlalchemy import create_engine

from gateway.server import GatewayServer, forwarded_allow_ips
from tests.conftest import EmptyDatabases
from tests.faults.live import serve


@pytest.mark.parametrize(
    ("trusted", "expected"),
    [((), []), (("10.0.0.1/8", "192.0.2.7"), ["10.0.0.0/8", "192.0.2.7/32"]), (("::1",), ["::1/128"])],
)
def test_gunicorn_trusts_forwarded_headers_from_the_gateway_proxies_only(trusted, expected) -> None:
    engine = create_engine("sqlite://")
    server = GatewayServer(falcon.App(), engine, host="127.0.0.1", port=0, workers=1, trusted_proxies=trusted)
    assert (forwarded_allow_ips(trusted), server.cfg.forwarded_allow_ips) == (expected, expected)


def test_a_forged_forwarded_proto_from_an_untrusted_peer_is_refused(
    tmp_path: Path, empty_databases: EmptyDatabases
) -> None:
    with serve(tmp_path, empty_databases.new("forwarded"), GATEWAY_BASE_URL="https://gateway.example") as served:
        response = requests.post(
            f"{served.base_url}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(served.client.client_id, served.client.client_secret),
            headers={"X-Forwarded-Proto": "https"},
            timeout=10,
        )
    assert (response.status_code, response.json()["error"]) == (403, "https_required")
