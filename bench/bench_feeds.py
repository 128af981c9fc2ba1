"""Benchmark: ESPI feeds over HTTP under gunicorn (issue "ESPI resource API", Done).

Targets, measured in the same run under the same gunicorn settings (2 sync workers on 127.0.0.1):

* a full-year 15-minute ``GET Batch/Subscription/{s}`` (35,040 readings, ~7 MB) takes ≤ 3x the time per byte of the
  *f-string floor*: a falcon app under the same gunicorn that reads the same readings with one raw sqlite3 query per
  request and formats them with the writer's own IntervalReading f-string (no ORM, no access checks, no Atom
  entries around them); server memory stays flat (the workers' peak RSS grows by less than 16 MB over repeated
  full-year feeds);
* a small authenticated ``GET Subscription/{s}/UsagePoint/{u}`` reaches ≥ 50 % of a falcon hello-world's
  requests/s (fresh connection per request, as bench_oauth.py), with the per-client rate limit off
  (``GATEWAY_RATE_LIMIT_PER_SECOND=0``): the request itself.

The data is the shipped sample ``home_electricity_15min.xml`` imported into a fresh SQLite database; the customer's
token comes from the password grant of a self-access client (a customer token like any other). Bounded in time
(about a minute and a half), 127.0.0.1 only.

The same GET is also measured, without a target, on a second gateway server with the rate limit at its defaults (10
requests/s, bursts of 50, per OAuth client): the requests then rotate over self-access clients (each with its own
token and subscription), as many as make each one run at about half its limit (5 requests/s, from the rate of the
unlimited GET; at most ``--limited-clients``), as apps within their limits would. The gap between the two lines is
the limiter's share of a request (``429`` answers are counted and reported: if any, that line is not comparable).

    python bench/bench_feeds.py [--feeds 6] [--seconds 1.5] [--rounds 4] [--clients 4] [--limited-clients 500]
"""

from __future__ import annotations

import argparse
import base64
import functools
import http.client
import json
import math
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_oauth import WORKERS, free_port, gunicorn, hello_app, measure, running  # noqa: E402

FEED_TARGET = 3.0
USAGE_POINT_TARGET = 0.50
LIMITED_CLIENT_RATE = 5.0
"""Requests/s each client makes in the rate-limited scenario: half the default limit of 10."""
MEMORY_LIMIT_KB = 16 * 1024
SAMPLE = ROOT / "sample_data" / "home_electricity_15min.xml"
# No HistoryLength: it counts back from now, and the sample's year would fall partly outside it as time passes.
SCOPE = "FB=1_3_4_5_13_14_39;IntervalDuration=900;BlockDuration=daily"

__all__ = ["floor_app", "hello_app"]


def floor_app():  # type: ignore[no-untyped-def]
    """The floor: the same readings read per request with one raw sqlite3 query (no ORM, no checks, no entries),
    formatted with the writer's own IntervalReading f-string and streamed in 64 KiB chunks."""
    import sqlite3

    import falcon

    path = os.environ["BENCH_DATABASE_URL"].removeprefix("sqlite:///")
    open_tag = "      <espi:IntervalReading>"

    def body():  # type: ignore[no-untyped-def]
        connection = sqlite3.connect(path)
        try:
            cursor = connection.execute(
                "SELECT start, duration, value FROM interval_reading ORDER BY interval_block_id, start"
            )
            batch: list[str] = ['<?xml version="1.0" encoding="UTF-8"?>\n<feed>\n']
            size = 0
            while rows := cursor.fetchmany(4096):
                for start, duration, value in rows:
                    piece = (
                        f"{open_tag}<espi:timePeriod><espi:duration>{duration}</espi:duration><espi:start>{start}"
                        f"</espi:start></espi:timePeriod><espi:value>{value}</espi:value></espi:IntervalReading>\n"
                    )
                    batch.append(piece)
                    size += len(piece)
                if size >= 65536:
                    yield "".join(batch).encode()
                    batch.clear()
                    size = 0
            batch.append("</feed>\n")
            yield "".join(batch).encode()
        finally:
            connection.close()

    class Floor:
        def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
            resp.content_type = "application/atom+xml"
            resp.stream = body()

    app = falcon.App()
    app.add_route("/floor", Floor())
    app.add_route("/hello", Floor())
    return app


