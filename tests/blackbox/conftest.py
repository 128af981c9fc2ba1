"""The real gateway under gunicorn on 127.0.0.1, with a fresh database, driven over HTTP.

The fixture starts ``gateway serve`` (2 sync workers) once per backend (SQLite, and PostgreSQL on the session's
cluster: see ``empty_databases`` in tests/conftest.py), so every black-box test runs against both; pytest groups the
tests by backend, so one such server runs at a time. Tests arrange data (customers, clients) and play the consent UI
in-process, on the same database, through the same domain functions the consent pages call
(:class:`gateway.oauth.authorize.AuthorizationRequests`); everything else goes over HTTP with ``requests`` and
``requests_oauthlib``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import Engine, Executable, inspect, text

from gateway.config import Settings
from gateway.oauth.authorize import AuthorizationRequests
from gateway.oauth.registration import RegisteredClient
from gateway.services import Services
from gateway.storage.models import RetailCustomer
from tests.blackbox.secret_registry import harvesting, registry
from tests.conftest import TEST_SECRET_KEY, EmptyDatabases
from tests.functional.oauth.helpers import PASSWORD, make_client, make_customer
from tests.support.server import GatewayProcess, free_port


@dataclasses.dataclass
class LiveGateway:
    """A running gateway and in-process access to its database."""

    base_url: str
    services: Services
    process: GatewayProcess

    @property
    def settings(self) -> Settings:
        return self.services.settings

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def resource(self, path: str) -> str:
        return f"{self.base_url}/DataCustodian/espi/1_1/resource/{path}"

    def client(self, **options: Any) -> RegisteredClient:
        with self.services.sessions() as session:
            registered = make_client(session, self.settings, self.services.digester, **options)
            session.commit()
        # Registered in-process, never seen on the wire until used: tell the row 32 log scan about them.
        registry.add("client secret", registered.client_secret)
        registry.add("registration access token", registered.registration_access_token)
        return registered

    def customer(self, points: int = 2) -> RetailCustomer:
        username = f"c{secrets.token_hex(6)}"
        with self.services.sessions() as session:
            customer = make_customer(session, self.services.passwords, username, points=points)
            _ = list(customer.usage_points)
            session.commit()
            return customer

    def approve(self, request_id: str, customer: RetailCustomer, granted_scope: str | None = None) -> str:
        """Play the customer's consent: approve with all their usage points."""
        with self.services.sessions() as session:
            location = AuthorizationRequests.from_services(self.services).approve(
                session, request_id, customer, [point.id for point in customer.usage_points], granted_scope
            )
            session.commit()
            return location

    def deny(self, request_id: str) -> str:
        with self.services.sessions() as session:
            location = AuthorizationRequests.from_services(self.services).deny(session, request_id)
            session.commit()
            return location

    def execute(self, statement: Executable) -> None:
        with self.services.sessions() as session:
            session.execute(statement)
            session.commit()

    def log(self) -> str:
        return self.process.output()

    def dump(self) -> str:
        """Every row of every table of the gateway's database, as text (what a stolen backup would show)."""
        return "\n".join(f"{name}\t{row}" for name, rows in table_rows(self.services.engine).items() for row in rows)


def _as_text(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bytes | memoryview):
        # Decoded rather than hex-encoded: a secret stored as raw bytes must still be found by a substring search.
        return bytes(value).decode("utf-8", "backslashreplace")
    return str(value)


def table_rows(engine: Engine) -> dict[str, list[str]]:
    """Table name -> its rows as tab-separated text, sorted: a dump that reads alike on SQLite and PostgreSQL.

    Read with plain ``SELECT *`` over the tables the database has (not the models'), so a table or column the models
    do not know is dumped too; rows are sorted because PostgreSQL returns an updated row in a new place.
    """
    quote = engine.dialect.identifier_preparer.quote
    with engine.connect() as connection:
        return {
            name: sorted(
                "\t".join(_as_text(value) for value in row)
                for row in connection.execute(text(f"SELECT * FROM {quote(name)}"))
            )
            for name in sorted(inspect(connection).get_table_names())
        }


@contextlib.contextmanager
def start_live(tmp: Path, database_url: str, **overrides: str) -> Iterator[LiveGateway]:
    """Start ``gateway serve`` (2 sync workers) on ``database_url`` (empty: serve migrates it); stop it afterwards."""
    port = free_port()
    environ = {
        "GATEWAY_DATABASE_URL": database_url,
        "GATEWAY_VAR_DIR": str(tmp / "var"),
        "GATEWAY_SECRET_KEY": TEST_SECRET_KEY,
        "GATEWAY_BASE_URL": f"http://127.0.0.1:{port}",
        "GATEWAY_PASSWORD_TIME_COST": "1",
        "GATEWAY_PASSWORD_MEMORY_KIB": "8",
        # Reuse of a rotated refresh token revokes the family at once, so row 19 needs no waiting.
        "GATEWAY_REFRESH_REUSE_GRACE": "0",
        # Debug logging on purpose: row 32 checks that even then no token, code or secret is written.
        "GATEWAY_LOG_LEVEL": "DEBUG",
        **overrides,
    }
    process = GatewayProcess(["serve", "--port", str(port), "--workers", "2"], environ, tmp / "gateway.log", port)
    process.start()
    services = Services.build(Settings.from_env(environ))
    # requests-oauthlib refuses http token URLs unless told this is a test on the loopback interface.
    previous = os.environ.get("OAUTHLIB_INSECURE_TRANSPORT")
    os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
    try:
        yield LiveGateway(base_url=process.base_url, services=services, process=process)
    finally:
        if previous is None:
            os.environ.pop("OAUTHLIB_INSECURE_TRANSPORT", None)
        else:
            os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = previous
        services.engine.dispose()
        process.stop()


@pytest.fixture(scope="package", autouse=True)
def credential_harvest() -> Iterator[None]:
    """Record every credential the black-box tests send or receive (see tests/blackbox/secret_registry.py)."""
    registry.add("customer password", PASSWORD)
    with harvesting(registry):
        yield


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory, empty_databases: EmptyDatabases) -> Iterator[LiveGateway]:
    """The session's gateway on the backend under test (one per backend, torn down when pytest moves to the next)."""
    backend = empty_databases.backend
    with start_live(tmp_path_factory.mktemp(f"blackbox-{backend}"), empty_databases.new("blackbox")) as gateway:
        yield gateway
        # Checklist row 32 over the whole session: by now every black-box test of this backend has run against it.
        leaked = registry.leaked_into(gateway.log())
        assert not leaked, f"checklist row 32 ({backend}): the gateway's log holds credentials of the tests: {leaked}"


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session
