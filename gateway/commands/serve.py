"""``gateway serve``: migrate (under the migration lock), then run the gateway under gunicorn."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import falcon

from gateway.app import create_app
from gateway.commands.database import upgrade_database
from gateway.commands.output import add_json_flag, load_services
from gateway.logs import configure_logging
from gateway.metrics import enable_multiprocess
from gateway.outbox.worker import spawn_worker
from gateway.server import GatewayServer, default_workers
from gateway.services import Services


def add_server_arguments(parser: argparse.ArgumentParser, *, default_workers_count: int | None) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    parser.add_argument(
        "--workers",
        type=int,
        default=default_workers_count,
        metavar="N",
        help="worker processes (default: cores + 1)"
        if default_workers_count is None
        else f"worker processes (default {default_workers_count})",
    )
    parser.add_argument(
        "--pid",
        type=Path,
        metavar="FILE",
        help="write the gunicorn master's process id to FILE (for `kill -USR2`; docs/deploy.md)",
    )
    parser.add_argument(
        "--no-worker",
        action="store_true",
        help="do not start the outbox worker (run `gateway worker` separately, e.g. on other nodes)",
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "serve", help="run the gateway under gunicorn", description="Migrate the database, then serve under gunicorn."
    )
    add_server_arguments(parser, default_workers_count=None)
    add_json_flag(parser)
    parser.set_defaults(handler=serve)


def serve(args: argparse.Namespace) -> int:
    services = load_services(args)
    # Logging first: a node waiting for another node's migration says so, in the configured format.
    configure_logging(services.settings.log_level, services.settings.log_format)
    upgrade_database(services)
    app = create_app(services.settings, services=services)
    run_gunicorn(app, services, args, workers=args.workers or default_workers())
    return 0


def run_gunicorn(
    app: falcon.App[falcon.Request, falcon.Response], services: Services, args: argparse.Namespace, *, workers: int
) -> None:
    """Serve ``app`` under gunicorn, with the outbox worker beside it, until told to stop."""
    if workers > 1:
        # Several processes answer /metrics: each must see the counts of all (prometheus multiprocess mode).
        enable_multiprocess(services.settings.var_dir / "metrics")
    # The outbox worker (mails, push notifications) runs as a child process, not a thread: the gunicorn master
    # forks, and a fork while another thread holds a lock can deadlock the child.
    outbox_worker = spawn_worker(args.environ) if not args.no_worker else None
    try:
        GatewayServer(
            app,
            services.engine,
            host=args.host,
            port=args.port,
            workers=workers,
            trusted_proxies=services.settings.trusted_proxies,
            pidfile=args.pid,
        ).run()
    finally:
        if outbox_worker is not None:
            outbox_worker.terminate()
            try:
                outbox_worker.wait(10)
            except subprocess.TimeoutExpired:
                outbox_worker.kill()
