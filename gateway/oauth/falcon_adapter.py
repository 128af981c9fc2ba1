"""The thin layer between falcon and oauthlib: read a form body safely, write ``(headers, body, status)`` back.

oauthlib returns its answers as ``(headers, body, status)``; they pass through unchanged except where RFC 6749 wants
more than oauthlib gives: a 401 from client authentication carries ``WWW-Authenticate: Basic`` (RFC 6749 §5.2, not
oauthlib's ``Bearer``), and every response of the token, revocation and introspection endpoints is ``no-store``
(RFC 6749 §5.1).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode

import falcon
from oauthlib.oauth2.rfc6749 import errors

__all__ = ["OAuthRequestError", "parse_form", "read_form_body", "write_oauth_error", "write_oauth_response"]

BASIC_CHALLENGE = 'Basic realm="oauth", charset="UTF-8"'

MAX_FORM_FIELDS = 50
"""No OAuth request needs more than a dozen parameters; a form with more is refused before it is examined."""


class OAuthRequestError(Exception):
    """A request refused at the edge, before oauthlib sees it (RFC 6749 §3.2, §5.2 ``invalid_request``)."""

    def __init__(self, description: str, *, error: str = "invalid_request", status: int = 400) -> None:
        super().__init__(description)
        self.description = description
        self.error = error
        self.status = status


def parse_form(text: str, *, strict: bool = True) -> list[tuple[str, str]]:
    """Parse a form-encoded string (a body or a query), refusing absurd sizes and repeated names (RFC 6749 §3.1, §3.2).

    Linear in the input: at most :data:`MAX_FORM_FIELDS` fields, repeats found with one count of all names.
    """
    try:
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=strict and bool(text),
            errors="strict",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except ValueError:
        raise OAuthRequestError(
            f"the parameters are not valid form encoding or number more than {MAX_FORM_FIELDS}"
        ) from None
    repeated = sorted(name for name, count in Counter(name for name, _ in pairs).items() if count > 1)
    if repeated:
        raise OAuthRequestError(f"parameters must not be repeated: {', '.join(repeated)}")
    return pairs


def read_form_body(req: falcon.Request, max_bytes: int) -> str:
    """Read an ``application/x-www-form-urlencoded`` body (RFC 6749 §3.2, Appendix B) with the checks oauthlib lacks.

    No parameters in the query, a form content type, a size cap, UTF-8, and no parameter twice (RFC 6749 §3.2).
    The body is returned re-encoded from the parsed pairs: oauthlib silently ignores a body holding characters or
    escapes it considers invalid (``|``, ``%zz``), which would turn into a misleading ``unsupported_grant_type``.
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
    return urlencode(parse_form(body))


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
