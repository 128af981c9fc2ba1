"""``gateway notifications list [--failed]``: the push notifications to apps and how their delivery went (FB 39).

ESPI-NOTES §9: a custodian must notice and record failed deliveries. Every BatchList push is an outbox row; this
lists them (newest first) with the app, the notify URI, attempts, state, the worker that delivered it (``host:pid``)
and the last error, so an operator sees which app's endpoint is down and which node sent what. ``--failed`` shows
only those given up after the last retry.
"""

from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy import select

import gateway.notifications  # noqa: F401  (registers the espi_batch_list deliverer with every worker)
from gateway.commands.output import add_json_flag, emit, load_services
from gateway.notifications import pending_kinds
from gateway.storage.outbox import OutboxMessage, OutboxState

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "notifications",
        help="list push notifications to apps (ESPI BatchList) and their delivery",
        description="Push notifications to third-party apps and their delivery state (outbox rows).",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="list notifications, newest first")
    listing.add_argument("--failed", action="store_true", help="only those that failed for good")
    listing.add_argument("--pending", action="store_true", help="only those still waiting or retrying")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    add_json_flag(listing)
    listing.set_defaults(handler=list_notifications)


def list_notifications(args: argparse.Namespace) -> int:
    services = load_services(args)
    statement = select(OutboxMessage).where(OutboxMessage.kind.in_(list(pending_kinds())))
    if args.failed:
        statement = statement.where(OutboxMessage.state == OutboxState.FAILED)
    elif args.pending:
        statement = statement.where(OutboxMessage.state == OutboxState.PENDING)
    statement = statement.order_by(OutboxMessage.id.desc()).limit(max(1, args.limit))
    with services.sessions() as session:
        rows = list(session.scalars(statement))
        document: list[dict[str, Any]] = [
            {
                "id": row.id,
                "kind": row.kind,
                "state": row.state,
                "application_id": row.payload.get("application_id"),
                "uri": row.payload.get("uri"),
                "resources": row.payload.get("resources", []),
                "reason": row.payload.get("reason"),
                "attempts": row.attempts,
                "created_at": row.created_at.isoformat(),
                "next_attempt_at": row.next_attempt_at.isoformat() if row.state == OutboxState.PENDING else None,
                "delivered_at": row.delivered_at.isoformat() if row.delivered_at else None,
                "delivered_by": row.delivered_by,
                "last_error": row.last_error,
            }
            for row in rows
        ]
    lines = [
        f"#{item['id']} {item['state']:<9} app {item['application_id']} {item['uri']} "
        f"attempts {item['attempts']}"
        + (f"  delivered by {item['delivered_by']}" if item["delivered_by"] else "")
        + (f"  last error: {item['last_error']}" if item["last_error"] else "")
        for item in document
    ]
    emit(args, document, "\n".join(lines) if lines else "no notifications")
    services.engine.dispose()
    return 0
