"""Query functions for the ESPI resource API: what a grant may see, blocks in a window, paging (ESPI-NOTES §3, §8).

Every function takes the session first and never commits or closes it (the caller owns its lifetime). Nothing here
knows HTTP: a function answers ``None`` or an empty list when nothing is visible, and the resource decides between
403 and 404. Everything a feed needs is loaded here *before* the first byte is written, except interval readings,
which :func:`readings` streams with ``yield_per`` while the feed is written (PITFALLS: falcon, SQLAlchemy).

Least privilege (SECURITY-CHECKLIST row 29) is applied in SQL, not after the fact: every statement is restricted to
the grant's usage points (and their owner) of its commodities (FB 5, 10, 11), its data window (the Authorization's
``publishedPeriod`` cut by the scope's ``HistoryLength``), its function blocks and its interval durations.

The custodian's root collections (``UsagePoint``, ``MeterReading``, ``IntervalBlock``, …: :func:`root_collection`)
see every row and are paged through the primary-key index without ever being counted.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import functools
import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import ColumnElement, Connection, Select, bindparam, func, literal, null, or_, select
from sqlalchemy.orm import Session, selectinload

from gateway.consent.describe import history_start, shared_service_kinds
from gateway.oauth.scope import EspiScope, ScopeError, parse_scope
from gateway.storage.authorization import Authorization, Subscription, subscription_usage_point
from gateway.storage.base import utcnow
from gateway.storage.usage import (
    ElectricPowerQualitySummary,
    EspiResourceMixin,
    IntervalBlock,
    LocalTimeParameters,
    MeterReading,
    ReadingType,
    UsagePoint,
    UsageSummary,
    interval_reading_table,
)

__all__ = [
    "CUSTODIAN_GRANT",
    "BlockView",
    "DataWindow",
    "Grant",
    "IntervalFilter",
    "Page",
    "RootPage",
    "block_count",
    "blocks",
    "consent_grant",
    "customer_export_grant",
    "customer_grant",
    "local_time_parameters",
    "meter_readings",
    "power_quality_summaries",
    "reading_type",
    "readings",
    "root_block",
    "root_blocks",
    "root_collection",
    "root_item",
    "subscription_usage_point_of",
    "usage_point_owner",
    "usage_point_row",
    "usage_points",
    "usage_summaries",
    "with_subscription_usage_point",
]

READINGS_YIELD_PER = 4096
"""Rows fetched per round trip while streaming a block's readings: memory stays flat however long the feed."""

FB_INTERVAL_METERING = 4
FB_INTERVAL_COST = 12
FB_USAGE_SUMMARY = 15
FB_SUMMARY_COST = 16
FB_POWER_QUALITY = 17


@dataclasses.dataclass(frozen=True, slots=True)
class DataWindow:
    """The half-open time range ``[start, end)`` (UTC epoch seconds) a consent shares; ``None`` is unbounded.

    It is the Authorization's ESPI ``publishedPeriod`` (set from the consent request's data window).
    """

    start: int | None = None
    end: int | None = None

    @classmethod
    def of(cls, authorization: Authorization) -> DataWindow:
        start = authorization.published_period_start
        duration = authorization.published_period_duration
        end = None if start is None or duration is None else start + duration
        return cls(start=start or None, end=end)

    @property
    def bounded(self) -> bool:
        return self.start is not None or self.end is not None

    def since(self, earliest: int) -> DataWindow:
        """This window, starting no earlier than ``earliest`` (a scope's ``HistoryLength``, ESPI-NOTES §5)."""
        start = earliest if self.start is None else max(self.start, earliest)
        return DataWindow(start=start, end=self.end)

    def meets(self, start: int | None, end: int | None) -> bool:
        """True when ``[start, end)`` overlaps the window (an unknown bound reaches as far as it can)."""
        if end is not None and self.start is not None and end <= self.start:
            return False
        return not (start is not None and self.end is not None and start >= self.end)

    def contains(self, start: int | None, duration: int | None) -> bool:
        """True when ``[start, start + duration)`` lies entirely inside the window."""
        if not self.bounded:
            return True
        if start is None:
            return False
        end = start + (duration or 0)
        return (self.start is None or start >= self.start) and (self.end is None or end <= self.end)


