"""CSRF tokens bound to a session (RFC 6749 §10.12)."""

from __future__ import annotations

import pytest

from gateway.web.csrf import CsrfError, CsrfTokens

KEY = "k" * 40


def test_a_token_checks_against_its_own_session():
    tokens = CsrfTokens(KEY)
    tokens.check("session-a", tokens.token("session-a"))


@pytest.mark.parametrize(
    ("binding", "presented"),
    [
        ("session-a", None),
        ("session-a", ""),
        (None, "x"),
        ("session-b", "token-of-a"),
        ("session-a", "forged"),
    ],
)
def test_missing_forged_or_foreign_tokens_fail(binding, presented):
    tokens = CsrfTokens(KEY)
    if presented == "token-of-a":
        presented = tokens.token("session-a")
    with pytest.raises(CsrfError):
        tokens.check(binding, presented)


def test_tokens_depend_on_the_secret_key():
    assert CsrfTokens(KEY).token("s") != CsrfTokens("j" * 40).token("s")
