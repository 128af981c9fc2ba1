"""Commodity function blocks (FB 5 electricity, 10 gas, 11 water) and ``HistoryLength`` on the data (ESPI-NOTES §5).

A home with an electricity and a gas usage point (as the demo's alice), with data of the last weeks: a scope naming
commodities shows usage points of those only (others are absent from feeds and 404), a scope naming none shows all;
``HistoryLength`` (months when small, else seconds) cuts the data window everywhere it applies.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest
from sqlalchemy import insert

from gateway.storage.ids import stable_uuid
from gateway.storage.models import (
    Authorization,
    IntervalBlock,
    MeterReading,
    ReadingType,
    RetailCustomer,
    Subscription,
    UsageSummary,
    interval_reading_table,
)
from tests.functional.oauth.helpers import CLIENT_SCOPE, basic, make_client
from tests.functional.resources.conftest import ATOM, BASE, DAY, ESPI, bearer, entry_kinds

HOUR = 3600
COMMON = "1_3_4_13_14_15_39"
DAYS_BACK = (70, 40, 20, 5, 3, 1)
"""Daily blocks this many days before today (UTC): older than a month, within a month, within three days."""


@dataclasses.dataclass
class Home:
    customer: RetailCustomer
    electricity: int
    gas: int
    meter_readings: dict[int, int]
    """usage point → its hourly MeterReading."""
    reading_types: dict[int, int]
    blocks: dict[tuple[int, int], int]
    """(usage point, days back) → IntervalBlock id."""
    old_summary: int
    recent_summary: int
    today: int


@pytest.fixture
def home(db, alice) -> Home:
    """alice's first usage point is electricity, her second gas; each has hourly data on the days of ``DAYS_BACK``."""
    now = dt.datetime.now(dt.UTC)
    today = int(now.replace(hour=0, minute=0, second=0, microsecond=0).timestamp())
    electricity, gas = list(alice.usage_points)
    gas.service_kind = 1

    def meta(kind: str, *key: object) -> dict[str, Any]:
        return {"uuid": stable_uuid(kind, "home", *key), "published": now, "updated": now}

    meter_readings: dict[int, int] = {}
    reading_types: dict[int, int] = {}
    blocks: dict[tuple[int, int], int] = {}
    rows = []
    for point, uom, commodity in ((electricity, 72, 1), (gas, 169, 7)):
        reading_type = ReadingType(**meta("RT", point.id), interval_length=HOUR, uom=uom, commodity=commodity)
        db.add(reading_type)
        db.flush()
        reading = MeterReading(**meta("MR", point.id), usage_point_id=point.id, reading_type_id=reading_type.id)
        db.add(reading)
        db.flush()
        meter_readings[point.id] = reading.id
        reading_types[point.id] = reading_type.id
        for back in DAYS_BACK:
            start = today - back * DAY
            block = IntervalBlock(**meta("IB", point.id, back), meter_reading_id=reading.id, start=start, duration=DAY)
            db.add(block)
            db.flush()
            blocks[(point.id, back)] = block.id
            rows += [
                {"interval_block_id": block.id, "start": start + h * HOUR, "duration": HOUR, "value": h, "cost": None}
                for h in range(24)
            ]
    db.execute(insert(interval_reading_table), rows)
    summaries = []
    for name, back, days in (("old", 70, 20), ("recent", 10, 5)):
        summary = UsageSummary(
            **meta("US", name),
            usage_point_id=electricity.id,
            billing_period_start=today - back * DAY,
            billing_period_duration=days * DAY,
            status_time_stamp=today,
        )
        db.add(summary)
        summaries.append(summary)
    db.flush()
    return Home(
        customer=alice,
        electricity=electricity.id,
        gas=gas.id,
        meter_readings=meter_readings,
        reading_types=reading_types,
        blocks=blocks,
        old_summary=summaries[0].id,
        recent_summary=summaries[1].id,
        today=today,
    )


@pytest.fixture
def home_app(db, services):
    """A third party registered for every commodity and any history."""
    return make_client(
        db, services.settings, services.digester, name="Home App", scopes=(f"FB={COMMON}_5_10_11", CLIENT_SCOPE)
    )


