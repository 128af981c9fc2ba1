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


# -- Root collections (ESPI-NOTES §2: "for the custodian only") -----------------------------------------------------

ROOT_ROUTES = [
    "/UsagePoint",
    "/UsagePoint/{u}",
    "/UsagePoint/{u}/MeterReading",
    "/UsagePoint/{u}/MeterReading/{m}",
    "/UsagePoint/{u}/MeterReading/{m}/IntervalBlock",
    "/UsagePoint/{u}/MeterReading/{m}/IntervalBlock/{b}",
    "/UsagePoint/{u}/UsageSummary",
    "/UsagePoint/{u}/UsageSummary/{us}",
    "/UsagePoint/{u}/ElectricPowerUsageSummary",
    "/UsagePoint/{u}/ElectricPowerUsageSummary/{us}",
    "/UsagePoint/{u}/ElectricPowerQualitySummary",
    "/UsagePoint/{u}/ElectricPowerQualitySummary/{pq}",
    "/MeterReading",
    "/MeterReading/{m}",
    "/IntervalBlock",
    "/IntervalBlock/{b}",
    "/UsageSummary",
    "/UsageSummary/{us}",
    "/ElectricPowerUsageSummary",
    "/ElectricPowerUsageSummary/{us}",
    "/ElectricPowerQualitySummary",
    "/ElectricPowerQualitySummary/{pq}",
    "/ReadingType",
    "/LocalTimeParameters",
    "/ApplicationInformation",
]

# Routes where the custodian reads every record and other kinds keep their own answer (see test_client_resources.py).
SHARED_ROOT_ROUTES = ["/Authorization", "/Authorization/{auth}", "/ApplicationInformation/{app}"]


@pytest.fixture
def upload_token(testapp, db, services) -> str:
    from gateway.storage.models import ClientRole
    from tests.functional.oauth.helpers import CLIENT_SCOPE, basic, make_client

    uploader = make_client(db, services.settings, services.digester, name="Uploader", roles=(ClientRole.UPLOAD,))
    return testapp.post(
        "/oauth/token",
        {"grant_type": "client_credentials", "scope": CLIENT_SCOPE},
        headers={"Authorization": basic(uploader.client_id, uploader.client_secret)},
    ).json["access_token"]


def root_url(template: str, tree, authorization_id: int = 0, application_id: int = 0) -> str:
    filled = template.replace("{auth}", str(authorization_id)).replace("{app}", str(application_id))
    return url(filled, tree, 0)


@pytest.mark.parametrize("template", ROOT_ROUTES + SHARED_ROOT_ROUTES)
def test_custodian_token_reads_the_roots(testapp, tree, customer_token, custodian_token, app_client, valid, template):
    consent = customer_token()
    path = root_url(template, tree, consent.authorization_id, app_client.application.id)
    response = testapp.get(path, headers=bearer(custodian_token), status=200)
    assert response.content_type == "application/atom+xml"
    valid(response.body)


