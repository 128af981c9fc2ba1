"""Falcon middleware: request id and access log, one database session per request, security headers."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import falcon
from sqlalchemy.orm import Session, sessionmaker

from gateway.logs import request_id_var

__all__ = ["DatabaseSessionMiddleware", "RequestIdMiddleware", "SecurityHeadersMiddleware"]

access_log = logging.getLogger("gateway.access")

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestIdMiddleware:
    """Echo a sane ``X-Request-Id`` or mint one; tag every log line with it; write one access-log line per request.

    The access log records method, route template (never the query string, which could carry a misplaced token),
    status and duration.
    """

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        offered = req.get_header("X-Request-Id")
        request_id = offered if offered and _SAFE_REQUEST_ID.match(offered) else uuid.uuid4().hex
        req.context.request_id = request_id
        req.context.started = time.perf_counter()
        req.context.request_id_token = request_id_var.set(request_id)
        resp.set_header("X-Request-Id", request_id)

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool) -> None:
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


class _ClosingStream:
    """Wrap a streamed body so the request's session lives until the last byte is written (PITFALLS: falcon)."""

    def __init__(self, stream: Any, session: Session) -> None:
        self._iterator: Iterator[bytes] = iter(stream)
        self._stream = stream
        self._session = session

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
            self._session.rollback()
            self._session.close()


class DatabaseSessionMiddleware:
    """Own a database session per request: commit when the responder succeeded, else roll back.

    A streamed response (``resp.stream``) reads lazily, after this middleware's ``process_response``: the session is
    then handed to the stream and closed by the WSGI server's ``close()`` call when the body is done.
    """

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._session_factory = session_factory

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.db = self._session_factory()

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool) -> None:
        session: Session | None = getattr(req.context, "db", None)
        if session is None:
            return
        try:
            if req_succeeded and session.is_active:
                session.commit()
            else:
                session.rollback()
        except Exception:
            session.rollback()
            session.close()
            raise
        if resp.stream is not None and req_succeeded:
            resp.stream = _ClosingStream(resp.stream, session)
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
