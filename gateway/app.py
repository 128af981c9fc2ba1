"""The application factory: all wiring, nothing at import time."""

from __future__ import annotations

import falcon

from gateway.config import Settings
from gateway.errors import register_error_handling
from gateway.logs import configure_logging
from gateway.routes import add_routes
from gateway.services import Services
from gateway.web.metrics import MetricsMiddleware
from gateway.web.middleware import (
    DatabaseSessionMiddleware,
    GatewayRequest,
    RequestIdMiddleware,
    SecurityHeadersMiddleware,
)
from gateway.web.transport import TransportSecurityMiddleware

__all__ = ["create_app"]


def create_app(settings: Settings, *, services: Services | None = None) -> falcon.App[falcon.Request, falcon.Response]:
    """Build the WSGI application for ``settings`` (tests pass ``services`` built on their own engine)."""
    configure_logging(settings.log_level, settings.log_format)
    services = services or Services.build(settings)
    app: falcon.App[falcon.Request, falcon.Response] = falcon.App(
        request_type=GatewayRequest,  # its context makes the database session on first use
        middleware=[
            RequestIdMiddleware(),
            MetricsMiddleware(services.metrics),
            SecurityHeadersMiddleware(https=settings.requires_https),
            TransportSecurityMiddleware(
                require_https=settings.requires_https, trusted_proxies=settings.trusted_proxies
            ),
            DatabaseSessionMiddleware(services.sessions),
        ],
    )
    app.req_options.strip_url_path_trailing_slash = False
    app.resp_options.secure_cookies_by_default = settings.requires_https
    register_error_handling(app)
    add_routes(app, services)
    return app
