"""``Batch/RetailCustomer/{c}/UsagePoint``: Download My Data export (GET) and upload (POST) (ESPI-NOTES §2, §9);
``RetailCustomer/{c}/UsagePoint[/{u}[/…]]``: the resources the export links to.

For the custodian's own tokens only (``custodian`` and ``upload`` kinds, i.e. client_credentials tokens of clients
with the ``custodian_admin`` or ``upload`` role); customer, client and registration tokens get 403, none 401. An
unknown customer is 404 (these callers may see every customer).

- ``GET``: every usage point of the customer with its whole tree, streamed, under ``RetailCustomer/{c}`` links;
  FB 37 parameters as for ``Batch/Subscription`` (see :mod:`gateway.resources.batch`).
- ``POST``: a Green Button feed (``application/atom+xml``) imported for the customer through
  :func:`gateway.notifications.import_and_notify`, as ``gateway import`` does (size-capped by
  ``GATEWAY_MAX_UPLOAD_BYTES``, hardened parser, strict schema, one SAVEPOINT: all or nothing): every app with an
  active consent on an affected usage point gets a BatchList push queued in the same transaction (FB 39). Answers
  200 with the import report and the number of notifications queued.
- ``RetailCustomer/{c}/UsagePoint``, ``RetailCustomer/{c}/UsagePoint/{u}`` and the tree below it
  (``MeterReading[/{m}[/IntervalBlock[/{b}]]]``, ``UsageSummary[/{id}]`` also as ``ElectricPowerUsageSummary``,
  ``ElectricPowerQualitySummary[/{id}]``), GET only: every ``self``, ``up`` and ``related`` link of an export
  resolves (RFC 4287 §4.2.7.2; the reference Data Custodian serves ``RetailCustomer/{c}/UsagePoint[/{u}]`` too).
  Same tokens as the export, same grant (every usage point of customer ``{c}``, every function block, no data
  window); a usage point of another customer is 404, as is an unknown customer. The tree is served by the family
  responders of ``Subscription/{s}/UsagePoint/{u}/…`` (FB 37 parameters, paging, ETag, gzip as there).
"""

from __future__ import annotations

import json
from typing import IO, cast

import falcon

from gateway.errors import NotFound, UnsupportedMediaType
from gateway.espi.safe_xml import XmlLimits
from gateway.espi.writer import usage_point_entry
from gateway.notifications import import_and_notify
from gateway.oauth.bearer import PrincipalKind
from gateway.resources.batch import usage_tree
from gateway.resources.espi_base import EspiApi, grant_parts
from gateway.resources.interval_block import IntervalBlockResource
from gateway.resources.meter_reading import MeterReadingResource
from gateway.resources.power_quality import PowerQualityResource
from gateway.resources.usage_summary import UsageSummaryResource
from gateway.storage import queries
from gateway.storage.customer import RetailCustomer
from gateway.storage.queries import Grant

__all__ = ["RetailCustomerBatchResource", "RetailCustomerUsagePointResource"]

_EXPORT_KINDS: tuple[PrincipalKind, ...] = ("custodian", "upload")
"""The token kinds of the Download My Data export, and so of every resource it links to."""

_XML_TYPES = ("application/atom+xml", "application/xml", "text/xml")


class RetailCustomerBatchResource:
    """The custodian's export and upload of one customer's usage data."""

    def __init__(self, api: EspiApi) -> None:
        self.api = api

    def _customer(self, req: falcon.Request, customer_id: int) -> RetailCustomer:
        customer: RetailCustomer | None = req.context.db.get(RetailCustomer, customer_id)
        if customer is None:
            raise NotFound(f"no RetailCustomer {customer_id}")
        return customer

    def on_get(self, req: falcon.Request, resp: falcon.Response, c: int) -> None:
        """Download My Data: the customer's whole usage tree as one feed."""
        self.api.authenticate(req, *_EXPORT_KINDS)
        query = self.api.query(req)
        session = self.api.db(req)
        if session.get(RetailCustomer, c) is None:
            raise NotFound(f"no RetailCustomer {c}")
        grant = queries.customer_export_grant(c)
        points = queries.usage_points(session, grant)
        tree = usage_tree(session, grant, self.api.links.retail_customer(c), points, query, self.api.filters(query))
        links = (
            self.api.paging_links(req, query, total=tree.total_blocks, resource="IntervalBlock")
            if query.max_results_given or query.start_index > 1
            else []
        )
        self.api.send_feed(
            req,
            resp,
            tree.entries,
            resource="UsagePoint",
            title=f"Green Button Download My Data: RetailCustomer {c}",
            validator_parts=[c, query.cache_key(), *tree.parts],
            rows=tree.rows,
            links=links,
        )

    def on_post(self, req: falcon.Request, resp: falcon.Response, c: int) -> None:
        """Upload a feed for the customer, then queue the push notifications (FB 39)."""
        self.api.authenticate(req, "upload", "custodian")
        customer = self._customer(req, c)
        if (req.content_type or "").split(";")[0].strip().lower() not in _XML_TYPES:
            raise UnsupportedMediaType("upload a Green Button feed as application/atom+xml")
        limits = XmlLimits(max_bytes=self.api.settings.max_upload_bytes)
        report, queued = import_and_notify(
            req.context.db,
            self.api.settings,
            cast("IO[bytes]", req.bounded_stream),
            customer=customer,
            limits=limits,
        )
        document = {"import": report.to_json(), "notifications_queued": queued}
        resp.content_type = "application/json"
        resp.data = json.dumps(document).encode()


