"""``gateway worker``: deliver queued mail and app notifications, expire consents (``--once`` for one pass)."""

from __future__ import annotations

import argparse
import signal
import threading
from typing import Any

from gateway.commands.output import add_json_flag, emit, load_services
from gateway.logs import configure_logging
from gateway.outbox.worker import run_once, run_worker


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="deliver queued mail and notifications, expire consents",
        description=(
            "Run the background worker: deliver the outbox (mail over GATEWAY_SMTP_URL or .eml files in "
            "var/outbox, ESPI notifications to apps) with retries, and expire consents past their end. Several "
            "workers may run at once."
        ),
    )
    parser.add_argument("--once", action="store_true", help="run one pass and exit")
    parser.add_argument("--interval", type=float, default=5.0, metavar="SECONDS", help="idle wait between passes")
    add_json_flag(parser)
    parser.set_defaults(handler=worker)


def worker(args: argparse.Namespace) -> int:
    services = load_services(args)
    # GATEWAY_LOG_FORMAT=json holds for the worker's own lines too ("outbox message … failed" and the like).
    configure_logging(services.settings.log_level, services.settings.log_format)
    if args.once:
        report = run_once(services)
        document = {
            "delivered": report.delivery.delivered,
            "retried": report.delivery.retried,
            "failed": report.delivery.failed,
            "expired_consents": report.expired_consents,
            "removed_sessions": report.removed_sessions,
            "built_bulks": report.built_bulks,
            "purged_bulks": report.purged_bulks,
            "purged_tokens": report.purged_tokens or 0,
        }
        emit(args, document, ", ".join(f"{key.replace('_', ' ')}: {value}" for key, value in document.items()))
        return 0
    stop = threading.Event()

    def _stop(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    run_worker(services, interval=args.interval, stop=stop)
    return 0