@dataclasses.dataclass(frozen=True, slots=True)
class Grant:
    """What one customer access token may read: its subscription's usage points, window and function blocks."""

    subscription_id: int | None
    """``None``: every usage point of the customer (the custodian's Download My Data export)."""
    customer_id: int
    window: DataWindow
    function_blocks: frozenset[int]
    interval_durations: tuple[int, ...] = ()
    scope_text: str = ""
    service_kinds: frozenset[int] | None = None
    """The ``ServiceCategory`` kinds of the usage points it shows (its commodity blocks: FB 5 electricity → 0, FB 10
    gas → 1, FB 11 water → 2); ``None`` when the scope names no commodity block: every commodity."""

    def has(self, block: int) -> bool:
        return block in self.function_blocks

    @property
    def costs(self) -> bool:
        """Interval costs only with FB 12 (interval cost)."""
        return self.has(FB_INTERVAL_COST)

    @property
    def summary_costs(self) -> bool:
        """UsageSummary bills and line items only with FB 16 (summary with cost)."""
        return self.has(FB_SUMMARY_COST)

    def shows_kind(self, service_kind: int | None) -> bool:
        """True when a usage point of this ``ServiceCategory`` kind is within the grant's commodities."""
        return self.service_kinds is None or service_kind in self.service_kinds


@dataclasses.dataclass(frozen=True, slots=True)
class IntervalFilter:
    """The FB 37 time filters: ``published-*`` on an IntervalBlock's interval, ``updated-*`` on ``updated``.

    ``published_min``/``published_max`` select blocks whose interval ``[start, start + duration)`` meets the
    half-open range ``[published_min, published_max)`` (ESPI-NOTES §8: the interval, not the Atom ``published``).
    """

    published_min: int | None = None
    published_max: int | None = None
    updated_min: dt.datetime | None = None
    updated_max: dt.datetime | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Page:
    """An offset/limit page (``start-index`` is 1-based at the edge, ``offset`` is 0-based here)."""

    offset: int = 0
    limit: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class BlockView:
    """An IntervalBlock as written: its interval clipped to the data window when the window cuts it.

    Duck-types :class:`IntervalBlock` for :func:`gateway.espi.writer.interval_block_entry`; ``usage_point_id`` is
    the MeterReading's, which the links need.
    """

    id: int
    uuid: Any
    description: str | None
    published: dt.datetime
    updated: dt.datetime
    meter_reading_id: int
    usage_point_id: int
    start: int
    duration: int
    clipped: bool = False


_subscription = Subscription.__table__
_authorization = Authorization.__table__
_usage_point = UsagePoint.__table__

# Built once: the grant lookup runs on every customer request, and building a statement costs more than running it.
_GRANT_LOOKUP = (
    select(
        _authorization.c.scope,
        _authorization.c.published_period_start,
        _authorization.c.published_period_duration,
    )
    .select_from(_subscription.join(_authorization, _authorization.c.id == _subscription.c.authorization_id))
    .where(_subscription.c.id == bindparam("subscription_id"), _subscription.c.customer_id == bindparam("customer_id"))
)

_ONE_USAGE_POINT = (
    select(_usage_point)
    .join(subscription_usage_point, subscription_usage_point.c.usage_point_id == _usage_point.c.id)
    .where(
        subscription_usage_point.c.subscription_id == bindparam("subscription_id"),
        _usage_point.c.customer_id == bindparam("customer_id"),
        _usage_point.c.id == bindparam("usage_point_id"),
    )
)


@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> EspiScope | None:
    """Stored scopes are canonical and repeat across requests: parse each once per process."""
    try:
        return parse_scope(text)
    except ScopeError:
        return None


