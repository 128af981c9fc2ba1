"""FB 37 query parameter parsing (ESPI-NOTES §8): exact, total, property-tested."""

from __future__ import annotations

import datetime as dt
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import BadRequest
from gateway.web.params import DEFAULT_MAX_RESULTS, MAX_RESULTS_CEILING, FeedQuery, format_time, parse_query

TIME_NAMES = ["published-min", "published-max", "updated-min", "updated-max"]
INT_NAMES = ["max-results", "start-index", "depth"]

moments = st.datetimes(
    min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(9999, 12, 31), timezones=st.just(dt.UTC)
).map(lambda moment: moment.replace(microsecond=0))


def test_defaults():
    assert parse_query({}) == FeedQuery()
    assert parse_query({}).max_results == DEFAULT_MAX_RESULTS


@given(moment=moments, name=st.sampled_from(TIME_NAMES))
def test_every_valid_time_round_trips(moment, name):
    text = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    parsed = parse_query({name: text})
    value = getattr(parsed, name.replace("-", "_"))
    assert value == int(moment.timestamp())
    assert format_time(value) == text


@given(text=st.text(max_size=30), name=st.sampled_from(TIME_NAMES))
def test_anything_else_is_refused_naming_the_parameter(text, name):
    try:
        dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
        well_formed = len(text) == 20
    except ValueError:
        well_formed = False
    if well_formed:
        return
    with pytest.raises(BadRequest) as raised:
        parse_query({name: text})
    assert name in raised.value.message


@given(number=st.integers(min_value=1, max_value=10**12), name=st.sampled_from(INT_NAMES))
def test_positive_integers_are_accepted(number, name):
    parsed = parse_query({name: str(number)})
    if name == "max-results":
        assert parsed.max_results == min(number, MAX_RESULTS_CEILING)
    elif name == "start-index":
        assert parsed.start_index == number and parsed.offset == number - 1
    else:
        assert parsed.depth is not None and 1 <= parsed.depth <= number


@given(text=st.text(max_size=12), name=st.sampled_from(INT_NAMES))
def test_non_digits_are_refused(text, name):
    if text and all(c in string.digits for c in text) and int(text) >= 1 and len(text) <= 18:
        return
    with pytest.raises(BadRequest) as raised:
        parse_query({name: text})
    assert name in raised.value.message


@pytest.mark.parametrize("name", TIME_NAMES + INT_NAMES)
def test_repeated_is_refused(name):
    value = "2024-01-01T00:00:00Z" if name in TIME_NAMES else "1"
    with pytest.raises(BadRequest) as raised:
        parse_query({name: [value, value]})
    assert name in raised.value.message


@given(a=moments, b=moments)
def test_min_after_max_is_refused(a, b):
    low, high = (a, b) if a <= b else (b, a)
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    parse_query({"published-min": low.strftime(fmt), "published-max": high.strftime(fmt)})
    if low != high:
        with pytest.raises(BadRequest):
            parse_query({"updated-min": high.strftime(fmt), "updated-max": low.strftime(fmt)})


@given(start=st.integers(min_value=1, max_value=10**6), size=st.integers(min_value=1, max_value=1000))
def test_page_query_round_trips(start, size):
    from urllib.parse import parse_qs

    query = parse_query({"max-results": str(size), "start-index": str(start), "published-min": "2024-01-01T00:00:00Z"})
    again = parse_query({k: v for k, v in parse_qs(query.page_query(start)).items()})
    assert again == query


def test_unknown_parameters_are_ignored():
    assert parse_query({"foo": "bar", "access_token": "x"}) == FeedQuery()
