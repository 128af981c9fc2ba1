"""``GET Subscription/{s}/UsagePoint/{u}`` on a real SQLite file, as gunicorn serves it (RFC 6750 §2.1; ESPI-NOTES §3).

Outside the test suite's savepoint isolation the resource API reads on an autocommit connection of its own
(:mod:`gateway.oauth.hotpath`): the token, the consent's grant and the usage point come back in one query, no ORM
session is made and no write lock is taken. None of that may cost correctness: the very next request after a
revocation is refused, and a usage point outside the consent is still 404.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import webtest
from sqlalchemy import event, update
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import Pool

from gateway.app import create_app
from gateway.oauth.hotpath import HotPath
from gateway.services import Services
from gateway.storage import migrate
from gateway.storage.models import Authorization, ClientRole, OAuthToken
from tests.conftest import make_settings
from tests.functional.oauth.helpers import PASSWORD, basic, make_client, make_customer
from tests.functional.resources.conftest import BASE, FULL_SCOPE, Tree, build_tree
from tests.support.atom import ValidatingTestApp, atom_schema_versions


class CountingSessions(sessionmaker[Session]):
    """The app's session factory, counting the sessions the requests make."""

    made = 0

    def __call__(self, **local_kw: Any) -> Session:
        self.made += 1
        return super().__call__(**local_kw)


@dataclasses.dataclass
class FileGateway:
    testapp: webtest.TestApp
    services: Services
    sessions: CountingSessions
    tree: Tree
    other_tree: Tree
    token: str
    subscription_id: int

    def item(self, usage_point_id: int | None = None, subscription_id: int | None = None) -> str:
        subscription = self.subscription_id if subscription_id is None else subscription_id
        point = self.tree.usage_points[0] if usage_point_id is None else usage_point_id
        return f"{BASE}/Subscription/{subscription}/UsagePoint/{point}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
def gateway(tmp_path) -> Iterator[FileGateway]:
    # Rate limit off: these tests count the statements of the request itself.
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'hot.sqlite3'}", rate_limit_per_second=0.0)
    built = Services.build(settings)
    sessions = CountingSessions(bind=built.engine, expire_on_commit=False)
    services = dataclasses.replace(built, sessions=sessions)
    migrate.upgrade(services.engine)
    with services.sessions() as session:
        alice = make_customer(session, services.passwords, "alice")
        tree = build_tree(session, alice)
        other_tree = build_tree(session, make_customer(session, services.passwords, "bob"), days=1)
        own = make_client(
            session,
            settings,
            services.digester,
            name="Alice's own",
            roles=(ClientRole.SELF_ACCESS,),
            grant_types=("password", "refresh_token"),
            owner_customer_id=alice.id,
            scopes=(FULL_SCOPE,),
        )
        session.commit()
    testapp = ValidatingTestApp(
        create_app(settings, services=services),
        schema_versions=atom_schema_versions(),
        extra_environ={"REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1:8000"},
    )
    body = testapp.post(
        "/oauth/token",
        {"grant_type": "password", "username": "alice", "password": PASSWORD, "scope": FULL_SCOPE},
        headers={"Authorization": basic(own.client_id, own.client_secret)},
    ).json
    subscription_id = int(body["resourceURI"].rsplit("/", 1)[1])
    try:
        yield FileGateway(testapp, services, sessions, tree, other_tree, body["access_token"], subscription_id)
    finally:
        HotPath.for_engine(services.engine).dispose()
        services.engine.dispose()


@pytest.fixture
def statements() -> Iterator[list[str]]:
    """Every SQL statement SQLite runs meanwhile on any connection checked out of any pool (the app's and the hot
    path's own autocommit engine), as SQLite itself reports them: statements the bearer check runs on the driver's
    cursor (gateway.storage.prepared) never pass SQLAlchemy's execution events."""
    seen: list[str] = []
    traced: list[Any] = []

    def trace(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        dbapi_connection.set_trace_callback(seen.append)
        traced.append(dbapi_connection)

    event.listen(Pool, "checkout", trace)
    try:
        yield seen
    finally:
        event.remove(Pool, "checkout", trace)
        for dbapi_connection in traced:
            dbapi_connection.set_trace_callback(None)


def revoke(services: Services, **values: Any) -> None:
    """Commit a change to every token from another session, as another node would."""
    with services.sessions() as session:
        session.execute(update(OAuthToken).values(**values))
        session.commit()


def test_one_query_no_session_and_no_write_lock(gateway, statements):
    gateway.testapp.get(gateway.item(), headers=gateway.headers, status=200)
    made = gateway.sessions.made
    statements.clear()
    response = gateway.testapp.get(gateway.item(), headers=gateway.headers, status=200)
    assert response.headers["Content-Length"] == str(len(response.body))
    assert len(statements) == 1 and "oauth_token" in statements[0] and "usage_point" in statements[0]
    assert gateway.sessions.made == made


def test_revoking_the_token_refuses_the_very_next_request(gateway):
    gateway.testapp.get(gateway.item(), headers=gateway.headers, status=200)
    revoke(gateway.services, revoked_at=dt.datetime.now(dt.UTC))
    gateway.testapp.get(gateway.item(), headers=gateway.headers, status=401)


def test_revoking_the_consent_refuses_the_very_next_request(gateway):
    gateway.testapp.get(gateway.item(), headers=gateway.headers, status=200)
    with gateway.services.sessions() as session:
        session.execute(update(Authorization).values(status=0))
        session.commit()
    gateway.testapp.get(gateway.item(), headers=gateway.headers, status=401)


def test_a_usage_point_outside_the_consent_is_404(gateway):
    gateway.testapp.get(gateway.item(gateway.other_tree.usage_points[0]), headers=gateway.headers, status=404)


def test_another_subscription_is_403(gateway):
    gateway.testapp.get(gateway.item(subscription_id=gateway.subscription_id + 1), headers=gateway.headers, status=403)
