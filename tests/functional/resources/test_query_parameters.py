"""FB 37 query parameters over HTTP (ESPI-NOTES §8): exact validation, interval filtering, paging, depth.

Every page these tests fetch, empty or filtered, is schema-checked by the ``testapp`` fixture (conftest.py), also
where a test only ``parse()``s it to look at its entries and links.
"""

from __future__ import annotations

import pytest

from tests.functional.resources.conftest import ATOM, DAY, ESPI, START, entry_kinds, links, parse

BAD_VALUES = [
    ("published-min", "2024-01-01"),
    ("published-min", "2024-01-01T00:00:00"),
    ("published-min", "2024-01-01T00:00:00+00:00"),
    ("published-max", "2024-13-01T00:00:00Z"),
    ("published-max", "2024-02-30T00:00:00Z"),
    ("updated-min", "2024-01-01T00:00:00.5Z"),
    ("updated-max", "yesterday"),
    ("updated-max", ""),
    ("max-results", "-1"),
    ("max-results", "0"),
    ("max-results", "ten"),
    ("max-results", "1e3"),
    ("start-index", "0"),
    ("start-index", "+1"),
    ("start-index", " 1"),
    ("depth", "0"),
    ("depth", "1.0"),
    ("depth", "deep"),
]


def block_path(tree, token) -> str:
    return token.path(f"/UsagePoint/{tree.usage_points[0]}/MeterReading/{tree.meter_reading}/IntervalBlock")


@pytest.mark.parametrize(("name", "value"), BAD_VALUES)
@pytest.mark.parametrize("where", ["batch", "blocks", "usage_points"])
def test_bad_value_is_400_naming_the_parameter(testapp, tree, customer_token, name, value, where):
    token = customer_token()
    path = {"batch": token.batch(), "blocks": block_path(tree, token), "usage_points": token.path("/UsagePoint")}[where]
    response = testapp.get(path, {name: value}, headers=token.headers, status=400)
    assert name in response.json["description"]


def test_repeated_parameter_is_400(testapp, tree, customer_token):
    token = customer_token()
    response = testapp.get(token.batch() + "?max-results=1&max-results=2", headers=token.headers, status=400)
    assert "max-results" in response.json["description"]


def test_min_after_max_is_400(testapp, tree, customer_token):
    token = customer_token()
    params = {"published-min": "2024-02-01T00:00:00Z", "published-max": "2024-01-01T00:00:00Z"}
    assert "published-min" in testapp.get(token.batch(), params, headers=token.headers, status=400).json["description"]


def test_bad_parameter_from_unauthenticated_caller_is_401_not_400(testapp, tree, customer_token):
    token = customer_token()
    testapp.get(token.batch(), {"depth": "x"}, status=401)


def test_unknown_parameters_are_ignored(testapp, tree, customer_token):
    token = customer_token()
    testapp.get(token.batch(), {"_": "123"}, headers=token.headers, status=200)


def test_published_window_selects_blocks_by_interval(testapp, tree, customer_token, valid):
    token = customer_token()
    # Starts mid-day 0 and ends at the start of day 2: days 0 and 1 meet it, day 2 does not (half-open).
    params = {"published-min": "2024-01-01T12:00:00Z", "published-max": "2024-01-03T00:00:00Z"}
    root = valid(testapp.get(block_path(tree, token), params, headers=token.headers).body)
    starts = [int(i.find(f"{ESPI}start").text) for i in root.iter(f"{ESPI}interval")]
    assert starts == [START, START + DAY]


def test_published_window_in_batch(testapp, tree, customer_token, valid):
    token = customer_token()
    params = {"published-min": "2024-01-03T00:00:00Z"}
    root = valid(testapp.get(token.batch(), params, headers=token.headers).body)
    assert entry_kinds(root).count("IntervalBlock") == 1


