"""``Batch/Bulk/{bulkId}`` (ESPI REQ.21 FB 35 REST bulk; ESPI-NOTES §2, §9): every subscription of the calling app
whose scope carries ``BR={bulkId}``, as one feed.

Client access tokens only (customer, registration: 403; none: 401). A bulk id that is neither in the app's registered
scopes nor in any of its active authorizations is 404. Only active, unexpired consents are included, each with its
own grant applied exactly as on ``Batch/Subscription/{s}`` (its usage points, data window, function blocks), with
``Subscription/{s}`` links so the app can tell the customers apart.

Paging (FB 37): ``max-results``/``start-index`` count *subscriptions* here (RFC 5005 ``next``/``previous``); the
other parameters apply inside each subscription as in a batch.

Two paths, one feed (:func:`bulk_feed`, written by the same code on both):

- **Small bulks stream at once.** The list of subscriptions and their grants is loaded before the first byte (every
  access decision); each subscription's usage tree is loaded when the writer reaches it, so memory is bounded by the
  largest single subscription. A database failure in the middle truncates the response (the client retries).
- **Very large bulks are built in the background** (ESPI-NOTES §9: production custodians answer 202 and notify
  later). When one cheap aggregate query estimates more IntervalReadings than ``GATEWAY_BULK_ASYNC_READINGS``, or the
  client sends ``Prefer: respond-async`` (RFC 7240 §4.1), the answer is **202 Accepted** with ``Location``: the
  *canonical request URL* (FB 37 parameters normalised and sorted, anything else dropped) and ``Retry-After``. The job
  is a :class:`gateway.storage.bulk.BulkRequest`, unique per app, bulk id and parameters, so repeating the request (on
  any node) answers 202 for the same job, never a second job and never a refusal. The worker
  (:mod:`gateway.outbox.bulk_builder`) builds it, stores it in the database and POSTs a BatchList with that URL to
  the app's notify URI. The same URL then answers 200 with the stored feed (gzip as stored, or inflated on the fly),
  ``ETag``, ``Last-Modified`` (the build time) and ``Expires`` (end of retention, ``GATEWAY_BULK_RETENTION``). After
  retention, or once a consent in it was revoked or expired, the next request starts a new build (202), never a 404.
  A build that keeps failing ends, after bounded retries, in one clear error answer; the request after it starts over.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import zlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode
from xml.sax.saxutils import escape

import falcon
from sqlalchemy import Row, Select, func, or_, select
from sqlalchemy.orm import Session

from gateway.errors import BulkBuildFailed, NotFound
from gateway.espi.links import ResourceLinks
from gateway.espi.writer import Entry, Link, feed, feed_link
from gateway.resources.batch import usage_tree
from gateway.resources.espi_base import EspiApi
from gateway.storage import queries
from gateway.storage.application import ApplicationInformation
from gateway.storage.authorization import (
    Authorization,
    AuthorizationKind,
    AuthorizationStatus,
    Subscription,
    subscription_usage_point,
)
from gateway.storage.base import utcnow
from gateway.storage.bulk import (
    BulkRequest,
    BulkState,
    chunk_data,
    create_bulk_request,
    discard_bulk_request,
    find_bulk_request,
    lost_access,
    mark_failure_reported,
)
from gateway.storage.ids import stable_uuid
from gateway.storage.usage import IntervalBlock, MeterReading, ReadingType
from gateway.web.http_cache import CACHE_CONTROL, Validators, accepts_gzip, is_not_modified, send
from gateway.web.params import DEFAULT_MAX_RESULTS, MAX_DEPTH, FeedQuery, format_time

__all__ = [
    "BULK_ID",
    "BulkContents",
    "BulkResource",
    "BulkSelection",
    "bulk_contents",
    "bulk_feed",
    "canonical_query",
    "canonical_url",
    "estimate_readings",
    "select_bulk",
]

BULK_ID = re.compile(r"\A[A-Za-z0-9._-]{1,64}\Z")
"""What a ``BR`` value may be: anything else cannot be a bulk of ours (404)."""

RETRY_AFTER = 10
"""Seconds a 202 asks the client to wait before asking again (RFC 9110 §10.2.3)."""

DEFAULT_READING_SECONDS = 900
"""Interval length assumed for the estimate when a ReadingType has none (15 minutes, the usual AMI interval)."""

INFLATE_PIECE = 256 * 1024
"""Bytes of XML inflated at a time when a client does not accept gzip (memory stays flat)."""

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


# -- the canonical request --------------------------------------------------------------------------------------


def canonical_query(query: FeedQuery) -> str:
    """The FB 37 parameters in one canonical form: names sorted, values normalised, defaults and unknown names left out.

    Two requests meaning the same bulk page have the same form, which is the job's key and its ``Location``.
    """
    values: list[tuple[str, str]] = []
    if query.depth is not None and query.depth < MAX_DEPTH:
        values.append(("depth", str(query.depth)))
    if query.max_results != DEFAULT_MAX_RESULTS:
        values.append(("max-results", str(query.max_results)))
    for name, moment in (
        ("published-max", query.published_max),
        ("published-min", query.published_min),
        ("updated-max", query.updated_max),
        ("updated-min", query.updated_min),
    ):
        if moment is not None:
            values.append((name, format_time(moment)))
    if query.start_index != 1:
        values.append(("start-index", str(query.start_index)))
    return urlencode(sorted(values))


def canonical_url(links: ResourceLinks, bulk_id: str, canonical: str) -> str:
    """``…/Batch/Bulk/{bulkId}`` and the canonical query: the 202's ``Location``, the bulk-ready notification's URL."""
    url = links.batch_bulk(bulk_id)
    return f"{url}?{canonical}" if canonical else url


# -- what a bulk holds: every access decision, and its feed (no HTTP here) ----------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class BulkSelection:
    """One page of a bulk: the subscriptions it selects, as a statement not yet run."""

    application_id: int
    bulk_id: str
    query: FeedQuery
    total: int
    """Subscriptions of the whole bulk (for paging links)."""
    page: Select[int, int, dt.datetime]
    """``(id, customer_id, updated)`` of this page's subscriptions, in feed order."""


