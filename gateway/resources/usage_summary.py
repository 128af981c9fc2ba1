"""``…/UsagePoint/{u}/UsageSummary[/{id}]`` and the older ``ElectricPowerUsageSummary`` path (ESPI REQ.21 FB 15, 16).

Visible only with FB 15 (usage summary): without it the collection is empty and ids are 404. Bills, costs and cost
line items only with FB 16 (summary with cost). Summaries whose billing period misses the data window are hidden.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import falcon

from gateway.errors import NotFound
from gateway.espi.writer import usage_summary_entry
from gateway.resources.espi_base import CostFreeSummary, EspiApi, grant_parts, row_parts
from gateway.storage import queries

if TYPE_CHECKING:
    from gateway.storage.usage import UsageSummary

__all__ = ["UsageSummaryResource"]


class UsageSummaryResource:
    """ESPI ``UsageSummary`` collection and entries below one usage point."""

    def __init__(self, api: EspiApi) -> None:
        self.api = api

    def _shown(self, grant: queries.Grant, summary: Any) -> Any:
        return summary if grant.summary_costs else CostFreeSummary(summary)

    def on_get(self, req: falcon.Request, resp: falcon.Response, s: int, u: int) -> None:
        """The usage point's UsageSummary feed (one page)."""
        grant = self.api.customer_grant(req, s)
        query = self.api.query(req)
        self.api.usage_point(req, grant, u)
        every = queries.usage_summaries(self.api.db(req), grant, [u], filters=self.api.filters(query))
        page = every[query.offset : query.offset + query.max_results]
        scope = self.api.scope(grant)
        entries = [usage_summary_entry(cast("UsageSummary", self._shown(grant, summary)), scope) for summary in page]
        self.api.send_feed(
            req,
            resp,
            entries,
            resource="UsageSummary",
            title=f"UsagePoint {u}: UsageSummaries",
            validator_parts=[*grant_parts(grant), query.cache_key(), *row_parts(page)],
            rows=page,
            links=self.api.paging_links(req, query, total=len(every), resource="UsageSummary"),
        )

    def on_get_item(self, req: falcon.Request, resp: falcon.Response, s: int, u: int, summary_id: int) -> None:
        """One UsageSummary entry."""
        grant = self.api.customer_grant(req, s)
        self.api.query(req)
        self.api.usage_point(req, grant, u)
        found = queries.usage_summaries(self.api.db(req), grant, [u], usage_summary_id=summary_id)
        if not found:
            raise NotFound(f"no UsageSummary {summary_id} in UsagePoint {u}")
        entry = usage_summary_entry(cast("UsageSummary", self._shown(grant, found[0])), self.api.scope(grant))
        self.api.send_entry(req, resp, entry, validator_parts=grant_parts(grant))