def test_updated_window(testapp, tree, customer_token):
    token = customer_token()
    root = parse(
        testapp.get(block_path(tree, token), {"updated-min": "2030-01-01T00:00:00Z"}, headers=token.headers).body
    )
    assert entry_kinds(root) == []


def test_paging_blocks_with_next_and_previous(testapp, tree, customer_token, valid):
    token = customer_token()
    first = valid(testapp.get(block_path(tree, token), {"max-results": "2"}, headers=token.headers).body)
    assert entry_kinds(first) == ["IntervalBlock", "IntervalBlock"]
    assert links(first, "previous") == []
    (next_href,) = links(first, "next")
    assert "start-index=3" in next_href and "max-results=2" in next_href
    second = valid(testapp.get(next_href.removeprefix("http://127.0.0.1:8000"), headers=token.headers).body)
    assert entry_kinds(second) == ["IntervalBlock"]
    assert links(second, "next") == []
    assert "start-index=1" in links(second, "previous")[0]


def test_paging_keeps_filters(testapp, tree, customer_token):
    token = customer_token()
    params = {"max-results": "1", "published-min": "2024-01-01T00:00:00Z"}
    root = parse(testapp.get(block_path(tree, token), params, headers=token.headers).body)
    assert "published-min=2024-01-01T00%3A00%3A00Z" in links(root, "next")[0]


def test_paging_usage_points(testapp, tree, customer_token):
    token = customer_token()
    root = parse(testapp.get(token.path("/UsagePoint"), {"max-results": "1"}, headers=token.headers).body)
    assert entry_kinds(root) == ["UsagePoint"] and links(root, "next")
    last = parse(
        testapp.get(token.path("/UsagePoint"), {"max-results": "1", "start-index": "2"}, headers=token.headers).body
    )
    assert entry_kinds(last) == ["UsagePoint"] and not links(last, "next")


def test_paging_batch_pages_interval_blocks(testapp, tree, customer_token, valid):
    token = customer_token()
    root = valid(testapp.get(token.batch(), {"max-results": "2"}, headers=token.headers).body)
    assert entry_kinds(root).count("IntervalBlock") == 2 and links(root, "next")
    rest = valid(testapp.get(token.batch(), {"max-results": "2", "start-index": "3"}, headers=token.headers).body)
    kinds = entry_kinds(rest)
    assert kinds.count("IntervalBlock") == 1 and "UsageSummary" not in kinds and not links(rest, "next")


def test_start_index_beyond_the_end_is_an_empty_page(testapp, tree, customer_token):
    token = customer_token()
    root = parse(testapp.get(block_path(tree, token), {"start-index": "99"}, headers=token.headers).body)
    assert entry_kinds(root) == [] and links(root, "previous")


@pytest.mark.parametrize(
    ("depth", "kinds"),
    [
        ("1", {"UsagePoint"}),
        (
            "2",
            {
                "UsagePoint",
                "LocalTimeParameters",
                "MeterReading",
                "ReadingType",
                "UsageSummary",
                "ElectricPowerQualitySummary",
            },
        ),
        (
            "3",
            {
                "UsagePoint",
                "LocalTimeParameters",
                "MeterReading",
                "ReadingType",
                "IntervalBlock",
                "UsageSummary",
                "ElectricPowerQualitySummary",
            },
        ),
    ],
)
def test_depth_limits_the_batch_tree(testapp, tree, customer_token, valid, depth, kinds):
    token = customer_token()
    root = valid(testapp.get(token.batch(), {"depth": depth}, headers=token.headers).body)
    assert set(entry_kinds(root)) == kinds


def test_feed_self_link_is_the_request(testapp, tree, customer_token):
    token = customer_token()
    root = parse(testapp.get(token.batch(), {"depth": "1"}, headers=token.headers).body)
    assert links(root, "self") == [f"http://127.0.0.1:8000{token.batch()}?depth=1"]
    assert root.find(f"{ATOM}updated").text == "2024-02-01T00:00:00Z"
