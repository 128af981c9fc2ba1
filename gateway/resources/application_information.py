"""``ApplicationInformation/{id}`` (ESPI REQ.21 FB 44 "manage ApplicationInformation"; RFC 7592; ESPI-NOTES §2-3, §6).

The registration access token of application ``{id}`` only (RFC 7592 §2): client and customer tokens get 403, none
401, and another application's id 403 (the same answer whether it exists or not).

- ``GET``: the registration as an ESPI ApplicationInformation entry (secrets are never echoed: only digests exist).
- ``PUT``: change the registration (RFC 7592 §2.2). Changeable: ``redirect_uri`` (1..n, each validated as at
  registration: exact, https or loopback http, no fragment/credentials/wildcard), ``thirdPartyNotifyUri`` (same rules:
  it is where the custodian POSTs, an SSRF target otherwise), ``client_name``, ``thirdPartyApplicationDescription``,
  ``thirdPartyPhone``, ``logo_uri``, ``client_uri``, ``tos_uri``, ``policy_uri``, ``software_version``, ``contacts``
  and ``scope`` (each valid, and only narrowing: an app cannot grant itself function blocks). Elements absent from
  the body keep their value; custodian-owned elements (ids, status, endpoints, secrets) are ignored.
- ``DELETE``: the app deregisters (RFC 7592 §2.3): status 4 (revoked) and every token of the application revoked. 204.
"""

from __future__ import annotations

from typing import Any

import falcon
from sqlalchemy import update

from gateway.errors import BadRequest, NotFound
from gateway.espi.writer import CustodianEndpoints, application_information_entry
from gateway.oauth.bearer import forbidden
from gateway.oauth.registration import validate_notify_uri, validate_redirect_uri, validate_scopes
from gateway.oauth.scope import parse_scope
from gateway.outbox.delivery import is_development
from gateway.resources.body import espi_resource_from_body, texts
from gateway.resources.espi_base import EspiApi
from gateway.storage.application import ApplicationInformation, ApplicationStatus
from gateway.storage.base import utcnow
from gateway.storage.oauth import OAuthToken

__all__ = ["ApplicationInformationResource"]

_TEXT_FIELDS = {
    "client_name": ("client_name", 256),
    "thirdPartyApplicationDescription": ("description", 256),
    "thirdPartyPhone": ("third_party_phone", 32),
    "software_version": ("software_version", 32),
}
_URI_FIELDS = {"logo_uri": "logo_uri", "client_uri": "client_uri", "tos_uri": "tos_uri", "policy_uri": "policy_uri"}


def _uri(name: str, value: str) -> str:
    try:
        return validate_redirect_uri(value)
    except BadRequest as error:
        raise BadRequest(f"{name}: {error.message.replace('redirect URI', 'URI')}") from None


class ApplicationInformationResource:
    """The calling application's own registration."""

    def __init__(self, api: EspiApi) -> None:
        self.api = api
        self.endpoints = CustodianEndpoints.from_settings(api.settings)

    def _own(self, req: falcon.Request, application_id: int) -> ApplicationInformation:
        principal = self.api.authenticate(req, "registration")
        if principal.application_id != application_id:
            raise forbidden("a registration token manages its own ApplicationInformation only")
        application: ApplicationInformation | None = req.context.db.get(ApplicationInformation, application_id)
        if application is None or application.status == ApplicationStatus.REVOKED:
            raise NotFound(f"no ApplicationInformation {application_id}")
        if not application.is_third_party:
            raise NotFound(
                f"no ApplicationInformation {application_id}: client {application.client_id} is one of the "
                "custodian's own clients (operator, upload or self-access), managed with `gateway client`"
            )
        return application

    def _send(self, req: falcon.Request, resp: falcon.Response, application: ApplicationInformation) -> None:
        entry = application_information_entry(application, self.api.links, self.endpoints)
        self.api.send_entry(req, resp, entry, validator_parts=())

    def on_get_item(self, req: falcon.Request, resp: falcon.Response, application_id: int) -> None:
        """The registration."""
        self._send(req, resp, self._own(req, application_id))

    def on_put_item(self, req: falcon.Request, resp: falcon.Response, application_id: int) -> None:
        """Change the registration (validated as at registration; scopes may only narrow)."""
        application = self._own(req, application_id)
        element = espi_resource_from_body(req, "ApplicationInformation", max_bytes=self.api.settings.max_request_bytes)
        changes: dict[str, Any] = {}
        redirect_uris = [uri for uri in texts(element, "redirect_uri") if uri]
        if redirect_uris:
            changes["redirect_uris"] = list(dict.fromkeys(validate_redirect_uri(uri) for uri in redirect_uris))
        notify = texts(element, "thirdPartyNotifyUri")
        if notify:
            # The gateway POSTs to this URI: it must be a public https address (no SSRF into the network).
            changes["notify_uri"] = (
                validate_notify_uri(notify[0], development=is_development(self.api.settings)) if notify[0] else None
            )
        for name, (attribute, limit) in _TEXT_FIELDS.items():
            values = texts(element, name)
            if values:
                if len(values[0]) > limit:
                    raise BadRequest(f"{name} is longer than {limit} characters")
                if name == "client_name" and not values[0]:
                    raise BadRequest("client_name must not be empty")
                changes[attribute] = values[0] or None
        for name, attribute in _URI_FIELDS.items():
            values = texts(element, name)
            if values:
                changes[attribute] = _uri(name, values[0]) if values[0] else None
        contacts = [c for c in texts(element, "contacts") if c]
        if contacts:
            changes["contacts"] = contacts[:10]
        scopes = [s for s in texts(element, "scope") if s]
        if scopes:
            canonical = validate_scopes(scopes)
            registered = [parse_scope(s) for s in application.scopes]
            for scope in canonical:
                if not parse_scope(scope).within_any(registered):
                    raise BadRequest(f"scope {scope!r} exceeds the registered scopes: it may only narrow")
            changes["scopes"] = canonical
        for attribute, value in changes.items():
            setattr(application, attribute, value)
        application.updated = utcnow()
        req.context.db.flush()
        self._send(req, resp, application)

    def on_delete_item(self, req: falcon.Request, resp: falcon.Response, application_id: int) -> None:
        """Deregister: status revoked and every token of the application revoked at once."""
        application = self._own(req, application_id)
        now = utcnow()
        application.status = ApplicationStatus.REVOKED
        req.context.db.execute(
            update(OAuthToken)
            .where(OAuthToken.application_id == application.id, OAuthToken.revoked_at.is_(None))
            .values(revoked_at=now)
            .execution_options(synchronize_session=False)
        )
        req.context.db.flush()
        resp.status = falcon.HTTP_204
