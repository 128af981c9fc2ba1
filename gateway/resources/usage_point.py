"""``Subscription/{s}/UsagePoint[/{u}]`` (ESPI REQ.21 FB 1, 3; ESPI-NOTES §2-3): the usage points a consent shares.

Customer tokens for ``{s}`` only (403 for any other token kind or subscription); a usage point outside the consent,
or of a commodity its scope does not name (FB 5, 10, 11), is 404. The collection is paged by
``start-index``/``max-results`` (FB 37) and filtered by ``updated-min``/``-max``.
"""

from __future__ import annotations

import falcon

from gateway.espi.writer import usage_point_entry
from gateway.resources.espi_base import EspiApi, grant_parts
from gateway.storage import queries

__all__ = ["UsagePointResource"]


class UsagePointResource:
    """ESPI ``UsagePoint`` collection and entries of one subscription."""

    def __init__(self, api: EspiApi) -> None:
        self.api = api

    def on_get(self, req: falcon.Request, resp: falcon.Response, s: int) -> None:
        """The subscription's UsagePoint feed (one page)."""
        grant = self.api.customer_grant(req, s)
        query = self.api.query(req)
        session = self.api.db(req)
        filters = self.api.filters(query)
        points = queries.usage_points(session, grant, filters=filters, page=self.api.page(query))
        total = queries.count_usage_points(session, grant)
        scope = self.api.scope(grant)
        self.api.send_collection(
            req,
            resp,
            query,
            points,
            lambda point: usage_point_entry(point, scope),
            resource="UsagePoint",
            title=f"Subscription {s}: UsagePoints",
            context=grant_parts(grant),
            total=total,
        )

    def on_get_item(self, req: falcon.Request, resp: falcon.Response, s: int, u: int) -> None:
        """One UsagePoint entry."""
        grant, point = self.api.grant_and_usage_point(req, s, u)
        self.api.query(req)
        entry = usage_point_entry(point, self.api.scope(grant))
        self.api.send_entry(req, resp, entry, validator_parts=grant_parts(grant))
