"""``POST /validate`` is public and costs a child process per request: a rate limit per client address (RFC 6585 §4).

The address is the one the transport layer resolved (``X-Forwarded-For`` believed only from
``GATEWAY_TRUSTED_PROXIES``); the bucket is shared by every worker and node (``gateway/web/rate_limit.py``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import webtest

from gateway.app import create_app
from gateway.config import ConfigurationError, Settings
from gateway.services import Services

CASES = Path(__file__).resolve().parents[1] / "unit" / "espi" / "validator_cases"
VALID_FEED = (CASES / "valid" / "subscription_feed.xml").read_bytes()
ATOM = "application/atom+xml"
PROXY = "10.0.0.1"


def limited(services: Services, settings: Settings, **changes: object) -> webtest.TestApp:
    """The whole gateway with ``POST /validate`` limited to 2 at once, then one a minute (unless ``changes``)."""
    values: dict[str, object] = {
        "validate_rate_limit_per_minute": 1.0,
        "validate_rate_limit_burst": 2,
        "trusted_proxies": (PROXY,),
    }
    values.update(changes)
    changed = settings.replace(**values)
    return webtest.TestApp(
        create_app(changed, services=dataclasses.replace(services, settings=changed)),
        extra_environ={"REMOTE_ADDR": "203.0.113.9", "HTTP_HOST": "127.0.0.1:8000"},
    )


def post(app: webtest.TestApp, status: int | str = "*", **environ: str) -> webtest.TestResponse:
    return app.post("/validate", params=VALID_FEED, content_type=ATOM, status=status, extra_environ=environ)


@pytest.fixture
def validate_app(services: Services, settings: Settings) -> webtest.TestApp:
    return limited(services, settings)


def test_over_the_limit_is_429_with_retry_after(validate_app: webtest.TestApp) -> None:
    statuses = [post(validate_app).status_int for _ in range(3)]
    refused = post(validate_app, status=429)
    assert statuses == [200, 200, 429]
    assert 0 < int(refused.headers["Retry-After"]) <= 60


def test_the_429_says_what_limit_was_exceeded(validate_app: webtest.TestApp) -> None:
    for _ in range(2):
        post(validate_app, status=200)
    body = post(validate_app, status=429).json
    assert body["error"] == "too_many_requests"
    assert "1 requests per minute (bursts of 2)" in body["description"]


def test_the_limit_is_checked_before_the_request_is_looked_at(validate_app: webtest.TestApp) -> None:
    for _ in range(2):
        post(validate_app, status=200)
    response = validate_app.post("/validate", params=b"{}", content_type="application/json", status=429)
    assert response.json["error"] == "too_many_requests"


def test_each_address_has_its_own_budget(validate_app: webtest.TestApp) -> None:
    for _ in range(2):
        post(validate_app, status=200)
    post(validate_app, status=429)
    assert post(validate_app, REMOTE_ADDR="198.51.100.7").status_int == 200


def test_clients_behind_a_trusted_proxy_are_told_apart(validate_app: webtest.TestApp) -> None:
    for _ in range(2):
        post(validate_app, status=200, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="192.0.2.1")
    post(validate_app, status=429, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="192.0.2.1")
    assert post(validate_app, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="192.0.2.2").status_int == 200


def test_a_forged_forwarded_for_does_not_escape_the_limit(validate_app: webtest.TestApp) -> None:
    for n in range(2):
        post(validate_app, status=200, HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
    assert post(validate_app, HTTP_X_FORWARDED_FOR="192.0.2.99").status_int == 429


def test_addresses_of_one_ipv6_64_share_a_budget(validate_app: webtest.TestApp) -> None:
    for n in range(2):
        post(validate_app, status=200, REMOTE_ADDR=f"2001:db8:0:1::{n + 1}")
    assert post(validate_app, REMOTE_ADDR="2001:db8:0:1:abcd::9").status_int == 429


def test_zero_disables_the_limit(services: Services, settings: Settings) -> None:
    app = limited(services, settings, validate_rate_limit_per_minute=0.0)
    assert [post(app).status_int for _ in range(4)] == [200, 200, 200, 200]


def test_the_limit_is_read_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "GATEWAY_SECRET_KEY": "k" * 40,
            "GATEWAY_VALIDATE_RATE_LIMIT_PER_MINUTE": "12.5",
            "GATEWAY_VALIDATE_RATE_LIMIT_BURST": "3",
        }
    )
    assert (settings.validate_rate_limit_per_minute, settings.validate_rate_limit_burst) == (12.5, 3)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("GATEWAY_VALIDATE_RATE_LIMIT_PER_MINUTE", "-1"),
        ("GATEWAY_VALIDATE_RATE_LIMIT_PER_MINUTE", "lots"),
        ("GATEWAY_VALIDATE_RATE_LIMIT_BURST", "0"),
    ],
)
def test_a_bad_limit_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=variable):
        Settings.from_env({"GATEWAY_SECRET_KEY": "k" * 40, variable: value})
