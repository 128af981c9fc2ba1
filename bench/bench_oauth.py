"""Benchmark: OAuth token issuance and bearer-token checking under gunicorn, against a falcon hello-world.

Targets (issue "OAuth 2.0 authorization server", Done): in the same run and under the same gunicorn settings
(2 sync workers on 127.0.0.1),

* ``POST /oauth/token`` (client_credentials, client_secret_basic) reaches ≥ 25 % of hello-world's requests/s;
* ``GET …/resource/ReadServiceStatus`` with a client access token (a bearer check against the database on every
  request) reaches ≥ 50 %.

Both servers run side by side (an idle one costs nothing). The load comes from a few client processes, each opening a
fresh connection per request (gunicorn's sync workers do not keep connections alive) for a fixed time; rounds measure
the three scenarios back to back and the ratios are the median over rounds, so that a burst of unrelated load on a
shared machine skews no result. The script prints requests/s and ratios and exits 1 when a target is missed.
Everything is bounded in time (about 30 s, at most 60 s) and stays on 127.0.0.1.

    python bench/bench_oauth.py [--seconds 1.5] [--rounds 6] [--clients 4]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from multiprocessing.pool import Pool
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKERS = 2
TOKEN_TARGET = 0.25
BEARER_TARGET = 0.50
STATUS_PATH = "/DataCustodian/espi/1_1/resource/ReadServiceStatus"


def hello_app():  # type: ignore[no-untyped-def]
    """The baseline: the smallest falcon app (gunicorn loads it as ``bench.bench_oauth:hello_app()``)."""
    import falcon

    class Hello:
        def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
            resp.text = "hello"

    app = falcon.App()
    app.add_route("/hello", Hello())
    return app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(port: int, path: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", path)
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not come up")


@contextmanager
def running(argv: list[str], env: dict[str, str], port: int, probe: str, log: Path) -> Iterator[None]:
    with log.open("wb") as output:
        process = subprocess.Popen(argv, env={**os.environ, **env}, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
        try:
            wait_until_up(port, probe, process)
            yield
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _client_loop(args: tuple[int, str, str, str, dict[str, str], float]) -> tuple[int, int]:
    """One load process: fresh connection per request for ``seconds``; returns (ok, failed)."""
    port, method, path, body, headers, seconds = args
    ok = failed = 0
    deadline = time.monotonic() + seconds
    payload = body.encode() if body else None
    while time.monotonic() < deadline:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status == 200:
                ok += 1
            else:
                failed += 1
        except OSError:
            failed += 1
        finally:
            connection.close()
    return ok, failed


def measure(
    pool: Pool,
    port: int,
    method: str,
    path: str,
    *,
    body: str = "",
    headers: dict[str, str] | None = None,
    seconds: float,
    clients: int,
    warm_up: bool = False,
) -> float:
    """Requests/s of successful responses over ``seconds``, from ``clients`` load processes."""
    job = (port, method, path, body, headers or {}, seconds)
    if warm_up:  # imports, connection pools, SQLAlchemy's statement cache, the page cache
        pool.map(_client_loop, [(*job[:5], 0.5)] * clients)
    started = time.monotonic()
    results = pool.map(_client_loop, [job] * clients)
    elapsed = time.monotonic() - started
    ok = sum(result[0] for result in results)
    failed = sum(result[1] for result in results)
    if failed:
        raise RuntimeError(f"{failed} of {ok + failed} requests to {path} failed")
    return ok / elapsed


def gunicorn(app: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--workers",
        str(WORKERS),
        "--worker-class",
        "sync",
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        app,
    ]


def prepare_gateway(tmp: Path, port: int) -> tuple[dict[str, str], str, str]:
    """A fresh SQLite database with one registered client; returns (environment, client_id, client_secret)."""
    from gateway.config import Settings
    from gateway.oauth.registration import register_client
    from gateway.services import Services
    from gateway.storage import migrate

    env = {
        "GATEWAY_DATABASE_URL": f"sqlite:///{tmp / 'bench.sqlite3'}",
        "GATEWAY_VAR_DIR": str(tmp / "var"),
        "GATEWAY_SECRET_KEY": "bench-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
        "GATEWAY_BASE_URL": f"http://127.0.0.1:{port}",
        "GATEWAY_LOG_LEVEL": "WARNING",
        # This bench measures the OAuth paths, not the per-client rate limit of the resources.
        "GATEWAY_RATE_LIMIT_PER_SECOND": "0",
    }
    services = Services.build(Settings.from_env(env))
    migrate.upgrade(services.engine)
    with services.sessions() as session:
        registered = register_client(
            session,
            services.settings,
            services.digester,
            name="Bench App",
            redirect_uris=["https://bench.example/cb"],
            scopes=["FB=3_34_35_36_40_41"],
            grant_types=["authorization_code", "client_credentials", "refresh_token"],
        )
        session.commit()
    services.engine.dispose()
    assert registered.client_secret is not None
    return env, registered.client_id, registered.client_secret


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=float, default=1.5, help="measuring time per scenario and round (default 1.5)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=6,
        help="interleaved rounds; ratios are the median over rounds (default 6)",
    )
    parser.add_argument("--clients", type=int, default=4, help="load-generating processes (default 4)")
    args = parser.parse_args()
    seconds = min(max(args.seconds, 0.5), 2.5)
    rounds = min(max(args.rounds, 1), 8)

    with tempfile.TemporaryDirectory() as tmp_name, ExitStack() as servers:
        tmp = Path(tmp_name)
        hello_port, gateway_port = free_port(), free_port()
        env, client_id, secret = prepare_gateway(tmp, gateway_port)
        # Both servers run at once (an idle one costs nothing); rounds alternate between them so that a burst of
        # unrelated load on the machine hits both alike, and the best round of each is compared.
        servers.enter_context(
            running(
                gunicorn("bench.bench_oauth:hello_app()", hello_port),
                {},
                hello_port,
                "/hello",
                tmp / "hello.log",
            )
        )
        servers.enter_context(
            running(gunicorn("gateway.wsgi:app", gateway_port), env, gateway_port, "/healthz", tmp / "gateway.log")
        )
        basic = "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        form = {"Authorization": basic, "Content-Type": "application/x-www-form-urlencoded"}
        connection = http.client.HTTPConnection("127.0.0.1", gateway_port, timeout=10)
        connection.request("POST", "/oauth/token", body="grant_type=client_credentials", headers=form)
        access_token = json.loads(connection.getresponse().read())["access_token"]
        connection.close()
        bearer_headers = {"Authorization": f"Bearer {access_token}"}

        results: list[tuple[float, float, float]] = []
        with multiprocessing.Pool(args.clients) as pool:
            for round_number in range(rounds):
                first = round_number == 0
                common = {"seconds": seconds, "clients": args.clients, "warm_up": first}
                round_hello = measure(pool, hello_port, "GET", "/hello", **common)
                round_tokens = measure(
                    pool,
                    gateway_port,
                    "POST",
                    "/oauth/token",
                    body="grant_type=client_credentials",
                    headers=form,
                    **common,
                )
                round_bearer = measure(pool, gateway_port, "GET", STATUS_PATH, headers=bearer_headers, **common)
                print(
                    f"round {round_number + 1}: hello {round_hello:.0f}, token {round_tokens:.0f}, "
                    f"bearer {round_bearer:.0f} req/s",
                    file=sys.stderr,
                )
                results.append((round_hello, round_tokens, round_bearer))

    # Each round measures the three scenarios back to back, so its ratios share the machine's conditions; the
    # median over rounds shrugs off a burst of unrelated load in any one of them.
    hello = statistics.median([r[0] for r in results])
    tokens = statistics.median([r[1] for r in results])
    bearer = statistics.median([r[2] for r in results])
    token_ratio = statistics.median([r[1] / r[0] for r in results])
    bearer_ratio = statistics.median([r[2] / r[0] for r in results])
    print(
        f"gunicorn, {WORKERS} sync workers, {args.clients} client processes, "
        f"median of {rounds} interleaved rounds x {seconds:.1f} s"
    )
    print(f"hello-world GET /hello                       {hello:9.0f} req/s")
    print(
        f"POST /oauth/token (client_credentials)       {tokens:9.0f} req/s  {token_ratio:6.1%}  "
        f"(target >= {TOKEN_TARGET:.0%})"
    )
    print(
        f"GET ReadServiceStatus (bearer, DB check)     {bearer:9.0f} req/s  {bearer_ratio:6.1%}  "
        f"(target >= {BEARER_TARGET:.0%})"
    )
    missed = token_ratio < TOKEN_TARGET or bearer_ratio < BEARER_TARGET
    print("FAIL: a target was missed" if missed else "OK: both targets met")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
