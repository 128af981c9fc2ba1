"""Checklist row 32 over the whole black-box run: the server's log holds none of the credentials the tests created.

Named ``test_zz_…`` so that pytest runs it after the other black-box modules (it collects files in name order); the
session fixture ``live`` repeats the scan at teardown, which also covers anything that ran later. The credentials
come from the HTTP-level registry of tests/blackbox/secret_registry.py (every token, code, client secret, password,
CSRF token and cookie sent or received), not from a hand-kept list.
"""

from __future__ import annotations

import requests

from tests.blackbox.secret_registry import registry
from tests.blackbox.test_checklist import client_token, get_code, redeem


def test_row_32_the_registry_sees_every_kind_of_credential(live):
    """The harvest works: a code, access and refresh tokens, a client secret and a password are registered."""
    client = live.client()
    code, verifier, _ = get_code(live, client)
    tokens = redeem(live, client, code, verifier).json()
    access = client_token(live, client)
    requests.get(live.resource("ReadServiceStatus"), headers={"Authorization": f"Bearer {access}"}, timeout=10)
    values = {value for value, _ in registry.items()}
    expected = {
        "authorization code": code,
        "PKCE verifier": verifier,
        "access token": tokens["access_token"],
        "refresh token": tokens["refresh_token"],
        "client secret": client.client_secret,
        "client_credentials token": access,
    }
    missing = [kind for kind, value in expected.items() if value not in values]
    assert not missing, f"checklist row 32: the log scan would not look for: {missing}"


def test_row_32_no_credential_of_the_run_in_the_log(live):
    """Every credential registered so far by the black-box run is absent from the gateway's log."""
    log = live.log()
    assert "/oauth/token" in log, "the access log is not being written: nothing to scan"
    leaked = registry.leaked_into(log)
    assert not leaked, f"checklist row 32: the gateway's log holds {len(leaked)} credential(s): {leaked}"
    print(f"row 32: {len(registry)} credentials scanned for in {len(log):,} characters of log")
