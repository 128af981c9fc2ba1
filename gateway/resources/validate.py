"""``POST /validate``: the feed validator as a web service for integrators.

The body is a Green Button document (an ESPI REQ.21 Atom feed or entry, RFC 4287); the answer is the JSON
validation report of :mod:`gateway.espi.validator`, with status 200 whether or not the document is valid (the
report says). Errors of the request itself use the gateway's one error mapping: 400 for a bad ``schema``
parameter, 411 without a Content-Length, 413 for a body over ``settings.max_validate_bytes``, 415 for a
content type that is not XML, 422 when the document needs more CPU time or memory than one request may use, and 429
with ``Retry-After`` (RFC 6585 §4) when the client's address is over its rate limit
(``GATEWAY_VALIDATE_RATE_LIMIT_PER_MINUTE``, ``GATEWAY_VALIDATE_RATE_LIMIT_BURST``; shared by every worker and node).
"""

from __future__ import annotations

from typing import Final

import falcon

from gateway.config import Settings
from gateway.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from gateway.espi.isolation import validate_isolated
from gateway.espi.validator import DEFAULT_PER_CODE, SchemaProfile
from gateway.web.rate_limit import RateLimiter, address_key

__all__ = ["XML_MEDIA_TYPES", "ValidateResource"]

XML_MEDIA_TYPES: Final = frozenset({"application/atom+xml", "application/xml", "text/xml"})
"""Content types accepted for the body (ESPI serves feeds as application/atom+xml)."""

_CHUNK: Final = 64 * 1024


class ValidateResource:
    """Validate a posted feed and answer with the report.

    **No authentication is required**: this is a public tool for integrators checking their own files; it
    stores nothing but its rate-limit bucket. Its cost is bounded by the rate limit per client address (``limiter``,
    checked before the body is read; ``None`` mounts the resource without one), by the size cap (the body is read
    in chunks and refused as soon as it exceeds ``settings.max_validate_bytes``), by the hardened parser of
    the validator (no DTD, no entities, no network), and by running the validation in a child process with CPU
    and memory limits.

    Query parameters: ``schema`` = ``4.0`` (default) or ``3.3``.
    """

    def __init__(self, settings: Settings, limiter: RateLimiter | None = None) -> None:
        self._limiter = limiter
        self._max_bytes = settings.max_validate_bytes
        self._cpu_seconds = settings.validate_cpu_seconds
        self._memory_bytes = settings.validate_memory_mib << 20

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Answer 200 with the JSON report; 400, 411, 413 or 415 when the request itself is wrong, 429 when too many."""
        if self._limiter is not None:
            # Each request costs a child process: refuse before reading anything.
            self._limiter.check(address_key(getattr(req.context, "client_ip", None) or req.remote_addr))
        profile = self._profile(req)
        media_type = (req.content_type or "").split(";", 1)[0].strip().lower()
        if media_type not in XML_MEDIA_TYPES:
            raise UnsupportedMediaType(
                f"send the feed as {', '.join(sorted(XML_MEDIA_TYPES))}; got {media_type or 'no Content-Type'}"
            )
        body = self._read_body(req)
        # In a child process with CPU and memory limits: libxml2's cost explodes with the number of schema errors,
        # and this endpoint is public (see gateway.espi.isolation).
        resp.media = validate_isolated(
            body,
            profile=profile.value,
            per_code=DEFAULT_PER_CODE,
            cpu_seconds=self._cpu_seconds,
            memory_bytes=self._memory_bytes,
        )
        resp.status = falcon.HTTP_200

    @staticmethod
    def _profile(req: falcon.Request) -> SchemaProfile:
        raw = req.get_param("schema")
        if raw is None:
            return SchemaProfile.ESPI_4_0
        try:
            return SchemaProfile(raw)
        except ValueError:
            choices = " or ".join(profile.value for profile in SchemaProfile)
            raise BadRequest(f"query parameter 'schema' must be {choices}, got {raw!r}") from None

    def _read_body(self, req: falcon.Request) -> bytes:
        """The body, read in chunks from ``bounded_stream``, refused past the cap (never read whole first)."""
        limit = self._max_bytes
        too_large = PayloadTooLarge(f"the feed exceeds the {limit:,}-byte limit of this endpoint")
        if req.content_length is None:
            # falcon's bounded_stream reads nothing without a Content-Length (a chunked upload would look
            # empty): say so instead of reporting an empty document (RFC 9110 §15.5.12).
            raise falcon.HTTPLengthRequired(
                title="Length required", description="send the feed with a Content-Length header"
            )
        if req.content_length > limit:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        stream = req.bounded_stream
        while True:
            chunk = stream.read(min(_CHUNK, limit - size + 1))
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)
