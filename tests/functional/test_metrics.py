"""``/metrics``: Prometheus text with request counts by route and status, tokens issued, tokens and the outbox from
the database."""

from __future__ import annotations

import re

import requests

from tests.functional.oauth.helpers import CLIENT_SCOPE, basic, make_client
from tests.support.server import GatewayProcess, free_port


def test_metrics_count_requests_by_route_template_and_status(testapp):
    testapp.get("/healthz")
    testapp.get("/healthz")
    testapp.get("/no/such/page", status=404)
    body = testapp.get("/metrics").text
    assert 'gateway_http_requests_total{method="GET",route="/healthz",status="200"} 2.0' in body
    assert 'gateway_http_requests_total{method="GET",route="unmatched",status="404"} 1.0' in body
    assert "gateway_http_request_duration_seconds_bucket" in body


def test_metrics_report_tokens_from_the_database(testapp):
    body = testapp.get("/metrics").text
    assert "# TYPE gateway_oauth_tokens gauge" in body


def test_metrics_are_refused_outside_the_allowed_networks(testapp):
    response = testapp.get("/metrics", extra_environ={"REMOTE_ADDR": "203.0.113.5"}, status=403)
    assert "GATEWAY_METRICS_NETWORKS" in response.json["description"]


def test_metrics_add_up_across_gunicorn_workers(cli_environ, tmp_path):
    port = free_port()
    server = GatewayProcess(["serve", "--port", str(port), "--workers", "3"], cli_environ, tmp_path / "s.log", port)
    server.start()
    try:
        with requests.Session() as http:
            for _ in range(30):
                http.get(f"{server.base_url}/healthz", headers={"Connection": "close"}, timeout=5)
        scraped = requests.get(f"{server.base_url}/metrics", timeout=5).text
    finally:
        server.stop()
    match = re.search(r'gateway_http_requests_total\{method="GET",route="/healthz",status="200"\} (\d+)', scraped)
    assert match, scraped
    assert int(float(match.group(1))) >= 31  # 30 here plus start()'s readiness probe(s), whichever worker answered


def test_metrics_have_a_failed_series_for_every_outbox_kind_from_the_start(testapp):
    body = testapp.get("/metrics").text
    assert 'gateway_outbox_messages{kind="espi_batch_list",state="failed"} 0.0' in body


def test_metrics_have_a_tokens_issued_series_for_every_grant_from_the_start(testapp):
    body = testapp.get("/metrics").text
    assert 'gateway_oauth_tokens_issued_total{grant_type="refresh_token"} 0.0' in body


def test_metrics_count_tokens_issued_at_the_token_endpoint(testapp, db, services):
    client = make_client(db, services.settings, services.digester)
    testapp.post(
        "/oauth/token",
        {"grant_type": "client_credentials", "scope": CLIENT_SCOPE},
        headers={"Authorization": basic(client.client_id, client.client_secret)},
    )
    body = testapp.get("/metrics").text
    assert 'gateway_oauth_tokens_issued_total{grant_type="client_credentials"} 1.0' in body
