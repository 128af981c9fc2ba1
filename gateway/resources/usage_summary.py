"""``…/UsagePoint/{u}/UsageSummary[/{id}]`` and the older ``ElectricPowerUsageSummary`` path (ESPI REQ.21 FB 15, 16).

Visible only with FB 15 (usage summary): without it the collection is empty and ids are 404. Bills, costs and cost
line items only with FB 16 (summary with cost). Summaries whose billing period misses the data window are hidden.
The responders resolve the customer's grant for ``Subscription/{s}``; :meth:`UsageSummaryResource.collection` and
:meth:`UsageSummaryResource.item` serve any grant under any prefix (the custodian's ``UsagePoint/{u}/…``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import falcon

from gateway.errors import NotFound
from gateway.espi.links import UsagePointLinks
from gateway.espi.writer import Entry, usage_summary_entry
from gateway.resources.espi_base import CostFreeSummary, EspiApi, grant_parts
from gateway.storage import queries
from gateway.storage.queries import Grant

if TYPE_CHECKING:
    from gateway.storage.usage import UsageSummary

__all__ = ["UsageSummaryResource", "summary_entry"]


def summary_entry(grant: Grant, summary: Any, scope: UsagePointLinks) -> Entry:
    """A UsageSummary entry as ``grant`` may see it: without FB 16, no bills, costs or cost line items."""
    shown = summary if grant.summary_costs else CostFreeSummary(summary)
    return usage_summary_entry(cast("UsageSummary", shown), scope)


class UsageSummaryResource:
    """ESPI ``UsageSummary`` collection and entries below one usage point."""

    def __init__(self, api: EspiApi) -> None:
        self.api = api

    def on_get(self, req: falcon.Request, resp: falcon.Response, s: int, u: int) -> None:
        """The usage point's UsageSummary feed (one page)."""
        grant = self.api.customer_grant(req, s)
        self.collection(req, resp, grant, self.api.scope(grant), u)

    def on_get_item(self, req: falcon.Request, resp: falcon.Response, s: int, u: int, summary_id: int) -> None:
        """One UsageSummary entry."""
        grant = self.api.customer_grant(req, s)
        self.item(req, resp, grant, self.api.scope(grant), u, summary_id)

    def collection(
        self, req: falcon.Request, resp: falcon.Response, grant: Grant, scope: UsagePointLinks, u: int
    ) -> None:
        """Send the UsageSummaries of usage point ``u`` that ``grant`` shows."""
        query = self.api.query(req)
        self.api.usage_point(req, grant, u)
        every = queries.usage_summaries(self.api.db(req), grant, [u], filters=self.api.filters(query))
        self.api.send_collection(
            req,
            resp,
            query,
            every,
            lambda summary: summary_entry(grant, summary, scope),
            resource="UsageSummary",
            title=f"UsagePoint {u}: UsageSummaries",
            context=grant_parts(grant),
        )

    def item(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        grant: Grant,
        scope: UsagePointLinks,
        u: int,
        summary_id: int,
    ) -> None:
        """Send UsageSummary ``summary_id`` of usage point ``u`` (404 outside ``grant``)."""
        self.api.query(req)
        self.api.usage_point(req, grant, u)
        found = queries.usage_summaries(self.api.db(req), grant, [u], usage_summary_id=summary_id)
        if not found:
            raise NotFound(f"no UsageSummary {summary_id} in UsagePoint {u}")
        self.api.send_entry(req, resp, summary_entry(grant, found[0], scope), validator_parts=grant_parts(grant))
