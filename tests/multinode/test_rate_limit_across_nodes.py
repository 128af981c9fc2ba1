"""Two nodes, one PostgreSQL: a client's rate limit is one budget for the whole cluster (RFC 6585 §4).

Each node runs 2 gunicorn workers: with a bucket per process a client spreading its requests over both nodes would
get four bursts. The buckets live in the database (``gateway/web/rate_limit.py``), so once the client has spent one
burst, whichever node it asks answers 429 with ``Retry-After``. The limits here refill slowly (one ESPI request per
100 s, one validation per minute), so the test needs no waiting and no timing assertions.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from gateway.config import Settings
from gateway.oauth.registration import RegisteredClient, register_client
from gateway.services import Services
from gateway.storage import migrate
from gateway.storage.engine import session_scope
from tests.support.live_gateway import CLIENT_SCOPE, SECRET_KEY
from tests.support.postgres import PostgresCluster
from tests.support.server import GatewayProcess, free_port

pytestmark = pytest.mark.postgres

RATE = 0.01
BURST = 10
VALIDATE_BURST = 3
STATUS = "/DataCustodian/espi/1_1/resource/ReadServiceStatus"
FEED = (
    Path(__file__).resolve().parents[1] / "unit" / "espi" / "validator_cases" / "valid" / "subscription_feed.xml"
).read_bytes()


@dataclasses.dataclass
class Limited:
    """Nodes A and B with small limits, and a third party's client registered on their database."""

    nodes: tuple[GatewayProcess, GatewayProcess]
    client: RegisteredClient

    def token(self) -> str:
        response = requests.post(
            f"{self.nodes[0].base_url}/oauth/token",
            data={"grant_type": "client_credentials", "scope": CLIENT_SCOPE},
            auth=(self.client.client_id, self.client.client_secret or ""),
            timeout=10,
        )
        response.raise_for_status()
        return str(response.json()["access_token"])


@pytest.fixture(scope="module")
def limited(postgres_cluster: PostgresCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Limited]:
    tmp = tmp_path_factory.mktemp("rate-limit-nodes")
    ports = (free_port(), free_port())
    common = {
        "GATEWAY_DATABASE_URL": postgres_cluster.create_database("rate_limit_nodes"),
        "GATEWAY_SECRET_KEY": SECRET_KEY,
        "GATEWAY_BASE_URL": f"http://127.0.0.1:{ports[0]}",
        "GATEWAY_PASSWORD_TIME_COST": "1",
        "GATEWAY_PASSWORD_MEMORY_KIB": "8",
        "GATEWAY_RATE_LIMIT_PER_SECOND": str(RATE),
        "GATEWAY_RATE_LIMIT_BURST": str(BURST),
        "GATEWAY_VALIDATE_RATE_LIMIT_PER_MINUTE": "1",
        "GATEWAY_VALIDATE_RATE_LIMIT_BURST": str(VALIDATE_BURST),
    }
    services = Services.build(Settings.from_env({**common, "GATEWAY_VAR_DIR": str(tmp)}))
    migrate.upgrade(services.engine)
    with session_scope(services.sessions) as session:
        client = register_client(
            session,
            services.settings,
            services.digester,
            name="Busy App",
            redirect_uris=["https://busy.example.com/cb"],
            scopes=[CLIENT_SCOPE],
            grant_types=["authorization_code", "client_credentials"],
        )
    processes: list[GatewayProcess] = []
    try:
        for name, port in zip("ab", ports, strict=True):
            environ = {**common, "GATEWAY_VAR_DIR": str(tmp / f"node-{name}")}
            process = GatewayProcess(
                ["serve", "--port", str(port), "--workers", "2", "--no-worker"], environ, tmp / f"{name}.log", port
            )
            processes.append(process.start())
        yield Limited((processes[0], processes[1]), client)
    finally:
        for process in processes:
            process.stop()
        services.engine.dispose()


def test_a_client_spreading_requests_over_two_nodes_gets_one_burst(limited: Limited) -> None:
    bearer = {"Authorization": f"Bearer {limited.token()}"}
    started = time.monotonic()
    statuses = [
        requests.get(f"{limited.nodes[n % 2].base_url}{STATUS}", headers=bearer, timeout=10).status_code
        for n in range(4 * BURST)  # four processes: a bucket per process would have let every request through
    ]
    refill = int(RATE * (time.monotonic() - started))  # 0 unless this took 100 s or more
    assert set(statuses) == {200, 429}, statuses
    assert BURST <= statuses.count(200) <= BURST + refill, statuses
    refusals = [requests.get(f"{node.base_url}{STATUS}", headers=bearer, timeout=10) for node in limited.nodes]
    assert [response.status_code for response in refusals] == [429, 429]
    for response in refusals:
        assert 1 <= int(response.headers["Retry-After"]) <= 1 / RATE
        assert response.json()["error"] == "too_many_requests"


def test_validate_is_limited_per_address_across_nodes(limited: Limited) -> None:
    started = time.monotonic()
    statuses = [
        requests.post(
            f"{limited.nodes[n % 2].base_url}/validate",
            data=FEED,
            headers={"Content-Type": "application/atom+xml"},
            timeout=60,
        )
        for n in range(2 * VALIDATE_BURST)
    ]
    refill = int((time.monotonic() - started) / 60)  # 0 unless this took a minute or more
    codes = [response.status_code for response in statuses]
    assert set(codes) == {200, 429}, codes
    assert VALIDATE_BURST <= codes.count(200) <= VALIDATE_BURST + refill, codes
    assert all(1 <= int(response.headers["Retry-After"]) <= 60 for response in statuses if response.status_code == 429)
