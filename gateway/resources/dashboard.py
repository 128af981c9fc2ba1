"""``/consents``: the customer's consent dashboard — active consents, history, revocation, self-access clients.

Revocation has a confirmation step (``GET /consents/{id}/revoke`` shows "Proceed", ``POST`` revokes) and takes effect
on the very next request: every token of the consent is revoked in the same transaction (checklist row 37). Consents
past their end are marked expired before the page is drawn. Another customer's consent id is simply not found.
Self-access clients (the password grant, bound to their owner: ESPI-NOTES §10) are created and revoked here too.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import falcon
from sqlalchemy import select, update

from gateway.config import Settings
from gateway.consent.describe import ScopeDescription, describe_scope
from gateway.consent.lifecycle import (
    DecisionContext,
    RevokedBy,
    active_consents,
    customer_consent,
    expire_due,
    last_access,
    past_consents,
    revoke_consent,
)
from gateway.errors import BadRequest
from gateway.oauth.registration import register_client
from gateway.oauth.scope import ScopeError, parse_scope
from gateway.resources.pages import PageRenderer
from gateway.security.digests import SecretDigester
from gateway.storage.base import utcnow
from gateway.storage.consent import Consent, ConsentEventKind, ConsentStatus
from gateway.storage.models import (
    ApplicationInformation,
    ApplicationStatus,
    ClientRole,
    OAuthToken,
    RetailCustomer,
)
from gateway.web.csrf import FIELD, CsrfError, CsrfTokens, first, read_form
from gateway.web.session import CustomerSessionManager

__all__ = ["ConsentsResource", "RevokeConsentResource", "SelfAccessResource"]

EVENT_LABELS = {
    ConsentEventKind.REQUESTED: "Requested by the app",
    ConsentEventKind.GRANTED: "Granted by you",
    ConsentEventKind.DENIED: "Declined",
    ConsentEventKind.REFRESHED: "Access renewed by the app",
    ConsentEventKind.REVOKED_BY_CUSTOMER: "Revoked by you",
    ConsentEventKind.REVOKED_BY_APP: "Revoked by the app",
    ConsentEventKind.REVOKED_BY_OPERATOR: "Revoked by the utility",
    ConsentEventKind.EXPIRED: "Expired",
}
_STATUS_LABELS = {
    ConsentStatus.ACTIVE: "Active",
    ConsentStatus.REVOKED: "Revoked",
    ConsentStatus.EXPIRED: "Expired",
    ConsentStatus.DENIED: "Declined",
}
_SELF_ACCESS_SCOPE = (
    "FB=1_3_4_5_10_11_12_13_14_15_16_18_37_40;IntervalDuration=900_3600;BlockDuration=daily;HistoryLength=13"
)


@dataclasses.dataclass(frozen=True, slots=True)
class _Row:
    consent: Consent
    description: ScopeDescription
    status_label: str
    last_access: dt.datetime | None


def _describe(consent: Consent) -> ScopeDescription:
    text = consent.granted_scope or consent.requested_scope
    try:
        return describe_scope(parse_scope(text))
    except ScopeError:
        return ScopeDescription(data=(text,), access=(), history=None, technical=(), scope=text)


class _CustomerPage:
    """Shared by the dashboard resources: who is logged in, their CSRF token, the login redirect."""

    def __init__(
        self, settings: Settings, sessions: CustomerSessionManager, csrf: CsrfTokens, pages: PageRenderer
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._csrf = csrf
        self._pages = pages

    def _customer_or_login(self, req: falcon.Request, resp: falcon.Response) -> RetailCustomer | None:
        customer = self._sessions.current_customer(req)
        if customer is None:
            resp.status = falcon.HTTP_303
            resp.location = "/login"
        return customer

    def _token(self, req: falcon.Request) -> str:
        binding = self._sessions.binding(req)
        return self._csrf.token(binding) if binding else ""

    def _checked_form(self, req: falcon.Request, resp: falcon.Response) -> dict[str, list[str]] | None:
        """The POSTed form if its CSRF token belongs to this session, else a 403 page (and ``None``)."""
        form = read_form(req)
        try:
            self._csrf.check(self._sessions.binding(req), first(form, FIELD))
        except CsrfError as error:
            self._pages.error(resp, falcon.HTTP_403, "This form has expired", error.message, back_url="/consents")
            return None
        return form

    @staticmethod
    def _context(req: falcon.Request) -> DecisionContext:
        return DecisionContext(
            client_ip=getattr(req.context, "client_ip", None), user_agent=req.get_header("User-Agent")
        )


class ConsentsResource(_CustomerPage):
    """``GET /consents`` (active) and ``GET /consents/history`` (revoked, expired, declined)."""

    def _render(self, req: falcon.Request, resp: falcon.Response, *, history: bool) -> None:
        customer = self._customer_or_login(req, resp)
        if customer is None:
            return
        session = req.context.db
        expire_due(session, self._settings, now=utcnow(), customer_id=customer.id)
        consents = past_consents(session, customer.id) if history else active_consents(session, customer.id)
        rows = [
            _Row(
                consent=consent,
                description=_describe(consent),
                status_label=_STATUS_LABELS.get(consent.status, consent.status),
                last_access=None if history else last_access(session, consent),
            )
            for consent in consents
        ]
        notice = "Access revoked. The app can no longer read your data." if req.get_param("revoked") else None
        self._pages.render(
            resp,
            "dashboard.html",
            customer=customer,
            csrf_token=self._token(req),
            tab="history" if history else "active",
            heading="Revoked, expired and declined consents" if history else "Apps that can read your data",
            empty="No past consents." if history else "No app can read your data at the moment.",
            rows=rows,
            notice=notice,
            event_labels=EVENT_LABELS,
        )

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._render(req, resp, history=False)

    def on_get_history(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._render(req, resp, history=True)


class RevokeConsentResource(_CustomerPage):
    """``GET /consents/{consent_id}/revoke`` asks for confirmation; ``POST`` revokes."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, consent_id: str) -> None:
        customer = self._customer_or_login(req, resp)
        if customer is None:
            return
        consent = customer_consent(req.context.db, customer.id, consent_id)
        if consent is None or consent.status != ConsentStatus.ACTIVE:
            self._pages.error(
                resp,
                falcon.HTTP_404,
                "Consent not found",
                "There is no active consent with this id.",
                customer=customer,
                csrf_token=self._token(req),
                back_url="/consents",
            )
            return
        self._pages.render(resp, "revoke.html", customer=customer, csrf_token=self._token(req), consent=consent)

    def on_post(self, req: falcon.Request, resp: falcon.Response, consent_id: str) -> None:
        form = self._checked_form(req, resp)
        if form is None:
            return
        customer = self._sessions.current_customer(req)
        assert customer is not None
        consent = customer_consent(req.context.db, customer.id, consent_id)
        if consent is None:
            self._pages.error(
                resp,
                falcon.HTTP_404,
                "Consent not found",
                "There is no consent with this id.",
                customer=customer,
                csrf_token=self._token(req),
                back_url="/consents",
            )
            return
        revoke_consent(req.context.db, self._settings, consent, by=RevokedBy.CUSTOMER, context=self._context(req))
        resp.status = falcon.HTTP_303
        resp.location = "/consents?revoked=1"


