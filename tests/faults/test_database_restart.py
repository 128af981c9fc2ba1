"""PostgreSQL restarted under load: requests fail cleanly (503 with ``Retry-After``), then the same gateway recovers.

The gateway is not restarted: its pooled connections die with the server, ``pool_pre_ping`` replaces them, and every
database error on the way is mapped to 503 with ``Retry-After`` (``gateway.errors``), never a 500 or a hang.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from tests.faults.live import Served, serve
from tests.support.postgres import PostgresCluster

pytestmark = pytest.mark.postgres

DOWN_SECONDS = 3.0


@dataclasses.dataclass(frozen=True, slots=True)
class Outcome:
    at: float
    kind: str
    status: int  # 0: no HTTP answer at all (connection refused or reset)
    retry_after: str | None


def _load(served: Served, stop: threading.Event, outcomes: list[Outcome], lock: threading.Lock) -> None:
    """One client thread: token requests, a bearer-protected read and the health check, round and round."""
    token = served.client_token().json()["access_token"]
    status_url = f"{served.base_url}/DataCustodian/espi/1_1/resource/ReadServiceStatus"
    calls: list[tuple[str, Callable[[], requests.Response]]] = [
        ("token", served.client_token),
        (
            "ReadServiceStatus",
            lambda: requests.get(
                status_url, headers={"Authorization": f"Bearer {token}", "Connection": "close"}, timeout=15
            ),
        ),
        ("healthz", lambda: requests.get(f"{served.base_url}/healthz", headers={"Connection": "close"}, timeout=15)),
    ]
    n = 0
    while not stop.is_set():
        kind, call = calls[n % len(calls)]
        n += 1
        try:
            response = call()
            outcome = Outcome(time.monotonic(), kind, response.status_code, response.headers.get("Retry-After"))
        except requests.RequestException:
            outcome = Outcome(time.monotonic(), kind, 0, None)
        with lock:
            outcomes.append(outcome)
        time.sleep(0.01)


def test_a_database_restart_mid_load_gives_503_with_retry_after_then_recovers(
    own_cluster: PostgresCluster, tmp_path: Path
) -> None:
    database_url = own_cluster.create_database("restart_mid_load")
    with serve(tmp_path, database_url) as served:
        gateway_pid = served.process.process.pid  # type: ignore[union-attr]
        stop = threading.Event()
        outcomes: list[Outcome] = []
        lock = threading.Lock()
        threads = [threading.Thread(target=_load, args=(served, stop, outcomes, lock)) for _ in range(4)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(2.0)
            down_at = time.monotonic()
            own_cluster.stop("fast")
            time.sleep(DOWN_SECONDS)
            own_cluster._pg_ctl_start()
            up_at = time.monotonic()
            time.sleep(6.0)
        finally:
            stop.set()
            for thread in threads:
                thread.join(30)
        assert served.process.process.poll() is None and served.process.process.pid == gateway_pid  # type: ignore[union-attr]
        log = served.process.output()

    during = [o for o in outcomes if down_at <= o.at <= up_at]
    # 429 is the ESPI API's per-client rate limit (all threads share one client): a clean answer too.
    unexpected = [o for o in outcomes if o.status not in (200, 429, 503)]
    without_retry_after = [o for o in outcomes if o.status in (429, 503) and not o.retry_after]
    # Recovery: from 3 s after the server is back, everything answers 200 again.
    after = [o for o in outcomes if o.at >= up_at + 3.0]
    summary = {
        "requests": len(outcomes),
        "during_outage": {s: sum(o.status == s for o in during) for s in {o.status for o in during}},
        "after_recovery": {s: sum(o.status == s for o in after) for s in {o.status for o in after}},
    }
    print(f"database restart under load: {summary}")
    assert not unexpected, (unexpected[:5], log[-3000:])
    assert not without_retry_after
    assert any(o.status == 503 for o in during), summary
    assert after and all(o.status in (200, 429) for o in after), summary


def test_after_an_idle_restart_the_next_requests_succeed(own_cluster: PostgresCluster, tmp_path: Path) -> None:
    database_url = own_cluster.create_database("restart_idle")
    with serve(tmp_path, database_url) as served:
        warm = [served.client_token().status_code for _ in range(6)]  # both workers hold pooled connections now
        own_cluster.restart()
        statuses = [served.client_token().status_code for _ in range(6)]
    assert (warm, statuses) == ([200] * 6, [200] * 6)
