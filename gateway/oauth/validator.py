"""The request validator: the security work oauthlib leaves to the server (PITFALLS: oauthlib).

oauthlib parses requests and sequences the checks of RFC 6749; every decision that needs our data is a hook here.
One method per hook, each saying which RFC section it serves and which grants call it. Collaborators (the request's
database session, settings, digester, password hasher, throttle, clock) come in through the constructor, never through
``credentials=`` (oauthlib copies those into the token JSON).

What the validator learns about a request along the way (the parsed scope, the code or refresh token row, the
customer) is kept in a typed :class:`RequestState` beside oauthlib's ``Request``, never as ad-hoc attributes on it.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import logging
import re
import uuid
import weakref
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

from oauthlib.common import Request
from oauthlib.oauth2 import RequestValidator
from oauthlib.oauth2.rfc6749 import errors
from oauthlib.oauth2.rfc6749.tokens import TokenBase
from sqlalchemy import Connection, ScalarSelect, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.config import Settings, is_loopback_host
from gateway.consent.lifecycle import record_refresh
from gateway.metrics import Metrics
from gateway.oauth.hotpath import HotPath
from gateway.oauth.scope import EspiScope, RequestedScope, ScopeError, parse_scope, parse_scope_parameter
from gateway.oauth.tokens import new_family_id, revoke_family, revoke_token_row
from gateway.security.digests import SecretDigester, new_secret
from gateway.security.passwords import PasswordHasher
from gateway.security.throttle import PASSWORD_USER_RULE, Throttle, ThrottleRule
from gateway.storage.base import utcnow
from gateway.storage.models import (
    ApplicationInformation,
    ApplicationStatus,
    Authorization,
    AuthorizationCode,
    AuthorizationKind,
    AuthorizationStatus,
    ClientRole,
    OAuthToken,
    RetailCustomer,
    Subscription,
    TokenType,
    UsagePoint,
)
from gateway.storage.oauth import PendingAuthorizationRequest, SubjectKind
from gateway.storage.throttle import ThrottleCounter

__all__ = [
    "AuthorizationRef",
    "ClientRecord",
    "GatewayRequestValidator",
    "ThrottlePolicy",
    "TooManyAttemptsError",
    "espi_token_fields",
    "token_is_live",
]

NEVER_EXPIRES = 2**31 - 1
_LOG = logging.getLogger(__name__)
# A S256 challenge is the base64url SHA-256 of the verifier, without padding (RFC 7636 §4.2).
_CODE_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_PII_FIRST_BLOCK = 51  # Retail Customer function blocks (ESPI-NOTES §5)

_APPLICATION = ApplicationInformation.__table__
_AUTHORIZATION = Authorization.__table__


@dataclasses.dataclass(frozen=True, slots=True)
class ClientRecord:
    """What the server needs to know about a registered client (RFC 6749 §2), read in one Core query.

    A plain record rather than the ORM object: the token endpoint reads it on every request, and building ORM
    instances costs more than the query.
    """

    id: int
    client_id: str
    client_secret_digest: str | None
    token_endpoint_auth_method: str
    grant_types: list[str]
    scopes: list[str]
    redirect_uris: list[str]
    roles: list[str]
    status: int
    require_pkce: bool
    owner_customer_id: int | None
    secret_blocked_until: dt.datetime | None = None
    """Until when guessing this client's secret is blocked (read with the record: one query, not two)."""
    client_authorization_id: int | None = None
    """The client's own active Authorization (kind client), if it has one yet."""
    custodian_authorization_id: int | None = None
    """The operator's active Authorization (kind custodian), if it has one yet."""

    @property
    def is_public(self) -> bool:
        """A public client has no secret (RFC 6749 §2.1) and must use PKCE."""
        return self.client_secret_digest is None


_THROTTLE = ThrottleCounter.__table__


def _active_authorization_id(kind: str) -> ScalarSelect[Any]:
    return (
        select(_AUTHORIZATION.c.id)
        .where(
            _AUTHORIZATION.c.application_id == _APPLICATION.c.id,
            _AUTHORIZATION.c.kind == kind,
            _AUTHORIZATION.c.status == AuthorizationStatus.ACTIVE,
        )
        .order_by(_AUTHORIZATION.c.id)
        .limit(1)
        .scalar_subquery()
    )


# One statement for everything the token endpoint needs to know about a client: the registration, whether its
# secret is throttled, and its own Authorization records (client_credentials). Each statement costs more in Python
# than in the database, so three lookups become one.
_CLIENT_BY_ID = (
    select(
        _APPLICATION.c.id,
        _APPLICATION.c.client_id,
        _APPLICATION.c.client_secret_digest,
        _APPLICATION.c.token_endpoint_auth_method,
        _APPLICATION.c.grant_types,
        _APPLICATION.c.scopes,
        _APPLICATION.c.redirect_uris,
        _APPLICATION.c.roles,
        _APPLICATION.c.status,
        _APPLICATION.c.require_pkce,
        _APPLICATION.c.owner_customer_id,
        _THROTTLE.c.blocked_until,
        _active_authorization_id(AuthorizationKind.CLIENT),
        _active_authorization_id(AuthorizationKind.CUSTODIAN),
    )
    .select_from(_APPLICATION.outerjoin(_THROTTLE, _THROTTLE.c.key == bindparam("throttle_key")))
    .where(_APPLICATION.c.client_id == bindparam("client_id"))
)
_INSERT_TOKEN = insert(OAuthToken)  # executed on a Connection: plain Core, no unit of work


