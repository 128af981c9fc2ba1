"""Benchmark: ESPI feeds over HTTP under gunicorn (issue "ESPI resource API", Done).

Targets, measured in the same run under the same gunicorn settings (2 sync workers on 127.0.0.1):

* a full-year 15-minute ``GET Batch/Subscription/{s}`` (35,040 readings, ~7 MB) takes ≤ 3x the time per byte of the
  *f-string floor*: a falcon app under the same gunicorn that reads the same readings with one raw sqlite3 query per
  request and formats them with the writer's own IntervalReading f-string (no ORM, no access checks, no Atom
  entries around them); server memory stays flat (the workers' peak RSS grows by less than 16 MB over repeated
  full-year feeds);
* a small authenticated ``GET Subscription/{s}/UsagePoint/{u}`` reaches ≥ 50 % of a falcon hello-world's
  requests/s (fresh connection per request, as bench_oauth.py).

The data is the shipped sample ``home_electricity_15min.xml`` imported into a fresh SQLite database; the customer's
token comes from the password grant of a self-access client (a customer token like any other). Rate limits are
turned off for the run (``GATEWAY_RATE_LIMIT_PER_SECOND=0``). Bounded in time (about a minute), 127.0.0.1 only.

    python bench/bench_feeds.py [--feeds 6] [--seconds 1.5] [--rounds 4] [--clients 4]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_oauth import WORKERS, free_port, gunicorn, hello_app, measure, running  # noqa: E402

FEED_TARGET = 3.0
USAGE_POINT_TARGET = 0.50
MEMORY_LIMIT_KB = 16 * 1024
SAMPLE = ROOT / "sample_data" / "home_electricity_15min.xml"
SCOPE = "FB=1_3_4_5_13_14_39;IntervalDuration=900;BlockDuration=daily;HistoryLength=13"

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


def prepare(tmp: Path, port: int) -> tuple[dict[str, str], str, str, str]:
    """Database with the sample imported for alice and a self-access client; returns env, token, batch, usage point."""
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
        registered = register_client(
            session,
            services.settings,
            services.digester,
            name="Alice's own",
            redirect_uris=["https://bench.example/cb"],
            scopes=[SCOPE],
            grant_types=["password", "refresh_token"],
            roles=[ClientRole.SELF_ACCESS],
            owner_customer_id=customer.id,
        )
        session.commit()
    services.engine.dispose()
    assert registered.client_secret is not None
    basic = "Basic " + base64.b64encode(f"{registered.client_id}:{registered.client_secret}".encode()).decode()
    return env, basic, "", ""


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


def workers_peak_rss_kb(port: int) -> int:
    """Sum of VmHWM (peak RSS) of the processes listening for gunicorn on ``port``'s master (its children)."""
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
    total = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            status = (proc / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields.get("PPid", "").strip() in masters and "VmHWM" in fields:
            total += int(fields["VmHWM"].split()[0])
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=6, help="full-year feeds fetched per server (default 6)")
    parser.add_argument("--seconds", type=float, default=1.5, help="seconds per throughput scenario and round")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved throughput rounds (median)")
    parser.add_argument("--clients", type=int, default=4, help="load-generating processes (default 4)")
    args = parser.parse_args()
    feeds = min(max(args.feeds, 2), 12)
    seconds = min(max(args.seconds, 0.5), 2.5)
    rounds = min(max(args.rounds, 1), 8)

    with tempfile.TemporaryDirectory() as tmp_name, ExitStack() as servers:
        tmp = Path(tmp_name)
        hello_port, floor_port, gateway_port = free_port(), free_port(), free_port()
        env, basic, _, _ = prepare(tmp, gateway_port)
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
        token = token_for(gateway_port, basic)
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        batch = token["resourceURI"].split(f"127.0.0.1:{gateway_port}", 1)[1]
        subscription = batch.rsplit("/", 1)[1]
        listing = timed_get(
            gateway_port, f"/DataCustodian/espi/1_1/resource/Subscription/{subscription}/UsagePoint", headers
        )
        del listing
        connection = http.client.HTTPConnection("127.0.0.1", gateway_port, timeout=30)
        connection.request(
            "GET", f"/DataCustodian/espi/1_1/resource/Subscription/{subscription}/UsagePoint", headers=headers
        )
        body = connection.getresponse().read().decode()
        connection.close()
        usage_point = body.split(f"/Subscription/{subscription}/UsagePoint/", 1)[1].split('"', 1)[0].split("/", 1)[0]
        point_path = f"/DataCustodian/espi/1_1/resource/Subscription/{subscription}/UsagePoint/{usage_point}"

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

        # -- 2. small authenticated GETs against hello-world.
        results: list[tuple[float, float]] = []
        with multiprocessing.Pool(args.clients) as pool:
            for number in range(rounds):
                common = {"seconds": seconds, "clients": args.clients, "warm_up": number == 0}
                hello = measure(pool, hello_port, "GET", "/hello", **common)
                point = measure(pool, gateway_port, "GET", point_path, headers=headers, **common)
                print(f"round {number + 1}: hello {hello:.0f}, UsagePoint {point:.0f} req/s", file=sys.stderr)
                results.append((hello, point))

    hello_rps = statistics.median(r[0] for r in results)
    point_rps = statistics.median(r[1] for r in results)
    point_ratio = statistics.median(r[1] / r[0] for r in results)
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
        f"(target >= {USAGE_POINT_TARGET:.0%})"
    )
    missed = feed_ratio > FEED_TARGET or point_ratio < USAGE_POINT_TARGET or growth > MEMORY_LIMIT_KB
    print("FAIL: a target was missed" if missed else "OK: all targets met")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
