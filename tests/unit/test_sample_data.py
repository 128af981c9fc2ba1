"""The sample data generator: deterministic, realistic, DST-correct, costs in 10⁻⁵ USD, and the checked-in
files are exactly what it produces now."""

from __future__ import annotations

import argparse
import datetime as dt
from collections import Counter
from pathlib import Path

import pytest
from lxml import etree

from gateway.commands import sample_data as sample_data_command
from gateway.commands.output import run_handler
from gateway.sample_data import (
    BUSINESS_FILE,
    HOME_ELECTRICITY_FILE,
    HOME_GAS_FILE,
    US_DST_END_RULE,
    US_DST_START_RULE,
    LocalClock,
    SampleFeed,
    business_feed,
    home_electricity_feed,
    home_gas_feed,
)
from gateway.storage.models import MeterReading

REPO_ROOT = Path(__file__).resolve().parents[2]
CHECKED_IN = REPO_ROOT / "sample_data"
FILES = (HOME_ELECTRICITY_FILE, HOME_GAS_FILE, BUSINESS_FILE)


@pytest.fixture(scope="module")
def home() -> SampleFeed:
    return home_electricity_feed()


@pytest.fixture(scope="module")
def business() -> SampleFeed:
    return business_feed()


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample files as ``gateway sample-data --out DIR`` writes them now."""
    out = tmp_path_factory.mktemp("sample_data")
    parser = argparse.ArgumentParser()
    sample_data_command.register(parser.add_subparsers())
    args = parser.parse_args(["sample-data", "--out", str(out), "--json"])
    assert run_handler(args.handler, args) == 0
    return out


def _meter_readings(sample: SampleFeed) -> list[MeterReading]:
    return [m for up in sample.usage_points for m in up.meter_readings]


def test_same_seed_gives_the_same_bytes() -> None:
    assert home_gas_feed(seed=7).to_bytes() == home_gas_feed(seed=7).to_bytes()


def test_another_seed_gives_other_readings() -> None:
    assert home_gas_feed(seed=7).to_bytes() != home_gas_feed(seed=8).to_bytes()


def test_ids_do_not_depend_on_the_seed() -> None:
    """Resource UUIDs come from natural keys, so re-importing regenerated data updates rather than
    duplicates."""
    assert home_gas_feed(seed=7).usage_points[0].uuid == home_gas_feed(seed=8).usage_points[0].uuid


def test_us_dst_rules_encode_second_sunday_of_march_and_first_sunday_of_november() -> None:
    assert (US_DST_START_RULE, US_DST_END_RULE) == ("360E2000", "B40E2000")


def test_local_clock_switches_at_two_in_the_morning_local_time() -> None:
    clock = LocalClock(2025)
    assert dt.datetime.fromtimestamp(clock.dst_start, dt.UTC) == dt.datetime(2025, 3, 9, 10, tzinfo=dt.UTC)
    assert dt.datetime.fromtimestamp(clock.dst_end, dt.UTC) == dt.datetime(2025, 11, 2, 9, tzinfo=dt.UTC)


def test_a_year_of_quarter_hours_has_35040_readings(home: SampleFeed) -> None:
    (meter_reading,) = _meter_readings(home)
    assert sum(1 for _ in home.reading_rows(meter_reading)) == 35_040


def test_daily_blocks_follow_local_days_with_dst_lengths(home: SampleFeed) -> None:
    (meter_reading,) = _meter_readings(home)
    lengths = Counter(len(home.readings[block.id]) for block in meter_reading.interval_blocks)
    assert lengths == {96: 363, 92: 1, 100: 1}


def test_readings_are_contiguous_and_blocks_start_with_their_first_reading(home: SampleFeed) -> None:
    (meter_reading,) = _meter_readings(home)
    previous_end = None
    for block in meter_reading.interval_blocks:
        rows = home.readings[block.id]
        assert rows[0][0] == block.start
        assert rows[-1][0] + rows[-1][1] == block.start + block.duration
        if previous_end is not None:
            assert block.start == previous_end
        previous_end = block.start + block.duration


def test_home_uses_a_realistic_amount_of_electricity(home: SampleFeed) -> None:
    (meter_reading,) = _meter_readings(home)
    kwh = sum(row[2] or 0 for row in home.reading_rows(meter_reading)) / 1000
    assert 8_000 <= kwh <= 12_000


def test_home_uses_more_electricity_in_summer_than_in_spring(home: SampleFeed) -> None:
    summaries = {s.billing_period_start: s for s in home.usage_points[0].usage_summaries}
    by_month = [s.measurements["overallConsumptionLastPeriod"]["value"] for s in summaries.values()]  # type: ignore[index]
    assert by_month[7] > 1.5 * by_month[3]  # August against April


def test_gas_is_winter_heavy() -> None:
    summaries = home_gas_feed().usage_points[0].usage_summaries
    january, july = summaries[0], summaries[6]
    assert (
        january.measurements["overallConsumptionLastPeriod"]["value"]
        > 3 * july.measurements["overallConsumptionLastPeriod"]["value"]
    )  # type: ignore[index]


@pytest.mark.parametrize("build", [home_electricity_feed, home_gas_feed, business_feed])
def test_every_reading_cost_is_a_non_negative_integer(build) -> None:  # type: ignore[no-untyped-def]
    sample = build()
    for meter_reading in _meter_readings(sample):
        for row in sample.reading_rows(meter_reading):
            cost = row[3]
            assert cost is None or (isinstance(cost, int) and cost >= 0)


def test_electricity_costs_are_in_hundred_thousandths_of_a_dollar(home: SampleFeed) -> None:
    """Wh at $0.30-0.60/kWh costs 30-60 hundred-thousandths of a dollar; cents would be 1000x off."""
    (meter_reading,) = _meter_readings(home)
    rows = [row for row in home.reading_rows(meter_reading) if row[2]]
    assert all(30 <= row[3] / row[2] <= 60 for row in rows)  # type: ignore[operator]


def test_bills_add_up(business: SampleFeed) -> None:
    for usage_point in business.usage_points:
        for summary in usage_point.usage_summaries:
            assert summary.cost_additional_last_period == sum(item.amount or 0 for item in summary.line_items)


def test_net_metering_has_forward_and_reverse_readings(business: SampleFeed) -> None:
    solar = business.usage_points[1]
    assert [m.reading_type.flow_direction for m in solar.meter_readings] == [1, 19]
    assert all(s.measurements and "peakDemand" in s.measurements for s in business.usage_points[0].usage_summaries)


@pytest.mark.parametrize("name", FILES)
def test_checked_in_file_is_what_the_generator_writes_now(name: str, regenerated: Path) -> None:
    checked_in = CHECKED_IN / name
    assert checked_in.is_file(), f"{checked_in} is missing: run `gateway sample-data`"
    assert checked_in.read_bytes() == (regenerated / name).read_bytes(), "regenerate with `gateway sample-data`"


def test_checked_in_files_stay_small_enough_for_the_repository() -> None:
    assert sum((CHECKED_IN / name).stat().st_size for name in FILES) < 30_000_000


@pytest.mark.parametrize("name", FILES)
def test_checked_in_file_is_valid_against_the_official_schema(name: str, shared_espi: Path) -> None:
    from gateway.espi.schemas import load_schema

    document = etree.parse(str(CHECKED_IN / name), etree.XMLParser(no_network=True, huge_tree=True))
    schema = load_schema("4.0")
    assert schema.validate(document), "\n".join(str(e) for e in list(schema.error_log)[:5])
