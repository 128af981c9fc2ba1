"""Web hardening of the customer-facing HTML, against the real gateway (rows 11, 13, 15 and 32 of the checklist).

- Every HTML page (login, consent, dashboard, history, revoke confirmation, self-access, error page) sends the
  security headers: a CSP without ``unsafe-inline`` and with ``frame-ancestors 'none'``, ``X-Frame-Options: DENY``,
  ``Referrer-Policy: no-referrer``, ``X-Content-Type-Options: nosniff``.
- Cookies are ``HttpOnly``, ``SameSite``, ``Path=/``; behind https they are ``Secure`` with the ``__Host-`` prefix.
- Every state-changing form found **by parsing the pages' HTML** is submitted without a CSRF token, with a wrong one
  and with another session's token: 403, and the database's data tables are byte-for-byte unchanged.
- The log of this server holds none of the credentials the tests created (row 32, with the session's registry).

Each server runs once per backend (SQLite and PostgreSQL, see ``empty_databases`` in tests/conftest.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests

from tests.blackbox.conftest import start_live, table_rows
from tests.blackbox.secret_registry import registry
from tests.conftest import EmptyDatabases
from tests.support.live_gateway import LiveBrowser, LiveGateway, live_gateway

_VOLATILE_TABLES = ("oauth", "token", "throttle", "session", "rate", "alembic", "pending")


@dataclasses.dataclass
class Form:
    page: str
    action: str
    method: str
    fields: dict[str, list[str]]

    def __str__(self) -> str:
        return f"form POST {self.action} (on {self.page})"


class _Forms(HTMLParser):
    """Collect every <form> with its fields (inputs, checkboxes, buttons with a name)."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.page = page
        self.forms: list[Form] = []
        self._current: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._current = Form(self.page, attributes.get("action", ""), attributes.get("method", "get").lower(), {})
        elif self._current is not None and tag in ("input", "button", "select", "textarea") and attributes.get("name"):
            if attributes.get("type") in ("checkbox", "radio") and "checked" not in attributes:
                value = attributes.get("value", "on")
            else:
                value = attributes.get("value") or "x"
            self._current.fields.setdefault(attributes["name"], []).append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self._current is not None:
            self.forms.append(self._current)
            self._current = None


def forms_of(page: str, html: str) -> list[Form]:
    parser = _Forms(page)
    parser.feed(html)
    return parser.forms


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, empty_databases: EmptyDatabases) -> Iterator[LiveGateway]:
    folder = tmp_path_factory.mktemp(f"hardening-{empty_databases.backend}")
    with live_gateway(folder, database_url=empty_databases.new("hardening")) as running:
        yield running
        # Row 32 for this server too: nothing the tests created here may be in its log.
        leaked = registry.leaked_into(running.process.output())
        assert not leaked, f"checklist row 32: the gateway's log holds credentials created by the tests: {leaked}"


@pytest.fixture(scope="module")
def pages(gateway: LiveGateway) -> dict[str, Any]:
    """Alice logged in with a pending consent request, an active consent and a self-access client; every page."""
    alice = LiveBrowser(gateway)
    alice.grant_and_redeem()  # an active consent, so the dashboard has a revoke link
    request_id, _ = alice.start()
    dashboard = alice.get("/consents")
    consent_id = re.findall(r'href="/consents/([0-9a-f-]{36})/revoke"', dashboard.text)[0]
    self_access = alice.get("/consents/self-access")
    alice.post("/consents/self-access", {"csrf_token": alice.csrf(self_access), "name": "My meter script"})
    responses = {
        "login": LiveBrowser(gateway).get(f"/login?request={request_id}"),
        "consent": alice.get(f"/consent?request={request_id}"),
        "dashboard": alice.get("/consents"),
        "history": alice.get("/consents/history"),
        "revoke confirmation": alice.get(f"/consents/{consent_id}/revoke"),
        "self-access": alice.get("/consents/self-access"),
        "error page": alice.get("/consent?request=no-such-request"),
    }
    bob = LiveBrowser(gateway)
    bob.login(username="bob", password="bob-green-button")
    return {"alice": alice, "bob": bob, "responses": responses, "request_id": request_id}


