"""A gunicorn worker killed (SIGKILL) mid-upload leaves no partial data, the master replaces it, and a retry succeeds.

``POST Batch/RetailCustomer/{c}/UsagePoint`` imports the whole feed in the request's one transaction
(``gateway.resources.retail_customer``): readings, blocks and the BatchList pushes they call for commit together when
the request ends, or not at all. The test sends a four-meter-year feed (~29 MB) with an upload token and kills the
worker that accepted the connection (found through the master's children in ``/proc`` and the socket they hold) at
two moments:

- ``mid-body``: half the body sent (the worker is still reading it);
- ``mid-import``: the whole body sent and the import visibly writing (SQLite's write-ahead log, or PostgreSQL's
  ``interval_reading`` relation, has grown by :data:`WRITTEN_BYTES`), as ``test_import_killed.py`` does for the CLI.

The feed extends data the customer already has and an app's consent covers, so a completed upload would add an outbox
row (the app's BatchList): after the kill no reading, block or outbox row was added; after the retry all were.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import Engine, func, select, text
from sqlalchemy.engine import make_url

from gateway.customers import add_customer
from gateway.oauth.registration import register_client
from gateway.storage.application import ClientRole
from gateway.storage.engine import session_scope
from gateway.storage.models import IntervalBlock, MeterReading, UsagePoint, interval_reading_table
from gateway.storage.outbox import OutboxMessage
from tests.conftest import EmptyDatabases
from tests.faults.consents import client_token, grant_consent, register_app
from tests.faults.feeds import write_feed
from tests.faults.live import Served, serve
from tests.multinode.receiver import BatchListReceiver
from tests.support.live_gateway import CLIENT_SCOPE

METERS = 4
SMALL_DAYS, BIG_DAYS = 3, 365
SEED = 5
"""The small and the big feed share their seed: the big one is the small one plus 362 more days on each meter."""
WRITTEN_BYTES = {"sqlite": 1 << 20, "postgresql": 4 << 20}
"""Kill once the import has written this much (SQLite: ~4.5 MB of log for the whole feed, PostgreSQL: ~14 MB)."""


def _workers(master: int) -> set[int]:
    """The gunicorn workers of ``master``: its children running the same command line (not the outbox worker)."""
    command = Path(f"/proc/{master}/cmdline").read_bytes()
    found = set()
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, IndexError, ValueError):
            if (
                entry.name.isdigit()
                and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == master
                and (entry / "cmdline").read_bytes() == command
            ):
                found.add(int(entry.name))
    return found


def _socket_inode(server_port: int, client_port: int) -> int:
    """The inode of the server side of our connection (0 while it waits in the listen queue, not yet accepted)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if int(local.rsplit(":", 1)[1], 16) == server_port and int(remote.rsplit(":", 1)[1], 16) == client_port:
            return int(fields[9])
    return 0


def _serving_worker(master: int, server_port: int, client_port: int, timeout: float = 30.0) -> int:
    """The pid of the gunicorn worker that accepted the connection from ``client_port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        inode = _socket_inode(server_port, client_port)
        if inode:
            for pid in _workers(master):
                with contextlib.suppress(OSError):
                    if any(os.readlink(fd) == f"socket:[{inode}]" for fd in Path(f"/proc/{pid}/fd").iterdir()):
                        return pid
        time.sleep(0.02)
    raise AssertionError(f"no worker of {master} holds the connection from port {client_port}")


def _counts(engine: Engine) -> dict[str, int]:
    tables = (
        UsagePoint.__table__,
        MeterReading.__table__,
        IntervalBlock.__table__,
        interval_reading_table,
        OutboxMessage.__table__,
    )
    with engine.connect() as conn:
        return {table.name: conn.execute(select(func.count()).select_from(table)).scalar_one() for table in tables}


def _written_probe(engine: Engine) -> Callable[[], int]:
    """How many bytes the database has written so far: the size of SQLite's log, or of the readings relation."""
    if engine.dialect.name == "sqlite":
        wal = Path(f"{make_url(str(engine.url)).database}-wal")
        return lambda: wal.stat().st_size if wal.exists() else 0

    def relation_size() -> int:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT pg_total_relation_size('interval_reading')")).scalar_one())

    return relation_size


def _upload_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/atom+xml"}


@dataclasses.dataclass(frozen=True, slots=True)
class Upload:
    """Where and how to upload, and the big feed."""

    url: str
    token: str
    feed: Path
    new_readings: int
    """IntervalReadings the big feed adds to what the customer has."""


def _prepare(served: Served, tmp: Path, notify_uri: str) -> Upload:
    """Alice with the small feed uploaded, an app's consent over her meters (notified at ``notify_uri``), an upload
    token, and the big feed on disk."""
    services = served.services
    with session_scope(services.sessions) as session:
        customer = add_customer(
            session, services.passwords, username="alice", email="alice@example.com", password="x" * 16
        )
        uploader = register_client(
            session,
            services.settings,
            services.digester,
            name="Utility upload",
            redirect_uris=["https://utility.example.com/cb"],
            scopes=[CLIENT_SCOPE],
            grant_types=["client_credentials"],
            roles=(ClientRole.UPLOAD,),
        )
        customer_id = customer.id
    token = client_token(served.base_url, uploader)
    url = f"{served.base_url}/DataCustodian/espi/1_1/resource/Batch/RetailCustomer/{customer_id}/UsagePoint"
    small = tmp / "small.xml"
    write_feed(small, usage_points=METERS, days=SMALL_DAYS, seed=SEED)
    first = requests.post(url, data=small.read_bytes(), headers=_upload_headers(token), timeout=60)
    assert first.status_code == 200, first.text
    with services.sessions() as session:
        points = list(session.scalars(select(UsagePoint.id).where(UsagePoint.customer_id == customer_id)))
    app = register_app(services, name="Energy App", notify_uri=notify_uri)
    grant_consent(served.base_url, services, app, customer_id, points)
    big = tmp / "big.xml"
    readings = write_feed(big, usage_points=METERS, days=BIG_DAYS, seed=SEED)
    return Upload(url, token, big, readings - METERS * SMALL_DAYS * 96)