def select_bulk(
    session: Session, *, application_id: int, bulk_id: str, query: FeedQuery, now: dt.datetime
) -> BulkSelection:
    """The active, unexpired subscriptions of the app whose scope carries ``BR={bulk_id}``.

    Raises:
        NotFound: the id is malformed, or neither registered by the app nor in any of its authorizations.
    """
    if not BULK_ID.match(bulk_id):
        raise NotFound(f"no bulk {bulk_id[:64]!r} for this application")
    suffix = f";BR={bulk_id}"
    base = (
        select(Subscription.id.label("id"), Subscription.customer_id, Authorization.updated)
        .join(Authorization, Authorization.id == Subscription.authorization_id)
        .where(
            Authorization.application_id == application_id,
            Authorization.kind == AuthorizationKind.CUSTOMER,
            Authorization.status == AuthorizationStatus.ACTIVE,
            Authorization.expires_at > int(now.timestamp()),
            Authorization.scope.endswith(suffix, autoescape=True),
        )
    )
    total = int(session.scalar(select(func.count()).select_from(base.subquery())) or 0)
    if total == 0:
        registered = (
            session.scalar(select(ApplicationInformation.scopes).where(ApplicationInformation.id == application_id))
            or []
        )
        if not any(scope.endswith(suffix) for scope in registered):
            raise NotFound(f"no bulk {bulk_id!r} for this application")
    page = base.order_by(Subscription.id).offset(query.offset).limit(query.max_results)
    return BulkSelection(application_id, bulk_id, query, total, page)


