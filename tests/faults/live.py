"""A gateway under gunicorn on 127.0.0.1 for the fault tests, on a database they choose, with a registered client."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import requests

from gateway.config import Settings
from gateway.oauth.registration import RegisteredClient, register_client
from gateway.services import Services
from gateway.storage import migrate
from gateway.storage.engine import session_scope
from tests.support.live_gateway import CLIENT_SCOPE, SECRET_KEY
from tests.support.server import GatewayProcess, free_port

__all__ = ["Served", "serve"]


@dataclasses.dataclass
class Served:
    """The running gateway, in-process services on its database, and a confidential client."""

    process: GatewayProcess
    services: Services
    client: RegisteredClient

    @property
    def base_url(self) -> str:
        return self.process.base_url

    def client_token(self, http: requests.Session | None = None) -> requests.Response:
        """``client_credentials`` at the token endpoint (a write: the token row), answer as it came."""
        return (http or requests).post(
            f"{self.base_url}/oauth/token",
            data={"grant_type": "client_credentials", "scope": CLIENT_SCOPE},
            auth=(self.client.client_id, self.client.client_secret),
            headers={"Connection": "close"},
            timeout=15,
        )


def environ_for(tmp: Path, database_url: str, port: int, **overrides: str) -> dict[str, str]:
    return {
        "GATEWAY_DATABASE_URL": database_url,
        "GATEWAY_VAR_DIR": str(tmp / "var"),
        "GATEWAY_SECRET_KEY": SECRET_KEY,
        "GATEWAY_BASE_URL": f"http://127.0.0.1:{port}",
        "GATEWAY_PASSWORD_TIME_COST": "1",
        "GATEWAY_PASSWORD_MEMORY_KIB": "8",
        **overrides,
    }


@contextlib.contextmanager
def serve(tmp: Path, database_url: str, *, workers: int = 2, **overrides: str) -> Iterator[Served]:
    """Migrate, register a client, start ``gateway serve``; stop it afterwards."""
    port = free_port()
    environ = environ_for(tmp, database_url, port, **overrides)
    services = Services.build(Settings.from_env(environ))
    migrate.upgrade(services.engine)
    with session_scope(services.sessions) as session:
        client = register_client(
            session,
            services.settings,
            services.digester,
            name="Fault App",
            redirect_uris=["https://fault.example.com/cb"],
            scopes=[CLIENT_SCOPE],
            grant_types=["authorization_code", "client_credentials"],
        )
    process = GatewayProcess(
        ["serve", "--port", str(port), "--workers", str(workers)], environ, tmp / "gateway.log", port
    ).start()
    try:
        yield Served(process, services, client)
    finally:
        process.stop()
        services.engine.dispose()