def consent_grant(
    subscription_id: int,
    customer_id: int,
    scope_text: str,
    period_start: int | None,
    period_duration: int | None,
) -> Grant | None:
    """The grant an Authorization's stored scope and ``publishedPeriod`` give (``None`` for an unreadable scope).

    The one place a customer grant is made, so every resource that reads with it (Subscription, Batch, Bulk and
    their IntervalBlocks, summaries and readings) applies the same rules:

    - the data window is the ``publishedPeriod``, starting no earlier than the scope's ``HistoryLength`` before
      now (months when small, else seconds: :func:`gateway.consent.describe.history_start`, ESPI-NOTES §5);
    - usage points are limited to the scope's commodity blocks when it names any (FB 5, 10, 11,
      :func:`gateway.consent.describe.shared_service_kinds`); a scope naming none shares every commodity.

    The bearer check (:mod:`gateway.oauth.bearer`) selects the Authorization's scope and ``publishedPeriod`` in the
    token lookup itself and calls this, so a customer request needs no query of its own for its grant.
    """
    scope = _parse(scope_text)
    if scope is None:
        return None
    end = None if period_start is None or period_duration is None else period_start + period_duration
    window = DataWindow(start=period_start or None, end=end)
    if scope.history_length is not None:
        window = window.since(history_start(scope.history_length, utcnow()))
    return Grant(
        subscription_id=subscription_id,
        customer_id=customer_id,
        window=window,
        function_blocks=scope.function_blocks,
        interval_durations=scope.interval_durations,
        scope_text=scope_text,
        service_kinds=shared_service_kinds(scope.function_blocks),
    )


def customer_grant(session: Session, *, subscription_id: int, customer_id: int) -> Grant | None:
    """The grant of a customer token's subscription, or ``None`` when it does not belong to ``customer_id``.

    Function blocks and durations come from the Authorization's stored (granted, canonical) scope, so a scope
    narrowed by the customer on the consent screen applies here; the data window is its ``publishedPeriod``
    limited by the scope's ``HistoryLength`` (see :func:`consent_grant`).
    """
    row = session.execute(_GRANT_LOOKUP, {"subscription_id": subscription_id, "customer_id": customer_id}).first()
    if row is None:
        return None
    scope_text, period_start, period_duration = row
    return consent_grant(subscription_id, customer_id, scope_text, period_start, period_duration)


def usage_point_row(session: Session | Connection, grant: Grant, usage_point_id: int) -> Any | None:
    """One usage point of the grant as a Core row (attribute access like the model: what one entry needs)."""
    if grant.subscription_id is None:
        row = session.execute(
            select(_usage_point).where(
                _usage_point.c.id == usage_point_id, _usage_point.c.customer_id == grant.customer_id
            )
        ).first()
    else:
        row = session.execute(
            _ONE_USAGE_POINT,
            {
                "subscription_id": grant.subscription_id,
                "customer_id": grant.customer_id,
                "usage_point_id": usage_point_id,
            },
        ).first()
    # A usage point of a commodity the scope does not name is as absent as one outside the consent (404).
    return row if row is not None and grant.shows_kind(row.service_kind) else None


# One usage point as a plain row (attribute access like a Core row) when its columns come at the end of a wider row.
_UsagePointRow = collections.namedtuple("_UsagePointRow", [column.name for column in _usage_point.columns])  # type: ignore[misc]


def with_subscription_usage_point(statement: Select[Any]) -> Select[Any]:
    """``statement``, a select over ``subscription``, with the usage point ``:usage_point_id`` of that subscription
    outer-joined and its columns appended (all ``NULL`` when the point is not in the subscription or not of the
    subscription's customer). :func:`subscription_usage_point_of` reads them back.

    The bearer check (:mod:`gateway.oauth.bearer`) folds this into the token lookup, so that ``GET …/UsagePoint/{u}``
    learns who calls, what the consent grants and whether ``u`` is in it with one query.
    """
    return (
        statement.add_columns(*_usage_point.columns)
        .outerjoin(
            subscription_usage_point,
            (subscription_usage_point.c.subscription_id == _subscription.c.id)
            & (subscription_usage_point.c.usage_point_id == bindparam("usage_point_id")),
        )
        .outerjoin(
            _usage_point,
            (_usage_point.c.id == subscription_usage_point.c.usage_point_id)
            & (_usage_point.c.customer_id == _subscription.c.customer_id),
        )
    )


