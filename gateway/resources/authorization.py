"""``Authorization`` and ``Authorization/{id}`` (ESPI REQ.21 FB 41 "manage Authorization"; ESPI-NOTES §2-3, §6).

Client access tokens (client_credentials) only: registration and customer tokens get 403, none 401. A third party sees
its own application's Authorizations only; another app's id is 404 (no existence oracle).

- ``GET Authorization``: the app's Authorizations (its customers' consents and its own client access), paged (FB 37).
- ``GET Authorization/{id}``: one of them.
- ``DELETE Authorization/{id}``: the app ends a customer's consent. It goes through
  :func:`gateway.consent.lifecycle.revoke_consent` (``by=APP``): tokens die at once, the customer is told, the event
  is recorded. 204; a second DELETE is 204 too (idempotent, RFC 9110 §9.2.2).
- ``PUT Authorization/{id}``: the consent's terms (scope, periods, usage points) are the customer's, and the app may
  not alter them (ESPI-NOTES §6); the only change an app may make is ``status`` 0, the same as DELETE. Any other
  change is 409. The body is an ESPI ``Authorization`` (bare or in an Atom entry).
"""

from __future__ import annotations

from typing import Any

import falcon
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from gateway.consent.lifecycle import RevokedBy, revoke_consent
from gateway.errors import BadRequest, Conflict, NotFound
from gateway.espi.writer import authorization_entry
from gateway.oauth.tokens import revoke_authorization_tokens
from gateway.resources.body import espi_resource_from_body, texts
from gateway.resources.espi_base import EspiApi, row_parts
from gateway.storage.authorization import Authorization, AuthorizationKind, AuthorizationStatus
from gateway.storage.base import utcnow
from gateway.storage.consent import Consent

__all__ = ["AuthorizationResource"]

_VISIBLE_KINDS = (AuthorizationKind.CUSTOMER, AuthorizationKind.CLIENT)


class AuthorizationResource:
    """ESPI ``Authorization`` collection and entries of the calling application."""

    def __init__(self, api: EspiApi) -> None:
        self.api = api

    def _own(self, req: falcon.Request, authorization_id: int, *, writing: bool = False) -> Authorization:
        principal = self.api.authenticate(req, "client")
        session = req.context.db if writing else self.api.db(req)
        found = session.scalar(
            select(Authorization)
            .where(
                Authorization.id == authorization_id,
                Authorization.application_id == principal.application_id,
                Authorization.kind.in_(_VISIBLE_KINDS),
            )
            .options(selectinload(Authorization.subscription))
        )
        if found is None:
            raise NotFound(f"no Authorization {authorization_id} of this application")
        return found

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """The application's Authorizations (one page, ``updated-*`` filters)."""
        principal = self.api.authenticate(req, "client")
        query = self.api.query(req)
        filters = self.api.filters(query)
        conditions: list[Any] = [
            Authorization.application_id == principal.application_id,
            Authorization.kind.in_(_VISIBLE_KINDS),
        ]
        if filters.updated_min is not None:
            conditions.append(Authorization.updated >= filters.updated_min)
        if filters.updated_max is not None:
            conditions.append(Authorization.updated < filters.updated_max)
        session = self.api.db(req)
        total = int(session.scalar(select(func.count()).select_from(Authorization).where(*conditions)) or 0)
        rows = list(
            session.scalars(
                select(Authorization)
                .where(*conditions)
                .options(selectinload(Authorization.subscription))
                .order_by(Authorization.id)
                .offset(query.offset)
                .limit(query.max_results)
            )
        )
        entries = [authorization_entry(row, self.api.links) for row in rows]
        self.api.send_feed(
            req,
            resp,
            entries,
            resource="Authorization",
            title="Authorizations",
            validator_parts=[principal.application_id, query.cache_key(), *row_parts(rows)],
            rows=rows,
            links=self.api.paging_links(req, query, total=total, resource="Authorization"),
        )

    def on_get_item(self, req: falcon.Request, resp: falcon.Response, authorization_id: int) -> None:
        """One of the application's Authorizations."""
        authorization = self._own(req, authorization_id)
        self.api.query(req)
        entry = authorization_entry(authorization, self.api.links)
        self.api.send_entry(req, resp, entry, validator_parts=(authorization.status,))

    def _revoke(self, req: falcon.Request, authorization: Authorization) -> None:
        session = req.context.db
        consent = session.scalar(select(Consent).where(Consent.authorization_id == authorization.id))
        if consent is not None:
            revoke_consent(session, self.api.settings, consent, by=RevokedBy.APP)
        elif authorization.status == AuthorizationStatus.ACTIVE:
            # No consent record (the app's own client access, or a self-access grant): end it just the same.
            now = utcnow()
            authorization.status = AuthorizationStatus.REVOKED
            authorization.revoked_at = now
            revoke_authorization_tokens(session, authorization.id, now)
        session.flush()

    def on_delete_item(self, req: falcon.Request, resp: falcon.Response, authorization_id: int) -> None:
        """End the consent behind one of the application's Authorizations (204)."""
        authorization = self._own(req, authorization_id, writing=True)
        self._revoke(req, authorization)
        resp.status = falcon.HTTP_204

    def on_put_item(self, req: falcon.Request, resp: falcon.Response, authorization_id: int) -> None:
        """Only ``status`` 0 (revoke) may be set; the customer's terms are not the app's to change (409)."""
        authorization = self._own(req, authorization_id, writing=True)
        element = espi_resource_from_body(req, "Authorization", max_bytes=self.api.settings.max_request_bytes)
        statuses = texts(element, "status")
        if len(statuses) != 1 or statuses[0] not in ("0", "1", "2"):
            raise BadRequest("the Authorization must carry one status: 0 (revoked), 1 (active) or 2 (denied)")
        scopes = texts(element, "scope")
        if scopes and scopes[0] != authorization.scope:
            raise Conflict("the scope of an Authorization is the customer's choice; the app cannot change it")
        status = int(statuses[0])
        if status == AuthorizationStatus.REVOKED:
            self._revoke(req, authorization)
        elif status != authorization.status:
            raise Conflict("an app may only revoke an Authorization (status 0); the customer grants it")
        session = req.context.db
        session.refresh(authorization)
        entry = authorization_entry(authorization, self.api.links)
        self.api.send_entry(req, resp, entry, validator_parts=(authorization.status,))
