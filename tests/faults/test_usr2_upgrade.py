"""A binary upgrade on one node: ``kill -USR2`` the master, then ``kill -TERM`` the old one; nothing is dropped.

gunicorn's USR2 forks the master and re-executes the command that started it (``python -m gateway serve …``) with
the listening socket inherited: the new master migrates, imports the code as it now is on disk, preloads the app and
forks its workers, while the old master's workers keep serving from the same socket. SIGTERM to the old master then
stops its workers gracefully (each finishes the request it is serving), it exits, and the new master, orphaned,
renames its ``<pidfile>.2`` to ``<pidfile>``. (gunicorn's ``WINCH`` only acts on a daemonized master, and ``QUIT``
would drop requests in flight: docs/deploy.md has the runbook.)

The gateway runs from a copy of the package in a temporary folder, so the test can change the code between the two
masters: ``/healthz`` in the copy says which release it is, and every answer records which code served it. Run on
each backend: the new master migrates (and takes the migration lock) while the old generation is serving.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import EmptyDatabases
from tests.faults.feeds import write_feed
from tests.faults.live import environ_for
from tests.support.server import free_port

ROOT = Path(__file__).resolve().parents[2]
HEALTH_ANSWER = 'resp.media = {"status": "ok", "database": "ok"}'
OLD, NEW = "release-1", "release-2-upgraded"  # different lengths: a stale .pyc could never pass for the new source


@dataclasses.dataclass(frozen=True)
class Answer:
    started: float
    outcome: str  # the release that answered, or the error


def make_overlay(tmp_path: Path) -> Path:
    """A copy of the package (as an unpacked release would be), importable from its folder, marked ``OLD``."""
    overlay = tmp_path / "overlay"
    shutil.copytree(ROOT / "gateway", overlay / "gateway", symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    for data in ("espi_schemas", "sample_data"):  # what the package's symlinks point at
        (overlay / data).symlink_to(ROOT / data)
    health = overlay / "gateway" / "web" / "health.py"
    source = health.read_text(encoding="utf-8")
    assert source.count(HEALTH_ANSWER) == 1, f"{health} changed: update HEALTH_ANSWER in this test"
    health.write_text(source.replace(HEALTH_ANSWER, HEALTH_ANSWER[:-1] + f', "release": "{OLD}"}}'), encoding="utf-8")
    return overlay


def deploy_new_code(overlay: Path) -> None:
    health = overlay / "gateway" / "web" / "health.py"
    health.write_text(health.read_text(encoding="utf-8").replace(OLD, NEW), encoding="utf-8")


def exited(pid: int) -> bool:
    """Whether ``pid`` is gone (or a zombie: an orphan's new parent may be slow to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (gunicorn workers, the outbox worker, a new master)."""
    found = set()
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, IndexError, ValueError):
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def wait_until(condition: Callable[[], bool], timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting until {what}:\n{log.read_text(errors='replace')}")
        time.sleep(0.1)


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def process_group(argv: list[str], *, cwd: Path, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``argv`` in a session of its own; on the way out, kill whatever of it is left (masters, workers)."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)


def hammer(base_url: str, feed: bytes | None, stop: threading.Event, answers: list[Answer]) -> None:
    """Requests back to back: quick health checks, or a feed to validate (a second or so in flight)."""
    while not stop.is_set():
        started = time.monotonic()
        try:
            if feed is None:
                response = requests.get(f"{base_url}/healthz", headers={"Connection": "close"}, timeout=60)
                outcome = (
                    response.json().get("release", "?") if response.status_code == 200 else str(response.status_code)
                )
            else:
                response = requests.post(
                    f"{base_url}/validate",
                    data=feed,
                    headers={"Content-Type": "application/atom+xml", "Connection": "close"},
                    timeout=60,
                )
                outcome = "validated" if response.status_code == 200 else str(response.status_code)
        except requests.RequestException as error:
            outcome = repr(error)
        answers.append(Answer(started, outcome))


def test_usr2_then_term_upgrades_the_code_without_dropping_a_request(
    tmp_path: Path, empty_databases: EmptyDatabases
) -> None:
    overlay = make_overlay(tmp_path)
    feed_path = tmp_path / "feed.xml"
    write_feed(feed_path, usage_points=1, days=60)
    port, pidfile, log = free_port(), tmp_path / "gateway.pid", tmp_path / "gateway.log"
    base_url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        **environ_for(tmp_path, empty_databases.new("usr2"), port),
        "PYTHONDONTWRITEBYTECODE": "1",  # every master compiles the source it finds
    }
    argv = [sys.executable, "-m", "gateway", "serve", "--port", str(port), "--workers", "2", "--pid", str(pidfile)]
    stop, answers = threading.Event(), []
    threads = [
        threading.Thread(target=hammer, args=(base_url, body, stop, answers))
        for body in (None, None, feed_path.read_bytes())
    ]
    with process_group(argv, cwd=overlay, env=env, log=log) as old_master:

        def serving(release: str) -> bool:
            with contextlib.suppress(requests.RequestException, ValueError):
                return requests.get(f"{base_url}/healthz", timeout=2).json().get("release") == release
            return False

        wait_until(lambda: serving(OLD), 120, "the old release answers", log)
        assert read_pid(pidfile) == old_master.pid
        for thread in threads:
            thread.start()
        try:
            time.sleep(1.0)
            deploy_new_code(overlay)
            os.kill(old_master.pid, signal.SIGUSR2)
            new_pidfile = pidfile.with_name(pidfile.name + ".2")
            wait_until(lambda: read_pid(new_pidfile) is not None, 120, "the new master writes its pidfile", log)
            new_master = read_pid(new_pidfile)
            wait_until(lambda: any(a.outcome == NEW for a in answers), 120, "the new workers answer", log)

            old_generation = children(old_master.pid) - {new_master}  # its web workers and its outbox worker
            old_master.send_signal(signal.SIGTERM)
            old_status = old_master.wait(90)
            old_gone = time.monotonic()
            wait_until(lambda: read_pid(pidfile) == new_master, 30, "the new master takes over the pidfile", log)
            time.sleep(1.5)
        finally:
            stop.set()
            for thread in threads:
                thread.join(90)
        try:
            assert new_master is not None and new_master != old_master.pid
            failures = [a.outcome for a in answers if a.outcome not in (OLD, NEW, "validated")]
            served_by_old_after_exit = [a for a in answers if a.started > old_gone and a.outcome == OLD]
            print(
                f"USR2 + TERM under load: {len(answers)} requests, {len(failures)} failed; "
                f"{sum(a.outcome == OLD for a in answers)} answered by {OLD}, {sum(a.outcome == NEW for a in answers)} "
                f"by {NEW}, {sum(a.outcome == 'validated' for a in answers)} feeds validated"
            )
            tail = log.read_text(errors="replace")[-3000:]
            assert (old_status, failures[:5], served_by_old_after_exit[:5]) == (0, [], []), tail
            assert not new_pidfile.exists()
            assert len(old_generation) == 3 and all(exited(pid) for pid in old_generation)
            assert any(a.outcome == OLD for a in answers) and any(a.outcome == NEW for a in answers)
        finally:
            if new_master is not None:
                os.kill(new_master, signal.SIGTERM)
                wait_until(lambda: exited(new_master), 60, "the new master stops", log)