def subscription_usage_point_of(grant: Grant, row: Sequence[Any]) -> Any | None:
    """The usage point in the columns :func:`with_subscription_usage_point` appended to ``row``, as
    :func:`usage_point_row` would answer it for ``grant`` (``None`` when absent or of a commodity it does not show)."""
    point: Any = _UsagePointRow._make(row[len(row) - len(_UsagePointRow._fields) :])
    return point if point.id is not None and grant.shows_kind(point.service_kind) else None


ALL_FUNCTION_BLOCKS = frozenset(range(1, 100))


def customer_export_grant(customer_id: int) -> Grant:
    """Everything of one customer, for the custodian's own export (``Batch/RetailCustomer/{c}/UsagePoint``)."""
    return Grant(
        subscription_id=None, customer_id=customer_id, window=DataWindow(), function_blocks=ALL_FUNCTION_BLOCKS
    )


def _visible_usage_points(grant: Grant) -> Select[Any]:
    if grant.subscription_id is None:
        statement = select(UsagePoint).where(UsagePoint.customer_id == grant.customer_id)
    else:
        statement = (
            select(UsagePoint)
            .join(subscription_usage_point, subscription_usage_point.c.usage_point_id == UsagePoint.id)
            .where(
                subscription_usage_point.c.subscription_id == grant.subscription_id,
                # Defence in depth: a usage point that changed hands since the consent is not the new owner's to share.
                UsagePoint.customer_id == grant.customer_id,
            )
        )
    if grant.service_kinds is not None:
        statement = statement.where(UsagePoint.service_kind.in_(sorted(grant.service_kinds)))
    return statement


def _updated_filter(column: Any, updated_min: dt.datetime | None, updated_max: dt.datetime | None) -> list[Any]:
    clauses = []
    if updated_min is not None:
        clauses.append(column >= updated_min)
    if updated_max is not None:
        clauses.append(column < updated_max)
    return clauses


def usage_points(
    session: Session,
    grant: Grant,
    *,
    usage_point_id: int | None = None,
    filters: IntervalFilter | None = None,
    page: Page = Page(),
) -> list[UsagePoint]:
    """The usage points the grant covers (one when ``usage_point_id`` is given), ordered by id."""
    statement = _visible_usage_points(grant).options(selectinload(UsagePoint.local_time_parameters))
    if usage_point_id is not None:
        statement = statement.where(UsagePoint.id == usage_point_id)
    if filters is not None:
        statement = statement.where(*_updated_filter(UsagePoint.updated, filters.updated_min, filters.updated_max))
    statement = statement.order_by(UsagePoint.id).offset(page.offset)
    if page.limit is not None:
        statement = statement.limit(page.limit)
    return list(session.scalars(statement))


def count_usage_points(session: Session, grant: Grant) -> int:
    """How many usage points the grant covers."""
    subquery = _visible_usage_points(grant).with_only_columns(UsagePoint.id).subquery()
    return int(session.scalar(select(func.count()).select_from(subquery)) or 0)


def _meter_reading_filter(grant: Grant) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if grant.interval_durations:
        # IntervalDuration in the scope: only readings of those interval lengths (ESPI-NOTES §5).
        clauses.append(
            or_(ReadingType.interval_length.is_(None), ReadingType.interval_length.in_(grant.interval_durations))
        )
    return clauses


