"""Sustained mixed load on a real ``gateway serve`` (127.0.0.1 only): no 5xx allowed, p50/p99 per operation.

    python bench/bench_load.py [--duration 60] [--clients 4] [--workers N] [--sqlite] [--postgres-url URL]

The mix, per client thread, over its own consents (each consent belongs to its own third-party app, so the per-app
rate limit of the ESPI API does not shape the figures):

- ``token``     30 %  ``client_credentials`` at the token endpoint (a token row written each time),
- ``feed``      45 %  a month of IntervalBlocks (``published-min/max``, 2,880 readings) with a customer token,
- ``status``    10 %  ``ReadServiceStatus`` with a client token,
- ``refresh``   10 %  refresh-token rotation,
- ``revoke``     5 %  the app ends a consent (``DELETE Authorization/{id}``); the very next feed request with
                      that consent's token (``revoked`` in the table) must be 401; the consent is then granted again
                      (authorize + token over HTTP, the customer's decision in-process). Each grant and each
                      revocation queues a BatchList for the app: a receiver on 127.0.0.1 checks each arrives once.

Each client thread runs every operation of the mix once, in the order above, before drawing them at random, so even a
run of a few seconds exercises them all.

Prints per operation: count, p50, p99, max, and the status codes; then the totals. Exits 1 on any 5xx, any
revocation that did not take effect at once, any notification missing or delivered twice, or any operation of the mix
that never did its work (never answered 200, or 204 for ``revoke``). Before the load starts, one month feed is fetched
with the first consent's token: anything but 200 (a 404 if the ESPI resource routes were not mounted) aborts the run
with exit status 1, as a load without its feed and revoke operations would measure nothing worth a pass.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import func, select

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

from bench_scale import REDIRECT, SCOPE, Consents, Loader, percentile, postgres  # noqa: E402  (bench/ sibling)

from gateway.config import Settings  # noqa: E402
from gateway.oauth.registration import RegisteredClient, register_client  # noqa: E402
from gateway.services import Services  # noqa: E402
from gateway.storage import migrate  # noqa: E402
from gateway.storage.engine import session_scope  # noqa: E402
from gateway.storage.models import UsagePoint  # noqa: E402
from gateway.storage.outbox import OutboxMessage  # noqa: E402
from tests.multinode.receiver import BatchListReceiver  # noqa: E402
from tests.support.server import GatewayProcess, free_port  # noqa: E402

CLIENT_SCOPE = "FB=3_34_35_36_40_41"
SECRET_KEY = "bench-load-secret-key-0123456789abcdefghijklmnopq"
WEIGHTS = {"token": 30, "feed": 45, "status": 10, "refresh": 10, "revoke": 5}
SUCCESS = {"token": 200, "feed": 200, "status": 200, "refresh": 200, "revoke": 204}
"""The status each operation of the mix answers when it does its work: a run where one never did fails."""
RESOURCE = "/DataCustodian/espi/1_1/resource"


@dataclasses.dataclass
class Consent:
    """One app's consent over one usage point, as the app holds it."""

    app: RegisteredClient
    usage_point_id: int
    access_token: str = ""
    refresh_token: str = ""
    authorization_url: str = ""
    month_url: str = ""


