"""Domain errors and their one mapping to HTTP.

Code deep in the gateway raises a :class:`GatewayError` subclass that says what went wrong in domain terms; this
module alone decides the status code, headers and body. The body is JSON (``application/json``) unless the client
prefers XML (ESPI clients sending ``Accept: application/atom+xml`` or ``application/xml``), in which case it is a small
``<error>`` document. OAuth endpoints do not use this: they pass oauthlib's RFC 6749 §5.2 answers through.
"""

from __future__ import annotations

import json
import logging
from typing import Any, ClassVar

import falcon
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

__all__ = [
    "BadRequest",
    "BulkBuildFailed",
    "Conflict",
    "Forbidden",
    "GatewayError",
    "NotFound",
    "PayloadTooLarge",
    "ServiceUnavailable",
    "TooManyRequests",
    "Unauthorized",
    "UnsupportedMediaType",
    "register_error_handling",
]

log = logging.getLogger(__name__)


class GatewayError(Exception):
    """Base of every expected error; ``code`` is stable and machine-readable, the message is for people."""

    status: ClassVar[str] = falcon.HTTP_400
    code: ClassVar[str] = "bad_request"
    title: ClassVar[str] = "Bad request"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}
        self.details = details


class BadRequest(GatewayError):
    """The request is malformed: a parameter, body or header is wrong (the message names it)."""


class Unauthorized(GatewayError):
    """No credentials, or bad, expired or revoked ones (RFC 6750 §3.1 ``invalid_token``)."""

    status = falcon.HTTP_401
    code = "invalid_token"
    title = "Unauthorized"


class Forbidden(GatewayError):
    """Valid credentials of the wrong kind, or lacking the scope (RFC 6750 §3.1 ``insufficient_scope``)."""

    status = falcon.HTTP_403
    code = "forbidden"
    title = "Forbidden"


class NotFound(GatewayError):
    """Nothing with that id exists *within what the caller may see* (no existence oracle)."""

    status = falcon.HTTP_404
    code = "not_found"
    title = "Not found"


class Conflict(GatewayError):
    """The request conflicts with the current state (duplicate username, …)."""

    status = falcon.HTTP_409
    code = "conflict"
    title = "Conflict"


class PayloadTooLarge(GatewayError):
    """The body exceeds the configured size limit."""

    status = falcon.HTTP_413
    code = "payload_too_large"
    title = "Payload too large"


class UnsupportedMediaType(GatewayError):
    """The body's content type is not one this endpoint reads."""

    status = falcon.HTTP_415
    code = "unsupported_media_type"
    title = "Unsupported media type"


class TooManyRequests(GatewayError):
    """A rate limit was hit; ``Retry-After`` says when to come back (RFC 6585 §4)."""

    status = falcon.HTTP_429
    code = "too_many_requests"
    title = "Too many requests"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, retry_after))})


class BulkBuildFailed(GatewayError):
    """Every attempt to build a bulk failed; the next request starts a new build (ESPI-NOTES §9: never 202 forever)."""

    status = falcon.HTTP_500
    code = "bulk_build_failed"
    title = "Bulk build failed"


class ServiceUnavailable(GatewayError):
    """A dependency (the database) is unreachable; the client should retry (RFC 9110 §15.6.4)."""

    status = falcon.HTTP_503
    code = "service_unavailable"
    title = "Service unavailable"

    def __init__(self, message: str, *, retry_after: int = 5) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})


def _prefers_xml(req: falcon.Request) -> bool:
    accept = req.accept or ""
    if "json" in accept:
        return False
    return "xml" in accept


def _error_body(req: falcon.Request, status: str, code: str, title: str, description: str) -> tuple[str, bytes]:
    request_id = getattr(req.context, "request_id", None)
    if _prefers_xml(req):
        from xml.sax.saxutils import escape

        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<error>'
            f"<status>{escape(status)}</status><code>{escape(code)}</code><title>{escape(title)}</title>"
            f"<description>{escape(description)}</description>"
            + (f"<requestId>{escape(request_id)}</requestId>" if request_id else "")
            + "</error>\n"
        )
        return "application/xml; charset=utf-8", body.encode()
    document: dict[str, Any] = {"error": code, "title": title, "description": description}
    if request_id:
        document["request_id"] = request_id
    return "application/json", json.dumps(document).encode()


def _serialize_http_error(req: falcon.Request, resp: falcon.Response, error: falcon.HTTPError) -> None:
    """Falcon's error serializer: every HTTPError (ours or falcon's own, e.g. 404/405) gets the same body shape."""
    code = error.code if isinstance(error.code, str) else (error.title or "error").lower().replace(" ", "_")
    content_type, body = _error_body(
        req, falcon.code_to_http_status(error.status), code, error.title or "", error.description or error.title or ""
    )
    resp.content_type = content_type
    resp.data = body


def _handle_gateway_error(req: falcon.Request, resp: falcon.Response, error: GatewayError, params: Any) -> None:
    content_type, body = _error_body(req, error.status, error.code, error.title, error.message)
    resp.status = error.status
    resp.content_type = content_type
    resp.data = body
    for name, value in error.headers.items():
        resp.set_header(name, value)


def _handle_database_unavailable(req: falcon.Request, resp: falcon.Response, error: Exception, params: Any) -> None:
    if isinstance(error, DBAPIError) and not error.connection_invalidated and not isinstance(error, OperationalError):
        _handle_unexpected(req, resp, error, params)
        return
    log.warning("database unavailable: %s", type(error).__name__)
    _handle_gateway_error(req, resp, ServiceUnavailable("the database is unavailable; retry shortly"), params)


def _handle_unexpected(req: falcon.Request, resp: falcon.Response, error: Exception, params: Any) -> None:
    log.exception("unhandled error on %s %s", req.method, req.path)
    content_type, body = _error_body(
        req, falcon.HTTP_500, "server_error", "Internal server error", "an unexpected error occurred; it was logged"
    )
    resp.status = falcon.HTTP_500
    resp.content_type = content_type
    resp.data = body


def register_error_handling(app: falcon.App[falcon.Request, falcon.Response]) -> None:
    """Install the one error serializer and the handlers, most specific last (falcon picks the closest match)."""
    app.set_error_serializer(_serialize_http_error)
    app.add_error_handler(Exception, _handle_unexpected)
    app.add_error_handler(DBAPIError, _handle_database_unavailable)
    app.add_error_handler(PoolTimeoutError, _handle_database_unavailable)
    app.add_error_handler(GatewayError, _handle_gateway_error)
