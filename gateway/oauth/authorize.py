"""The authorization endpoint's protocol side and the decisions the consent pages record (RFC 6749 §4.1.1-4.1.2).

``start`` validates an authorization request with oauthlib and records it server-side as a pending request; the
login and consent pages (the consent issue) then show it and call ``approve`` or ``deny``, which answer the URL to
send the browser to: the client's registered redirect URI with ``code`` (or ``error``), ``state`` and ``iss``
(RFC 9207). Errors about the client or its redirect URI never redirect (RFC 6749 §4.1.2.1). No falcon here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

from oauthlib.common import add_params_to_uri
from oauthlib.oauth2.rfc6749 import errors
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from gateway.config import Settings
from gateway.consent.describe import commodity_name, shared_service_kinds
from gateway.errors import BadRequest, Conflict, NotFound
from gateway.oauth.scope import RequestedScope, ScopeError, parse_scope
from gateway.oauth.server import OAuthServer, build_server
from gateway.oauth.validator import GatewayRequestValidator, client_of, redirect_uri_matches
from gateway.security.digests import SecretDigester, new_secret
from gateway.security.passwords import PasswordHasher
from gateway.storage.base import utcnow
from gateway.storage.models import (
    ApplicationInformation,
    ApplicationStatus,
    Authorization,
    AuthorizationKind,
    AuthorizationStatus,
    RetailCustomer,
    Subscription,
    UsagePoint,
)
from gateway.storage.oauth import AuthorizationCode, PendingAuthorizationRequest

if TYPE_CHECKING:
    from gateway.services import Services

__all__ = ["AuthorizationRequests", "ErrorPage", "StartResult", "approve", "deny", "purge_expired_requests"]

PENDING_REQUEST_TTL = 600
"""How long a customer has to log in and decide (seconds)."""


@dataclasses.dataclass(frozen=True, slots=True)
class ErrorPage:
    """An error shown to the user agent, never redirected: bad client or redirect URI (RFC 6749 §4.1.2.1)."""

    error: str
    description: str
    status: int = 400


@dataclasses.dataclass(frozen=True, slots=True)
class StartResult:
    """Exactly one field is set: a pending request id, an error redirect, or an error page."""

    request_id: str | None = None
    redirect_to: str | None = None
    error_page: ErrorPage | None = None


class AuthorizationRequests:
    """Pending authorization requests: validated on arrival, decided once by the customer."""

    def __init__(
        self,
        settings: Settings,
        digester: SecretDigester,
        passwords: PasswordHasher,
        *,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self._settings = settings
        self._digester = digester
        self._passwords = passwords
        self._clock = clock

    @classmethod
    def from_services(cls, services: Services) -> AuthorizationRequests:
        """Build from the process's collaborators."""
        return cls(services.settings, services.digester, services.passwords)

    def _server(self, session: Session) -> tuple[OAuthServer, GatewayRequestValidator]:
        validator = GatewayRequestValidator(session, self._settings, self._digester, self._passwords, clock=self._clock)
        return build_server(self._settings, validator, validator), validator

    def _error_redirect(self, redirect_uri: str, error: str, description: str | None, state: str | None) -> str:
        """An error response to the client (RFC 6749 §4.1.2.1) carrying ``state`` and ``iss`` (RFC 9207 §2)."""
        params = [("error", error)]
        if description:
            params.append(("error_description", description))
        if state:
            params.append(("state", state))
        params.append(("iss", self._settings.issuer))
        return str(add_params_to_uri(redirect_uri, params))

    def start(self, session: Session, uri: str, headers: Mapping[str, str] | None = None) -> StartResult:
        """Validate an authorization request (``uri`` as received) and record it as pending."""
        server, validator = self._server(session)
        try:
            _scopes, info = server.authorization.validate_authorization_request(
                uri, http_method="GET", headers=dict(headers or {})
            )
        except errors.FatalClientError as error:
            code = error.error or "invalid_request"
            return StartResult(error_page=ErrorPage(code, error.description or code, error.status_code))
        except errors.OAuth2Error as error:
            code = error.error or "invalid_request"
            if not error.redirect_uri:
                return StartResult(error_page=ErrorPage(code, error.description or code))
            return StartResult(
                redirect_to=self._error_redirect(error.redirect_uri, code, error.description, error.state)
            )
        except ValueError:
            # oauthlib's own decoding refused the URI (invalid characters or escapes): nothing in it can be trusted
            # enough to redirect to (RFC 6749 §4.1.2.1).
            return StartResult(error_page=ErrorPage("invalid_request", "the request URI is not valid form encoding"))
        request = info["request"]
        scope = validator.requested_scope(request)
        now = self._clock()
        pending = PendingAuthorizationRequest(
            id=new_secret(24),
            application_id=client_of(request).id,
            request_uri=uri,
            redirect_uri=request.redirect_uri,
            scope=str(scope.espi),
            offline_access=scope.offline_access,
            state=request.state,
            code_challenge=request.code_challenge,
            code_challenge_method=request.code_challenge_method,
            created_at=now,
            expires_at=now + dt.timedelta(seconds=PENDING_REQUEST_TTL),
        )
        session.add(pending)
        session.flush()
        return StartResult(request_id=pending.id)

    def get(self, session: Session, request_id: str) -> PendingAuthorizationRequest:
        """The pending request, undecided and unexpired, or :class:`NotFound` (what the consent page shows)."""
        pending = session.get(PendingAuthorizationRequest, request_id) if 0 < len(request_id) <= 64 else None
        if pending is None or pending.expires_at <= self._clock():
            raise NotFound("this authorization request does not exist or has expired; start again from the app")
        if pending.decided_at is not None:
            raise Conflict("this authorization request was already answered")
        return pending

    def _decidable(self, session: Session, request_id: str) -> PendingAuthorizationRequest:
        pending = self.get(session, request_id)
        # Lock the row so that two concurrent decisions cannot both go through (PostgreSQL; SQLite serialises).
        session.refresh(pending, with_for_update=True)
        if pending.decided_at is not None:
            raise Conflict("this authorization request was already answered")
        application = session.get(ApplicationInformation, pending.application_id)
        if application is None or application.status == ApplicationStatus.REVOKED:
            raise BadRequest("the application is no longer registered")
        if not any(redirect_uri_matches(registered, pending.redirect_uri) for registered in application.redirect_uris):
            raise BadRequest("the application or its redirect URI is no longer registered")
        return pending

    def approve(
        self,
        session: Session,
        request_id: str,
        customer: RetailCustomer,
        usage_point_ids: Iterable[int],
        granted_scope: str | None = None,
    ) -> str:
        """Record the customer's consent and return the redirect carrying the code, ``state`` and ``iss``.

        Creates the ESPI Authorization (kind customer, status 1) and its Subscription over the chosen usage points,
        which must be the customer's own. ``granted_scope`` (default: the requested one) must lie within the request
        (RFC 6749 §3.3: the customer may grant less, never more).
        """
        pending = self._decidable(session, request_id)
        wanted = sorted(set(usage_point_ids))
        if not wanted:
            raise BadRequest("choose at least one usage point to share")
        usage_points = list(
            session.scalars(select(UsagePoint).where(UsagePoint.id.in_(wanted), UsagePoint.customer_id == customer.id))
        )
        if len(usage_points) != len(wanted):
            raise BadRequest("a chosen usage point is not one of the customer's")
        requested = parse_scope(pending.scope)
        try:
            granted = parse_scope(granted_scope) if granted_scope is not None else requested
        except ScopeError as error:
            raise BadRequest(f"the granted scope is invalid: {error}") from None
        if not granted.is_within(requested):
            raise BadRequest("the granted scope must not exceed the requested one")
        _check_commodities(usage_points, granted.function_blocks)
        now = self._clock()
        lifetime = (
            self._settings.offline_refresh_token_ttl if pending.offline_access else self._settings.refresh_token_ttl
        )
        # Everything approve() writes happens in a savepoint that is rolled back if oauthlib refuses, so that a
        # refused approval leaves no active Authorization behind (the caller's transaction still commits).
        try:
            with session.begin_nested():
                authorization = Authorization(
                    uuid=uuid.uuid4(),
                    kind=AuthorizationKind.CUSTOMER,
                    application_id=pending.application_id,
                    customer_id=customer.id,
                    status=AuthorizationStatus.ACTIVE,
                    authorized_period_start=int(now.timestamp()),
                    authorized_period_duration=lifetime,
                    expires_at=int(now.timestamp()) + lifetime,
                    grant_type="authorization_code",
                    scope=str(granted),
                )
                session.add(authorization)
                session.flush()
                session.add(
                    Subscription(
                        uuid=uuid.uuid4(),
                        authorization_id=authorization.id,
                        application_id=pending.application_id,
                        customer_id=customer.id,
                        usage_points=usage_points,
                    )
                )
                pending.decided_at = now
                pending.outcome = "approved"
                pending.customer_id = customer.id
                pending.authorization_id = authorization.id
                session.flush()
                server, _validator = self._server(session)
                headers, _body, _status = server.authorization.create_authorization_response(
                    pending.request_uri,
                    http_method="GET",
                    scopes=RequestedScope(espi=granted, offline_access=pending.offline_access).tokens(),
                    # A plain string id: oauthlib sets it on its request object for save_authorization_code.
                    credentials={"gw_pending_request_id": pending.id},
                )
        except errors.FatalClientError as error:
            raise BadRequest(f"the authorization request is no longer valid: {error.description}") from None
        location = str(headers["Location"])
        if "error" in dict(parse_qsl(urlsplit(location).query)):
            # The request stopped being valid while the customer decided (e.g. the app's scopes changed).
            authorization.status = AuthorizationStatus.DENIED
            if "iss" not in dict(parse_qsl(urlsplit(location).query)):
                location = str(add_params_to_uri(location, [("iss", self._settings.issuer)]))
        return location

    def deny(self, session: Session, request_id: str) -> str:
        """Record a refusal and return the redirect carrying ``error=access_denied``, ``state`` and ``iss``."""
        pending = self._decidable(session, request_id)
        pending.decided_at = self._clock()
        pending.outcome = "denied"
        session.flush()
        return self._error_redirect(
            pending.redirect_uri, "access_denied", "the customer declined the request", pending.state
        )


