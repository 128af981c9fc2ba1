"""Login at the authorization step: session cookie, CSRF, throttling, no user enumeration.

The consent issue, item 1.
"""

from __future__ import annotations

import dataclasses

import webtest
from sqlalchemy import select

from gateway.app import create_app
from gateway.storage.consent import CustomerSession
from tests.functional.oauth.helpers import PASSWORD


def _set_cookie_headers(response) -> list[str]:
    return [value for name, value in response.headerlist if name.lower() == "set-cookie"]


def test_authorize_sends_an_anonymous_browser_to_login(browser):
    flow = browser.start()
    page = browser.app.get(f"/login?request={flow.request_id}")
    assert "Energy App" in page.text and page.forms["login-form"]["request"].value == flow.request_id


def test_login_success_answers_303_to_the_consent_page(browser, alice):
    flow = browser.start()
    response = browser.login(flow)
    assert (response.status_int, response.headers["Location"]) == (303, f"/consent?request={flow.request_id}")


def test_session_cookie_is_httponly_and_samesite_lax(browser, alice):
    response = browser.login()
    cookie = next(value for value in _set_cookie_headers(response) if value.startswith("gw_session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie


def test_login_issues_a_new_session_id_not_a_planted_one(browser, alice):
    browser.app.set_cookie("gw_session", "attacker-chosen-session-value")
    browser.login()
    assert browser.app.cookies["gw_session"] != "attacker-chosen-session-value"


def test_wrong_password_and_unknown_user_get_the_same_answer(browser, alice):
    wrong = browser.login(username="alice", password="not the password!")
    unknown = browser.login(username="nobody", password="not the password!")
    assert (wrong.status_int, wrong.html.find(id="login-error").text) == (
        unknown.status_int,
        unknown.html.find(id="login-error").text,
    )


def test_login_is_throttled_even_with_the_right_password(browser, alice):
    for _ in range(10):
        browser.login(password="wrong password here")
    blocked = browser.app.get("/login")
    form = blocked.forms["login-form"]
    form["username"], form["password"] = "alice", PASSWORD
    response = form.submit(status=429)
    assert int(response.headers["Retry-After"]) > 0 and "gw_session" not in browser.app.cookies


def test_login_without_the_csrf_token_is_refused(browser, alice):
    browser.app.get("/login")
    response = browser.app.post("/login", {"username": "alice", "password": PASSWORD}, status=403)
    assert "gw_session" not in browser.app.cookies and "expired" in response.text


def test_logout_deletes_the_session_on_the_server(browser, alice, db):
    browser.login()
    page = browser.app.get("/consents")
    page.forms["logout-form"].submit(status=303)
    assert db.scalars(select(CustomerSession).where(CustomerSession.customer_id == alice.id)).all() == []


def test_over_https_the_cookie_is_secure_and_host_prefixed(settings, services, alice):
    https_settings = settings.replace(base_url="https://gateway.example.com")
    app = create_app(https_settings, services=dataclasses.replace(services, settings=https_settings))
    client = webtest.TestApp(
        app,
        extra_environ={
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": "gateway.example.com",
            "wsgi.url_scheme": "https",
        },
    )
    page = client.get("/login")
    cookie = next(value for value in _set_cookie_headers(page) if value.startswith("__Host-gw_presession="))
    assert "Secure" in cookie and "Path=/" in cookie and "Domain" not in cookie
