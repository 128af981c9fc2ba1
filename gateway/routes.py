"""The URL table of the gateway, on one screen."""

from __future__ import annotations

import falcon

from gateway.services import Services
from gateway.metrics import DatabaseCollector, token_gauges
from gateway.oauth.resources import OAuthResources
from gateway.web.health import HealthResource
from gateway.web.auth import BearerAuth
from gateway.web.metrics import MetricsResource
from gateway.web.service_status import ReadServiceStatusResource

__all__ = ["add_routes"]


def add_routes(app: falcon.App, services: Services) -> None:
    """Mount every resource of the gateway on ``app``."""
    app.add_route("/healthz", HealthResource())
    app.add_route(
        "/metrics",
        MetricsResource(
            services.metrics,
            DatabaseCollector(services.sessions, [token_gauges]),
            services.settings.metrics_networks,
        ),
    )
    oauth = OAuthResources(services)
    app.add_route("/oauth/authorize", oauth.authorize)
    app.add_route("/oauth/token", oauth.token)
    app.add_route("/oauth/revoke", oauth.revoke)
    app.add_route("/oauth/introspect", oauth.introspect)
    app.add_route("/.well-known/oauth-authorization-server", oauth.metadata)
    resource_base = "/DataCustodian/espi/1_1/resource"
    app.add_route(f"{resource_base}/ReadServiceStatus", ReadServiceStatusResource(BearerAuth(services.digester)))
