"""Customer sessions for the HTML pages: a random cookie, its state in the database (RFC 6265bis, OWASP ASVS V3).

* The cookie is ``HttpOnly``, ``SameSite=Lax`` (the authorization request arrives as a top-level cross-site
  navigation, which ``Strict`` would strip) and, when the gateway is served over https, ``Secure`` with the
  ``__Host-`` prefix (no ``Domain``, ``Path=/``: a sibling subdomain cannot plant or overwrite it).
* The server keeps the session (only a keyed digest of the cookie value), so logout works on every node at once and
  a stolen database holds no usable cookie.
* The session id is new at every login (no fixation, RFC 9700 §4.7 spirit): the pre-session used for the login
  form's CSRF token is dropped and a fresh value issued.
* Sessions end after 30 idle minutes or 12 hours, whichever comes first.

:class:`CustomerSessionManager` also answers ``current_customer_id(req)``, the seam the OAuth authorization endpoint
uses to decide between the login page and the consent page.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import falcon
from sqlalchemy import delete, select

from gateway.config import Settings
from gateway.security.digests import SecretDigester, new_secret
from gateway.storage.base import utcnow
from gateway.storage.consent import CustomerSession
from gateway.storage.models import RetailCustomer

__all__ = ["CustomerSessionManager"]

ABSOLUTE_TTL = dt.timedelta(hours=12)
IDLE_TTL = dt.timedelta(minutes=30)
_TOUCH_EVERY = dt.timedelta(seconds=60)
_MAX_COOKIE = 128


class CustomerSessionManager:
    """Create, find, rotate and end customer sessions (the request's database session does the storage)."""

    def __init__(self, settings: Settings, *, clock: Callable[[], dt.datetime] = utcnow) -> None:
        self._secure = settings.requires_https
        prefix = "__Host-" if self._secure else ""
        self.cookie_name = f"{prefix}gw_session"
        self.pre_cookie_name = f"{prefix}gw_presession"
        self._digester = SecretDigester(settings.secret_key, purpose="customer-session")
        self._clock = clock

    # -- cookies ------------------------------------------------------------------------------------------------

    def _set_cookie(self, resp: falcon.Response, name: str, value: str, max_age: int | None) -> None:
        resp.set_cookie(name, value, max_age=max_age, path="/", secure=self._secure, http_only=True, same_site="Lax")

    def _clear_cookie(self, resp: falcon.Response, name: str) -> None:
        # Not ``unset_cookie``: a ``__Host-`` cookie is only replaced by one that is Secure with Path=/ too.
        resp.set_cookie(
            name,
            "",
            max_age=0,
            expires=dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
            path="/",
            secure=self._secure,
            http_only=True,
            same_site="Lax",
        )

    @staticmethod
    def _cookie(req: falcon.Request, name: str) -> str | None:
        values = req.get_cookie_values(name)
        # Several cookies of one name mean someone planted one: trust none of them.
        if not values or len(values) != 1 or not 0 < len(values[0]) <= _MAX_COOKIE:
            return None
        return values[0]

    # -- the pre-session (login CSRF) ---------------------------------------------------------------------------

    def pre_session(self, req: falcon.Request, resp: falcon.Response) -> str:
        """The pre-session value the login form's CSRF token binds to, set as a cookie when absent."""
        value = self._cookie(req, self.pre_cookie_name)
        if value is None:
            value = new_secret()
            self._set_cookie(resp, self.pre_cookie_name, value, max_age=3600)
        return value

    def presented_pre_session(self, req: falcon.Request) -> str | None:
        return self._cookie(req, self.pre_cookie_name)

    # -- sessions -----------------------------------------------------------------------------------------------

    def binding(self, req: falcon.Request) -> str | None:
        """The current session's cookie value (what CSRF tokens bind to), if the session is valid."""
        return self._cookie(req, self.cookie_name) if self.current_customer(req) is not None else None

    def current_customer(self, req: falcon.Request) -> RetailCustomer | None:
        """The logged-in customer, or ``None`` (expired, idle, logged out, deactivated, or no cookie)."""
        if hasattr(req.context, "customer"):
            customer: RetailCustomer | None = req.context.customer
            return customer
        req.context.customer = None
        value = self._cookie(req, self.cookie_name)
        if value is None:
            return None
        session = req.context.db
        row = session.get(CustomerSession, self._digester.digest(value))
        now = self._clock()
        if row is None or row.expires_at <= now or row.last_seen_at + IDLE_TTL <= now:
            return None
        customer = session.get(RetailCustomer, row.customer_id)
        if customer is None or not customer.is_active:
            return None
        if now - row.last_seen_at >= _TOUCH_EVERY:
            row.last_seen_at = now
        req.context.customer = customer
        return customer

    def current_customer_id(self, req: falcon.Request) -> int | None:
        """The seam of :class:`gateway.oauth.resources.AuthorizeResource`: who is logged in, if anyone."""
        customer = self.current_customer(req)
        return None if customer is None else customer.id

    def login(self, req: falcon.Request, resp: falcon.Response, customer: RetailCustomer) -> str:
        """Start a session for ``customer`` with a fresh id (the old session and the pre-session are dropped)."""
        session = req.context.db
        old = self._cookie(req, self.cookie_name)
        if old is not None:
            session.execute(delete(CustomerSession).where(CustomerSession.digest == self._digester.digest(old)))
        value = new_secret()
        now = self._clock()
        agent = req.get_header("User-Agent")
        session.add(
            CustomerSession(
                digest=self._digester.digest(value),
                customer_id=customer.id,
                created_at=now,
                last_seen_at=now,
                expires_at=now + ABSOLUTE_TTL,
                client_ip=getattr(req.context, "client_ip", None),
                user_agent=agent[:512] if agent else None,
            )
        )
        session.flush()
        self._set_cookie(resp, self.cookie_name, value, max_age=int(ABSOLUTE_TTL.total_seconds()))
        self._clear_cookie(resp, self.pre_cookie_name)
        req.context.customer = customer
        return value

    def logout(self, req: falcon.Request, resp: falcon.Response) -> None:
        """End the session here and on every node (the row is deleted), and clear the cookie."""
        value = self._cookie(req, self.cookie_name)
        if value is not None:
            req.context.db.execute(
                delete(CustomerSession).where(CustomerSession.digest == self._digester.digest(value))
            )
        self._clear_cookie(resp, self.cookie_name)
        req.context.customer = None

    def end_all(self, req: falcon.Request, customer_id: int) -> None:
        """End every session of a customer (e.g. after a password change)."""
        req.context.db.execute(delete(CustomerSession).where(CustomerSession.customer_id == customer_id))

    def count(self, req: falcon.Request, customer_id: int) -> int:
        return len(
            req.context.db.scalars(
                select(CustomerSession.digest).where(CustomerSession.customer_id == customer_id)
            ).all()
        )