@pytest.fixture
def consent(db, alice, customer_token, home_app):
    """A consent with ``scope`` whose Subscription holds *both* meters, whatever its commodities.

    The consent screen offers only meters of the scope's commodities (and approve() refuses others), but a
    Subscription made before that rule, or edited by an operator, may hold one: the read side must hide it anyway.
    So the consent is approved for every commodity over both meters, then its Authorization's scope narrowed.
    """

    def obtain(scope: str, **kwargs: Any):
        blocks, _, rest = scope.removeprefix("FB=").partition(";")
        every = "_".join(sorted({*blocks.split("_"), "5", "10", "11"}, key=int))
        token = customer_token(client=home_app, scope=f"FB={every}" + (f";{rest}" if rest else ""), **kwargs)
        db.get(Authorization, token.authorization_id).scope = scope
        assert {point.id for point in db.get(Subscription, token.subscription_id).usage_points} == {
            point.id for point in alice.usage_points
        }
        db.flush()
        return token

    return obtain


def usage_point_ids(root) -> set[int]:
    return {
        int(link.get("href").rsplit("/", 1)[1])
        for entry in root.findall(f"{ATOM}entry")
        if entry.find(f"{ATOM}content/{ESPI}UsagePoint") is not None
        for link in entry.findall(f"{ATOM}link")
        if link.get("rel") == "self"
    }


def block_starts(root) -> list[int]:
    return sorted(int(block.findtext(f"{ESPI}interval/{ESPI}start")) for block in root.iter(f"{ESPI}IntervalBlock"))


def reading_starts(root) -> list[int]:
    return sorted(int(start.text) for start in root.iterfind(f".//{ESPI}IntervalReading/{ESPI}timePeriod/{ESPI}start"))


# -- Commodities ------------------------------------------------------------------------------------------------------

SCOPES = {
    "electricity only (FB 5)": (f"FB={COMMON}_5", {"electricity"}),
    "gas only (FB 10)": (f"FB={COMMON}_10", {"gas"}),
    "both (FB 5 and 10)": (f"FB={COMMON}_5_10", {"electricity", "gas"}),
    "water only (FB 11)": (f"FB={COMMON}_11", set()),
    "no commodity block": (f"FB={COMMON}", {"electricity", "gas"}),
}


def ids_of(home: Home, names: set[str]) -> set[int]:
    return {getattr(home, name) for name in names}


@pytest.mark.parametrize(("scope", "shown"), SCOPES.values(), ids=SCOPES.keys())
def test_usage_point_feed_shows_the_scopes_commodities(testapp, home, consent, valid, scope, shown):
    token = consent(scope)
    root = valid(testapp.get(token.path("/UsagePoint"), headers=token.headers).body)
    assert usage_point_ids(root) == ids_of(home, shown)


@pytest.mark.parametrize(("scope", "shown"), SCOPES.values(), ids=SCOPES.keys())
def test_batch_holds_the_scopes_commodities_only(testapp, home, consent, valid, scope, shown):
    token = consent(scope)
    root = valid(testapp.get(token.batch(), headers=token.headers).body)
    assert usage_point_ids(root) == ids_of(home, shown)
    assert entry_kinds(root).count("IntervalBlock") == len(shown) * len(DAYS_BACK)


@pytest.mark.parametrize(
    "rest",
    [
        "/UsagePoint/{u}",
        "/UsagePoint/{u}/MeterReading",
        "/UsagePoint/{u}/MeterReading/{m}",
        "/UsagePoint/{u}/MeterReading/{m}/IntervalBlock",
        "/UsagePoint/{u}/MeterReading/{m}/IntervalBlock/{b}",
        "/UsagePoint/{u}/UsageSummary",
    ],
)
@pytest.mark.parametrize(("scope", "hidden"), [(f"FB={COMMON}_5", "gas"), (f"FB={COMMON}_10", "electricity")])
def test_a_usage_point_of_another_commodity_is_404(testapp, home, consent, rest, scope, hidden):
    token = consent(scope)
    u = getattr(home, hidden)
    path = rest.format(u=u, m=home.meter_readings[u], b=home.blocks[(u, 1)])
    testapp.get(token.path(path), headers=token.headers, status=404)
    testapp.get(token.batch(f"/UsagePoint/{u}"), headers=token.headers, status=404)


def test_the_reading_type_of_another_commodity_is_404(testapp, home, consent):
    token = consent(f"FB={COMMON}_5")
    testapp.get(f"{BASE}/ReadingType/{home.reading_types[home.electricity]}", headers=token.headers, status=200)
    testapp.get(f"{BASE}/ReadingType/{home.reading_types[home.gas]}", headers=token.headers, status=404)


