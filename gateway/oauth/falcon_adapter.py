"""The thin layer between falcon and oauthlib: read a form body safely, write ``(headers, body, status)`` back.

oauthlib returns its answers as ``(headers, body, status)``; they pass through unchanged except where RFC 6749 wants
more than oauthlib gives: a 401 from client authentication carries ``WWW-Authenticate: Basic`` (RFC 6749 §5.2, not
oauthlib's ``Bearer``), and every response of the token, revocation and introspection endpoints is ``no-store``
(RFC 6749 §5.1).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from urllib.parse import parse_qsl

import falcon
from oauthlib.oauth2.rfc6749 import errors

__all__ = ["OAuthRequestError", "read_form_body", "write_oauth_error", "write_oauth_response"]

BASIC_CHALLENGE = 'Basic realm="oauth", charset="UTF-8"'


class OAuthRequestError(Exception):
    """A request refused at the edge, before oauthlib sees it (RFC 6749 §3.2, §5.2 ``invalid_request``)."""

    def __init__(self, description: str, *, error: str = "invalid_request", status: int = 400) -> None:
        super().__init__(description)
        self.description = description
        self.error = error
        self.status = status


def read_form_body(req: falcon.Request, max_bytes: int) -> str:
    """Read an ``application/x-www-form-urlencoded`` body (RFC 6749 §3.2, Appendix B) with the checks oauthlib lacks.

    No parameters in the query, a form content type, a size cap, UTF-8, and no parameter twice (RFC 6749 §3.2).
    """
    if req.query_string:
        raise OAuthRequestError("parameters must be sent in the request body, not in the URL query")
    media_type = (req.content_type or "").split(";", 1)[0].strip().lower()
    if media_type != "application/x-www-form-urlencoded":
        raise OAuthRequestError("the body must be application/x-www-form-urlencoded")
    raw = req.bounded_stream.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise OAuthRequestError("the request body is too large")
    try:
        body = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise OAuthRequestError("the request body must be UTF-8") from None
    try:
        pairs = parse_qsl(body, keep_blank_values=True, strict_parsing=bool(body), errors="strict")
    except ValueError:
        raise OAuthRequestError("the request body is not valid form encoding") from None
    names = [name for name, _ in pairs]
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise OAuthRequestError(f"parameters must not be repeated: {', '.join(duplicated)}")
    return body


def _no_store(resp: falcon.Response) -> None:
    resp.set_header("Cache-Control", "no-store")
    resp.set_header("Pragma", "no-cache")


def write_oauth_response(
    resp: falcon.Response,
    headers: Mapping[str, str],
    body: str | None,
    status: int,
    *,
    basic_challenge: bool = True,
) -> None:
    """Copy an oauthlib answer onto ``resp``; 401 challenges become Basic (RFC 6749 §5.2, RFC 7617)."""
    resp.status = falcon.code_to_http_status(status)
    for name, value in headers.items():
        if name.lower() == "www-authenticate" and basic_challenge:
            continue
        resp.set_header(name, value)
    if status == 401 and basic_challenge:
        resp.set_header("WWW-Authenticate", BASIC_CHALLENGE)
    _no_store(resp)
    if body:
        resp.content_type = headers.get("Content-Type", "application/json")
        resp.text = body
    elif status == 200:
        resp.text = ""


def write_oauth_error(resp: falcon.Response, error: errors.OAuth2Error | OAuthRequestError) -> None:
    """Write an RFC 6749 §5.2 error body for an error raised outside oauthlib's own handling."""
    if isinstance(error, OAuthRequestError):
        document = {"error": error.error, "error_description": error.description}
        write_oauth_response(resp, {"Content-Type": "application/json"}, json.dumps(document), error.status)
        return
    headers = {"Content-Type": "application/json", **error.headers}
    write_oauth_response(resp, headers, error.json, error.status_code)
