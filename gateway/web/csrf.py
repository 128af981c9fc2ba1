"""CSRF protection for the customer's HTML forms: synchronizer tokens bound to the session (RFC 6749 §10.12).

Every POST form carries ``csrf_token``: an HMAC, under a key derived from the gateway's secret key, of the session
it belongs to. For the login form, before any session exists, it is bound to a *pre-session* cookie (OWASP: login CSRF
must be defended too). A token from another session, a missing token or a forged one fails in constant time with 403,
and nothing is decided (checklist row 11). ``SameSite=Lax`` cookies are a second line, not the defence.

Also here: reading an urlencoded form body with a size cap (PITFALLS: falcon, read ``bounded_stream``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import parse_qsl

import falcon

from gateway.errors import BadRequest, Forbidden, PayloadTooLarge

__all__ = ["CsrfError", "CsrfTokens", "first", "read_form"]

FIELD = "csrf_token"


class CsrfError(Forbidden):
    """The form's CSRF token is missing or does not belong to this browser's session."""

    code = "csrf_failed"
    title = "Forbidden"


class CsrfTokens:
    """Mint and check tokens bound to a session (or pre-session) value."""

    def __init__(self, secret_key: str) -> None:
        self._key = hmac.new(secret_key.encode(), b"customer-form-csrf", hashlib.sha256).digest()

    def token(self, binding: str) -> str:
        """The token for forms of the session identified by ``binding``."""
        mac = hmac.new(self._key, binding.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def check(self, binding: str | None, presented: str | None) -> None:
        """Raise :class:`CsrfError` unless ``presented`` is the token of ``binding`` (compared in constant time)."""
        expected = self.token(binding or "")
        if not binding or not presented or not hmac.compare_digest(expected.encode(), presented.encode()):
            raise CsrfError("this form has expired or was not sent from this site; reload the page and try again")


def read_form(req: falcon.Request, max_bytes: int = 16 * 1024) -> dict[str, list[str]]:
    """Parse an ``application/x-www-form-urlencoded`` body into lists of values, with a size cap."""
    media_type = (req.content_type or "").split(";", 1)[0].strip().lower()
    if media_type != "application/x-www-form-urlencoded":
        raise BadRequest("this form must be sent as application/x-www-form-urlencoded")
    raw = req.bounded_stream.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise PayloadTooLarge("the form is too large")
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=200)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("the form is not valid UTF-8 form encoding") from None
    form: dict[str, list[str]] = {}
    for name, value in pairs:
        form.setdefault(name, []).append(value)
    return form


def first(form: dict[str, list[str]], name: str) -> str | None:
    """The first value of field ``name``, or ``None``."""
    values = form.get(name)
    return values[0] if values else None
