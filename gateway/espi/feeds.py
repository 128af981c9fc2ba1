"""Whole-feed walkers: a customer's usage tree as one Green Button feed (ESPI-NOTES §7).

:func:`usage_feed` writes, for each UsagePoint, the order a reader of a Green Button file expects: UsagePoint
→ LocalTimeParameters → for each MeterReading: MeterReading → ReadingType → IntervalBlocks → then the
UsagePoint's UsageSummaries → ElectricPowerQualitySummaries. Shared reference data (ReadingType,
LocalTimeParameters) is written once per feed, however many entries relate to it.

The walker follows the model's relationships (``usage_point.meter_readings`` …) but takes the two things that
are big as callables: ``readings_for(block)`` yields a block's readings (from the database with ``yield_per``,
or from memory in the sample generator) and the optional ``blocks_for(meter_reading)`` chooses the blocks
(e.g. those in a ``published-min``/``published-max`` window, ESPI-NOTES §8). Readings are pulled while their
entry is written, so memory does not grow with the feed.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from gateway.espi.links import UsagePointLinks
from gateway.espi.writer import (
    Entry,
    Link,
    ReadingRow,
    electric_power_quality_summary_entry,
    feed,
    interval_block_entry,
    local_time_parameters_entry,
    meter_reading_entry,
    reading_type_entry,
    usage_point_entry,
    usage_summary_entry,
)

if TYPE_CHECKING:
    from gateway.storage.usage import IntervalBlock, MeterReading, UsagePoint

__all__ = ["BlocksFor", "ReadingsFor", "usage_entries", "usage_feed"]

ReadingsFor = Callable[["IntervalBlock"], Iterable[ReadingRow]]
"""Gives an IntervalBlock's reading rows, ordered by start."""

BlocksFor = Callable[["MeterReading"], Iterable["IntervalBlock"]]
"""Gives the IntervalBlocks of a MeterReading to write, ordered by start."""


def _all_blocks(meter_reading: MeterReading) -> Iterable[IntervalBlock]:
    return meter_reading.interval_blocks


def usage_entries(
    usage_points: Iterable[UsagePoint],
    scope: UsagePointLinks,
    *,
    readings_for: ReadingsFor,
    blocks_for: BlocksFor | None = None,
) -> Iterator[Entry]:
    """The entries of a usage feed, in Green Button order, each built only when the writer reaches it."""
    blocks = blocks_for or _all_blocks
    written_reading_types: set[int] = set()
    written_time_parameters: set[int] = set()
    for usage_point in usage_points:
        yield usage_point_entry(usage_point, scope)
        parameters = usage_point.local_time_parameters
        if parameters is not None and parameters.id not in written_time_parameters:
            written_time_parameters.add(parameters.id)
            yield local_time_parameters_entry(parameters, scope.resources)
        for meter_reading in usage_point.meter_readings:
            yield meter_reading_entry(meter_reading, scope)
            reading_type = meter_reading.reading_type
            if reading_type.id not in written_reading_types:
                written_reading_types.add(reading_type.id)
                yield reading_type_entry(reading_type, scope.resources)
            for block in blocks(meter_reading):
                yield interval_block_entry(block, readings_for(block), scope, usage_point_id=usage_point.id)
        for summary in usage_point.usage_summaries:
            yield usage_summary_entry(summary, scope)
        for quality_summary in usage_point.power_quality_summaries:
            yield electric_power_quality_summary_entry(quality_summary, scope)


def usage_feed(
    usage_points: Iterable[UsagePoint],
    scope: UsagePointLinks,
    *,
    feed_id: uuid.UUID,
    title: str,
    updated: dt.datetime,
    self_link: Link,
    readings_for: ReadingsFor,
    blocks_for: BlocksFor | None = None,
    certification_url: str | None = None,
    links: Sequence[Link] = (),
) -> Iterator[bytes]:
    """Write the usage tree of ``usage_points`` as one Atom feed, in UTF-8 chunks (a Batch/Subscription
    response, a Download My Data export, or a sample file)."""
    entries = usage_entries(usage_points, scope, readings_for=readings_for, blocks_for=blocks_for)
    return feed(
        entries,
        feed_id=feed_id,
        title=title,
        updated=updated,
        self_link=self_link,
        certification_url=certification_url,
        links=links,
    )
