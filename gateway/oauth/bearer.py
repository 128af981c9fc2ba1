"""Bearer-token checking for resource requests (RFC 6750 §2.1, §3.1): who is calling, and for what.

Tokens are accepted only in the ``Authorization`` header (RFC 9700 §4.3.2: never the query, never a form field). The
token is looked up by digest on every request (no cache), so a revocation takes effect on the very next request on
every node; one indexed query joins the token, its Authorization, Subscription and application. For a customer token
the same row carries what the consent grants (the Authorization's scope and ``publishedPeriod``): a customer request
needs no second query for its grant. No falcon here: the web layer (:mod:`gateway.web.auth`) calls
:meth:`BearerTokenChecker.principal`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Callable
from typing import Any, Literal

from sqlalchemy import BindParameter, Connection, bindparam, select
from sqlalchemy.orm import Session

from gateway.errors import Forbidden, Unauthorized
from gateway.oauth.hotpath import HotPath
from gateway.oauth.scope import EspiScope, ScopeError, parse_scope
from gateway.security.digests import SecretDigester
from gateway.storage.base import utcnow
from gateway.storage.models import (
    ApplicationInformation,
    ApplicationStatus,
    Authorization,
    AuthorizationStatus,
    OAuthToken,
    Subscription,
    TokenType,
)
from gateway.storage.oauth import SubjectKind
from gateway.storage.prepared import PreparedSelect
from gateway.storage.queries import (
    Grant,
    consent_grant,
    subscription_usage_point_of,
    with_subscription_usage_point,
)

__all__ = ["BearerTokenChecker", "Principal", "PrincipalKind", "forbidden", "unauthorized"]

PrincipalKind = Literal["customer", "client", "registration", "custodian", "upload"]

_MAX_TOKEN_LENGTH = 512

_token = OAuthToken.__table__
_application = ApplicationInformation.__table__
_authorization = Authorization.__table__
_subscription = Subscription.__table__

# Built once per number of candidate digests (1 + previous secret keys) and executed as Core: this lookup runs on
# every resource request, and building an ORM statement, or expanding an IN list, costs more than the query itself.
_LOOKUP_COLUMNS = select(
    _token.c.id,
    _token.c.token_type,
    _token.c.subject_kind,
    _token.c.application_id,
    _token.c.authorization_id,
    _token.c.scope,
    _token.c.expires_at,
    _token.c.revoked_at,
    _application.c.client_id,
    _application.c.status,
    _authorization.c.status,
    _authorization.c.expires_at,
    _authorization.c.customer_id,
    _subscription.c.id,
    # The customer grant, folded into the token's row (saves the grant query of every customer request).
    _subscription.c.customer_id,
    _authorization.c.scope,
    _authorization.c.published_period_start,
    _authorization.c.published_period_duration,
)
_LOOKUP_WIDTH = len(_LOOKUP_COLUMNS.selected_columns)


@functools.lru_cache(maxsize=16)
def _lookup(digest_count: int, usage_point: bool = False) -> PreparedSelect:
    candidates: list[BindParameter[Any]] = [bindparam(f"d{index}") for index in range(digest_count)]
    statement = (
        _LOOKUP_COLUMNS.join(_application, _application.c.id == _token.c.application_id)
        .outerjoin(_authorization, _authorization.c.id == _token.c.authorization_id)
        .outerjoin(_subscription, _subscription.c.authorization_id == _authorization.c.id)
        .where(_token.c.digest == candidates[0] if digest_count == 1 else _token.c.digest.in_(candidates))
        .limit(1)
    )
    # Each query costs ~20 µs of SQLAlchemy on top of SQLite's own work: a UsagePoint's row rides along instead.
    # Prepared: the lookup runs on every resource request (see gateway.storage.prepared).
    return PreparedSelect(with_subscription_usage_point(statement) if usage_point else statement)


@functools.lru_cache(maxsize=4096)
def _parse_stored_scope(text: str) -> EspiScope | None:
    """Stored scopes are canonical and repeat across tokens: parse each once per process."""
    try:
        return parse_scope(text)
    except ScopeError:
        return None


def unauthorized(message: str, *, error: str = "invalid_token") -> Unauthorized:
    """401 with the RFC 6750 §3 challenge (no ``error`` when no credentials were sent at all, §3.1)."""
    challenge = 'Bearer realm="greenbutton"' + (f', error="{error}"' if error else "")
    return Unauthorized(message, headers={"WWW-Authenticate": challenge})


def forbidden(message: str) -> Forbidden:
    """403 ``insufficient_scope`` (RFC 6750 §3.1): a valid token of the wrong kind or scope."""
    return Forbidden(message, headers={"WWW-Authenticate": 'Bearer realm="greenbutton", error="insufficient_scope"'})


@dataclasses.dataclass(frozen=True, slots=True)
class Principal:
    """Who a valid bearer token speaks for (ESPI-NOTES §3).

    ``kind``: ``customer`` (a consent: reads ``subscription_id`` only), ``client`` (a third party's own feeds),
    ``registration`` (its ApplicationInformation only), ``custodian`` (the utility's operator), ``upload``.
    ``grant``: for a customer token, what its consent lets it read (:func:`gateway.storage.queries.consent_grant`);
    ``None`` for every other kind, and for a customer token whose subscription is not its customer's or whose stored
    scope does not parse (it then reads nothing).
    """

    kind: PrincipalKind
    token_id: int
    application_id: int
    client_id: str
    authorization_id: int | None
    subscription_id: int | None
    customer_id: int | None
    scope: EspiScope | None
    scope_text: str
    grant: Grant | None = None

    def require(self, *kinds: PrincipalKind) -> Principal:
        """Return self if of one of ``kinds``, else raise 403 (a valid token of the wrong kind, ESPI-NOTES §3)."""
        if self.kind not in kinds:
            article = "an" if self.kind[0] in "aeiou" else "a"
            raise forbidden(f"this resource is not available to {article} {self.kind} token")
        return self

    def require_blocks(self, *blocks: int) -> Principal:
        """Return self if the granted scope holds every function block in ``blocks``, else raise 403."""
        if self.scope is None or not self.scope.has(*blocks):
            raise forbidden("the token's scope does not cover this resource")
        return self


class BearerTokenChecker:
    """Resolve an ``Authorization: Bearer`` header into a :class:`Principal`, checking the database every time."""

    def __init__(
        self,
        digester: SecretDigester,
        *,
        reads: HotPath | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self._digester = digester
        self._reads = reads
        self._clock = clock

    @staticmethod
    def token_from_header(authorization_header: str | None) -> str:
        """The bearer string of an ``Authorization`` header (RFC 6750 §2.1), or 401."""
        if not authorization_header:
            raise unauthorized("a bearer token is required in the Authorization header", error="")
        scheme, _, token = authorization_header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or " " in token or len(token) > _MAX_TOKEN_LENGTH:
            raise unauthorized("the Authorization header must be 'Bearer <token>'", error="invalid_request")
        return token

    def principal(
        self, db: Session | Connection, authorization_header: str | None, *, token_elsewhere: bool = False
    ) -> Principal:
        """Check the header's token; ``token_elsewhere`` (an ``access_token`` query or form field) is refused.

        ``db`` is the request's session, or a connection the caller already holds for the request's reads (the
        ESPI resources pass theirs: one connection per request instead of one for the token and one for the data).
        """
        return self._check(db, authorization_header, token_elsewhere, None)[0]

    def principal_and_usage_point(
        self,
        db: Session | Connection,
        authorization_header: str | None,
        usage_point_id: int,
        *,
        token_elsewhere: bool = False,
    ) -> tuple[Principal, Any | None]:
        """As :meth:`principal`, plus the usage point ``usage_point_id`` of a customer token's grant, in one query.

        The usage point is ``None`` when it is not in the token's subscription, not its customer's, or of a
        commodity the grant does not show (exactly :func:`gateway.storage.queries.usage_point_row`), and always
        for a token of another kind or without a grant.
        """
        return self._check(db, authorization_header, token_elsewhere, usage_point_id)

    def _check(
        self,
        db: Session | Connection,
        authorization_header: str | None,
        token_elsewhere: bool,
        usage_point_id: int | None,
    ) -> tuple[Principal, Any | None]:
        if token_elsewhere:
            # RFC 9700 §4.3.2: tokens in URLs leak through logs and referrers; refusing beats ignoring.
            raise unauthorized("send the token in the Authorization header only", error="invalid_request")
        token = self.token_from_header(authorization_header)
        digests = self._digester.lookup_digests(token)
        statement = _lookup(len(digests), usage_point_id is not None)
        parameters: dict[str, Any] = {f"d{index}": digest for index, digest in enumerate(digests)}
        if usage_point_id is not None:
            parameters["usage_point_id"] = usage_point_id
        if isinstance(db, Connection):
            row = statement.first(db, parameters)
        elif self._reads is None:
            row = statement.first(db.connection(), parameters)
        else:
            with self._reads.connection(db) as connection:
                row = statement.first(connection, parameters)
        if row is None:
            raise unauthorized("the token is unknown, expired or revoked")
        (
            token_id,
            token_type,
            subject_kind,
            application_id,
            authorization_id,
            scope_text,
            expires_at,
            revoked_at,
            client_id,
            application_status,
            authorization_status,
            authorization_expires_at,
            customer_id,
            subscription_id,
            subscription_customer_id,
            granted_scope,
            published_period_start,
            published_period_duration,
        ) = row[:_LOOKUP_WIDTH]
        now = self._clock()
        if (
            token_type not in (TokenType.ACCESS, TokenType.REGISTRATION)
            or revoked_at is not None
            or (expires_at is not None and expires_at <= now)
            or application_status == ApplicationStatus.REVOKED
            or (
                authorization_id is not None
                and (
                    authorization_status != AuthorizationStatus.ACTIVE
                    or authorization_expires_at <= int(now.timestamp())
                )
            )
        ):
            raise unauthorized("the token is unknown, expired or revoked")
        kind: PrincipalKind
        if token_type == TokenType.REGISTRATION:
            kind = "registration"
        elif subject_kind in (
            SubjectKind.CUSTOMER,
            SubjectKind.CLIENT,
            SubjectKind.CUSTODIAN,
            SubjectKind.UPLOAD,
        ):
            kind = subject_kind
        else:
            raise unauthorized("the token is unknown, expired or revoked")
        scope = _parse_stored_scope(scope_text)
        grant: Grant | None = None
        if kind != "customer":
            subscription_id = customer_id = None
        elif subscription_id is not None and customer_id is not None and subscription_customer_id == customer_id:
            grant = consent_grant(
                subscription_id, customer_id, granted_scope, published_period_start, published_period_duration
            )
        principal = Principal(
            kind=kind,
            token_id=token_id,
            application_id=application_id,
            client_id=client_id,
            authorization_id=authorization_id,
            subscription_id=subscription_id,
            customer_id=customer_id,
            scope=scope,
            scope_text=scope_text,
            grant=grant,
        )
        if usage_point_id is None or grant is None:
            return principal, None
        return principal, subscription_usage_point_of(grant, row)