def prepare(tmp: Path, port: int, *, extra_clients: int = 0) -> tuple[dict[str, str], str, list[str]]:
    """Database with the sample imported for alice and self-access clients; returns env and their Basic headers
    (the first client's, then ``extra_clients`` more)."""
    from gateway.config import Settings
    from gateway.customers import add_customer
    from gateway.espi.ingest import import_feed
    from gateway.oauth.registration import register_client
    from gateway.services import Services
    from gateway.storage import migrate
    from gateway.storage.models import ClientRole

    env = {
        "GATEWAY_DATABASE_URL": f"sqlite:///{tmp / 'bench.sqlite3'}",
        "GATEWAY_VAR_DIR": str(tmp / "var"),
        "GATEWAY_SECRET_KEY": "bench-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
        "GATEWAY_BASE_URL": f"http://127.0.0.1:{port}",
        "GATEWAY_LOG_LEVEL": "WARNING",
        "GATEWAY_PASSWORD_TIME_COST": "1",
        "GATEWAY_PASSWORD_MEMORY_KIB": "8",
        "GATEWAY_RATE_LIMIT_PER_SECOND": "0",
    }
    services = Services.build(Settings.from_env(env))
    migrate.upgrade(services.engine)
    with services.sessions() as session:
        customer = add_customer(
            session, services.passwords, username="alice", email="alice@example.com", password="bench password 123"
        )
        import_feed(session, str(SAMPLE), customer=customer)
        basics: list[str] = []
        for number in range(1 + extra_clients):
            registered = register_client(
                session,
                services.settings,
                services.digester,
                name=f"Alice's own {number}",
                redirect_uris=["https://bench.example/cb"],
                scopes=[SCOPE],
                grant_types=["password", "refresh_token"],
                roles=[ClientRole.SELF_ACCESS],
                owner_customer_id=customer.id,
            )
            assert registered.client_secret is not None
            credentials = f"{registered.client_id}:{registered.client_secret}".encode()
            basics.append("Basic " + base64.b64encode(credentials).decode())
        session.commit()
    services.engine.dispose()
    return env, basics[0], basics[1:]


