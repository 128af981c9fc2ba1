"""The customer-facing pages and the consent API, built once per app from the process's collaborators."""

from __future__ import annotations

from gateway.oauth.authorize import AuthorizationRequests
from gateway.resources.consent_api import ConsentRequestsResource
from gateway.resources.consent_screen import ConsentScreenResource
from gateway.resources.dashboard import ConsentsResource, RevokeConsentResource, SelfAccessResource
from gateway.resources.login import LoginResource, LogoutResource
from gateway.resources.pages import PageRenderer, StaticResource
from gateway.security.throttle import Throttle
from gateway.services import Services
from gateway.web.auth import BearerAuth
from gateway.web.csrf import CsrfTokens
from gateway.web.session import CustomerSessionManager

__all__ = ["CustomerPages"]


class CustomerPages:
    """Login, consent screen, dashboard, self-access, static files and the consent API; ``sessions`` is the seam
    the OAuth authorization endpoint asks who is logged in (``OAuthResources(customer_sessions=…)``)."""

    def __init__(self, services: Services) -> None:
        settings = services.settings
        self.sessions = CustomerSessionManager(settings)
        csrf = CsrfTokens(settings.secret_key)
        renderer = PageRenderer()
        requests = AuthorizationRequests.from_services(services)
        self.login = LoginResource(self.sessions, csrf, renderer, services.passwords, requests, Throttle())
        self.logout = LogoutResource(self.sessions, csrf, renderer)
        self.consent = ConsentScreenResource(settings, self.sessions, csrf, renderer, requests)
        self.consents = ConsentsResource(settings, self.sessions, csrf, renderer)
        self.revoke = RevokeConsentResource(settings, self.sessions, csrf, renderer)
        self.self_access = SelfAccessResource(settings, self.sessions, csrf, renderer, services.digester)
        self.consent_api = ConsentRequestsResource(settings, BearerAuth(services.digester, services.engine))
        self.static = StaticResource()
