"""Background access for apps (issue item 7; ESPI FB 40 "offline authorization"): a token management service.

A multi-tenant app that serves many customers needs, from a background job, short-lived access tokens for the
customers who granted it *offline* access, without keeping a refresh token per customer hot in every process. With
its client access token (client_credentials, scope with FB 40) it may:

- ``GET /oauth/background/subscriptions`` (FB 37 ``max-results``/``start-index``): list, in pages, its subscriptions
  whose consent is active, unexpired and granted with offline access. JSON:
  ``{"subscriptions": [{"subscription_id", "authorization_id", "resourceURI", "authorizationURI", "scope",
  "expires_at"}], "total", "next"}``.
- ``POST /oauth/background/tokens`` with ``{"subscription_ids": [...]}`` (JSON) or repeated ``subscription_id`` form
  fields: at most 5 distinct ids per request. For each eligible one, a fresh access token (``Bearer``, lifetime
  ``min(300 s, GATEWAY_ACCESS_TOKEN_TTL)``) bound to that consent, usable on its ``resourceURI``; ids that are not
  eligible (revoked, expired, no offline access, another app's, unknown: all alike, no existence oracle) come back in
  ``errors``. A revoked or expired consent never gets a token: eligibility is checked in the same transaction that
  writes the token, and the bearer check refuses tokens of a consent revoked later.

Client tokens without FB 40 get 403; other token kinds 403; none 401. Rate limits apply as on every resource.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import falcon
from sqlalchemy import func, insert, select

from gateway.errors import BadRequest, UnsupportedMediaType
from gateway.resources.espi_base import EspiApi
from gateway.security.digests import SecretDigester, new_secret
from gateway.storage.authorization import Authorization, AuthorizationKind, AuthorizationStatus, Subscription
from gateway.storage.base import utcnow
from gateway.storage.consent import Consent
from gateway.storage.oauth import OAuthToken, SubjectKind, TokenType
from gateway.web.params import parse_query

__all__ = ["MAX_TOKENS_PER_REQUEST", "BackgroundSubscriptionsResource", "BackgroundTokensResource"]

MAX_TOKENS_PER_REQUEST = 5
TOKEN_TTL = 300
FB_OFFLINE = 40


def _eligible(application_id: int, now: dt.datetime) -> Any:
    """Subscriptions of the app with an active, unexpired, offline consent (Core select of the fields we return)."""
    return (
        select(
            Subscription.id,
            Authorization.id,
            Authorization.scope,
            Authorization.expires_at,
        )
        .join(Authorization, Authorization.id == Subscription.authorization_id)
        .join(Consent, Consent.authorization_id == Authorization.id)
        .where(
            Subscription.application_id == application_id,
            Authorization.application_id == application_id,
            Authorization.kind == AuthorizationKind.CUSTOMER,
            Authorization.status == AuthorizationStatus.ACTIVE,
            Authorization.expires_at > int(now.timestamp()),
            Consent.status == "active",
            Consent.offline_access.is_(True),
        )
    )


class BackgroundSubscriptionsResource:
    """``GET /oauth/background/subscriptions``."""

    def __init__(self, api: EspiApi) -> None:
        self.api = api

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        principal = self.api.authenticate(req, "client").require_blocks(FB_OFFLINE)
        query = parse_query(req.params)
        session = self.api.db(req)
        eligible = _eligible(principal.application_id, utcnow())
        total = int(session.scalar(select(func.count()).select_from(eligible.subquery())) or 0)
        rows = session.execute(eligible.order_by(Subscription.id).offset(query.offset).limit(query.max_results)).all()
        links = self.api.links
        document: dict[str, Any] = {
            "subscriptions": [
                {
                    "subscription_id": subscription_id,
                    "authorization_id": authorization_id,
                    "resourceURI": links.batch_subscription(subscription_id),
                    "authorizationURI": links.authorization(authorization_id),
                    "scope": scope,
                    "expires_at": expires_at,
                }
                for subscription_id, authorization_id, scope, expires_at in rows
            ],
            "total": total,
        }
        if query.offset + query.max_results < total:
            document["next"] = (
                f"{self.api.absolute(req, with_query=False)}?{query.page_query(query.start_index + query.max_results)}"
            )
        resp.content_type = "application/json"
        resp.set_header("Cache-Control", "no-store")
        resp.data = json.dumps(document).encode()


class BackgroundTokensResource:
    """``POST /oauth/background/tokens``."""

    def __init__(self, api: EspiApi, digester: SecretDigester) -> None:
        self.api = api
        self.digester = digester

    @staticmethod
    def _requested_ids(req: falcon.Request) -> list[int]:
        content_type = (req.content_type or "").split(";")[0].strip().lower()
        raw: list[Any]
        if content_type == "application/json":
            try:
                body = json.loads(req.bounded_stream.read(64 * 1024) or b"{}")
            except ValueError:
                raise BadRequest("the body is not valid JSON") from None
            raw = body.get("subscription_ids") if isinstance(body, dict) else None  # type: ignore[assignment]
            if not isinstance(raw, list):
                raise BadRequest("subscription_ids must be a list of subscription ids")
        elif content_type == "application/x-www-form-urlencoded":
            form = falcon.uri.parse_query_string(req.bounded_stream.read(64 * 1024).decode("utf-8", "replace"))
            value = form.get("subscription_id", [])
            raw = value if isinstance(value, list) else [value]
        else:
            raise UnsupportedMediaType("send application/json or application/x-www-form-urlencoded")
        ids: list[int] = []
        for item in raw:
            if isinstance(item, bool) or not (
                isinstance(item, int) or (isinstance(item, str) and item.isdigit() and len(item) <= 18)
            ):
                raise BadRequest("subscription_ids must be whole numbers")
            ids.append(int(item))
        ids = list(dict.fromkeys(ids))
        if not ids:
            raise BadRequest("name at least one subscription id")
        if len(ids) > MAX_TOKENS_PER_REQUEST:
            raise BadRequest(f"at most {MAX_TOKENS_PER_REQUEST} subscriptions per request")
        return ids

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        principal = self.api.authenticate(req, "client").require_blocks(FB_OFFLINE)
        ids = self._requested_ids(req)
        session = req.context.db
        now = utcnow()
        ttl = min(TOKEN_TTL, self.api.settings.access_token_ttl)
        rows = {
            row[0]: row
            for row in session.execute(
                _eligible(principal.application_id, now)
                .where(Subscription.id.in_(ids))
                .with_for_update(of=Authorization)
            ).all()
        }
        links = self.api.links
        tokens: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for subscription_id in ids:
            row = rows.get(subscription_id)
            if row is None:
                errors.append(
                    {
                        "subscription_id": subscription_id,
                        "error": "unavailable",
                        "error_description": "no active offline consent of this application",
                    }
                )
                continue
            _, authorization_id, scope, _expires = row
            token = new_secret()
            session.execute(
                insert(OAuthToken).values(
                    digest=self.digester.digest(token),
                    token_type=TokenType.ACCESS,
                    subject_kind=SubjectKind.CUSTOMER,
                    offline_access=False,
                    application_id=principal.application_id,
                    authorization_id=authorization_id,
                    scope=scope,
                    issued_at=now,
                    expires_at=now + dt.timedelta(seconds=ttl),
                )
            )
            tokens.append(
                {
                    "subscription_id": subscription_id,
                    "access_token": token,
                    "token_type": "Bearer",
                    "expires_in": ttl,
                    "scope": scope,
                    "resourceURI": links.batch_subscription(subscription_id),
                    "authorizationURI": links.authorization(authorization_id),
                }
            )
        resp.content_type = "application/json"
        resp.set_header("Cache-Control", "no-store")
        resp.set_header("Pragma", "no-cache")
        resp.data = json.dumps({"tokens": tokens, "errors": errors}).encode()