def estimate_readings(session: Session, selection: BulkSelection) -> int:
    """About how many IntervalReadings the page holds, in one aggregate over IntervalBlocks (no reading is read).

    Each block counts ``duration / interval_length`` of its ReadingType; blocks are restricted to the page's usage
    points, each Authorization's data window and the FB 37 time filters. Function blocks and clipping are ignored:
    an upper bound is what the decision needs.
    """
    query = selection.query
    if query.depth is not None and query.depth < 3:
        return 0  # no IntervalBlocks below depth 3
    page_ids = select(selection.page.subquery().c.id)
    block_end = IntervalBlock.start + IntervalBlock.duration
    window_start = Authorization.published_period_start
    window_end = Authorization.published_period_start + Authorization.published_period_duration
    per_block = IntervalBlock.duration / func.coalesce(
        func.nullif(ReadingType.interval_length, 0), DEFAULT_READING_SECONDS
    )
    clauses: list[Any] = [
        Subscription.id.in_(page_ids),
        or_(window_start.is_(None), window_start == 0, block_end > window_start),
        or_(
            window_start.is_(None), Authorization.published_period_duration.is_(None), IntervalBlock.start < window_end
        ),
    ]
    if query.published_min is not None:
        clauses.append(block_end > query.published_min)
    if query.published_max is not None:
        clauses.append(IntervalBlock.start < query.published_max)
    if query.updated_min is not None:
        clauses.append(IntervalBlock.updated >= dt.datetime.fromtimestamp(query.updated_min, dt.UTC))
    if query.updated_max is not None:
        clauses.append(IntervalBlock.updated <= dt.datetime.fromtimestamp(query.updated_max, dt.UTC))
    statement = (
        select(func.coalesce(func.sum(per_block), 0))
        .select_from(Subscription)
        .join(Authorization, Authorization.id == Subscription.authorization_id)
        .join(subscription_usage_point, subscription_usage_point.c.subscription_id == Subscription.id)
        .join(MeterReading, MeterReading.usage_point_id == subscription_usage_point.c.usage_point_id)
        .join(ReadingType, ReadingType.id == MeterReading.reading_type_id)
        .join(IntervalBlock, IntervalBlock.meter_reading_id == MeterReading.id)
        .where(*clauses)
    )
    return round(float(session.scalar(statement) or 0))


@dataclasses.dataclass(frozen=True, slots=True)
class BulkContents:
    """A page of a bulk with each subscription's grant loaded: what the feed is written from."""

    selection: BulkSelection
    rows: tuple[Row[int, int, dt.datetime], ...]
    grants: tuple[queries.Grant, ...]

    @property
    def subscription_ids(self) -> list[int]:
        return [grant.subscription_id for grant in self.grants if grant.subscription_id is not None]


def bulk_contents(session: Session, selection: BulkSelection) -> BulkContents:
    """Load the page's subscriptions and each one's grant (usage points, window, function blocks): not a generator."""
    rows = tuple(session.execute(selection.page).all())
    grants = []
    for subscription_id, customer_id, _updated in rows:
        grant = queries.customer_grant(session, subscription_id=subscription_id, customer_id=customer_id)
        if grant is not None:
            grants.append(grant)
    return BulkContents(selection, rows, tuple(grants))


def data_version(session: Session, subscription_ids: list[int]) -> list[object]:
    """What of the bulk's data changes the response: the count and latest ``updated`` of its blocks (for ETags)."""
    if not subscription_ids:
        return []
    row = session.execute(
        select(func.count(IntervalBlock.id), func.max(IntervalBlock.updated))
        .join(MeterReading, MeterReading.id == IntervalBlock.meter_reading_id)
        .join(subscription_usage_point, subscription_usage_point.c.usage_point_id == MeterReading.usage_point_id)
        .where(subscription_usage_point.c.subscription_id.in_(subscription_ids))
    ).one()
    return [tuple(row)]


def _paging_links(base: str, query: FeedQuery, total: int) -> list[Link]:
    """RFC 5005 §3 ``next``/``previous`` over subscriptions (as :meth:`EspiApi.paging_links`, without a request)."""
    links: list[Link] = []
    if query.start_index > 1:
        previous = max(1, query.start_index - query.max_results)
        links.append(feed_link("previous", f"{base}?{query.page_query(previous)}", "Subscription"))
    if query.offset + query.max_results < total:
        links.append(
            feed_link("next", f"{base}?{query.page_query(query.start_index + query.max_results)}", "Subscription")
        )
    return links


def _entries(session: Session, contents: BulkContents, links: ResourceLinks) -> Iterator[Entry]:
    query = contents.selection.query
    # Each subscription's tree is a whole batch: paging is over subscriptions, so its blocks are not paged.
    inner = FeedQuery(
        published_min=query.published_min,
        published_max=query.published_max,
        updated_min=query.updated_min,
        updated_max=query.updated_max,
        depth=query.depth,
    )
    filters = EspiApi.filters(inner)
    for grant in contents.grants:
        assert grant.subscription_id is not None  # bulk grants are subscriptions' grants
        points = queries.usage_points(session, grant)
        tree = usage_tree(session, grant, links.subscription(grant.subscription_id), points, inner, filters)
        yield from tree.entries


