"""``…/UsagePoint/{u}/ElectricPowerQualitySummary[/{id}]`` (ESPI REQ.21 FB 17 power quality).

Visible only with FB 17; summaries whose interval misses the consent's data window are hidden. The responders
resolve the customer's grant for ``Subscription/{s}``; :meth:`PowerQualityResource.collection` and
:meth:`PowerQualityResource.item` serve any grant under any prefix (the custodian's ``UsagePoint/{u}/…``).
"""

from __future__ import annotations

import falcon

from gateway.errors import NotFound
from gateway.espi.links import UsagePointLinks
from gateway.espi.writer import electric_power_quality_summary_entry
from gateway.resources.espi_base import EspiApi, grant_parts
from gateway.storage import queries
from gateway.storage.queries import Grant

__all__ = ["PowerQualityResource"]


class PowerQualityResource:
    """ESPI ``ElectricPowerQualitySummary`` collection and entries below one usage point."""

    def __init__(self, api: EspiApi) -> None:
        self.api = api

    def on_get(self, req: falcon.Request, resp: falcon.Response, s: int, u: int) -> None:
        """The usage point's ElectricPowerQualitySummary feed (one page)."""
        grant = self.api.customer_grant(req, s)
        self.collection(req, resp, grant, self.api.scope(grant), u)

    def on_get_item(self, req: falcon.Request, resp: falcon.Response, s: int, u: int, summary_id: int) -> None:
        """One ElectricPowerQualitySummary entry."""
        grant = self.api.customer_grant(req, s)
        self.item(req, resp, grant, self.api.scope(grant), u, summary_id)

    def collection(
        self, req: falcon.Request, resp: falcon.Response, grant: Grant, scope: UsagePointLinks, u: int
    ) -> None:
        """Send the ElectricPowerQualitySummaries of usage point ``u`` that ``grant`` shows."""
        query = self.api.query(req)
        self.api.usage_point(req, grant, u)
        every = queries.power_quality_summaries(self.api.db(req), grant, [u], filters=self.api.filters(query))
        self.api.send_collection(
            req,
            resp,
            query,
            every,
            lambda summary: electric_power_quality_summary_entry(summary, scope),
            resource="ElectricPowerQualitySummary",
            title=f"UsagePoint {u}: ElectricPowerQualitySummaries",
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
        """Send ElectricPowerQualitySummary ``summary_id`` of usage point ``u`` (404 outside ``grant``)."""
        self.api.query(req)
        self.api.usage_point(req, grant, u)
        found = queries.power_quality_summaries(self.api.db(req), grant, [u], summary_id=summary_id)
        if not found:
            raise NotFound(f"no ElectricPowerQualitySummary {summary_id} in UsagePoint {u}")
        entry = electric_power_quality_summary_entry(found[0], scope)
        self.api.send_entry(req, resp, entry, validator_parts=grant_parts(grant))
