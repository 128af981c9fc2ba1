"""ESPI query parameters (REQ.21 FB 37 "Query parameters"; ESPI-NOTES §8), parsed exactly and purely.

``published-min``, ``published-max``, ``updated-min``, ``updated-max`` must be ``YYYY-MM-DDThh:mm:ssZ`` (UTC, no
fraction, no offset); ``max-results``, ``start-index`` and ``depth`` must be ASCII digits. Anything else is a 400 whose
message names the parameter: custodians that silently ignored bad values left third parties with silent data gaps.
A parameter given twice is refused too (which value would win is not defined anywhere). Unknown parameters are
ignored, as Atom clients add their own (cache busters), except ``access_token`` which the bearer check refuses.

No falcon here: :func:`parse_query` takes the decoded query as a mapping of lists, so it is property-testable.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Final
from urllib.parse import urlencode

from gateway.errors import BadRequest

__all__ = ["DEFAULT_MAX_RESULTS", "MAX_DEPTH", "FeedQuery", "parse_query"]

DEFAULT_MAX_RESULTS: Final = 1000
"""Entries per page when ``max-results`` is absent (feeds of more entries get a ``next`` link)."""

MAX_RESULTS_CEILING: Final = 10_000
"""The largest ``max-results`` honoured: bigger values are clamped, not refused (clients ask for 'all')."""

MAX_DEPTH: Final = 10
"""The ESPI tree is at most 4 levels deep under a subscription; larger ``depth`` values mean 'everything'."""

_TIME: Final = re.compile(r"\A(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z\Z")
_DIGITS: Final = re.compile(r"\A[0-9]{1,18}\Z")
_TIME_NAMES: Final = ("published-min", "published-max", "updated-min", "updated-max")
_INT_NAMES: Final = ("max-results", "start-index", "depth")


@dataclasses.dataclass(frozen=True, slots=True)
class FeedQuery:
    """The FB 37 parameters of one request, validated. Times are UTC epoch seconds.

    ``start_index`` is 1-based (as GData/OpenSearch, which ESPI borrowed the names from); ``max_results`` is the
    page size after clamping; ``depth`` is ``None`` when not given (the whole tree).
    """

    published_min: int | None = None
    published_max: int | None = None
    updated_min: int | None = None
    updated_max: int | None = None
    max_results: int = DEFAULT_MAX_RESULTS
    start_index: int = 1
    depth: int | None = None
    max_results_given: bool = False

    @property
    def offset(self) -> int:
        """The 0-based offset of the first entry of this page."""
        return self.start_index - 1

    def cache_key(self) -> str:
        """A canonical string of the parameters, part of the ETag (RFC 9110 §8.8.3: one representation each)."""
        return (
            f"{self.published_min},{self.published_max},{self.updated_min},{self.updated_max},"
            f"{self.max_results},{self.start_index},{self.depth}"
        )

    def page_query(self, start_index: int) -> str:
        """The query string of the page that starts at ``start_index``, other parameters kept (RFC 5005 §3)."""
        values: list[tuple[str, str]] = []
        for name, value in (
            ("published-min", self.published_min),
            ("published-max", self.published_max),
            ("updated-min", self.updated_min),
            ("updated-max", self.updated_max),
        ):
            if value is not None:
                values.append((name, format_time(value)))
        if self.depth is not None:
            values.append(("depth", str(self.depth)))
        values.append(("max-results", str(self.max_results)))
        values.append(("start-index", str(start_index)))
        return urlencode(values)


def format_time(epoch: int) -> str:
    """The FB 37 time form of ``epoch`` (``YYYY-MM-DDThh:mm:ssZ``)."""
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _time(name: str, value: str) -> int:
    match = _TIME.match(value)
    if match is None:
        raise BadRequest(
            f"query parameter {name} must be YYYY-MM-DDThh:mm:ssZ (UTC), got {value[:40]!r}", parameter=name
        )
    year, month, day, hour, minute, second = (int(part) for part in match.groups())
    try:
        moment = dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)
    except ValueError:
        raise BadRequest(f"query parameter {name} is not a valid date and time: {value!r}", parameter=name) from None
    return int(moment.timestamp())


def _int(name: str, value: str) -> int:
    if _DIGITS.match(value) is None:
        raise BadRequest(f"query parameter {name} must be a whole number of digits, got {value[:40]!r}", parameter=name)
    return int(value)


def parse_query(params: Mapping[str, str | Sequence[str]]) -> FeedQuery:
    """Validate the FB 37 parameters in ``params`` (name to value, or list of values) and return them.

    Raises:
        BadRequest: a parameter is repeated, malformed, out of range, or a ``-min`` exceeds its ``-max``; the
            message names the parameter.
    """
    single: dict[str, str] = {}
    for name in (*_TIME_NAMES, *_INT_NAMES):
        raw = params.get(name)
        if raw is None:
            continue
        if not isinstance(raw, str):
            values = list(raw)
            if len(values) != 1:
                raise BadRequest(f"query parameter {name} must be given once", parameter=name)
            raw = values[0]
        single[name] = raw
    times = {name: _time(name, single[name]) for name in _TIME_NAMES if name in single}
    ints = {name: _int(name, single[name]) for name in _INT_NAMES if name in single}
    for low, high in (("published-min", "published-max"), ("updated-min", "updated-max")):
        if low in times and high in times and times[low] > times[high]:
            raise BadRequest(f"query parameter {low} must not be after {high}", parameter=low)
    max_results = ints.get("max-results")
    if max_results is not None and max_results < 1:
        raise BadRequest("query parameter max-results must be at least 1", parameter="max-results")
    start_index = ints.get("start-index", 1)
    if start_index < 1:
        raise BadRequest("query parameter start-index must be at least 1 (it is 1-based)", parameter="start-index")
    depth = ints.get("depth")
    if depth is not None and depth < 1:
        raise BadRequest("query parameter depth must be at least 1", parameter="depth")
    return FeedQuery(
        published_min=times.get("published-min"),
        published_max=times.get("published-max"),
        updated_min=times.get("updated-min"),
        updated_max=times.get("updated-max"),
        max_results=min(max_results, MAX_RESULTS_CEILING) if max_results is not None else DEFAULT_MAX_RESULTS,
        start_index=start_index,
        depth=min(depth, MAX_DEPTH) if depth is not None else None,
        max_results_given=max_results is not None,
    )
