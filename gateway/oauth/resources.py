"""Falcon resources for the OAuth endpoints: ``/oauth/authorize``, ``/oauth/token``, ``/oauth/revoke``,
``/oauth/introspect`` and ``/.well-known/oauth-authorization-server`` (RFC 6749, RFC 7009, RFC 7662, RFC 8414).

Each responder turns the falcon request into oauthlib's inputs, calls the endpoint and passes the answer through
(:mod:`gateway.oauth.falcon_adapter`). Responders return normally even for OAuth errors, so the per-request session
commits what the error path wrote on purpose (throttle counters, the revocation that follows a replayed code).
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol
from urllib.parse import urlencode

import falcon
from oauthlib.oauth2.rfc6749 import errors

from gateway.oauth.authorize import AuthorizationRequests, ErrorPage
from gateway.oauth.falcon_adapter import (
    OAuthRequestError,
    parse_form,
    read_form_body,
    write_oauth_error,
    write_oauth_response,
)
from gateway.oauth.hotpath import HotPath
from gateway.oauth.server import OAuthServer, build_server, metadata
from gateway.oauth.validator import GatewayRequestValidator
from gateway.security.throttle import Throttle
from gateway.services import Services

__all__ = ["CustomerSessions", "FormEndpointResource", "NoCustomerSessions", "OAuthResources"]


class CustomerSessions(Protocol):
    """How the authorization endpoint learns who is logged in (the consent issue plugs in a signed cookie)."""

    def current_customer_id(self, req: falcon.Request) -> int | None:
        """The logged-in customer's id, or ``None``."""


class NoCustomerSessions:
    """Nobody is ever logged in: every authorization request goes to the login page."""

    def current_customer_id(self, req: falcon.Request) -> int | None:
        return None


def _headers(req: falcon.Request) -> dict[str, str]:
    return {name: value for name, value in req.headers.items()}


