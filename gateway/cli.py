"""The ``gateway`` command: every operator task, each with ``--help``, ``--json`` and clear errors.

gateway init                      create or migrate the database
gateway serve                     run under gunicorn (migrates first)
gateway demo                      demo data, a demo app, and serve
gateway worker                    deliver queued mails and push notifications
gateway customer add|list|set-password
gateway client add|list|rotate-secret
gateway notifications list [--failed]
                                  push notifications and their delivery state
gateway bulk list [--state S]     Batch/Bulk requests built in the background
gateway doctor                    check configuration, database, mail, clock
gateway import FILE... --customer USERNAME [--lenient]
                                  import Green Button files for a customer (and notify apps)
gateway validate FILE...          check Green Button feeds (schema and semantics)
gateway sample-data               regenerate the realistic sample feeds in sample_data/
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence

from gateway.commands import (
    bulk,
    client,
    customer,
    database,
    demo,
    doctor,
    importer,
    notifications,
    sample_data,
    serve,
    validate,
    worker,
)
from gateway.commands.output import run_handler

__all__ = ["build_parser", "main"]

COMMAND_MODULES = (
    database,
    serve,
    demo,
    worker,
    customer,
    client,
    importer,
    validate,
    sample_data,
    notifications,
    bulk,
    doctor,
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="gateway",
        description="Green Button Connect My Data gateway (NAESB REQ.21 ESPI over OAuth 2.0).",
        epilog="Configuration comes from GATEWAY_* environment variables; see the README.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Entry point of the console script; returns the exit status.

    ``environ`` replaces ``os.environ`` as the source of settings (tests run commands in-process this way).
    """
    args = build_parser().parse_args(argv)
    args.environ = environ
    return run_handler(args.handler, args)
