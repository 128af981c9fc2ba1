"""HTTP caching and compression for ESPI feeds: validators, conditional GET, gzip (RFC 9110, RFC 9111, RFC 1952).

Feeds are private data: they are sent with ``Cache-Control: private, no-cache`` (a browser or the app's own cache may
keep them, but must revalidate: the token may have been revoked since) and ``Vary: Authorization, Accept-Encoding``.
The ETag is weak (RFC 9110 §8.8.1: the gzip and identity forms are the same representation semantically) and derived
from what the response would contain (rows' ids and ``updated``, the grant, the query), so it is computed before any
byte is written and a 304 costs a few small queries instead of the feed.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import itertools
import zlib
from collections.abc import Iterable, Iterator

import falcon

__all__ = [
    "CACHE_CONTROL",
    "Validators",
    "accepts_gzip",
    "gzip_chunks",
    "is_not_modified",
    "send",
]

CACHE_CONTROL = "private, no-cache"
"""RFC 9111 §5.2.2.7 ``private``: no shared cache may store it; ``no-cache``: revalidate every time."""

GZIP_LEVEL = 5
"""Level 5 gets ~95 % of level 9's ratio on ESPI XML (20-35x) at a fraction of the CPU."""


class Validators:
    """An ETag and Last-Modified pair (RFC 9110 §8.8) built from the parts that determine a response."""

    __slots__ = ("etag", "last_modified")

    def __init__(self, parts: Iterable[object], last_modified: dt.datetime | None) -> None:
        digest = hashlib.blake2b(digest_size=16)
        for part in parts:
            digest.update(repr(part).encode())
            digest.update(b"\x1f")
        self.etag = f'W/"{digest.hexdigest()}"'
        # HTTP dates have whole seconds (RFC 9110 §5.6.7): truncate so If-Modified-Since round-trips.
        self.last_modified = None if last_modified is None else last_modified.replace(microsecond=0)


def _etag_matches(header: str, etag: str) -> bool:
    """Weak comparison (RFC 9110 §8.8.3.2) of ``etag`` against an ``If-None-Match`` list."""
    if header.strip() == "*":
        return True
    opaque = etag.removeprefix("W/")
    return any(candidate.strip().removeprefix("W/") == opaque for candidate in header.split(","))


def is_not_modified(req: falcon.Request, validators: Validators) -> bool:
    """RFC 9110 §13.2.2: If-None-Match first; If-Modified-Since only when there is no If-None-Match."""
    if req.method not in ("GET", "HEAD"):
        return False
    if_none_match = req.get_header("If-None-Match")
    if if_none_match is not None:
        return _etag_matches(if_none_match, validators.etag)
    if_modified_since = req.get_header("If-Modified-Since")
    if if_modified_since is None or validators.last_modified is None:
        return False
    try:
        since = email.utils.parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError):
        return False  # RFC 9110 §13.1.3: an invalid date is ignored
    if since.tzinfo is None:
        since = since.replace(tzinfo=dt.UTC)
    return validators.last_modified <= since


def accepts_gzip(header: str | None) -> bool:
    """True when ``Accept-Encoding`` (RFC 9110 §12.5.3) accepts gzip with a non-zero q-value."""
    if not header:
        return False
    wildcard: bool | None = None
    for item in header.split(","):
        coding, _, params = item.strip().partition(";")
        coding = coding.strip().lower()
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if coding in ("gzip", "x-gzip"):
            return quality > 0
        if coding == "*":
            wildcard = quality > 0
    return bool(wildcard)


def gzip_chunks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Compress a chunk stream as one gzip member (RFC 1952), flushing only what zlib hands back (memory flat)."""
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
    for chunk in chunks:
        out = compressor.compress(chunk)
        if out:
            yield out
    yield compressor.flush()


class _Closing:
    """An iterator that closes the wrapped iterable too (the session wrapper's close must reach the feed)."""

    def __init__(self, iterator: Iterator[bytes], inner: Iterable[bytes]) -> None:
        self._iterator = iterator
        self._inner = inner

    def __iter__(self) -> _Closing:
        return self

    def __next__(self) -> bytes:
        return next(self._iterator)

    def close(self) -> None:
        for thing in (self._iterator, self._inner):
            close = getattr(thing, "close", None)
            if close is not None:
                close()


def send(
    req: falcon.Request,
    resp: falcon.Response,
    body: Iterable[bytes],
    validators: Validators,
    *,
    content_type: str = "application/atom+xml",
) -> None:
    """Answer with ``body`` (not yet started) or 304, with validators, cache policy and content coding.

    Call last in a responder, after every check: ``body`` becomes ``resp.stream`` and its first byte is written
    after the responder returns (PITFALLS: falcon).
    """
    resp.set_header("ETag", validators.etag)
    if validators.last_modified is not None:
        resp.set_header("Last-Modified", falcon.dt_to_http(validators.last_modified))
    resp.set_header("Cache-Control", CACHE_CONTROL)
    resp.append_header("Vary", "Authorization, Accept-Encoding")
    if is_not_modified(req, validators):
        close = getattr(body, "close", None)
        if close is not None:
            close()
        resp.status = falcon.HTTP_304
        return
    resp.content_type = content_type
    gzip = accepts_gzip(req.get_header("Accept-Encoding"))
    if gzip:
        resp.set_header("Content-Encoding", "gzip")
    whole, stream = _whole_or_stream(body)
    if whole is not None:
        resp.data = b"".join(gzip_chunks((whole,))) if gzip else whole
    elif gzip:
        resp.stream = _Closing(gzip_chunks(stream), stream)
    else:
        resp.stream = stream


def _whole_or_stream(body: Iterable[bytes]) -> tuple[bytes | None, Iterable[bytes]]:
    """``(bytes, body)`` when ``body`` is a single chunk, else ``(None, the same chunks)`` to stream.

    The writer hands out chunks of 64 KiB, so one entry (a UsagePoint, a MeterReading) is one chunk: sent whole, it
    gets a ``Content-Length`` and one write instead of chunked transfer coding through two stream wrappers (a
    tenth of the time of a small ``GET``). Pulling the first chunks here, inside the responder, also means an error
    while writing them is still answered properly rather than truncating a body already started.
    """
    if isinstance(body, bytes):
        return body, body
    iterator = iter(body)
    pulled = list(itertools.islice(iterator, 2))
    if len(pulled) == 2:
        return None, _Closing(itertools.chain(pulled, iterator), body)
    close = getattr(body, "close", None)
    if close is not None:
        close()
    return (pulled[0] if pulled else b""), body
