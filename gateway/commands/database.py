"""``gateway init``: create or migrate the database."""

from __future__ import annotations

import argparse

from gateway.commands.output import add_json_flag, emit, load_services
from gateway.storage import migrate


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "init",
        help="create or migrate the database",
        description="Create the database schema or migrate it to the newest version.",
    )
    add_json_flag(parser)
    parser.set_defaults(handler=init)


def init(args: argparse.Namespace) -> int:
    services = load_services(args)
    before = migrate.current_revision(services.engine)
    migrate.upgrade(services.engine)
    after = migrate.current_revision(services.engine)
    url = services.engine.url.render_as_string(hide_password=True)
    emit(
        args,
        {"database": url, "previous_revision": before, "revision": after},
        f"database {url} is at revision {after}" + ("" if before == after else f" (was {before or 'empty'})"),
    )
    return 0
