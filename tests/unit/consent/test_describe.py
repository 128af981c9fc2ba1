"""Plain-language scope descriptions (the consent issue, item 2)."""

from __future__ import annotations

import pytest

from gateway.consent.describe import describe_interval, describe_period, describe_scope
from gateway.oauth.scope import parse_scope


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("FB=1_3_4_5_13_14_39;IntervalDuration=900", "15-minute electricity usage"),
        ("FB=1_4_5;IntervalDuration=900_3600", "15-minute and hourly electricity usage"),
        ("FB=1_4_10;IntervalDuration=3600", "Hourly gas usage"),
        ("FB=1_11", "Water usage"),
        ("FB=1_3_16", "Bills and costs (summaries with cost)"),
        ("FB=1_3_12", "The cost of each reading"),
        ("FB=1_3_51", "Your name, address, account and contract details (personal information)"),
    ],
)
def test_function_blocks_become_data_items(scope, expected):
    assert expected in describe_scope(parse_scope(scope)).data


def test_protocol_blocks_are_not_listed_as_data():
    description = describe_scope(parse_scope("FB=1_3_4_5_13_14_31_35_37_39;IntervalDuration=900"))
    assert not any("OAuth" in item or "REST" in item for item in description.data)


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        (13, "up to 13 months of past data"),
        (1, "up to 1 month of past data"),
        (31_536_000, "up to 365 days of past data"),
        (None, None),
    ],
)
def test_history_length_is_months_when_small_and_seconds_when_large(history, expected):
    assert describe_period(history) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"), [(900, "15-minute"), (3600, "hourly"), (86400, "daily"), (7200, "2-hour")]
)
def test_interval_names(seconds, expected):
    assert describe_interval(seconds) == expected


def test_the_technical_names_stay_available():
    assert "39: Push notifications" in describe_scope(parse_scope("FB=1_39")).technical
