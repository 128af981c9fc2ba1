"""Scale: feed latency must stay flat as the reading table grows from 10 to 1,000+ meter-years (PostgreSQL).

    python bench/bench_scale.py [--stages 10,100,1000] [--requests 15] [--workers N] [--postgres-url URL]

Loads usage points with a year of 15-minute readings each (35,040; daily IntervalBlocks) into PostgreSQL with COPY,
one customer per usage point, and after each stage measures against a real ``gateway serve`` on 127.0.0.1:

- ``month``: ``GET Subscription/{s}/UsagePoint/{u}/MeterReading/{m}/IntervalBlock`` with ``published-min/max`` over
  one month (30 blocks, 2,880 readings),
- ``year``: ``GET Batch/Subscription/{s}`` for one usage point (365 blocks, 35,040 readings),

each on five usage points picked at random over everything loaded so far (a fresh consent each, through the real
authorization-code flow), sequentially, median and p95 of ``--requests`` runs after a warm-up. It prints the ratio of
each stage to the first one (the target: at most 1.5), the bytes per stored reading, the COPY rate, and feeds per
second per core with one client per worker.

Flatness is judged twice, per kind, and the run exits 1 when either ratio exceeds ``--max-ratio``:

- **server CPU time** per request (the gateway workers plus PostgreSQL's client backends, from /proc), mean of the
  stage's requests: it grows only if a request does more work as the tables grow, whoever else shares the host;
- **calibrated wall time**: each timed request is followed by a fixed CPU task (an lxml serialisation of a month of
  readings) that measures how fast the host is at that moment. The ``--requests`` of a stage come in one group per
  sampled usage point (``--requests`` // 5 each, at least one); a group's figure is its median wall time divided by
  the median calibration timed alongside it, and the stage's figure is its **best group** (the lowest). Other jobs on
  a shared host (CI runners, a small shared VM) only ever add time, so the least disturbed group is the closest to the
  request's own cost; the median drops a stray slow request within a group, and dividing by the calibration of the
  same group cancels a change of load between groups and between stages. A request that really slows down as the
  tables grow does so in every group, the best one included.

The raw wall-time median ratio and the host's load average are printed too, not judged. The run also exits 1 when
there is nothing to judge: a single stage (no ratio), or a feed answering anything but 200 (a 404 when the ESPI
resource routes are not mounted), which stops the run at once. Everything runs on 127.0.0.1; without
``--postgres-url`` a throwaway cluster is started (Debian's ``postgresql`` package).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import datetime as dt
import hashlib
import io
import os
import random
import secrets
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from sqlalchemy import Engine, insert, select, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.config import Settings  # noqa: E402
from gateway.consent.lifecycle import TERMS_VERSION, DecisionContext, record_grant  # noqa: E402
from gateway.oauth.authorize import AuthorizationRequests  # noqa: E402
from gateway.oauth.registration import RegisteredClient, register_client  # noqa: E402
from gateway.services import Services  # noqa: E402
from gateway.storage import migrate  # noqa: E402
from gateway.storage.engine import session_scope  # noqa: E402
from gateway.storage.models import (  # noqa: E402
    IntervalBlock,
    MeterReading,
    ReadingType,
    RetailCustomer,
    UsagePoint,
    interval_reading_table,
)
from gateway.storage.oauth import PendingAuthorizationRequest  # noqa: E402
from tests.support.server import GatewayProcess, free_port  # noqa: E402

READINGS_PER_DAY = 96
DAYS = 365
SECRET_KEY = "bench-scale-secret-key-0123456789abcdefghijklmnop"
SCOPE = "FB=1_3_4_5_13_14_39;IntervalDuration=900;BlockDuration=daily"
REDIRECT = "https://bench.example.com/callback"
RESOURCE = "/DataCustodian/espi/1_1/resource"
SAMPLE_POINTS = 5
# The year of data ends at last midnight (UTC), so it lies inside the consent's 13-month history.
YEAR_END = int(dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp())


# ---------------------------------------------------------------------------------------------------------------
# Loading


class Loader:
    """Grows the database one stage at a time: customers, usage points, meter readings, blocks, then COPY readings."""

    def __init__(self, engine: Engine, *, days: int = DAYS) -> None:
        self.engine = engine
        self.days = days
        self.loaded = 0
        self.copy_seconds = 0.0
        now = dt.datetime.now(dt.UTC)
        with engine.begin() as conn:
            self.reading_type_id = conn.execute(
                insert(ReadingType).returning(ReadingType.id),
                [
                    {
                        "uuid": uuid.uuid4(),
                        "uom": 72,
                        "power_of_ten_multiplier": 0,
                        "interval_length": 900,
                        "accumulation_behaviour": 4,
                        "commodity": 1,
                        "flow_direction": 1,
                        "kind": 12,
                        "currency": 840,
                        "published": now,
                        "updated": now,
                    }
                ],
            ).scalar_one()

    def grow_to(self, total: int, *, per_transaction: int = 10) -> None:
        while self.loaded < total:
            count = min(per_transaction, total - self.loaded)
            self._load(range(self.loaded, self.loaded + count))
            self.loaded += count
            if self.loaded % 100 == 0 or self.loaded == total:
                print(f"  loaded {self.loaded} usage points", file=sys.stderr, flush=True)

    def _load(self, numbers: range) -> None:
        now = dt.datetime.now(dt.UTC)
        with self.engine.begin() as conn:
            customer_ids = (
                conn.execute(
                    insert(RetailCustomer).returning(RetailCustomer.id, sort_by_parameter_order=True),
                    [
                        {
                            "uuid": uuid.uuid4(),
                            "username": f"meter{n:06d}",
                            "email": f"meter{n}@example.com",
                            "is_active": True,
                            "password_changed_at": now,
                            "published": now,
                            "updated": now,
                        }
                        for n in numbers
                    ],
                )
                .scalars()
                .all()
            )
            point_ids = (
                conn.execute(
                    insert(UsagePoint).returning(UsagePoint.id, sort_by_parameter_order=True),
                    [
                        {
                            "uuid": uuid.uuid4(),
                            "customer_id": customer_id,
                            "service_kind": 0,
                            "status": 1,
                            "published": now,
                            "updated": now,
                        }
                        for customer_id in customer_ids
                    ],
                )
                .scalars()
                .all()
            )
            reading_ids = (
                conn.execute(
                    insert(MeterReading).returning(MeterReading.id, sort_by_parameter_order=True),
                    [
                        {
                            "uuid": uuid.uuid4(),
                            "usage_point_id": point_id,
                            "reading_type_id": self.reading_type_id,
                            "published": now,
                            "updated": now,
                        }
                        for point_id in point_ids
                    ],
                )
                .scalars()
                .all()
            )
            blocks = conn.execute(
                insert(IntervalBlock).returning(IntervalBlock.id, IntervalBlock.start, sort_by_parameter_order=True),
                [
                    {
                        "uuid": uuid.uuid4(),
                        "meter_reading_id": reading_id,
                        "start": YEAR_END - (self.days - day) * 86_400,
                        "duration": 86_400,
                        "published": now,
                        "updated": now,
                    }
                    for reading_id in reading_ids
                    for day in range(self.days)
                ],
            ).all()
            buffer = io.StringIO()
            for block_id, block_start in blocks:
                wobble = block_id % 97
                for q in range(READINGS_PER_DAY):
                    value = 150 + (q * 37 + wobble * 11) % 900
                    buffer.write(f"{block_id}\t900\t{block_start + q * 900}\t{value}\t{value * 13}\n")
            started = time.perf_counter()
            if self.engine.dialect.name == "postgresql":
                raw = conn.connection.driver_connection
                with (
                    raw.cursor() as cursor,
                    cursor.copy(  # type: ignore[union-attr]
                        "COPY interval_reading (interval_block_id, duration, start, value, cost) FROM STDIN"
                    ) as copy,
                ):
                    copy.write(buffer.getvalue())
            else:  # SQLite has no COPY: Core executemany in batches
                names = ("interval_block_id", "duration", "start", "value", "cost")
                rows = [
                    dict(zip(names, map(int, line.split("\t")), strict=True)) for line in buffer.getvalue().splitlines()
                ]
                for offset in range(0, len(rows), 10_000):
                    conn.execute(insert(interval_reading_table), rows[offset : offset + 10_000])
            self.copy_seconds += time.perf_counter() - started

    def bytes_per_reading(self) -> float:
        with self.engine.connect() as conn:
            conn.execute(text("ANALYZE interval_reading"))
            size = conn.execute(
                text("SELECT pg_total_relation_size('interval_reading') + pg_total_relation_size('interval_block')")
            ).scalar_one()
        return float(size) / (self.loaded * self.days * READINGS_PER_DAY)


# ---------------------------------------------------------------------------------------------------------------
# Consents and requests (the part that needs the ESPI resource routes)


class Consents:
    """Grants consents through the real authorization-code flow: HTTP for OAuth, the customer's decision in-process
    (what the consent screen does after the customer clicks "authorize")."""

    def __init__(self, services: Services, base_url: str, client: RegisteredClient) -> None:
        self.services = services
        self.base_url = base_url
        self.client = client

    def grant(self, usage_point_id: int) -> tuple[str, str, str]:
        """A consent over one usage point: (access token, Batch/Subscription URL, month IntervalBlock URL)."""
        body, batch, month = self.grant_full(usage_point_id)
        return str(body["access_token"]), batch, month

    def grant_full(
        self, usage_point_id: int, client: RegisteredClient | None = None
    ) -> tuple[dict[str, Any], str, str]:
        """A consent of ``client`` (default: the bench app) over one usage point: (token response, Batch URL,
        month IntervalBlock URL)."""
        client = client or self.client
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
        query = urlencode(
            {
                "response_type": "code",
                "client_id": client.client_id,
                "redirect_uri": REDIRECT,
                "scope": SCOPE,
                "state": "bench",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        handoff = requests.get(f"{self.base_url}/oauth/authorize?{query}", allow_redirects=False, timeout=30)
        request_id = parse_qs(urlsplit(handoff.headers["Location"]).query)["request"][0]
        with session_scope(self.services.sessions) as session:
            point = session.get(UsagePoint, usage_point_id)
            assert point is not None
            customer = session.get(RetailCustomer, point.customer_id)
            requests_ = AuthorizationRequests.from_services(self.services)
            location = requests_.approve(session, request_id, customer, [usage_point_id])  # type: ignore[arg-type]
            # What the consent screen does next: the consent record, its events, the mails and the app's BatchList.
            record_grant(
                session,
                self.services.settings,
                pending=session.get(PendingAuthorizationRequest, request_id),  # type: ignore[arg-type]
                customer=customer,  # type: ignore[arg-type]
                context=DecisionContext(),
                terms_version=TERMS_VERSION,
            )
            meter_reading_id = session.scalar(
                select(MeterReading.id).where(MeterReading.usage_point_id == usage_point_id)
            )
        code = parse_qs(urlsplit(location).query)["code"][0]
        token = requests.post(
            f"{self.base_url}/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT,
                "code_verifier": verifier,
            },
            auth=(client.client_id, client.client_secret),
            timeout=30,
        )
        token.raise_for_status()
        body = token.json()
        batch = f"{self.base_url}{urlsplit(body['resourceURI']).path}"
        subscription = batch.rsplit("/", 1)[1]
        month_end = YEAR_END - 86_400 * 5
        month_start = month_end - 30 * 86_400

        def iso(epoch: int) -> str:
            return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

        month = (
            f"{self.base_url}{RESOURCE}/Subscription/{subscription}/UsagePoint/{usage_point_id}/MeterReading/"
            f"{meter_reading_id}/IntervalBlock?"
            + urlencode({"published-min": iso(month_start), "published-max": iso(month_end)})
        )
        return body, batch, month


def timed_get(http: requests.Session, url: str, token: str) -> tuple[float, int, int]:
    started = time.perf_counter()
    response = http.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=120)
    body = response.content
    return time.perf_counter() - started, response.status_code, len(body)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime


def _parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def postmaster_of(engine: Engine) -> int | None:
    """The pid of the PostgreSQL server the bench loads (the parent of one of its backends); None if not local."""
    with engine.connect() as conn:
        backend = int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
    try:
        return _parent_of(backend)
    except (OSError, ValueError, IndexError):
        return None


def server_cpu(master: int, postmaster: int | None) -> dict[int, float]:
    """CPU seconds used so far, per process, by the gateway's workers (children of ``master``) and the client
    backends of the bench's PostgreSQL server (children of ``postmaster``), from Linux /proc.

    Unlike wall time this does not grow when other jobs share the host, so it shows whether a request does more
    work as the tables grow. Only this server's backends count: other PostgreSQL servers on 127.0.0.1 (test
    sessions on a shared host) come and go. The bench's own connections are idle while a request is timed.
    """
    used: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            worker = parent == master
            backend = (
                postmaster is not None
                and parent == postmaster
                and stat.split(" ", 2)[1] == "(postgres)"
                and b"127.0.0.1(" in (entry / "cmdline").read_bytes()
            )
            if worker or backend:
                used[int(entry.name)] = _cpu_of(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return used


def cpu_between(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used between two :func:`server_cpu` snapshots.

    Counted per process, so a process that exits in between (a pool closing a connection) loses only its share of
    the interval instead of taking all its past CPU off the total (which made a request's CPU negative); one that
    starts in between counts whole.
    """
    return sum(max(0.0, seconds - before.get(pid, 0.0)) for pid, seconds in after.items())