def test_the_same_usage_point_of_a_named_commodity_is_served(testapp, home, consent, valid):
    token = consent(f"FB={COMMON}_10")
    valid(testapp.get(token.path(f"/UsagePoint/{home.gas}"), headers=token.headers).body)


# -- HistoryLength ----------------------------------------------------------------------------------------------------


def starts_of(home: Home, backs: tuple[int, ...]) -> list[int]:
    return sorted(home.today - back * DAY for back in backs for _ in (home.electricity, home.gas))


def test_history_in_months_cuts_the_batch(testapp, home, consent, valid):
    token = consent(f"FB={COMMON}_5_10;HistoryLength=1")
    root = valid(testapp.get(token.batch(), headers=token.headers).body)
    # A month back is 28 to 31 days: 20 days back is in, 40 out.
    assert block_starts(root) == starts_of(home, (20, 5, 3, 1))


def test_history_in_months_cuts_interval_block_collections_and_items(testapp, home, consent, valid):
    token = consent(f"FB={COMMON}_5;HistoryLength=1")
    u = home.electricity
    m = home.meter_readings[u]
    collection = valid(
        testapp.get(token.path(f"/UsagePoint/{u}/MeterReading/{m}/IntervalBlock"), headers=token.headers).body
    )
    assert block_starts(collection) == sorted(home.today - back * DAY for back in (20, 5, 3, 1))
    item = f"/UsagePoint/{u}/MeterReading/{m}/IntervalBlock"
    testapp.get(token.path(f"{item}/{home.blocks[(u, 40)]}"), headers=token.headers, status=404)
    testapp.get(token.path(f"{item}/{home.blocks[(u, 20)]}"), headers=token.headers, status=200)


def test_history_in_months_hides_summaries_before_it(testapp, home, consent, valid):
    token = consent(f"FB={COMMON}_5;HistoryLength=1")
    path = f"/UsagePoint/{home.electricity}/UsageSummary"
    root = valid(testapp.get(token.path(path), headers=token.headers).body)
    assert entry_kinds(root) == ["UsageSummary"]
    testapp.get(token.path(f"{path}/{home.old_summary}"), headers=token.headers, status=404)
    testapp.get(token.path(f"{path}/{home.recent_summary}"), headers=token.headers, status=200)


def test_history_in_seconds_cuts_to_the_reading(testapp, home, consent, valid):
    history = 3 * DAY
    token = consent(f"FB={COMMON}_5;HistoryLength={history}")
    before = int(dt.datetime.now(dt.UTC).timestamp())
    root = valid(testapp.get(token.batch(), headers=token.headers).body)
    after = int(dt.datetime.now(dt.UTC).timestamp())
    starts = reading_starts(root)
    assert starts and min(starts) >= before - history
    # Rounded up to the hour, never more: every reading from an hour after the cut on is there.
    expected = [
        home.today - back * DAY + h * HOUR
        for back in DAYS_BACK
        for h in range(24)
        if home.today - back * DAY + h * HOUR >= after - history + HOUR
    ]
    assert set(expected) <= set(starts)
    assert block_starts(root)[-1] == home.today - DAY


def test_history_never_widens_a_narrower_data_window(testapp, home, consent, valid):
    token = consent(f"FB={COMMON}_5;HistoryLength=13", window=(home.today - 4 * DAY, None))
    root = valid(testapp.get(token.batch(), headers=token.headers).body)
    assert block_starts(root) == [home.today - back * DAY for back in (3, 1)]


def test_a_scope_without_history_shows_all_the_data(testapp, home, consent, valid):
    token = consent(f"FB={COMMON}_5")
    root = valid(testapp.get(token.batch(), headers=token.headers).body)
    assert block_starts(root) == sorted(home.today - back * DAY for back in DAYS_BACK)


def test_bulk_applies_history_and_commodities(testapp, home, consent, home_app, valid):
    consent(f"FB={COMMON}_10;HistoryLength=1;BR=home-bulk")
    client_token = testapp.post(
        "/oauth/token",
        {"grant_type": "client_credentials", "scope": CLIENT_SCOPE},
        headers={"Authorization": basic(home_app.client_id, home_app.client_secret)},
    ).json["access_token"]
    root = valid(testapp.get(f"{BASE}/Batch/Bulk/home-bulk", headers=bearer(client_token)).body)
    assert usage_point_ids(root) == {home.gas}
    assert block_starts(root) == sorted(home.today - back * DAY for back in (20, 5, 3, 1))