def bulk_feed(
    session: Session, contents: BulkContents, *, links: ResourceLinks, self_href: str, certification_url: str | None
) -> Iterator[bytes]:
    """The bulk's Atom feed as UTF-8 chunks, each subscription's tree loaded when the writer reaches it.

    The one writer of both paths: streamed to the client, or compressed into the database by the worker.
    """
    selection = contents.selection
    base = links.batch_bulk(selection.bulk_id)
    return feed(
        _entries(session, contents, links),
        feed_id=stable_uuid("Feed", base),
        title=f"Green Button bulk {selection.bulk_id}",
        updated=_EPOCH,
        self_link=feed_link("self", self_href, "Subscription"),
        certification_url=certification_url,
        links=_paging_links(base, selection.query, selection.total),
    )


# -- HTTP: streaming, 202 Accepted, serving a stored result ------------------------------------------------------


def prefers_async(req: falcon.Request) -> bool:
    """Whether the client sent ``Prefer: respond-async`` (RFC 7240 §4.1)."""
    header = req.get_header("Prefer") or ""
    return any(item.split(";", 1)[0].strip().lower() == "respond-async" for item in header.split(","))


def _stored_chunks(session: Session, job_id: int, build_id: str, count: int, first: bytes) -> Iterator[bytes]:
    yield first
    for position in range(1, count):
        data = chunk_data(session, job_id, build_id, position)
        if data is None:
            # Dropped mid-download (revoked consent, retention): cut the body; Content-Length shows it incomplete.
            raise RuntimeError(f"bulk request {job_id}: chunk {position} is gone")
        yield data


