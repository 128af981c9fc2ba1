"""``gateway demo``: a working gateway with demo data in one command (the README's first command)."""

from __future__ import annotations

import argparse

from gateway.app import create_app
from gateway.commands.database import upgrade_database
from gateway.commands.output import add_json_flag, emit, load_services
from gateway.commands.serve import add_server_arguments, run_gunicorn
from gateway.resources.demo_app import mount_demo_app


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="load demo data, register a demo app and serve",
        description=(
            "Create or migrate the database, load the demo customers and their Green Button data (idempotent), "
            "register the demo third-party app, print the URLs and credentials, and serve."
        ),
    )
    add_server_arguments(parser, default_workers_count=2)
    parser.add_argument("--no-serve", action="store_true", help="load the demo and print it, but do not serve")
    add_json_flag(parser)
    parser.set_defaults(handler=demo)


def demo(args: argparse.Namespace) -> int:
    from gateway.demo import describe_demo, load_demo

    services = load_services(args)
    upgrade_database(services)
    info = load_demo(services)
    emit(args, info.to_json(), describe_demo(info))
    if args.no_serve:
        return 0
    app = create_app(services.settings, services=services)
    mount_demo_app(
        app,
        services.settings,
        client_id=info.third_party_app["client_id"],
        client_secret=info.third_party_app["client_secret"],
    )
    run_gunicorn(app, services, args, workers=args.workers)
    return 0
