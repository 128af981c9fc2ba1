"""Fixtures for the consent pages driven through WebTest: a customer with meters, an app, and a browser helper."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from urllib.parse import urlencode

import pytest
import webtest

from gateway.oauth.registration import RegisteredClient, register_client
from gateway.storage.models import RetailCustomer
from tests.functional.oauth.helpers import (
    CLIENT_SCOPE,
    PASSWORD,
    REDIRECT,
    SCOPE,
    WIDE_SCOPE,
    basic,
    make_customer,
    pkce_pair,
    query_of,
)


@pytest.fixture
def alice(db, services) -> RetailCustomer:
    customer = make_customer(db, services.passwords, "alice", points=3)
    for number, point in enumerate(customer.usage_points):
        point.description = f"Alice meter {number + 1}"
    db.flush()
    return customer


@pytest.fixture
def bob(db, services) -> RetailCustomer:
    return make_customer(db, services.passwords, "bob", points=1)


@pytest.fixture
def app_client(db, services) -> RegisteredClient:
    return register_client(
        db,
        services.settings,
        services.digester,
        name="Energy App",
        description="Charts your usage.",
        client_uri="https://app.example.com/",
        logo_uri="https://cdn.example.com/logo.png",
        redirect_uris=[REDIRECT],
        notify_uri="https://app.example.com/notify",
        contacts=["dev@app.example.com"],
        scopes=[WIDE_SCOPE, CLIENT_SCOPE],
        grant_types=["authorization_code", "refresh_token", "client_credentials"],
    )


@dataclasses.dataclass
class Flow:
    """One authorization request in flight: its id, PKCE verifier and state."""

    request_id: str
    verifier: str
    state: str


class Browser:
    """The customer's browser on the consent pages (WebTest keeps the cookies)."""

    def __init__(self, testapp: webtest.TestApp, client: RegisteredClient) -> None:
        self.app = testapp
        self.client = client

    def start(self, *, state: str = "st-123", scope: str = SCOPE, **extra: str) -> Flow:
        verifier, challenge = pkce_pair()
        params = {
            "response_type": "code",
            "client_id": self.client.client_id,
            "redirect_uri": REDIRECT,
            "scope": scope,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            **extra,
        }
        response = self.app.get("/oauth/authorize?" + urlencode(params), status=303)
        return Flow(query_of(response.headers["Location"])["request"], verifier, state)

    def login(
        self, flow: Flow | None = None, *, username: str = "alice", password: str = PASSWORD
    ) -> webtest.TestResponse:
        page = self.app.get("/login" + (f"?request={flow.request_id}" if flow else ""))
        form = page.forms["login-form"]
        form["username"] = username
        form["password"] = password
        return form.submit()

    def consent_page(self, flow: Flow, status: int | str = 200) -> webtest.TestResponse:
        return self.app.get(f"/consent?request={flow.request_id}", status=status)

    def decide(
        self,
        flow: Flow,
        decision: str = "authorize",
        *,
        keep: list[int] | None = None,
        accept: bool = True,
        status: int | str = 303,
    ) -> webtest.TestResponse:
        page = self.consent_page(flow)
        form = page.forms["consent-form"]
        if keep is not None:
            for index in range(len(form.fields.get("usage_point", []))):
                box = form.get("usage_point", index=index)
                box.checked = int(box._value) in keep
        form["accept_terms"].checked = accept
        return form.submit("decision", value=decision, status=status)

    def grant(self, flow: Flow | None = None, **kwargs) -> tuple[Flow, dict[str, str]]:
        flow = flow or self.start()
        if self.app.cookies.get("gw_session") is None:
            self.login(flow)
        response = self.decide(flow, **kwargs)
        return flow, query_of(response.headers["Location"])

    def redeem(self, flow: Flow, code: str) -> dict[str, str]:
        response = self.app.post(
            "/oauth/token",
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT,
                "code_verifier": flow.verifier,
            },
            headers={"Authorization": basic(self.client.client_id, self.client.client_secret or "")},
        )
        return response.json

    def csrf(self, page: webtest.TestResponse, form_id: str) -> str:
        return page.forms[form_id]["csrf_token"].value


@pytest.fixture
def browser(testapp, app_client) -> Browser:
    return Browser(testapp, app_client)


@pytest.fixture
def new_browser(app, app_client) -> Callable[[], Browser]:
    """Another browser (its own cookie jar) on the same app."""

    def make() -> Browser:
        other = webtest.TestApp(app, extra_environ={"REMOTE_ADDR": "127.0.0.2", "HTTP_HOST": "127.0.0.1:8000"})
        return Browser(other, app_client)

    return make
