"""Unit tests of the request validator and its helpers, with a real database session (no mocks)."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from oauthlib.common import Request
from oauthlib.oauth2.rfc6749 import errors

from gateway.oauth.server import _mint_token
from gateway.oauth.validator import GatewayRequestValidator, TooManyAttemptsError, redirect_uri_matches
from gateway.security.throttle import Throttle, ThrottleRule
from tests.functional.oauth.helpers import basic, make_client


@pytest.fixture
def validator(db, services) -> GatewayRequestValidator:
    return GatewayRequestValidator(db, services.settings, services.digester, services.passwords)


@pytest.fixture
def client(db, services):
    return make_client(db, services.settings, services.digester)


def token_request(body: str = "grant_type=client_credentials", headers: dict[str, str] | None = None) -> Request:
    return Request("http://127.0.0.1:8000/oauth/token", http_method="POST", body=body, headers=headers or {})


@pytest.mark.parametrize(
    ("registered", "requested", "ok"),
    [
        ("https://a.example/cb", "https://a.example/cb", True),
        ("https://a.example/cb", "https://a.example/cb/", False),
        ("https://a.example/cb", "https://A.example/cb", False),
        ("https://a.example/cb", "https://a.example:443/cb", False),
        ("http://127.0.0.1:9000/cb", "http://127.0.0.1:1234/cb", True),
        ("http://127.0.0.1:9000/cb", "http://127.0.0.1/cb", True),
        ("http://127.0.0.1:9000/cb", "http://127.0.0.2:9000/cb", False),
        ("http://127.0.0.1:9000/cb", "http://127.0.0.1:9000/cb?x=1", False),
        ("http://127.0.0.1:9000/cb", "http://127.0.0.1:9000/cb#f", False),
        ("http://[::1]:9000/cb", "http://[::1]:80/cb", True),
        ("http://127.0.0.1:9000/cb", "http://127.0.0.1:x/cb", False),
    ],
)
def test_redirect_uri_matching(registered: str, requested: str, ok: bool) -> None:
    assert redirect_uri_matches(registered, requested) is ok


def test_minted_tokens_are_distinct_and_at_least_128_bits() -> None:
    tokens = {_mint_token(None) for _ in range(10_000)}
    assert len(tokens) == 10_000
    for token in list(tokens)[:100]:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        assert len(raw) * 8 >= 128


def test_authenticate_client_sets_the_client(validator, client) -> None:
    request = token_request(headers={"Authorization": basic(client.client_id, client.client_secret)})
    assert validator.authenticate_client(request)
    assert request.client.client_id == client.client_id


def test_basic_plus_body_secret_raises_invalid_client(validator, client) -> None:
    request = token_request(
        f"grant_type=client_credentials&client_secret={client.client_secret}",
        headers={"Authorization": basic(client.client_id, client.client_secret)},
    )
    with pytest.raises(errors.InvalidClientError):
        validator.authenticate_client(request)


def test_introspection_validator_always_requires_authentication(db, services, client) -> None:
    strict = GatewayRequestValidator(
        db, services.settings, services.digester, services.passwords, require_client_authentication=True
    )
    public = make_client(
        db, services.settings, services.digester, public=True, grant_types=("authorization_code", "refresh_token")
    )
    assert strict.client_authentication_required(token_request(f"client_id={public.client_id}"))


def test_throttle_blocks_after_the_limit_and_lifts_after_the_window(db) -> None:
    now = [dt.datetime(2026, 1, 1, tzinfo=dt.UTC)]
    throttle = Throttle(clock=lambda: now[0])
    rule = ThrottleRule("test", limit=3, window=60)
    assert throttle.record_failure(db, rule, "k") is None
    assert throttle.record_failure(db, rule, "k") is None
    assert throttle.record_failure(db, rule, "k") == 61
    assert throttle.retry_after(db, rule, "K") == 61  # keys are case-insensitive
    now[0] += dt.timedelta(seconds=61)
    assert throttle.retry_after(db, rule, "k") is None
    assert throttle.record_failure(db, rule, "k") is None


def test_throttled_client_raises_429(db, services, client) -> None:
    from gateway.oauth.validator import ThrottlePolicy

    policy = ThrottlePolicy(client_secret=ThrottleRule("cs", limit=1, window=60))

    def validator() -> GatewayRequestValidator:  # one per request, as the resources build them
        return GatewayRequestValidator(
            db, services.settings, services.digester, services.passwords, throttle_policy=policy
        )

    assert not validator().authenticate_client(token_request(headers={"Authorization": basic(client.client_id, "bad")}))
    with pytest.raises(TooManyAttemptsError) as raised:
        validator().authenticate_client(
            token_request(headers={"Authorization": basic(client.client_id, client.client_secret)})
        )
    assert raised.value.status_code == 429
    assert raised.value.headers["Retry-After"]


def test_validate_scopes_rejects_what_is_not_registered(validator, client) -> None:
    request = token_request()
    assert not validator.validate_scopes(client.client_id, ["FB=1_17"], client.application, request)
    assert not validator.validate_scopes(client.client_id, ["FB=1;Nope=2"], client.application, request)
    assert validator.validate_scopes(client.client_id, ["FB=3_34_35_36_40_41"], client.application, request)


def test_throttle_purge_forgets_old_counters(db) -> None:
    now = [dt.datetime(2026, 1, 1, tzinfo=dt.UTC)]
    throttle = Throttle(clock=lambda: now[0])
    rule = ThrottleRule("purge", limit=100, window=60)
    throttle.record_failure(db, rule, "old")
    now[0] += dt.timedelta(hours=2)
    throttle.record_failure(db, rule, "new")
    assert throttle.purge(db, dt.timedelta(hours=1)) == 1
    assert throttle.retry_after(db, rule, "new") is None
