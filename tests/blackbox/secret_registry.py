"""Every credential the black-box tests send or receive, collected at the HTTP client, for the log scan (row 32).

Checklist row 32 says the logs of a test run contain no issued token, code or secret. Listing them by hand in each
test misses most of them, so the registry watches the HTTP client instead: :func:`harvesting` wraps
``requests``' transport adapter (the client library, never the gateway) and records

- from requests: the ``Authorization`` header (Bearer token, Basic id's secret), form fields that carry a credential
  (``password``, ``client_secret``, ``code``, ``code_verifier``, ``refresh_token``, ``token``, ``csrf_token``), and
  the cookie values sent;
- from responses: token JSON (``access_token``, ``refresh_token``, ``client_secret``, ``registration_access_token``),
  a ``code`` in a ``Location`` redirect, and ``Set-Cookie`` values (session cookies are bearer credentials too).

Tests that create credentials outside HTTP (``live.client()`` registers in-process) add them with :meth:`add`.
Values shorter than :data:`MIN_LENGTH` are ignored: short strings such as ``"x"`` or ``"nope"`` would match log text
by chance and none of them is a real credential.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import threading
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
import requests.adapters

__all__ = ["MIN_LENGTH", "SecretRegistry", "harvesting", "registry"]

MIN_LENGTH = 12

_FORM_FIELDS = frozenset(
    {"password", "client_secret", "code", "code_verifier", "refresh_token", "token", "access_token", "csrf_token"}
)
_JSON_FIELDS = frozenset({"access_token", "refresh_token", "client_secret", "registration_access_token"})


class SecretRegistry:
    """A thread-safe set of credential strings, each remembered with the kind of credential it is."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: dict[str, str] = {}

    def add(self, kind: str, value: object) -> None:
        if isinstance(value, str) and len(value) >= MIN_LENGTH:
            with self._lock:
                self._secrets.setdefault(value, kind)

    def items(self) -> list[tuple[str, str]]:
        """(value, kind) pairs."""
        with self._lock:
            return list(self._secrets.items())

    def __len__(self) -> int:
        with self._lock:
            return len(self._secrets)

    def leaked_into(self, text: str) -> list[str]:
        """Kinds (with a short prefix of the value, never the whole of it) of the secrets ``text`` contains."""
        return [f"{kind} {value[:6]}…" for value, kind in self.items() if value in text]

    # -- harvesting -------------------------------------------------------------------------------------------

    def observe_request(self, request: requests.PreparedRequest) -> None:
        authorization = request.headers.get("Authorization", "")
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer":
            self.add("bearer token", credentials.strip())
        elif scheme.lower() == "basic":
            with contextlib.suppress(binascii.Error, UnicodeDecodeError):
                _, _, secret = base64.b64decode(credentials).decode().partition(":")
                self.add("client secret (Basic)", secret)
        for cookie in request.headers.get("Cookie", "").split(";"):
            self.add("cookie", cookie.partition("=")[2].strip())
        self._observe_fields("request", parse_qs(urlsplit(request.url or "").query))
        body = request.body
        if isinstance(body, bytes):
            body = body.decode("utf-8", "replace")
        content_type = request.headers.get("Content-Type", "")
        if isinstance(body, str) and content_type.startswith("application/x-www-form-urlencoded"):
            self._observe_fields("form", parse_qs(body))

    def observe_response(self, response: requests.Response) -> None:
        location = response.headers.get("Location", "")
        for code in parse_qs(urlsplit(location).query).get("code", []):
            self.add("authorization code", code)
        for cookie in response.raw.headers.getlist("Set-Cookie") if response.raw is not None else []:
            self.add("cookie", cookie.partition("=")[2].partition(";")[0])
        if response.headers.get("Content-Type", "").startswith("application/json"):
            with contextlib.suppress(ValueError):
                self._observe_json(json.loads(response.content))

    def _observe_fields(self, where: str, fields: dict[str, list[str]]) -> None:
        for name in _FORM_FIELDS & fields.keys():
            for value in fields[name]:
                self.add(f"{where} {name}", value)

    def _observe_json(self, document: Any) -> None:
        items: Iterable[tuple[str, Any]] = document.items() if isinstance(document, dict) else ()
        for key, value in items:
            if key in _JSON_FIELDS:
                self.add(key, value)


registry = SecretRegistry()
"""The registry of the whole test session (the log scan of row 32 reads it)."""


@contextlib.contextmanager
def harvesting(into: SecretRegistry = registry) -> Iterator[SecretRegistry]:
    """Record every credential that passes through ``requests`` while the block runs."""
    original = requests.adapters.HTTPAdapter.send

    def send(adapter: requests.adapters.HTTPAdapter, request: requests.PreparedRequest, **kwargs: Any) -> Any:
        into.observe_request(request)
        response = original(adapter, request, **kwargs)
        into.observe_response(response)
        return response

    requests.adapters.HTTPAdapter.send = send  # type: ignore[method-assign]
    try:
        yield into
    finally:
        requests.adapters.HTTPAdapter.send = original  # type: ignore[method-assign]
