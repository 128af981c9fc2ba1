"""Per-client rate limits answered with 429 and ``Retry-After`` (RFC 6585 §4), shared by the whole cluster.

Production custodians limit apps (PG&E 1 req/s, UtilityAPI 50 req/s) but almost none say when to come back
(ESPI-NOTES §10): we always send ``Retry-After``. The limit is a token bucket per key (the OAuth client on the ESPI
resources, the client's address on ``POST /validate``): ``rate`` requests per second sustained, bursts of up to
``burst``. It holds for the client across every gunicorn worker of every node behind the load balancer.

How, without a database write per request (on SQLite every write takes the database's write lock, and the small
authenticated UsagePoint GET is a throughput benchmark):

- **The bucket lives in the database** (``rate_limit_bucket``, :mod:`gateway.storage.rate_limit`), one row per key.
- **Workers lease tokens in batches.** A worker process takes several tokens at once from the shared bucket, in one
  statement that refills it (``rate`` x elapsed, capped at ``burst``) and takes the lease under the row's lock
  (:func:`gateway.storage.rate_limit.take_tokens`), then spends them in memory under a thread lock.
- **Leases are sized by demand.** A worker's first lease for a key is one token; a lease spent within its lifetime
  doubles the next one, up to ``max(1, min(burst // 4, ceil(rate / 2)))``; a lease that expired half-used makes the
  next one as large as what was used. A fixed lease would let a client whose requests the load balancer spreads
  over many workers strand most of its tokens in leases it never spends (8 workers taking 5 tokens each out of 10 a
  second) and be refused below its rate.
- **Unspent tokens expire** ``lease_seconds`` (1 s) after the lease; they are never carried over longer. A token is
  spent at most once, so the cluster never admits more than ``burst + rate x t``; what a lease costs is the other
  direction: a client may be refused up to that second early while another worker still holds some of its tokens.
- **A refusal is remembered.** When the shared bucket cannot cover one token, the worker answers 429 with
  ``Retry-After`` = the seconds until one token refills (rounded up, at least 1) and refuses that key locally until
  then, so a client hammering after its 429 costs the database one transaction per worker per refill, not one per
  request.
- **A database outage is not a 429.** If the lease transaction fails (the database is unreachable, locked or timed
  out), the request is let through, a warning is logged once per outage, and the limiter stops asking the database
  for ``OUTAGE_BACKOFF`` seconds; the request then fails cleanly on its own query, or succeeds if it needs none.

The lease never runs on the request's session: on SQLite it is a single autocommit statement on the thread's held
connection (:meth:`gateway.oauth.hotpath.HotPath.single_statement`), on PostgreSQL a pooled connection's own short
transaction. Under the test suite's savepoint isolation, where the application's sessions are bound to one connection
inside an outer transaction, the limiter is given that connection and takes each lease in a savepoint on it
(:func:`sessions_bind`). Without a database (``bind=None``: unit tests passing a clock, tools) the buckets live in
this process's memory; with ``rate = 0`` the limit is off.

Clocks: epoch seconds (``time.time``), because the row is shared by nodes; a node whose clock is behind the row's
refills nothing rather than turning time back, and a lease whose start lies in the future (the clock stepped back)
counts as expired.

Settings (read by :func:`gateway.resources.routes.add_espi_routes` and :func:`gateway.routes.add_routes`):
``GATEWAY_RATE_LIMIT_PER_SECOND`` (default 10, 0 disables) and ``GATEWAY_RATE_LIMIT_BURST`` (default 50) per OAuth
client; ``GATEWAY_VALIDATE_RATE_LIMIT_PER_MINUTE`` (default 30, 0 disables) and ``GATEWAY_VALIDATE_RATE_LIMIT_BURST``
(default 30) per client address on ``POST /validate``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import math
import threading
import time
from collections.abc import Callable

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker

from gateway.errors import TooManyRequests
from gateway.oauth.hotpath import HotPath
from gateway.storage.rate_limit import KEY_LENGTH, Lease, take_tokens

__all__ = [
    "DEFAULT_BURST",
    "DEFAULT_RATE",
    "LEASE_SECONDS",
    "OUTAGE_BACKOFF",
    "RateLimiter",
    "address_key",
    "sessions_bind",
]

log = logging.getLogger(__name__)

DEFAULT_RATE = 10.0
DEFAULT_BURST = 50
LEASE_SECONDS = 1.0
"""How long a worker may spend the tokens of one lease; the bound on how early a client can be refused."""
OUTAGE_BACKOFF = 5.0
"""Seconds the limiter lets requests through without asking the database again after a failed lease."""
_MAX_KEYS = 100_000
_UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeoutError)
"""What a database that is down, locked or too slow raises; anything else is a bug and propagates (500, not 429)."""


def sessions_bind(sessions: sessionmaker[Session]) -> Engine | Connection:
    """What the application's sessions are bound to: the engine, or the test suite's connection (see module doc)."""
    with sessions() as session:
        bind = session.get_bind()
    if not isinstance(bind, Engine | Connection):
        raise TypeError(f"the session factory is bound to {bind!r}, not an engine or a connection")
    return bind


def address_key(address: str | None) -> str:
    """The rate-limit key of a client address (as :mod:`gateway.web.transport` resolved it behind trusted proxies).

    IPv4 addresses count one by one; IPv6 addresses by their /64 network, the block one subscriber is given (RFC 6177),
    since a client that owns a /64 could otherwise take a fresh bucket with every request.
    """
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:100]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


@dataclasses.dataclass(slots=True)
class _LocalLease:
    """This worker's share of one key's shared bucket."""

    tokens: int = 0
    """Leased and not yet spent."""
    size: int = 0
    """Tokens the last lease granted (0: none yet)."""
    leased_at: float = -math.inf
    refused_until: float = -math.inf
    """Until then the shared bucket holds no whole token: refuse without asking it."""


class RateLimiter:
    """A token bucket per key; :meth:`check` raises :class:`TooManyRequests` when the key's bucket is empty.

    ``name`` prefixes the keys in the shared table (``espi``, ``validate``), so that limits of different kinds never
    share a bucket. ``bind`` is the engine (or the test suite's connection) holding the shared buckets; without it
    the buckets live in this process's memory.
    """

    def __init__(
        self,
        rate: float = DEFAULT_RATE,
        burst: int = DEFAULT_BURST,
        *,
        bind: Engine | Connection | None = None,
        name: str = "espi",
        clock: Callable[[], float] = time.time,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        self.rate = float(rate)
        self.burst = max(1, int(burst))
        self.name = name
        self.max_lease = max(1, min(self.burst // 4, math.ceil(self.rate / 2)))
        self._bind = bind
        # Looked up once: on SQLite the leases run on the hot path's held connections (see _take).
        self._hotpath = HotPath.for_engine(bind) if isinstance(bind, Engine) else None
        self._clock = clock
        self._lease_seconds = lease_seconds
        self._lock = threading.Lock()
        self._bind_lock = threading.Lock()  # a shared Connection (tests) is not safe across threads
        self._buckets: dict[str, tuple[float, float]] = {}
        self._leases: dict[str, _LocalLease] = {}
        self._outage_until = -math.inf
        self._outage_logged = False

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def check(self, key: str) -> None:
        """Take one token from ``key``'s bucket, or raise 429 with the seconds until one is available."""
        if not self.enabled:
            return
        now = self._clock()
        if self._bind is None:
            self._check_in_memory(key, now)
        else:
            self._check_shared(self._bind, key, now)

    # -- the cluster-wide bucket ------------------------------------------------------------------------------------

    def _check_shared(self, bind: Engine | Connection, key: str, now: float) -> None:
        with self._lock:
            lease = self._leases.get(key)
            if lease is None:
                self._make_room(now)
                lease = self._leases[key] = _LocalLease()
            live = lease.leased_at <= now < lease.leased_at + self._lease_seconds
            if live and lease.tokens >= 1:
                lease.tokens -= 1
                return
            if now < lease.refused_until:
                raise self._refusal(lease.refused_until - now)
            if now < self._outage_until:
                return
            want = self._next_lease_size(lease, live)
        # The database round trip happens outside the lock: other keys' requests need not wait for it.
        try:
            taken = self._take(bind, key, want, now)
        except _UNAVAILABLE as error:
            self._database_failed(error, now)
            return
        self._database_answered()
        with self._lock:
            lease = self._leases.setdefault(key, _LocalLease())
            # Another thread of this worker may have leased meanwhile: its tokens are ours too.
            held = lease.tokens if lease.leased_at <= now < lease.leased_at + self._lease_seconds else 0
            if taken.granted == 0:
                if held >= 1:
                    lease.tokens -= 1
                    return
                lease.refused_until = now + taken.wait
                raise self._refusal(taken.wait)
            lease.tokens = held + taken.granted - 1
            lease.size = taken.granted
            lease.leased_at = now

    def _next_lease_size(self, lease: _LocalLease, live: bool) -> int:
        if lease.size == 0:
            return 1
        if live:  # spent before it expired: the client wants more here
            return min(self.max_lease, lease.size * 2)
        used = lease.size - lease.tokens
        return max(1, min(self.max_lease, used))

    def _take(self, bind: Engine | Connection, key: str, want: int, now: float) -> Lease:
        shared_key = f"{self.name}:{key}"[:KEY_LENGTH]
        if isinstance(bind, Connection):
            with self._bind_lock, bind.begin_nested():
                return take_tokens(bind, shared_key, want=want, rate=self.rate, burst=self.burst, now=now)
        # The lease is one statement: on SQLite it runs alone on the thread's held autocommit connection (no pool
        # checkout, no BEGIN IMMEDIATE around it), elsewhere on a pooled connection, committed at once.
        assert self._hotpath is not None
        with self._hotpath.single_statement(bind) as held:
            if held is not None:
                return take_tokens(held, shared_key, want=want, rate=self.rate, burst=self.burst, now=now)
        with bind.begin() as connection:
            return take_tokens(connection, shared_key, want=want, rate=self.rate, burst=self.burst, now=now)

    def _database_failed(self, error: Exception, now: float) -> None:
        with self._lock:
            self._outage_until = now + OUTAGE_BACKOFF
            first = not self._outage_logged
            self._outage_logged = True
        if first:
            log.warning(
                "rate limit %r not enforced: its database is unavailable (%s); requests pass until it answers again",
                self.name,
                type(error).__name__,
            )

    def _database_answered(self) -> None:
        if self._outage_logged:
            with self._lock:
                recovered, self._outage_logged = self._outage_logged, False
            if recovered:
                log.info("rate limit %r enforced again: its database answers", self.name)

    def _make_room(self, now: float) -> None:
        """Bound the memory: forget expired leases first, everything if that is not enough (called under the lock)."""
        if len(self._leases) < _MAX_KEYS:
            return
        idle = [
            key
            for key, lease in self._leases.items()
            if lease.refused_until <= now and not lease.leased_at <= now < lease.leased_at + self._lease_seconds
        ]
        for key in idle:
            del self._leases[key]
        if len(self._leases) >= _MAX_KEYS:
            self._leases.clear()  # forgetting leases only drops their tokens (and refusals: one more lease each)

    # -- one process's own bucket (no database) --------------------------------------------------------------------

    def _check_in_memory(self, key: str, now: float) -> None:
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + max(0.0, now - last) * self.rate)
            if tokens >= 1.0:
                if len(self._buckets) >= _MAX_KEYS and key not in self._buckets:
                    self._buckets.clear()  # bounded memory; forgetting buckets only ever lets requests through
                self._buckets[key] = (tokens - 1.0, max(now, last))
                return
            self._buckets[key] = (tokens, max(now, last))
        raise self._refusal((1.0 - tokens) / self.rate)

    def _refusal(self, wait: float) -> TooManyRequests:
        return TooManyRequests(
            f"rate limit of {self._describe()} exceeded for this client",
            # Rounded up to whole seconds, forgiving float noise (2.0000000001 s is 2 s, not 3).
            retry_after=max(1, math.ceil(wait - 1e-9)),
        )

    def _describe(self) -> str:
        if self.rate >= 1 or self.rate == 0:
            return f"{self.rate:g} requests per second (bursts of {self.burst})"
        return f"{self.rate * 60:g} requests per minute (bursts of {self.burst})"
