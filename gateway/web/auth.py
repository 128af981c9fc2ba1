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
from sqlalchemy import Engine

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

    def authenticate(self, req: falcon.Request) -> Principal:
        """Return (and remember on ``req.context.principal``) the caller, or raise 401."""
        principal: Principal | None = getattr(req.context, "principal", None)
        if principal is not None:
            return principal
        token_elsewhere = "access_token" in req.params or (
            # A form-encoded body field is another forbidden place (RFC 9700 §4.3.2); falcon only parses bodies on
            # request, so look at the content type rather than reading the body here.
            (req.content_type or "").startswith("application/x-www-form-urlencoded")
            and req.get_header("Authorization") is None
        )
        principal = self._checker.principal(
            req.context.db, req.get_header("Authorization"), token_elsewhere=token_elsewhere
        )
        req.context.principal = principal
        return principal

    def require(self, req: falcon.Request, *kinds: PrincipalKind) -> Principal:
        """Authenticate and demand one of ``kinds`` (403 otherwise)."""
        return self.authenticate(req).require(*kinds)


def bearer_required(*kinds: PrincipalKind) -> Callable[..., None]:
    """A ``falcon.before`` hook: the resource's ``bearer_auth`` must accept the request for one of ``kinds``."""

    def hook(req: falcon.Request, resp: falcon.Response, resource: Any, params: dict[str, Any]) -> None:
        auth: BearerAuth = resource.bearer_auth
        auth.require(req, *kinds)

    return hook
