"""The URL table of the gateway, on one screen."""

from __future__ import annotations

import falcon

from gateway.metrics import DatabaseCollector, outbox_gauges, token_gauges
from gateway.oauth.resources import OAuthResources
from gateway.resources.customer import CustomerPages
from gateway.resources.routes import add_espi_routes
from gateway.resources.validate import ValidateResource
from gateway.services import Services
from gateway.web.auth import BearerAuth
from gateway.web.health import HealthResource
from gateway.web.metrics import MetricsResource
from gateway.web.rate_limit import RateLimiter, sessions_bind

__all__ = ["add_routes"]


def add_routes(app: falcon.App[falcon.Request, falcon.Response], services: Services) -> None:
    """Mount every resource of the gateway on ``app``."""
    app.add_route("/healthz", HealthResource())
    app.add_route("/validate", ValidateResource(services.settings, _validate_limiter(services)))
    app.add_route(
        "/metrics",
        MetricsResource(
            services.metrics,
            DatabaseCollector(services.sessions, [token_gauges, outbox_gauges]),
            services.settings.metrics_networks,
        ),
    )
    pages = CustomerPages(services)
    oauth = OAuthResources(services, customer_sessions=pages.sessions)
    app.add_route("/oauth/authorize", oauth.authorize)
    app.add_route("/oauth/token", oauth.token)
    app.add_route("/oauth/revoke", oauth.revoke)
    app.add_route("/oauth/introspect", oauth.introspect)
    app.add_route("/.well-known/oauth-authorization-server", oauth.metadata)
    app.add_route("/oauth/consent-requests", pages.consent_api)
    app.add_route("/oauth/consent-requests/{consent_request_id}", pages.consent_api, suffix="item")
    app.add_route("/login", pages.login)
    app.add_route("/logout", pages.logout)
    app.add_route("/consent", pages.consent)
    app.add_route("/consents", pages.consents)
    app.add_route("/consents/history", pages.consents, suffix="history")
    app.add_route("/consents/self-access", pages.self_access)
    app.add_route("/consents/self-access/{client_id}/revoke", pages.self_access, suffix="revoke")
    app.add_route("/consents/{consent_id}/revoke", pages.revoke)
    app.add_route("/static/{name}", pages.static)
    add_espi_routes(app, services, bearer_auth=BearerAuth(services.digester, services.engine))


def _validate_limiter(services: Services) -> RateLimiter:
    """``POST /validate``'s limit per client address, shared by every worker and node (RFC 6585 §4)."""
    settings = services.settings
    return RateLimiter(
        settings.validate_rate_limit_per_minute / 60,
        settings.validate_rate_limit_burst,
        bind=sessions_bind(services.sessions),
        name="validate",
    )
