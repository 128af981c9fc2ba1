"""``gateway client …``: register and list third-party applications (OAuth clients)."""

from __future__ import annotations

import argparse

from sqlalchemy import select

from gateway.commands.output import add_json_flag, emit, load_services
from gateway.customers import get_customer_by_username
from gateway.oauth.registration import GRANT_TYPES, register_client
from gateway.storage.engine import session_scope
from gateway.storage.models import ApplicationInformation, ClientRole


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "client", help="manage third-party applications", description="Manage registered applications (OAuth clients)."
    )
    commands = parser.add_subparsers(dest="client_command", required=True, metavar="COMMAND")

    add = commands.add_parser(
        "add",
        help="register an application",
        description=(
            "Register an application. Prints JSON with client_id, client_secret (shown once; absent for public "
            "clients), registration_access_token and registration_client_uri (its ApplicationInformation URL)."
        ),
    )
    add.add_argument("--name", required=True, metavar="N", help="the application's name, shown to customers")
    add.add_argument(
        "--redirect-uri",
        required=True,
        action="append",
        metavar="URI",
        help="an exact redirect URI: https, or http on a loopback address (repeatable)",
    )
    add.add_argument("--notify-uri", metavar="URI", help="where BatchList push notifications are POSTed")
    add.add_argument(
        "--scope",
        action="append",
        default=[],
        metavar="SCOPE",
        help="an ESPI scope string the app may ask for (repeatable)",
    )
    add.add_argument(
        "--grant-type",
        action="append",
        default=[],
        choices=GRANT_TYPES,
        metavar="G",
        help=f"a grant type the app may use (repeatable; one of {', '.join(GRANT_TYPES)})",
    )
    add.add_argument("--public", action="store_true", help="a public client (no secret; PKCE required)")
    add.add_argument(
        "--role",
        action="append",
        default=[],
        choices=ClientRole.ALL,
        metavar="ROLE",
        help=f"extra role (repeatable; one of {', '.join(ClientRole.ALL)}); default third_party",
    )
    add.add_argument("--owner", metavar="USERNAME", help="the customer owning a self-access (password grant) client")
    add.add_argument("--description", metavar="TEXT", help="what the app does, shown on the consent screen")
    add.add_argument("--client-uri", metavar="URI", help="the app's web site")
    add.add_argument("--contact", action="append", default=[], metavar="EMAIL", help="contact e-mail (repeatable)")
    add_json_flag(add)
    add.set_defaults(handler=add_command, json=True)

    listing = commands.add_parser("list", help="list applications", description="List registered applications.")
    add_json_flag(listing)
    listing.set_defaults(handler=list_command)


def add_command(args: argparse.Namespace) -> int:
    services = load_services(args)
    with session_scope(services.sessions) as session:
        owner_id = get_customer_by_username(session, args.owner).id if args.owner else None
        roles = args.role or ([ClientRole.SELF_ACCESS] if owner_id else [ClientRole.THIRD_PARTY])
        registered = register_client(
            session,
            services.settings,
            services.digester,
            name=args.name,
            redirect_uris=args.redirect_uri,
            notify_uri=args.notify_uri,
            scopes=args.scope,
            grant_types=args.grant_type,
            public=args.public,
            roles=roles,
            description=args.description,
            client_uri=args.client_uri,
            contacts=args.contact,
            owner_customer_id=owner_id,
        )
        document: dict[str, object] = {
            "id": registered.application.id,
            "client_id": registered.client_id,
            "client_name": registered.application.client_name,
            "redirect_uris": registered.application.redirect_uris,
            "scope": registered.application.scopes,
            "grant_types": registered.application.grant_types,
            "roles": registered.application.roles,
            "token_endpoint_auth_method": registered.application.token_endpoint_auth_method,
            "registration_access_token": registered.registration_access_token,
            "registration_client_uri": registered.registration_client_uri,
        }
        if registered.client_secret is not None:
            document["client_secret"] = registered.client_secret
        emit(args, document)
    return 0


def list_command(args: argparse.Namespace) -> int:
    services = load_services(args)
    with session_scope(services.sessions) as session:
        apps = session.scalars(select(ApplicationInformation).order_by(ApplicationInformation.id)).all()
        rows = [
            {
                "id": app.id,
                "client_id": app.client_id,
                "client_name": app.client_name,
                "public": app.is_public,
                "grant_types": app.grant_types,
                "roles": app.roles,
                "status": app.status,
            }
            for app in apps
        ]
    human = "\n".join(f"{r['id']:>4}  {r['client_id']:<28} {r['client_name']}" for r in rows)
    emit(args, rows, human or "no applications")
    return 0