PAGES = ("login", "consent", "dashboard", "history", "revoke confirmation", "self-access", "error page")


@pytest.mark.parametrize("name", PAGES)
def test_row_13_every_html_page_sends_the_security_headers(pages: dict[str, Any], name: str) -> None:
    """Rows 13 and 15 on every HTML page: no framing, no inline script or style, no referrer, no sniffing."""
    response = pages["responses"][name]
    assert response.headers["Content-Type"].startswith("text/html"), f"{name}: {response.status_code}"
    csp = response.headers.get("Content-Security-Policy", "")
    problems = []
    if "frame-ancestors 'none'" not in csp:
        problems.append(f"CSP without frame-ancestors 'none': {csp!r}")
    if "unsafe-inline" in csp or "unsafe-eval" in csp:
        problems.append(f"CSP allows unsafe-inline/eval: {csp!r}")
    if not re.search(r"(default-src|script-src) ", csp):
        problems.append(f"CSP restricts no scripts: {csp!r}")
    expected = {"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"}
    problems += [
        f"{header}: {response.headers.get(header)!r}"
        for header, value in expected.items()
        if response.headers.get(header) != value
    ]
    assert not problems, f"checklist rows 13/15, {name} page: " + "; ".join(problems)


@pytest.mark.parametrize("name", PAGES)
def test_row_15_pages_have_no_inline_script_or_third_party_resource(pages: dict[str, Any], name: str) -> None:
    """What the CSP forbids is also absent from the markup (a page that needs inline script would break)."""
    text = pages["responses"][name].text
    inline = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>|\son[a-z]+\s*=|<style", text, re.IGNORECASE)
    external = re.findall(r'(?:src|href)="((?:https?:)?//[^"]+)"', text)
    assert not inline, f"checklist row 15, {name} page: inline script/style/handler {inline}"
    assert not external, f"checklist row 15, {name} page: third-party resources {external}"


def _set_cookies(response: requests.Response) -> list[str]:
    return list(response.raw.headers.getlist("Set-Cookie"))


def _check_cookie(header: str, *, https: bool) -> list[str]:
    name = header.split("=", 1)[0]
    attributes = {part.strip().split("=", 1)[0].lower(): part.strip() for part in header.split(";")[1:]}
    problems = []
    if "httponly" not in attributes:
        problems.append(f"{name} is not HttpOnly")
    if attributes.get("samesite", "").lower() not in ("samesite=lax", "samesite=strict"):
        problems.append(f"{name} has no SameSite=Lax/Strict")
    if attributes.get("path", "").lower() != "path=/":
        problems.append(f"{name} is not Path=/")
    if "domain" in attributes:
        problems.append(f"{name} sets a Domain")
    if https and ("secure" not in attributes or not name.startswith("__Host-")):
        problems.append(f"{name} is not Secure with the __Host- prefix behind https")
    return problems


def test_row_11_session_cookies_are_httponly_samesite_host_only(gateway: LiveGateway) -> None:
    """The pre-session and session cookies over http (a loopback test server): HttpOnly, SameSite, Path=/."""
    browser = LiveBrowser(gateway)
    login_page = browser.get("/login")
    page = login_page  # the pre-session cookie is set here
    form = {"csrf_token": browser.csrf(page), "username": "alice", "password": "alice-green-button"}
    logged_in = browser.post("/login", form)
    cookies = _set_cookies(login_page) + _set_cookies(logged_in)
    assert any(c.startswith("gw_session=") for c in cookies), cookies
    problems = [problem for cookie in cookies for problem in _check_cookie(cookie, https=False)]
    assert not problems, "checklist row 11 (cookies): " + "; ".join(problems)


