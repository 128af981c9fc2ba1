"""Test fixtures shared by the whole suite.

The database backend is a parameter: every test that uses ``engine`` (directly or through ``db``, ``services``,
``app``, ``testapp``) runs on SQLite and, when PostgreSQL's server binaries are installed, on a throwaway PostgreSQL
cluster that this session initdb's and starts on 127.0.0.1 (see ``tests/support/postgres.py``). Without them the
PostgreSQL variants are skipped with the reason printed, unless ``GATEWAY_TEST_REQUIRE_POSTGRES=1`` (CI sets it):
then the session stops at its start with a usage error naming what is missing, so a broken install cannot go green.
``GATEWAY_TEST_BACKENDS=sqlite`` limits the run. Tests that start a real server take a fresh database of the
backend under test from ``empty_databases``.

Isolation is savepoint-per-test (warehouse's pattern): the schema is migrated once per backend, each test runs
inside an outer transaction that is rolled back, and the application's sessions join it with savepoints.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import webtest
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from gateway.app import create_app
from gateway.config import Settings
from gateway.security.digests import SecretDigester
from gateway.security.passwords import PasswordHasher
from gateway.services import Services
from gateway.storage import migrate
from gateway.storage.engine import make_engine
from tests.support.atom import ValidatingTestApp
from tests.support.atom import atom_schema_versions as served_atom_schema_versions
from tests.support.postgres import PostgresCluster, find_postgres_bin, why_no_postgres

ROOT = Path(__file__).resolve().parents[1]
SHARED_ESPI = Path(os.environ.get("GATEWAY_SHARED_ESPI", ROOT.parent / "shared" / "espi")).resolve()

TEST_SECRET_KEY = "test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"
BASE_URL = "http://127.0.0.1:8000"

_BACKENDS = [b.strip() for b in os.environ.get("GATEWAY_TEST_BACKENDS", "sqlite,postgresql").split(",") if b.strip()]
_KNOWN_BACKENDS = ("sqlite", "postgresql")
_REQUIRE_POSTGRES = os.environ.get("GATEWAY_TEST_REQUIRE_POSTGRES", "") == "1"


def pytest_sessionstart(session: pytest.Session) -> None:
    """Refuse to start on an unknown backend name or, with ``GATEWAY_TEST_REQUIRE_POSTGRES=1``, on a machine (or a
    ``GATEWAY_TEST_BACKENDS``) that would skip the PostgreSQL variants."""
    unknown = [backend for backend in _BACKENDS if backend not in _KNOWN_BACKENDS]
    if unknown:
        raise pytest.UsageError(f"unknown backend(s) {unknown} in GATEWAY_TEST_BACKENDS (known: {_KNOWN_BACKENDS})")
    if not _REQUIRE_POSTGRES:
        return
    if "postgresql" not in _BACKENDS:
        raise pytest.UsageError(
            f"GATEWAY_TEST_REQUIRE_POSTGRES=1 but GATEWAY_TEST_BACKENDS={','.join(_BACKENDS)} leaves PostgreSQL out"
        )
    problem = why_no_postgres()
    if problem is not None:
        raise pytest.UsageError(f"GATEWAY_TEST_REQUIRE_POSTGRES=1 but {problem}")


def make_settings(tmp_path: Path, database_url: str, **overrides: object) -> Settings:
    """Settings for tests: cheap password hashing, a fixed key, files under ``tmp_path``."""
    values: dict[str, object] = {
        "base_url": BASE_URL,
        "database_url": database_url,
        "secret_key": TEST_SECRET_KEY,
        "var_dir": tmp_path,
        "password_time_cost": 1,
        "password_memory_cost_kib": 8,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster of our own on 127.0.0.1, for this test session only."""
    problem = why_no_postgres()
    if problem is not None:
        # Unreachable with GATEWAY_TEST_REQUIRE_POSTGRES=1: pytest_sessionstart has already stopped the run.
        pytest.skip(problem)
    bin_dir = find_postgres_bin()
    assert bin_dir is not None
    cluster = PostgresCluster(bin_dir)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="session", params=_BACKENDS)
def database_backend(request: pytest.FixtureRequest) -> str:
    """The backend a part of the session runs on, ``sqlite`` or ``postgresql``: the one parameter every database
    fixture derives from, so that a test using several of them runs once per backend, never on a mix."""
    return str(request.param)


