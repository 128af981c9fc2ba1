"""The URL table of the gateway, on one screen."""

from __future__ import annotations

import falcon

from gateway.metrics import DatabaseCollector, token_gauges
from gateway.resources.validate import ValidateResource
from gateway.services import Services
from gateway.web.health import HealthResource
from gateway.web.metrics import MetricsResource

__all__ = ["add_routes"]


def add_routes(app: falcon.App, services: Services) -> None:
    """Mount every resource of the gateway on ``app``."""
    app.add_route("/healthz", HealthResource())
    app.add_route("/validate", ValidateResource(services.settings))
    app.add_route(
        "/metrics",
        MetricsResource(
            services.metrics,
            DatabaseCollector(services.sessions, [token_gauges]),
            services.settings.metrics_networks,
        ),
    )
