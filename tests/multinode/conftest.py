"""Two gateway nodes (``gateway serve``, 2 sync workers each, on two ports) sharing one PostgreSQL database.

This is the production shape behind a load balancer: nothing is shared between the nodes but the database, so
whatever one node does (revoke a consent, rotate a refresh token, count failed client authentications, claim an
outbox message) the other must see on its next request. The database is a fresh one on the session's throwaway
PostgreSQL cluster (``tests/conftest.py``); without PostgreSQL's server binaries these tests are skipped with the
reason printed. The schema is migrated once, in-process, before either node starts (two nodes migrating the same
database at the same instant would race: docs/deploy.md says to run ``gateway init`` before a rollout).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator

import pytest

from gateway.config import Settings
from gateway.customers import add_customer
from gateway.oauth.registration import register_client
from gateway.services import Services
from gateway.storage import migrate
from gateway.storage.engine import session_scope
from gateway.storage.ids import stable_uuid
from gateway.storage.models import UsagePoint
from tests.support.live_gateway import (
    CLIENT_SCOPE,
    PASSWORD,
    REGISTERED_SCOPE,
    SECRET_KEY,
    FakeApp,
    LiveGateway,
)
from tests.support.postgres import PostgresCluster
from tests.support.server import GatewayProcess, free_port

pytestmark = pytest.mark.postgres


@dataclasses.dataclass
class Cluster:
    """Two running nodes on one database, the third party's fake app, and in-process access to the database."""

    a: LiveGateway
    b: LiveGateway
    services: Services
    fake_app: FakeApp

    @property
    def nodes(self) -> tuple[LiveGateway, LiveGateway]:
        return self.a, self.b


def _seed(services: Services, fake_app: FakeApp) -> LiveGateway:
    """Alice (3 usage points), and the third-party app notified at the fake app; return a half-filled node."""
    with session_scope(services.sessions) as session:
        customer = add_customer(
            session, services.passwords, username="alice", email="alice@example.com", password=PASSWORD
        )
        for number in range(3):
            session.add(
                UsagePoint(
                    uuid=stable_uuid("UsagePoint", "alice", number),
                    customer_id=customer.id,
                    service_kind=0,
                    description=f"Alice meter {number + 1}",
                )
            )
        client = register_client(
            session,
            services.settings,
            services.digester,
            name="Energy App",
            redirect_uris=[fake_app.redirect_uri],
            notify_uri=f"{fake_app.base_url}/notify",
            contacts=["dev@app.example.com"],
            scopes=[REGISTERED_SCOPE, CLIENT_SCOPE],
            grant_types=["authorization_code", "refresh_token", "client_credentials"],
        )
    return LiveGateway("", None, services, client, fake_app, {})  # type: ignore[arg-type]


@pytest.fixture(scope="package")
def two_nodes(postgres_cluster: PostgresCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Start nodes A and B (each with its outbox worker) on a fresh database; stop both at the end."""
    tmp = tmp_path_factory.mktemp("multinode")
    database_url = postgres_cluster.create_database("multinode")
    fake_app = FakeApp().start()
    common = {
        "GATEWAY_DATABASE_URL": database_url,
        "GATEWAY_SECRET_KEY": SECRET_KEY,
        "GATEWAY_PASSWORD_TIME_COST": "1",
        "GATEWAY_PASSWORD_MEMORY_KIB": "8",
        # Reuse of a rotated refresh token revokes the whole family at once (no grace period to wait out).
        "GATEWAY_REFRESH_REUSE_GRACE": "0",
    }
    ports = (free_port(), free_port())
    # Both nodes publish the same base URL, as behind a load balancer; node A's port stands in for it.
    public = f"http://127.0.0.1:{ports[0]}"
    services = Services.build(Settings.from_env({**common, "GATEWAY_BASE_URL": public, "GATEWAY_VAR_DIR": str(tmp)}))
    migrate.upgrade(services.engine)
    seeded = _seed(services, fake_app)
    processes: list[GatewayProcess] = []
    nodes: list[LiveGateway] = []
    try:
        for name, port in zip("ab", ports, strict=True):
            environ = {**common, "GATEWAY_BASE_URL": public, "GATEWAY_VAR_DIR": str(tmp / f"node-{name}")}
            process = GatewayProcess(
                ["serve", "--port", str(port), "--workers", "2"], environ, tmp / f"node-{name}.log", port
            )
            processes.append(process.start())
            nodes.append(dataclasses.replace(seeded, base_url=process.base_url, process=process, environ=environ))
        previous = os.environ.get("OAUTHLIB_INSECURE_TRANSPORT")
        os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"  # requests-oauthlib: http on 127.0.0.1 in tests
        try:
            yield Cluster(a=nodes[0], b=nodes[1], services=services, fake_app=fake_app)
        finally:
            if previous is None:
                os.environ.pop("OAUTHLIB_INSECURE_TRANSPORT", None)
            else:
                os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = previous
    finally:
        for process in processes:
            process.stop()
        fake_app.stop()
        services.engine.dispose()


def node_log(node: LiveGateway) -> str:
    """The node's log, for assertion messages."""
    return node.process.output()
