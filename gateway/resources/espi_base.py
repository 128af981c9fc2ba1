"""What every ESPI resource responder shares: authentication, the customer's grant, FB 37 parameters, sending feeds.

The order in every responder is the same, and all of it happens before ``resp.stream`` is assigned (PITFALLS: falcon):
authenticate the bearer token (401) and its kind (403), apply the client's rate limit (429), check the path's
subscription against the token's (403 for any other, existing or not: no existence oracle), parse the query (400),
load what the grant may see (404 for ids outside it), build the entries, then compute validators and send (304 or the
stream). Nothing here is a generator, so every check runs when the responder calls it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable, Sequence, Sized
from typing import Any, TypeVar

import falcon
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from gateway.config import Settings
from gateway.errors import NotFound
from gateway.espi.links import ResourceLinks, UsagePointLinks
from gateway.espi.writer import Entry, Link, entry_document, feed, feed_link
from gateway.oauth.bearer import Principal, PrincipalKind, forbidden
from gateway.oauth.hotpath import HotPath
from gateway.storage import queries
from gateway.storage.ids import stable_uuid
from gateway.storage.queries import Grant, IntervalFilter, Page
from gateway.web.auth import BearerAuth
from gateway.web.http_cache import Validators, send
from gateway.web.middleware import RequestContext
from gateway.web.params import FeedQuery, parse_query
from gateway.web.rate_limit import RateLimiter

__all__ = ["CostFreeSummary", "EspiApi", "ReadsMiddleware", "latest"]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_Row = TypeVar("_Row")


def latest(rows: Iterable[Any]) -> dt.datetime | None:
    """The latest ``updated`` of ``rows`` (the feed's Last-Modified and Atom ``updated``)."""
    value: dt.datetime | None = None
    for row in rows:
        updated = row.updated
        if updated is not None and updated.tzinfo is None:
            updated = updated.replace(tzinfo=dt.UTC)
        if updated is not None and (value is None or updated > value):
            value = updated
    return value


class CostFreeSummary:
    """A UsageSummary seen without FB 16 (summary with cost): bills, costs and cost line items removed."""

    _HIDDEN = frozenset({"bill_last_period", "bill_to_date", "cost_additional_last_period", "currency"})

    def __init__(self, summary: Any) -> None:
        self._summary = summary

    def __getattr__(self, name: str) -> Any:
        if name in CostFreeSummary._HIDDEN:
            return None
        if name == "line_items":
            return []
        return getattr(self._summary, name)


class _ReadConnection:
    """A read-only session on its own autocommit connection, closed with the response (see :class:`ReadsMiddleware`).

    The session is made on first use: the bearer check and a single entry's query need the connection only.
    """

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._session: Session | None = None

    @property
    def session(self) -> Session:
        if self._session is None:
            self._session = Session(bind=self.connection, autoflush=False, expire_on_commit=False)
        return self._session

    def close(self) -> None:
        try:
            if self._session is not None:
                self._session.close()
        finally:
            self.connection.close()


class _CloseAfter:
    """Iterate a response body, then close it and the request's read connection."""

    def __init__(self, stream: Any, reads: _ReadConnection) -> None:
        self._stream = stream
        self._iterator = iter(stream)
        self._reads = reads

    def __iter__(self) -> _CloseAfter:
        return self

    def __next__(self) -> bytes:
        return next(self._iterator)  # type: ignore[no-any-return]

    def close(self) -> None:
        try:
            close = getattr(self._stream, "close", None)
            if close is not None:
                close()
        finally:
            self._reads.close()


class ReadsMiddleware:
    """Close a request's read connection (:meth:`EspiApi.db`) when its response, streamed or not, is done.

    Added after :class:`gateway.web.middleware.DatabaseSessionMiddleware`, so its ``process_response`` runs first and
    the session middleware's stream wrapper closes this one in turn.
    """

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool) -> None:
        reads: _ReadConnection | None = getattr(req.context, "espi_reads", None)
        if reads is None:
            return
        req.context.espi_reads = None
        if resp.stream is not None and req_succeeded:
            resp.stream = _CloseAfter(resp.stream, reads)
        else:
            reads.close()


