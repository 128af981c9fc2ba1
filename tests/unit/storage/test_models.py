"""The data model on every backend: relations, cascades, stable ids, compact interval readings."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from gateway.storage.ids import GATEWAY_NAMESPACE, stable_uuid, urn
from gateway.storage.models import (
    IntervalBlock,
    LineItem,
    LocalTimeParameters,
    MeterReading,
    ReadingType,
    RetailCustomer,
    UsagePoint,
    UsageSummary,
    interval_reading_table,
)


def make_usage_point(db, username: str = "alice") -> UsagePoint:
    customer = RetailCustomer(
        uuid=stable_uuid("RetailCustomer", username), username=username, email=f"{username}@example.com"
    )
    ltp = LocalTimeParameters(
        uuid=stable_uuid("LocalTimeParameters", username),
        dst_start_rule="B40E2000",
        dst_end_rule="B0072000",
        dst_offset=3600,
        tz_offset=-28800,
    )
    usage_point = UsagePoint(
        uuid=stable_uuid("UsagePoint", username, 1),
        customer=customer,
        service_kind=0,
        local_time_parameters=ltp,
        status=1,
    )
    reading_type = ReadingType(
        uuid=stable_uuid("ReadingType", username, 1),
        uom=72,
        power_of_ten_multiplier=0,
        interval_length=900,
        accumulation_behaviour=4,
        commodity=1,
        currency=840,
    )
    meter_reading = MeterReading(
        uuid=stable_uuid("MeterReading", username, 1), usage_point=usage_point, reading_type=reading_type
    )
    db.add_all([customer, usage_point, meter_reading])
    db.flush()
    return usage_point


def add_day_of_readings(db, meter_reading: MeterReading, start: int) -> IntervalBlock:
    block = IntervalBlock(uuid=uuid.uuid4(), meter_reading=meter_reading, start=start, duration=86_400)
    db.add(block)
    db.flush()
    rows = [
        {"interval_block_id": block.id, "start": start + i * 900, "duration": 900, "value": 250 + i, "cost": 3_125}
        for i in range(96)
    ]
    db.execute(insert(interval_reading_table), rows)
    return block


def test_stable_uuid_is_deterministic_and_namespaced():
    assert stable_uuid("UsagePoint", "alice", 1) == stable_uuid("UsagePoint", "alice", 1)
    assert stable_uuid("UsagePoint", "alice", 1) != stable_uuid("UsagePoint", "alice", 2)
    assert stable_uuid("UsagePoint", "alice", 1) == uuid.uuid5(GATEWAY_NAMESPACE, "UsagePoint/alice/1")
    assert stable_uuid("x").version == 5


def test_urn_form():
    value = uuid.UUID("97eaebad-1214-4a58-a3d4-a16a6de718e1")
    assert urn(value) == "urn:uuid:97EAEBAD-1214-4A58-A3D4-A16A6DE718E1"


def test_usage_tree_round_trips(db):
    usage_point = make_usage_point(db)
    db.expunge_all()
    loaded = db.scalar(select(UsagePoint).where(UsagePoint.id == usage_point.id))
    assert loaded.customer.username == "alice"
    assert loaded.local_time_parameters.tz_offset == -28800
    assert loaded.meter_readings[0].reading_type.uom == 72


def test_timestamps_are_aware_utc(db):
    usage_point = make_usage_point(db)
    db.expunge_all()
    loaded = db.get(UsagePoint, usage_point.id)
    assert loaded.published.tzinfo is not None
    assert loaded.published.utcoffset() == dt.timedelta(0)


def test_naive_datetimes_are_refused(db):
    usage_point = make_usage_point(db)
    usage_point.updated = dt.datetime(2025, 1, 1)  # naive
    with pytest.raises(Exception, match="naive datetime"):
        db.flush()


def test_interval_readings_bulk_insert_and_order(db):
    meter_reading = make_usage_point(db).meter_readings[0]
    block = add_day_of_readings(db, meter_reading, 1_735_718_400)
    starts = db.scalars(
        select(interval_reading_table.c.start)
        .where(interval_reading_table.c.interval_block_id == block.id)
        .order_by(interval_reading_table.c.start)
    ).all()
    assert len(starts) == 96
    assert starts[0] == block.start
    assert starts[-1] == block.start + 95 * 900


def test_a_reading_start_is_unique_within_its_block(db):
    meter_reading = make_usage_point(db).meter_readings[0]
    block = add_day_of_readings(db, meter_reading, 1_735_718_400)
    with pytest.raises(IntegrityError), db.begin_nested():
        db.execute(
            insert(interval_reading_table),
            [{"interval_block_id": block.id, "start": block.start, "duration": 900, "value": 1}],
        )


def test_uuid_is_unique_per_resource_kind(db):
    usage_point = make_usage_point(db)
    duplicate = UsagePoint(uuid=usage_point.uuid, customer=usage_point.customer, service_kind=0)
    db.add(duplicate)
    with pytest.raises(IntegrityError), db.begin_nested():
        db.flush()


def test_deleting_a_customer_cascades_to_readings(db):
    usage_point = make_usage_point(db)
    add_day_of_readings(db, usage_point.meter_readings[0], 1_735_718_400)
    db.delete(usage_point.customer)
    db.flush()
    assert db.scalar(select(func.count()).select_from(interval_reading_table)) == 0
    assert db.scalar(select(func.count()).select_from(IntervalBlock)) == 0
    assert db.scalar(select(func.count()).select_from(MeterReading)) == 0
    # Reference data shared between usage points survives.
    assert db.scalar(select(func.count()).select_from(ReadingType)) == 1


def test_usage_summary_keeps_line_items_in_order_and_costs_as_integers(db):
    usage_point = make_usage_point(db)
    summary = UsageSummary(
        uuid=uuid.uuid4(),
        usage_point=usage_point,
        billing_period_start=1_735_718_400,
        billing_period_duration=2_678_400,
        bill_last_period=12_345_678,
        currency=840,
        status_time_stamp=1_738_396_800,
        measurements={"overallConsumptionLastPeriod": {"powerOfTenMultiplier": 0, "uom": 72, "value": 812_000}},
        line_items=[
            LineItem(position=1, amount=500_000, note="Customer charge", item_kind=1),
            LineItem(position=0, amount=11_845_678, note="Energy charge", item_kind=1),
        ],
    )
    db.add(summary)
    db.flush()
    db.expunge_all()
    loaded = db.get(UsageSummary, summary.id)
    assert [item.note for item in loaded.line_items] == ["Energy charge", "Customer charge"]
    assert loaded.bill_last_period == 12_345_678  # $123.45678 in hundred-thousandths
    assert loaded.measurements["overallConsumptionLastPeriod"]["value"] == 812_000
