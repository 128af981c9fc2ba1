"""Keyed digests and random secrets for client secrets, tokens and codes (RFC 9700 §4.14, ESPI-NOTES §4).

Tokens and secrets are ≥ 128-bit random strings; only their HMAC-SHA256 under a key derived from the gateway's secret
key is stored. A fast keyed digest is right here: the inputs are random, so brute force is hopeless, and the key
means a stolen database alone cannot even confirm a guess. Comparisons are constant-time.

Key rotation: a new ``GATEWAY_SECRET_KEY`` digests everything new, while the keys listed in
``GATEWAY_PREVIOUS_SECRET_KEYS`` are still tried on lookup (:meth:`SecretDigester.lookup_digests`), so tokens and
client secrets issued before the rotation keep working until they expire or are re-digested on use.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence

__all__ = ["SecretDigester", "new_secret"]

SECRET_BYTES = 32
"""256 bits of entropy for every token, secret and code we mint."""


def new_secret(nbytes: int = SECRET_BYTES) -> str:
    """A URL-safe random string with ``nbytes`` bytes of entropy from the OS CSPRNG."""
    return secrets.token_urlsafe(nbytes)


def _derive(secret_key: str, purpose: str) -> bytes:
    return hmac.new(secret_key.encode(), purpose.encode(), hashlib.sha256).digest()


class SecretDigester:
    """Digest and compare secrets under a purpose-bound key derived from the gateway's secret key."""

    def __init__(self, secret_key: str, purpose: str = "token-digest", *, previous_keys: Sequence[str] = ()) -> None:
        self._key = _derive(secret_key, purpose)
        self._previous = tuple(_derive(key, purpose) for key in previous_keys)

    @staticmethod
    def _hmac(key: bytes, value: str) -> str:
        return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()

    def digest(self, value: str) -> str:
        """Hex HMAC-SHA256 of ``value`` under the current key: what the database stores."""
        return self._hmac(self._key, value)

    def lookup_digests(self, value: str) -> tuple[str, ...]:
        """Every digest ``value`` may be stored under (current key first): look rows up with ``IN``."""
        return (self.digest(value), *(self._hmac(key, value) for key in self._previous))

    def matches(self, value: str, expected_digest: str | None) -> bool:
        """Constant-time check of ``value`` against a stored digest under any known key (``None`` never matches)."""
        if expected_digest is None:
            self.digest(value)  # same work either way
            return False
        found = False
        for candidate in self.lookup_digests(value):
            found |= hmac.compare_digest(candidate, expected_digest)
        return found

    def is_current(self, expected_digest: str, value: str) -> bool:
        """True when ``expected_digest`` was made with the current key (else re-digest it on use)."""
        return hmac.compare_digest(self.digest(value), expected_digest)
