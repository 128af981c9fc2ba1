"""``gateway import FILE... --customer USERNAME``: load Green Button feeds (Download My Data files).

Each file is imported in its own transaction (NAESB REQ.21 ESPI feeds, read by :mod:`gateway.espi.ingest`):
it is stored completely or not at all, and a rejected file does not stop the others. The exit status is 1
when any file was rejected, with its line-numbered errors on standard error.

Like an upload, an import tells the apps holding a consent on the affected usage points (ESPI REQ.21 FB 39):
:func:`gateway.notifications.import_and_notify` queues their BatchList pushes in the file's transaction, so a
committed file always has its notifications committed with it (delivered by ``gateway worker``) and a rejected
or re-imported file queues none. Each file reports how many it queued.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import IO, Any

from gateway.commands.output import EXIT_FAILURE, EXIT_OK, add_json_flag, load_services
from gateway.customers import get_customer_by_username
from gateway.espi.ingest import FeedRejected, ImportReport
from gateway.espi.safe_xml import XmlRejected
from gateway.notifications import import_and_notify
from gateway.services import Services
from gateway.storage.engine import session_scope

__all__ = ["import_command", "register"]

_SUMMARY_KEYS = (
    "usage_points",
    "meter_readings",
    "interval_blocks",
    "interval_readings",
    "warnings",
    "notifications_queued",
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "import",
        help="import Green Button feeds for a customer",
        description=(
            "Import Green Button (ESPI) feeds for a retail customer, each file in its own transaction. "
            "Strict by default: a file that is not valid ESPI is rejected with line-numbered errors. "
            "Importing the same file again changes nothing. Apps with a consent on the affected usage points "
            "get a push notification queued (FB 39), delivered by `gateway worker`."
        ),
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="Atom feed or entry files (UTF-8 XML)")
    parser.add_argument("--customer", required=True, metavar="USERNAME", help="the customer who owns the data")
    parser.add_argument(
        "--lenient",
        action="store_true",
        help="recover what real-world files get wrong (order, case, foreign elements, dates) with warnings",
    )
    add_json_flag(parser)
    parser.set_defaults(handler=import_command)


class ProgressBar:
    """A one-line text progress bar on a terminal (redrawn at most ten times a second)."""

    def __init__(self, label: str, total: int, stream: IO[str]) -> None:
        self.label = label if len(label) <= 30 else "…" + label[-29:]
        self.total = max(total, 1)
        self.stream = stream
        self._drawn = 0.0

    def update(self, done: int) -> None:
        now = time.monotonic()
        if now - self._drawn < 0.1 and done < self.total:
            return
        self._drawn = now
        fraction = min(done / self.total, 1.0)
        filled = int(fraction * 30)
        self.stream.write(f"\r{self.label:<30} [{'#' * filled}{'.' * (30 - filled)}] {fraction:6.1%}")
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\r" + " " * 72 + "\r")
        self.stream.flush()


def _summary(report: ImportReport, notifications_queued: int) -> dict[str, int]:
    return {
        "usage_points": report.usage_points.total,
        "meter_readings": report.meter_readings.total,
        "interval_blocks": report.interval_blocks.total,
        "interval_readings": report.interval_readings,
        "warnings": report.warning_count,
        "notifications_queued": notifications_queued,
    }


def _import_one(args: argparse.Namespace, services: Services, path: Path) -> dict[str, Any]:
    """Import one file and queue its push notifications in one transaction; return its result (never raises for a
    bad file)."""
    result: dict[str, Any] = {"file": str(path)}
    try:
        size = path.stat().st_size
    except OSError as error:
        return {
            **result,
            "status": "rejected",
            "errors": [{"line": None, "code": "unreadable", "message": str(error)}],
        }
    bar = ProgressBar(path.name, size, sys.stderr) if sys.stderr.isatty() and not args.json else None
    try:
        with session_scope(services.sessions) as session:
            customer = get_customer_by_username(session, args.customer)
            report, queued = import_and_notify(
                session,
                services.settings,
                path,
                customer=customer,
                lenient=args.lenient,
                progress=bar.update if bar else None,
            )
    except FeedRejected as error:
        return {**result, "status": "rejected", "errors": [issue.to_json() for issue in error.errors]}
    except XmlRejected as error:
        issue = {"line": error.line, "column": error.column, "code": error.reason, "message": error.message}
        return {**result, "status": "rejected", "errors": [issue]}
    except OSError as error:
        return {
            **result,
            "status": "rejected",
            "errors": [{"line": None, "code": "unreadable", "message": str(error)}],
        }
    finally:
        if bar is not None:
            bar.close()
    return {**result, "status": "imported", **_summary(report, queued), "report": report.to_json()}


def _json_result(result: dict[str, Any]) -> dict[str, Any]:
    """One file's entry in ``--json`` output: its counts, warnings and per-MeterReading totals, or its
    errors."""
    document = {key: value for key, value in result.items() if key != "report"}
    report = result.get("report")
    if report is not None:
        document["warning_details"] = report["warnings"]
        document["meter_reading_totals"] = report["meter_reading_totals"]
    return document


def _print_human(results: list[dict[str, Any]]) -> None:
    for result in results:
        if result["status"] == "imported":
            print(
                f"imported {result['file']}: {result['usage_points']} usage point(s), "
                f"{result['meter_readings']} meter reading(s), "
                f"{result['interval_blocks']} interval block(s), "
                f"{result['interval_readings']} reading(s), {result['warnings']} warning(s), "
                f"{result['notifications_queued']} notification(s) queued"
            )
            report = result["report"]
            for totals in report["meter_reading_totals"]:
                cost = f", cost {totals['cost']:.2f} {totals['currency']}" if totals["cost"] is not None else ""
                print(f"  MeterReading {totals['meter_reading']}: {totals['consumption']:g} {totals['unit']}{cost}")
            for warning in report["warnings"]:
                print(f"  warning: line {warning['line']}: {warning['message']}", file=sys.stderr)
        else:
            print(f"error: {result['file']} rejected:", file=sys.stderr)
            for error in result["errors"]:
                where = f"line {error['line']}: " if error.get("line") is not None else ""
                print(f"  {where}{error['message']}", file=sys.stderr)


def import_command(args: argparse.Namespace) -> int:
    """Import each file for ``--customer`` and queue the FB 39 pushes of its new data; exit 1 if the customer is
    unknown or any file was rejected."""
    services = load_services(args)
    with session_scope(services.sessions) as session:
        get_customer_by_username(session, args.customer)  # NotFound → "error: no customer named …", exit 1
    results = [_import_one(args, services, Path(name)) for name in args.files]
    imported = [r for r in results if r["status"] == "imported"]
    if args.json:
        total = {key: sum(r[key] for r in imported) for key in _SUMMARY_KEYS}
        document = {
            "files": [_json_result(r) for r in results],
            "total": {
                "files": len(results),
                "imported": len(imported),
                "rejected": len(results) - len(imported),
                **total,
            },
        }
        print(json.dumps(document, indent=2))
    else:
        _print_human(results)
    return EXIT_OK if len(imported) == len(results) else EXIT_FAILURE
