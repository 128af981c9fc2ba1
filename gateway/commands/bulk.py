"""``gateway bulk list [--state S]``: the ``Batch/Bulk`` requests built in the background (FB 35; ESPI-NOTES §9).

A very large bulk is answered 202 and built by ``gateway worker`` (:mod:`gateway.outbox.bulk_builder`). This lists the
jobs, newest first: the app, bulk id and canonical query, the state (pending, building, ready, failed), attempts and
the last error, the subscriptions and sizes of a ready result and when it expires, so an operator sees a build that
keeps failing or a result nobody fetched.
"""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from gateway.commands.output import add_json_flag, emit, load_services
from gateway.storage.bulk import BulkRequest, BulkState, list_bulk_requests

__all__ = ["register"]

_STATES = (BulkState.PENDING, BulkState.BUILDING, BulkState.READY, BulkState.FAILED)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "bulk",
        help="list Batch/Bulk requests built in the background",
        description="Batch/Bulk requests answered 202 and built by the worker: state, attempts, errors and sizes.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="list bulk requests, newest first")
    listing.add_argument("--state", choices=_STATES, help="only those in this state")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    add_json_flag(listing)
    listing.set_defaults(handler=list_bulks)


def _time(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def describe(job: BulkRequest) -> dict[str, Any]:
    """One job as the JSON document ``--json`` prints."""
    return {
        "id": job.id,
        "application_id": job.application_id,
        "bulk_id": job.bulk_id,
        "query": job.query,
        "state": job.state,
        "attempts": job.attempts,
        "last_error": job.last_error,
        "estimated_readings": job.estimated_readings,
        "subscriptions": job.subscriptions,
        "feed_bytes": job.feed_bytes,
        "stored_bytes": job.stored_bytes,
        "chunks": job.chunks,
        "requested_at": _time(job.requested_at),
        "started_at": _time(job.started_at),
        "ready_at": _time(job.ready_at),
        "expires_at": _time(job.expires_at),
        "failed_at": _time(job.failed_at),
        "next_attempt_at": _time(job.next_attempt_at) if job.state == BulkState.PENDING else None,
        "lease_until": _time(job.lease_until) if job.state == BulkState.BUILDING else None,
    }


def _line(item: dict[str, Any]) -> str:
    query = f"?{item['query']}" if item["query"] else ""
    line = f"#{item['id']} {item['state']:<8} app {item['application_id']} {item['bulk_id']}{query} "
    line += f"attempts {item['attempts']}"
    if item["state"] == BulkState.READY:
        line += (
            f"  {item['subscriptions']} subscriptions, {item['feed_bytes']} bytes "
            f"({item['stored_bytes']} gzip), expires {item['expires_at']}"
        )
    if item["last_error"]:
        line += f"  last error: {item['last_error']}"
    return line


def list_bulks(args: argparse.Namespace) -> int:
    services = load_services(args)
    with services.sessions() as session:
        document = [describe(job) for job in list_bulk_requests(session, state=args.state, limit=args.limit)]
    emit(args, document, "\n".join(_line(item) for item in document) if document else "no bulk requests")
    services.engine.dispose()
    return 0
