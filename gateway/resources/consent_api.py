"""The consent API: ``/oauth/consent-requests`` (the Open Banking account-access-consent pattern; ESPI-NOTES §6).

With a client access token (client_credentials, ESPI-NOTES §3):

* ``POST /oauth/consent-requests`` with JSON ``{"scope": …, "expiration_date_time": …, "data_from": …,
  "data_to": …}`` → 201 ``{"consent_request_id": …, "status": "AwaitingAuthorisation", …}`` and ``Location``;
* ``GET /oauth/consent-requests/{id}`` → the status and its timestamps (another app's id is 404);
* ``DELETE /oauth/consent-requests/{id}`` → 204; the request is ``Revoked`` and an authorised consent with it.

The app then sends the customer to ``/oauth/authorize?…&consent_request_id={id}``. See ``docs/consent-api.md``.
"""

from __future__ import annotations

import json
from typing import Any

import falcon

from gateway.config import Settings
from gateway.consent.requests import (
    create_consent_request,
    delete_consent_request,
    get_consent_request,
    parse_timestamp,
    to_json,
)
from gateway.errors import BadRequest, NotFound, PayloadTooLarge, UnsupportedMediaType
from gateway.storage.models import ApplicationInformation
from gateway.web.auth import BearerAuth

__all__ = ["ConsentRequestsResource"]

_MAX_BODY = 16 * 1024
_FIELDS = frozenset({"scope", "expiration_date_time", "data_from", "data_to"})


def _read_json(req: falcon.Request) -> dict[str, Any]:
    media_type = (req.content_type or "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedMediaType("send the consent request as application/json")
    raw = req.bounded_stream.read(_MAX_BODY + 1)
    if len(raw) > _MAX_BODY:
        raise PayloadTooLarge("the consent request is too large")
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(document, dict):
        raise BadRequest("the body must be a JSON object")
    unknown = sorted(set(document) - _FIELDS)
    if unknown:
        raise BadRequest(f"unknown fields: {', '.join(unknown)}")
    return document


class ConsentRequestsResource:
    """The collection (``on_post``) and the item (``on_get_item``, ``on_delete_item``)."""

    def __init__(self, settings: Settings, bearer_auth: BearerAuth) -> None:
        self._settings = settings
        self.bearer_auth = bearer_auth

    def _application(self, req: falcon.Request) -> ApplicationInformation:
        principal = self.bearer_auth.require(req, "client")
        application: ApplicationInformation | None = req.context.db.get(
            ApplicationInformation, principal.application_id
        )
        if application is None:  # pragma: no cover - the token check joined it
            raise NotFound("no such application")
        return application

    def _write(self, req: falcon.Request, resp: falcon.Response, document: dict[str, Any]) -> None:
        resp.content_type = falcon.MEDIA_JSON
        resp.text = json.dumps(document)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        application = self._application(req)
        document = _read_json(req)
        scope = document.get("scope")
        if not isinstance(scope, str):
            raise BadRequest("scope is required (an ESPI scope string)")
        consent_request = create_consent_request(
            req.context.db,
            application,
            scope=scope,
            expiration_at=parse_timestamp("expiration_date_time", document.get("expiration_date_time")),
            data_from=parse_timestamp("data_from", document.get("data_from")),
            data_to=parse_timestamp("data_to", document.get("data_to")),
        )
        resp.status = falcon.HTTP_201
        resp.location = f"{self._settings.issuer}/oauth/consent-requests/{consent_request.id}"
        self._write(req, resp, to_json(req.context.db, self._settings, consent_request))

    def on_get_item(self, req: falcon.Request, resp: falcon.Response, consent_request_id: str) -> None:
        application = self._application(req)
        consent_request = get_consent_request(req.context.db, application.id, consent_request_id)
        self._write(req, resp, to_json(req.context.db, self._settings, consent_request))

    def on_delete_item(self, req: falcon.Request, resp: falcon.Response, consent_request_id: str) -> None:
        application = self._application(req)
        delete_consent_request(req.context.db, self._settings, application.id, consent_request_id)
        resp.status = falcon.HTTP_204
