"""``/login`` and ``/logout``: the retail customer signs in at the authorization step (the consent issue, item 1).

Login is throttled per username and per client address in the database (RFC 9700 §4.15; the limits hold across
workers and nodes), answers one generic message whether the user exists or not, and costs the same Argon2 verification
either way (no user enumeration). The form carries a CSRF token bound to a pre-session cookie (RFC 6749 §10.12: login
CSRF); success rotates the session id (no fixation) and answers 303 (never 307, which would replay the password to the
next hop; checklist row 14).
"""

from __future__ import annotations

import re
from urllib.parse import urlencode

import falcon
from sqlalchemy import select

from gateway.errors import Conflict, NotFound
from gateway.oauth.authorize import AuthorizationRequests
from gateway.resources.pages import PageRenderer
from gateway.security.passwords import PasswordHasher
from gateway.security.throttle import PASSWORD_USER_RULE, Throttle, ThrottleRule
from gateway.storage.models import RetailCustomer
from gateway.web.csrf import FIELD, CsrfError, CsrfTokens, first, read_form
from gateway.web.session import CustomerSessionManager

__all__ = ["LOGIN_IP_RULE", "LOGIN_USER_RULE", "LoginResource", "LogoutResource", "safe_request_id"]

# One budget per customer for the login page and the password grant together (RFC 9700 §4.15): separate counters
# would double the guesses an attacker gets.
LOGIN_USER_RULE = PASSWORD_USER_RULE
LOGIN_IP_RULE = ThrottleRule("login-ip", limit=50, window=900)
GENERIC_FAILURE = "The username or password is not right, or too many attempts were made. Try again later."

_REQUEST_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def safe_request_id(value: str | None) -> str | None:
    """A pending request id as sent back by the browser, if it has the shape of one (it only builds a local URL)."""
    return value if value and _REQUEST_ID.match(value) else None


def consent_url(request_id: str) -> str:
    return "/consent?" + urlencode({"request": request_id})


class LoginResource:
    """``GET /login`` shows the form; ``POST /login`` checks the password and starts a session."""

    def __init__(
        self,
        sessions: CustomerSessionManager,
        csrf: CsrfTokens,
        pages: PageRenderer,
        passwords: PasswordHasher,
        requests: AuthorizationRequests,
        throttle: Throttle | None = None,
    ) -> None:
        self._sessions = sessions
        self._csrf = csrf
        self._pages = pages
        self._passwords = passwords
        self._requests = requests
        self._throttle = throttle or Throttle()

    def _app_name(self, req: falcon.Request, request_id: str | None) -> str | None:
        if request_id is None:
            return None
        try:
            return self._requests.get(req.context.db, request_id).application.client_name
        except (NotFound, Conflict):  # expired, unknown or decided: the consent page says so after login
            return None

    def _form(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        request_id: str | None,
        *,
        error: str | None = None,
        username: str = "",
        status: str = falcon.HTTP_200,
    ) -> None:
        binding = self._sessions.pre_session(req, resp)
        self._pages.render(
            resp,
            "login.html",
            status=status,
            csrf_token=self._csrf.token(binding),
            request_id=request_id,
            app_name=self._app_name(req, request_id),
            error=error,
            username=username,
        )

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        request_id = safe_request_id(req.get_param("request"))
        if self._sessions.current_customer(req) is not None:
            resp.status = falcon.HTTP_303
            resp.location = consent_url(request_id) if request_id else "/consents"
            return
        self._form(req, resp, request_id)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        form = read_form(req)
        request_id = safe_request_id(first(form, "request"))
        try:
            self._csrf.check(self._sessions.presented_pre_session(req), first(form, FIELD))
        except CsrfError as error:
            self._pages.error(resp, falcon.HTTP_403, "This form has expired", error.message, back_url="/login")
            return
        username = (form.get("username") or [""])[0].strip()[:64]
        password = (form.get("password") or [""])[0][:1024]
        session = req.context.db
        client_ip = getattr(req.context, "client_ip", None) or "unknown"
        blocked = self._throttle.retry_after(session, LOGIN_USER_RULE, username or "-") or self._throttle.retry_after(
            session, LOGIN_IP_RULE, client_ip
        )
        if blocked is not None:
            # Checked before the password: a blocked key learns nothing, not even whether the password was right.
            resp.set_header("Retry-After", str(blocked))
            self._form(req, resp, request_id, error=GENERIC_FAILURE, username=username, status=falcon.HTTP_429)
            return
        customer = session.scalar(select(RetailCustomer).where(RetailCustomer.username == username.lower()))
        # Unknown users verify against a dummy hash: same cost, same answer (no enumeration by timing).
        ok = self._passwords.verify(customer.password_hash if customer is not None else None, password)
        if customer is None or not customer.is_active or not ok:
            self._throttle.record_failure(session, LOGIN_USER_RULE, username or "-")
            self._throttle.record_failure(session, LOGIN_IP_RULE, client_ip)
            self._form(req, resp, request_id, error=GENERIC_FAILURE, username=username)
            return
        self._throttle.reset(session, LOGIN_USER_RULE, username)
        upgraded = self._passwords.upgraded_hash(customer.password_hash, password)
        if upgraded is not None:
            customer.password_hash = upgraded
        self._sessions.login(req, resp, customer)
        resp.status = falcon.HTTP_303
        resp.location = consent_url(request_id) if request_id else "/consents"


class LogoutResource:
    """``POST /logout``: end the session everywhere (CSRF-checked so another site cannot log the customer out)."""

    def __init__(self, sessions: CustomerSessionManager, csrf: CsrfTokens, pages: PageRenderer) -> None:
        self._sessions = sessions
        self._csrf = csrf
        self._pages = pages

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        form = read_form(req)
        try:
            self._csrf.check(self._sessions.binding(req), first(form, FIELD))
        except CsrfError as error:
            self._pages.error(resp, falcon.HTTP_403, "This form has expired", error.message, back_url="/consents")
            return
        self._sessions.logout(req, resp)
        resp.status = falcon.HTTP_303
        resp.location = "/login"