@dataclasses.dataclass(frozen=True, slots=True)
class AuthorizationRef:
    """The ids a token response's ESPI URIs are made of."""

    id: int
    application_id: int
    customer_id: int | None = None
    subscription_id: int | None = None

    @classmethod
    def of(cls, authorization: Authorization) -> AuthorizationRef:
        subscription = authorization.subscription
        return cls(
            id=authorization.id,
            application_id=authorization.application_id,
            customer_id=authorization.customer_id,
            subscription_id=subscription.id if subscription is not None else None,
        )


class TooManyAttemptsError(errors.OAuth2Error):
    """Too many failed attempts for this user or client: 429 with ``Retry-After`` (RFC 6585 §4, RFC 9700 §4.15)."""

    error = "temporarily_unavailable"
    status_code = 429
    description = "too many failed attempts; retry later"

    def __init__(self, retry_after: int, request: Request | None = None) -> None:
        super().__init__(request=request)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


@dataclasses.dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    """Failure limits, counted in the database (checklist rows 22 and 23).

    Client secrets are counted per client id *and* source address: the client id is public, so a count per id alone
    would let anyone lock a client out. ``client_secret_total`` counts per id across sources and only warns.
    """

    client_secret: ThrottleRule = dataclasses.field(
        default_factory=lambda: ThrottleRule("client-secret", limit=10, window=300)
    )
    client_secret_total: ThrottleRule = dataclasses.field(
        default_factory=lambda: ThrottleRule("client-secret-total", limit=200, window=300)
    )
    password_user: ThrottleRule = dataclasses.field(default_factory=lambda: PASSWORD_USER_RULE)
    password_client: ThrottleRule = dataclasses.field(
        default_factory=lambda: ThrottleRule("password-client", limit=50, window=900)
    )


@dataclasses.dataclass(slots=True)
class RequestState:
    """What the validator learned about one oauthlib request (kept beside it, typed)."""

    client_authenticated: bool = False
    scope: RequestedScope | None = None
    code: AuthorizationCode | None = None
    refresh: OAuthToken | None = None
    customer: RetailCustomer | None = None


def client_of(request: Request) -> ClientRecord:
    """The client oauthlib's request was authenticated or identified as (set by the validator)."""
    client = request.client
    if not isinstance(client, ClientRecord):
        raise errors.InvalidClientError(request=request)
    return client


def token_is_live(
    token: OAuthToken,
    authorization: Authorization | None,
    application: ApplicationInformation | ClientRecord,
    now: dt.datetime,
) -> bool:
    """Whether a stored token still grants anything: not revoked, rotated or expired; its grant and app active."""
    if token.revoked_at is not None or token.rotated_at is not None:
        return False
    if token.expires_at is not None and token.expires_at <= now:
        return False
    if application.status == ApplicationStatus.REVOKED:
        return False
    return authorization is None or (
        authorization.status == AuthorizationStatus.ACTIVE and authorization.expires_at > int(now.timestamp())
    )


def espi_token_fields(
    settings: Settings, authorization: AuthorizationRef, subject_kind: str, scope: EspiScope | None
) -> dict[str, str]:
    """The ESPI additions to a token response (ESPI-NOTES §4): ``resourceURI``, ``authorizationURI`` and friends."""
    base = settings.resource_base_url
    fields = {"authorizationURI": f"{base}/Authorization/{authorization.id}"}
    if subject_kind == SubjectKind.CUSTOMER and authorization.subscription_id is not None:
        fields["resourceURI"] = f"{base}/Batch/Subscription/{authorization.subscription_id}"
        if scope is not None and any(block >= _PII_FIRST_BLOCK for block in scope.function_blocks):
            fields["customerResourceURI"] = f"{base}/RetailCustomer/{authorization.customer_id}"
    elif subject_kind in (SubjectKind.CUSTODIAN, SubjectKind.UPLOAD):
        fields["resourceURI"] = f"{base}/Batch/RetailCustomer"
    elif subject_kind == SubjectKind.REGISTRATION:
        fields["resourceURI"] = f"{base}/ApplicationInformation/{authorization.application_id}"
    else:
        fields["resourceURI"] = f"{base}/Authorization"
    return fields


def redirect_uri_matches(registered: str, requested: str) -> bool:
    """Exact string match, except that a loopback redirect may vary its port (RFC 8252 §7.3, RFC 9700 §4.1.3)."""
    if requested == registered:
        return True
    reg, req = urlsplit(registered), urlsplit(requested)
    if reg.scheme != "http" or not is_loopback_host(reg.hostname) or reg.hostname == "localhost":
        return False
    try:
        req_port = req.port
    except ValueError:
        return False
    # Compare everything but the port, character for character (no case folding, no normalisation).
    reg_host = reg.netloc.rsplit(":", 1)[0] if reg.port is not None else reg.netloc
    req_host = req.netloc.rsplit(":", 1)[0] if req_port is not None else req.netloc
    return (
        req.scheme == reg.scheme
        and req_host == reg_host
        and req.path == reg.path
        and req.query == reg.query
        and not req.fragment
        and "#" not in requested
    )


