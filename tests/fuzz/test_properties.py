"""Property tests (hypothesis) for the parsers of untrusted input and for the feed writer.

- The scope grammar (``gateway/oauth/scope.py``) and the FB 37 query parameters (``gateway/web/params.py``) are
  **total**: any input parses or raises their one domain error (``ScopeError``, ``BadRequest``), never anything else
  (an uncaught exception would be a 500 with a stack in the log), and what they accept satisfies their invariants.
- The feed writer (``gateway/espi/writer.py``): whatever text and numbers the database holds, everything it writes
  passes the hostile-input gate (``safe_xml.parse_document``) and validates against our schemas with no error.
  The grammar's finer properties live in tests/unit/oauth/test_scope.py and tests/unit/web/test_params.py.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.errors import BadRequest
from gateway.espi.feeds import usage_feed
from gateway.espi.safe_xml import parse_document
from gateway.espi.validator import validate_tree
from gateway.espi.writer import feed_link
from gateway.oauth.scope import ScopeError, parse_scope_parameter
from gateway.web.params import MAX_RESULTS_CEILING, FeedQuery, parse_query
from tests.unit.espi import factories as f

PARAMETER_NAMES = [
    "published-min", "published-max", "updated-min", "updated-max", "max-results", "start-index", "depth",
    "access_token", "Published-Min", "max_results",
]  # fmt: skip
hostile_text = st.text(st.characters(codec=None), max_size=40) | st.sampled_from(
    ["", " ", "0", "-1", "1e9", "9" * 30, "2024-01-01T00:00:00Z", "2024-13-01T00:00:00Z", "NaN", "\x00", "٣"]
)


@given(st.one_of(st.text(max_size=200), st.lists(st.text(max_size=80), max_size=4), st.none()))
def test_scope_parameter_is_total(value: str | list[str] | None) -> None:
    """Any scope parameter (string, list, absent) parses or raises ScopeError."""
    with contextlib.suppress(ScopeError):
        parse_scope_parameter(value)


@given(st.dictionaries(st.sampled_from(PARAMETER_NAMES), hostile_text | st.lists(hostile_text, max_size=3)))
def test_query_parameters_are_total_and_bounded(params: dict[str, str | list[str]]) -> None:
    """Any query string parses into a bounded FeedQuery or raises BadRequest naming a parameter."""
    try:
        query = parse_query(params)
    except BadRequest:
        return
    assert isinstance(query, FeedQuery)
    assert 0 <= query.max_results <= MAX_RESULTS_CEILING
    assert query.start_index >= 1
    for low, high in ((query.published_min, query.published_max), (query.updated_min, query.updated_max)):
        assert low is None or high is None or low <= high


database_text = st.text(st.characters(codec=None), max_size=60)
"""Anything a text column can hold, including characters XML 1.0 cannot carry (the writer must replace them)."""
int48 = st.integers(min_value=-(2**47), max_value=2**47 - 1)
"""ESPI's ``Int48`` (IntervalReading value and cost): the importer refuses anything wider, so the database holds
no wider value and the writer need not narrow it."""


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    description=database_text,
    remark=database_text,
    title=database_text,
    values=st.lists(int48, min_size=1, max_size=4),
    costs=st.lists(st.none() | int48, min_size=1, max_size=4),
)
def test_everything_the_writer_writes_parses_and_validates(
    description: str, remark: str, title: str, values: list[int], costs: list[int | None]
) -> None:
    """A usage feed with hostile text and extreme numbers passes the safe parser and our schemas."""
    usage_point, readings = f.usage_tree()
    usage_point.description = description
    usage_point.service_delivery_remark = remark
    rows = {
        block: [
            (start, duration, values[i % len(values)], costs[i % len(costs)], *rest)
            for i, (start, duration, _value, _cost, *rest) in enumerate(block_rows)
        ]
        for block, block_rows in readings.items()
    }
    document = b"".join(
        usage_feed(
            [usage_point],
            f.LINKS.retail_customer(7),
            feed_id=uuid.UUID(int=1),
            title=title,
            updated=dt.datetime(2025, 2, 1, tzinfo=dt.UTC),
            self_link=feed_link("self", f.BASE + "/Batch/RetailCustomer/7/UsagePoint", "UsagePoint"),
            readings_for=lambda block: rows[block.id],
        )
    )
    root = parse_document(document)
    report = validate_tree(root, file="writer output")
    errors = [
        finding
        for finding in report.findings
        if finding.severity == "error" and finding.code.startswith(("schema", "xml"))
    ]
    assert not errors, [f"{e.code} line {e.line}: {e.message}" for e in errors[:5]]