def meter_readings(
    session: Session,
    grant: Grant,
    usage_point_ids: Sequence[int],
    *,
    meter_reading_id: int | None = None,
    page: Page = Page(),
) -> list[MeterReading]:
    """The grant's MeterReadings of ``usage_point_ids`` (FB 4 required), ordered by usage point then id."""
    if not grant.has(FB_INTERVAL_METERING) or not usage_point_ids:
        return []
    statement = (
        select(MeterReading)
        .join(ReadingType, ReadingType.id == MeterReading.reading_type_id)
        .where(MeterReading.usage_point_id.in_(list(usage_point_ids)), *_meter_reading_filter(grant))
        .options(selectinload(MeterReading.reading_type))
        .order_by(MeterReading.usage_point_id, MeterReading.id)
    )
    if meter_reading_id is not None:
        statement = statement.where(MeterReading.id == meter_reading_id)
    statement = statement.offset(page.offset)
    if page.limit is not None:
        statement = statement.limit(page.limit)
    return list(session.scalars(statement))


def _block_conditions(grant: Grant, filters: IntervalFilter) -> list[ColumnElement[bool]]:
    end = IntervalBlock.start + IntervalBlock.duration
    clauses: list[ColumnElement[bool]] = []
    # Data window: blocks that meet it at all (boundary blocks are clipped later, reading by reading).
    if grant.window.start is not None:
        clauses.append(end > grant.window.start)
    if grant.window.end is not None:
        clauses.append(IntervalBlock.start < grant.window.end)
    if filters.published_min is not None:
        clauses.append(end > filters.published_min)
    if filters.published_max is not None:
        clauses.append(IntervalBlock.start < filters.published_max)
    clauses.extend(_updated_filter(IntervalBlock.updated, filters.updated_min, filters.updated_max))
    return clauses


def _block_statement(grant: Grant, meter_reading_ids: Sequence[int] | None, filters: IntervalFilter) -> Select[Any]:
    """IntervalBlocks of ``meter_reading_ids`` (``None``: of every MeterReading, for the custodian's root)."""
    statement = (
        select(
            IntervalBlock.id,
            IntervalBlock.uuid,
            IntervalBlock.description,
            IntervalBlock.published,
            IntervalBlock.updated,
            IntervalBlock.meter_reading_id,
            MeterReading.usage_point_id,
            IntervalBlock.start,
            IntervalBlock.duration,
        )
        .join(MeterReading, MeterReading.id == IntervalBlock.meter_reading_id)
        .where(*_block_conditions(grant, filters))
    )
    if meter_reading_ids is not None:
        statement = statement.where(IntervalBlock.meter_reading_id.in_(list(meter_reading_ids)))
    return cast("Select[Any]", statement)


def block_count(
    session: Session, grant: Grant, meter_reading_ids: Sequence[int], filters: IntervalFilter = IntervalFilter()
) -> int:
    """How many IntervalBlocks of ``meter_reading_ids`` the grant and filters select (for paging links)."""
    if not meter_reading_ids:
        return 0
    subquery = _block_statement(grant, meter_reading_ids, filters).subquery()
    return int(session.scalar(select(func.count()).select_from(subquery)) or 0)


def blocks(
    session: Session,
    grant: Grant,
    meter_reading_ids: Sequence[int],
    *,
    filters: IntervalFilter = IntervalFilter(),
    interval_block_id: int | None = None,
    page: Page = Page(),
) -> list[BlockView]:
    """The IntervalBlocks of ``meter_reading_ids`` in the grant's window and the filters, in feed order.

    Feed order is usage point, MeterReading, then interval start. A block the data window cuts is clipped to the
    readings inside the window (its interval then starts at its first visible reading, ESPI-NOTES §7).
    """
    if not meter_reading_ids:
        return []
    statement = _block_statement(grant, meter_reading_ids, filters)
    if interval_block_id is not None:
        statement = statement.where(IntervalBlock.id == interval_block_id)
    statement = statement.order_by(MeterReading.usage_point_id, MeterReading.id, IntervalBlock.start, IntervalBlock.id)
    statement = statement.offset(page.offset)
    if page.limit is not None:
        statement = statement.limit(page.limit)
    views: list[BlockView] = []
    for row in session.execute(statement):
        view = BlockView(*row)
        if not grant.window.contains(view.start, view.duration):
            clipped = _clip(session, grant.window, view)
            if clipped is None:
                continue
            view = clipped
        views.append(view)
    return views