def _start_upload(served: Served, upload: Upload) -> http.client.HTTPConnection:
    """Open the upload: request line and headers sent, the body still to come."""
    connection = http.client.HTTPConnection("127.0.0.1", served.process.port, timeout=120)
    connection.putrequest("POST", upload.url.removeprefix(served.base_url))
    for name, value in _upload_headers(upload.token).items():
        connection.putheader(name, value)
    connection.putheader("Content-Length", str(upload.feed.stat().st_size))
    connection.endheaders()
    return connection


def _send(connection: http.client.HTTPConnection, feed: Path, limit: int) -> None:
    with feed.open("rb") as body:
        sent = 0
        while sent < limit:
            chunk = body.read(min(1 << 20, limit - sent))
            connection.send(chunk)
            sent += len(chunk)


def _answer(connection: http.client.HTTPConnection) -> str:
    """What the client got for the killed upload: an HTTP status, or how the connection ended."""
    try:
        return str(connection.getresponse().status)
    except (OSError, http.client.HTTPException) as error:
        return type(error).__name__
    finally:
        connection.close()


@dataclasses.dataclass(frozen=True, slots=True)
class Killed:
    """What one run saw: before the upload, after its worker was killed, and after the retry."""

    worker: int
    answer: str
    """What the client got for the killed upload: an HTTP status, or how the connection ended."""
    before: dict[str, int]
    after_kill: dict[str, int]
    workers_after: set[int]
    retry: requests.Response
    after_retry: dict[str, int]
    new_readings: int
    log: str


@pytest.fixture(scope="module", params=["mid-body", "mid-import"])
def killed_upload(
    request: pytest.FixtureRequest, empty_databases: EmptyDatabases, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Killed]:
    """Serve, prepare, start the big upload, SIGKILL its worker at the moment asked, then retry the same upload."""
    moment = str(request.param)
    backend = empty_databases.backend
    tmp = tmp_path_factory.mktemp(f"upload_killed_{moment}")
    receiver = BatchListReceiver().start()
    try:
        with serve(tmp, empty_databases.new(f"upload_killed_{moment}"), workers=2) as served:
            master = served.process.process.pid  # type: ignore[union-attr]
            upload = _prepare(served, tmp, receiver.uri)
            engine = served.services.engine
            written = _written_probe(engine)
            before = _counts(engine)
            baseline = written()
            connection = _start_upload(served, upload)
            assert connection.sock is not None
            worker = _serving_worker(master, served.process.port, connection.sock.getsockname()[1])
            size = upload.feed.stat().st_size
            if moment == "mid-body":
                _send(connection, upload.feed, size // 2)
            else:
                _send(connection, upload.feed, size)
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and written() - baseline < WRITTEN_BYTES[backend]:
                    time.sleep(0.02)
                # The kill must land inside the import, not before it began (nor after it committed).
                assert written() - baseline >= WRITTEN_BYTES[backend], "the import never visibly wrote"
            progressed = written() - baseline
            os.kill(worker, signal.SIGKILL)
            answer = _answer(connection)
            after_kill = _counts(engine)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and (worker in _workers(master) or len(_workers(master)) != 2):
                time.sleep(0.1)
            workers_after = _workers(master)
            retry = requests.post(
                upload.url, data=upload.feed.read_bytes(), headers=_upload_headers(upload.token), timeout=300
            )
            after_retry = _counts(engine)
            log = served.process.output()
    finally:
        receiver.stop()
    print(
        f"{backend} {moment}: worker {worker} killed after {progressed} bytes written, the client got {answer}; "
        f"workers then {workers_after}; the retry answered {retry.status_code}"
    )
    yield Killed(
        worker,
        answer,
        before,
        after_kill,
        workers_after,
        retry,
        after_retry,
        upload.new_readings,
        log,
    )


def test_the_client_of_the_killed_upload_gets_no_answer(killed_upload: Killed) -> None:
    assert killed_upload.answer in ("RemoteDisconnected", "ConnectionResetError", "BrokenPipeError")


def test_a_killed_upload_adds_no_reading_block_or_outbox_row(killed_upload: Killed) -> None:
    assert killed_upload.after_kill == killed_upload.before


def test_the_master_replaces_the_killed_worker(killed_upload: Killed) -> None:
    workers = killed_upload.workers_after
    assert len(workers) == 2 and killed_upload.worker not in workers, (workers, killed_upload.log[-2000:])


def test_the_same_upload_retried_imports_everything_and_queues_its_notification(killed_upload: Killed) -> None:
    retry, before, after = killed_upload.retry, killed_upload.before, killed_upload.after_retry
    assert retry.status_code == 200, (retry.text, killed_upload.log[-2000:])
    assert (
        after["interval_reading"] - before["interval_reading"],
        retry.json()["notifications_queued"] >= 1,
        after["outbox_message"] > before["outbox_message"],
    ) == (killed_upload.new_readings, True, True)