class _ServerFactory:
    """Build the oauthlib endpoints around validators holding the request's session (microseconds per request)."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._throttle = Throttle()
        self._hot = HotPath.for_engine(services.engine)

    @contextmanager
    def __call__(self, req: falcon.Request) -> Iterator[OAuthServer]:
        s = self._services
        # The source address keys the client-secret throttle: guesses from one source never lock out another.
        client_ip = getattr(req.context, "client_ip", None)
        validator = GatewayRequestValidator(
            req.context.db,
            s.settings,
            s.digester,
            s.passwords,
            throttle=self._throttle,
            reads=self._hot,
            client_ip=client_ip,
            metrics=s.metrics,
        )
        introspection = GatewayRequestValidator(
            req.context.db,
            s.settings,
            s.digester,
            s.passwords,
            throttle=self._throttle,
            reads=self._hot,
            require_client_authentication=True,
            client_ip=client_ip,
        )
        try:
            yield build_server(s.settings, validator, introspection)
        finally:
            validator.close()
            introspection.close()


class AuthorizeResource:
    """``GET /oauth/authorize`` (RFC 6749 §4.1.1): validate, record as pending, hand off to login/consent."""

    def __init__(
        self, requests: AuthorizationRequests, settings_issuer: str, customer_sessions: CustomerSessions
    ) -> None:
        self._requests = requests
        self._issuer = settings_issuer
        self._customer_sessions = customer_sessions

    @staticmethod
    def _error_page(req: falcon.Request, resp: falcon.Response, page: ErrorPage) -> None:
        resp.status = falcon.code_to_http_status(page.status)
        if "text/html" in (req.accept or ""):
            resp.content_type = falcon.MEDIA_HTML
            resp.text = (
                "<!doctype html><html lang=en><meta charset=utf-8><title>Authorization error</title>"
                f"<h1>This authorization request cannot be processed</h1><p>{html.escape(page.error)}: "
                f"{html.escape(page.description)}</p></html>"
            )
        else:
            resp.content_type = falcon.MEDIA_JSON
            resp.text = json.dumps({"error": page.error, "error_description": page.description})

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            pairs = parse_form(req.query_string, strict=False)
        except OAuthRequestError as error:
            # Repeated, undecodable or countless parameters make the request ambiguous: refuse it without
            # redirecting (RFC 6749 §3.1, §4.1.2.1).
            self._error_page(req, resp, ErrorPage("invalid_request", error.description))
            return
        # Re-encoded from the parsed pairs: oauthlib raises on characters it deems invalid (``|``, ``[``) or
        # malformed escapes, while every value, ``state`` included, must reach it (and the client) unchanged.
        uri = f"{self._issuer}/oauth/authorize" + (f"?{urlencode(pairs)}" if pairs else "")
        result = self._requests.start(req.context.db, uri, _headers(req))
        if result.error_page is not None:
            self._error_page(req, resp, result.error_page)
            return
        if result.redirect_to is not None:
            resp.status = falcon.HTTP_302
            resp.location = result.redirect_to
            return
        target = "/consent" if self._customer_sessions.current_customer_id(req) is not None else "/login"
        resp.status = falcon.HTTP_303
        resp.location = f"{target}?request={result.request_id}"


OAuthResponse = tuple[dict[str, str], str | None, int]
EndpointCall = Callable[..., OAuthResponse]


class FormEndpointResource:
    """``POST`` with a form body to an oauthlib endpoint: token, revocation or introspection.

    Token (RFC 6749 §3.2), revocation (RFC 7009 §2) and introspection (RFC 7662 §2) read their body and answer the
    same way; GET gets falcon's 405 (JSON error body). ``endpoint`` picks the oauthlib method to call from the
    request's server, e.g. ``lambda server: server.token.create_token_response``.
    """

    def __init__(
        self,
        servers: _ServerFactory,
        uri: str,
        max_bytes: int,
        endpoint: Callable[[OAuthServer], EndpointCall],
    ) -> None:
        self._servers = servers
        self._uri = uri
        self._max_bytes = max_bytes
        self._endpoint = endpoint

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            body = read_form_body(req, self._max_bytes)
            with self._servers(req) as server:
                headers, text, status = self._endpoint(server)(
                    self._uri, http_method="POST", body=body, headers=_headers(req)
                )
        except (OAuthRequestError, errors.OAuth2Error) as error:
            write_oauth_error(resp, error)
            return
        write_oauth_response(resp, headers, text, status)


class MetadataResource:
    """``GET /.well-known/oauth-authorization-server`` (RFC 8414 §3)."""

    def __init__(self, document: dict[str, object]) -> None:
        self._body = json.dumps(document, indent=2)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_JSON
        resp.set_header("Cache-Control", "public, max-age=3600")
        resp.text = self._body


class OAuthResources:
    """The OAuth resources, built once per app from the process's collaborators."""

    def __init__(self, services: Services, *, customer_sessions: CustomerSessions | None = None) -> None:
        settings = services.settings
        servers = _ServerFactory(services)
        max_bytes = min(settings.max_request_bytes, 64 * 1024)
        self.authorize = AuthorizeResource(
            AuthorizationRequests.from_services(services),
            settings.issuer,
            customer_sessions or NoCustomerSessions(),
        )
        issuer = settings.issuer
        self.token = FormEndpointResource(
            servers, f"{issuer}/oauth/token", max_bytes, lambda server: server.token.create_token_response
        )
        # Ownership is checked; unknown or foreign tokens still answer 200 (RFC 7009 §2.2).
        self.revoke = FormEndpointResource(
            servers,
            f"{issuer}/oauth/revoke",
            max_bytes,
            lambda server: server.revocation.create_revocation_response,
        )
        # Authenticated confidential clients only (RFC 7662 §2.1).
        self.introspect = FormEndpointResource(
            servers,
            f"{issuer}/oauth/introspect",
            max_bytes,
            lambda server: server.introspection.create_introspect_response,
        )
        unbound = GatewayRequestValidator(None, settings, services.digester, services.passwords)
        self.metadata = MetadataResource(metadata(settings, build_server(settings, unbound, unbound)))