def _window_clauses(window: DataWindow) -> list[ColumnElement[bool]]:
    reading = interval_reading_table.c
    clauses: list[ColumnElement[bool]] = []
    if window.start is not None:
        clauses.append(reading.start >= window.start)
    if window.end is not None:
        clauses.append(reading.start + reading.duration <= window.end)
    return clauses


def _clip(session: Session, window: DataWindow, view: BlockView) -> BlockView | None:
    reading = interval_reading_table.c
    first, last = session.execute(
        select(func.min(reading.start), func.max(reading.start + reading.duration)).where(
            reading.interval_block_id == view.id, *_window_clauses(window)
        )
    ).one()
    if first is None:
        return None
    return dataclasses.replace(view, start=int(first), duration=int(last) - int(first), clipped=True)


def _readings_statement(costs: bool, clipped: bool) -> Select[Any]:
    reading = interval_reading_table.c
    cost: Any = reading.cost if costs else null().label("cost")
    statement = select(
        reading.start,
        reading.duration,
        reading.value,
        cost,
        reading.quality,
        reading.consumption_tier,
        reading.tou,
        reading.cpp,
    ).where(reading.interval_block_id == bindparam("block_id"))
    if clipped:
        statement = statement.where(
            reading.start >= bindparam("window_start"),
            reading.start + reading.duration <= bindparam("window_end"),
        )
    return statement.order_by(reading.start).execution_options(yield_per=READINGS_YIELD_PER)


# Built once per shape: a year of daily blocks is 365 of these queries, and building each would cost more than it.
_READINGS = {
    (costs, clipped): _readings_statement(costs, clipped) for costs in (True, False) for clipped in (True, False)
}
_FAR_FUTURE = 2**62


class _Readings:
    """A block's IntervalReadings, queried only when iterated (while the feed is written, after every check).

    Iterates SQLAlchemy's row partitions with C-level chaining: no Python frame per reading.
    """

    __slots__ = ("_block_id", "_clipped", "_grant", "_session")

    def __init__(self, session: Session, grant: Grant, block: BlockView) -> None:
        self._session = session
        self._grant = grant
        self._block_id = block.id
        self._clipped = block.clipped

    def __iter__(self) -> Iterator[Any]:
        params: dict[str, Any] = {"block_id": self._block_id}
        if self._clipped:
            window = self._grant.window
            params["window_start"] = window.start if window.start is not None else -_FAR_FUTURE
            params["window_end"] = window.end if window.end is not None else _FAR_FUTURE
        statement = _READINGS[(self._grant.costs, self._clipped)]
        result = self._session.connection().execute(statement, params)
        return itertools.chain.from_iterable(result.partitions())


def readings(session: Session, grant: Grant, block: BlockView) -> Iterable[Any]:
    """A block's IntervalReadings as writer rows ``(start, duration, value, cost, quality, tier, tou, cpp)``: cost
    blanked without FB 12, clipped to the window; streamed with ``yield_per`` when iterated, never before."""
    return _Readings(session, grant, block)


def _overlaps(start: Any, duration: Any, window: DataWindow) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if window.start is not None:
        clauses.append(or_(start.is_(None), start + func.coalesce(duration, 0) > window.start))
    if window.end is not None:
        clauses.append(or_(start.is_(None), start < window.end))
    return clauses


