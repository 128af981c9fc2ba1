"""Keyed digests of tokens and client secrets, and secret-key rotation."""

from __future__ import annotations

from gateway.security.digests import SecretDigester, new_secret

OLD = "old-secret-key-0123456789abcdefghijklmnop"
NEW = "new-secret-key-0123456789abcdefghijklmnop"


def test_new_secrets_carry_256_bits_and_never_repeat():
    secrets = {new_secret() for _ in range(10_000)}
    assert len(secrets) == 10_000
    assert all(len(secret) == 43 for secret in secrets)  # 32 bytes, base64url without padding


def test_digest_depends_on_key_and_purpose():
    value = new_secret()
    assert SecretDigester(OLD).digest(value) != SecretDigester(NEW).digest(value)
    assert SecretDigester(OLD, "a").digest(value) != SecretDigester(OLD, "b").digest(value)
    assert value not in SecretDigester(OLD).digest(value)


def test_matches_only_the_right_value():
    digester = SecretDigester(OLD)
    value = new_secret()
    stored = digester.digest(value)
    assert digester.matches(value, stored)
    assert not digester.matches(value + "x", stored)
    assert not digester.matches(value, None)


def test_rotation_keeps_old_digests_valid_and_digests_new_ones_with_the_new_key():
    value = new_secret()
    stored_before_rotation = SecretDigester(OLD).digest(value)
    rotated = SecretDigester(NEW, previous_keys=[OLD])
    assert rotated.matches(value, stored_before_rotation)
    assert stored_before_rotation in rotated.lookup_digests(value)
    assert rotated.lookup_digests(value)[0] == rotated.digest(value) == SecretDigester(NEW).digest(value)
    assert not rotated.is_current(stored_before_rotation, value)
    assert rotated.is_current(rotated.digest(value), value)


def test_without_the_previous_key_old_digests_stop_matching():
    value = new_secret()
    assert not SecretDigester(NEW).matches(value, SecretDigester(OLD).digest(value))
