"""The demo: two customers with a year of Green Button data, a demo third-party app and a self-access client.

``gateway demo`` calls :func:`load_demo`, which is idempotent: customers and their data are created once (importing
the same sample files again changes nothing, since resource ids are stable); the apps' secrets are re-issued on
every run so they can be printed (only their digests are stored). The sample files are imported as ``gateway import``
does (:func:`gateway.notifications.import_and_notify`): on a later run, after a customer has connected the demo app,
regenerated sample data is announced to it (FB 39) like any other import, and unchanged data is not.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.customers import add_customer
from gateway.errors import NotFound
from gateway.oauth.registration import register_client, rotate_client_secret
from gateway.services import Services
from gateway.storage.engine import session_scope
from gateway.storage.models import ApplicationInformation, ClientRole, RetailCustomer

__all__ = ["DemoInfo", "describe_demo", "load_demo", "sample_data_dir"]

DEMO_APP_CLIENT_ID = "demo-third-party-app"
DEMO_SELF_ACCESS_CLIENT_ID = "demo-alice-self-access"
# No HistoryLength: the demo data is a fixed calendar year (sample_data/), which a window counted back from today
# would hide a little more every month.
DEMO_APP_SCOPE = "FB=1_3_4_5_8_10_12_13_14_15_16_18_31_35_37_39_40_41;IntervalDuration=900_3600;BlockDuration=daily"


@dataclasses.dataclass(frozen=True, slots=True)
class DemoCustomer:
    username: str
    email: str
    password: str
    files: tuple[str, ...]


DEMO_CUSTOMERS = (
    DemoCustomer(
        "alice",
        "alice@example.com",
        "alice-green-button",
        ("home_electricity_15min.xml", "home_gas_hourly.xml"),
    ),
    DemoCustomer("bizco", "energy@bizco.example.com", "bizco-green-button", ("business_three_usage_points.xml",)),
)


def sample_data_dir() -> Path:
    """The checked-in sample feeds: shipped in the package when installed, else the repository's folder."""
    packaged = Path(__file__).parent / "_sample_data"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[1] / "sample_data"


@dataclasses.dataclass(frozen=True, slots=True)
class DemoInfo:
    """What the demo prints: where to go and how to log in."""

    base_url: str
    customers: list[dict[str, Any]]
    third_party_app: dict[str, Any]
    self_access_client: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _ensure_customer(session: Session, services: Services, spec: DemoCustomer) -> tuple[RetailCustomer, bool]:
    existing = session.scalar(select(RetailCustomer).where(RetailCustomer.username == spec.username))
    if existing is not None:
        return existing, False
    return add_customer(
        session, services.passwords, username=spec.username, email=spec.email, password=spec.password
    ), True


def _ensure_client(
    session: Session, services: Services, *, client_id: str, **registration: Any
) -> tuple[ApplicationInformation, str, str | None]:
    """Register the client once; on later runs issue it a new secret (only digests are stored)."""
    application = session.scalar(select(ApplicationInformation).where(ApplicationInformation.client_id == client_id))
    if application is None:
        registered = register_client(session, services.settings, services.digester, client_id=client_id, **registration)
        return registered.application, registered.client_secret or "", registered.registration_access_token
    return application, rotate_client_secret(application, services.digester), None


