"""Customer password hashing with Argon2id (RFC 9106), through argon2-cffi.

Human passwords are low-entropy: they get a slow, memory-hard KDF. Random client secrets and tokens do not need one
(see :mod:`gateway.security.digests`).
"""

from __future__ import annotations

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = ["PasswordHasher"]

MIN_PASSWORD_LENGTH = 10


class PasswordHasher:
    """Hash and verify passwords; cost parameters come from settings (tests use small ones)."""

    def __init__(self, *, time_cost: int = 3, memory_cost_kib: int = 65_536) -> None:
        self._hasher = argon2.PasswordHasher(
            time_cost=time_cost, memory_cost=memory_cost_kib, parallelism=1, type=argon2.Type.ID
        )
        # Verified against when the user does not exist, so unknown users cost as much as wrong passwords.
        self._dummy_hash = self._hasher.hash("not-a-real-password-0123456789")

    def hash(self, password: str) -> str:
        """Return the PHC string of ``password`` (salt included)."""
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """Check ``password`` against ``password_hash`` in constant time; ``None`` burns the same time and fails."""
        try:
            return self._hasher.verify(password_hash or self._dummy_hash, password) and password_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """True when the hash was made with weaker parameters than the current ones."""
        return self._hasher.check_needs_rehash(password_hash)

    def upgraded_hash(self, password_hash: str | None, password: str) -> str | None:
        """After ``password`` verified against ``password_hash``: a new hash if the parameters changed, else ``None``.

        Only a successful login knows the password, so that is the one moment old hashes can be upgraded (the
        password itself is unchanged, so ``password_changed_at`` is not touched).
        """
        if password_hash is None or not self.needs_rehash(password_hash):
            return None
        return self.hash(password)

    @staticmethod
    def check_strength(password: str) -> str | None:
        """Return why ``password`` is unacceptable, or ``None`` (NIST SP 800-63B §5.1.1.2: length, not rules)."""
        if len(password) < MIN_PASSWORD_LENGTH:
            return f"the password must be at least {MIN_PASSWORD_LENGTH} characters long"
        if len(password) > 1024:
            return "the password must be at most 1024 characters long"
        return None