def purge_expired_requests(session: Session, now: dt.datetime) -> int:
    """Delete pending requests that expired (decided or not) and codes past their lifetime; return how many rows.

    For a periodic job: nothing reads them after expiry, and codes are kept until then only to detect replays.
    """
    requests = session.execute(delete(PendingAuthorizationRequest).where(PendingAuthorizationRequest.expires_at <= now))
    codes = session.execute(delete(AuthorizationCode).where(AuthorizationCode.expires_at <= now))
    return int(requests.rowcount or 0) + int(codes.rowcount or 0)  # type: ignore[attr-defined]


def _check_commodities(usage_points: Iterable[UsagePoint], function_blocks: Iterable[int]) -> None:
    """Refuse a meter of a commodity the scope does not share (FB 5/10/11, ESPI-NOTES §5).

    Its data would never be readable with the token (:func:`gateway.storage.queries.consent_grant` hides it), so
    recording it as shared would make the consent say more than it gives. The consent screen offers only the
    shareable meters: a refusal here means a tampered or stale form.
    """
    kinds = shared_service_kinds(function_blocks)
    if kinds is None:
        return
    for point in usage_points:
        if point.service_kind not in kinds:
            raise BadRequest(
                f"usage point {point.id} is a {commodity_name(point.service_kind)} meter; "
                f"this consent shares only {' and '.join(commodity_name(kind) for kind in sorted(kinds))} meters"
            )


def approve(
    session: Session,
    services: Services,
    request_id: str,
    customer: RetailCustomer,
    usage_point_ids: Iterable[int],
    granted_scope: str | None = None,
) -> str:
    """Convenience for :meth:`AuthorizationRequests.approve` with the process's collaborators."""
    return AuthorizationRequests.from_services(services).approve(
        session, request_id, customer, usage_point_ids, granted_scope
    )


def deny(session: Session, services: Services, request_id: str) -> str:
    """Convenience for :meth:`AuthorizationRequests.deny` with the process's collaborators."""
    return AuthorizationRequests.from_services(services).deny(session, request_id)
