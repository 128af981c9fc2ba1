"""``kill -HUP`` on the gunicorn master replaces every worker without dropping a request in flight.

gunicorn starts the new workers first, then sends the old ones SIGTERM: each finishes the request it is serving
(within ``graceful_timeout``) and exits. With ``preload_app`` the new workers are forks of the master, so this
recycles workers but loads no new code (``gateway/server.py`` and docs/deploy.md say how to deploy code).

Run on each backend: on PostgreSQL the new workers must open connections of their own, never share the master's.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import requests

from tests.conftest import EmptyDatabases
from tests.faults.feeds import write_feed
from tests.faults.live import Served, serve


def _workers(master: int) -> set[int]:
    """The gunicorn workers of ``master``: its children running the same command line (not the outbox worker)."""
    command = Path(f"/proc/{master}/cmdline").read_bytes()
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if parent == master and (entry / "cmdline").read_bytes() == command:
                found.add(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


def _hammer(served: Served, stop: threading.Event, results: list[object], feed: bytes | None) -> None:
    while not stop.is_set():
        try:
            if feed is None:
                results.append(served.client_token().status_code)
            else:  # a long request (a second or so of schema validation) that is in flight when HUP arrives
                results.append(
                    requests.post(
                        f"{served.base_url}/validate",
                        data=feed,
                        headers={"Content-Type": "application/atom+xml", "Connection": "close"},
                        timeout=60,
                    ).status_code
                )
        except requests.RequestException as error:
            results.append(repr(error))


def test_sighup_replaces_the_workers_without_dropping_requests(tmp_path: Path, empty_databases: EmptyDatabases) -> None:
    feed_path = tmp_path / "feed.xml"
    write_feed(feed_path, usage_points=1, days=90)
    feed = feed_path.read_bytes()
    with serve(tmp_path, empty_databases.new("reload"), workers=2) as served:
        master = served.process.process.pid  # type: ignore[union-attr]
        deadline = time.monotonic() + 15  # /healthz answers as soon as one worker is up; wait for both
        while time.monotonic() < deadline and len(_workers(master)) != 2:
            time.sleep(0.1)
        before = _workers(master)
        stop = threading.Event()
        results: list[object] = []
        threads = [
            threading.Thread(target=_hammer, args=(served, stop, results, body)) for body in (None, None, feed, feed)
        ]
        for thread in threads:
            thread.start()
        try:
            for _ in range(2):
                time.sleep(1.5)
                os.kill(master, signal.SIGHUP)
            time.sleep(3.0)
        finally:
            stop.set()
            for thread in threads:
                thread.join(60)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (len(_workers(master)) != 2 or _workers(master) & before):
            time.sleep(0.2)
        after = _workers(master)
    failures = [result for result in results if result != 200]
    print(f"SIGHUP twice under load: {len(results)} requests, {len(failures)} failed; workers {before} -> {after}")
    assert len(before) == 2 and len(after) == 2 and not before & after
    assert results and not failures, failures[:5]
