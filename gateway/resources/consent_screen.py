"""``/consent``: the consent screen — which app, what data in plain language, for how long, from which meters.

``GET /consent?request=<id>`` shows the pending authorization request that ``/oauth/authorize`` stored server-side;
``POST /consent`` decides it. The form carries only the request id, the CSRF token, the chosen usage points, the
terms checkbox and the decision: client, redirect URI and scope come from the server-side record, so there is
nothing to tamper with (RFC 9700 §4.7, checklist row 12), and unexpected fields are refused outright. The granted
scope is the requested one (or the app's consent request's, which must lie within it), itself within what the app
registered (checked by oauthlib's ``validate_scopes`` at ``/oauth/authorize``); usage points must be the customer's
own, at least one. Both decisions answer 303 to the client's redirect URI with ``state`` and ``iss`` (RFC 9207;
deny carries ``error=access_denied``, RFC 6749 §4.1.2.1).

The registered ``logo_uri`` is remote: hotlinking it would load a third-party resource (row 15) and tell the app who
looks at its consent screen, so the page shows the app's initial instead.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import falcon
from sqlalchemy import select

from gateway.config import Settings
from gateway.consent.describe import commodity_name, describe_scope, describe_until, shared_service_kinds
from gateway.consent.lifecycle import (
    TERMS_VERSION,
    DecisionContext,
    consent_request_id_of,
    record_denial,
    record_grant,
)
from gateway.consent.requests import usable_for
from gateway.errors import BadRequest, Conflict, GatewayError, NotFound
from gateway.oauth.authorize import AuthorizationRequests
from gateway.oauth.scope import EspiScope, parse_scope
from gateway.resources.login import safe_request_id
from gateway.resources.pages import PageRenderer, origin_of
from gateway.storage.base import utcnow
from gateway.storage.consent import ConsentRequest
from gateway.storage.models import RetailCustomer, UsagePoint
from gateway.storage.oauth import PendingAuthorizationRequest
from gateway.web.csrf import FIELD, CsrfError, CsrfTokens, first, read_form
from gateway.web.session import CustomerSessionManager

__all__ = ["ConsentScreenResource", "usage_point_label"]

_FIELDS = frozenset({FIELD, "request", "usage_point", "accept_terms", "decision"})
_SERVICE_KINDS = {
    0: "Electricity",
    1: "Gas",
    2: "Water",
    3: "Time",
    4: "Heat",
    5: "Refuse",
    6: "Sewerage",
    7: "Rates",
    8: "TV licence",
    9: "Internet",
}


def usage_point_label(point: UsagePoint) -> str:
    """How a usage point is named to its owner: its description, else its kind and number."""
    kind = _SERVICE_KINDS.get(point.service_kind, "Meter")
    return f"{point.description} ({kind.lower()})" if point.description else f"{kind} meter #{point.id}"


class ConsentScreenResource:
    """``GET``/``POST /consent``."""

    def __init__(
        self,
        settings: Settings,
        sessions: CustomerSessionManager,
        csrf: CsrfTokens,
        pages: PageRenderer,
        requests: AuthorizationRequests,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._csrf = csrf
        self._pages = pages
        self._requests = requests

    # -- helpers ------------------------------------------------------------------------------------------------

    def _pending(
        self, req: falcon.Request, resp: falcon.Response, request_id: str | None
    ) -> PendingAuthorizationRequest | None:
        """The undecided request, or an error page written to ``resp`` (and ``None``)."""
        try:
            if request_id is None:
                raise NotFound("this authorization request does not exist or has expired; start again from the app")
            return self._requests.get(req.context.db, request_id)
        except NotFound as error:
            self._pages.error(
                resp,
                falcon.HTTP_404,
                "Request not found",
                error.message,
                customer=req.context.customer,
                csrf_token=self._token(req),
            )
        except Conflict as error:
            self._pages.error(
                resp,
                falcon.HTTP_409,
                "Already answered",
                error.message,
                customer=req.context.customer,
                csrf_token=self._token(req),
            )
        return None

    def _consent_request(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        pending: PendingAuthorizationRequest,
        *,
        lock: bool = False,
    ) -> tuple[bool, ConsentRequest | None]:
        """The app's consent request named in the authorization request, checked (ok flag, request or None).

        ``lock`` when deciding: the row stays locked until the decision commits (no double authorisation).
        """
        consent_request_id = consent_request_id_of(pending)
        if consent_request_id is None:
            return True, None
        try:
            return True, usable_for(req.context.db, pending, consent_request_id, now=utcnow(), lock=lock)
        except GatewayError as error:
            self._pages.error(
                resp,
                falcon.HTTP_400,
                "This request cannot be authorized",
                error.message,
                customer=req.context.customer,
                csrf_token=self._token(req),
            )
            return False, None

    def _token(self, req: falcon.Request) -> str:
        binding = self._sessions.binding(req)
        return self._csrf.token(binding) if binding else ""

    def _usage_points(self, req: falcon.Request, customer: RetailCustomer, scope: EspiScope) -> list[UsagePoint]:
        """The customer's meters this scope can share: of its commodities only (FB 5/10/11; all if it names none)."""
        statement = select(UsagePoint).where(UsagePoint.customer_id == customer.id).order_by(UsagePoint.id)
        kinds = shared_service_kinds(scope.function_blocks)
        if kinds is not None:
            statement = statement.where(UsagePoint.service_kind.in_(sorted(kinds)))
        return list(req.context.db.scalars(statement))

    def _duration(self, pending: PendingAuthorizationRequest, consent_request: ConsentRequest | None) -> str:
        lifetime = (
            self._settings.offline_refresh_token_ttl if pending.offline_access else self._settings.refresh_token_ttl
        )
        ends = utcnow() + dt.timedelta(seconds=lifetime)
        if consent_request is not None and consent_request.expiration_at is not None:
            ends = min(ends, consent_request.expiration_at)
        return describe_until(ends)

    @staticmethod
    def _data_window(consent_request: ConsentRequest | None) -> str | None:
        if consent_request is None or (consent_request.data_from is None and consent_request.data_to is None):
            return None
        start = f"{consent_request.data_from:%d %B %Y}" if consent_request.data_from else "the beginning"
        end = f"{consent_request.data_to:%d %B %Y}" if consent_request.data_to else "now"
        return f"only readings from {start} to {end}"

    def _show(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        customer: RetailCustomer,
        pending: PendingAuthorizationRequest,
        consent_request: ConsentRequest | None,
        *,
        selected: set[int] | None = None,
        error: str | None = None,
        status: str = falcon.HTTP_200,
    ) -> None:
        scope = parse_scope(consent_request.scope if consent_request is not None else pending.scope)
        points = self._usage_points(req, customer, scope)
        application = pending.application
        context: dict[str, Any] = {
            "app": application,
            "website": application.client_uri,
            "description": describe_scope(scope),
            "duration": self._duration(pending, consent_request),
            "data_window": self._data_window(consent_request),
            "usage_points": [{"id": point.id, "label": usage_point_label(point)} for point in points],
            # Meters of other commodities are not offered (the scope would never share them): say which are.
            "commodities": _commodities(scope),
            # All pre-selected (the issue allows it); none is refused on submit.
            "selected": selected if selected is not None else {point.id for point in points},
            "request_id": pending.id,
            "terms_version": TERMS_VERSION,
            "error": error,
        }
        redirect_origin = origin_of(pending.redirect_uri)
        self._pages.render(
            resp,
            "consent.html",
            status=status,
            # Chrome checks form-action against the redirect that follows the POST: allow the client's origin.
            form_action=[redirect_origin] if redirect_origin else [],
            customer=customer,
            csrf_token=self._token(req),
            **context,
        )

    # -- responders ---------------------------------------------------------------------------------------------

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        request_id = safe_request_id(req.get_param("request"))
        customer = self._sessions.current_customer(req)
        if customer is None:
            resp.status = falcon.HTTP_303
            resp.location = "/login" + (f"?request={request_id}" if request_id else "")
            return
        pending = self._pending(req, resp, request_id)
        if pending is None:
            return
        ok, consent_request = self._consent_request(req, resp, pending)
        if ok:
            self._show(req, resp, customer, pending, consent_request)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        form = read_form(req)
        customer = self._sessions.current_customer(req)
        try:
            self._csrf.check(self._sessions.binding(req), first(form, FIELD))
        except CsrfError as error:
            self._pages.error(resp, falcon.HTTP_403, "This form has expired", error.message)
            return
        assert customer is not None  # a valid CSRF token implies a live session
        unexpected = sorted(set(form) - _FIELDS)
        repeated = sorted(name for name, values in form.items() if name != "usage_point" and len(values) > 1)
        if unexpected or repeated:
            # Client, redirect URI and scope live server-side; a form that sends them was tampered with (row 12).
            raise BadRequest(f"unexpected or repeated form fields: {', '.join(unexpected + repeated)}")
        pending = self._pending(req, resp, safe_request_id(first(form, "request")))
        if pending is None:
            return
        ok, consent_request = self._consent_request(req, resp, pending, lock=True)
        if not ok:
            return
        session = req.context.db
        context = DecisionContext(
            client_ip=getattr(req.context, "client_ip", None), user_agent=req.get_header("User-Agent")
        )
        decision = (form.get("decision") or [""])[0]
        if decision == "deny":
            location = self._requests.deny(session, pending.id)
            record_denial(
                session,
                self._settings,
                pending=pending,
                customer=customer,
                context=context,
                consent_request=consent_request,
            )
            resp.status = falcon.HTTP_303
            resp.location = location
            return
        if decision != "authorize":
            raise BadRequest("decision must be authorize or deny")
        try:
            chosen = {int(value) for value in form.get("usage_point", []) if value.isdigit() and len(value) < 12}
        except ValueError:
            chosen = set()
        if (form.get("accept_terms") or [""])[0] != "yes":
            self._show(
                req,
                resp,
                customer,
                pending,
                consent_request,
                selected=chosen,
                status=falcon.HTTP_400,
                error="Please read and accept the Terms & Conditions to authorize.",
            )
            return
        if not chosen:
            self._show(
                req,
                resp,
                customer,
                pending,
                consent_request,
                selected=chosen,
                status=falcon.HTTP_400,
                error="Choose at least one meter to share.",
            )
            return
        try:
            location = self._requests.approve(
                session,
                pending.id,
                customer,
                chosen,
                granted_scope=consent_request.scope if consent_request is not None else None,
            )
        except BadRequest as error:
            # approve() rolls back whatever it wrote before refusing: show the form again with the reason.
            self._show(
                req,
                resp,
                customer,
                pending,
                consent_request,
                selected=chosen,
                status=falcon.HTTP_400,
                error=error.message,
            )
            return
        record_grant(
            session,
            self._settings,
            pending=pending,
            customer=customer,
            context=context,
            terms_version=TERMS_VERSION,
            consent_request=consent_request,
        )
        resp.status = falcon.HTTP_303
        resp.location = location


def _commodities(scope: EspiScope) -> str | None:
    """ "electricity", "gas and water", …: the commodities a scope limits its meters to, or ``None`` for all."""
    kinds = shared_service_kinds(scope.function_blocks)
    return None if kinds is None else " and ".join(commodity_name(kind) for kind in sorted(kinds))