def _calibration_document() -> Any:
    from lxml import etree

    root = etree.Element("{http://naesb.org/espi}IntervalBlock")
    for n in range(2_880):
        reading = etree.SubElement(root, "{http://naesb.org/espi}IntervalReading")
        etree.SubElement(reading, "{http://naesb.org/espi}start").text = str(1_700_000_000 + n * 900)
        etree.SubElement(reading, "{http://naesb.org/espi}value").text = str(n * 7 % 1000)
    return root


_CALIBRATION = _calibration_document()


def calibrate() -> float:
    """Seconds for a fixed CPU task like the server's (serialising a month of readings): how busy the host is.

    The host may be shared (CI, other jobs): latency ratios are divided by the calibration ratio measured alongside
    them, so a busier machine at one stage does not pass for a slower database.
    """
    from lxml import etree

    started = time.perf_counter()
    etree.tostring(_CALIBRATION)
    etree.tostring(_CALIBRATION)
    return time.perf_counter() - started


@dataclasses.dataclass
class StageResult:
    """Per kind: latency (median, p95, body bytes), server CPU seconds per request, and the calibrated wall time of
    the best group (median wall time over median calibration, no unit: see the module docstring); the stage's
    calibration median and the host's load average."""

    latency: dict[str, tuple[float, float, int]]
    cpu: dict[str, float]
    calibrated: dict[str, float]
    calibration: float
    load: float