def load_demo(services: Services) -> DemoInfo:
    """Create the demo customers, import their sample data, and register the demo clients (idempotent)."""
    from gateway.notifications import import_and_notify

    settings = services.settings
    data_dir = sample_data_dir()
    customers: list[dict[str, Any]] = []
    for spec in DEMO_CUSTOMERS:
        with session_scope(services.sessions) as session:
            customer, created = _ensure_customer(session, services, spec)
            imported = []
            for name in spec.files:
                path = data_dir / name
                if not path.is_file():
                    raise NotFound(f"sample data file {path} is missing: run `gateway sample-data` to generate it")
                report, queued = import_and_notify(session, settings, path, customer=customer)
                imported.append({"file": name, **report.to_json(), "notifications_queued": queued})
            customers.append(
                {
                    "username": spec.username,
                    "password": spec.password,
                    "created": created,
                    "usage_points": len(customer.usage_points),
                    "imported": imported,
                }
            )

    callback = f"{settings.base_url}/demo/callback"
    with session_scope(services.sessions) as session:
        app, app_secret, app_registration_token = _ensure_client(
            session,
            services,
            client_id=DEMO_APP_CLIENT_ID,
            name="Demo Energy Insights",
            description="A demo third-party app that charts your usage once you connect it.",
            redirect_uris=[callback, "http://127.0.0.1:8765/callback"],
            notify_uri=f"{settings.base_url}/demo/notify",
            scopes=[DEMO_APP_SCOPE],
            grant_types=["authorization_code", "client_credentials", "refresh_token"],
            client_uri=f"{settings.base_url}/demo/",
            contacts=["demo-app@example.com"],
        )
        alice = session.scalar(select(RetailCustomer).where(RetailCustomer.username == "alice"))
        assert alice is not None
        self_app, self_secret, _ = _ensure_client(
            session,
            services,
            client_id=DEMO_SELF_ACCESS_CLIENT_ID,
            name="Alice's own data puller",
            description="Alice's self-access client: the password grant, for her own data only.",
            redirect_uris=["http://127.0.0.1:8765/callback"],
            scopes=[DEMO_APP_SCOPE],
            grant_types=["password", "refresh_token"],
            roles=[ClientRole.SELF_ACCESS],
            owner_customer_id=alice.id,
        )
        third_party = {
            "client_id": app.client_id,
            "client_secret": app_secret,
            "redirect_uris": app.redirect_uris,
            "scope": app.scopes[0],
        }
        if app_registration_token:
            third_party["registration_access_token"] = app_registration_token
        self_access = {"client_id": self_app.client_id, "client_secret": self_secret, "owner": "alice"}
    return DemoInfo(
        base_url=settings.base_url, customers=customers, third_party_app=third_party, self_access_client=self_access
    )


def describe_demo(info: DemoInfo) -> str:
    """The text ``gateway demo`` prints: URLs first, then credentials."""
    base = info.base_url
    lines = [
        "Green Button gateway demo",
        "",
        f"  Health check:            {base}/healthz",
        f"  Demo third-party app:    {base}/demo/   (connect, consent, see the data, revoke)",
        f"  Customer dashboard:      {base}/consents",
        f"  OAuth metadata:          {base}/.well-known/oauth-authorization-server",
        f"  Feed validator:          POST a feed to {base}/validate",
        f"  ESPI resources under:    {base}/DataCustodian/espi/1_1/resource/",
        "",
        "Customers (log in at the consent screen):",
    ]
    for customer in info.customers:
        lines.append(
            f"  {customer['username']:<8} password {customer['password']:<22} {customer['usage_points']} usage point(s)"
        )
    app = info.third_party_app
    lines += [
        "",
        "Demo third-party app (confidential client):",
        f"  client_id     {app['client_id']}",
        f"  client_secret {app['client_secret']}",
        f"  redirect URIs {', '.join(app['redirect_uris'])}",
        "",
        "Alice's self-access client (password grant, her own data only):",
        f"  client_id     {info.self_access_client['client_id']}",
        f"  client_secret {info.self_access_client['client_secret']}",
        "",
        "Try it:",
        f"  curl -s -u {info.self_access_client['client_id']}:{info.self_access_client['client_secret']} \\",
        "       -d grant_type=password -d username=alice -d password=alice-green-button \\",
        f"       {base}/oauth/token",
        "",
        "Secrets are re-issued on every `gateway demo` run. Press Ctrl-C to stop.",
    ]
    return "\n".join(lines)
