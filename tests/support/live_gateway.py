"""A real gateway under gunicorn on 127.0.0.1, seeded with a customer and a third-party app, plus that app's own tiny
HTTP server (redirect URI and notify URI) — for the consent black-box, SMTP and browser tests.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import html
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

from gateway.config import Settings
from gateway.customers import add_customer
from gateway.oauth.registration import RegisteredClient, register_client
from gateway.services import Services
from gateway.storage import migrate
from gateway.storage.engine import session_scope
from gateway.storage.ids import stable_uuid
from gateway.storage.models import UsagePoint
from tests.support.server import GatewayProcess, free_port

__all__ = ["FakeApp", "LiveBrowser", "LiveGateway", "live_gateway"]

PASSWORD = "alice-green-button"
SCOPE = "FB=1_3_4_5_13_14_39;IntervalDuration=900;BlockDuration=monthly;HistoryLength=13"
REGISTERED_SCOPE = "FB=1_3_4_5_13_14_15_39;IntervalDuration=900;BlockDuration=monthly;HistoryLength=13"
CLIENT_SCOPE = "FB=3_34_35_36_40_41"
SECRET_KEY = "live-test-secret-key-0123456789abcdefghijklmnop"


class FakeApp:
    """The third party: answers its redirect URI and records what arrives at its notify URI."""

    def __init__(self) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.callbacks: list[dict[str, str]] = []
        self.notifications: list[bytes] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def do_GET(self) -> None:
                query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                owner.callbacks.append(query)
                body = (
                    "<!doctype html><html lang=en><title>Energy App</title><h1 id=callback>Back at Energy App</h1>"
                    + "".join(f"<p id=param-{html.escape(k)}>{html.escape(v)}</p>" for k, v in query.items())
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                owner.notifications.append(self.rfile.read(length))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def redirect_uri(self) -> str:
        return f"{self.base_url}/callback"

    def start(self) -> FakeApp:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclasses.dataclass
class LiveGateway:
    """The running gateway, a Services object on its database, its seeded client, and the fake app."""

    base_url: str
    process: GatewayProcess
    services: Services
    client: RegisteredClient
    fake_app: FakeApp
    environ: dict[str, str]

    def basic(self) -> str:
        raw = f"{self.client.client_id}:{self.client.client_secret}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def client_token(self) -> str:
        response = requests.post(
            f"{self.base_url}/oauth/token",
            data={"grant_type": "client_credentials", "scope": CLIENT_SCOPE},
            headers={"Authorization": self.basic()},
            timeout=10,
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def token_request(self, **form: str) -> requests.Response:
        return requests.post(
            f"{self.base_url}/oauth/token", data=form, headers={"Authorization": self.basic()}, timeout=10
        )

    def authorize_url(self, *, state: str = "st-123", scope: str = SCOPE, **extra: str) -> tuple[str, str]:
        """An authorization request URL and its PKCE verifier."""
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
        params = {
            "response_type": "code",
            "client_id": self.client.client_id,
            "redirect_uri": self.fake_app.redirect_uri,
            "scope": scope,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            **extra,
        }
        return f"{self.base_url}/oauth/authorize?{urlencode(params)}", verifier


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class LiveBrowser:
    """A cookie-keeping HTTP client playing the customer's browser (no redirects followed: we look at each hop)."""

    def __init__(self, gateway: LiveGateway) -> None:
        self.gateway = gateway
        self.http = requests.Session()

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        url = path if path.startswith("http") else self.gateway.base_url + path
        return self.http.get(url, allow_redirects=False, timeout=10, **kwargs)

    def post(self, path: str, data: Any, **kwargs: Any) -> requests.Response:
        return self.http.post(self.gateway.base_url + path, data=data, allow_redirects=False, timeout=10, **kwargs)

    @staticmethod
    def csrf(page: requests.Response) -> str:
        match = _CSRF.search(page.text)
        assert match, page.text
        return html.unescape(match.group(1))

    def start(self, **kwargs: str) -> tuple[str, str]:
        """Begin an authorization request; return (request id, PKCE verifier)."""
        url, verifier = self.gateway.authorize_url(**kwargs)
        response = self.get(url)
        assert response.status_code == 303, response.text
        return parse_qs(urlsplit(response.headers["Location"]).query)["request"][0], verifier

    def login(
        self, request_id: str | None = None, *, username: str = "alice", password: str = PASSWORD
    ) -> requests.Response:
        page = self.get("/login" + (f"?request={request_id}" if request_id else ""))
        form = {"csrf_token": self.csrf(page), "username": username, "password": password}
        if request_id:
            form["request"] = request_id
        return self.post("/login", form)

    def consent_form(self, request_id: str) -> tuple[requests.Response, dict[str, Any]]:
        page = self.get(f"/consent?request={request_id}")
        points = re.findall(r'name="usage_point" value="(\d+)"', page.text)
        return page, {
            "csrf_token": self.csrf(page),
            "request": request_id,
            "usage_point": points,
            "accept_terms": "yes",
            "decision": "authorize",
        }

    def decide(self, request_id: str, decision: str = "authorize", **overrides: Any) -> requests.Response:
        _, form = self.consent_form(request_id)
        form.update(decision=decision, **overrides)
        return self.post("/consent", form)

    def revoke_latest(self) -> requests.Response:
        """Revoke the newest active consent from the dashboard, through its confirmation page."""
        page = self.get("/consents")
        consent_id = re.findall(r'href="/consents/([0-9a-f-]{36})/revoke"', page.text)[0]
        confirmation = self.get(f"/consents/{consent_id}/revoke")
        return self.post(f"/consents/{consent_id}/revoke", {"csrf_token": self.csrf(confirmation)})

    def grant_and_redeem(self, **kwargs: str) -> dict[str, Any]:
        request_id, verifier = self.start(**kwargs)
        if not self.http.cookies.get("gw_session"):
            self.login(request_id)
        location = self.decide(request_id).headers["Location"]
        code = parse_qs(urlsplit(location).query)["code"][0]
        response = self.gateway.token_request(
            grant_type="authorization_code",
            code=code,
            redirect_uri=self.gateway.fake_app.redirect_uri,
            code_verifier=verifier,
        )
        response.raise_for_status()
        return dict(response.json())


