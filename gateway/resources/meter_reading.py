"""``…/UsagePoint/{u}/MeterReading[/{m}]`` (ESPI REQ.21 FB 4 interval metering; ESPI-NOTES §2-3, §7).

A MeterReading relates to exactly one ReadingType, served at ``ReadingType/{id}`` (never nested). Without FB 4 in the
grant the collection is empty and every MeterReading id is 404; with ``IntervalDuration`` in the scope only
MeterReadings of those interval lengths are visible.
"""

from __future__ import annotations

import falcon

from gateway.espi.writer import meter_reading_entry
from gateway.resources.espi_base import EspiApi, grant_parts, row_parts
from gateway.storage import queries

__all__ = ["MeterReadingResource"]


class MeterReadingResource:
    """ESPI ``MeterReading`` collection and entries below one usage point."""

    def __init__(self, api: EspiApi) -> None:
        self.api = api

    def on_get(self, req: falcon.Request, resp: falcon.Response, s: int, u: int) -> None:
        """The usage point's MeterReading feed (one page)."""
        grant = self.api.customer_grant(req, s)
        query = self.api.query(req)
        self.api.usage_point(req, grant, u)
        session = self.api.db(req)
        every = queries.meter_readings(session, grant, [u])
        page = every[query.offset : query.offset + query.max_results]
        scope = self.api.scope(grant)
        entries = [meter_reading_entry(reading, scope) for reading in page]
        self.api.send_feed(
            req,
            resp,
            entries,
            resource="MeterReading",
            title=f"UsagePoint {u}: MeterReadings",
            validator_parts=[*grant_parts(grant), query.cache_key(), *row_parts(page)],
            rows=page,
            links=self.api.paging_links(req, query, total=len(every), resource="MeterReading"),
        )

    def on_get_item(self, req: falcon.Request, resp: falcon.Response, s: int, u: int, m: int) -> None:
        """One MeterReading entry."""
        grant = self.api.customer_grant(req, s)
        self.api.query(req)
        reading = self.api.meter_reading(req, grant, u, m)
        self.api.send_entry(
            req, resp, meter_reading_entry(reading, self.api.scope(grant)), validator_parts=grant_parts(grant)
        )
