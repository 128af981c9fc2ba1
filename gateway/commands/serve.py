"""``gateway serve``: migrate, then run the gateway under gunicorn."""

from __future__ import annotations

import argparse

from gateway.app import create_app
from gateway.commands.output import add_json_flag, load_services
from gateway.metrics import enable_multiprocess
from gateway.server import GatewayServer, default_workers
from gateway.services import Services
from gateway.storage import migrate


def add_server_arguments(parser: argparse.ArgumentParser, *, default_workers_count: int | None) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    parser.add_argument(
        "--workers",
        type=int,
        default=default_workers_count,
        metavar="N",
        help="worker processes (default: cores + 1)" if default_workers_count is None else f"worker processes (default {default_workers_count})",
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
    migrate.upgrade(services.engine)
    run_gunicorn(services, host=args.host, port=args.port, workers=args.workers or default_workers())
    return 0


def run_gunicorn(services: Services, *, host: str, port: int, workers: int) -> None:
    """Serve the gateway under gunicorn until it is told to stop."""
    if workers > 1:
        # Several processes answer /metrics: each must see the counts of all (prometheus multiprocess mode).
        enable_multiprocess(services.settings.var_dir / "metrics")
    app = create_app(services.settings, services=services)
    GatewayServer(app, services.engine, host=host, port=port, workers=workers).run()
