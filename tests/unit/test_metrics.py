"""The metrics computed from the database (token and outbox gauges) and the process counter of tokens issued."""

from __future__ import annotations

import datetime as dt

import pytest

import gateway.notifications  # noqa: F401  (registers the espi_batch_list deliverer, as the app does)
from gateway.metrics import Metrics, outbox_gauges, outbox_kinds, token_gauges
from gateway.oauth.server import build_server
from gateway.oauth.validator import GatewayRequestValidator
from gateway.outbox.delivery import default_deliverers
from gateway.outbox.queue import enqueue
from gateway.storage.models import OAuthToken, TokenType
from gateway.storage.oauth import SubjectKind
from gateway.storage.outbox import OutboxState
from tests.functional.oauth.helpers import CLIENT_SCOPE, basic, make_client

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def samples(metric_families, name: str) -> dict[tuple[str, ...], float]:
    return {
        tuple(sample.labels.values()): sample.value
        for family in metric_families
        for sample in family.samples
        if sample.name == name
    }


@pytest.fixture
def application_id(db, services) -> int:
    return make_client(db, services.settings, services.digester).application.id


def add_token(db, application_id: int, number: int, **values) -> None:
    row = {
        "digest": f"{number:064x}",
        "token_type": TokenType.ACCESS,
        "subject_kind": SubjectKind.CLIENT,
        "application_id": application_id,
        "scope": CLIENT_SCOPE,
        "issued_at": NOW,
        "expires_at": NOW + dt.timedelta(hours=1),
    }
    db.add(OAuthToken(**{**row, **values}))
    db.flush()


def test_token_gauge_rows_do_not_grow_with_the_tokens(db, application_id):
    for number in range(20):  # every one with its own expiry: the old query made a row of each
        add_token(db, application_id, number, expires_at=NOW + dt.timedelta(minutes=number + 1))
    assert len(samples(token_gauges(db), "gateway_oauth_tokens")) == 10


@pytest.mark.parametrize(
    ("values", "labels"),
    [
        ({}, ("access", "live")),
        ({"expires_at": NOW - dt.timedelta(seconds=1)}, ("access", "expired")),
        ({"revoked_at": NOW, "expires_at": NOW - dt.timedelta(seconds=1)}, ("access", "revoked")),
        ({"token_type": TokenType.REFRESH, "rotated_at": NOW}, ("refresh", "rotated")),
        ({"token_type": TokenType.REFRESH, "rotated_at": NOW, "revoked_at": NOW}, ("refresh", "revoked")),
        ({"token_type": TokenType.REGISTRATION, "expires_at": None}, ("registration", "live")),
    ],
)
def test_token_gauge_counts_each_token_in_its_state(db, application_id, values, labels):
    before = samples(token_gauges(db), "gateway_oauth_tokens")
    add_token(db, application_id, 1, **values)
    after = samples(token_gauges(db), "gateway_oauth_tokens")
    assert {key: after[key] - before[key] for key in after if after[key] != before[key]} == {labels: 1}


def test_outbox_kinds_are_exactly_the_kinds_that_have_a_deliverer(settings):
    assert set(outbox_kinds()) == set(default_deliverers(settings))


def test_outbox_gauge_has_pending_and_failed_series_of_every_kind_from_the_start(db):
    series = samples(outbox_gauges(db), "gateway_outbox_messages")
    expected = {(kind, state) for kind in outbox_kinds() for state in (OutboxState.PENDING, OutboxState.FAILED)}
    assert set(series) == expected


def test_outbox_gauge_counts_batch_list_notifications(db):
    enqueue(db, "espi_batch_list", {"uri": "https://app.example.com/notify", "resources": []})
    series = samples(outbox_gauges(db), "gateway_outbox_messages")
    assert series[("espi_batch_list", OutboxState.PENDING)] == 1


def test_tokens_issued_has_a_zero_series_of_every_grant_type_once_ensured():
    metrics = Metrics()
    metrics.ensure_series()
    assert {
        grant: metrics.registry.get_sample_value("gateway_oauth_tokens_issued_total", {"grant_type": grant})
        for grant in ("authorization_code", "client_credentials", "refresh_token", "password")
    } == {"authorization_code": 0.0, "client_credentials": 0.0, "refresh_token": 0.0, "password": 0.0}


def test_the_validator_counts_the_tokens_it_stores_by_grant_type(db, services):
    client = make_client(db, services.settings, services.digester)
    metrics = Metrics()
    validator = GatewayRequestValidator(db, services.settings, services.digester, services.passwords, metrics=metrics)
    server = build_server(services.settings, validator, validator)
    for _ in range(2):
        _, _, status = server.token.create_token_response(
            "http://127.0.0.1:8000/oauth/token",
            http_method="POST",
            body=f"grant_type=client_credentials&scope={CLIENT_SCOPE}",
            headers={
                "Authorization": basic(client.client_id, client.client_secret or ""),
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        assert status == 200
    count = metrics.registry.get_sample_value("gateway_oauth_tokens_issued_total", {"grant_type": "client_credentials"})
    assert count == 2.0


def test_a_refused_token_request_is_not_counted(db, services):
    client = make_client(db, services.settings, services.digester)
    metrics = Metrics()
    validator = GatewayRequestValidator(db, services.settings, services.digester, services.passwords, metrics=metrics)
    _, _, status = build_server(services.settings, validator, validator).token.create_token_response(
        "http://127.0.0.1:8000/oauth/token",
        http_method="POST",
        body="grant_type=client_credentials",
        headers={"Authorization": basic(client.client_id, "wrong secret")},
    )
    assert (
        status,
        metrics.registry.get_sample_value("gateway_oauth_tokens_issued_total", {"grant_type": "client_credentials"}),
    ) == (401, None)