def usage_summaries(
    session: Session,
    grant: Grant,
    usage_point_ids: Sequence[int],
    *,
    usage_summary_id: int | None = None,
    filters: IntervalFilter = IntervalFilter(),
    page: Page = Page(),
) -> list[UsageSummary]:
    """UsageSummaries (FB 15) whose billing period meets the window, ordered by usage point then id."""
    if not grant.has(FB_USAGE_SUMMARY) or not usage_point_ids:
        return []
    statement = (
        select(UsageSummary)
        .where(
            UsageSummary.usage_point_id.in_(list(usage_point_ids)),
            *_overlaps(UsageSummary.billing_period_start, UsageSummary.billing_period_duration, grant.window),
            *_published_filter(UsageSummary.published, filters),
            *_updated_filter(UsageSummary.updated, filters.updated_min, filters.updated_max),
        )
        .options(selectinload(UsageSummary.line_items))
        .order_by(UsageSummary.usage_point_id, UsageSummary.id)
    )
    if usage_summary_id is not None:
        statement = statement.where(UsageSummary.id == usage_summary_id)
    statement = statement.offset(page.offset)
    if page.limit is not None:
        statement = statement.limit(page.limit)
    return list(session.scalars(statement))


def _published_filter(column: Any, filters: IntervalFilter) -> list[Any]:
    clauses = []
    if filters.published_min is not None:
        clauses.append(column >= dt.datetime.fromtimestamp(filters.published_min, dt.UTC))
    if filters.published_max is not None:
        clauses.append(column < dt.datetime.fromtimestamp(filters.published_max, dt.UTC))
    return clauses


def power_quality_summaries(
    session: Session,
    grant: Grant,
    usage_point_ids: Sequence[int],
    *,
    summary_id: int | None = None,
    filters: IntervalFilter = IntervalFilter(),
    page: Page = Page(),
) -> list[ElectricPowerQualitySummary]:
    """ElectricPowerQualitySummaries (FB 17) whose summary interval meets the window."""
    if not grant.has(FB_POWER_QUALITY) or not usage_point_ids:
        return []
    q = ElectricPowerQualitySummary
    statement = (
        select(q)
        .where(
            q.usage_point_id.in_(list(usage_point_ids)),
            *_overlaps(q.summary_interval_start, q.summary_interval_duration, grant.window),
            *_published_filter(q.published, filters),
            *_updated_filter(q.updated, filters.updated_min, filters.updated_max),
        )
        .order_by(q.usage_point_id, q.id)
    )
    if summary_id is not None:
        statement = statement.where(q.id == summary_id)
    statement = statement.offset(page.offset)
    if page.limit is not None:
        statement = statement.limit(page.limit)
    return list(session.scalars(statement))


def reading_type(session: Session, grant: Grant | None, reading_type_id: int) -> ReadingType | None:
    """A ReadingType, if one of the grant's visible MeterReadings measures it (``grant`` None: any)."""
    if grant is None:
        return session.get(ReadingType, reading_type_id)
    if not grant.has(FB_INTERVAL_METERING):
        return None
    visible = (
        _visible_usage_points(grant)
        .with_only_columns(literal(1))
        .join(MeterReading, MeterReading.usage_point_id == UsagePoint.id)
        .where(MeterReading.reading_type_id == ReadingType.id)
        .exists()
    )
    return session.scalar(
        select(ReadingType).where(ReadingType.id == reading_type_id, visible, *_meter_reading_filter(grant))
    )


def local_time_parameters(
    session: Session, grant: Grant | None, local_time_parameters_id: int
) -> LocalTimeParameters | None:
    """A LocalTimeParameters, if one of the grant's usage points refers to it (``grant`` None: any)."""
    if grant is None:
        return session.get(LocalTimeParameters, local_time_parameters_id)
    visible = (
        _visible_usage_points(grant)
        .with_only_columns(literal(1))
        .where(UsagePoint.local_time_parameters_id == LocalTimeParameters.id)
        .exists()
    )
    return session.scalar(
        select(LocalTimeParameters).where(LocalTimeParameters.id == local_time_parameters_id, visible)
    )


# ----------------------------------------------------------------------------------------------------------------
# Root collections: the custodian's view of every resource (ESPI-NOTES §2; GBA FB 33 "Management REST interfaces")
# ----------------------------------------------------------------------------------------------------------------

