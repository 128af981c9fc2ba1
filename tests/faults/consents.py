"""Third-party apps and customer consents on a live gateway (``tests.faults.live``), for the fault tests' loads.

A consent goes through the real authorization-code flow: HTTP for OAuth (authorize, token), the customer's decision
in-process, as the consent screen records it after the customer clicks "authorize" (``approve`` then
``record_grant``: the Authorization, its Subscription, the consent record, its mails and the app's BatchList).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import secrets
from collections.abc import Sequence
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

from gateway.consent.lifecycle import TERMS_VERSION, DecisionContext, record_grant
from gateway.oauth.authorize import approve
from gateway.oauth.registration import RegisteredClient, register_client
from gateway.services import Services
from gateway.storage.customer import RetailCustomer
from gateway.storage.engine import session_scope
from gateway.storage.oauth import PendingAuthorizationRequest
from tests.support.live_gateway import CLIENT_SCOPE

__all__ = ["REDIRECT", "SCOPE", "Consent", "client_token", "grant_consent", "register_app"]

SCOPE = "FB=1_3_4_5_13_14_39;IntervalDuration=900;BlockDuration=daily"
"""Usage data with costs (no HistoryLength: the fault feeds hold 2024's data) and notifications (FB 39)."""
REDIRECT = "https://fault.example.com/cb"


@dataclasses.dataclass(frozen=True, slots=True)
class Consent:
    """A granted consent as its app holds it."""

    access_token: str
    subscription_id: int
    authorization_id: int


def register_app(services: Services, *, name: str, notify_uri: str | None = None) -> RegisteredClient:
    """A third party that may ask customers for :data:`SCOPE` and use client_credentials (``Authorization`` API)."""
    with session_scope(services.sessions) as session:
        return register_client(
            session,
            services.settings,
            services.digester,
            name=name,
            redirect_uris=[REDIRECT],
            notify_uri=notify_uri,
            scopes=[SCOPE, CLIENT_SCOPE],
            grant_types=["authorization_code", "client_credentials"],
        )


def client_token(base_url: str, app: RegisteredClient) -> str:
    """The app's client access token (client_credentials)."""
    response = requests.post(
        f"{base_url}/oauth/token",
        data={"grant_type": "client_credentials", "scope": CLIENT_SCOPE},
        auth=(app.client_id, app.client_secret),
        timeout=30,
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def grant_consent(
    base_url: str, services: Services, app: RegisteredClient, customer_id: int, usage_point_ids: Sequence[int]
) -> Consent:
    """The customer consents to share ``usage_point_ids`` with ``app``; return what the app then holds."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    query = urlencode(
        {
            "response_type": "code",
            "client_id": app.client_id,
            "redirect_uri": REDIRECT,
            "scope": SCOPE,
            "state": "fault",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    handoff = requests.get(f"{base_url}/oauth/authorize?{query}", allow_redirects=False, timeout=30)
    request_id = parse_qs(urlsplit(handoff.headers["Location"]).query)["request"][0]
    with session_scope(services.sessions) as session:
        customer = session.get(RetailCustomer, customer_id)
        pending = session.get(PendingAuthorizationRequest, request_id)
        assert customer is not None and pending is not None, (customer_id, request_id)
        location = approve(session, services, request_id, customer, usage_point_ids)
        record_grant(
            session,
            services.settings,
            pending=pending,
            customer=customer,
            context=DecisionContext(),
            terms_version=TERMS_VERSION,
        )
    token = requests.post(
        f"{base_url}/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": parse_qs(urlsplit(location).query)["code"][0],
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
        auth=(app.client_id, app.client_secret),
        timeout=30,
    )
    token.raise_for_status()
    body = token.json()
    return Consent(
        str(body["access_token"]),
        int(body["resourceURI"].rsplit("/", 1)[1]),
        int(body["authorizationURI"].rsplit("/", 1)[1]),
    )