class GatewayRequestValidator(RequestValidator):
    """Our answers to oauthlib's questions, for one request (it holds the request's database session)."""

    def __init__(
        self,
        session: Session | None,
        settings: Settings,
        digester: SecretDigester,
        passwords: PasswordHasher,
        *,
        throttle: Throttle | None = None,
        throttle_policy: ThrottlePolicy | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
        require_client_authentication: bool = False,
        reads: HotPath | None = None,
        client_ip: str | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._session = session
        self._metrics = metrics
        self._client_ip = client_ip or "unknown"
        self._reads = reads
        self._hot: Connection | None = None
        self._settings = settings
        self._digester = digester
        self._passwords = passwords
        self._clock = clock
        self._throttle = throttle or Throttle(clock)
        self._policy = throttle_policy or ThrottlePolicy()
        self._require_client_authentication = require_client_authentication
        self._clients: dict[str, ClientRecord | None] = {}
        self._states: weakref.WeakKeyDictionary[Request, RequestState] = weakref.WeakKeyDictionary()

    # -- helpers -------------------------------------------------------------------------------------------------

    def state(self, request: Request) -> RequestState:
        """The typed state of ``request`` (created on first use)."""
        state = self._states.get(request)
        if state is None:
            state = self._states[request] = RequestState()
        return state

    def requested_scope(self, request: Request) -> RequestedScope:
        """The scope :meth:`validate_scopes` accepted for ``request``."""
        scope = self.state(request).scope
        if scope is None:
            raise errors.InvalidScopeError(request=request)
        return scope

    @property
    def session(self) -> Session:
        if self._session is None:
            raise RuntimeError("this validator was built without a database session")
        return self._session

    def _reading(self) -> Connection:
        """Where lookups go: an autocommit connection until the request writes (see :mod:`gateway.oauth.hotpath`).

        Once the request's session has begun a transaction, everything goes through it, so that reads see the
        request's own writes and the writes stay atomic.
        """
        if self._reads is None or self.session.in_transaction():
            return self.session.connection()
        if self._hot is None:
            self._hot = self._reads.connection_for(self.session)
        return self._hot if self._hot is not None else self.session.connection()

    def close(self) -> None:
        """Release the autocommit connection, if one was opened (the request's session is its owner's business)."""
        if self._hot is not None:
            self._hot.close()
            self._hot = None

    def _client(self, client_id: str | None) -> ClientRecord | None:
        if not client_id or len(client_id) > 64:
            return None
        if client_id not in self._clients:
            throttle_key = self._throttle.key(self._policy.client_secret, self._secret_source(client_id))
            row = self._reading().execute(_CLIENT_BY_ID, {"client_id": client_id, "throttle_key": throttle_key}).first()
            self._clients[client_id] = None if row is None else ClientRecord(*row)
        application = self._clients[client_id]
        if application is not None and application.status == ApplicationStatus.REVOKED:
            return None
        return application

    def _secret_source(self, client_id: str) -> str:
        """Whose secret guesses a counter holds: one client id from one address."""
        return f"{client_id}@{self._client_ip}"

    @staticmethod
    def _basic_credentials(request: Request) -> tuple[str, str] | None:
        """Decode ``Authorization: Basic``; the id and secret are form-urlencoded first (RFC 6749 §2.3.1)."""
        header = request.headers.get("Authorization")
        if not header:
            return None
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "basic":
            raise errors.InvalidClientError(request=request, description="use HTTP Basic client authentication")
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise errors.InvalidClientError(request=request, description="malformed Basic credentials") from None
        client_id, sep, secret = decoded.partition(":")
        if not sep:
            raise errors.InvalidClientError(request=request, description="malformed Basic credentials")
        return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))

    def _presented_credentials(self, request: Request) -> tuple[str | None, str | None, str | None]:
        """Return (client_id, secret, method) of the request, refusing two methods at once (RFC 6749 §2.3)."""
        basic = self._basic_credentials(request)
        body_secret = request.client_secret
        if basic is not None:
            if body_secret is not None:
                raise errors.InvalidClientError(
                    request=request,
                    description="use one client authentication method, not Basic and the body",
                )
            if request.client_id and request.client_id != basic[0]:
                raise errors.InvalidClientError(
                    request=request,
                    description="the client_id parameter differs from the authenticated client",
                )
            return basic[0], basic[1], "client_secret_basic"
        if body_secret is not None:
            return request.client_id, body_secret, "client_secret_post"
        return request.client_id, None, None

    def _block_if_throttled(self, request: Request, rule: ThrottleRule, subject: str) -> None:
        retry_after = self._throttle.retry_after(self._reading(), rule, subject)
        if retry_after is not None:
            raise TooManyAttemptsError(retry_after, request=request)

    # -- client authentication (RFC 6749 §2.3, §3.2.1) ------------------------------------------------------------

    def client_authentication_required(self, request: Request, *args: Any, **kwargs: Any) -> bool:
        """Whether the client must authenticate (RFC 6749 §3.2.1; all token grants, revocation, introspection).

        Confidential clients always; anyone presenting a secret; every caller of introspection (RFC 7662 §2.1).
        Only a registered public client sending just its ``client_id`` is exempt.
        """
        if self._require_client_authentication:
            return True
        if request.client_secret is not None or request.headers.get("Authorization"):
            return True
        client = self._client(request.client_id)
        return client is None or not client.is_public

    def authenticate_client(self, request: Request, *args: Any, **kwargs: Any) -> bool:
        """Authenticate a confidential client (RFC 6749 §2.3.1; every grant, revocation and introspection).

        ``client_secret_basic`` or ``client_secret_post``, exactly one and the one registered; the secret is
        compared as a keyed digest in constant time. Failures are counted per client id and source address, and
        that source is throttled (row 23) even when it finally presents the right secret; failures from other sources
        never refuse a correct secret (the client id is public: anyone could otherwise lock the client out).
        """
        if self.state(request).client_authenticated:
            return True
        client_id, secret, method = self._presented_credentials(request)
        if not client_id or secret is None:
            return False
        client = self._client(client_id)
        source = self._secret_source(client_id)
        # Digest even for unknown clients, so timing says nothing about which client ids exist.
        secret_ok = self._digester.matches(secret, client.client_secret_digest if client else None)
        if client is not None:
            retry_after = self._throttle.seconds_left(client.secret_blocked_until)
            if retry_after is not None:
                raise TooManyAttemptsError(retry_after, request=request)
        else:
            self._block_if_throttled(request, self._policy.client_secret, source)
        if client is None or not secret_ok or client.token_endpoint_auth_method != method:
            self._throttle.record_failure(self.session, self._policy.client_secret, source)
            total = self._throttle.count_failure(self.session, self._policy.client_secret_total, client_id)
            if total == self._policy.client_secret_total.limit:
                _LOG.warning(
                    "client %s: %d failed secrets in %d s from several sources (not blocked)",
                    client_id[:64],
                    total,
                    self._policy.client_secret_total.window,
                )
            return False
        request.client = client
        request.client_id = client.client_id
        self.state(request).client_authenticated = True
        return True

    def authenticate_client_id(self, client_id: str, request: Request, *args: Any, **kwargs: Any) -> bool:
        """Identify a public client by its id alone (RFC 6749 §3.2.1; authorization_code, refresh, revocation)."""
        client = self._client(client_id)
        if client is None or not client.is_public:
            return False
        request.client = client
        return True

    def pre_token_authenticate_client(self, request: Request) -> None:
        """Authenticate before anything else, mapping oauthlib's gaps (PITFALLS; RFC 6749 §5.2; every grant).

        A Basic client that differs from the body ``client_id`` or Basic plus a body secret give ``invalid_client``
        (401), not oauthlib's ``server_error``; running first also keeps the password grant from becoming an oracle.
        """
        if self.client_authentication_required(request):
            if not self.authenticate_client(request):
                raise errors.InvalidClientError(request=request)
        elif not self.authenticate_client_id(request.client_id or "", request):
            raise errors.InvalidClientError(request=request)

    # -- authorization endpoint (RFC 6749 §4.1.1, §3.1.2; RFC 7636) ---------------------------------------------

    def validate_client_id(self, client_id: str, request: Request, *args: Any, **kwargs: Any) -> bool:
        """A registered, not revoked client (RFC 6749 §4.1.1; authorization_code). A failure never redirects."""
        client = self._client(client_id)
        if client is None:
            return False
        request.client = client
        return True

    def validate_redirect_uri(
        self, client_id: str, redirect_uri: str, request: Request, *args: Any, **kwargs: Any
    ) -> bool:
        """Exact match against a registered redirect URI (RFC 6749 §3.1.2.2, RFC 9700 §4.1.3; authorization_code)."""
        client = self._client(client_id)
        if client is None or len(redirect_uri) > 2048:
            return False
        return any(redirect_uri_matches(registered, redirect_uri) for registered in client.redirect_uris)

    def get_default_redirect_uri(  # type: ignore[override]  # oauthlib reads None as "no default"
        self, client_id: str, request: Request, *args: Any, **kwargs: Any
    ) -> str | None:
        """None: ``redirect_uri`` is always required (RFC 9700 §2.1; authorization_code), so nothing is guessed."""
        return None

    def validate_response_type(
        self, client_id: str, response_type: str, client: Any, request: Request, *args: Any, **kwargs: Any
    ) -> bool:
        """Only ``code``, for clients registered with authorization_code (RFC 6749 §3.1.1; RFC 9700 §2.1.2)."""
        return response_type == "code" and "authorization_code" in client.grant_types

    def is_pkce_required(self, client_id: str, request: Request) -> bool:
        """PKCE for every client unless registered otherwise, always for public ones (RFC 7636 §4.4.1, RFC 9700)."""
        client = self._client(client_id)
        return client is None or client.is_public or client.require_pkce

    def pre_auth_force_query_response_mode(self, request: Request) -> dict[str, Any]:
        """Answer in the query only (RFC 6749 §4.1.2; authorization_code): no fragment mode, no form post."""
        asked = request.response_mode
        request.response_mode = "query"
        if asked not in (None, "query"):
            raise errors.InvalidRequestError(request=request, description="response_mode must be query")
        return {}

    def post_auth_check_code_challenge(self, request: Request) -> dict[str, Any]:
        """A S256 challenge must look like one (RFC 7636 §4.2) and ``state`` stay storable (authorization_code)."""
        if request.state is not None and len(request.state) > 1024:
            raise errors.InvalidRequestError(request=request, description="state is longer than 1024 characters")
        if request.code_challenge is not None and not _CODE_CHALLENGE.match(request.code_challenge):
            raise errors.InvalidRequestError(
                request=request, description="code_challenge must be 43 base64url characters"
            )
        return {}

    def code_modifier(
        self, grant: dict[str, str], token_handler: TokenBase | None, request: Request | None
    ) -> dict[str, str]:
        """Mint the code from the OS CSPRNG (≥ 128 bits) and add ``iss`` to the response (RFC 9207 §2)."""
        grant["code"] = new_secret()
        grant["iss"] = self._settings.issuer
        return grant

    def save_authorization_code(  # type: ignore[override]  # the stubs' TypedDict lacks our ``iss``
        self, client_id: str, code: dict[str, str], request: Request, *args: Any, **kwargs: Any
    ) -> None:
        """Store the code's digest with its binding (RFC 6749 §4.1.2, RFC 7636 §4.4; authorization_code).

        Bound to client, redirect URI, PKCE challenge, the consent's Authorization and the granted scope; lives
        ``authorization_code_ttl`` seconds (60 by default).
        """
        # The one value passed through ``credentials=`` (a plain string id): see AuthorizationRequests.approve.
        pending_id = getattr(request, "gw_pending_request_id", None)
        pending = self.session.get(PendingAuthorizationRequest, pending_id) if isinstance(pending_id, str) else None
        if pending is None or pending.authorization_id is None:
            raise errors.ServerError(request=request, description="the authorization request was not approved")
        scope = self.requested_scope(request)
        now = self._clock()
        self.session.add(
            AuthorizationCode(
                digest=self._digester.digest(code["code"]),
                application_id=client_of(request).id,
                authorization_id=pending.authorization_id,
                redirect_uri=request.redirect_uri,
                scope=str(scope.espi),
                offline_access=scope.offline_access,
                code_challenge=request.code_challenge,
                code_challenge_method=request.code_challenge_method,
                family_id=new_family_id(),
                issued_at=now,
                expires_at=now + dt.timedelta(seconds=self._settings.authorization_code_ttl),
            )
        )
        self.session.flush()

    # -- scopes (RFC 6749 §3.3; ESPI-NOTES §5) --------------------------------------------------------------------

    def get_default_scopes(self, client_id: str, request: Request, *args: Any, **kwargs: Any) -> list[str]:
        """The application's first registered scope (RFC 6749 §3.3).

        Used by authorization_code, client_credentials and password when no ``scope`` is sent.
        """
        client = self._client(client_id)
        return [client.scopes[0]] if client is not None and client.scopes else []

    def validate_scopes(
        self, client_id: str, scopes: list[str], client: Any, request: Request, *args: Any, **kwargs: Any
    ) -> bool:
        """One well-formed ESPI scope within a registered one, plus ``offline_access`` where a refresh token can
        follow (RFC 6749 §3.3; authorization_code, client_credentials, password). Anything else: ``invalid_scope``.
        """
        try:
            requested = parse_scope_parameter(scopes)
        except ScopeError:
            return False
        if requested.espi is None:
            return False
        try:
            registered = [parse_scope(text) for text in client.scopes]
        except ScopeError:
            return False
        if not requested.espi.within_any(registered):
            return False
        if requested.offline_access and (
            request.grant_type == "client_credentials" or "refresh_token" not in client.grant_types
        ):
            return False
        self.state(request).scope = requested
        return True

    # -- authorization_code at the token endpoint (RFC 6749 §4.1.3) --------------------------------------------

    def validate_grant_type(
        self, client_id: str, grant_type: str, client: Any, request: Request, *args: Any, **kwargs: Any
    ) -> bool:
        """The client registered this grant (RFC 6749 §5.2 ``unauthorized_client``; every grant).

        client_credentials and password need a confidential client (RFC 6749 §4.3.2, §4.4.2).
        """
        if grant_type not in client.grant_types:
            return False
        return not (grant_type in ("client_credentials", "password") and client.is_public)

    def validate_code(
        self, client_id: str, code: str, client: Any, request: Request, *args: Any, **kwargs: Any
    ) -> bool:
        """Redeem a code once, atomically (RFC 6749 §4.1.2, §10.5; authorization_code; checklist rows 4-7).

        The code must be this client's (checked before it is consumed, so another client cannot burn it), unexpired
        and unused. A second redemption revokes every token issued from the code. The consuming ``UPDATE … WHERE
        redeemed_at IS NULL`` makes parallel redemptions yield exactly one winner.
        """
        row = self.session.scalar(
            select(AuthorizationCode).where(AuthorizationCode.digest.in_(self._digester.lookup_digests(code)))
        )
        if row is None or row.application_id != client.id:
            return False
        now = self._clock()
        if row.redeemed_at is not None:
            revoke_family(self.session, row.family_id, now)
            return False
        if row.expires_at <= now:
            return False
        consumed = self.session.execute(
            update(AuthorizationCode)
            .where(AuthorizationCode.id == row.id, AuthorizationCode.redeemed_at.is_(None))
            .values(redeemed_at=now)
            .execution_options(synchronize_session=False)
        )
        if consumed.rowcount != 1:  # type: ignore[attr-defined]
            revoke_family(self.session, row.family_id, now)
            return False
        authorization = self.session.get(Authorization, row.authorization_id)
        if authorization is None or authorization.status != AuthorizationStatus.ACTIVE:
            return False
        state = self.state(request)
        state.code = row
        state.scope = RequestedScope(espi=parse_scope(row.scope), offline_access=row.offline_access)
        request.scopes = state.scope.tokens()
        request.user = authorization.customer_id
        return True

    def get_code_challenge(  # type: ignore[override]  # oauthlib treats None as "no challenge"
        self, code: str, request: Request
    ) -> str | None:
        """The challenge stored with the code (RFC 7636 §4.6; authorization_code)."""
        row = self.state(request).code
        return None if row is None else row.code_challenge

    def get_code_challenge_method(  # type: ignore[override]  # oauthlib treats None as "no challenge"
        self, code: str, request: Request
    ) -> str | None:
        """The stored method: always ``S256`` (RFC 7636 §4.3; authorization_code)."""
        row = self.state(request).code
        return None if row is None else row.code_challenge_method

    def post_token_refuse_pkce_downgrade(self, request: Request) -> None:
        """A ``code_verifier`` for a code issued without a challenge is a downgrade (RFC 9700 §4.8.2; row 9)."""
        row = self.state(request).code
        if row is not None and row.code_challenge is None and request.code_verifier is not None:
            raise errors.InvalidRequestError(
                request=request, description="code_verifier sent for a code requested without code_challenge"
            )

    def confirm_redirect_uri(
        self,
        client_id: str,
        code: str,
        redirect_uri: str,
        client: Any,
        request: Request,
        *args: Any,
        **kwargs: Any,
    ) -> bool:
        """The same redirect URI as in the authorization request (RFC 6749 §4.1.3; authorization_code; row 3)."""
        row = self.state(request).code
        return row is not None and redirect_uri == row.redirect_uri

    def invalidate_authorization_code(
        self, client_id: str, code: str, request: Request, *args: Any, **kwargs: Any
    ) -> None:
        """Nothing left to do: :meth:`validate_code` consumed the code atomically (RFC 6749 §4.1.2)."""

    # -- refresh_token (RFC 6749 §6, RFC 9700 §4.14) -------------------------------------------------------------

    def validate_refresh_token(
        self, refresh_token: str, client: Any, request: Request, *args: Any, **kwargs: Any
    ) -> bool:
        """A live refresh token of this client (RFC 6749 §6, §10.4; refresh_token; rows 18, 19, 21).

        Reuse of a rotated token after the grace period revokes the whole family (RFC 9700 §4.14.2); inside it
        (a client retrying a lost response) the answer is just ``invalid_grant``. The token dies with its consent,
        with the customer's password change, when idle too long and at its absolute expiry.
        """
        row = self.session.scalar(
            select(OAuthToken).where(OAuthToken.digest.in_(self._digester.lookup_digests(refresh_token)))
        )
        if row is None or row.token_type != TokenType.REFRESH or row.application_id != client.id:
            return False
        now = self._clock()
        if row.revoked_at is not None:
            return False
        if row.rotated_at is not None:
            if row.family_id is not None and now - row.rotated_at >= dt.timedelta(
                seconds=self._settings.refresh_reuse_grace
            ):
                revoke_family(self.session, row.family_id, now)
            return False
        if row.expires_at is not None and row.expires_at <= now:
            return False
        last_activity = row.last_used_at or row.issued_at
        if last_activity + dt.timedelta(seconds=self._settings.refresh_token_idle_ttl) <= now:
            return False
        authorization = row.authorization
        if authorization is None or not token_is_live(row, authorization, client, now):
            return False
        if authorization.customer_id is not None:
            customer = self.session.get(RetailCustomer, authorization.customer_id)
            if customer is None or not customer.is_active:
                return False
            family_start = self.session.scalar(
                select(func.min(OAuthToken.issued_at)).where(OAuthToken.family_id == row.family_id)
            )
            if customer.password_changed_at > (family_start or row.issued_at):
                return False
        self.state(request).refresh = row
        return True

    def get_original_scopes(self, refresh_token: str, request: Request, *args: Any, **kwargs: Any) -> list[str]:
        """The scope the refresh token was issued with (RFC 6749 §6; refresh_token): a scopeless refresh keeps it."""
        row = self._refresh_row(request)
        return RequestedScope(espi=parse_scope(row.scope), offline_access=row.offline_access).tokens()

    def is_within_original_scope(
        self, request_scopes: list[str], refresh_token: str, request: Request, *args: Any, **kwargs: Any
    ) -> bool:
        """A narrower ESPI scope is fine, a wider one is ``invalid_scope`` (RFC 6749 §6; refresh_token; row 20)."""
        row = self._refresh_row(request)
        try:
            requested = parse_scope_parameter(request_scopes)
        except ScopeError:
            return False
        if requested.espi is None or (requested.offline_access and not row.offline_access):
            return False
        return requested.espi.is_within(parse_scope(row.scope))

    def _refresh_row(self, request: Request) -> OAuthToken:
        row = self.state(request).refresh
        if row is None:
            raise errors.InvalidGrantError(request=request)
        return row

    def rotate_refresh_token(self, request: Request) -> bool:
        """Always rotate (RFC 9700 §4.14.2; refresh_token): each refresh returns a new refresh token."""
        return True

    # -- password (RFC 6749 §4.3) -------------------------------------------------------------------------------

    def pre_token_password_allowed(self, request: Request) -> None:
        """Refuse clients not registered for the password grant before any password is checked (RFC 9700 §2.4).

        oauthlib checks the password first, which would make every client a password oracle (PITFALLS).
        """
        client = client_of(request)
        if "password" not in client.grant_types or client.is_public:
            raise errors.UnauthorizedClientError(request=request)

    def validate_user(
        self, username: str, password: str, client: Any, request: Request, *args: Any, **kwargs: Any
    ) -> bool:
        """Check the customer's password (RFC 6749 §4.3.2; password; checklist row 22).

        Throttled per user and per client in the database; unknown users cost an Argon2 verification too and get the
        same answer as wrong passwords. A self-access client bound to a customer serves that customer only.
        """
        self._block_if_throttled(request, self._policy.password_user, username)
        self._block_if_throttled(request, self._policy.password_client, client.client_id)
        customer = self.session.scalar(select(RetailCustomer).where(RetailCustomer.username == username.lower()[:64]))
        ok = self._passwords.verify(customer.password_hash if customer is not None else None, password)
        foreign = customer is not None and client.owner_customer_id not in (None, customer.id)
        if customer is None or not customer.is_active or foreign:
            ok = False
        if not ok:
            self._throttle.record_failure(self.session, self._policy.password_user, username)
            self._throttle.record_failure(self.session, self._policy.password_client, client.client_id)
            return False
        assert customer is not None
        self._throttle.reset(self.session, self._policy.password_user, username)
        upgraded = self._passwords.upgraded_hash(customer.password_hash, password)
        if upgraded is not None:
            customer.password_hash = upgraded
        request.user = customer.id
        self.state(request).customer = customer
        return True

    # -- issuing tokens (RFC 6749 §5.1; ESPI-NOTES §4) ----------------------------------------------------------

    def save_bearer_token(  # type: ignore[override]  # we add the ESPI fields the stubs' TypedDict lacks
        self, token: dict[str, Any], request: Request, *args: Any, **kwargs: Any
    ) -> None:
        """Store digests of the issued tokens and add the ESPI fields (RFC 6749 §5.1; every grant).

        Access and refresh tokens of one grant share a family; the access token's parent is its refresh token, so
        revoking either kills both. client_credentials never gets a refresh token (RFC 6749 §4.4.3). Each response
        counts once in ``gateway_oauth_tokens_issued_total`` by grant type (when the validator has the metrics).
        """
        now = self._clock()
        client = client_of(request)
        state = self.state(request)
        grant_type = request.grant_type
        authorization: Authorization | AuthorizationRef | None
        refresh_expiry: dt.datetime | None
        refresh_parent: OAuthToken | None = None
        if grant_type == "authorization_code":
            code = state.code
            if code is None:
                raise errors.InvalidGrantError(request=request)
            authorization = self.session.get(Authorization, code.authorization_id)
            scope = self.requested_scope(request)
            family_id: str | None = code.family_id
            subject_kind = SubjectKind.CUSTOMER
            refresh_expiry = self._refresh_expiry(now, scope.offline_access)
        elif grant_type == "refresh_token":
            old = self._refresh_row(request)
            rotated = self.session.execute(
                update(OAuthToken)
                .where(OAuthToken.id == old.id, OAuthToken.rotated_at.is_(None), OAuthToken.revoked_at.is_(None))
                .values(rotated_at=now, last_used_at=now)
                .execution_options(synchronize_session=False)
            )
            if rotated.rowcount != 1:  # type: ignore[attr-defined]  # a parallel refresh won the race
                raise errors.InvalidGrantError(request=request)
            # The access tokens issued with the old refresh token stop working now (ESPI-NOTES §4).
            self.session.execute(
                update(OAuthToken)
                .where(
                    OAuthToken.parent_id == old.id,
                    OAuthToken.token_type == TokenType.ACCESS,
                    OAuthToken.revoked_at.is_(None),
                )
                .values(revoked_at=now)
                .execution_options(synchronize_session=False)
            )
            authorization = old.authorization
            requested = parse_scope_parameter(request.scopes)
            scope = RequestedScope(espi=requested.espi or parse_scope(old.scope), offline_access=old.offline_access)
            family_id = old.family_id
            subject_kind = old.subject_kind or SubjectKind.CUSTOMER
            refresh_parent = old
            refresh_expiry = old.expires_at
            if old.authorization_id is not None:
                # The consent's history shows every refresh (rolled back with the request if it fails).
                record_refresh(self.session, old.authorization_id, now=now)
        elif grant_type == "password":
            scope = self.requested_scope(request)
            if state.customer is None:
                raise errors.InvalidGrantError(request=request)
            authorization = self._password_authorization(client, state.customer, scope, now)
            family_id = new_family_id()
            subject_kind = SubjectKind.CUSTOMER
            refresh_expiry = self._refresh_expiry(now, scope.offline_access)
        elif grant_type == "client_credentials":
            scope = self.requested_scope(request)
            subject_kind = self._client_subject_kind(client)
            authorization = self._client_authorization(client, subject_kind, scope)
            family_id = None
            refresh_expiry = None
        else:  # pragma: no cover - the token endpoint only routes our four grants here
            raise errors.UnsupportedGrantTypeError(request=request)
        if authorization is None:
            raise errors.InvalidGrantError(request=request)
        if isinstance(authorization, Authorization):
            if authorization.status != AuthorizationStatus.ACTIVE:
                raise errors.InvalidGrantError(request=request)
            authorization = AuthorizationRef.of(authorization)

        refresh_row: OAuthToken | None = None
        wants_refresh = "refresh_token" in token and "refresh_token" in client.grant_types
        if wants_refresh and grant_type != "client_credentials":
            stored_scope = str(parse_scope(refresh_parent.scope)) if refresh_parent is not None else str(scope.espi)
            refresh_row = OAuthToken(
                digest=self._digester.digest(token["refresh_token"]),
                token_type=TokenType.REFRESH,
                subject_kind=subject_kind,
                offline_access=scope.offline_access,
                application_id=client.id,
                authorization_id=authorization.id,
                scope=stored_scope,
                family_id=family_id,
                parent_id=refresh_parent.id if refresh_parent is not None else None,
                issued_at=now,
                expires_at=refresh_expiry,
            )
            self.session.add(refresh_row)
            self.session.flush()
        else:
            token.pop("refresh_token", None)
        # A Core insert: nothing reads the access token row back in this request, so skip the unit of work. When
        # it is the request's only write (client_credentials), it commits on its own (see gateway.oauth.hotpath).
        self._reading().execute(
            _INSERT_TOKEN,
            {
                "digest": self._digester.digest(token["access_token"]),
                "token_type": TokenType.ACCESS,
                "subject_kind": subject_kind,
                "offline_access": False,
                "application_id": client.id,
                "authorization_id": authorization.id,
                "scope": str(scope.espi),
                "family_id": family_id,
                "parent_id": refresh_row.id if refresh_row is not None else None,
                "issued_at": now,
                "expires_at": now + dt.timedelta(seconds=int(token["expires_in"])),
            },
        )
        token["scope"] = str(scope) if refresh_row is not None else str(scope.espi)
        token.update(espi_token_fields(self._settings, authorization, subject_kind, scope.espi))
        if self._metrics is not None:
            self._metrics.token_issued(grant_type)

    def _refresh_expiry(self, now: dt.datetime, offline: bool) -> dt.datetime:
        ttl = self._settings.offline_refresh_token_ttl if offline else self._settings.refresh_token_ttl
        return now + dt.timedelta(seconds=ttl)

    @staticmethod
    def _client_subject_kind(client: ClientRecord) -> str:
        if ClientRole.CUSTODIAN_ADMIN in client.roles:
            return SubjectKind.CUSTODIAN
        if ClientRole.UPLOAD in client.roles:
            return SubjectKind.UPLOAD
        return SubjectKind.CLIENT

    def _client_authorization(self, client: ClientRecord, subject_kind: str, scope: RequestedScope) -> AuthorizationRef:
        """The client's own Authorization record (kind client, or custodian for operator and upload clients)."""
        kind = AuthorizationKind.CLIENT if subject_kind == SubjectKind.CLIENT else AuthorizationKind.CUSTODIAN
        existing = (
            client.client_authorization_id if kind == AuthorizationKind.CLIENT else client.custodian_authorization_id
        )
        if existing is not None:
            return AuthorizationRef(id=existing, application_id=client.id)
        authorization = Authorization(
            uuid=uuid.uuid4(),
            kind=kind,
            application_id=client.id,
            status=AuthorizationStatus.ACTIVE,
            expires_at=NEVER_EXPIRES,
            grant_type="client_credentials",
            scope=str(scope.espi),
        )
        if self._insert_once(authorization):
            return AuthorizationRef(id=authorization.id, application_id=client.id)
        # A concurrent first request created it (unique index uq_authorization_active_client_kind): use that one.
        winner = self.session.scalar(
            select(Authorization.id).where(
                Authorization.application_id == client.id,
                Authorization.kind == kind,
                Authorization.status == AuthorizationStatus.ACTIVE,
            )
        )
        if winner is None:
            raise errors.ServerError(request=None, description="the client's authorization could not be created")
        return AuthorizationRef(id=winner, application_id=client.id)

    def _insert_once(self, authorization: Authorization) -> bool:
        """Insert ``authorization`` in a savepoint; ``False`` if a unique index says another request was first."""
        try:
            with self.session.begin_nested():
                self.session.add(authorization)
                self.session.flush()
        except IntegrityError:
            return False
        return True

    def _password_authorization(
        self, client: ClientRecord, customer: RetailCustomer, scope: RequestedScope, now: dt.datetime
    ) -> Authorization:
        """The customer's own Authorization for this client, with a Subscription of all their usage points."""
        existing = select(Authorization).where(
            Authorization.application_id == client.id,
            Authorization.customer_id == customer.id,
            Authorization.kind == AuthorizationKind.CUSTOMER,
            Authorization.grant_type == "password",
            Authorization.scope == str(scope.espi),
            Authorization.status == AuthorizationStatus.ACTIVE,
        )
        authorization = self.session.scalar(existing)
        if authorization is None:
            created = Authorization(
                uuid=uuid.uuid4(),
                kind=AuthorizationKind.CUSTOMER,
                application_id=client.id,
                customer_id=customer.id,
                status=AuthorizationStatus.ACTIVE,
                authorized_period_start=int(now.timestamp()),
                expires_at=NEVER_EXPIRES,
                grant_type="password",
                scope=str(scope.espi),
            )
            # A concurrent first grant may win the unique index uq_authorization_active_password: reuse its record.
            authorization = created if self._insert_once(created) else self.session.scalars(existing).one()
        usage_points = list(self.session.scalars(select(UsagePoint).where(UsagePoint.customer_id == customer.id)))
        subscription = authorization.subscription
        if subscription is None:
            subscription = Subscription(
                uuid=uuid.uuid4(),
                authorization_id=authorization.id,
                application_id=client.id,
                customer_id=customer.id,
            )
            self.session.add(subscription)
            authorization.subscription = subscription
        subscription.usage_points = usage_points
        self.session.flush()
        return authorization

    # -- revocation (RFC 7009) and introspection (RFC 7662) -------------------------------------------------------

    def _lookup(self, token: str) -> OAuthToken | None:
        if not token or len(token) > 512:
            return None
        row = self.session.scalar(select(OAuthToken).where(OAuthToken.digest.in_(self._digester.lookup_digests(token))))
        if row is None or row.token_type not in (TokenType.ACCESS, TokenType.REFRESH):
            return None
        return row

    def revoke_token(
        self, token: str, token_type_hint: str | None, request: Request, *args: Any, **kwargs: Any
    ) -> None:
        """Revoke a token of the authenticated client and what derives from it (RFC 7009 §2.1; row 30).

        Another client's token or an unknown one is left alone and still answered 200 (RFC 7009 §2.2), so the
        endpoint says nothing about tokens the caller does not own.
        """
        row = self._lookup(token)
        if row is None or row.application_id != client_of(request).id:
            return
        revoke_token_row(self.session, row, self._clock())

    def introspect_token(
        self, token: str, token_type_hint: str | None, request: Request, *args: Any, **kwargs: Any
    ) -> dict[str, Any] | None:
        """Describe an active token of the caller (RFC 7662 §2.2; row 31); anything else is ``{"active": false}``.

        A client sees only its own tokens; the custodian's operator client sees all.
        """
        row = self._lookup(token)
        if row is None:
            return None
        caller = client_of(request)
        if row.application_id != caller.id and ClientRole.CUSTODIAN_ADMIN not in caller.roles:
            return None
        now = self._clock()
        if not token_is_live(row, row.authorization, row.application, now):
            return None
        claims: dict[str, Any] = {
            "scope": str(RequestedScope(espi=parse_scope(row.scope), offline_access=row.offline_access)),
            "client_id": row.application.client_id,
            "token_type": "Bearer" if row.token_type == TokenType.ACCESS else "refresh_token",
            "iat": int(row.issued_at.timestamp()),
            "iss": self._settings.issuer,
        }
        if row.expires_at is not None:
            claims["exp"] = int(row.expires_at.timestamp())
        if row.authorization is not None:
            claims.update(
                espi_token_fields(
                    self._settings,
                    AuthorizationRef.of(row.authorization),
                    row.subject_kind or SubjectKind.CUSTOMER,
                    parse_scope(row.scope),
                )
            )
        return claims

    # -- not offered ---------------------------------------------------------------------------------------------

    def is_origin_allowed(self, client_id: str, origin: str, request: Request, *args: Any, **kwargs: Any) -> bool:
        """No CORS on OAuth endpoints (checklist row 16): browsers never call them cross-origin here."""
        return False
