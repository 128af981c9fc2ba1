"""Keyed digests and random secrets for client secrets, tokens and codes (RFC 9700 §4.14, ESPI-NOTES §4).

Tokens and secrets are ≥ 128-bit random strings; only their HMAC-SHA256 under a key derived from the gateway's secret
key is stored. A fast keyed digest is right here: the inputs are random, so brute force is hopeless, and the key
means a stolen database alone cannot even confirm a guess. Comparisons are constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = ["SecretDigester", "new_secret"]

SECRET_BYTES = 32
"""256 bits of entropy for every token, secret and code we mint."""


def new_secret(nbytes: int = SECRET_BYTES) -> str:
    """A URL-safe random string with ``nbytes`` bytes of entropy from the OS CSPRNG."""
    return secrets.token_urlsafe(nbytes)


class SecretDigester:
    """Digest and compare secrets under a purpose-bound key derived from the gateway's secret key."""

    def __init__(self, secret_key: str, purpose: str = "token-digest") -> None:
        self._key = hmac.new(secret_key.encode(), purpose.encode(), hashlib.sha256).digest()

    def digest(self, value: str) -> str:
        """Hex HMAC-SHA256 of ``value``: what the database stores and looks up."""
        return hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()

    def matches(self, value: str, expected_digest: str | None) -> bool:
        """Constant-time check of ``value`` against a stored digest (``None`` never matches)."""
        computed = self.digest(value)
        return hmac.compare_digest(computed, expected_digest or "0" * len(computed)) and expected_digest is not None
