"""Client registration: validation of a third-party application's metadata and issuing its credentials.

Implements the checks of RFC 6749 §3.1.2 (redirection endpoint), RFC 8252 §7.3 (loopback redirects for native
apps), RFC 7591 §2–3 (client metadata, registration access token) and ESPI ``ApplicationInformation``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import unicodedata
import uuid
from collections.abc import Sequence
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.config import Settings, is_loopback_host
from gateway.errors import BadRequest, Conflict, NotFound
from gateway.oauth.scope import ScopeError, parse_scope
from gateway.oauth.server import GRANT_TYPES
from gateway.oauth.validator import NEVER_EXPIRES
from gateway.security.digests import SecretDigester, new_secret
from gateway.storage.application import ESPI_GRANT_TYPES, MIN_ESPI_GRANT_TYPES
from gateway.storage.base import utcnow
from gateway.storage.ids import stable_uuid
from gateway.storage.models import (
    ApplicationInformation,
    ApplicationStatus,
    Authorization,
    AuthorizationKind,
    AuthorizationStatus,
    ClientRole,
    OAuthToken,
    TokenType,
)
from gateway.storage.oauth import SubjectKind

__all__ = [
    "GRANT_TYPES",
    "RegisteredClient",
    "RotatedCredentials",
    "register_client",
    "rotate_client_credentials",
    "rotate_client_secret",
    "rotate_registration_token",
    "validate_grant_types",
    "validate_notify_uri",
    "validate_redirect_uri",
    "validate_scopes",
]

DEFAULT_GRANT_TYPES = ("authorization_code", "client_credentials", "refresh_token")
PUBLIC_DEFAULT_GRANT_TYPES = ("authorization_code", "refresh_token")
"""A public client has no secret for client_credentials (RFC 6749 §4.4 needs client authentication)."""
DEFAULT_SCOPE = (
    "FB=1_3_4_5_8_10_12_13_14_15_16_18_31_35_37_39_40_41;IntervalDuration=900_3600;BlockDuration=daily;HistoryLength=13"
)
_LINE_BREAKING = frozenset({"Cc", "Zl", "Zp"})  # control characters, line and paragraph separators


def validate_redirect_uri(uri: str) -> str:
    """Return ``uri`` if it may be registered, else raise :class:`BadRequest` saying why.

    Absolute, no fragment (RFC 6749 §3.1.2), no credentials, https; plain http only on a loopback address
    (RFC 8252 §7.3, §8.3). Matching at authorization time is exact, so what is stored here is what must be sent.
    """
    if len(uri) > 2048:
        raise BadRequest("redirect URI is longer than 2048 characters")
    parts = urlsplit(uri)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise BadRequest(f"redirect URI {uri!r} must be an absolute https URL")
    if parts.fragment or "#" in uri:
        raise BadRequest(f"redirect URI {uri!r} must not contain a fragment (RFC 6749 §3.1.2)")
    if parts.username or parts.password or "@" in parts.netloc:
        raise BadRequest(f"redirect URI {uri!r} must not contain credentials")
    if "*" in uri:
        raise BadRequest(f"redirect URI {uri!r} must not contain wildcards")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise BadRequest(
            f"redirect URI {uri!r} must use https; http is allowed only on a loopback address (RFC 8252 §7.3)"
        )
    if parts.hostname == "localhost":
        raise BadRequest(f"redirect URI {uri!r}: use 127.0.0.1 or [::1] rather than localhost (RFC 8252 §8.3)")
    return uri


def validate_notify_uri(uri: str, *, development: bool = False) -> str:
    """Return ``uri`` if the gateway may POST notifications to it (ESPI-NOTES §9), else raise :class:`BadRequest`.

    Unlike a redirect URI, the gateway itself calls this one (SSRF, RFC 9700 §4.1 in spirit): https only, no
    credentials, and an IP-literal host must be a public address: loopback, private, link-local (cloud metadata at
    169.254.169.254), unique-local (``fd00::/8``) and other special addresses are refused. ``development`` (the
    gateway's own base URL is loopback) allows plain http and loopback addresses, for apps on the same machine.
    Host names are resolved and checked again at delivery time (:mod:`gateway.outbox.delivery`).
    """
    if len(uri) > 2048:
        raise BadRequest("notify URI is longer than 2048 characters")
    parts = urlsplit(uri)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise BadRequest(f"notify URI {uri!r} must be an absolute https URL")
    if parts.fragment or "#" in uri:
        raise BadRequest(f"notify URI {uri!r} must not contain a fragment")
    if parts.username or parts.password or "@" in parts.netloc:
        raise BadRequest(f"notify URI {uri!r} must not contain credentials")
    loopback = is_loopback_host(parts.hostname)
    if parts.scheme == "http" and not (development and loopback):
        raise BadRequest(f"notify URI {uri!r} must use https")
    if loopback and not development:
        raise BadRequest(f"notify URI {uri!r} must not point at the gateway's own machine")
    try:
        address = ipaddress.ip_address(parts.hostname.split("%", 1)[0])
    except ValueError:
        return uri  # a host name: checked when it is resolved, at delivery time
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if not address.is_loopback and (not address.is_global or address.is_multicast):
        raise BadRequest(f"notify URI {uri!r} must not point at a private, link-local or special address")
    return uri


def validate_scopes(scopes: Sequence[str]) -> list[str]:
    """Parse each ESPI scope string, returning canonical forms; raise :class:`BadRequest` naming the bad one."""
    if not scopes:
        raise BadRequest("at least one scope is required")
    canonical: list[str] = []
    for scope in scopes:
        try:
            canonical.append(str(parse_scope(scope)))
        except ScopeError as error:
            raise BadRequest(f"scope {scope!r} is invalid: {error}") from None
    return list(dict.fromkeys(canonical))


def validate_grant_types(grant_types: Sequence[str], *, public: bool) -> list[str]:
    """Check grant types against the four we serve; public clients may use only authorization_code and refresh."""
    chosen = list(dict.fromkeys(grant_types)) or list(PUBLIC_DEFAULT_GRANT_TYPES if public else DEFAULT_GRANT_TYPES)
    for grant in chosen:
        if grant not in GRANT_TYPES:
            raise BadRequest(f"grant type {grant!r} is not supported; choose from {', '.join(GRANT_TYPES)}")
    if public:
        forbidden = [grant for grant in chosen if grant in ("client_credentials", "password")]
        if forbidden:
            raise BadRequest(f"a public client cannot use {', '.join(forbidden)} (it has no secret)")
    if "refresh_token" in chosen and not {"authorization_code", "password"} & set(chosen):
        raise BadRequest("refresh_token needs authorization_code or password to obtain a first token")
    return chosen


@dataclasses.dataclass(frozen=True, slots=True)
class RegisteredClient:
    """What a registration returns: shown once, since only digests are stored."""

    application: ApplicationInformation
    client_id: str
    client_secret: str | None
    registration_access_token: str
    registration_client_uri: str


def register_client(
    session: Session,
    settings: Settings,
    digester: SecretDigester,
    *,
    name: str,
    redirect_uris: Sequence[str],
    notify_uri: str | None = None,
    scopes: Sequence[str] = (),
    grant_types: Sequence[str] = (),
    public: bool = False,
    roles: Sequence[str] = (ClientRole.THIRD_PARTY,),
    description: str | None = None,
    client_uri: str | None = None,
    logo_uri: str | None = None,
    contacts: Sequence[str] = (),
    owner_customer_id: int | None = None,
    client_id: str | None = None,
    token_endpoint_auth_method: str | None = None,
    require_pkce: bool = True,
) -> RegisteredClient:
    """Register an application and issue its client secret and registration access token (RFC 7591 §3.2.1).

    ``token_endpoint_auth_method`` is ``client_secret_basic`` (the default for confidential clients) or
    ``client_secret_post``; the token endpoint honours it (RFC 7591 §2). PKCE is required unless
    ``require_pkce=False``, which public clients cannot choose (RFC 9700 §2.1.1).
    """
    name = name.strip()
    if not name or len(name) > 256:
        raise BadRequest("the client name must be 1 to 256 characters")
    if any(unicodedata.category(character) in _LINE_BREAKING for character in name):
        # The name goes into mail subjects and pages: a line break or control character would break them.
        raise BadRequest("the client name must not contain control characters or line breaks")
    if not redirect_uris:
        raise BadRequest("at least one redirect URI is required")
    uris = [validate_redirect_uri(uri) for uri in dict.fromkeys(redirect_uris)]
    if notify_uri is not None:
        validate_notify_uri(notify_uri, development=is_loopback_host(urlsplit(settings.base_url).hostname))
    canonical_scopes = validate_scopes(list(scopes) or [DEFAULT_SCOPE])
    grants = validate_grant_types(grant_types, public=public)
    for role in roles:
        if role not in ClientRole.ALL:
            raise BadRequest(f"role {role!r} is unknown; choose from {', '.join(ClientRole.ALL)}")
    espi_grants = ESPI_GRANT_TYPES.intersection(grants)
    if ClientRole.THIRD_PARTY in roles and len(espi_grants) < MIN_ESPI_GRANT_TYPES:
        # Its ESPI ApplicationInformation could not be written: the schema wants two or more grant_types.
        raise BadRequest(
            "a third-party application needs at least two of the ESPI grant types "
            f"{', '.join(sorted(ESPI_GRANT_TYPES))} (ApplicationInformation lists two or more grant_types); "
            f"{', '.join(grants)} {'is' if len(grants) == 1 else 'are'} not enough"
        )
    if public:
        auth_method = "none"
    else:
        auth_method = token_endpoint_auth_method or "client_secret_basic"
        if auth_method not in ("client_secret_basic", "client_secret_post"):
            raise BadRequest(
                f"token endpoint auth method {auth_method!r} is not supported; "
                "choose client_secret_basic or client_secret_post"
            )
    client_id = client_id or f"gbc_{new_secret(16)}"
    if session.scalar(select(ApplicationInformation.id).where(ApplicationInformation.client_id == client_id)):
        raise BadRequest(f"client id {client_id!r} is already registered")
    secret = None if public else new_secret()
    now = utcnow()
    application = ApplicationInformation(
        uuid=stable_uuid("ApplicationInformation", client_id),
        client_id=client_id,
        client_secret_digest=None if secret is None else digester.digest(secret),
        client_name=name,
        description=description,
        software_id=name,
        client_uri=client_uri,
        logo_uri=logo_uri,
        contacts=list(contacts),
        redirect_uris=uris,
        notify_uri=notify_uri,
        scopes=canonical_scopes,
        grant_types=grants,
        roles=list(roles),
        token_endpoint_auth_method=auth_method,
        require_pkce=require_pkce or public,
        status=ApplicationStatus.PRODUCTION,
        client_id_issued_at=now,
        owner_customer_id=owner_customer_id,
    )
    session.add(application)
    session.flush()
    registration = Authorization(
        uuid=uuid.uuid4(),
        kind=AuthorizationKind.REGISTRATION,
        application_id=application.id,
        status=AuthorizationStatus.ACTIVE,
        expires_at=NEVER_EXPIRES,
        grant_type="client_credentials",
        scope="FB=36_40",
    )
    session.add(registration)
    session.flush()
    return RegisteredClient(
        application=application,
        client_id=client_id,
        client_secret=secret,
        registration_access_token=_issue_registration_token(session, digester, application, registration.id),
        registration_client_uri=_registration_client_uri(settings, application),
    )


def _registration_client_uri(settings: Settings, application: ApplicationInformation) -> str:
    return f"{settings.resource_base_url}/ApplicationInformation/{application.id}"


def _issue_registration_token(
    session: Session, digester: SecretDigester, application: ApplicationInformation, authorization_id: int
) -> str:
    """Mint a registration access token (RFC 7591 §3.2.1) under the registration Authorization; store its digest."""
    token = new_secret()
    session.add(
        OAuthToken(
            digest=digester.digest(token),
            token_type=TokenType.REGISTRATION,
            subject_kind=SubjectKind.REGISTRATION,
            application_id=application.id,
            authorization_id=authorization_id,
            scope="FB=36_40",
        )
    )
    session.flush()
    return token


def rotate_client_secret(application: ApplicationInformation, digester: SecretDigester) -> str:
    """Issue a new client secret for a confidential client (the old one stops working at once)."""
    if application.is_public:
        raise BadRequest("a public client has no secret to rotate")
    secret = new_secret()
    application.client_secret_digest = digester.digest(secret)
    return secret


def rotate_registration_token(
    session: Session, digester: SecretDigester, application: ApplicationInformation, *, now: dt.datetime
) -> str:
    """Revoke the application's registration access tokens and issue a new one (RFC 7592 §3 lets the server
    rotate it); the old ones stop working at once."""
    session.execute(
        update(OAuthToken)
        .where(
            OAuthToken.application_id == application.id,
            OAuthToken.token_type == TokenType.REGISTRATION,
            OAuthToken.revoked_at.is_(None),
        )
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    registration_id = session.scalar(
        select(Authorization.id)
        .where(
            Authorization.application_id == application.id,
            Authorization.kind == AuthorizationKind.REGISTRATION,
            Authorization.status == AuthorizationStatus.ACTIVE,
        )
        .order_by(Authorization.id)
        .limit(1)
    )
    if registration_id is None:
        raise Conflict(f"client {application.client_id!r} has no active registration to issue a token under")
    return _issue_registration_token(session, digester, application, registration_id)


@dataclasses.dataclass(frozen=True, slots=True)
class RotatedCredentials:
    """What a rotation returns: shown once, since only digests are stored."""

    client_id: str
    client_secret: str
    registration_client_uri: str
    registration_access_token: str | None = None
    """Only when it was rotated too."""


def rotate_client_credentials(
    session: Session,
    settings: Settings,
    digester: SecretDigester,
    client_id: str,
    *,
    registration_token: bool = False,
    now: dt.datetime | None = None,
) -> RotatedCredentials:
    """Give a registered confidential client a new secret and, with ``registration_token``, a new registration
    access token (RFC 7591 §3.2.1, RFC 7592 §3): the old ones stop working at once.

    What the client already holds from its grants stays valid: its customers need not consent again (which
    registering the app anew, with a new client id, would force on them). Public and deregistered clients are
    refused.
    """
    application = session.scalar(select(ApplicationInformation).where(ApplicationInformation.client_id == client_id))
    if application is None:
        raise NotFound(f"no client with client_id {client_id!r}")
    if application.status == ApplicationStatus.REVOKED:
        raise Conflict(f"client {client_id!r} is deregistered: its credentials cannot be renewed")
    if application.is_public:
        raise BadRequest(f"client {client_id!r} is a public client: it has no secret to rotate")
    secret = rotate_client_secret(application, digester)
    token = (
        rotate_registration_token(session, digester, application, now=now or utcnow()) if registration_token else None
    )
    session.flush()
    return RotatedCredentials(
        client_id=application.client_id,
        client_secret=secret,
        registration_client_uri=_registration_client_uri(settings, application),
        registration_access_token=token,
    )