class RetailCustomerUsagePointResource:
    """``RetailCustomer/{c}/UsagePoint`` and everything below it: where the links of a Download My Data export lead.

    The grant is the export's (:func:`gateway.storage.queries.customer_export_grant`); below a usage point the
    family responders of the customer paths do the work, with links under ``RetailCustomer/{c}``.
    """

    def __init__(
        self,
        api: EspiApi,
        meter_readings: MeterReadingResource,
        interval_blocks: IntervalBlockResource,
        usage_summaries: UsageSummaryResource,
        power_quality: PowerQualityResource,
    ) -> None:
        self.api = api
        self.meter_readings = meter_readings
        self.interval_blocks = interval_blocks
        self.usage_summaries = usage_summaries
        self.power_quality = power_quality

    def _grant(self, req: falcon.Request, c: int) -> Grant:
        """Customer ``c``'s export grant: 401/403 for the token, 400 for the query, then 404 for an unknown ``c``."""
        self.api.authenticate(req, *_EXPORT_KINDS)
        self.api.query(req)
        if self.api.db(req).get(RetailCustomer, c) is None:
            raise NotFound(f"no RetailCustomer {c}")
        return queries.customer_export_grant(c)

    def on_get(self, req: falcon.Request, resp: falcon.Response, c: int) -> None:
        """The customer's UsagePoint feed (one page, FB 37), without the trees (those are the export's)."""
        grant = self._grant(req, c)
        query = self.api.query(req)
        session = self.api.db(req)
        points = queries.usage_points(session, grant, filters=self.api.filters(query), page=self.api.page(query))
        scope = self.api.scope(grant)
        self.api.send_collection(
            req,
            resp,
            query,
            points,
            lambda point: usage_point_entry(point, scope),
            resource="UsagePoint",
            title=f"RetailCustomer {c}: UsagePoints",
            context=grant_parts(grant),
            total=queries.count_usage_points(session, grant),
        )

    def on_get_item(self, req: falcon.Request, resp: falcon.Response, c: int, u: int) -> None:
        """One UsagePoint entry of the customer (404 for another customer's)."""
        grant = self._grant(req, c)
        point = self.api.usage_point(req, grant, u)
        entry = usage_point_entry(point, self.api.scope(grant))
        self.api.send_entry(req, resp, entry, validator_parts=grant_parts(grant))

    def on_get_meter_readings(self, req: falcon.Request, resp: falcon.Response, c: int, u: int) -> None:
        grant = self._grant(req, c)
        self.meter_readings.collection(req, resp, grant, self.api.scope(grant), u)

    def on_get_meter_reading(self, req: falcon.Request, resp: falcon.Response, c: int, u: int, m: int) -> None:
        grant = self._grant(req, c)
        self.meter_readings.item(req, resp, grant, self.api.scope(grant), u, m)

    def on_get_interval_blocks(self, req: falcon.Request, resp: falcon.Response, c: int, u: int, m: int) -> None:
        grant = self._grant(req, c)
        self.interval_blocks.collection(req, resp, grant, self.api.scope(grant), u, m)

    def on_get_interval_block(self, req: falcon.Request, resp: falcon.Response, c: int, u: int, m: int, b: int) -> None:
        grant = self._grant(req, c)
        self.interval_blocks.item(req, resp, grant, self.api.scope(grant), u, m, b)

    def on_get_usage_summaries(self, req: falcon.Request, resp: falcon.Response, c: int, u: int) -> None:
        grant = self._grant(req, c)
        self.usage_summaries.collection(req, resp, grant, self.api.scope(grant), u)

    def on_get_usage_summary(self, req: falcon.Request, resp: falcon.Response, c: int, u: int, summary_id: int) -> None:
        grant = self._grant(req, c)
        self.usage_summaries.item(req, resp, grant, self.api.scope(grant), u, summary_id)

    def on_get_power_quality_summaries(self, req: falcon.Request, resp: falcon.Response, c: int, u: int) -> None:
        grant = self._grant(req, c)
        self.power_quality.collection(req, resp, grant, self.api.scope(grant), u)

    def on_get_power_quality_summary(
        self, req: falcon.Request, resp: falcon.Response, c: int, u: int, summary_id: int
    ) -> None:
        grant = self._grant(req, c)
        self.power_quality.item(req, resp, grant, self.api.scope(grant), u, summary_id)
