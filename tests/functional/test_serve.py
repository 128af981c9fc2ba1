"""``gateway serve`` runs the gateway under gunicorn: migrates first, answers, stops gracefully."""

from __future__ import annotations

import os
import subprocess
import sys

import requests

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
