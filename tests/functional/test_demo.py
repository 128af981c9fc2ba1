"""``gateway demo``: the README's first command loads the demo once, prints where to go, and serves."""

from __future__ import annotations

import json

import requests
from sqlalchemy import func, select

from gateway.cli import main
from gateway.storage.engine import make_engine, make_session_factory
from gateway.storage.models import ApplicationInformation, RetailCustomer, UsagePoint, interval_reading_table
from tests.support.server import GatewayProcess, free_port


def load(capsys, environ) -> dict:
    assert main(["demo", "--no-serve", "--json"], environ=environ) == 0
    return json.loads(capsys.readouterr().out)


def counts(environ) -> tuple[int, ...]:
    engine = make_engine(environ["GATEWAY_DATABASE_URL"])
    with make_session_factory(engine)() as session:
        result = tuple(
            session.scalar(select(func.count()).select_from(table))
            for table in (RetailCustomer, UsagePoint, ApplicationInformation, interval_reading_table)
        )
    engine.dispose()
    return result


def test_demo_loads_customers_data_and_clients(capsys, cli_environ):
    document = load(capsys, cli_environ)
    by_name = {customer["username"]: customer for customer in document["customers"]}
    assert by_name["alice"]["usage_points"] == 2
    assert by_name["bizco"]["usage_points"] == 3
    assert sum(item["interval_readings"] for item in by_name["alice"]["imported"]) == 35_040 + 8_760
    assert document["third_party_app"]["client_id"] == "demo-third-party-app"
    assert document["third_party_app"]["client_secret"]
    assert document["self_access_client"]["owner"] == "alice"


def test_demo_is_idempotent_and_reissues_secrets(capsys, cli_environ):
    first = load(capsys, cli_environ)
    before = counts(cli_environ)
    second = load(capsys, cli_environ)
    assert counts(cli_environ) == before
    assert all(not customer["created"] for customer in second["customers"])
    assert second["third_party_app"]["client_secret"] != first["third_party_app"]["client_secret"]


def test_demo_prints_where_to_go(capsys, cli_environ):
    assert main(["demo", "--no-serve"], environ=cli_environ) == 0
    out = capsys.readouterr().out
    assert "http://127.0.0.1:8000/healthz" in out
    assert "alice" in out and "bizco" in out
    assert "client_secret" in out


def test_demo_serves_and_answers_healthz(cli_environ, tmp_path):
    port = free_port()
    environ = {**cli_environ, "GATEWAY_BASE_URL": f"http://127.0.0.1:{port}"}
    server = GatewayProcess(["demo", "--port", str(port), "--workers", "1"], environ, tmp_path / "demo.log", port)
    server.start(timeout=120)
    try:
        assert requests.get(f"{server.base_url}/healthz", timeout=5).json()["status"] == "ok"
    finally:
        status = server.stop()
    assert status == 0
    assert f"http://127.0.0.1:{port}/healthz" in server.output()
