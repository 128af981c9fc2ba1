"""Bearer-token checking for resource requests (RFC 6750 §2.1, §3.1): who is calling, and for what.

Tokens are accepted only in the ``Authorization`` header (RFC 9700 §4.3.2: never the query, never a form field). The
token is looked up by digest on every request (no cache), so a revocation takes effect on the very next request on
every node; one indexed query joins the token, its Authorization, Subscription and application. No falcon here: the
web layer (:mod:`gateway.web.auth`) calls :meth:`BearerTokenChecker.principal`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Callable
from typing import Any, Literal

from sqlalchemy import BindParameter, Select, bindparam, select
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
)


@functools.lru_cache(maxsize=8)
def _lookup(digest_count: int) -> Select[Any]:
    candidates: list[BindParameter[Any]] = [bindparam(f"d{index}") for index in range(digest_count)]
    return (
        _LOOKUP_COLUMNS.join(_application, _application.c.id == _token.c.application_id)
        .outerjoin(_authorization, _authorization.c.id == _token.c.authorization_id)
        .outerjoin(_subscription, _subscription.c.authorization_id == _authorization.c.id)
        .where(_token.c.digest == candidates[0] if digest_count == 1 else _token.c.digest.in_(candidates))
        .limit(1)
    )


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

    def require(self, *kinds: PrincipalKind) -> Principal:
        """Return self if of one of ``kinds``, else raise 403 (a valid token of the wrong kind, ESPI-NOTES §3)."""
        if self.kind not in kinds:
            raise forbidden(f"this resource is not available to a {self.kind} token")
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
        self, session: Session, authorization_header: str | None, *, token_elsewhere: bool = False
    ) -> Principal:
        """Check the header's token; ``token_elsewhere`` (an ``access_token`` query or form field) is refused."""
        if token_elsewhere:
            # RFC 9700 §4.3.2: tokens in URLs leak through logs and referrers; refusing beats ignoring.
            raise unauthorized("send the token in the Authorization header only", error="invalid_request")
        token = self.token_from_header(authorization_header)
        digests = self._digester.lookup_digests(token)
        statement = _lookup(len(digests))
        parameters = {f"d{index}": digest for index, digest in enumerate(digests)}
        if self._reads is None:
            row = session.connection().execute(statement, parameters).first()
        else:
            with self._reads.connection(session) as connection:
                row = connection.execute(statement, parameters).first()
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
        ) = row
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
        return Principal(
            kind=kind,
            token_id=token_id,
            application_id=application_id,
            client_id=client_id,
            authorization_id=authorization_id,
            subscription_id=subscription_id if kind == "customer" else None,
            customer_id=customer_id if kind == "customer" else None,
            scope=scope,
            scope_text=scope_text,
        )
