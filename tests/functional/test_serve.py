"""``gateway serve`` runs the gateway under gunicorn: migrates first, answers, stops gracefully."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import requests
from sqlalchemy import text

from gateway.storage import migrate
from gateway.storage.engine import make_engine
from tests.support.server import GatewayProcess, free_port


def test_serve_migrates_answers_and_stops_gracefully(cli_environ, tmp_path):
    port = free_port()
    server = GatewayProcess(["serve", "--port", str(port), "--workers", "2"], cli_environ, tmp_path / "serve.log", port)
    server.start()
    try:
        response = requests.get(f"{server.base_url}/healthz", timeout=5)
        assert response.json() == {"status": "ok", "database": "ok"}
        assert response.headers["X-Request-Id"]
        engine = make_engine(cli_environ["GATEWAY_DATABASE_URL"])
        assert migrate.current_revision(engine) == migrate.head_revision(engine)
        engine.dispose()
    finally:
        status = server.stop()
    assert status == 0, server.output()


def test_serve_refuses_a_bad_configuration(cli_environ, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--port", str(free_port())],
        env={**os.environ, **cli_environ, "GATEWAY_BASE_URL": "http://public.example.com"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "GATEWAY_BASE_URL must use https" in result.stderr


def test_serve_refuses_a_database_ahead_of_the_code(cli_environ, tmp_path):
    engine = make_engine(cli_environ["GATEWAY_DATABASE_URL"])
    migrate.upgrade(engine)
    with engine.begin() as connection:  # as a newer release would leave it, before this code was rolled back to
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--port", str(free_port())],
        env={**os.environ, **cli_environ},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (result.returncode, "error: the database is at revision 9999" in result.stderr) == (1, True), result.stderr


def test_serve_writes_the_master_pid_and_removes_it_on_stop(cli_environ, tmp_path):
    port, pidfile = free_port(), tmp_path / "gateway.pid"
    server = GatewayProcess(
        ["serve", "--port", str(port), "--workers", "1", "--pid", str(pidfile)],
        cli_environ,
        tmp_path / "serve.log",
        port,
    )
    server.start()
    try:
        written = pidfile.read_text().strip()
    finally:
        server.stop()
    assert (written, pidfile.exists()) == (str(server.process.pid), False), server.output()


def _json_object(line: str) -> dict | None:
    try:
        document = json.loads(line)
    except ValueError:
        return None
    return document if isinstance(document, dict) and {"level", "message"} <= document.keys() else None


def test_serve_with_json_logs_writes_only_json_lines_with_the_request_id(cli_environ, tmp_path):
    port = free_port()
    environ = {**cli_environ, "GATEWAY_LOG_FORMAT": "json"}
    server = GatewayProcess(["serve", "--port", str(port), "--workers", "2"], environ, tmp_path / "serve.log", port)
    server.start()
    try:
        requests.get(f"{server.base_url}/healthz", headers={"X-Request-Id": "json-logs-test-1"}, timeout=5)
    finally:
        server.stop()
    # stdout and stderr together, gunicorn's boot, signal and shutdown lines included.
    lines = [line for line in server.output().splitlines() if line.strip()]
    documents = [_json_object(line) for line in lines]
    not_json = [line for line, document in zip(lines, documents, strict=True) if document is None]
    tagged = [(d["logger"], d["route"], d["status"]) for d in documents if d and d["request_id"] == "json-logs-test-1"]
    gunicorn = any(d and d["logger"].startswith("gunicorn.") for d in documents)
    assert (not_json, tagged, gunicorn) == ([], [("gateway.access", "/healthz", 200)], True), lines
