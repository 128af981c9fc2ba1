"""Bearer authentication for ESPI resources: a falcon hook over :class:`gateway.oauth.bearer.BearerTokenChecker`.

Use in a resource that received a :class:`BearerAuth` in its constructor as ``self.bearer_auth``::

    class ReadServiceStatus:
        def __init__(self, bearer_auth: BearerAuth) -> None:
            self.bearer_auth = bearer_auth

        @falcon.before(bearer_required("client"))
        def on_get(self, req, resp): ...   # req.context.principal is the caller

or call ``self.bearer_auth.require(req, "customer")`` inside a responder. 401 for a missing, bad, expired or revoked
token; 403 for a valid token of the wrong kind (ESPI-NOTES §3).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import falcon
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from gateway.oauth.bearer import BearerTokenChecker, Principal, PrincipalKind
from gateway.oauth.hotpath import HotPath
from gateway.security.digests import SecretDigester

__all__ = ["BearerAuth", "Principal", "PrincipalKind", "bearer_required"]


class BearerAuth:
    """Resolve ``Authorization: Bearer`` into ``req.context.principal`` using the request's database session."""

    def __init__(
        self,
        digester: SecretDigester,
        engine: Engine | None = None,
        *,
        checker: BearerTokenChecker | None = None,
    ) -> None:
        # With the engine, lookups on SQLite skip the request's write lock (see gateway.oauth.hotpath).
        self._checker = checker or BearerTokenChecker(
            digester, reads=HotPath.for_engine(engine) if engine is not None else None
        )

    def authenticate(self, req: falcon.Request, *, db: Session | Connection | None = None) -> Principal:
        """Return (and remember on ``req.context.principal``) the caller, or raise 401.

        The token is looked up with ``db`` when given (a connection the responder reads with anyway), else with the
        request's session.
        """
        principal: Principal | None = getattr(req.context, "principal", None)
        if principal is not None:
            return principal
        principal = self._checker.principal(
            req.context.db if db is None else db, req.get_header("Authorization"), token_elsewhere=_elsewhere(req)
        )
        req.context.principal = principal
        return principal

    def require(self, req: falcon.Request, *kinds: PrincipalKind, db: Session | Connection | None = None) -> Principal:
        """Authenticate (with ``db`` as in :meth:`authenticate`) and demand one of ``kinds`` (403 otherwise)."""
        return self.authenticate(req, db=db).require(*kinds)

    def require_with_usage_point(
        self, req: falcon.Request, usage_point_id: int, *kinds: PrincipalKind, db: Session | Connection
    ) -> tuple[Principal, Any | None]:
        """As :meth:`require`, plus the usage point ``usage_point_id`` of a customer token's grant read with the token
        (:meth:`gateway.oauth.bearer.BearerTokenChecker.principal_and_usage_point`; ``None`` when not in it)."""
        principal, usage_point = self._checker.principal_and_usage_point(
            db, req.get_header("Authorization"), usage_point_id, token_elsewhere=_elsewhere(req)
        )
        req.context.principal = principal
        return principal.require(*kinds), usage_point


def _elsewhere(req: falcon.Request) -> bool:
    """True when the request carries a token outside the ``Authorization`` header (refused: RFC 9700 §4.3.2)."""
    return "access_token" in req.params or (
        # A form-encoded body field is another forbidden place; falcon only parses bodies on request, so look at the
        # content type rather than reading the body here.
        (req.content_type or "").startswith("application/x-www-form-urlencoded")
        and req.get_header("Authorization") is None
    )


def bearer_required(*kinds: PrincipalKind) -> Callable[..., None]:
    """A ``falcon.before`` hook: the resource's ``bearer_auth`` must accept the request for one of ``kinds``."""

    def hook(req: falcon.Request, resp: falcon.Response, resource: Any, params: dict[str, Any]) -> None:
        auth: BearerAuth = resource.bearer_auth
        auth.require(req, *kinds)

    return hook
