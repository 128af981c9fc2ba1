"""Transport security: every request over TLS when the gateway is public, proxies believed only when trusted.

oauthlib does not enforce https on the server side (PITFALLS: a token request over http succeeds), and RFC 6749
§3.1/§10.9 and RFC 9700 §2 require TLS for every endpoint. Behind a load balancer TLS ends at the proxy, so the
original scheme and client address come from ``X-Forwarded-Proto``/``X-Forwarded-For`` — believed only when the
direct peer is one of ``GATEWAY_TRUSTED_PROXIES``; anyone else could forge them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

import falcon

from gateway.errors import GatewayError

__all__ = ["HttpsRequired", "TransportSecurityMiddleware"]


class HttpsRequired(GatewayError):
    """A plain-http request reached a gateway whose public URL is https."""

    status = falcon.HTTP_403
    code = "https_required"
    title = "HTTPS required"


class TransportSecurityMiddleware:
    """Resolve the client's real scheme and address; refuse plain http when the gateway is served over https.

    Sets ``req.context.client_ip`` (for throttling and consent records) and ``req.context.scheme``. ``/healthz`` is
    exempt so that load balancers may probe over plain http inside the private network.
    """

    EXEMPT_PATHS = frozenset({"/healthz"})

    def __init__(self, *, require_https: bool, trusted_proxies: Sequence[str]) -> None:
        self._require_https = require_https
        self._trusted = tuple(ipaddress.ip_network(proxy, strict=False) for proxy in trusted_proxies)

    def _is_trusted(self, address: str | None) -> bool:
        if not address or not self._trusted:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._trusted)

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        peer = req.remote_addr
        scheme = req.scheme
        client_ip = peer
        if self._is_trusted(peer):
            forwarded_proto = req.get_header("X-Forwarded-Proto")
            if forwarded_proto:
                # The last value is the one our proxy added; earlier ones came from the client (a proxy that
                # appends rather than overwrites would otherwise let a plain-http client claim https).
                scheme = forwarded_proto.split(",")[-1].strip().lower()
            forwarded_for = req.get_header("X-Forwarded-For")
            if forwarded_for:
                # The right-most address not belonging to our proxies is the client as our proxies saw it.
                for candidate in reversed([part.strip() for part in forwarded_for.split(",") if part.strip()]):
                    client_ip = candidate
                    if not self._is_trusted(candidate):
                        break
        req.context.scheme = scheme
        req.context.client_ip = client_ip
        if self._require_https and scheme != "https" and req.path not in self.EXEMPT_PATHS:
            raise HttpsRequired("this gateway is served over https only; plain http requests are refused")

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool) -> None:
        return None
