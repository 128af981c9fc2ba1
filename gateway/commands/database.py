"""``gateway init``: create or migrate the database (under the migration lock, see gateway.storage.migrate)."""

from __future__ import annotations

import argparse

from gateway.commands.output import CommandError, add_json_flag, emit, load_services
from gateway.logs import configure_logging
from gateway.services import Services
from gateway.storage import migrate

__all__ = ["register", "upgrade_database"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "init",
        help="create or migrate the database",
        description="Create the database schema or migrate it to the newest version. Safe to run on several nodes "
        "at once: they take turns (GATEWAY_MIGRATION_LOCK_TIMEOUT), and the later ones find nothing to do.",
    )
    add_json_flag(parser)
    parser.set_defaults(handler=init)


def upgrade_database(services: Services) -> None:
    """Migrate to head under the migration lock; a lock timeout or a database ahead of this code stops the command."""
    try:
        migrate.upgrade(services.engine, lock_timeout=services.settings.migration_lock_timeout)
    except migrate.MigrationError as error:
        raise CommandError(str(error)) from error


def init(args: argparse.Namespace) -> int:
    services = load_services(args)
    configure_logging(services.settings.log_level, services.settings.log_format)  # "waiting for the lock" must show
    before = migrate.current_revision(services.engine)
    upgrade_database(services)
    after = migrate.current_revision(services.engine)
    url = services.engine.url.render_as_string(hide_password=True)
    emit(
        args,
        {"database": url, "previous_revision": before, "revision": after},
        f"database {url} is at revision {after}" + ("" if before == after else f" (was {before or 'empty'})"),
    )
    return 0
