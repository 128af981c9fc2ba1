"""``Batch/Subscription/{s}`` and ``Batch/Subscription/{s}/UsagePoint[/{u}]`` (ESPI REQ.21 FB 3, 35; ESPI-NOTES §2, §7).

Everything a consent covers, as one Green Button feed in the order readers expect: UsagePoint → LocalTimeParameters →
for each MeterReading: MeterReading → ReadingType → IntervalBlocks → the UsagePoint's UsageSummaries →
ElectricPowerQualitySummaries. The token response's ``resourceURI`` points here. Customer tokens for ``{s}`` only.

FB 37 in a batch: ``published-*`` and ``updated-*`` select IntervalBlocks (by interval, ESPI-NOTES §8) and summaries
(by ``published``/``updated``); the structural entries (UsagePoint, MeterReading, ReadingType, LocalTimeParameters)
are always written so every block has its context. ``max-results``/``start-index`` page the IntervalBlocks, the bulk
of any feed (a batch is whole unless ``max-results`` is given); summaries are on the first page only. ``depth`` 1 is
the UsagePoints alone, 2 adds their direct children and reference data, 3 or more adds the IntervalBlocks.

Everything but the readings is loaded and every entry built before the first byte; readings stream per block.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import falcon
from sqlalchemy.orm import Session

from gateway.errors import NotFound
from gateway.espi.links import UsagePointLinks
from gateway.espi.writer import (
    Entry,
    electric_power_quality_summary_entry,
    interval_block_entry,
    local_time_parameters_entry,
    meter_reading_entry,
    reading_type_entry,
    usage_point_entry,
    usage_summary_entry,
)
from gateway.resources.espi_base import CostFreeSummary, EspiApi, grant_parts, row_parts
from gateway.resources.interval_block import block_parts
from gateway.storage import queries
from gateway.storage.queries import Grant, IntervalFilter, Page
from gateway.storage.usage import UsagePoint
from gateway.web.params import MAX_DEPTH, FeedQuery

if TYPE_CHECKING:
    from gateway.storage.usage import IntervalBlock, UsageSummary

__all__ = ["BatchSubscriptionResource", "UsageTree", "usage_tree"]


class UsageTree:
    """The entries of a usage feed, built, with what the validators and paging need."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.rows: list[Any] = []
        self.parts: list[object] = []
        self.total_blocks = 0


def usage_tree(
    session: Session,
    grant: Grant,
    scope: UsagePointLinks,
    points: Sequence[UsagePoint],
    query: FeedQuery,
    filters: IntervalFilter,
) -> UsageTree:
    """Load and build the feed of ``points`` for ``grant`` (not a generator: every query runs now)."""
    tree = UsageTree()
    depth = query.depth or MAX_DEPTH
    point_ids = [point.id for point in points]
    readings_by_point: dict[int, list[Any]] = defaultdict(list)
    blocks_by_reading: dict[int, list[queries.BlockView]] = defaultdict(list)
    summaries: dict[int, list[Any]] = defaultdict(list)
    quality: dict[int, list[Any]] = defaultdict(list)
    if depth >= 2:
        for reading in queries.meter_readings(session, grant, point_ids):
            readings_by_point[reading.usage_point_id].append(reading)
        meter_reading_ids = [r.id for rs in readings_by_point.values() for r in rs]
        if depth >= 3:
            paged = query.max_results_given or query.start_index > 1
            page = Page(offset=query.offset, limit=query.max_results if query.max_results_given else None)
            found = queries.blocks(session, grant, meter_reading_ids, filters=filters, page=page)
            tree.total_blocks = queries.block_count(session, grant, meter_reading_ids, filters) if paged else len(found)
            for block in found:
                blocks_by_reading[block.meter_reading_id].append(block)
            tree.rows.extend(found)
            tree.parts.extend(block_parts(found))
        if query.offset == 0:
            for summary in queries.usage_summaries(session, grant, point_ids, filters=filters):
                summaries[summary.usage_point_id].append(summary)
            for item in queries.power_quality_summaries(session, grant, point_ids, filters=filters):
                quality[item.usage_point_id].append(item)
    written_types: set[int] = set()
    written_time_parameters: set[int] = set()
    entries = tree.entries
    for point in points:
        entries.append(usage_point_entry(point, scope))
        tree.rows.append(point)
        if depth < 2:
            continue
        parameters = point.local_time_parameters
        if parameters is not None and parameters.id not in written_time_parameters:
            written_time_parameters.add(parameters.id)
            entries.append(local_time_parameters_entry(parameters, scope.resources))
            tree.rows.append(parameters)
        for reading in readings_by_point[point.id]:
            entries.append(meter_reading_entry(reading, scope))
            tree.rows.append(reading)
            reading_type = reading.reading_type
            if reading_type.id not in written_types:
                written_types.add(reading_type.id)
                entries.append(reading_type_entry(reading_type, scope.resources))
                tree.rows.append(reading_type)
            for block in blocks_by_reading[reading.id]:
                entries.append(
                    interval_block_entry(
                        cast("IntervalBlock", block),
                        queries.readings(session, grant, block),
                        scope,
                        usage_point_id=point.id,
                    )
                )
        for summary in summaries[point.id]:
            shown = summary if grant.summary_costs else CostFreeSummary(summary)
            entries.append(usage_summary_entry(cast("UsageSummary", shown), scope))
            tree.rows.append(summary)
        for item in quality[point.id]:
            entries.append(electric_power_quality_summary_entry(item, scope))
            tree.rows.append(item)
    tree.parts.extend(row_parts(row for row in tree.rows if not isinstance(row, queries.BlockView)))
    return tree


class BatchSubscriptionResource:
    """``Batch/Subscription/{s}`` (``on_get``), ``…/UsagePoint`` (``on_get_usage_points``), ``…/UsagePoint/{u}``."""

    def __init__(self, api: EspiApi) -> None:
        self.api = api

    def _send(self, req: falcon.Request, resp: falcon.Response, s: int, usage_point_id: int | None, title: str) -> None:
        grant = self.api.customer_grant(req, s)
        query = self.api.query(req)
        session = self.api.db(req)
        if usage_point_id is None:
            points = queries.usage_points(session, grant)
        else:
            points = queries.usage_points(session, grant, usage_point_id=usage_point_id)
            if not points:
                raise NotFound(f"no UsagePoint {usage_point_id} in this subscription")
        filters = self.api.filters(query)
        tree = usage_tree(session, grant, self.api.scope(grant), points, query, filters)
        links = (
            self.api.paging_links(req, query, total=tree.total_blocks, resource="IntervalBlock")
            if query.max_results_given or query.start_index > 1
            else []
        )
        self.api.send_feed(
            req,
            resp,
            tree.entries,
            resource="Subscription",
            title=title,
            validator_parts=[*grant_parts(grant), query.cache_key(), *tree.parts],
            rows=tree.rows,
            links=links,
        )

    def on_get(self, req: falcon.Request, resp: falcon.Response, s: int) -> None:
        """Everything the consent covers."""
        self._send(req, resp, s, None, f"Green Button Subscription {s}")

    def on_get_usage_points(self, req: falcon.Request, resp: falcon.Response, s: int) -> None:
        """The same, under the ``UsagePoint`` form of the batch URL."""
        self._send(req, resp, s, None, f"Green Button Subscription {s}: UsagePoints")

    def on_get_usage_point(self, req: falcon.Request, resp: falcon.Response, s: int, u: int) -> None:
        """One usage point's whole tree (404 outside the consent)."""
        self._send(req, resp, s, u, f"Green Button Subscription {s}: UsagePoint {u}")
