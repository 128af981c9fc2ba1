"""ESPI-NOTES §3 matrix for the customer-data resources: each route against each kind of token.

Customer tokens for subscription S read S; every other token kind is 403, no or a bad/expired/revoked token 401, and
another subscription 403 whether or not it exists (no existence oracle).
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import update

from gateway.storage.models import Authorization, OAuthToken
from tests.functional.resources.conftest import BASE, bearer

ROUTES = [
    "/Batch/Subscription/{s}",
    "/Batch/Subscription/{s}/UsagePoint",
    "/Batch/Subscription/{s}/UsagePoint/{u}",
    "/Subscription/{s}/UsagePoint",
    "/Subscription/{s}/UsagePoint/{u}",
    "/Subscription/{s}/UsagePoint/{u}/MeterReading",
    "/Subscription/{s}/UsagePoint/{u}/MeterReading/{m}",
    "/Subscription/{s}/UsagePoint/{u}/MeterReading/{m}/IntervalBlock",
    "/Subscription/{s}/UsagePoint/{u}/MeterReading/{m}/IntervalBlock/{b}",
    "/Subscription/{s}/UsagePoint/{u}/UsageSummary",
    "/Subscription/{s}/UsagePoint/{u}/UsageSummary/{us}",
    "/Subscription/{s}/UsagePoint/{u}/ElectricPowerUsageSummary",
    "/Subscription/{s}/UsagePoint/{u}/ElectricPowerUsageSummary/{us}",
    "/Subscription/{s}/UsagePoint/{u}/ElectricPowerQualitySummary",
    "/Subscription/{s}/UsagePoint/{u}/ElectricPowerQualitySummary/{pq}",
    "/ReadingType/{rt}",
    "/LocalTimeParameters/{ltp}",
]


def url(template: str, tree, subscription_id: int) -> str:
    return BASE + template.format(
        s=subscription_id,
        u=tree.usage_points[0],
        m=tree.meter_reading,
        b=tree.blocks[0],
        us=tree.usage_summary,
        pq=tree.power_quality,
        rt=tree.reading_type,
        ltp=tree.local_time_parameters,
    )


@pytest.mark.parametrize("template", ROUTES)
def test_customer_token_for_the_subscription_reads(testapp, tree, customer_token, valid, template):
    token = customer_token()
    response = testapp.get(url(template, tree, token.subscription_id), headers=token.headers, status=200)
    assert response.content_type == "application/atom+xml"
    valid(response.body)


@pytest.mark.parametrize("template", ROUTES)
def test_no_token_is_401(testapp, tree, customer_token, template):
    token = customer_token()
    response = testapp.get(url(template, tree, token.subscription_id), status=401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("template", ROUTES)
def test_unknown_token_is_401(testapp, tree, customer_token, template):
    token = customer_token()
    testapp.get(url(template, tree, token.subscription_id), headers=bearer("not-a-token"), status=401)


@pytest.mark.parametrize("template", ROUTES)
def test_client_token_is_403(testapp, tree, customer_token, client_token, template):
    token = customer_token()
    testapp.get(url(template, tree, token.subscription_id), headers=bearer(client_token), status=403)


@pytest.mark.parametrize("template", ROUTES)
def test_registration_token_is_403(testapp, tree, customer_token, app_client, template):
    token = customer_token()
    headers = bearer(app_client.registration_access_token)
    testapp.get(url(template, tree, token.subscription_id), headers=headers, status=403)


@pytest.mark.parametrize("template", [r for r in ROUTES if "{s}" in r])
def test_custodian_token_is_403_on_consent_scoped_routes(testapp, tree, customer_token, custodian_token, template):
    token = customer_token()
    testapp.get(url(template, tree, token.subscription_id), headers=bearer(custodian_token), status=403)


@pytest.mark.parametrize("template", [r for r in ROUTES if "{s}" not in r])
def test_custodian_token_reads_reference_data(testapp, tree, custodian_token, valid, template):
    valid(testapp.get(url(template, tree, 0), headers=bearer(custodian_token), status=200).body)


@pytest.mark.parametrize("template", [r for r in ROUTES if "{s}" in r])
@pytest.mark.parametrize("offset", [1, 1000])
def test_another_subscription_is_403_whether_or_not_it_exists(testapp, tree, customer_token, template, offset):
    token = customer_token()
    testapp.get(url(template, tree, token.subscription_id + offset), headers=token.headers, status=403)


@pytest.mark.parametrize("template", ROUTES)
def test_revoked_authorization_is_401(testapp, db, tree, customer_token, template):
    token = customer_token()
    db.execute(update(Authorization).where(Authorization.id == token.authorization_id).values(status=0))
    db.flush()
    testapp.get(url(template, tree, token.subscription_id), headers=token.headers, status=401)


@pytest.mark.parametrize("template", ROUTES[:5])
def test_expired_token_is_401(testapp, db, tree, customer_token, template):
    token = customer_token()
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    db.execute(update(OAuthToken).where(OAuthToken.authorization_id == token.authorization_id).values(expires_at=past))
    db.flush()
    testapp.get(url(template, tree, token.subscription_id), headers=token.headers, status=401)


def test_token_superseded_by_refresh_is_401(testapp, tree, customer_token, app_client):
    from tests.functional.oauth.helpers import basic

    token = customer_token()
    fresh = testapp.post(
        "/oauth/token",
        {"grant_type": "refresh_token", "refresh_token": token.refresh_token},
        headers={"Authorization": basic(app_client.client_id, app_client.client_secret)},
    ).json
    testapp.get(token.batch(), headers=token.headers, status=401)
    testapp.get(token.batch(), headers=bearer(fresh["access_token"]), status=200)


def test_token_in_query_is_refused(testapp, tree, customer_token):
    token = customer_token()
    testapp.get(token.batch() + f"?access_token={token.token}", status=401)


@pytest.mark.parametrize("bad", ["abc", "-1x", "1.5"])
def test_non_integer_ids_are_404(testapp, customer_token, tree, bad):
    token = customer_token()
    testapp.get(f"{BASE}/Batch/Subscription/{bad}", headers=token.headers, status=404)