CUSTODIAN_GRANT = Grant(subscription_id=None, customer_id=0, window=DataWindow(), function_blocks=ALL_FUNCTION_BLOCKS)
"""What the custodian's root collections read: every function block (costs included), no data window, every
commodity. Its ``customer_id`` is never used: root queries are not restricted to a customer."""

_Row = TypeVar("_Row")
_Model = TypeVar("_Model", bound=EspiResourceMixin)


@dataclasses.dataclass(frozen=True, slots=True)
class RootPage(Generic[_Row]):
    """One page of a root collection and whether another follows (the ``next`` link, RFC 5005 §3).

    Root collections can hold millions of rows: a page is read in id order through the primary-key index with one
    row more than asked (to know whether a next page exists), and the collection is never counted.
    """

    rows: list[_Row]
    has_more: bool

    def total(self, offset: int) -> int:
        """A lower bound of the collection's size that is enough for the paging links: one past this page if more
        follow."""
        return offset + len(self.rows) + (1 if self.has_more else 0)


def _loader_options(model: type[Any]) -> list[Any]:
    if model is UsageSummary:
        return [selectinload(UsageSummary.line_items)]
    if model is Authorization:
        return [selectinload(Authorization.subscription)]
    return []


def _root_page(session: Session, statement: Select[Any], page: Page, *, scalars: bool) -> RootPage[Any]:
    limit = page.limit if page.limit is not None else 1000
    statement = statement.offset(page.offset).limit(limit + 1)
    found: list[Any] = list(session.scalars(statement) if scalars else session.execute(statement))
    return RootPage(rows=found[:limit], has_more=len(found) > limit)


def root_collection(
    session: Session,
    model: type[_Model],
    *,
    filters: IntervalFilter = IntervalFilter(),
    page: Page = Page(),
    where: Sequence[ColumnElement[bool]] = (),
) -> RootPage[_Model]:
    """One page of every ``model`` row (that meets ``where``) in id order, filtered by Atom ``published`` and
    ``updated`` (FB 37, ESPI-NOTES §8: entries other than IntervalBlocks are selected by their Atom dates). ``model``
    is the ESPI resource a root collection lists (IntervalBlocks have their own query, :func:`root_blocks`)."""
    statement = (
        select(model)
        .where(
            *where,
            *_published_filter(model.published, filters),
            *_updated_filter(model.updated, filters.updated_min, filters.updated_max),
        )
        .options(*_loader_options(model))
        .order_by(model.id)
    )
    return _root_page(session, statement, page, scalars=True)


def root_item(
    session: Session, model: type[_Model], item_id: int, *, where: Sequence[ColumnElement[bool]] = ()
) -> _Model | None:
    """One ``model`` row by id (if it meets ``where``), whoever it belongs to."""
    statement = select(model).where(model.id == item_id, *where).options(*_loader_options(model))
    return session.scalar(statement)


def _root_block_statement(filters: IntervalFilter) -> Select[Any]:
    return _block_statement(CUSTODIAN_GRANT, None, filters).order_by(IntervalBlock.id)


def root_blocks(session: Session, *, filters: IntervalFilter = IntervalFilter(), page: Page = Page()) -> RootPage[Any]:
    """One page of every IntervalBlock in id order; ``published-*`` select by interval (ESPI-NOTES §8)."""
    found: RootPage[Any] = _root_page(session, _root_block_statement(filters), page, scalars=False)
    return RootPage(rows=[BlockView(*row) for row in found.rows], has_more=found.has_more)


def root_block(session: Session, interval_block_id: int) -> BlockView | None:
    """One IntervalBlock by id (whole: the custodian has no data window)."""
    row = session.execute(_root_block_statement(IntervalFilter()).where(IntervalBlock.id == interval_block_id)).first()
    return None if row is None else BlockView(*row)


def usage_point_owner(session: Session, usage_point_id: int) -> int | None:
    """The customer who owns usage point ``usage_point_id`` (``None`` when there is no such usage point)."""
    return session.scalar(select(UsagePoint.customer_id).where(UsagePoint.id == usage_point_id))