def test_row_11_cookies_are_secure_with_host_prefix_behind_https(
    tmp_path: Path, empty_databases: EmptyDatabases
) -> None:
    """With an https base URL (TLS ended by a trusted proxy on 127.0.0.1), cookies are Secure and __Host-."""
    with start_live(
        tmp_path,
        empty_databases.new("https"),
        GATEWAY_BASE_URL="https://gateway.example",
        GATEWAY_TRUSTED_PROXIES="127.0.0.1/32",
    ) as live:
        response = requests.get(
            live.url("/login"), headers={"X-Forwarded-Proto": "https"}, allow_redirects=False, timeout=10
        )
        plain = requests.get(live.url("/login"), allow_redirects=False, timeout=10)
    cookies = _set_cookies(response)
    assert response.status_code == 200 and cookies, (response.status_code, cookies)
    problems = [problem for cookie in cookies for problem in _check_cookie(cookie, https=True)]
    assert "Strict-Transport-Security" in response.headers, "no HSTS behind https"
    assert plain.status_code == 403, "plain http accepted although the base URL is https"
    assert not problems, "checklist row 11 (cookies behind https): " + "; ".join(problems)


# -- CSRF on every state-changing form ---------------------------------------------------------------------------


def _fingerprint(gateway: LiveGateway) -> str:
    """A digest of every data table's content (token bookkeeping, throttles and sessions left out)."""
    digest = hashlib.sha256()
    for name, rows in table_rows(gateway.services.engine).items():
        if any(word in name.lower() for word in _VOLATILE_TABLES):
            continue
        for row in rows:
            digest.update(repr((name, row)).encode())
    return digest.hexdigest()


def _state_changing_forms(pages: dict[str, Any]) -> list[Form]:
    forms: dict[str, Form] = {}
    for name, response in pages["responses"].items():
        for form in forms_of(name, response.text):
            if form.method == "post":
                forms.setdefault(re.sub(r"[0-9a-f-]{36}|gbc_\w+", "{id}", form.action), form)
    return list(forms.values())


def test_row_11_forms_are_found(pages: dict[str, Any]) -> None:
    """The pages hold the state-changing forms the CSRF test must cover (login, consent, revoke, logout, ...)."""
    actions = {
        re.sub(r"[0-9a-f-]{36}|/[A-Za-z0-9_-]{20,}/", "/{id}/", form.action) for form in _state_changing_forms(pages)
    }
    for expected in ("/login", "/consent", "/logout", "/consents/self-access"):
        assert expected in actions, f"checklist row 11: no {expected} form found among {sorted(actions)}"
    assert any(action.endswith("/revoke") for action in actions), sorted(actions)


@pytest.mark.parametrize("attack", ["no token", "wrong token", "another session's token"])
def test_row_11_csrf_on_every_state_changing_form(gateway: LiveGateway, pages: dict[str, Any], attack: str) -> None:
    """Every POST form, submitted without/with a wrong/with another session's token: 403 and no change at all."""
    alice: LiveBrowser = pages["alice"]
    bob: LiveBrowser = pages["bob"]
    bob_token = bob.csrf(bob.get("/consents"))
    failures = []
    forms = _state_changing_forms(pages)
    assert forms, "no form found"
    for form in forms:
        fields = {name: values for name, values in form.fields.items() if name != "csrf_token"}
        if attack == "wrong token":
            fields["csrf_token"] = ["forged-" + "A" * 40]
        elif attack == "another session's token":
            fields["csrf_token"] = [bob_token]
        # The login form belongs to an anonymous visitor: attack it from a fresh browser with a pre-session.
        browser = alice
        if form.action.startswith("/login"):
            browser = LiveBrowser(gateway)
            browser.get("/login")
        before = _fingerprint(gateway)
        # Always a form-encoded body, as a cross-site <form> would send, even when no field is left.
        response = browser.post(
            form.action,
            urlencode(fields, doseq=True),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        after = _fingerprint(gateway)
        if response.status_code != 403 or "Location" in response.headers or before != after:
            failures.append(
                f"{form}: {response.status_code}{' redirect' if 'Location' in response.headers else ''}"
                f"{' and the database changed' if before != after else ''}"
            )
    # Alice is still logged in: the logout form was refused too.
    assert alice.get("/consents").status_code == 200, "checklist row 11: the forged logout logged alice out"
    assert not failures, f"checklist row 11 (CSRF, {attack}): " + "; ".join(failures)
