"""Hostile XML against every endpoint and command that takes XML (SECURITY-CHECKLIST.md, closing XML paragraph).

Each payload of :mod:`tests.hostile_xml.payloads` goes to

- ``POST /validate`` (the public validator; it answers 200 with a report, so "refused" means an invalid report with
  one clear ``xml.*`` error, or a 4xx for the request itself),
- ``POST …/Batch/RetailCustomer/{c}/UsagePoint`` (the upload, with an ``upload`` client's token),
- ``gateway import FILE --customer U`` (the operator CLI, as a subprocess on the same database),

against the real gateway under gunicorn on a fresh database, and each must be refused **fast** (a wall-clock
bound), with **bounded memory** (the peak RSS of the gateway's processes, ``VmHWM`` in /proc reset before each
attack, and of the CLI process, from ``wait4``), with a **clear error**, with **no database change** (row counts of
every data table), and with **nothing fetched** (a listener on 127.0.0.1 and a FIFO file trap, never touched).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import inspect, text

from gateway.storage.models import ClientRole
from tests.blackbox.conftest import LiveGateway, start_live
from tests.conftest import EmptyDatabases
from tests.functional.oauth.helpers import CLIENT_SCOPE, basic
from tests.hostile_xml.payloads import PAYLOADS, FileTrap, HostilePayload, NetworkTrap, Traps

MiB = 1024 * 1024
FAST_SECONDS = 5.0
"""Wall-clock bound for one refusal, transfer included (a 50 MB body takes well under a second on loopback)."""
UPLOAD_PEAK_BOUND = 48 * MiB
"""How far a gateway process's peak RSS may rise above its resident size during one refused upload: the upload is
gated while it streams, so memory does not depend on the body's size (the biggest payload is 50 MB)."""
VALIDATE_PEAK_BOUND = 2 * 50 * MiB + 32 * MiB
"""The same for ``POST /validate``, which holds its body (capped, 64 MiB by default) in memory while it reads it
and joins the chunks: twice the 50 MB body plus working memory. Bounded by the cap, not by the attack."""
CLI_PEAK_BOUND = 192 * MiB
"""Peak RSS (VmHWM) of a whole ``gateway import`` process over every payload: 144 MiB measured, interpreter, SQLAlchemy,
lxml and the schemas included; a 50 MB text node or a 20 MB attribute must not be held whole."""

# Tables that may change on any authenticated request (token bookkeeping, throttles): not "data".
_VOLATILE_TABLES = ("oauth", "token", "throttle", "session", "rate", "alembic")


@pytest.fixture(scope="module")
def traps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traps]:
    network = NetworkTrap()
    file = FileTrap(tmp_path_factory.mktemp("trap"))
    try:
        yield Traps(network, file)
    finally:
        network.close()
        file.close()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, empty_databases: EmptyDatabases) -> Iterator[LiveGateway]:
    """A gateway of its own, so that its workers' peak RSS starts from a fresh process."""
    with start_live(tmp_path_factory.mktemp("hostile"), empty_databases.new("hostile")) as live:
        yield live