@pytest.mark.parametrize("template", ROOT_ROUTES + SHARED_ROOT_ROUTES)
@pytest.mark.parametrize("credentials", [None, "not-a-token"])
def test_roots_without_a_valid_token_are_401(testapp, tree, template, credentials):
    headers = {} if credentials is None else bearer(credentials)
    response = testapp.get(root_url(template, tree, 1, 1), headers=headers, status=401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("template", ROOT_ROUTES)
@pytest.mark.parametrize("kind", ["customer", "client", "registration", "upload"])
def test_roots_refuse_every_other_token_kind(
    testapp, tree, customer_token, client_token, app_client, upload_token, template, kind
):
    tokens = {
        "customer": lambda: customer_token().token,
        "client": lambda: client_token,
        "registration": lambda: app_client.registration_access_token,
        "upload": lambda: upload_token,
    }
    testapp.get(root_url(template, tree), headers=bearer(tokens[kind]()), status=403)


@pytest.mark.parametrize(
    ("template", "kind"),
    [
        ("/Authorization", "customer"),
        ("/Authorization", "registration"),
        ("/Authorization", "upload"),
        ("/Authorization/{auth}", "customer"),
        ("/Authorization/{auth}", "upload"),
        ("/ApplicationInformation/{app}", "customer"),
        ("/ApplicationInformation/{app}", "client"),
        ("/ApplicationInformation/{app}", "upload"),
    ],
)
def test_shared_roots_refuse_kinds_that_have_no_view_of_their_own(
    testapp, tree, customer_token, client_token, app_client, upload_token, template, kind
):
    consent = customer_token()
    tokens = {
        "customer": consent.token,
        "client": client_token,
        "registration": app_client.registration_access_token,
        "upload": upload_token,
    }
    path = root_url(template, tree, consent.authorization_id, app_client.application.id)
    testapp.get(path, headers=bearer(tokens[kind]), status=403)


@pytest.mark.parametrize("template", ["/UsagePoint", "/IntervalBlock/{b}", "/Authorization"])
def test_a_revoked_custodian_token_is_401(testapp, db, tree, custodian_token, template):
    testapp.get(root_url(template, tree), headers=bearer(custodian_token), status=200)
    db.execute(update(OAuthToken).values(revoked_at=dt.datetime.now(dt.UTC)))
    db.flush()
    testapp.get(root_url(template, tree), headers=bearer(custodian_token), status=401)


# -- Where a Download My Data export links to (the export's tokens: custodian and upload) ---------------------------

EXPORT_ROUTES = [
    "/RetailCustomer/{c}/UsagePoint",
    "/RetailCustomer/{c}/UsagePoint/{u}",
    "/RetailCustomer/{c}/UsagePoint/{u}/MeterReading",
    "/RetailCustomer/{c}/UsagePoint/{u}/MeterReading/{m}",
    "/RetailCustomer/{c}/UsagePoint/{u}/MeterReading/{m}/IntervalBlock",
    "/RetailCustomer/{c}/UsagePoint/{u}/MeterReading/{m}/IntervalBlock/{b}",
    "/RetailCustomer/{c}/UsagePoint/{u}/UsageSummary",
    "/RetailCustomer/{c}/UsagePoint/{u}/UsageSummary/{us}",
    "/RetailCustomer/{c}/UsagePoint/{u}/ElectricPowerUsageSummary",
    "/RetailCustomer/{c}/UsagePoint/{u}/ElectricPowerUsageSummary/{us}",
    "/RetailCustomer/{c}/UsagePoint/{u}/ElectricPowerQualitySummary",
    "/RetailCustomer/{c}/UsagePoint/{u}/ElectricPowerQualitySummary/{pq}",
]


def export_url(template: str, tree, customer_id: int | None = None) -> str:
    return url(template.replace("{c}", str(tree.customer.id if customer_id is None else customer_id)), tree, 0)


@pytest.mark.parametrize("template", EXPORT_ROUTES)
@pytest.mark.parametrize("kind", ["custodian", "upload"])
def test_the_exports_tokens_read_the_customer_routes(
    testapp, tree, custodian_token, upload_token, valid, template, kind
):
    token = {"custodian": custodian_token, "upload": upload_token}[kind]
    response = testapp.get(export_url(template, tree), headers=bearer(token), status=200)
    assert response.content_type == "application/atom+xml"
    valid(response.body)


@pytest.mark.parametrize("template", EXPORT_ROUTES)
@pytest.mark.parametrize("credentials", [None, "not-a-token"])
def test_customer_routes_without_a_valid_token_are_401(testapp, tree, template, credentials):
    headers = {} if credentials is None else bearer(credentials)
    response = testapp.get(export_url(template, tree), headers=headers, status=401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("template", EXPORT_ROUTES)
@pytest.mark.parametrize("kind", ["customer", "client", "registration"])
def test_customer_routes_refuse_every_other_token_kind(
    testapp, tree, customer_token, client_token, app_client, template, kind
):
    tokens = {
        "customer": lambda: customer_token().token,
        "client": lambda: client_token,
        "registration": lambda: app_client.registration_access_token,
    }
    testapp.get(export_url(template, tree), headers=bearer(tokens[kind]()), status=403)


@pytest.mark.parametrize("template", EXPORT_ROUTES[1:])
def test_customer_routes_hide_another_customers_usage_points(testapp, tree, bob_tree, custodian_token, template):
    """Bob's ids under Alice's ``RetailCustomer/{c}``: 404 (what the grant may see is Alice's), never Bob's data."""
    path = BASE + template.replace("{c}", str(tree.customer.id)).format(
        u=bob_tree.usage_points[0],
        m=bob_tree.meter_reading,
        b=bob_tree.blocks[0],
        us=bob_tree.usage_summary,
        pq=bob_tree.power_quality,
    )
    testapp.get(path, headers=bearer(custodian_token), status=404)


@pytest.mark.parametrize("template", EXPORT_ROUTES[:2])
def test_customer_routes_of_an_unknown_customer_are_404(testapp, tree, custodian_token, template):
    testapp.get(export_url(template, tree, tree.customer.id + 1000), headers=bearer(custodian_token), status=404)
