"""``GET /healthz`` and the headers every response carries."""

from __future__ import annotations


def test_healthz_reports_database_ok(testapp):
    response = testapp.get("/healthz")
    assert response.json == {"status": "ok", "database": "ok"}


def test_every_response_carries_security_headers(testapp):
    response = testapp.get("/healthz")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"


def test_request_id_is_echoed_when_sane(testapp):
    response = testapp.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert response.headers["X-Request-Id"] == "abc-123"


def test_request_id_is_replaced_when_unsafe(testapp):
    response = testapp.get("/healthz", headers={"X-Request-Id": "bad id\r\nwith spaces"})
    assert response.headers["X-Request-Id"] != "bad id\r\nwith spaces"
    assert len(response.headers["X-Request-Id"]) == 32


def test_unknown_route_answers_json_404(testapp):
    response = testapp.get("/no/such/thing", status=404)
    assert response.content_type == "application/json"
    assert response.json["error"] == "not_found" or response.json["title"] == "404 Not Found"


def test_error_body_is_xml_when_client_prefers_xml(testapp):
    response = testapp.get("/no/such/thing", headers={"Accept": "application/atom+xml"}, status=404)
    assert response.content_type == "application/xml"
    assert b"<error>" in response.body
