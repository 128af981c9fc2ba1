"""A demo third-party app under ``/demo/`` (``gateway demo`` only): click through the whole consent journey.

It behaves like any Green Button app and uses only the gateway's public protocol: it sends the browser to
``/oauth/authorize`` with PKCE and ``state``, checks ``state`` and ``iss`` (RFC 9207) on the way back, redeems the code
at ``/oauth/token`` with its client secret, reads the ``resourceURI`` with the access token, and asks
``/oauth/introspect`` whether its token is still alive — so a newcomer can revoke the consent on the dashboard and
watch access stop. Its HTTP calls go to the gateway *in process* (a WSGI call through the full middleware stack),
so a single-worker server never waits on itself. Its state (PKCE verifier, state, tokens) lives in an HttpOnly cookie
scoped to ``/demo``: fine for a loopback demo, not a pattern for production apps (keep tokens server-side).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from typing import Any
from urllib.parse import urlencode, urlsplit

import falcon
import falcon.testing

from gateway.config import Settings
from gateway.demo import DEMO_APP_SCOPE
from gateway.resources.pages import PageRenderer

__all__ = ["DemoApp", "mount_demo_app"]

_COOKIE = "demo_app"
_SCOPE = DEMO_APP_SCOPE  # ask for everything the demo client registered: 15-minute and hourly, gas, bills


class DemoApp:
    """The demo app's pages: ``/demo/``, ``/demo/connect``, ``/demo/callback``, ``/demo/data``, ``/demo/notify``."""

    def __init__(
        self,
        settings: Settings,
        pages: PageRenderer,
        *,
        client_id: str,
        client_secret: str,
        scope: str = _SCOPE,
    ) -> None:
        self._settings = settings
        self._pages = pages
        self._client_id = client_id
        self._client_secret = client_secret
        self._scope = scope
        self._gateway: falcon.App[falcon.Request, falcon.Response] | None = None
        self.notifications: list[str] = []
        parts = urlsplit(settings.base_url)
        self._protocol = parts.scheme
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port

    @property
    def redirect_uri(self) -> str:
        return f"{self._settings.base_url}/demo/callback"

    def attach(self, gateway: falcon.App[falcon.Request, falcon.Response]) -> None:
        """The app whose endpoints the demo calls in process."""
        self._gateway = gateway

    # -- talking to the gateway ---------------------------------------------------------------------------------

    def _call(self, method: str, url: str, **kwargs: Any) -> falcon.testing.Result:
        assert self._gateway is not None, "DemoApp.attach() was not called"
        parts = urlsplit(url)
        return falcon.testing.simulate_request(
            self._gateway,
            method,
            parts.path,
            query_string=parts.query or None,
            protocol=self._protocol,
            host=self._host,
            port=self._port,
            remote_addr="127.0.0.1",
            **kwargs,
        )

    def _basic(self) -> str:
        return "Basic " + base64.b64encode(f"{self._client_id}:{self._client_secret}".encode()).decode()

    def _token(self, form: dict[str, str]) -> falcon.testing.Result:
        return self._call(
            "POST",
            f"{self._settings.issuer}/oauth/token",
            body=urlencode(form),
            headers={"Authorization": self._basic(), "Content-Type": "application/x-www-form-urlencoded"},
        )

    # -- state cookie -------------------------------------------------------------------------------------------

    @staticmethod
    def _state(req: falcon.Request) -> dict[str, Any]:
        raw = req.get_cookie_values(_COOKIE)
        if not raw:
            return {}
        try:
            value = json.loads(base64.urlsafe_b64decode(raw[0].encode()))
        except (ValueError, UnicodeDecodeError):
            return {}
        return value if isinstance(value, dict) else {}

    def _save(self, resp: falcon.Response, state: dict[str, Any]) -> None:
        encoded = base64.urlsafe_b64encode(json.dumps(state).encode()).decode()
        resp.set_cookie(
            _COOKIE,
            encoded,
            path="/demo",
            http_only=True,
            same_site="Lax",
            secure=self._settings.requires_https,
            max_age=86_400,
        )

    def _render(self, resp: falcon.Response, **context: Any) -> None:
        context.setdefault("error", None)
        context.setdefault("connected", False)
        context.setdefault("summary", None)
        context.setdefault("access", None)
        self._pages.render(resp, "demo.html", **context)

    # -- responders ---------------------------------------------------------------------------------------------

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """``/demo/``: what the demo does, and the Connect button."""
        self._render(resp, connected=bool(self._state(req).get("access_token")))

    def on_get_connect(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Start the authorization code flow with PKCE (RFC 7636) and a fresh ``state`` (RFC 6749 §10.12)."""
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
        state = secrets.token_urlsafe(16)
        self._save(resp, {"state": state, "verifier": verifier})
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self._client_id,
                "redirect_uri": self.redirect_uri,
                "scope": self._scope,
                "state": state,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        resp.status = falcon.HTTP_303
        resp.location = f"/oauth/authorize?{query}"

    def on_get_callback(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Check ``state`` and ``iss``, then redeem the code (RFC 6749 §4.1.3; RFC 9207 §2.4)."""
        saved = self._state(req)
        if not saved.get("state") or req.get_param("state") != saved["state"]:
            self._render(resp, error="The answer does not match the request this browser started (state).")
            return
        if req.get_param("iss") != self._settings.issuer:
            self._render(resp, error="The answer came from an unexpected authorization server (iss).")
            return
        if req.get_param("error"):
            self._render(resp, error=f"You did not authorize the demo app ({req.get_param('error')}).")
            return
        answer = self._token(
            {
                "grant_type": "authorization_code",
                "code": req.get_param("code") or "",
                "redirect_uri": self.redirect_uri,
                "code_verifier": saved.get("verifier", ""),
            }
        )
        if answer.status_code != 200:
            self._render(resp, error=f"The token request failed: {answer.text[:200]}")
            return
        tokens = answer.json
        self._save(
            resp,
            {
                key: tokens.get(key)
                for key in ("access_token", "refresh_token", "resourceURI", "authorizationURI", "scope")
            },
        )
        resp.status = falcon.HTTP_303
        resp.location = "/demo/data"

    def on_get_data(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Read the consented data with the access token, and say whether the token still works."""
        saved = self._state(req)
        token = saved.get("access_token")
        if not token:
            self._render(resp, error="Not connected yet.")
            return
        introspection = self._call(
            "POST",
            f"{self._settings.issuer}/oauth/introspect",
            body=urlencode({"token": token}),
            headers={"Authorization": self._basic(), "Content-Type": "application/x-www-form-urlencoded"},
        )
        active = introspection.status_code == 200 and bool(introspection.json.get("active"))
        summary: dict[str, Any] | None = None
        if saved.get("resourceURI"):
            data = self._call("GET", str(saved["resourceURI"]), headers={"Authorization": f"Bearer {token}"})
            summary = {"status": data.status_code, "bytes": len(data.content)}
            if data.status_code == 200:
                summary["entries"] = len(re.findall(rb"<(?:\w+:)?entry[\s>]", data.content))
                summary["readings"] = len(re.findall(rb"<(?:\w+:)?IntervalReading[\s>]", data.content))
            if data.status_code == 401:
                active = False
        self._render(
            resp,
            connected=True,
            access="active" if active else "stopped",
            summary=summary,
            scope=saved.get("scope"),
            resource_uri=saved.get("resourceURI"),
        )

    def on_post_notify(self, req: falcon.Request, resp: falcon.Response) -> None:
        """The app's notify URI: the gateway POSTs an ESPI BatchList when the authorization changes."""
        body = req.bounded_stream.read(64 * 1024).decode("utf-8", "replace")
        self.notifications.append(body)
        del self.notifications[:-20]
        resp.status = falcon.HTTP_200
        resp.text = ""


def mount_demo_app(
    app: falcon.App[falcon.Request, falcon.Response],
    settings: Settings,
    *,
    client_id: str,
    client_secret: str,
    scope: str = _SCOPE,
) -> DemoApp:
    """Mount the demo app on ``app`` under ``/demo/`` (``gateway demo`` calls this with the demo client's secret)."""
    demo = DemoApp(
        settings,
        PageRenderer(site_name="Demo Energy Insights"),
        client_id=client_id,
        client_secret=client_secret,
        scope=scope,
    )
    demo.attach(app)
    app.add_route("/demo/", demo)
    app.add_route("/demo/connect", demo, suffix="connect")
    app.add_route("/demo/callback", demo, suffix="callback")
    app.add_route("/demo/data", demo, suffix="data")
    app.add_route("/demo/notify", demo, suffix="notify")
    return demo
