"""``…/UsagePoint/{u}/MeterReading[/{m}]`` (ESPI REQ.21 FB 4 interval metering; ESPI-NOTES §2-3, §7).

A MeterReading relates to exactly one ReadingType, served at ``ReadingType/{id}`` (never nested). Without FB 4 in the
grant the collection is empty and every MeterReading id is 404; with ``IntervalDuration`` in the scope only
MeterReadings of those interval lengths are visible.

The responders resolve the customer's grant for ``Subscription/{s}``; :meth:`MeterReadingResource.collection` and
:meth:`MeterReadingResource.item` serve any grant under any prefix (the custodian's ``UsagePoint/{u}/…`` uses them).
"""

from __future__ import annotations

import falcon

from gateway.espi.links import UsagePointLinks
from gateway.espi.writer import meter_reading_entry
from gateway.resources.espi_base import EspiApi, grant_parts
from gateway.storage import queries
from gateway.storage.queries import Grant

__all__ = ["MeterReadingResource"]


class MeterReadingResource:
    """ESPI ``MeterReading`` collection and entries below one usage point."""

    def __init__(self, api: EspiApi) -> None:
        self.api = api

    def on_get(self, req: falcon.Request, resp: falcon.Response, s: int, u: int) -> None:
        """The usage point's MeterReading feed (one page)."""
        grant = self.api.customer_grant(req, s)
        self.collection(req, resp, grant, self.api.scope(grant), u)

    def on_get_item(self, req: falcon.Request, resp: falcon.Response, s: int, u: int, m: int) -> None:
        """One MeterReading entry."""
        grant = self.api.customer_grant(req, s)
        self.item(req, resp, grant, self.api.scope(grant), u, m)

    def collection(
        self, req: falcon.Request, resp: falcon.Response, grant: Grant, scope: UsagePointLinks, u: int
    ) -> None:
        """Send the MeterReadings of usage point ``u`` that ``grant`` shows, with links under ``scope``."""
        query = self.api.query(req)
        self.api.usage_point(req, grant, u)
        every = queries.meter_readings(self.api.db(req), grant, [u])
        self.api.send_collection(
            req,
            resp,
            query,
            every,
            lambda reading: meter_reading_entry(reading, scope),
            resource="MeterReading",
            title=f"UsagePoint {u}: MeterReadings",
            context=grant_parts(grant),
        )

    def item(
        self, req: falcon.Request, resp: falcon.Response, grant: Grant, scope: UsagePointLinks, u: int, m: int
    ) -> None:
        """Send MeterReading ``m`` of usage point ``u`` (404 when ``grant`` does not show it)."""
        self.api.query(req)
        reading = self.api.meter_reading(req, grant, u, m)
        self.api.send_entry(req, resp, meter_reading_entry(reading, scope), validator_parts=grant_parts(grant))