class SelfAccessResource(_CustomerPage):
    """``GET``/``POST /consents/self-access`` and ``POST /consents/self-access/{client_id}/revoke``."""

    def __init__(
        self,
        settings: Settings,
        sessions: CustomerSessionManager,
        csrf: CsrfTokens,
        pages: PageRenderer,
        digester: SecretDigester,
    ) -> None:
        super().__init__(settings, sessions, csrf, pages)
        self._digester = digester

    def _clients(self, req: falcon.Request, customer: RetailCustomer) -> list[ApplicationInformation]:
        return list(
            req.context.db.scalars(
                select(ApplicationInformation)
                .where(ApplicationInformation.owner_customer_id == customer.id)
                .order_by(ApplicationInformation.id)
            )
        )

    def _render(self, req: falcon.Request, resp: falcon.Response, customer: RetailCustomer, **extra: Any) -> None:
        extra.setdefault("created", None)
        extra.setdefault("error", None)
        self._pages.render(
            resp,
            "self_access.html",
            customer=customer,
            csrf_token=self._token(req),
            clients=self._clients(req, customer),
            **extra,
        )

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        customer = self._customer_or_login(req, resp)
        if customer is not None:
            self._render(req, resp, customer)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        form = self._checked_form(req, resp)
        if form is None:
            return
        customer = self._sessions.current_customer(req)
        assert customer is not None
        name = (form.get("name") or [""])[0].strip()[:100]
        try:
            registered = register_client(
                req.context.db,
                self._settings,
                self._digester,
                name=name or "My data client",
                redirect_uris=["http://127.0.0.1/unused"],
                scopes=[_SELF_ACCESS_SCOPE],
                grant_types=["password", "refresh_token"],
                roles=[ClientRole.SELF_ACCESS],
                owner_customer_id=customer.id,
                description=f"Self-access client of {customer.username}",
            )
        except BadRequest as error:
            self._render(req, resp, customer, error=error.message, status=falcon.HTTP_400)
            return
        # The secret is shown once, on this response (never stored in clear, never put in a redirect URL).
        self._render(
            req,
            resp,
            customer,
            created={
                "name": registered.application.client_name,
                "client_id": registered.client_id,
                "client_secret": registered.client_secret,
            },
            status=falcon.HTTP_201,
        )

    def on_post_revoke(self, req: falcon.Request, resp: falcon.Response, client_id: str) -> None:
        form = self._checked_form(req, resp)
        if form is None:
            return
        customer = self._sessions.current_customer(req)
        assert customer is not None
        session = req.context.db
        application = session.scalar(
            select(ApplicationInformation).where(
                ApplicationInformation.client_id == client_id[:64],
                ApplicationInformation.owner_customer_id == customer.id,
            )
        )
        if application is not None and application.status != ApplicationStatus.REVOKED:
            now = utcnow()
            application.status = ApplicationStatus.REVOKED
            session.execute(
                update(OAuthToken)
                .where(OAuthToken.application_id == application.id, OAuthToken.revoked_at.is_(None))
                .values(revoked_at=now)
                .execution_options(synchronize_session=False)
            )
        resp.status = falcon.HTTP_303
        resp.location = "/consents/self-access"