def _inflate(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Decompress the stored gzip stream (RFC 1952) piece by piece for clients that do not accept gzip."""
    inflater = zlib.decompressobj(31)
    for chunk in chunks:
        data = chunk
        while data:
            out = inflater.decompress(data, INFLATE_PIECE)
            if out:
                yield out
            data = inflater.unconsumed_tail
    tail = inflater.flush()
    if tail:
        yield tail


def _prefers_xml(req: falcon.Request) -> bool:
    """As the error bodies (:mod:`gateway.errors`): XML for clients asking for XML and not JSON."""
    accept = req.accept or ""
    return "xml" in accept and "json" not in accept


class BulkResource:
    """``Batch/Bulk/{bulk_id}``."""

    def __init__(self, api: EspiApi) -> None:
        self.api = api

    def on_get(self, req: falcon.Request, resp: falcon.Response, bulk_id: str) -> None:
        principal = self.api.authenticate(req, "client")
        query = self.api.query(req)
        if not BULK_ID.match(bulk_id):
            raise NotFound(f"no bulk {bulk_id[:64]!r} for this application")
        settings = self.api.settings
        now = utcnow()
        reads = self.api.db(req)
        selection = select_bulk(reads, application_id=principal.application_id, bulk_id=bulk_id, query=query, now=now)
        key = canonical_query(query)
        job = find_bulk_request(reads, application_id=principal.application_id, bulk_id=bulk_id, query=key)
        if job is not None and self._spent(reads, job, now):
            discard_bulk_request(req.context.db, job)
            job = None
        asked = prefers_async(req)
        if job is None:
            estimate = estimate_readings(reads, selection)
            if not asked and estimate <= settings.bulk_async_readings:
                self._stream(req, resp, reads, selection)
                return
            job = self._create(req, selection, key, estimate, now)
        if job.state == BulkState.READY:
            if self._send_stored(req, resp, reads, job):
                return
            # The stored result vanished between the lookup and now (dropped by a worker): build it again.
            discard_bulk_request(req.context.db, job)
            job = self._create(req, selection, key, job.estimated_readings, now)
        if job.state == BulkState.FAILED:
            self._report_failure(req, job, now)
        if asked:
            resp.set_header("Preference-Applied", "respond-async")
        self._accepted(req, resp, job, canonical_url(self.api.links, bulk_id, key), now)

    @staticmethod
    def _create(
        req: falcon.Request, selection: BulkSelection, key: str, estimate: int, now: dt.datetime
    ) -> BulkRequest:
        job, _created = create_bulk_request(
            req.context.db,
            application_id=selection.application_id,
            bulk_id=selection.bulk_id,
            query=key,
            estimated_readings=estimate,
            now=now,
        )
        return job

    @staticmethod
    def _spent(session: Session, job: BulkRequest, now: dt.datetime) -> bool:
        """Whether a job is over and the request must start a new one: its result expired or lost access (a consent
        was revoked or expired since the build: it must not leak), or its failure was already reported."""
        if job.state == BulkState.READY:
            return job.expires_at is None or job.expires_at <= now or lost_access(session, job, now)
        return job.state == BulkState.FAILED and job.failure_reported_at is not None

    def _stream(self, req: falcon.Request, resp: falcon.Response, session: Session, selection: BulkSelection) -> None:
        contents = bulk_contents(session, selection)
        self_href = self.api.absolute(req)
        parts: list[object] = [selection.application_id, selection.bulk_id, selection.query.cache_key(), *contents.rows]
        parts.extend(data_version(session, contents.subscription_ids))
        body = bulk_feed(
            session,
            contents,
            links=self.api.links,
            self_href=self_href,
            certification_url=self.api.settings.certification_url,
        )
        send(req, resp, body, Validators([self_href, *parts, None], None))

    def _send_stored(self, req: falcon.Request, resp: falcon.Response, session: Session, job: BulkRequest) -> bool:
        """200 with the stored feed (or 304); ``False`` when the result vanished meanwhile (then: a new build)."""
        if job.build_id is None or job.ready_at is None or job.expires_at is None:
            return False
        validators = Validators(["bulk", job.id, job.build_id, job.digest], job.ready_at)
        resp.set_header("ETag", validators.etag)
        resp.set_header("Last-Modified", falcon.dt_to_http(job.ready_at))
        resp.set_header("Expires", falcon.dt_to_http(job.expires_at))
        resp.set_header("Cache-Control", CACHE_CONTROL)
        resp.append_header("Vary", "Authorization, Accept-Encoding")
        if is_not_modified(req, validators):
            resp.status = falcon.HTTP_304
            return True
        first = chunk_data(session, job.id, job.build_id, 0)
        if first is None:
            for name in ("ETag", "Last-Modified", "Expires", "Cache-Control", "Vary"):
                resp.delete_header(name)
            return False
        chunks = _stored_chunks(session, job.id, job.build_id, job.chunks or 1, first)
        resp.content_type = "application/atom+xml"
        if accepts_gzip(req.get_header("Accept-Encoding")):
            resp.set_header("Content-Encoding", "gzip")
            resp.content_length = job.stored_bytes
            resp.stream = chunks
        else:
            resp.content_length = job.feed_bytes
            resp.stream = _inflate(chunks)
        return True

    def _report_failure(self, req: falcon.Request, job: BulkRequest, now: dt.datetime) -> None:
        """Answer the failure once, naming it; the next request starts over (ESPI-NOTES §9: no 202 forever)."""
        session: Session = req.context.db
        mark_failure_reported(session, job.id, now)
        # Raising makes the session middleware roll back: commit the mark first, or the next request would be told
        # the same failure again instead of starting a new build.
        session.commit()
        kind = (job.last_error or "unknown error").split(":", 1)[0][:100]
        raise BulkBuildFailed(
            f"building bulk {job.bulk_id} failed {job.attempts} times (last: {kind}); "
            "the next request starts a new build"
        )

    def _accepted(
        self, req: falcon.Request, resp: falcon.Response, job: BulkRequest, location: str, now: dt.datetime
    ) -> None:
        """202 Accepted (RFC 9110 §15.3.3) for a job not ready yet: where to ask again, when, and its state."""
        retry_after = RETRY_AFTER
        if job.state == BulkState.PENDING and job.attempts > 0:
            retry_after = max(RETRY_AFTER, int((job.next_attempt_at - now).total_seconds()))
        document: dict[str, Any] = {
            "bulkId": job.bulk_id,
            "state": job.state if job.state in (BulkState.PENDING, BulkState.BUILDING) else BulkState.PENDING,
            "location": location,
            "requestedAt": format_time(int(job.requested_at.timestamp())),
            "attempts": job.attempts,
            "retryAfter": retry_after,
            "retentionSeconds": self.api.settings.bulk_retention,
        }
        resp.status = falcon.HTTP_202
        resp.set_header("Location", location)
        resp.set_header("Retry-After", str(retry_after))
        resp.set_header("Cache-Control", "no-store")
        if _prefers_xml(req):
            resp.content_type = "application/xml; charset=utf-8"
            fields = "".join(f"<{name}>{escape(str(value))}</{name}>" for name, value in document.items())
            resp.data = f'<?xml version="1.0" encoding="UTF-8"?>\n<bulkRequest>{fields}</bulkRequest>\n'.encode()
        else:
            resp.content_type = "application/json"
            resp.data = json.dumps(document).encode()