class EmptyDatabases:
    """Fresh, empty databases of one backend, for real servers (``gateway serve`` migrates them at start-up).

    SQLite: a new file in a session folder. PostgreSQL: a new database on the session's cluster.
    """

    def __init__(self, backend: str, folder: Path, cluster: PostgresCluster | None) -> None:
        self.backend = backend
        self.folder = folder
        self.cluster = cluster
        self._numbers = itertools.count(1)

    def new(self, name: str) -> str:
        """The URL of a database nobody else uses; ``name`` (letters, digits, ``_``) says whose it is in failures."""
        unique = f"{re.sub(r'[^a-z0-9_]', '_', name.lower())[:40]}_{next(self._numbers)}"
        if self.cluster is None:
            return f"sqlite:///{self.folder / f'{unique}.sqlite3'}"
        return self.cluster.create_database(unique)


@pytest.fixture(scope="session")
def empty_databases(
    request: pytest.FixtureRequest, database_backend: str, tmp_path_factory: pytest.TempPathFactory
) -> EmptyDatabases:
    """Where tests that start a real gateway get its database, on the backend under test."""
    cluster = request.getfixturevalue("postgres_cluster") if database_backend == "postgresql" else None
    return EmptyDatabases(database_backend, tmp_path_factory.mktemp(f"{database_backend}-servers"), cluster)


@pytest.fixture(scope="session")
def migrated_engine(
    request: pytest.FixtureRequest, database_backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    """An engine per backend, with the schema migrated to head once for the whole session."""
    if database_backend == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'test.sqlite3'}"
    else:
        cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
        url = cluster.create_database("gateway_test")
    engine = make_engine(url)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def backend(migrated_engine: Engine) -> str:
    """The name of the backend this test runs on (``sqlite`` or ``postgresql``)."""
    return migrated_engine.dialect.name


@pytest.fixture
def connection(migrated_engine: Engine) -> Iterator[Connection]:
    """A connection inside an outer transaction rolled back after the test."""
    with migrated_engine.connect() as conn:
        outer = conn.begin()
        try:
            yield conn
        finally:
            if outer.is_active:
                outer.rollback()


@pytest.fixture
def settings(tmp_path: Path, migrated_engine: Engine) -> Settings:
    return make_settings(tmp_path, migrated_engine.url.render_as_string(hide_password=False))


@pytest.fixture
def services(settings: Settings, connection: Connection) -> Services:
    """The app's collaborators, with sessions joining the test's outer transaction through savepoints."""
    return Services(
        settings=settings,
        engine=connection.engine,
        sessions=sessionmaker(bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"),
        passwords=PasswordHasher(time_cost=1, memory_cost_kib=8),
        digester=SecretDigester(settings.secret_key),
    )


@pytest.fixture
def db(services: Services) -> Iterator[Session]:
    """A session for arranging and inspecting data in a test."""
    session = services.sessions()
    try:
        yield session
    finally:
        session.close()


@pytest.fixture
def app(settings: Settings, services: Services):  # type: ignore[no-untyped-def]
    return create_app(settings, services=services)


@pytest.fixture(scope="session")
def atom_schema_versions() -> tuple[str, ...]:
    """The schema sets every served Atom document is checked against (tests/support/atom.py)."""
    return served_atom_schema_versions()


@pytest.fixture
def testapp(app, atom_schema_versions) -> webtest.TestApp:  # type: ignore[no-untyped-def]
    """The WSGI app driven by WebTest, as if over HTTP from 127.0.0.1; every Atom document it serves is checked
    against our schemas and the official ESPI ones (tests/support/atom.py)."""
    return ValidatingTestApp(
        app,
        schema_versions=atom_schema_versions,
        extra_environ={"REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1:8000"},
    )


@pytest.fixture
def fresh_database_url(request: pytest.FixtureRequest, tmp_path: Path, migrated_engine: Engine) -> str:
    """An empty database of the current backend, for tests of migrations and of CLI commands (own transactions)."""
    if migrated_engine.dialect.name == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    return cluster.create_database(f"fresh_{abs(hash(request.node.nodeid)) % 10**12}")


@pytest.fixture
def cli_environ(tmp_path: Path, fresh_database_url: str) -> dict[str, str]:
    """Environment for running ``gateway`` commands in-process against a fresh database."""
    return {
        "GATEWAY_DATABASE_URL": fresh_database_url,
        "GATEWAY_VAR_DIR": str(tmp_path / "var"),
        "GATEWAY_SECRET_KEY": TEST_SECRET_KEY,
        "GATEWAY_BASE_URL": BASE_URL,
        "GATEWAY_PASSWORD_TIME_COST": "1",
        "GATEWAY_PASSWORD_MEMORY_KIB": "8",
    }


@pytest.fixture(scope="session")
def shared_espi() -> Path:
    """The official schemas and real sample files in ``../shared/espi`` (skipped cleanly when absent)."""
    if not SHARED_ESPI.is_dir():
        pytest.skip(f"../shared/espi not found at {SHARED_ESPI}: official schemas and samples unavailable")
    return SHARED_ESPI
