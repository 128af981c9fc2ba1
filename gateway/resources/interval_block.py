"""``…/MeterReading/{m}/IntervalBlock[/{b}]`` (ESPI REQ.21 FB 4, 12, 37; ESPI-NOTES §7-8).

``published-min``/``published-max`` select blocks by their *interval* (ESPI-NOTES §8), ``updated-*`` by ``updated``;
the consent's data window clips blocks to the readings inside it; costs are written only with FB 12 (interval cost).
Readings stream from the database with ``yield_per`` while the feed is written: memory stays flat for a meter-year.
The responders resolve the customer's grant for ``Subscription/{s}``; :meth:`IntervalBlockResource.collection` and
:meth:`IntervalBlockResource.item` serve any grant under any prefix (the custodian's ``UsagePoint/{u}/…``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

import falcon
from sqlalchemy.orm import Session

from gateway.errors import NotFound
from gateway.espi.links import UsagePointLinks
from gateway.espi.writer import Entry, interval_block_entry
from gateway.resources.espi_base import EspiApi, grant_parts
from gateway.storage import queries
from gateway.storage.queries import Grant

if TYPE_CHECKING:
    from gateway.storage.usage import IntervalBlock

__all__ = ["IntervalBlockResource", "block_entry", "block_parts"]


def block_parts(blocks: Sequence[queries.BlockView]) -> list[object]:
    """What of the blocks changes a response (ETag parts)."""
    return [(block.id, block.updated, block.start, block.duration) for block in blocks]


def block_entry(session: Session, grant: Grant, block: queries.BlockView, scope: UsagePointLinks) -> Entry:
    """An IntervalBlock entry whose readings (as ``grant`` sees them) stream from ``session`` while it is written."""
    return interval_block_entry(
        cast("IntervalBlock", block),
        queries.readings(session, grant, block),
        scope,
        usage_point_id=block.usage_point_id,
    )


class IntervalBlockResource:
    """ESPI ``IntervalBlock`` collection and entries below one MeterReading."""

    def __init__(self, api: EspiApi) -> None:
        self.api = api

    def on_get(self, req: falcon.Request, resp: falcon.Response, s: int, u: int, m: int) -> None:
        """The MeterReading's IntervalBlock feed (one page, filtered by FB 37 parameters)."""
        grant = self.api.customer_grant(req, s)
        self.collection(req, resp, grant, self.api.scope(grant), u, m)

    def on_get_item(self, req: falcon.Request, resp: falcon.Response, s: int, u: int, m: int, b: int) -> None:
        """One IntervalBlock entry with its readings."""
        grant = self.api.customer_grant(req, s)
        self.item(req, resp, grant, self.api.scope(grant), u, m, b)

    def collection(
        self, req: falcon.Request, resp: falcon.Response, grant: Grant, scope: UsagePointLinks, u: int, m: int
    ) -> None:
        """Send the IntervalBlocks of MeterReading ``m`` (of usage point ``u``) that ``grant`` shows, one page."""
        query = self.api.query(req)
        self.api.meter_reading(req, grant, u, m)
        session = self.api.db(req)
        filters = self.api.filters(query)
        blocks = queries.blocks(session, grant, [m], filters=filters, page=self.api.page(query))
        total = queries.block_count(session, grant, [m], filters)
        self.api.send_collection(
            req,
            resp,
            query,
            blocks,
            lambda block: block_entry(session, grant, block, scope),
            resource="IntervalBlock",
            title=f"MeterReading {m}: IntervalBlocks",
            context=grant_parts(grant),
            total=total,
            parts=block_parts,
        )

    def item(
        self,
        req: falcon.Request,
        resp: falcon.Response,
        grant: Grant,
        scope: UsagePointLinks,
        u: int,
        m: int,
        b: int,
    ) -> None:
        """Send IntervalBlock ``b`` of MeterReading ``m`` with its readings (404 outside ``grant``)."""
        self.api.query(req)
        self.api.meter_reading(req, grant, u, m)
        session = self.api.db(req)
        found = queries.blocks(session, grant, [m], interval_block_id=b)
        if not found:
            raise NotFound(f"no IntervalBlock {b} in MeterReading {m}")
        entry = block_entry(session, grant, found[0], scope)
        self.api.send_entry(req, resp, entry, validator_parts=[*grant_parts(grant), *block_parts(found)])
