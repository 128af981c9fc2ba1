"""``gateway doctor``: check configuration, database and migrations, mail and clock."""

from __future__ import annotations

import argparse
import os

from gateway.commands.output import add_json_flag, emit, load_services
from gateway.doctor import run_checks

_MARKS = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="check configuration, database, mail and clock",
        description="Check the configuration, database reachability and migration state, SMTP and clock. "
        "Exits 1 when any check fails (warnings do not fail).",
    )
    add_json_flag(parser)
    parser.set_defaults(handler=doctor)


def doctor(args: argparse.Namespace) -> int:
    services = load_services(args)
    checks = run_checks(services, args.environ if args.environ is not None else os.environ)
    failed = any(check.status == "fail" for check in checks)
    human = "\n".join(f"[{_MARKS[c.status]}] {c.name:<16} {c.detail}" for c in checks)
    emit(
        args,
        {"ok": not failed, "checks": [{"name": c.name, "status": c.status, "detail": c.detail} for c in checks]},
        human,
    )
    return 1 if failed else 0
