"""Per-client rate limits on the ESPI resource API, answered with 429 and ``Retry-After`` (RFC 6585 §4).

Production custodians limit apps (PG&E 1 req/s, UtilityAPI 50 req/s) but almost none say when to come back
(ESPI-NOTES §10): we always send ``Retry-After``. The limit is a token bucket per OAuth client: ``rate`` requests per
second sustained, bursts of up to ``burst``. Buckets live in the worker process's memory: checking costs a dict lookup
and a lock, not a database write per request (which on SQLite would serialise every reader behind the write lock).
With ``W`` gunicorn workers on ``N`` nodes a client can therefore get up to ``W x N`` times the configured rate;
configure per-process values accordingly (documented in docs/resource-api.md). Failure throttling, which must hold
across nodes, stays in :mod:`gateway.security.throttle`.

Settings (read by :func:`gateway.resources.routes.add_espi_routes` when present): ``GATEWAY_RATE_LIMIT_PER_SECOND``
(default 10, 0 disables) and ``GATEWAY_RATE_LIMIT_BURST`` (default 50).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from gateway.errors import TooManyRequests

__all__ = ["DEFAULT_BURST", "DEFAULT_RATE", "RateLimiter"]

DEFAULT_RATE = 10.0
DEFAULT_BURST = 50
_MAX_KEYS = 100_000


class RateLimiter:
    """A token bucket per key (the client id); :meth:`check` raises :class:`TooManyRequests` when it is empty."""

    def __init__(
        self,
        rate: float = DEFAULT_RATE,
        burst: int = DEFAULT_BURST,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = float(rate)
        self.burst = max(1, int(burst))
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def check(self, key: str) -> None:
        """Take one token from ``key``'s bucket, or raise 429 with the seconds until one is available."""
        if not self.enabled:
            return
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                if len(self._buckets) >= _MAX_KEYS and key not in self._buckets:
                    self._buckets.clear()  # bounded memory; forgetting buckets only ever lets requests through
                self._buckets[key] = (tokens - 1.0, now)
                return
            self._buckets[key] = (tokens, now)
        retry_after = math.ceil((1.0 - tokens) / self.rate)
        raise TooManyRequests(
            f"rate limit of {self.rate:g} requests per second (bursts of {self.burst}) exceeded for this client",
            retry_after=retry_after,
        )