@dataclasses.dataclass(frozen=True, slots=True)
class EspiApi:
    """Collaborators of the ESPI resources (one instance shared by all of them)."""

    settings: Settings
    bearer_auth: BearerAuth
    limiter: RateLimiter
    links: ResourceLinks
    hotpath: HotPath | None = None

    @classmethod
    def build(
        cls, settings: Settings, bearer_auth: BearerAuth, limiter: RateLimiter, *, engine: Engine | None = None
    ) -> EspiApi:
        hotpath = HotPath.for_engine(engine) if engine is not None else None
        return cls(settings, bearer_auth, limiter, ResourceLinks(settings.resource_base_url), hotpath)

    def db(self, req: falcon.Request) -> Session:
        """The session for a read-only responder.

        On SQLite the request's own session opens ``BEGIN IMMEDIATE`` (the write lock) on first use; a feed that
        streams for half a second would hold it and queue every other request behind it. Reads therefore go through
        an autocommit connection of :class:`gateway.oauth.hotpath.HotPath` (WAL readers never wait), closed with the
        response. Elsewhere (PostgreSQL, the test suite's savepoints) it is simply the request's session.
        """
        reads = self._reads(req)
        return req.context.db if reads is None else reads.session

    def _reads(self, req: falcon.Request) -> _ReadConnection | None:
        """The request's autocommit read connection (opened on first use), or ``None`` to use its session."""
        reads: _ReadConnection | None = getattr(req.context, "espi_reads", None)
        if reads is not None:
            return reads
        if self.hotpath is None:
            return None
        connection = self.hotpath.connection_for(self._session_source(req))
        if connection is None:
            return None
        reads = req.context.espi_reads = _ReadConnection(connection)
        return reads

    @staticmethod
    def _session_source(req: falcon.Request) -> Session | sessionmaker[Session]:
        """The request's session, or the factory that would make it when it has not made one (nothing makes one
        just to ask :class:`gateway.oauth.hotpath.HotPath` which connection to use)."""
        context = req.context
        return context.session_source() if isinstance(context, RequestContext) else context.db

    # -- checks (never generators) --------------------------------------------------------------------------------

    def authenticate(self, req: falcon.Request, *kinds: PrincipalKind) -> Principal:
        """401 without a valid token, 403 for another kind, 429 over the client's rate (ESPI-NOTES §3, §10)."""
        # The token is looked up on the request's read connection, which the responder's queries then reuse.
        principal = self.bearer_auth.require(req, *kinds, db=self.connection(req))
        self.limiter.check(principal.client_id)
        return principal

    def customer_grant(self, req: falcon.Request, subscription_id: int) -> Grant:
        """The grant of a customer token for ``Subscription/{subscription_id}``; 403 for any other subscription.

        A password-grant (self-access) token is a customer token whose subscription holds its owner's usage points
        only, so the same check confines it to the owner's data.
        """
        return _subscription_grant(self.authenticate(req, "customer"), subscription_id)

    def connection(self, req: falcon.Request) -> Connection:
        """The read connection of :meth:`db` itself, for Core statements on the hot path (no ORM session work)."""
        reads = self._reads(req)
        return req.context.db.connection() if reads is None else reads.connection

    def grant_and_usage_point(
        self, req: falcon.Request, subscription_id: int, usage_point_id: int
    ) -> tuple[Grant, Any]:
        """As :meth:`customer_grant` then :meth:`usage_point` (403, then 404), read with the token in one query."""
        if self.hotpath is None or getattr(req.context, "espi_reads", None) is not None:
            principal, point = self.bearer_auth.require_with_usage_point(
                req, usage_point_id, "customer", db=self.connection(req)
            )
        else:
            # The one query this request makes: on the thread's held read connection, not a pooled one of its own.
            with self.hotpath.single_statement(self._session_source(req)) as held:
                principal, point = self.bearer_auth.require_with_usage_point(
                    req, usage_point_id, "customer", db=held if held is not None else self.connection(req)
                )
        self.limiter.check(principal.client_id)
        grant = _subscription_grant(principal, subscription_id)
        if point is None:
            raise NotFound(f"no UsagePoint {usage_point_id} in this subscription")
        return grant, point

    @staticmethod
    def query(req: falcon.Request) -> FeedQuery:
        """The FB 37 parameters (400 naming the bad one)."""
        return parse_query(req.params)

    @staticmethod
    def filters(query: FeedQuery) -> IntervalFilter:
        def moment(value: int | None) -> dt.datetime | None:
            return None if value is None else dt.datetime.fromtimestamp(value, dt.UTC)

        return IntervalFilter(
            published_min=query.published_min,
            published_max=query.published_max,
            updated_min=moment(query.updated_min),
            updated_max=moment(query.updated_max),
        )

    @staticmethod
    def page(query: FeedQuery) -> Page:
        return Page(offset=query.offset, limit=query.max_results)

    def scope(self, grant: Grant) -> UsagePointLinks:
        """Links under ``Subscription/{s}`` (or ``RetailCustomer/{c}`` for the custodian's export grant)."""
        if grant.subscription_id is None:
            return self.links.retail_customer(grant.customer_id)
        return self.links.subscription(grant.subscription_id)

    def usage_point(self, req: falcon.Request, grant: Grant, usage_point_id: int) -> Any:
        """The grant's usage point ``usage_point_id`` or 404."""
        found = queries.usage_point_row(self.db(req), grant, usage_point_id)
        if found is None:
            raise NotFound(f"no UsagePoint {usage_point_id} {_within(grant)}")
        return found

    def meter_reading(self, req: falcon.Request, grant: Grant, usage_point_id: int, meter_reading_id: int) -> Any:
        """The grant's MeterReading ``meter_reading_id`` of that usage point, or 404."""
        self.usage_point(req, grant, usage_point_id)
        found = queries.meter_readings(self.db(req), grant, [usage_point_id], meter_reading_id=meter_reading_id)
        if not found:
            raise NotFound(f"no MeterReading {meter_reading_id} in UsagePoint {usage_point_id}")
        return found[0]

    # -- sending ---------------------------------------------------------------------------------------------------

    def absolute(self, req: falcon.Request, *, with_query: bool = True) -> str:
        """The request's own URL under the public base URL (feeds' ``self`` link)."""
        url = f"{self.settings.base_url}{req.path}"
        if with_query and req.query_string:
            url += f"?{req.query_string}"
        return url

    def paging_links(self, req: falcon.Request, query: FeedQuery, *, total: int, resource: str) -> list[Link]:
        """RFC 5005 §3 ``next``/``previous`` links (ESPI FB 37 paging by ``start-index`` and ``max-results``)."""
        base = self.absolute(req, with_query=False)
        links: list[Link] = []
        if query.start_index > 1:
            previous = max(1, query.start_index - query.max_results)
            links.append(feed_link("previous", f"{base}?{query.page_query(previous)}", resource))
        if query.offset + query.max_results < total:
            links.append(
                feed_link("next", f"{base}?{query.page_query(query.start_index + query.max_results)}", resource)
            )
        return links

    def send_feed(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        entries: Iterable[Entry],
        *,
        resource: str,
        title: str,
        validator_parts: Sequence[object],
        rows: Iterable[Any],
        links: Sequence[Link] = (),
    ) -> None:
        """Send ``entries`` as an Atom feed, or 304.

        Pass a list of entries already built (any ValueError of a builder then happened before this); only the bulk
        passes a lazy iterator, and puts everything its ETag depends on in ``validator_parts``.
        """
        updated = latest(rows) or _EPOCH
        self_href = self.absolute(req)
        count = len(entries) if isinstance(entries, Sized) else None
        validators = Validators([self_href, *validator_parts, count], updated)
        body = feed(
            entries,
            feed_id=stable_uuid("Feed", self.absolute(req, with_query=False)),
            title=title,
            updated=updated,
            self_link=feed_link("self", self_href, resource),
            certification_url=self.settings.certification_url,
            links=links,
        )
        send(req, resp, body, validators)

    def send_collection(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        query: FeedQuery,
        rows: Sequence[_Row],
        entry: Callable[[_Row], Entry],
        *,
        resource: str,
        title: str,
        context: Sequence[object] = (),
        total: int | None = None,
        parts: Callable[[Sequence[_Row]], Iterable[object]] | None = None,
    ) -> None:
        """Send one FB 37 page of a collection as an Atom feed with RFC 5005 ``next``/``previous`` links, or 304.

        ``rows`` is either the whole collection (``total`` omitted: the page is cut here at ``start-index`` and
        ``max-results``) or the page the query already cut, with ``total`` the size of the collection (or, for a
        collection never counted, one past the page when more follow). Every entry is built before the first byte.
        The ETag covers ``context`` (what else shapes the answer, e.g. the grant), the query and ``parts`` of the
        page's rows (default: their ids and ``updated``).
        """
        if total is None:
            page = rows[query.offset : query.offset + query.max_results]
            total = len(rows)
        else:
            page = rows
        entries = [entry(row) for row in page]
        self.send_feed(
            req,
            resp,
            entries,
            resource=resource,
            title=title,
            validator_parts=[*context, query.cache_key(), *(parts or row_parts)(page)],
            rows=page,
            links=self.paging_links(req, query, total=total, resource=resource),
        )

    def send_entry(
        self, req: falcon.Request, resp: falcon.Response, entry: Entry, *, validator_parts: Sequence[object]
    ) -> None:
        """Send one entry as the document (``GET …/{id}``), or 304."""
        validators = Validators([self.absolute(req), entry.id, entry.updated, *validator_parts], entry.updated)
        send(req, resp, entry_document(entry), validators)


def _subscription_grant(principal: Principal, subscription_id: int) -> Grant:
    """The grant of a customer ``principal`` for ``Subscription/{subscription_id}`` (read with its token by
    :mod:`gateway.oauth.bearer`, no query of its own); 403 for any other subscription."""
    if principal.subscription_id != subscription_id or principal.grant is None:
        raise forbidden("the token is not for this subscription")
    return principal.grant


def _within(grant: Grant) -> str:
    """Where a usage point was looked for, for 404 messages: the subscription, or the customer of an export grant."""
    if grant.subscription_id is None:
        return f"of RetailCustomer {grant.customer_id}"
    return "in this subscription"


def grant_parts(grant: Grant) -> tuple[object, ...]:
    """What of a grant changes a response (for ETags): its subscription, scope and data window."""
    return (grant.subscription_id, grant.scope_text, grant.window.start, grant.window.end)


def row_parts(rows: Iterable[Any]) -> list[object]:
    """Ids and ``updated`` of rows (for ETags)."""
    return [(type(row).__name__, row.id, row.updated) for row in rows]
