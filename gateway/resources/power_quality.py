"""``…/UsagePoint/{u}/ElectricPowerQualitySummary[/{id}]`` (ESPI REQ.21 FB 17 power quality).

Visible only with FB 17; summaries whose interval misses the consent's data window are hidden.
"""

from __future__ import annotations

import falcon

from gateway.errors import NotFound
from gateway.espi.writer import electric_power_quality_summary_entry
from gateway.resources.espi_base import EspiApi, grant_parts, row_parts
from gateway.storage import queries

__all__ = ["PowerQualityResource"]


class PowerQualityResource:
    """ESPI ``ElectricPowerQualitySummary`` collection and entries below one usage point."""

    def __init__(self, api: EspiApi) -> None:
        self.api = api

    def on_get(self, req: falcon.Request, resp: falcon.Response, s: int, u: int) -> None:
        """The usage point's ElectricPowerQualitySummary feed (one page)."""
        grant = self.api.customer_grant(req, s)
        query = self.api.query(req)
        self.api.usage_point(req, grant, u)
        every = queries.power_quality_summaries(self.api.db(req), grant, [u], filters=self.api.filters(query))
        page = every[query.offset : query.offset + query.max_results]
        scope = self.api.scope(grant)
        entries = [electric_power_quality_summary_entry(summary, scope) for summary in page]
        self.api.send_feed(
            req,
            resp,
            entries,
            resource="ElectricPowerQualitySummary",
            title=f"UsagePoint {u}: ElectricPowerQualitySummaries",
            validator_parts=[*grant_parts(grant), query.cache_key(), *row_parts(page)],
            rows=page,
            links=self.api.paging_links(req, query, total=len(every), resource="ElectricPowerQualitySummary"),
        )

    def on_get_item(self, req: falcon.Request, resp: falcon.Response, s: int, u: int, summary_id: int) -> None:
        """One ElectricPowerQualitySummary entry."""
        grant = self.api.customer_grant(req, s)
        self.api.query(req)
        self.api.usage_point(req, grant, u)
        found = queries.power_quality_summaries(self.api.db(req), grant, [u], summary_id=summary_id)
        if not found:
            raise NotFound(f"no ElectricPowerQualitySummary {summary_id} in UsagePoint {u}")
        entry = electric_power_quality_summary_entry(found[0], self.api.scope(grant))
        self.api.send_entry(req, resp, entry, validator_parts=grant_parts(grant))
