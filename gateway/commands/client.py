"""``gateway client …``: register, list and re-credential third-party applications (OAuth clients)."""

from __future__ import annotations

import argparse

from sqlalchemy import select

from gateway.commands.output import add_json_flag, emit, load_services
from gateway.customers import get_customer_by_username
from gateway.oauth.registration import GRANT_TYPES, register_client, rotate_client_credentials
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
        help=(
            f"a grant type the app may use (repeatable; one of {', '.join(GRANT_TYPES)}); default: "
            "authorization_code, client_credentials and refresh_token (public clients: no client_credentials). "
            "A third-party app needs at least two of those three, as its ESPI ApplicationInformation lists them"
        ),
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

    rotate = commands.add_parser(
        "rotate-secret",
        help="issue a new client secret (the old one stops working at once)",
        description=(
            "Issue a new client secret for a confidential client, e.g. after a leak: the old secret stops working at "
            "once, the client id and every consent stay. Prints JSON with client_id and client_secret (shown once) "
            "and, with --registration-token, a new registration_access_token (the old one is revoked)."
        ),
    )
    rotate.add_argument("client_id", metavar="CLIENT_ID", help="the client id of the application")
    rotate.add_argument(
        "--registration-token",
        action="store_true",
        help="also revoke the registration access token and issue a new one",
    )
    add_json_flag(rotate)
    rotate.set_defaults(handler=rotate_secret_command)


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


def rotate_secret_command(args: argparse.Namespace) -> int:
    services = load_services(args)
    with session_scope(services.sessions) as session:
        rotated = rotate_client_credentials(
            session,
            services.settings,
            services.digester,
            args.client_id,
            registration_token=args.registration_token,
        )
    document: dict[str, object] = {
        "client_id": rotated.client_id,
        "client_secret": rotated.client_secret,
        "registration_client_uri": rotated.registration_client_uri,
    }
    if rotated.registration_access_token is not None:
        document["registration_access_token"] = rotated.registration_access_token
    # Printed only once the new digests are committed: a secret shown for a rolled-back change would not work.
    emit(args, document)
    return 0
