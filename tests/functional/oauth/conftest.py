"""Fixtures for the OAuth endpoints driven through WebTest: customers, clients and a code-obtaining helper."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

import pytest

from gateway.oauth.authorize import AuthorizationRequests
from gateway.oauth.registration import RegisteredClient
from gateway.storage.models import ClientRole, RetailCustomer
from tests.functional.oauth.helpers import (
    REDIRECT,
    SCOPE,
    CodeGrant,
    make_client,
    make_customer,
    pkce_pair,
    query_of,
)


@pytest.fixture
def alice(db, services) -> RetailCustomer:
    return make_customer(db, services.passwords, "alice")


@pytest.fixture
def bob(db, services) -> RetailCustomer:
    return make_customer(db, services.passwords, "bob", points=1)


@pytest.fixture
def client(db, services) -> RegisteredClient:
    return make_client(db, services.settings, services.digester)


@pytest.fixture
def other_client(db, services) -> RegisteredClient:
    return make_client(db, services.settings, services.digester, name="Other App")


@pytest.fixture
def public_client(db, services) -> RegisteredClient:
    return make_client(
        db,
        services.settings,
        services.digester,
        name="Phone App",
        public=True,
        grant_types=("authorization_code", "refresh_token"),
    )


@pytest.fixture
def self_access_client(db, services, alice) -> RegisteredClient:
    return make_client(
        db,
        services.settings,
        services.digester,
        name="Alice's own",
        roles=(ClientRole.SELF_ACCESS,),
        grant_types=("password", "refresh_token"),
        owner_customer_id=alice.id,
    )


@pytest.fixture
def requests_service(services) -> AuthorizationRequests:
    return AuthorizationRequests.from_services(services)


@pytest.fixture
def authorize_url() -> Callable[..., str]:
    def build(client_id: str, **overrides: str | None) -> str:
        params: dict[str, str | None] = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT,
            "scope": SCOPE,
            "state": "xyz-state",
        }
        params.update(overrides)
        return "/oauth/authorize?" + urlencode({k: v for k, v in params.items() if v is not None})

    return build


@pytest.fixture
def obtain_code(testapp, db, requests_service, authorize_url, alice) -> Callable[..., CodeGrant]:
    """Play the browser and consent UI: authorize, approve in-process, read the code off the redirect."""

    def obtain(
        client: RegisteredClient,
        *,
        customer: RetailCustomer | None = None,
        scope: str = SCOPE,
        pkce: bool = True,
        redirect_uri: str = REDIRECT,
        granted_scope: str | None = None,
        state: str = "xyz-state",
    ) -> CodeGrant:
        customer = customer or alice
        verifier, challenge = pkce_pair() if pkce else (None, None)
        extra = {"code_challenge": challenge, "code_challenge_method": "S256"} if pkce else {}
        response = testapp.get(
            authorize_url(client.client_id, scope=scope, redirect_uri=redirect_uri, state=state, **extra),
            status=303,
        )
        request_id = query_of(response.headers["Location"])["request"]
        location = requests_service.approve(
            db, request_id, customer, [point.id for point in customer.usage_points], granted_scope
        )
        db.flush()
        params = query_of(location)
        return CodeGrant(params["code"], verifier, redirect_uri, state, location)

    return obtain


@pytest.fixture
def redeem(testapp) -> Callable[..., object]:
    """POST the token request for a code with client_secret_basic."""

    def post(client: RegisteredClient, grant: CodeGrant, *, status: int | str = 200, **overrides: str | None):
        from tests.functional.oauth.helpers import basic

        form: dict[str, str | None] = {
            "grant_type": "authorization_code",
            "code": grant.code,
            "redirect_uri": grant.redirect_uri,
            "code_verifier": grant.verifier,
        }
        form.update(overrides)
        headers = {"Authorization": basic(client.client_id, client.client_secret)} if client.client_secret else {}
        if not client.client_secret:
            form.setdefault("client_id", client.client_id)
        return testapp.post(
            "/oauth/token", {k: v for k, v in form.items() if v is not None}, headers=headers, status=status
        )

    return post