@pytest.fixture(scope="module")
def uploader(gateway: LiveGateway) -> dict[str, Any]:
    """An ``upload`` client's token and a customer to upload for."""
    client = gateway.client(name="Meter data loader", roles=(ClientRole.UPLOAD,), grant_types=("client_credentials",))
    response = requests.post(
        gateway.url("/oauth/token"),
        data={"grant_type": "client_credentials", "scope": CLIENT_SCOPE},
        headers={"Authorization": basic(client.client_id, client.client_secret)},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    customer = gateway.customer(points=1)
    return {"token": response.json()["access_token"], "customer": customer}


# -- measurements -------------------------------------------------------------------------------------------------


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            found.append(child)
            pending.append(child)
    return found


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _worker_peaks(gateway: LiveGateway) -> dict[int, int]:
    """Peak RSS of every process under ``gateway serve`` (the gunicorn master, its workers, the outbox worker)."""
    assert gateway.process.process is not None
    peaks = {}
    for pid in _descendants(gateway.process.process.pid):
        try:
            peaks[pid] = _peak_rss(pid)
        except OSError:
            continue
    return peaks


def _reset_peaks(gateway: LiveGateway) -> dict[int, int]:
    """Reset every gateway process's peak RSS to its current RSS (Linux ``clear_refs`` "5"); return the new peaks.

    Where the reset is not allowed, the old peak stays the reference: an attack is then caught only if it sets a
    new record, which still bounds it.
    """
    current = {}
    for pid in _worker_peaks(gateway):
        with contextlib.suppress(OSError):
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        try:
            current[pid] = _peak_rss(pid)
        except OSError:
            continue
    return current


def _check_memory(gateway: LiveGateway, before: dict[int, int], bound: int, where: str) -> None:
    growth = {pid: peak - before.get(pid, peak) for pid, peak in _worker_peaks(gateway).items()}
    worst = max(growth.values(), default=0)
    assert worst < bound, (
        f"checklist XML paragraph: during {where} a gateway process's peak RSS rose {worst // MiB} MiB above its "
        f"resident size (bound {bound // MiB} MiB)"
    )


def _data_counts(gateway: LiveGateway) -> dict[str, int]:
    """Row counts of every table that holds data (volatile bookkeeping tables left out), on either backend."""
    engine = gateway.services.engine
    quote = engine.dialect.identifier_preparer.quote
    with engine.connect() as connection:
        return {
            name: connection.execute(text(f"SELECT count(*) FROM {quote(name)}")).scalar_one()
            for name in inspect(connection).get_table_names()
            if not any(word in name.lower() for word in _VOLATILE_TABLES)
        }


def _post_streaming(
    url: str, headers: dict[str, str], chunks: Iterable[bytes], length: int
) -> tuple[int, dict[str, str], bytes]:
    """POST ``length`` bytes given as chunks over a raw socket, reading the answer as soon as it comes.

    ``requests`` would keep sending a 50 MB body the server has already refused and report the reset; a server that
    refuses early is exactly what we want to observe, so the body is sent chunk by chunk and the socket is polled
    for the answer in between.
    """
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=FAST_SECONDS)
    try:
        head = [f"POST {parts.path}{'?' + parts.query if parts.query else ''} HTTP/1.1", f"Host: {parts.netloc}"]
        head += [f"{name}: {value}" for name, value in {**headers, "Content-Length": str(length)}.items()]
        head += ["Connection: close", "", ""]
        sock.sendall("\r\n".join(head).encode())
        answer = b""
        try:
            for chunk in chunks:
                sock.sendall(chunk)
                sock.setblocking(False)
                try:
                    answer += sock.recv(65536)
                except BlockingIOError:
                    pass
                finally:
                    sock.setblocking(True)
                if answer:
                    break  # the server answered before the end of the body: it refused early
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused and closed while we were still sending: the answer is in our receive buffer
        sock.settimeout(FAST_SECONDS)
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            except TimeoutError:
                return 0, {}, b"(no answer within the time bound)"
            if not data:
                break
            answer += data
    finally:
        sock.close()
    status_line, _, rest = answer.partition(b"\r\n")
    header_block, _, content = rest.partition(b"\r\n\r\n")
    response_headers = {}
    for line in header_block.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        response_headers[name.strip().lower()] = value.strip()
    status = int(status_line.split()[1]) if status_line else 0
    return status, response_headers, content


def _send(
    url: str, headers: dict[str, str], payload: HostilePayload, traps: Traps
) -> tuple[int, dict[str, str], bytes]:
    """Stream the payload with its true Content-Length (counted in a first, discarded generation pass)."""
    length = sum(len(chunk) for chunk in payload.body(traps))
    return _post_streaming(url, headers, payload.body(traps), length)


# -- the attacks --------------------------------------------------------------------------------------------------

VALIDATE_EXCLUDED = {
    # Known hole, shown in-process by test_xml_validator_schema_errors_are_bounded (below) rather than over HTTP:
    # its ~160 MiB peak would be charged to the following attacks on the same worker.
    "many_attributes",
}


def _check_fetched_nothing(traps: Traps, payload: HostilePayload, where: str) -> None:
    touched = traps.untouched()
    assert touched is None, f"checklist XML paragraph ({payload.threat}) via {where}: something was fetched: {touched}"


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda payload: payload.name)
def test_xml_upload_endpoint_refuses(gateway, traps, uploader, payload: HostilePayload) -> None:
    """The upload: 400/413 with a clear JSON error, fast, bounded memory, no database change, nothing fetched."""
    customer = uploader["customer"]
    url = gateway.resource(f"Batch/RetailCustomer/{customer.id}/UsagePoint")
    probe = requests.get(url, headers={"Authorization": f"Bearer {uploader['token']}"}, timeout=10)
    if probe.status_code == 404 and "RetailCustomer" not in probe.text:
        pytest.skip(f"the upload route {url} answers 404 'no route' today (the resource API has not landed)")
    before = _data_counts(gateway)
    resident = _reset_peaks(gateway)
    started = time.perf_counter()
    status, _, content = _send(
        url,
        {"Content-Type": "application/atom+xml", "Authorization": f"Bearer {uploader['token']}"},
        payload,
        traps,
    )
    elapsed = time.perf_counter() - started
    where = f"POST Batch/RetailCustomer/{{c}}/UsagePoint ({payload.name})"
    assert status in (400, 413), f"checklist XML paragraph: {where} answered {status}: {content[:300]!r}"
    assert elapsed < FAST_SECONDS, f"checklist XML paragraph: {where} took {elapsed:.1f} s"
    document = json.loads(content)
    assert document.get("description"), f"checklist XML paragraph: {where} gave no clear error: {document}"
    _check_fetched_nothing(traps, payload, where)
    _check_memory(gateway, resident, UPLOAD_PEAK_BOUND, where)
    assert _data_counts(gateway) == before, f"checklist XML paragraph: {where} changed the database"


