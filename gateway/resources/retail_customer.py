"""``Batch/RetailCustomer/{c}/UsagePoint``: Download My Data export (GET) and upload (POST) (ESPI-NOTES §2, §9).

For the custodian's own tokens only (``custodian`` and ``upload`` kinds, i.e. client_credentials tokens of clients
with the ``custodian_admin`` or ``upload`` role); customer, client and registration tokens get 403, none 401. An
unknown customer is 404 (these callers may see every customer).

- ``GET``: every usage point of the customer with its whole tree, streamed, under ``RetailCustomer/{c}`` links;
  FB 37 parameters as for ``Batch/Subscription`` (see :mod:`gateway.resources.batch`).
- ``POST``: a Green Button feed (``application/atom+xml``) imported for the customer through
  :func:`gateway.espi.ingest.import_feed` (size-capped by ``GATEWAY_MAX_UPLOAD_BYTES``, hardened parser, strict
  schema, one SAVEPOINT: all or nothing), then every app with an active consent on an affected usage point gets a
  BatchList push queued in the same transaction (:func:`gateway.notifications.notify_new_data`). Answers 200 with
  the import report and the number of notifications queued.
"""

from __future__ import annotations

import json
from typing import IO, cast

import falcon

from gateway.errors import NotFound, UnsupportedMediaType
from gateway.espi.ingest import import_feed
from gateway.espi.safe_xml import XmlLimits
from gateway.notifications import changed_data, fingerprint, notify_new_data
from gateway.resources.batch import usage_tree
from gateway.resources.espi_base import EspiApi
from gateway.storage import queries
from gateway.storage.customer import RetailCustomer

__all__ = ["RetailCustomerBatchResource"]

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
        self.api.authenticate(req, "custodian", "upload")
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
        session = req.context.db
        before = fingerprint(session, customer.id)
        limits = XmlLimits(max_bytes=self.api.settings.max_upload_bytes)
        report = import_feed(session, cast("IO[bytes]", req.bounded_stream), customer=customer, limits=limits)
        session.flush()
        change = changed_data(customer.id, before, fingerprint(session, customer.id))
        queued = notify_new_data(session, self.api.settings, change)
        document = {"import": report.to_json(), "notifications_queued": len(queued)}
        resp.content_type = "application/json"
        resp.data = json.dumps(document).encode()
