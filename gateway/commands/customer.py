"""``gateway customer …``: manage retail customers."""

from __future__ import annotations

import argparse
import sys

from sqlalchemy import CursorResult, delete, select

from gateway.commands.output import CommandError, add_json_flag, emit, load_services
from gateway.customers import add_customer, get_customer_by_username
from gateway.oauth.tokens import revoke_customer_refresh_tokens
from gateway.storage.base import utcnow
from gateway.storage.engine import session_scope
from gateway.storage.models import CustomerSession, RetailCustomer


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("customer", help="manage retail customers", description="Manage retail customers.")
    commands = parser.add_subparsers(dest="customer_command", required=True, metavar="COMMAND")

    add = commands.add_parser(
        "add",
        help="add a customer",
        description='Add a retail customer. Prints {"id": …, "username": …} as JSON.',
    )
    add.add_argument("username", metavar="USERNAME", help="login name (case-insensitive, stored in lower case)")
    add.add_argument("--email", required=True, metavar="E", help="e-mail address for consent notifications")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input (first line)")
    add_json_flag(add)
    add.set_defaults(handler=add_command, json=True)

    password = commands.add_parser(
        "set-password", help="set a customer's password", description="Set a customer's password, read from stdin."
    )
    password.add_argument("username", metavar="USERNAME")
    add_json_flag(password)
    password.set_defaults(handler=set_password_command)

    listing = commands.add_parser("list", help="list customers", description="List retail customers.")
    add_json_flag(listing)
    listing.set_defaults(handler=list_command)


def _read_password() -> str:
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass("Password: ")
    line = sys.stdin.readline()
    if not line:
        raise CommandError("no password on standard input")
    return line.rstrip("\r\n")


def add_command(args: argparse.Namespace) -> int:
    services = load_services(args)
    password = _read_password() if args.password_stdin else None
    with session_scope(services.sessions) as session:
        customer = add_customer(
            session, services.passwords, username=args.username, email=args.email, password=password
        )
        emit(args, {"id": customer.id, "username": customer.username})
    return 0


def set_password_command(args: argparse.Namespace) -> int:
    services = load_services(args)
    password = _read_password()
    problem = services.passwords.check_strength(password)
    if problem:
        raise CommandError(problem)
    with session_scope(services.sessions) as session:
        customer = get_customer_by_username(session, args.username)
        now = utcnow()
        customer.password_hash = services.passwords.hash(password)
        customer.password_changed_at = now
        # A new password ends every open browser session and every refresh token (RFC 9700 §4.14.2).
        ended = session.execute(delete(CustomerSession).where(CustomerSession.customer_id == customer.id))
        ended_count = ended.rowcount if isinstance(ended, CursorResult) else 0
        revoked = revoke_customer_refresh_tokens(session, customer.id, now)
        emit(
            args,
            {
                "id": customer.id,
                "username": customer.username,
                "password_changed": True,
                "sessions_ended": ended_count,
                "refresh_tokens_revoked": revoked,
            },
            f"password changed; {ended_count} session(s) ended, {revoked} refresh token(s) revoked",
        )
    return 0


def list_command(args: argparse.Namespace) -> int:
    services = load_services(args)
    with session_scope(services.sessions) as session:
        customers = session.scalars(select(RetailCustomer).order_by(RetailCustomer.username)).all()
        rows = [
            {"id": c.id, "username": c.username, "email": c.email, "usage_points": len(c.usage_points)}
            for c in customers
        ]
    human = "\n".join(
        f"{r['id']:>5}  {r['username']:<24} {r['email']:<32} {r['usage_points']} usage point(s)" for r in rows
    )
    emit(args, rows, human or "no customers")
    return 0
