"""Query functions of the resource API: visibility, data window, function blocks, interval filters, paging."""

from __future__ import annotations

import uuid

import pytest

from gateway.storage import queries
from gateway.storage.authorization import Authorization
from gateway.storage.models import Subscription, UsagePoint
from gateway.storage.queries import DataWindow, Grant, IntervalFilter, Page
from tests.functional.oauth.helpers import make_client, make_customer
from tests.functional.resources.conftest import DAY, START, build_tree


@pytest.fixture
def alice(db, services):
    return make_customer(db, services.passwords, "alice")


@pytest.fixture
def tree(db, alice):
    return build_tree(db, alice)


@pytest.fixture
def subscription(db, services, tree):
    client = make_client(db, services.settings, services.digester)
    authorization = Authorization(
        uuid=uuid.uuid4(),
        kind="customer",
        application_id=client.application.id,
        customer_id=tree.customer.id,
        status=1,
        expires_at=2**40,
        scope="FB=1_3_4",
    )
    db.add(authorization)
    db.flush()
    row = Subscription(
        uuid=uuid.uuid4(),
        authorization_id=authorization.id,
        application_id=client.application.id,
        customer_id=tree.customer.id,
        usage_points=[db.get(UsagePoint, tree.usage_points[0])],
    )
    db.add(row)
    db.flush()
    return row


def make_grant(subscription, *, blocks=(1, 3, 4, 12, 15, 16, 17), window=DataWindow(), durations=(900,)) -> Grant:
    return Grant(
        subscription_id=subscription.id,
        customer_id=subscription.customer_id,
        window=window,
        function_blocks=frozenset(blocks),
        interval_durations=tuple(durations),
    )


def test_customer_grant_reads_the_stored_scope(db, subscription):
    grant = queries.customer_grant(db, subscription_id=subscription.id, customer_id=subscription.customer_id)
    assert grant is not None and grant.function_blocks == {1, 3, 4}


def test_customer_grant_of_another_customer_is_none(db, subscription):
    assert (
        queries.customer_grant(db, subscription_id=subscription.id, customer_id=subscription.customer_id + 999) is None
    )


def test_only_shared_usage_points(db, tree, subscription):
    points = queries.usage_points(db, make_grant(subscription))
    assert [p.id for p in points] == [tree.usage_points[0]]
    assert queries.count_usage_points(db, make_grant(subscription)) == 1


def test_meter_readings_need_function_block_4(db, tree, subscription):
    assert queries.meter_readings(db, make_grant(subscription, blocks=(1, 3)), tree.usage_points) == []


def test_interval_durations_filter_meter_readings(db, tree, subscription):
    assert [m.id for m in queries.meter_readings(db, make_grant(subscription), tree.usage_points)] == [
        tree.meter_reading
    ]
    both = queries.meter_readings(db, make_grant(subscription, durations=()), tree.usage_points)
    assert len(both) == 2


@pytest.mark.parametrize(
    ("published_min", "published_max", "expected_days"),
    [
        (None, None, [0, 1, 2]),
        (START + DAY, None, [1, 2]),
        (START + DAY - 1, None, [0, 1, 2]),
        (None, START + DAY, [0]),
        (START + DAY // 2, START + 2 * DAY, [0, 1]),
    ],
)
def test_blocks_by_interval(db, tree, subscription, published_min, published_max, expected_days):
    filters = IntervalFilter(published_min=published_min, published_max=published_max)
    found = queries.blocks(db, make_grant(subscription), [tree.meter_reading], filters=filters)
    assert [(b.start - START) // DAY for b in found] == expected_days
    assert queries.block_count(db, make_grant(subscription), [tree.meter_reading], filters) == len(expected_days)


def test_blocks_page(db, tree, subscription):
    found = queries.blocks(db, make_grant(subscription), [tree.meter_reading], page=Page(offset=1, limit=1))
    assert [b.id for b in found] == [tree.blocks[1]]


def test_window_clips_a_block_and_its_readings(db, tree, subscription):
    grant = make_grant(subscription, window=DataWindow(START + DAY // 2, START + DAY))
    (block,) = queries.blocks(db, grant, [tree.meter_reading])
    assert (block.start, block.duration, block.clipped) == (START + DAY // 2, DAY // 2, True)
    rows = list(queries.readings(db, grant, block))
    assert len(rows) == 48 and rows[0][0] == START + DAY // 2


def test_readings_without_function_block_12_have_no_cost(db, tree, subscription):
    grant = make_grant(subscription, blocks=(1, 3, 4))
    block = queries.blocks(db, grant, [tree.meter_reading])[0]
    assert {row[3] for row in queries.readings(db, grant, block)} == {None}


def test_summaries_need_their_function_blocks(db, tree, subscription):
    assert queries.usage_summaries(db, make_grant(subscription, blocks=(1, 3, 4)), tree.usage_points) == []
    assert len(queries.usage_summaries(db, make_grant(subscription), tree.usage_points)) == 1
    assert queries.power_quality_summaries(db, make_grant(subscription, blocks=(1, 3, 4)), tree.usage_points) == []


def test_window_hides_summaries_outside_it(db, tree, subscription):
    grant = make_grant(subscription, window=DataWindow(START + 10 * DAY, None))
    assert queries.usage_summaries(db, grant, tree.usage_points) == []


def test_reference_data_visibility(db, tree, subscription):
    grant = make_grant(subscription)
    assert queries.reading_type(db, grant, tree.reading_type) is not None
    assert queries.reading_type(db, grant, tree.hourly_reading_type) is None
    assert queries.local_time_parameters(db, grant, tree.local_time_parameters) is not None
    assert queries.reading_type(db, None, tree.hourly_reading_type) is not None


def test_data_window_of_an_authorization():
    authorization = Authorization(published_period_start=10, published_period_duration=5)
    assert DataWindow.of(authorization) == DataWindow(10, 15)
    assert DataWindow.of(Authorization()) == DataWindow(None, None)
    assert DataWindow(10, 15).contains(10, 5) and not DataWindow(10, 15).contains(9, 5)


@pytest.mark.parametrize(
    ("window", "start", "end", "meets"),
    [
        (DataWindow(), 100, 200, True),
        (DataWindow(start=150), 100, 200, True),
        (DataWindow(start=200), 100, 200, False),  # half-open: ends where the window starts
        (DataWindow(end=100), 100, 200, False),
        (DataWindow(start=50, end=150), 100, 200, True),
        (DataWindow(start=300), None, 200, False),
        (DataWindow(start=300), 100, None, True),  # no known end: it may reach into the window
        (DataWindow(start=50, end=60), None, None, True),
    ],
)
def test_a_data_window_meets_an_interval_when_they_overlap(window, start, end, meets):
    assert window.meets(start, end) is meets
