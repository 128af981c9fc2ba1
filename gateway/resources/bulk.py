"""``Batch/Bulk/{bulkId}`` (ESPI REQ.21 FB 35 REST bulk; ESPI-NOTES §2, §9): every subscription of the calling app
whose scope carries ``BR={bulkId}``, as one feed.

Client access tokens only (customer, registration: 403; none: 401). A bulk id that is neither in the app's registered
scopes nor in any of its active authorizations is 404. Only active, unexpired consents are included, each with its
own grant applied exactly as on ``Batch/Subscription/{s}`` (its usage points, data window, function blocks), with
``Subscription/{s}`` links so the app can tell the customers apart.

Paging (FB 37): ``max-results``/``start-index`` count *subscriptions* here (RFC 5005 ``next``/``previous``); the
other parameters apply inside each subscription as in a batch.

Streaming: the list of subscriptions and their grants is loaded before the first byte (every access decision); the
usage tree of each subscription is loaded when the writer reaches it, so memory is bounded by the largest single
subscription, not by the bulk. A database failure in the middle of a bulk therefore truncates the response (the
client sees an incomplete document and retries).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import falcon
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.errors import NotFound
from gateway.espi.writer import Entry
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
from gateway.storage.usage import IntervalBlock, MeterReading
from gateway.web.params import FeedQuery

__all__ = ["BulkResource"]

_BULK_ID = re.compile(r"\A[A-Za-z0-9._-]{1,64}\Z")


class BulkResource:
    """``Batch/Bulk/{bulk_id}``."""

    def __init__(self, api: EspiApi) -> None:
        self.api = api

    def on_get(self, req: falcon.Request, resp: falcon.Response, bulk_id: str) -> None:
        principal = self.api.authenticate(req, "client")
        query = self.api.query(req)
        if not _BULK_ID.match(bulk_id):
            raise NotFound(f"no bulk {bulk_id[:64]!r} for this application")
        session = self.api.db(req)
        suffix = f";BR={bulk_id}"
        conditions = [
            Authorization.application_id == principal.application_id,
            Authorization.kind == AuthorizationKind.CUSTOMER,
            Authorization.status == AuthorizationStatus.ACTIVE,
            Authorization.expires_at > int(utcnow().timestamp()),
            Authorization.scope.endswith(suffix, autoescape=True),
        ]
        base = (
            select(Subscription.id, Subscription.customer_id, Authorization.updated)
            .join(Authorization, Authorization.id == Subscription.authorization_id)
            .where(*conditions)
        )
        total = int(session.scalar(select(func.count()).select_from(base.subquery())) or 0)
        if total == 0:
            registered = (
                session.scalar(
                    select(ApplicationInformation.scopes).where(ApplicationInformation.id == principal.application_id)
                )
                or []
            )
            if not any(scope.endswith(suffix) for scope in registered):
                raise NotFound(f"no bulk {bulk_id!r} for this application")
        rows = session.execute(base.order_by(Subscription.id).offset(query.offset).limit(query.max_results)).all()
        grants = []
        for subscription_id, customer_id, _updated in rows:
            grant = queries.customer_grant(session, subscription_id=subscription_id, customer_id=customer_id)
            if grant is not None:
                grants.append(grant)
        validator_parts: list[object] = [principal.application_id, bulk_id, query.cache_key(), *rows]
        validator_parts.extend(self._data_version(session, [g.subscription_id for g in grants if g.subscription_id]))
        entries = self._entries(session, grants, query)
        self.api.send_feed(
            req,
            resp,
            entries,
            resource="Subscription",
            title=f"Green Button bulk {bulk_id}",
            validator_parts=validator_parts,
            rows=[],
            links=self.api.paging_links(req, query, total=total, resource="Subscription"),
        )

    @staticmethod
    def _data_version(session: Session, subscription_ids: list[int]) -> list[object]:
        """What of the bulk's data changes the response: the count and latest ``updated`` of its blocks."""
        if not subscription_ids:
            return []
        row = session.execute(
            select(func.count(IntervalBlock.id), func.max(IntervalBlock.updated))
            .join(MeterReading, MeterReading.id == IntervalBlock.meter_reading_id)
            .join(subscription_usage_point, subscription_usage_point.c.usage_point_id == MeterReading.usage_point_id)
            .where(subscription_usage_point.c.subscription_id.in_(subscription_ids))
        ).one()
        return [tuple(row)]

    def _entries(self, session: Session, grants: list[queries.Grant], query: FeedQuery) -> Iterator[Entry]:
        # Each subscription's tree is a whole batch: paging is over subscriptions, so its blocks are not paged.
        inner = FeedQuery(
            published_min=query.published_min,
            published_max=query.published_max,
            updated_min=query.updated_min,
            updated_max=query.updated_max,
            depth=query.depth,
        )
        filters = self.api.filters(inner)
        for grant in grants:
            points = queries.usage_points(session, grant)
            tree = usage_tree(session, grant, self.api.scope(grant), points, inner, filters)
            yield from tree.entries
