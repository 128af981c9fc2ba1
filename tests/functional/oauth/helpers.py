"""Test data and protocol helpers shared by the OAuth functional and black-box tests."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import secrets
from urllib.parse import parse_qs, urlsplit

from sqlalchemy.orm import Session

from gateway.config import Settings
from gateway.customers import add_customer
from gateway.oauth.registration import RegisteredClient, register_client
from gateway.security.digests import SecretDigester
from gateway.security.passwords import PasswordHasher
from gateway.storage.ids import stable_uuid
from gateway.storage.models import ClientRole, RetailCustomer, UsagePoint

SCOPE = "FB=1_3_4_5_13_14_39;IntervalDuration=900;BlockDuration=monthly;HistoryLength=13"
NARROW_SCOPE = "FB=1_3_4;IntervalDuration=900"
WIDE_SCOPE = "FB=1_3_4_5_13_14_15_39;IntervalDuration=900;BlockDuration=monthly;HistoryLength=13"
CLIENT_SCOPE = "FB=3_34_35_36_40_41"
REDIRECT = "https://app.example.com/callback"
OTHER_REDIRECT = "https://app.example.com/other"
LOOPBACK_REDIRECT = "http://127.0.0.1:9000/cb"
PASSWORD = "correct horse battery staple"


def pkce_pair() -> tuple[str, str]:
    """A fresh (verifier, S256 challenge) pair (RFC 7636 §4.1-4.2)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def query_of(location: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query, keep_blank_values=True).items()}


def make_customer(db: Session, passwords: PasswordHasher, username: str, points: int = 2) -> RetailCustomer:
    customer = add_customer(db, passwords, username=username, email=f"{username}@example.com", password=PASSWORD)
    for number in range(points):
        db.add(UsagePoint(uuid=stable_uuid("UsagePoint", username, number), customer_id=customer.id, service_kind=0))
    db.flush()
    db.refresh(customer)
    return customer


def make_client(
    db: Session,
    settings: Settings,
    digester: SecretDigester,
    *,
    name: str = "Energy App",
    grant_types: tuple[str, ...] = ("authorization_code", "refresh_token", "client_credentials"),
    roles: tuple[str, ...] = (ClientRole.THIRD_PARTY,),
    public: bool = False,
    owner_customer_id: int | None = None,
    auth_method: str | None = None,
    scopes: tuple[str, ...] = (WIDE_SCOPE, CLIENT_SCOPE),
    require_pkce: bool = True,
) -> RegisteredClient:
    return register_client(
        db,
        settings,
        digester,
        name=name,
        redirect_uris=[REDIRECT, OTHER_REDIRECT, LOOPBACK_REDIRECT],
        scopes=scopes,
        grant_types=grant_types,
        roles=roles,
        public=public,
        owner_customer_id=owner_customer_id,
        token_endpoint_auth_method=auth_method,
        require_pkce=require_pkce,
    )


@dataclasses.dataclass
class CodeGrant:
    code: str
    verifier: str | None
    redirect_uri: str
    state: str
    location: str
