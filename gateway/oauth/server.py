"""The authorization server, composed from oauthlib's endpoint classes with exactly our four grants.

Not ``oauthlib.oauth2.Server``: it also turns on the implicit and device grants and advertises ``plain`` PKCE
(PITFALLS: oauthlib; RFC 9700 §2.1.2). Everything is passed by keyword because the positional order differs between
oauthlib's pre-configured classes. Building the endpoints costs microseconds, so a server is built per request around
a validator holding that request's database session.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from oauthlib.oauth2 import (
    AuthorizationCodeGrant,
    AuthorizationEndpoint,
    BearerToken,
    ClientCredentialsGrant,
    IntrospectEndpoint,
    MetadataEndpoint,
    RefreshTokenGrant,
    ResourceOwnerPasswordCredentialsGrant,
    RevocationEndpoint,
    TokenEndpoint,
)
from oauthlib.oauth2.rfc6749.grant_types.authorization_code import code_challenge_method_s256

from gateway.config import Settings
from gateway.oauth.validator import GatewayRequestValidator
from gateway.security.digests import new_secret

__all__ = ["GRANT_TYPES", "OAuthServer", "build_server", "metadata"]

GRANT_TYPES = ("authorization_code", "client_credentials", "refresh_token", "password")

_OAUTHLIB_LOG = logging.getLogger("oauthlib")


def _mint_token(request: Any) -> str:
    """Opaque bearer strings from the OS CSPRNG: 256 bits (RFC 6749 §10.10, RFC 6750 §5.2)."""
    return new_secret()


@dataclasses.dataclass(frozen=True, slots=True)
class OAuthServer:
    """The four oauthlib endpoints we serve."""

    authorization: AuthorizationEndpoint
    token: TokenEndpoint
    revocation: RevocationEndpoint
    introspection: IntrospectEndpoint


def build_server(
    settings: Settings, validator: GatewayRequestValidator, introspection_validator: GatewayRequestValidator
) -> OAuthServer:
    """Compose the endpoints around ``validator`` (introspection gets one that always demands authentication)."""
    # oauthlib logs whole token responses and codes at DEBUG level; they must never reach our logs (row 32).
    # (Only when needed: setLevel clears every logger's cache, which is costly per request.)
    if not _OAUTHLIB_LOG.level >= logging.INFO:
        _OAUTHLIB_LOG.setLevel(logging.INFO)
    bearer = BearerToken(
        request_validator=validator,
        token_generator=_mint_token,
        refresh_token_generator=_mint_token,
        expires_in=settings.access_token_ttl,
    )
    authenticate_first = [validator.pre_token_authenticate_client]
    code_grant = AuthorizationCodeGrant(
        request_validator=validator,
        pre_auth=[validator.pre_auth_force_query_response_mode],
        post_auth=[validator.post_auth_check_code_challenge],
        pre_token=authenticate_first,
        post_token=[validator.post_token_refuse_pkce_downgrade],
    )
    # S256 only (RFC 9700 §2.1.1): with ``plain`` gone, oauthlib itself refuses it, and a missing method (which it
    # defaults to ``plain``) too; the metadata derives its list from this table, so it says S256 only as well.
    code_grant._code_challenge_methods = {"S256": code_challenge_method_s256}  # type: ignore[attr-defined]
    code_grant.register_code_modifier(validator.code_modifier)
    password_grant = ResourceOwnerPasswordCredentialsGrant(
        request_validator=validator,
        pre_token=[validator.pre_token_authenticate_client, validator.pre_token_password_allowed],
    )
    client_grant = ClientCredentialsGrant(request_validator=validator, pre_token=authenticate_first)
    refresh_grant = RefreshTokenGrant(
        request_validator=validator, issue_new_refresh_tokens=True, pre_token=authenticate_first
    )
    return OAuthServer(
        authorization=AuthorizationEndpoint(
            default_response_type="code",
            default_token_type=bearer,  # type: ignore[arg-type]  # the stubs say str; oauthlib calls it
            response_types={"code": code_grant},
        ),
        token=TokenEndpoint(
            default_grant_type="authorization_code",
            default_token_type=bearer,  # type: ignore[arg-type]  # the stubs say str; oauthlib calls it
            grant_types={
                "authorization_code": code_grant,
                "client_credentials": client_grant,
                "refresh_token": refresh_grant,
                "password": password_grant,
            },
        ),
        revocation=RevocationEndpoint(
            request_validator=validator, supported_token_types=("access_token", "refresh_token")
        ),
        introspection=IntrospectEndpoint(
            request_validator=introspection_validator, supported_token_types=("access_token", "refresh_token")
        ),
    )


def metadata(settings: Settings, server: OAuthServer) -> dict[str, Any]:
    """RFC 8414 §2 metadata, derived from the composed endpoints so that it cannot drift from what we serve."""
    issuer = settings.issuer
    claims: dict[str, Any] = {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/oauth/authorize",
        "token_endpoint": f"{issuer}/oauth/token",
        "revocation_endpoint": f"{issuer}/oauth/revoke",
        "introspection_endpoint": f"{issuer}/oauth/introspect",
        # "none" is how public clients (PKCE only) present themselves at the token and revocation endpoints.
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "response_modes_supported": ["query"],
        "authorization_response_iss_parameter_supported": True,
        "scopes_supported": ["offline_access"],
        # Not RFC 8414 names: our extensions, documented in docs/consent-api.md and docs/resource-api.md.
        "consent_request_endpoint": f"{issuer}/oauth/consent-requests",
        "background_subscriptions_endpoint": f"{issuer}/oauth/background/subscriptions",
        "background_token_endpoint": f"{issuer}/oauth/background/tokens",
    }
    # raise_errors=False: oauthlib insists on an https issuer even for the loopback development URL (RFC 8252).
    endpoint = MetadataEndpoint(
        endpoints=[server.authorization, server.token, server.revocation, server.introspection],
        claims=claims,
        raise_errors=False,
    )
    return dict(endpoint.claims)
