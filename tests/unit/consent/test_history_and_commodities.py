"""The two scope rules that decide which data an app reads (ESPI-NOTES §5): HistoryLength and the commodity blocks."""

from __future__ import annotations

import datetime as dt

import pytest

from gateway.consent.describe import (
    commodity_name,
    describe_scope,
    history_in_months,
    history_start,
    shared_service_kinds,
)
from gateway.oauth.scope import parse_scope


def epoch(*parts: int) -> int:
    return int(dt.datetime(*parts, tzinfo=dt.UTC).timestamp())  # type: ignore[misc]


@pytest.mark.parametrize(("value", "months"), [(1, True), (13, True), (999, True), (1000, False), (31_536_000, False)])
def test_history_length_is_months_below_one_thousand(value, months):
    assert history_in_months(value) is months


@pytest.mark.parametrize(
    ("now", "months", "expected"),
    [
        (dt.datetime(2026, 11, 23, 11, 0, tzinfo=dt.UTC), 13, epoch(2025, 10, 23, 11)),
        (dt.datetime(2026, 11, 23, 11, 10, 7, tzinfo=dt.UTC), 1, epoch(2026, 10, 23, 12)),
        # Calendar months: one month before 31 March is the last day of February (a leap year here).
        (dt.datetime(2024, 3, 31, 5, 0, tzinfo=dt.UTC), 1, epoch(2024, 2, 29, 5)),
        (dt.datetime(2026, 1, 15, 0, 0, tzinfo=dt.UTC), 25, epoch(2023, 12, 15)),
    ],
)
def test_months_count_back_in_calendar_months_rounded_up_to_the_hour(now, months, expected):
    assert history_start(months, now) == expected


def test_seconds_count_back_in_seconds_rounded_up_to_the_hour():
    now = dt.datetime(2026, 11, 23, 11, 10, 7, tzinfo=dt.UTC)
    assert history_start(86_400 * 30, now) == epoch(2026, 10, 24, 12)


def test_the_start_never_lets_an_app_read_more_than_the_history():
    now = dt.datetime(2026, 11, 23, 11, 59, 59, tzinfo=dt.UTC)
    assert history_start(7200, now) >= int(now.timestamp()) - 7200


@pytest.mark.parametrize(
    ("blocks", "kinds"),
    [
        ({1, 3, 4, 5}, frozenset({0})),
        ({1, 3, 4, 10}, frozenset({1})),
        ({1, 11}, frozenset({2})),
        ({1, 5, 10}, frozenset({0, 1})),
        ({1, 3, 4}, None),
    ],
)
def test_commodity_blocks_name_the_service_kinds_shared(blocks, kinds):
    assert shared_service_kinds(blocks) == kinds


def test_a_scope_naming_commodities_tells_the_customer_the_others_stay_private():
    description = describe_scope(parse_scope("FB=1_3_4_5;IntervalDuration=900"))
    assert "Only your electricity meters: gas and water meters stay private" in description.data


def test_a_scope_naming_no_commodity_promises_no_restriction():
    description = describe_scope(parse_scope("FB=1_3_4;IntervalDuration=900"))
    assert not any(item.startswith("Only your") for item in description.data)


@pytest.mark.parametrize(
    ("kind", "name"), [(0, "electricity"), (1, "gas"), (2, "water"), (3, "other"), (None, "other")]
)
def test_commodity_names_for_the_customer(kind, name):
    assert commodity_name(kind) == name