def measure_latency(
    consents: Consents, point_ids: list[int], runs: int, master: int, postmaster: int | None
) -> StageResult:
    """Latency, CPU and calibrated wall time per kind, over SAMPLE_POINTS random points (one group of runs each).

    Raises:
        SystemExit: a feed answered anything but 200 (the ESPI resource routes must be mounted): no figure to judge.
    """
    picked = random.sample(point_ids, min(SAMPLE_POINTS, len(point_ids)))
    samples: dict[str, list[float]] = {"month": [], "year": []}
    calibration: list[float] = []
    cpu: dict[str, list[float]] = {"month": [], "year": []}
    groups: dict[str, list[float]] = {"month": [], "year": []}
    sizes: dict[str, int] = {}
    with requests.Session() as http:
        for point_id in picked:
            token, batch, month = consents.grant(point_id)
            for kind, url in (("month", month), ("year", batch)):
                seconds, status, size = timed_get(http, url, token)
                if status != 200:
                    raise SystemExit(
                        f"bench_scale: {url} answered {status}; the feeds must answer 200 (a 404: the ESPI resource "
                        "routes are not mounted). No latency measured: the run fails."
                    )
                sizes[kind] = size
                timed_get(http, url, token)  # a second untimed run: this point's pages are now as warm as any
                walls: list[float] = []
                calibrations: list[float] = []
                for _ in range(max(1, runs // len(picked))):
                    used = server_cpu(master, postmaster)
                    seconds, status, _size = timed_get(http, url, token)
                    cpu[kind].append(cpu_between(used, server_cpu(master, postmaster)))
                    walls.append(seconds)
                    calibrations.append(calibrate())
                samples[kind] += walls
                calibration += calibrations
                groups[kind].append(statistics.median(walls) / statistics.median(calibrations))
    return StageResult(
        latency={kind: (statistics.median(v), percentile(v, 0.95), sizes[kind]) for kind, v in samples.items()},
        cpu={kind: statistics.fmean(v) for kind, v in cpu.items()},
        calibrated={kind: min(v) for kind, v in groups.items()},
        calibration=statistics.median(calibration),
        load=os.getloadavg()[0],
    )


def measure_throughput(consents: Consents, point_ids: list[int], clients: int, seconds: float) -> dict[str, float]:
    """Requests per second with ``clients`` concurrent clients, for each kind."""
    grants = [consents.grant(point_id) for point_id in random.sample(point_ids, min(clients, len(point_ids)))]
    rates: dict[str, float] = {}
    for kind in ("month", "year"):
        done = [0] * clients
        stop = time.monotonic() + seconds

        def run(index: int, kind: str = kind, stop: float = stop, done: list[int] = done) -> None:
            token, batch, month = grants[index % len(grants)]
            url = month if kind == "month" else batch
            with requests.Session() as http:
                while time.monotonic() < stop:
                    _, status, _ = timed_get(http, url, token)
                    if status == 200:
                        done[index] += 1

        threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        rates[kind] = sum(done) / (time.monotonic() - started)
    return rates


# ---------------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def postgres(url: str | None, *, skip: bool = False) -> Iterator[str]:
    """``url``, or a throwaway cluster's database for the length of the block ("" when ``skip``)."""
    if skip:
        yield ""
        return
    if url:
        yield url
        return
    from tests.support.postgres import PostgresCluster, find_postgres_bin

    bin_dir = find_postgres_bin()
    if bin_dir is None:
        raise SystemExit("no PostgreSQL server binaries (apt-get install postgresql) and no --postgres-url")
    cluster = PostgresCluster(bin_dir)
    cluster.start()
    try:
        yield cluster.create_database("bench_scale")
    finally:
        cluster.destroy()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stages", default="10,100,1000", help="usage point counts to measure at (ascending)")
    parser.add_argument("--requests", type=int, default=15, help="timed requests per kind per stage")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="gunicorn workers")
    parser.add_argument("--throughput-seconds", type=float, default=10.0)
    parser.add_argument("--max-ratio", type=float, default=1.5)
    parser.add_argument("--postgres-url")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    random.seed(args.seed)
    stages = [int(part) for part in args.stages.split(",")]
    cores = os.cpu_count() or 1
    print(f"bench_scale: stages {stages}, {args.workers} sync worker(s), {cores} core(s), PostgreSQL via COPY")
    with postgres(args.postgres_url) as database_url, tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        environ = {
            "GATEWAY_DATABASE_URL": database_url,
            "GATEWAY_VAR_DIR": tmp,
            "GATEWAY_SECRET_KEY": SECRET_KEY,
            "GATEWAY_BASE_URL": f"http://127.0.0.1:{port}",
            "GATEWAY_PASSWORD_TIME_COST": "1",
            "GATEWAY_PASSWORD_MEMORY_KIB": "8",
            "GATEWAY_LOG_LEVEL": "WARNING",
            # The bench measures serving, not the per-client rate limit (read when the settings carry it).
            "GATEWAY_RATE_LIMIT_PER_SECOND": "0",
        }
        services = Services.build(Settings.from_env(environ))
        migrate.upgrade(services.engine)
        with session_scope(services.sessions) as session:
            client = register_client(
                session,
                services.settings,
                services.digester,
                name="Bench App",
                redirect_uris=[REDIRECT],
                scopes=[SCOPE],
                grant_types=["authorization_code", "refresh_token"],
            )
        loader = Loader(services.engine)
        server = GatewayProcess(
            ["serve", "--port", str(port), "--workers", str(args.workers), "--no-worker"],
            environ,
            Path(tmp) / "gateway.log",
            port,
        )
        server.start()
        consents = Consents(services, server.base_url, client)
        results: list[tuple[int, StageResult, float]] = []
        try:
            postmaster = postmaster_of(services.engine)
            if postmaster is None:
                print("  PostgreSQL is not on this host: server CPU counts the gateway's workers only", file=sys.stderr)
            for stage in stages:
                loader.grow_to(stage)
                per_reading = loader.bytes_per_reading()
                with services.engine.connect() as conn:
                    point_ids = list(conn.execute(select(UsagePoint.id)).scalars())
                latency = measure_latency(
                    consents,
                    point_ids,
                    args.requests,
                    server.process.pid,  # type: ignore[union-attr]
                    postmaster,
                )
                results.append((stage, latency, per_reading))
                readings = stage * DAYS * READINGS_PER_DAY
                line = f"{stage:>6} usage points ({readings:>11,} readings, {per_reading:5.1f} bytes/reading)"
                for kind, (median, p95, size) in latency.latency.items():
                    line += (
                        f"\n      {kind}: median {median * 1000:7.1f} ms, p95 {p95 * 1000:7.1f} ms, "
                        f"server CPU {latency.cpu[kind] * 1000:6.1f} ms/request, "
                        f"best group {latency.calibrated[kind]:6.1f} calibrations ({size:,} B)"
                    )
                line += f"\n       calibration {latency.calibration * 1000:.1f} ms, load {latency.load:.1f}"
                print(line, flush=True)
            copy_rate = loader.loaded * DAYS * READINGS_PER_DAY / loader.copy_seconds
            print(f"COPY: {copy_rate:,.0f} readings/s into interval_reading (one client, primary key index in place)")
            throughput = measure_throughput(consents, point_ids, args.workers, args.throughput_seconds)
        finally:
            server.stop()
            services.engine.dispose()
    failed = False
    base = results[0][1]
    for stage, latency, _ in results[1:]:
        busier = latency.calibration / base.calibration
        raw = {kind: latency.latency[kind][0] / base.latency[kind][0] for kind in base.latency}
        cpu = {kind: latency.cpu[kind] / base.cpu[kind] for kind in base.cpu}
        wall = {kind: latency.calibrated[kind] / base.calibrated[kind] for kind in base.calibrated}
        above = [
            f"{kind} {measure}"
            for kind in base.latency
            for measure, ratios in (("server CPU", cpu), ("calibrated wall", wall))
            if ratios[kind] > args.max_ratio
        ]
        failed |= bool(above)
        print(
            f"ratio {stage} vs {stages[0]}: "
            + ", ".join(
                f"{kind} server CPU {cpu[kind]:.2f}x, calibrated wall {wall[kind]:.2f}x (raw median {raw[kind]:.2f}x)"
                for kind in base.latency
            )
            + f"; host {busier:.2f}x as busy"
            + (f"  ABOVE {args.max_ratio}x: {', '.join(above)}" if above else "")
        )
    if len(results) < 2:
        print(f"only one stage ({stages[0]}): no ratio to judge", file=sys.stderr)
        failed = True
    if throughput:
        print(
            f"throughput with {args.workers} concurrent client(s) on {cores} core(s), client on the same host: "
            + ", ".join(f"{kind} {rate:.1f}/s ({rate / cores:.1f}/s per core)" for kind, rate in throughput.items())
        )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
