"""The URL table of the gateway, on one screen."""

from __future__ import annotations

import falcon

from gateway.services import Services
from gateway.web.health import HealthResource

__all__ = ["add_routes"]


def add_routes(app: falcon.App, services: Services) -> None:
    """Mount every resource of the gateway on ``app``."""
    app.add_route("/healthz", HealthResource())
