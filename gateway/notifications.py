"""Push notifications to third parties (ESPI REQ.21 FB 39; ESPI-NOTES §9): which apps to tell, and what.

When data is uploaded or imported for a customer, the custodian POSTs an ESPI ``BatchList`` to the
``thirdPartyNotifyUri`` of every app holding an active consent that covers an affected usage point: one URL per
subscription, ``Batch/Subscription/{s}?published-min=…&published-max=…`` for the new data's window, so the app fetches
just what changed. Every way data comes in goes through :func:`import_and_notify`: the upload
(``POST Batch/RetailCustomer/{c}/UsagePoint``), ``gateway import`` and the demo loader. Authorization changes are
announced by :mod:`gateway.consent.lifecycle`; a ready bulk by :func:`notify_bulk_ready`.

Durability is the outbox's (transactional outbox): :func:`notify_new_data` only adds ``espi_batch_list`` rows to the
caller's session, in the same transaction as the data, so the notification exists if and only if the data committed.
``gateway worker`` delivers them with retries and exponential backoff (:mod:`gateway.outbox.delivery`); failures stay
in the table, visible with ``gateway notifications list --failed``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.config import Settings
from gateway.espi.ingest import ImportReport, import_feed
from gateway.espi.links import ResourceLinks
from gateway.espi.safe_xml import DEFAULT_LIMITS, XmlLimits, XmlSource
from gateway.espi.writer import batch_list_document
from gateway.outbox.delivery import is_development, post_to_app, register_deliverer
from gateway.outbox.queue import enqueue
from gateway.storage.application import ApplicationInformation, ApplicationStatus
from gateway.storage.authorization import Authorization, AuthorizationStatus, Subscription, subscription_usage_point
from gateway.storage.base import utcnow
from gateway.storage.customer import RetailCustomer
from gateway.storage.outbox import OutboxMessage
from gateway.storage.queries import consent_grant
from gateway.storage.usage import IntervalBlock, MeterReading, UsagePoint, interval_reading_table

__all__ = [
    "BATCH_LIST",
    "ChangedData",
    "changed_data",
    "fingerprint",
    "import_and_notify",
    "notify_bulk_ready",
    "notify_new_data",
    "post_batch_list",
]

BATCH_LIST = "espi_batch_list"
"""Outbox kind of a BatchList push (payload: ``uri``, ``resources``, ``application_id``, ``reason``)."""

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@dataclasses.dataclass(frozen=True, slots=True)
class ChangedData:
    """What an import changed for one customer: the usage points touched and the interval window of new data."""

    customer_id: int
    usage_point_ids: frozenset[int]
    start: int | None = None
    end: int | None = None


Fingerprint = dict[Any, tuple[int, int, int, int, int, int]]
"""Per IntervalBlock uuid: (usage point id, start, duration, readings, sum of values, sum of costs)."""


def fingerprint(session: Session, customer_id: int) -> Fingerprint:
    """A summary of every IntervalBlock of the customer, to compare before and after an import.

    One aggregate query (a meter-year is 35,040 readings: milliseconds). Compared by content rather than by the rows'
    ``updated``, which an import sets from the file's Atom ``updated``, not from when the row changed.
    """
    reading = interval_reading_table.c
    rows = session.execute(
        select(
            IntervalBlock.uuid,
            MeterReading.usage_point_id,
            IntervalBlock.start,
            IntervalBlock.duration,
            func.count(reading.start),
            func.coalesce(func.sum(reading.value), 0),
            func.coalesce(func.sum(reading.cost), 0),
        )
        .join(MeterReading, MeterReading.id == IntervalBlock.meter_reading_id)
        .join(UsagePoint, UsagePoint.id == MeterReading.usage_point_id)
        .outerjoin(interval_reading_table, reading.interval_block_id == IntervalBlock.id)
        .where(UsagePoint.customer_id == customer_id)
        .group_by(
            IntervalBlock.id,
            IntervalBlock.uuid,
            MeterReading.usage_point_id,
            IntervalBlock.start,
            IntervalBlock.duration,
        )
    ).all()
    return {row[0]: (int(row[1]), int(row[2]), int(row[3]), int(row[4]), int(row[5]), int(row[6])) for row in rows}


def changed_data(customer_id: int, before: Fingerprint, after: Fingerprint) -> ChangedData:
    """The usage points and interval window of blocks that are new or different in ``after``.

    An idempotent re-import changes nothing and so notifies nobody.
    """
    points: set[int] = set()
    start: int | None = None
    end: int | None = None
    for key, value in after.items():
        if before.get(key) == value:
            continue
        usage_point_id, block_start, duration = value[0], value[1], value[2]
        points.add(usage_point_id)
        start = block_start if start is None else min(start, block_start)
        end = block_start + duration if end is None else max(end, block_start + duration)
    return ChangedData(customer_id=customer_id, usage_point_ids=frozenset(points), start=start, end=end)


def _batch_url(links: ResourceLinks, subscription_id: int, change: ChangedData) -> str:
    url = links.batch_subscription(subscription_id)
    params = []
    if change.start is not None:
        params.append(("published-min", dt.datetime.fromtimestamp(change.start, dt.UTC).strftime(_TIME_FORMAT)))
    if change.end is not None:
        params.append(("published-max", dt.datetime.fromtimestamp(change.end, dt.UTC).strftime(_TIME_FORMAT)))
    return f"{url}?{urlencode(params)}" if params else url


def notify_new_data(
    session: Session, settings: Settings, change: ChangedData, *, now: dt.datetime | None = None
) -> list[OutboxMessage]:
    """Queue one BatchList per concerned app for new data (in the caller's transaction); return the rows.

    Concerned: an active, unexpired Authorization whose Subscription holds an affected usage point that its grant
    shows (a commodity its scope shares, FB 5/10/11) and whose data window (``publishedPeriod`` and
    ``HistoryLength``) meets the changed interval, of an app that is not revoked and has a notify URI: an app is never
    sent to a Batch/Subscription that holds nothing new for it.
    """
    if not change.usage_point_ids:
        return []
    now = now or utcnow()
    rows = session.execute(
        select(
            Subscription.id,
            ApplicationInformation.id,
            ApplicationInformation.notify_uri,
            Authorization.scope,
            Authorization.published_period_start,
            Authorization.published_period_duration,
            UsagePoint.service_kind,
        )
        .join(Authorization, Authorization.id == Subscription.authorization_id)
        .join(ApplicationInformation, ApplicationInformation.id == Subscription.application_id)
        .join(subscription_usage_point, subscription_usage_point.c.subscription_id == Subscription.id)
        .join(UsagePoint, UsagePoint.id == subscription_usage_point.c.usage_point_id)
        .where(
            Subscription.customer_id == change.customer_id,
            subscription_usage_point.c.usage_point_id.in_(sorted(change.usage_point_ids)),
            Authorization.status == AuthorizationStatus.ACTIVE,
            Authorization.expires_at > int(now.timestamp()),
            ApplicationInformation.status != ApplicationStatus.REVOKED,
            ApplicationInformation.notify_uri.is_not(None),
        )
        .order_by(ApplicationInformation.id, Subscription.id)
    ).all()
    concerned: dict[int, tuple[int, str | None]] = {}
    for subscription_id, application_id, notify_uri, scope, period_start, period_duration, service_kind in rows:
        if subscription_id in concerned:
            continue
        grant = consent_grant(subscription_id, change.customer_id, scope, period_start, period_duration)
        if grant is not None and grant.shows_kind(service_kind) and grant.window.meets(change.start, change.end):
            concerned[subscription_id] = (application_id, notify_uri)
    links = ResourceLinks(settings.resource_base_url)
    by_app: dict[tuple[int, str | None], list[str]] = defaultdict(list)
    for subscription_id, (application_id, notify_uri) in concerned.items():
        by_app[(application_id, notify_uri)].append(_batch_url(links, subscription_id, change))
    return [
        _enqueue(session, uri=uri, resources=urls, application_id=application_id, reason="data", now=now)
        for (application_id, uri), urls in by_app.items()
        if uri
    ]


def import_and_notify(
    session: Session,
    settings: Settings,
    source: XmlSource,
    *,
    customer: RetailCustomer,
    lenient: bool = False,
    progress: Callable[[int], None] | None = None,
    limits: XmlLimits = DEFAULT_LIMITS,
) -> tuple[ImportReport, int]:
    """Import a feed for ``customer`` and queue the FB 39 pushes its new data calls for; return the report and the
    number of BatchLists queued.

    The one way data comes in (upload, ``gateway import``, the demo): fingerprint the customer's IntervalBlocks,
    :func:`gateway.espi.ingest.import_feed`, flush, compare (:func:`changed_data`) and :func:`notify_new_data`, all in
    one SAVEPOINT of the caller's transaction, which it neither commits nor rolls back. A rejected file leaves neither
    data nor notifications and the transaction usable; once the caller commits, the import and its outbox rows are
    committed together (ESPI REQ.21 FB 39; transactional outbox).

    Raises:
        gateway.espi.safe_xml.XmlRejected: as :func:`gateway.espi.ingest.import_feed`.
        gateway.espi.ingest.FeedRejected: as :func:`gateway.espi.ingest.import_feed`.
    """
    with session.begin_nested():
        before = fingerprint(session, customer.id)
        report = import_feed(session, source, customer=customer, lenient=lenient, progress=progress, limits=limits)
        session.flush()
        change = changed_data(customer.id, before, fingerprint(session, customer.id))
        queued = notify_new_data(session, settings, change)
    return report, len(queued)


def notify_bulk_ready(
    session: Session,
    settings: Settings,
    *,
    application_id: int,
    bulk_id: str,
    url: str | None = None,
    now: dt.datetime | None = None,
) -> OutboxMessage | None:
    """Queue the ``Batch/Bulk/{bulkId}`` BatchList for an app once its bulk is ready (ESPI-NOTES §9).

    ``url`` is the bulk's canonical request URL when it carries FB 37 parameters (what was built is what is announced).
    Nothing is queued for an app without a notify URI or a revoked one.
    """
    application = session.get(ApplicationInformation, application_id)
    if application is None or not application.notify_uri or application.status == ApplicationStatus.REVOKED:
        return None
    url = url or ResourceLinks(settings.resource_base_url).batch_bulk(bulk_id)
    return _enqueue(
        session, uri=application.notify_uri, resources=[url], application_id=application_id, reason="bulk", now=now
    )


def _enqueue(
    session: Session,
    *,
    uri: str,
    resources: Sequence[str],
    application_id: int,
    reason: str,
    now: dt.datetime | None,
) -> OutboxMessage:
    payload: dict[str, Any] = {
        "uri": uri,
        "resources": list(resources),
        "application_id": application_id,
        "reason": reason,
    }
    return enqueue(session, BATCH_LIST, payload, now=now)


def post_batch_list(payload: dict[str, Any], *, allow_loopback: bool, timeout: float = 10.0) -> None:
    """POST the BatchList to the app; anything but a 2xx raises, and the outbox retries with backoff.

    Through :func:`gateway.outbox.delivery.post_to_app`: a total deadline (a trickling receiver cannot stall the
    worker), no redirects, and the host's addresses re-checked at delivery time (no SSRF into private networks).
    """
    status = post_to_app(
        payload["uri"], batch_list_document(payload["resources"]), timeout=timeout, allow_loopback=allow_loopback
    )
    if not 200 <= status < 300:
        raise RuntimeError(f"notify URI answered {status}")


def _deliverer(settings: Settings) -> Callable[[dict[str, Any]], None]:
    allow_loopback = is_development(settings)
    return lambda payload: post_batch_list(payload, allow_loopback=allow_loopback)


register_deliverer(BATCH_LIST, _deliverer)


def pending_kinds() -> Iterable[str]:
    """The outbox kinds that are notifications to apps (what ``gateway notifications list`` shows)."""
    return (BATCH_LIST, "notification")
