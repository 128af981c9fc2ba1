"""``…/MeterReading/{m}/IntervalBlock[/{b}]`` (ESPI REQ.21 FB 4, 12, 37; ESPI-NOTES §7-8).

``published-min``/``published-max`` select blocks by their *interval* (ESPI-NOTES §8), ``updated-*`` by ``updated``;
the consent's data window clips blocks to the readings inside it; costs are written only with FB 12 (interval cost).
Readings stream from the database with ``yield_per`` while the feed is written: memory stays flat for a meter-year.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import falcon

from gateway.errors import NotFound
from gateway.espi.writer import interval_block_entry
from gateway.resources.espi_base import EspiApi, grant_parts
from gateway.storage import queries

if TYPE_CHECKING:
    from gateway.storage.usage import IntervalBlock

__all__ = ["IntervalBlockResource", "block_parts"]


def block_parts(blocks: list[queries.BlockView]) -> list[object]:
    """What of the blocks changes a response (ETag parts)."""
    return [(block.id, block.updated, block.start, block.duration) for block in blocks]


class IntervalBlockResource:
    """ESPI ``IntervalBlock`` collection and entries below one MeterReading."""

    def __init__(self, api: EspiApi) -> None:
        self.api = api

    def on_get(self, req: falcon.Request, resp: falcon.Response, s: int, u: int, m: int) -> None:
        """The MeterReading's IntervalBlock feed (one page, filtered by FB 37 parameters)."""
        grant = self.api.customer_grant(req, s)
        query = self.api.query(req)
        self.api.meter_reading(req, grant, u, m)
        session = self.api.db(req)
        filters = self.api.filters(query)
        blocks = queries.blocks(session, grant, [m], filters=filters, page=self.api.page(query))
        total = queries.block_count(session, grant, [m], filters)
        scope = self.api.scope(grant)
        entries = [
            interval_block_entry(
                cast("IntervalBlock", block), queries.readings(session, grant, block), scope, usage_point_id=u
            )
            for block in blocks
        ]
        self.api.send_feed(
            req,
            resp,
            entries,
            resource="IntervalBlock",
            title=f"MeterReading {m}: IntervalBlocks",
            validator_parts=[*grant_parts(grant), query.cache_key(), *block_parts(blocks)],
            rows=blocks,
            links=self.api.paging_links(req, query, total=total, resource="IntervalBlock"),
        )

    def on_get_item(self, req: falcon.Request, resp: falcon.Response, s: int, u: int, m: int, b: int) -> None:
        """One IntervalBlock entry with its readings."""
        grant = self.api.customer_grant(req, s)
        self.api.query(req)
        self.api.meter_reading(req, grant, u, m)
        session = self.api.db(req)
        found = queries.blocks(session, grant, [m], interval_block_id=b)
        if not found:
            raise NotFound(f"no IntervalBlock {b} in MeterReading {m}")
        block = found[0]
        entry = interval_block_entry(
            cast("IntervalBlock", block),
            queries.readings(session, grant, block),
            self.api.scope(grant),
            usage_point_id=u,
        )
        self.api.send_entry(req, resp, entry, validator_parts=[*grant_parts(grant), *block_parts(found)])
