"""SECURITY-CHECKLIST row 29: a token for consent C reads nothing outside C (usage point, customer, window, blocks)."""

from __future__ import annotations

import pytest

from gateway.storage.models import ClientRole, Subscription
from tests.functional.oauth.helpers import PASSWORD, basic, make_client
from tests.functional.resources.conftest import (
    BASE,
    BASIC_SCOPE,
    DAY,
    ESPI,
    START,
    bearer,
    entry_kinds,
    parse,
)


def readings(root) -> list:
    return list(root.iter(f"{ESPI}IntervalReading"))


def test_other_customers_usage_point_is_404(testapp, tree, bob_tree, customer_token):
    token = customer_token()
    testapp.get(token.path(f"/UsagePoint/{bob_tree.usage_points[0]}"), headers=token.headers, status=404)
    testapp.get(token.batch(f"/UsagePoint/{bob_tree.usage_points[0]}"), headers=token.headers, status=404)


def test_other_customers_meter_reading_is_404_even_below_an_own_usage_point(testapp, tree, bob_tree, customer_token):
    token = customer_token()
    own_point = tree.usage_points[0]
    testapp.get(
        token.path(f"/UsagePoint/{own_point}/MeterReading/{bob_tree.meter_reading}"), headers=token.headers, status=404
    )


def test_other_customers_block_is_404(testapp, tree, bob_tree, customer_token):
    token = customer_token()
    path = f"/UsagePoint/{tree.usage_points[0]}/MeterReading/{tree.meter_reading}/IntervalBlock/{bob_tree.blocks[0]}"
    testapp.get(token.path(path), headers=token.headers, status=404)


def test_unshared_usage_point_is_404(testapp, db, tree, customer_token):
    token = customer_token()

    subscription = db.get(Subscription, token.subscription_id)
    subscription.usage_points = [p for p in subscription.usage_points if p.id == tree.usage_points[0]]
    db.flush()
    testapp.get(token.path(f"/UsagePoint/{tree.usage_points[1]}"), headers=token.headers, status=404)
    root = parse(testapp.get(token.batch(), headers=token.headers).body)
    assert entry_kinds(root).count("UsagePoint") == 1


def test_no_costs_without_function_block_12(testapp, tree, customer_token, valid):
    token = customer_token(scope=BASIC_SCOPE)
    root = valid(testapp.get(token.batch(), headers=token.headers).body)
    assert readings(root) and not list(root.iter(f"{ESPI}cost"))


def test_costs_with_function_block_12(testapp, tree, customer_token, valid):
    token = customer_token()
    root = valid(testapp.get(token.batch(), headers=token.headers).body)
    assert len(list(root.iter(f"{ESPI}cost"))) == 3 * 96


def test_no_summaries_without_function_block_15(testapp, tree, customer_token, valid):
    token = customer_token(scope=BASIC_SCOPE)
    root = valid(testapp.get(token.batch(), headers=token.headers).body)
    assert "UsageSummary" not in entry_kinds(root)
    path = token.path(f"/UsagePoint/{tree.usage_points[0]}/UsageSummary/{tree.usage_summary}")
    testapp.get(path, headers=token.headers, status=404)


def test_summary_costs_only_with_function_block_16(testapp, tree, customer_token, valid):
    scope = "FB=1_3_4_5_13_14_15_39;IntervalDuration=900;BlockDuration=daily"
    token = customer_token(scope=scope)
    root = valid(
        testapp.get(token.path(f"/UsagePoint/{tree.usage_points[0]}/UsageSummary"), headers=token.headers).body
    )
    assert entry_kinds(root) == ["UsageSummary"]
    for name in ("billLastPeriod", "billToDate", "costAdditionalDetailLastPeriod", "currency"):
        assert not list(root.iter(f"{ESPI}{name}")), name


def test_no_power_quality_without_function_block_17(testapp, tree, customer_token, valid):
    token = customer_token(scope=BASIC_SCOPE)
    root = valid(testapp.get(token.batch(), headers=token.headers).body)
    assert "ElectricPowerQualitySummary" not in entry_kinds(root)


def test_interval_duration_hides_other_meter_readings(testapp, tree, customer_token):
    token = customer_token()
    testapp.get(
        token.path(f"/UsagePoint/{tree.usage_points[0]}/MeterReading/{tree.hourly_meter_reading}"),
        headers=token.headers,
        status=404,
    )
    testapp.get(f"{BASE}/ReadingType/{tree.hourly_reading_type}", headers=token.headers, status=404)


def test_data_window_clips_blocks_and_readings(testapp, tree, customer_token, valid):
    # From the middle of day 1 to the middle of day 2: day 0 is gone, days 1 and 2 are cut in half.
    token = customer_token(window=(START + DAY + DAY // 2, DAY))
    root = valid(testapp.get(token.batch(), headers=token.headers).body)
    starts = [int(r.find(f"{ESPI}timePeriod/{ESPI}start").text) for r in readings(root)]
    assert min(starts) == START + DAY + DAY // 2
    assert max(starts) == START + 2 * DAY + DAY // 2 - 900
    assert len(starts) == 96
    intervals = [int(i.find(f"{ESPI}start").text) for i in root.iter(f"{ESPI}interval")]
    assert intervals == [START + DAY + DAY // 2, START + 2 * DAY]


def test_data_window_hides_whole_blocks_outside_it(testapp, tree, customer_token):
    token = customer_token(window=(START + DAY, DAY))
    path = f"/UsagePoint/{tree.usage_points[0]}/MeterReading/{tree.meter_reading}/IntervalBlock/{tree.blocks[0]}"
    testapp.get(token.path(path), headers=token.headers, status=404)


def test_password_grant_token_reads_only_its_owner(testapp, db, services, tree, bob_tree, alice, valid):
    own = make_client(
        db,
        services.settings,
        services.digester,
        name="Alice's own",
        roles=(ClientRole.SELF_ACCESS,),
        grant_types=("password", "refresh_token"),
        owner_customer_id=alice.id,
        scopes=(BASIC_SCOPE,),
    )
    body = testapp.post(
        "/oauth/token",
        {"grant_type": "password", "username": "alice", "password": PASSWORD, "scope": BASIC_SCOPE},
        headers={"Authorization": basic(own.client_id, own.client_secret)},
    ).json
    path = body["resourceURI"].removeprefix("http://127.0.0.1:8000")
    valid(testapp.get(path, headers=bearer(body["access_token"])).body)
    testapp.get(f"{path}/UsagePoint/{bob_tree.usage_points[0]}", headers=bearer(body["access_token"]), status=404)


@pytest.mark.parametrize("resource", ["ReadingType", "LocalTimeParameters"])
def test_reference_data_of_other_customers_only_is_404(testapp, db, services, tree, bob_tree, customer_token, resource):
    token = customer_token(customer=tree.customer)
    ident = bob_tree.reading_type if resource == "ReadingType" else bob_tree.local_time_parameters
    testapp.get(f"{BASE}/{resource}/{ident}", headers=token.headers, status=404)
