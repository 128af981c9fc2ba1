"""The demo third-party app end to end in a real browser: connect, log in, consent, see the data, revoke, stop."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

from gateway.app import create_app
from gateway.config import Settings
from gateway.customers import add_customer
from gateway.demo import DEMO_APP_CLIENT_ID, DEMO_APP_SCOPE, sample_data_dir
from gateway.espi.ingest import import_feed
from gateway.oauth.registration import register_client
from gateway.resources.demo_app import mount_demo_app
from gateway.services import Services
from gateway.storage import migrate
from gateway.storage.engine import session_scope
from tests.support.server import free_port


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture(scope="module")
def demo_base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The gateway with the demo app mounted, served on 127.0.0.1 from this process (as `gateway demo` would)."""
    tmp: Path = tmp_path_factory.mktemp("demo")
    port = free_port()
    settings = Settings(
        base_url=f"http://127.0.0.1:{port}",
        database_url=f"sqlite:///{tmp / 'demo.sqlite3'}",
        secret_key="demo-test-secret-key-0123456789abcdefghijkl",
        var_dir=tmp,
        password_time_cost=1,
        password_memory_cost_kib=8,
    )
    services = Services.build(settings)
    migrate.upgrade(services.engine)
    with session_scope(services.sessions) as session:
        alice = add_customer(
            session,
            services.passwords,
            username="alice",
            email="alice@example.com",
            password="alice-green-button",
        )
        # A year of hourly gas (the demo's own sample file): the app must show these readings arriving.
        import_feed(session, sample_data_dir() / "home_gas_hourly.xml", customer=alice)
        registered = register_client(
            session,
            settings,
            services.digester,
            client_id=DEMO_APP_CLIENT_ID,
            name="Demo Energy Insights",
            redirect_uris=[f"{settings.base_url}/demo/callback"],
            notify_uri=f"{settings.base_url}/demo/notify",
            scopes=[DEMO_APP_SCOPE],
            grant_types=["authorization_code", "client_credentials", "refresh_token"],
        )
        secret = registered.client_secret or ""
    app = create_app(settings, services=services)
    mount_demo_app(app, settings, client_id=DEMO_APP_CLIENT_ID, client_secret=secret)
    server = make_server("127.0.0.1", port, app, server_class=_ThreadingServer, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield settings.base_url
    finally:
        server.shutdown()
        server.server_close()
        services.engine.dispose()


def test_the_demo_app_end_to_end(page, demo_base_url):
    page.goto(f"{demo_base_url}/demo/")
    page.get_by_role("link", name="Connect my Green Button data").click()
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("alice-green-button")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_label("I have read and accept the Terms & Conditions").check()
    page.get_by_role("button", name="Authorize", exact=True).click()
    page.wait_for_url("**/demo/data")
    assert page.locator("#access-status").inner_text().startswith("Access is active")
    arrived = page.locator("#read-result").inner_text()
    assert arrived.startswith("HTTP 200") and "8760 interval readings" in arrived, arrived
    page.get_by_role("link", name="Manage your consents on the gateway").click()
    page.get_by_role("link", name="Revoke access for Demo Energy Insights").click()
    page.get_by_role("button", name="Proceed").click()
    page.wait_for_url("**/consents?revoked=1")
    page.goto(f"{demo_base_url}/demo/data")
    assert page.locator("#access-status").inner_text().startswith("Access stopped")
    assert page.locator("#read-result").inner_text().startswith("HTTP 401")