def token_for(port: int, basic: str) -> dict[str, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    form = urlencode({"grant_type": "password", "username": "alice", "password": "bench password 123", "scope": SCOPE})
    connection.request(
        "POST",
        "/oauth/token",
        body=form,
        headers={"Authorization": basic, "Content-Type": "application/x-www-form-urlencoded"},
    )
    response = connection.getresponse()
    body = json.loads(response.read())
    connection.close()
    if response.status != 200:
        raise RuntimeError(f"token request failed: {body}")
    return body  # type: ignore[no-any-return]


def usage_point_target(port: int, token: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The path of the token's usage point (``Subscription/{s}/UsagePoint/{u}``) and the headers to read it."""
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    subscription = token["resourceURI"].rsplit("/", 1)[1]
    collection = f"/DataCustodian/espi/1_1/resource/Subscription/{subscription}/UsagePoint"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", collection, headers=headers)
    body = connection.getresponse().read().decode()
    connection.close()
    usage_point = body.split(f"/Subscription/{subscription}/UsagePoint/", 1)[1].split('"', 1)[0].split("/", 1)[0]
    return f"{collection}/{usage_point}", headers


def _target_for(args: tuple[int, str]) -> tuple[str, dict[str, str]]:
    port, basic = args
    return usage_point_target(port, token_for(port, basic))


def _rotating_loop(args: tuple[int, list[tuple[str, dict[str, str]]], float]) -> tuple[int, int, int]:
    """One load process: a fresh connection per request, each to the next of ``targets``; (ok, limited, failed)."""
    port, targets, seconds = args
    ok = limited = failed = 0
    deadline = time.monotonic() + seconds
    number = 0
    while time.monotonic() < deadline:
        path, headers = targets[number % len(targets)]
        number += 1
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status == 200:
                ok += 1
            elif response.status == 429:
                limited += 1
            else:
                failed += 1
        except OSError:
            failed += 1
        finally:
            connection.close()
    return ok, limited, failed


def measure_rotating(
    pool: Any, port: int, targets: list[tuple[str, dict[str, str]]], *, seconds: float, clients: int, warm_up: bool
) -> tuple[float, int]:
    """Requests/s of successful GETs spread over ``targets`` (each load process its own share), and 429s seen."""
    shares = [targets[number::clients] for number in range(clients)]
    if warm_up:
        pool.map(_rotating_loop, [(port, share, 0.5) for share in shares])
    started = time.monotonic()
    results = pool.map(_rotating_loop, [(port, share, seconds) for share in shares])
    elapsed = time.monotonic() - started
    failed = sum(result[2] for result in results)
    if failed:
        raise RuntimeError(f"{failed} requests to the rate-limited gateway failed")
    return sum(result[0] for result in results) / elapsed, sum(result[1] for result in results)


def timed_get(port: int, path: str, headers: dict[str, str]) -> tuple[float, int]:
    """One GET, fully read: (seconds, bytes)."""
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    size = 0
    while chunk := response.read(1 << 16):
        size += len(chunk)
    connection.close()
    if response.status != 200:
        raise RuntimeError(f"GET {path} answered {response.status}")
    return time.perf_counter() - started, size


def _workers(port: int) -> list[Path]:
    """The ``/proc`` entries of the gunicorn workers serving ``port`` (children of its master)."""
    masters = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "gunicorn" in cmdline and f"127.0.0.1:{port}" in cmdline:
            masters.append(proc.name)
    workers = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            status = (proc / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields.get("PPid", "").strip() in masters:
            workers.append(proc)
    return workers


def workers_peak_rss_kb(port: int) -> int:
    """Sum of VmHWM (peak RSS) of the processes listening for gunicorn on ``port``'s master (its children)."""
    total = 0
    for proc in _workers(port):
        fields = dict(line.split(":", 1) for line in (proc / "status").read_text().splitlines() if ":" in line)
        total += int(fields.get("VmHWM", "0 kB").split()[0])
    return total


def workers_cpu_seconds(workers: list[Path]) -> float:
    """User + system CPU seconds the ``workers`` used so far (``/proc/<pid>/stat`` fields 14 and 15)."""
    ticks = 0
    for proc in workers:
        fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def cpu_per_request(workers: list[Path], run: Callable[[], float]) -> tuple[float, float]:
    """``run()``'s requests/s and the server's CPU seconds per request meanwhile: unlike a throughput ratio, the
    latter barely moves when other programs load a shared machine."""
    before = workers_cpu_seconds(workers)
    started = time.monotonic()
    rps = run()
    requests = rps * (time.monotonic() - started)
    return rps, (workers_cpu_seconds(workers) - before) / max(requests, 1.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=6, help="full-year feeds fetched per server (default 6)")
    parser.add_argument("--seconds", type=float, default=1.5, help="seconds per throughput scenario and round")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved throughput rounds (median)")
    parser.add_argument("--clients", type=int, default=4, help="load-generating processes (default 4)")
    parser.add_argument(
        "--limited-clients", type=int, default=500, help="OAuth clients the rate-limited GETs rotate over"
    )
    args = parser.parse_args()
    feeds = min(max(args.feeds, 2), 12)
    seconds = min(max(args.seconds, 0.5), 2.5)
    rounds = min(max(args.rounds, 1), 8)
    limited_clients = min(max(args.limited_clients, args.clients), 2000)

    with tempfile.TemporaryDirectory() as tmp_name, ExitStack() as servers:
        tmp = Path(tmp_name)
        hello_port, floor_port, gateway_port, limited_port = free_port(), free_port(), free_port(), free_port()
        env, basic, extra_basics = prepare(tmp, gateway_port, extra_clients=limited_clients)
        # The same database behind a second gateway whose rate limit is at its defaults (one bucket per client).
        limited_env = {name: value for name, value in env.items() if not name.startswith("GATEWAY_RATE_LIMIT")} | {
            "GATEWAY_BASE_URL": f"http://127.0.0.1:{limited_port}"
        }
        servers.enter_context(
            running(gunicorn("bench.bench_oauth:hello_app()", hello_port), {}, hello_port, "/hello", tmp / "h.log")
        )
        servers.enter_context(
            running(
                gunicorn("bench.bench_feeds:floor_app()", floor_port),
                {"BENCH_DATABASE_URL": env["GATEWAY_DATABASE_URL"]},
                floor_port,
                "/hello",
                tmp / "floor.log",
            )
        )
        servers.enter_context(
            running(gunicorn("gateway.wsgi:app", gateway_port), env, gateway_port, "/healthz", tmp / "gw.log")
        )
        servers.enter_context(
            running(
                gunicorn("gateway.wsgi:app", limited_port), limited_env, limited_port, "/healthz", tmp / "limited.log"
            )
        )
        token = token_for(gateway_port, basic)
        batch = token["resourceURI"].split(f"127.0.0.1:{gateway_port}", 1)[1]
        point_path, headers = usage_point_target(gateway_port, token)

        # -- 1. the full-year feed against the floor, interleaved; memory before and after.
        timed_get(gateway_port, batch, headers)
        timed_get(floor_port, "/floor", {})
        rss_before = workers_peak_rss_kb(gateway_port)
        gateway_times: list[float] = []
        floor_times: list[float] = []
        gateway_bytes = floor_bytes = 0
        for _ in range(feeds):
            elapsed, gateway_bytes = timed_get(gateway_port, batch, headers)
            gateway_times.append(elapsed)
            elapsed, floor_bytes = timed_get(floor_port, "/floor", {})
            floor_times.append(elapsed)
        rss_after = workers_peak_rss_kb(gateway_port)
        gateway_feed = statistics.median(gateway_times)
        floor_feed = statistics.median(floor_times)
        # Normalise per byte: the floor writes the readings only, the gateway the whole feed around them.
        feed_ratio = (gateway_feed / gateway_bytes) / (floor_feed / floor_bytes)

        # -- 2. small authenticated GETs against hello-world; the same GETs under the default rate limit.
        results: list[tuple[float, float, float]] = []
        refused = 0
        active_clients: list[int] = []
        cpu: list[tuple[float, float]] = []
        hello_workers, gateway_workers = _workers(hello_port), _workers(gateway_port)
        with multiprocessing.Pool(args.clients) as pool:
            targets = pool.map(_target_for, [(limited_port, extra) for extra in extra_basics])
            for number in range(rounds):
                common = {"seconds": seconds, "clients": args.clients, "warm_up": number == 0}
                hello, hello_cpu = cpu_per_request(
                    hello_workers, functools.partial(measure, pool, hello_port, "GET", "/hello", **common)
                )
                point, point_cpu = cpu_per_request(
                    gateway_workers,
                    functools.partial(measure, pool, gateway_port, "GET", point_path, headers=headers, **common),
                )
                if number > 0:  # the first round's CPU includes its warm-up
                    cpu.append((hello_cpu, point_cpu))
                # Each client at about half its limit: few enough that a worker's leases get used (see module doc).
                active = targets[: min(len(targets), max(args.clients, math.ceil(point / LIMITED_CLIENT_RATE)))]
                limited, limited_refused = measure_rotating(pool, limited_port, active, **common)
                active_clients.append(len(active))
                refused += limited_refused
                print(
                    f"round {number + 1}: hello {hello:.0f}, UsagePoint {point:.0f}, "
                    f"with the rate limit {limited:.0f} req/s ({limited_refused} refused)",
                    file=sys.stderr,
                )
                results.append((hello, point, limited))

    hello_rps = statistics.median(r[0] for r in results)
    point_rps = statistics.median(r[1] for r in results)
    point_ratio = statistics.median(r[1] / r[0] for r in results)
    limited_rps = statistics.median(r[2] for r in results)
    limited_ratio = statistics.median(r[2] / r[0] for r in results)
    limiter_share = 1 - statistics.median(r[2] / r[1] for r in results)
    growth = rss_after - rss_before
    print(f"gunicorn, {WORKERS} sync workers; feeds: median of {feeds}; throughput: median of {rounds} rounds")
    print(
        f"Batch/Subscription full year   {gateway_feed * 1000:8.0f} ms  {gateway_bytes / 1e6:6.2f} MB  "
        f"({gateway_bytes / gateway_feed / 1e6:5.1f} MB/s)"
    )
    print(
        f"f-string floor                 {floor_feed * 1000:8.0f} ms  {floor_bytes / 1e6:6.2f} MB  "
        f"({floor_bytes / floor_feed / 1e6:5.1f} MB/s)"
    )
    print(f"per-byte ratio                 {feed_ratio:8.2f} x   (target <= {FEED_TARGET:.0f} x)")
    print(f"workers' peak RSS growth       {growth / 1024:8.1f} MB  (target < {MEMORY_LIMIT_KB / 1024:.0f} MB)")
    print(f"hello-world                    {hello_rps:8.0f} req/s")
    print(
        f"GET UsagePoint (bearer, grant) {point_rps:8.0f} req/s  {point_ratio:6.1%}  "
        f"(target >= {USAGE_POINT_TARGET:.0%}; rate limit off)"
    )
    if cpu:
        hello_cpu = statistics.median(c[0] for c in cpu)
        point_cpu = statistics.median(c[1] for c in cpu)
        print(
            f"  server CPU per request       {point_cpu * 1e6:8.0f} µs  (hello-world {hello_cpu * 1e6:.0f} µs; "
            "steadier than req/s on a busy machine)"
        )
    clients = statistics.median(active_clients)
    print(
        f"  with the default rate limit  {limited_rps:8.0f} req/s  {limited_ratio:6.1%}  "
        f"(the limiter's share {limiter_share:.0%}; {clients:.0f} clients at ~{limited_rps / clients:.1f} req/s each, "
        f"{refused} refused)"
    )
    if refused:
        print("  (429s: clients outran their limit, so that line is not comparable; rerun with more --limited-clients)")
    missed = feed_ratio > FEED_TARGET or point_ratio < USAGE_POINT_TARGET or growth > MEMORY_LIMIT_KB
    print("FAIL: a target was missed" if missed else "OK: all targets met")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