@contextmanager
def live_gateway(
    tmp_path: Path, *, database_url: str | None = None, extra_environ: dict[str, str] | None = None
) -> Iterator[LiveGateway]:
    """Seed a fresh database (``database_url``, empty; a new SQLite file by default), start the fake app and the
    gateway; stop both afterwards."""
    port = free_port()
    fake_app = FakeApp().start()
    environ = {
        "GATEWAY_DATABASE_URL": database_url or f"sqlite:///{tmp_path / 'gateway.sqlite3'}",
        "GATEWAY_VAR_DIR": str(tmp_path / "var"),
        "GATEWAY_SECRET_KEY": SECRET_KEY,
        "GATEWAY_BASE_URL": f"http://127.0.0.1:{port}",
        "GATEWAY_PASSWORD_TIME_COST": "1",
        "GATEWAY_PASSWORD_MEMORY_KIB": "8",
        **(extra_environ or {}),
    }
    services = Services.build(Settings.from_env(environ))
    migrate.upgrade(services.engine)
    with session_scope(services.sessions) as session:
        for username, points in (("alice", 3), ("bob", 1)):
            customer = add_customer(
                session,
                services.passwords,
                username=username,
                email=f"{username}@example.com",
                password=PASSWORD if username == "alice" else "bob-green-button",
            )
            for number in range(points):
                session.add(
                    UsagePoint(
                        uuid=stable_uuid("UsagePoint", username, number),
                        customer_id=customer.id,
                        service_kind=0,
                        description=f"{username.title()} meter {number + 1}",
                    )
                )
        client = register_client(
            session,
            services.settings,
            services.digester,
            name="Energy App",
            description="Charts your usage.",
            client_uri="https://app.example.com/",
            logo_uri="https://cdn.example.com/logo.png",
            redirect_uris=[fake_app.redirect_uri],
            notify_uri=f"{fake_app.base_url}/notify",
            contacts=["dev@app.example.com"],
            scopes=[REGISTERED_SCOPE, CLIENT_SCOPE],
            grant_types=["authorization_code", "refresh_token", "client_credentials"],
        )
    process = GatewayProcess(["serve", "--port", str(port), "--workers", "2"], environ, tmp_path / "gateway.log", port)
    process.start()
    try:
        yield LiveGateway(f"http://127.0.0.1:{port}", process, services, client, fake_app, environ)
    finally:
        process.stop()
        fake_app.stop()
        services.engine.dispose()