@pytest.mark.parametrize(
    "payload", [p for p in PAYLOADS if p.name not in VALIDATE_EXCLUDED], ids=lambda payload: payload.name
)
def test_xml_validate_endpoint_refuses(gateway, traps, payload: HostilePayload) -> None:
    """``POST /validate``: an invalid report with a clear error (or a 4xx), fast, bounded, nothing fetched."""
    before = _data_counts(gateway)
    resident = _reset_peaks(gateway)
    started = time.perf_counter()
    status, _, content = _send(gateway.url("/validate"), {"Content-Type": "application/atom+xml"}, payload, traps)
    elapsed = time.perf_counter() - started
    where = f"POST /validate ({payload.name})"
    assert status in (200, 400, 413), f"checklist XML paragraph: {where} answered {status}: {content[:300]!r}"
    assert elapsed < FAST_SECONDS, f"checklist XML paragraph: {where} took {elapsed:.1f} s"
    document = json.loads(content)
    if status == 200:
        assert document["valid"] is False, f"checklist XML paragraph: {where} was reported valid"
        messages = [finding["message"] for finding in document["findings"] if finding["severity"] == "error"]
        assert messages and all(messages), f"checklist XML paragraph: {where} gave no clear error: {document}"
    else:
        assert document.get("description"), f"checklist XML paragraph: {where} gave no clear error: {document}"
    _check_fetched_nothing(traps, payload, where)
    _check_memory(gateway, resident, VALIDATE_PEAK_BOUND, where)
    assert _data_counts(gateway) == before, f"checklist XML paragraph: {where} changed the database"


@pytest.fixture(scope="module")
def imported(gateway: LiveGateway, traps: Traps, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One ``gateway import --json`` run over every payload (each file is its own transaction), measured."""
    directory = tmp_path_factory.mktemp("hostile-files")
    paths = []
    for payload in PAYLOADS:
        path = directory / f"{payload.name}.xml"
        with path.open("wb") as file:
            for chunk in payload.body(traps):
                file.write(chunk)
        paths.append(path)
    customer = gateway.customer(points=1)
    before = _data_counts(gateway)
    environ = {
        **os.environ,
        "GATEWAY_DATABASE_URL": gateway.settings.database_url,
        "GATEWAY_SECRET_KEY": gateway.settings.secret_key,
        "GATEWAY_VAR_DIR": str(directory / "var"),
        "GATEWAY_BASE_URL": gateway.base_url,
    }
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "import", *map(str, paths), "--customer", customer.username, "--json"],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    # The child's own high-water mark (VmHWM), sampled while it runs: it starts afresh at exec, unlike wait4's
    # ru_maxrss, which also counts the pages of this (large, late in a full run) pytest process before the exec.
    peak = 0

    def watch() -> None:
        nonlocal peak
        status_file, cmdline_file = Path(f"/proc/{process.pid}/status"), Path(f"/proc/{process.pid}/cmdline")
        while process.poll() is None:
            try:
                if b"import" in cmdline_file.read_bytes():  # past the exec: the numbers are the importer's own
                    for line in status_file.read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            peak = max(peak, int(line.split()[1]) * 1024)
            except OSError:
                return
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    out = process.stdout.read() if process.stdout else b""
    process.wait()
    watcher.join()
    return {
        "status": process.returncode,
        "report": {Path(entry["file"]).stem: entry for entry in json.loads(out)["files"]},
        "elapsed": time.perf_counter() - started,
        "peak": peak,
        "changed": _data_counts(gateway) != before,
    }


def test_xml_import_command_run_is_refused_fast_bounded_and_changes_nothing(imported) -> None:
    """The whole ``gateway import`` of every hostile file: exit 1, fast, bounded peak RSS, no database change."""
    assert imported["status"] == 1, "checklist XML paragraph: gateway import of hostile files did not exit 1"
    bound = FAST_SECONDS * len(PAYLOADS) / 2 + 10  # start-up and schema loading included
    assert imported["elapsed"] < bound, f"checklist XML paragraph: gateway import took {imported['elapsed']:.1f} s"
    assert imported["peak"] < CLI_PEAK_BOUND, (
        f"checklist XML paragraph: gateway import peaked at {imported['peak'] // MiB} MiB"
    )
    assert not imported["changed"], "checklist XML paragraph: gateway import of hostile files changed the database"


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda payload: payload.name)
def test_xml_import_command_refuses(imported, traps, payload: HostilePayload) -> None:
    """Each hostile file is rejected with a clear, line-numbered error and fetches nothing."""
    entry = imported["report"][payload.name]
    where = f"gateway import ({payload.name})"
    assert entry["status"] == "rejected", f"checklist XML paragraph: {where} was not rejected: {entry}"
    assert entry["errors"] and all(error["message"] for error in entry["errors"]), (
        f"checklist XML paragraph: {where} gave no clear error: {entry}"
    )
    _check_fetched_nothing(traps, payload, where)


# The validator's cost in libxml2 explodes with the number of schema errors (more than quadratic time, ~1.5 kB each):
# the public endpoint therefore validates in a limited child process — see tests/hostile_xml/test_validate_isolation.py.
