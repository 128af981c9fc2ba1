"""Falcon middleware: request id and access log, one database session per request, security headers.

Also the request type the app uses (:class:`GatewayRequest`), whose context opens the database session on first use.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Iterator
from typing import Any

import falcon
from sqlalchemy.orm import Session, sessionmaker

from gateway.logs import request_id_var

__all__ = [
    "DatabaseSessionMiddleware",
    "GatewayRequest",
    "RequestContext",
    "RequestIdMiddleware",
    "SecurityHeadersMiddleware",
]

access_log = logging.getLogger("gateway.access")

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestIdMiddleware:
    """Echo a sane ``X-Request-Id`` or mint one; tag every log line with it; write one access-log line per request.

    The access log records method, route template (never the query string, which could carry a misplaced token),
    status and duration.
    """

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        offered = req.get_header("X-Request-Id")
        # 128 random bits as 32 hex digits, like a UUID's hex without building a UUID (a third of the time).
        request_id = offered if offered and _SAFE_REQUEST_ID.match(offered) else secrets.token_hex(16)
        req.context.request_id = request_id
        req.context.started = time.perf_counter()
        req.context.request_id_token = request_id_var.set(request_id)
        resp.set_header("X-Request-Id", request_id)

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool) -> None:
        if access_log.isEnabledFor(logging.INFO):  # the line's fields cost a few µs: not when the log is off
            started = getattr(req.context, "started", None)
            elapsed_ms = (time.perf_counter() - started) * 1000 if started is not None else 0.0
            route = req.uri_template or "(no route)"
            access_log.info(
                "%s %s %s %.1fms",
                req.method,
                route,
                resp.status_code,
                elapsed_ms,
                extra={
                    "method": req.method,
                    "route": route,
                    "status": resp.status_code,
                    "duration_ms": round(elapsed_ms, 2),
                },
            )
        token = getattr(req.context, "request_id_token", None)
        if token is not None:
            request_id_var.reset(token)


class RequestContext(falcon.Context):
    """``req.context`` of the gateway: ``db``, the request's ORM session, is made on first use.

    Most resource requests never touch it (they read through a connection of their own, :mod:`gateway.oauth.hotpath`),
    and making a session, then closing it unused, cost about 7 µs a request. :class:`DatabaseSessionMiddleware` sets
    ``db_factory``; reading ``db`` makes the session then.
    """

    @property
    def db(self) -> Session:
        session: Session | None = self.__dict__.get("_db")
        if session is None:
            factory: sessionmaker[Session] | None = self.__dict__.get("db_factory")
            if factory is None:
                raise AttributeError("db")  # outside DatabaseSessionMiddleware: as if never set
            session = self.__dict__["_db"] = factory()
        return session

    @db.setter
    def db(self, session: Session) -> None:
        self.__dict__["_db"] = session

    def opened_session(self) -> Session | None:
        """The request's session if something made it, without making it."""
        session: Session | None = self.__dict__.get("_db")
        return session

    def session_source(self) -> Session | sessionmaker[Session]:
        """The session if made, else the factory that would make it (what :class:`gateway.oauth.hotpath.HotPath`
        needs to choose a connection, without making a session for it)."""
        factory: sessionmaker[Session] | None = self.__dict__.get("db_factory")
        session = self.opened_session()
        if session is not None or factory is None:
            return self.db
        return factory


class GatewayRequest(falcon.Request):
    """falcon's request with a :class:`RequestContext`."""

    context_type = RequestContext


def _opened_session(req: falcon.Request) -> Session | None:
    context = req.context
    if isinstance(context, RequestContext):
        return context.opened_session()
    session: Session | None = getattr(context, "db", None)
    return session


class _ClosingStream:
    """Wrap a streamed body so the request's session lives until the last byte is written (PITFALLS: falcon)."""

    def __init__(self, stream: Any, req: falcon.Request) -> None:
        self._iterator: Iterator[bytes] = iter(stream)
        self._stream = stream
        self._req = req

    def __iter__(self) -> _ClosingStream:
        return self

    def __next__(self) -> bytes:
        return next(self._iterator)

    def close(self) -> None:
        try:
            close = getattr(self._stream, "close", None)
            if close is not None:
                close()
        finally:
            # The session the responder used, or one the body itself made while it was written.
            session = _opened_session(self._req)
            if session is not None:
                session.rollback()
                session.close()


class DatabaseSessionMiddleware:
    """Own a database session per request: commit when the responder succeeded, else roll back.

    The session is made on first use (:class:`RequestContext`; with another context type, at once). A streamed
    response (``resp.stream``) reads lazily, after this middleware's ``process_response``: the session is then handed
    to the stream and closed by the WSGI server's ``close()`` call when the body is done.
    """

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._session_factory = session_factory

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if isinstance(req.context, RequestContext):
            req.context.db_factory = self._session_factory
        else:
            req.context.db = self._session_factory()

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool) -> None:
        streamed = resp.stream is not None and req_succeeded
        session = _opened_session(req)
        if session is None:
            if streamed:
                resp.stream = _ClosingStream(resp.stream, req)
            return
        try:
            if not (session.in_transaction() or session.new or session.identity_map):
                # Made but never used: committing would begin and end an empty transaction (about 15 µs).
                pass
            elif req_succeeded and session.is_active:
                session.commit()
            else:
                session.rollback()
        except Exception:
            session.rollback()
            session.close()
            raise
        if streamed:
            resp.stream = _ClosingStream(resp.stream, req)
        else:
            session.close()


class SecurityHeadersMiddleware:
    """Headers every response carries (RFC 9700 §4.16, OWASP secure headers).

    API responses get a locked-down CSP; HTML pages set their own CSP (self-hosted styles only, no inline script) and
    this middleware leaves it alone. Responses are ``no-store`` unless the resource chose a cache policy (feeds use
    ``private`` with validators).
    """

    API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

    def __init__(self, *, https: bool) -> None:
        self._https = https

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool) -> None:
        resp.set_header("X-Content-Type-Options", "nosniff")
        resp.set_header("Referrer-Policy", "no-referrer")
        resp.set_header("X-Frame-Options", "DENY")
        resp.set_header("Cross-Origin-Resource-Policy", "same-origin")
        if resp.get_header("Content-Security-Policy") is None:
            resp.set_header("Content-Security-Policy", self.API_CSP)
        if resp.get_header("Cache-Control") is None:
            resp.set_header("Cache-Control", "no-store")
        if self._https:
            resp.set_header("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