class Stats:
    """Latencies and statuses per operation, shared by the client threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = collections.defaultdict(list)
        self.statuses: dict[str, collections.Counter[int]] = collections.defaultdict(collections.Counter)
        self.errors: list[str] = []
        self.revocations = 0

    def record(self, kind: str, seconds: float, status: int) -> None:
        with self.lock:
            self.latency[kind].append(seconds)
            self.statuses[kind][status] += 1

    def fail(self, message: str) -> None:
        with self.lock:
            self.errors.append(message)


class Client(threading.Thread):
    """One load client: its own HTTP connection pool, consents and random stream."""

    def __init__(
        self,
        index: int,
        base_url: str,
        consents: list[Consent],
        granter: Consents,
        stats: Stats,
        deadline: float,
        expected: collections.Counter[str],
    ) -> None:
        super().__init__(name=f"load-{index}")
        self.base_url = base_url
        self.consents = consents
        self.granter = granter
        self.stats = stats
        self.deadline = deadline
        self.expected = expected
        self.random = random.Random(index)
        self.http = requests.Session()
        self.client_token = ""

    def call(self, kind: str, method: str, url: str, **kwargs: Any) -> requests.Response:
        started = time.perf_counter()
        response = self.http.request(method, url, timeout=60, **kwargs)
        _ = response.content
        self.stats.record(kind, time.perf_counter() - started, response.status_code)
        return response

    def token(self, consent: Consent) -> None:
        response = self.call(
            "token",
            "POST",
            f"{self.base_url}/oauth/token",
            data={"grant_type": "client_credentials", "scope": CLIENT_SCOPE},
            auth=(consent.app.client_id, consent.app.client_secret),
        )
        if response.status_code == 200:
            self.client_token = response.json()["access_token"]

    def grant(self, consent: Consent) -> None:
        token, _batch, month = self.granter.grant_full(consent.usage_point_id, consent.app)
        consent.access_token = token["access_token"]
        consent.refresh_token = token["refresh_token"]
        consent.authorization_url = f"{self.base_url}/{token['authorizationURI'].split('/', 3)[3]}"
        consent.month_url = month
        with self.stats.lock:  # granting queues one BatchList for the app (ESPI-NOTES §9)
            self.expected[consent.authorization_url] += 1

    def run(self) -> None:
        kinds = list(WEIGHTS)
        weights = [WEIGHTS[kind] for kind in kinds]
        for kind in kinds:  # every operation once first, whatever the deadline: a short run still exercises them all
            self.attempt(kind)
        while time.monotonic() < self.deadline:
            self.attempt(self.random.choices(kinds, weights)[0])

    def attempt(self, kind: str) -> None:
        consent = self.random.choice(self.consents)
        try:
            self.step(kind, consent)
        except requests.RequestException as error:
            self.stats.fail(f"{kind}: {error!r}")

    def bearer(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def step(self, kind: str, consent: Consent) -> None:
        if kind == "token" or (kind == "status" and not self.client_token):
            self.token(consent)
        elif kind == "status":
            self.call(
                "status", "GET", f"{self.base_url}{RESOURCE}/ReadServiceStatus", headers=self.bearer(self.client_token)
            )
        elif kind == "feed":
            self.call("feed", "GET", consent.month_url, headers=self.bearer(consent.access_token))
        elif kind == "refresh":
            response = self.call(
                "refresh",
                "POST",
                f"{self.base_url}/oauth/token",
                data={"grant_type": "refresh_token", "refresh_token": consent.refresh_token},
                auth=(consent.app.client_id, consent.app.client_secret),
            )
            if response.status_code == 200:
                consent.access_token = response.json()["access_token"]
                consent.refresh_token = response.json()["refresh_token"]
        elif kind == "revoke":
            self.token(consent)
            response = self.call("revoke", "DELETE", consent.authorization_url, headers=self.bearer(self.client_token))
            if response.status_code == 204:
                with self.stats.lock:  # and so does ending it
                    self.expected[consent.authorization_url] += 1
                    self.stats.revocations += 1
                after = self.call("revoked", "GET", consent.month_url, headers=self.bearer(consent.access_token))
                if after.status_code != 401:
                    self.stats.fail(f"revoked consent still answered {after.status_code}")
                started = time.perf_counter()
                self.grant(consent)
                self.stats.record("grant", time.perf_counter() - started, 200)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=4, help="concurrent client threads")
    parser.add_argument("--consents", type=int, default=5, help="consents (apps) per client thread")
    parser.add_argument("--workers", type=int, default=(os.cpu_count() or 1) + 1)
    parser.add_argument("--days", type=int, default=60, help="days of 15-minute data per usage point")
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of a throwaway PostgreSQL")
    parser.add_argument("--postgres-url")
    args = parser.parse_args()
    total_consents = args.clients * args.consents
    backend = "SQLite" if args.sqlite else "PostgreSQL"
    print(
        f"bench_load: {args.duration:g} s, {args.clients} clients, {args.workers} sync workers, {backend}, "
        f"{os.cpu_count()} cores, mix {WEIGHTS}"
    )
    with (
        tempfile.TemporaryDirectory() as tmp,
        postgres(None if args.sqlite else args.postgres_url, skip=args.sqlite) as pg_url,
    ):
        database_url = f"sqlite:///{tmp}/load.sqlite3" if args.sqlite else pg_url
        receiver = BatchListReceiver().start()
        port = free_port()
        environ = {
            "GATEWAY_DATABASE_URL": database_url,
            "GATEWAY_VAR_DIR": tmp,
            "GATEWAY_SECRET_KEY": SECRET_KEY,
            "GATEWAY_BASE_URL": f"http://127.0.0.1:{port}",
            "GATEWAY_PASSWORD_TIME_COST": "1",
            "GATEWAY_PASSWORD_MEMORY_KIB": "8",
            "GATEWAY_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        }
        services = Services.build(Settings.from_env(environ))
        migrate.upgrade(services.engine)
        loader = Loader(services.engine, days=args.days)
        loader.grow_to(total_consents)
        with services.engine.connect() as conn:
            point_ids = list(conn.execute(select(UsagePoint.id).order_by(UsagePoint.id)).scalars())
        apps: list[RegisteredClient] = []
        with session_scope(services.sessions) as session:
            for n in range(total_consents):
                apps.append(
                    register_client(
                        session,
                        services.settings,
                        services.digester,
                        name=f"Load App {n}",
                        redirect_uris=[REDIRECT],
                        notify_uri=receiver.uri,
                        scopes=[SCOPE, CLIENT_SCOPE],
                        grant_types=["authorization_code", "refresh_token", "client_credentials"],
                    )
                )
        server = GatewayProcess(
            ["serve", "--port", str(port), "--workers", str(args.workers)], environ, Path(tmp) / "gateway.log", port
        )
        server.start()
        stats = Stats()
        expected: collections.Counter[str] = collections.Counter()
        try:
            granter = Consents(services, server.base_url, apps[0])
            consents = [Consent(app, point_id) for app, point_id in zip(apps, point_ids, strict=True)]
            for consent in consents:
                Client(0, server.base_url, [], granter, stats, 0, expected).grant(consent)
            probe = requests.get(
                consents[0].month_url, headers={"Authorization": f"Bearer {consents[0].access_token}"}, timeout=60
            )
            if probe.status_code != 200:
                print(
                    f"ERROR: the month feed answered {probe.status_code} before the load (ESPI resource routes not "
                    f"mounted?): {consents[0].month_url}\n  {probe.text[:500]}",
                    file=sys.stderr,
                )
                return 1
            deadline = time.monotonic() + args.duration
            started = time.monotonic()
            clients = [
                Client(
                    i,
                    server.base_url,
                    consents[i * args.consents : (i + 1) * args.consents],
                    granter,
                    stats,
                    deadline,
                    expected,
                )
                for i in range(args.clients)
            ]
            for client in clients:
                client.start()
            for client in clients:
                client.join()
            elapsed = time.monotonic() - started
            # Every grant and revocation queued one BatchList for its app: wait for the outbox worker to drain.
            drain_deadline = time.monotonic() + 30
            while time.monotonic() < drain_deadline and any(
                receiver.count(url) < count for url, count in expected.items()
            ):
                time.sleep(0.5)
            time.sleep(1.0)
            received = receiver.snapshot()
            with services.engine.connect() as conn:
                outbox = conn.execute(
                    select(
                        OutboxMessage.kind, OutboxMessage.state, func.count(), func.max(OutboxMessage.last_error)
                    ).group_by(OutboxMessage.kind, OutboxMessage.state)
                ).all()
            log_tail = "\n".join(line for line in server.output().splitlines() if "gateway.access" not in line)[-3000:]
        finally:
            server.stop()
            receiver.stop()
            services.engine.dispose()
    total = sum(len(v) for v in stats.latency.values())
    server_errors = sum(
        count for counter in stats.statuses.values() for status, count in counter.items() if status >= 500
    )
    print(f"{'operation':<9} {'count':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  statuses")
    for kind in ("token", "feed", "status", "refresh", "revoke", "revoked", "grant"):
        values = stats.latency.get(kind)
        if not values:
            continue
        p50, p99 = percentile(values, 0.5) * 1000, percentile(values, 0.99) * 1000
        print(
            f"{kind:<9} {len(values):>7} {p50:>8.1f} {p99:>8.1f} {max(values) * 1000:>8.1f}  "
            f"{dict(sorted(stats.statuses[kind].items()))}"
        )
    everything = [v for values in stats.latency.values() for v in values]
    print(
        f"total: {total} requests in {elapsed:.1f} s ({total / elapsed:.0f}/s), p50 "
        f"{percentile(everything, 0.5) * 1000:.1f} ms, p99 {percentile(everything, 0.99) * 1000:.1f} ms, "
        f"5xx: {server_errors}, client errors: {len(stats.errors)}"
    )
    missing = sum(max(0, count - received.get(url, 0)) for url, count in expected.items())
    duplicates = sum(max(0, received.get(url, 0) - count) for url, count in expected.items())
    print(
        f"consents granted and revoked: {stats.revocations} revocations; BatchLists expected "
        f"{sum(expected.values())}, received {sum(received.get(url, 0) for url in expected)} "
        f"(missing {missing}, duplicated {duplicates})"
    )
    if missing or duplicates:
        print(f"  expected e.g. {sorted(expected)[:2]}, received e.g. {sorted(received)[:2]}")
        print(f"  outbox: {[tuple(row) for row in outbox]}")
        print(f"  gateway log (tail):\n{log_tail}")
    never_done = [kind for kind in WEIGHTS if not stats.statuses[kind][SUCCESS[kind]]]
    if never_done:
        print(f"  error: operations of the mix that never answered their success status: {', '.join(never_done)}")
    for error in stats.errors[:10]:
        print(f"  error: {error}")
    return 1 if server_errors or stats.errors or missing or duplicates or never_done else 0


if __name__ == "__main__":
    raise SystemExit(main())
