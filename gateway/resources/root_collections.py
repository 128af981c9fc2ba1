"""Root collections: every ESPI resource of the Data Custodian, for its own operator (ESPI-NOTES §2; the Green Button
API appendix, FB 33 "Management REST interfaces", token *D*; the reference Data Custodian's ``ROOT_*`` routes).

Only the ``custodian`` token kind reads them (client_credentials of a client with the ``custodian_admin`` role):
customer, client, registration and upload tokens get 403, none or a bad one 401 (ESPI-NOTES §3). They are read-only:
the reference implementation's POST/PUT/DELETE on roots would bypass the importer's checks and the consent lifecycle
(uploads go through ``Batch/RetailCustomer/{c}/UsagePoint``, revocations through the consent lifecycle).

Paths, relative to the resource base:

- ``UsagePoint``, ``UsagePoint/{u}``: every usage point of every customer and commodity. The tree below one is
  served too, whole (``UsagePoint/{u}/MeterReading[/{m}[/IntervalBlock[/{b}]]]``, ``…/UsageSummary[/{id}]`` also as
  ``ElectricPowerUsageSummary``, ``…/ElectricPowerQualitySummary[/{id}]``): the ``related`` links of a root
  UsagePoint entry point there, through the same responders as a customer's ``Subscription/{s}/UsagePoint/{u}/…``.
- ``MeterReading[/{m}]``, ``IntervalBlock[/{b}]``, ``UsageSummary[/{id}]`` and ``ElectricPowerUsageSummary[/{id}]``,
  ``ElectricPowerQualitySummary[/{id}]``: flat collections of every row; each entry's ``self`` and ``up`` links are
  the flat root's, its ``related`` links (IntervalBlocks, ReadingType) those of the tree above.
- ``ReadingType``, ``LocalTimeParameters``: the collections (the items are :mod:`gateway.resources.reference_data`).
- ``Authorization[/{id}]`` (GET): every Authorization, never with a token (the ESPI element has none written).
  Other token kinds keep their own answer (:mod:`gateway.resources.authorization`): one route, two readers.
- ``ApplicationInformation``, ``ApplicationInformation/{id}`` (GET): every registration, revoked ones included;
  ``client_secret`` and ``registration_access_token`` are written empty (only digests are stored, and a root listing
  must not echo them even if they were). PUT and DELETE stay the registration token's
  (:mod:`gateway.resources.application_information`).

Not served: ``RetailCustomer`` (neither our schemas, ``espi_schemas/``, nor the official ESPI 3.3/4.0 usage schemas
define the element: it lives in the separate Retail Customer (PII) schema we do not ship) and ``Subscription`` (no
ESPI resource element exists for it; a subscription's Authorization is in ``Authorization``).

Paging (FB 37): ``start-index``/``max-results`` over id order through the primary-key index (an indexed offset), one
row more than the page read to decide the ``next`` link, and a collection is never counted or loaded whole: there may
be millions of usage points. ``published-*``/``updated-*`` select by the Atom dates, IntervalBlocks by interval
(ESPI-NOTES §8). Conditional GET and gzip as for every feed; interval readings stream.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import falcon
from sqlalchemy import ColumnElement

from gateway.errors import NotFound
from gateway.espi.links import UsagePointLinks
from gateway.espi.writer import (
    CustodianEndpoints,
    Entry,
    application_information_entry,
    authorization_entry,
    electric_power_quality_summary_entry,
    entry_link,
    feed_link,
    local_time_parameters_entry,
    meter_reading_entry,
    reading_type_entry,
    usage_point_entry,
)
from gateway.resources.application_information import ApplicationInformationResource
from gateway.resources.authorization import AuthorizationResource
from gateway.resources.espi_base import EspiApi
from gateway.resources.interval_block import IntervalBlockResource, block_entry, block_parts
from gateway.resources.meter_reading import MeterReadingResource
from gateway.resources.power_quality import PowerQualityResource
from gateway.resources.usage_summary import UsageSummaryResource, summary_entry
from gateway.storage import queries
from gateway.storage.application import ApplicationInformation
from gateway.storage.authorization import Authorization
from gateway.storage.queries import CUSTODIAN_GRANT, Grant
from gateway.storage.usage import (
    ElectricPowerQualitySummary,
    EspiResourceMixin,
    LocalTimeParameters,
    MeterReading,
    ReadingType,
    UsagePoint,
    UsageSummary,
)
from gateway.web.params import FeedQuery

__all__ = [
    "ApplicationInformationRoutes",
    "AuthorizationRoutes",
    "RootCollectionResource",
    "RootIntervalBlockResource",
    "RootUsagePointResource",
    "root_collections",
]

_M = TypeVar("_M", bound=EspiResourceMixin)


def _rooted(entry: Entry, self_href: str, up_href: str, resource: str) -> Entry:
    """``entry`` with its ``self`` and ``up`` links moved to a flat root collection, its other links kept."""
    others = tuple(link for link in entry.links if link.rel not in ("self", "up"))
    links = (entry_link("self", self_href, resource), feed_link("up", up_href, resource), *others)
    return dataclasses.replace(entry, links=links)


class _Custodian:
    """What every root responder shares: the custodian-only check and the links of the root usage tree."""

    def __init__(self, api: EspiApi) -> None:
        self.api = api
        # The usage tree at the root: UsagePoint/{u}, UsagePoint/{u}/MeterReading/{m}, … (see the module docstring).
        self.tree = UsagePointLinks(api.links.resource_base_url, api.links)

    def check(self, req: falcon.Request) -> FeedQuery:
        """401 without a valid token, 403 for any kind but ``custodian``, then the FB 37 parameters (400)."""
        self.api.authenticate(req, "custodian")
        return self.api.query(req)


@dataclasses.dataclass(frozen=True, slots=True)
class RootFamily(Generic[_M]):
    """One flat root collection: its path, the ESPI resource it lists, the model, and how a row becomes an entry."""

    path: str
    """The collection's path under the resource base, e.g. ``MeterReading``."""
    resource: str
    """The ESPI resource name of its entries (link types ``espi-entry/…``, ``espi-feed/…``)."""
    model: type[_M]
    entry: Callable[[_M], Entry]
    """The entry of one row; its ``self``/``up`` links are replaced by the root's when ``rooted``."""
    rooted: bool = True
    id_field: str = "item_id"
    """The item route's id field (``MeterReading/{m}``: ``m``), named as on the customer paths."""
    where: Callable[[], Sequence[ColumnElement[bool]]] = tuple
    """Which rows the collection holds, when not every one (ApplicationInformation: third-party registrations)."""


class RootCollectionResource(_Custodian, Generic[_M]):
    """A flat root collection (``on_get``) and its entries (``on_get_item``), custodian only."""

    def __init__(self, api: EspiApi, family: RootFamily[_M]) -> None:
        super().__init__(api)
        self.family = family
        self.href = f"{api.links.resource_base_url}/{family.path}"

    def entry(self, row: _M) -> Entry:
        family = self.family
        entry = family.entry(row)
        if not family.rooted:
            return entry
        return _rooted(entry, f"{self.href}/{row.id}", self.href, family.resource)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """One page of every row, in id order (FB 37)."""
        query = self.check(req)
        family = self.family
        page = queries.root_collection(
            self.api.db(req),
            family.model,
            filters=self.api.filters(query),
            page=self.api.page(query),
            where=family.where(),
        )
        self.api.send_collection(
            req,
            resp,
            query,
            page.rows,
            self.entry,
            resource=family.resource,
            title=f"{family.path} (all)",
            total=page.total(query.offset),
        )

    def on_get_item(self, req: falcon.Request, resp: falcon.Response, **fields: int) -> None:
        """One row, whoever it belongs to (404 when there is none)."""
        self.read_item(req, resp, fields[self.family.id_field])

    def read_item(self, req: falcon.Request, resp: falcon.Response, item_id: int) -> None:
        """Send row ``item_id`` as one entry."""
        self.check(req)
        row = queries.root_item(self.api.db(req), self.family.model, item_id, where=self.family.where())
        if row is None:
            raise NotFound(f"no {self.family.path} {item_id}")
        # An Authorization's status can change without its ``updated`` moving: keep it in the ETag.
        self.api.send_entry(req, resp, self.entry(row), validator_parts=(getattr(row, "status", None),))


class RootIntervalBlockResource(_Custodian):
    """``IntervalBlock`` and ``IntervalBlock/{b}``: every block, whole, with its readings streamed."""

    def __init__(self, api: EspiApi) -> None:
        super().__init__(api)
        self.href = f"{api.links.resource_base_url}/IntervalBlock"

    def _entry(self, req: falcon.Request, block: queries.BlockView) -> Entry:
        entry = block_entry(self.api.db(req), CUSTODIAN_GRANT, block, self.tree)
        return _rooted(entry, f"{self.href}/{block.id}", self.href, "IntervalBlock")

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """One page of every IntervalBlock in id order; ``published-*`` select by interval (ESPI-NOTES §8)."""
        query = self.check(req)
        page = queries.root_blocks(self.api.db(req), filters=self.api.filters(query), page=self.api.page(query))
        self.api.send_collection(
            req,
            resp,
            query,
            page.rows,
            lambda block: self._entry(req, block),
            resource="IntervalBlock",
            title="IntervalBlock (all)",
            total=page.total(query.offset),
            parts=block_parts,
        )

    def on_get_item(self, req: falcon.Request, resp: falcon.Response, b: int) -> None:
        """One IntervalBlock with all its readings."""
        self.check(req)
        block = queries.root_block(self.api.db(req), b)
        if block is None:
            raise NotFound(f"no IntervalBlock {b}")
        self.api.send_entry(req, resp, self._entry(req, block), validator_parts=block_parts([block]))


class RootUsagePointResource(_Custodian):
    """``UsagePoint``, ``UsagePoint/{u}`` and the whole tree below it, custodian only.

    Below a usage point the family responders of the customer paths do the work, with the usage point's owner's
    whole grant (every function block, no data window, every commodity: what Download My Data exports) and the root
    tree's links.
    """

    def __init__(
        self,
        api: EspiApi,
        meter_readings: MeterReadingResource,
        interval_blocks: IntervalBlockResource,
        usage_summaries: UsageSummaryResource,
        power_quality: PowerQualityResource,
    ) -> None:
        super().__init__(api)
        self.meter_readings = meter_readings
        self.interval_blocks = interval_blocks
        self.usage_summaries = usage_summaries
        self.power_quality = power_quality

    def _grant(self, req: falcon.Request, u: int) -> Grant:
        """The whole grant of usage point ``u``'s owner (401/403 for the token, 400 for the query, 404 for ``u``)."""
        self.check(req)
        owner = queries.usage_point_owner(self.api.db(req), u)
        if owner is None:
            raise NotFound(f"no UsagePoint {u}")
        return queries.customer_export_grant(owner)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """One page of every usage point, in id order."""
        query = self.check(req)
        page = queries.root_collection(
            self.api.db(req), UsagePoint, filters=self.api.filters(query), page=self.api.page(query)
        )
        self.api.send_collection(
            req,
            resp,
            query,
            page.rows,
            lambda point: usage_point_entry(point, self.tree),
            resource="UsagePoint",
            title="UsagePoint (all)",
            total=page.total(query.offset),
        )

    def on_get_item(self, req: falcon.Request, resp: falcon.Response, u: int) -> None:
        """One usage point, whoever owns it."""
        self.check(req)
        point = queries.root_item(self.api.db(req), UsagePoint, u)
        if point is None:
            raise NotFound(f"no UsagePoint {u}")
        self.api.send_entry(req, resp, usage_point_entry(point, self.tree), validator_parts=())

    def on_get_meter_readings(self, req: falcon.Request, resp: falcon.Response, u: int) -> None:
        self.meter_readings.collection(req, resp, self._grant(req, u), self.tree, u)

    def on_get_meter_reading(self, req: falcon.Request, resp: falcon.Response, u: int, m: int) -> None:
        self.meter_readings.item(req, resp, self._grant(req, u), self.tree, u, m)

    def on_get_interval_blocks(self, req: falcon.Request, resp: falcon.Response, u: int, m: int) -> None:
        self.interval_blocks.collection(req, resp, self._grant(req, u), self.tree, u, m)

    def on_get_interval_block(self, req: falcon.Request, resp: falcon.Response, u: int, m: int, b: int) -> None:
        self.interval_blocks.item(req, resp, self._grant(req, u), self.tree, u, m, b)

    def on_get_usage_summaries(self, req: falcon.Request, resp: falcon.Response, u: int) -> None:
        self.usage_summaries.collection(req, resp, self._grant(req, u), self.tree, u)

    def on_get_usage_summary(self, req: falcon.Request, resp: falcon.Response, u: int, summary_id: int) -> None:
        self.usage_summaries.item(req, resp, self._grant(req, u), self.tree, u, summary_id)

    def on_get_power_quality_summaries(self, req: falcon.Request, resp: falcon.Response, u: int) -> None:
        self.power_quality.collection(req, resp, self._grant(req, u), self.tree, u)

    def on_get_power_quality_summary(self, req: falcon.Request, resp: falcon.Response, u: int, summary_id: int) -> None:
        self.power_quality.item(req, resp, self._grant(req, u), self.tree, u, summary_id)


class AuthorizationRoutes:
    """``Authorization`` and ``Authorization/{id}``: the custodian's root view (every Authorization, read-only),
    for any other token the third party's own (FB 41, :class:`AuthorizationResource`)."""

    def __init__(self, api: EspiApi, third_party: AuthorizationResource) -> None:
        self.api = api
        self.third_party = third_party
        self.root = RootCollectionResource(
            api, RootFamily("Authorization", "Authorization", Authorization, self._entry, rooted=False)
        )

    def _entry(self, authorization: Authorization) -> Entry:
        return authorization_entry(authorization, self.api.links)

    def _custodian(self, req: falcon.Request) -> bool:
        # Authentication only (401 for no or a bad token); the chosen responder checks the kind and the rate.
        return self.api.bearer_auth.authenticate(req).kind == "custodian"

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self._custodian(req):
            self.root.on_get(req, resp)
        else:
            self.third_party.on_get(req, resp)

    def on_get_item(self, req: falcon.Request, resp: falcon.Response, authorization_id: int) -> None:
        if self._custodian(req):
            self.root.read_item(req, resp, authorization_id)
        else:
            self.third_party.on_get_item(req, resp, authorization_id)

    def on_put_item(self, req: falcon.Request, resp: falcon.Response, authorization_id: int) -> None:
        self.third_party.on_put_item(req, resp, authorization_id)

    def on_delete_item(self, req: falcon.Request, resp: falcon.Response, authorization_id: int) -> None:
        self.third_party.on_delete_item(req, resp, authorization_id)


class ApplicationInformationRoutes:
    """``ApplicationInformation`` (custodian only) and ``ApplicationInformation/{id}``: GET by the custodian reads
    any registration; everything else is the registration token's own (RFC 7592,
    :class:`ApplicationInformationResource`)."""

    def __init__(self, api: EspiApi, registration: ApplicationInformationResource) -> None:
        self.api = api
        self.registration = registration
        endpoints = CustodianEndpoints.from_settings(api.settings)

        def entry(application: ApplicationInformation) -> Entry:
            # No secret and no registration token: written empty, as on the registration token's own GET.
            return application_information_entry(application, api.links, endpoints)

        # Third-party registrations only: the custodian's own clients (operator, upload, self-access) are no ESPI
        # ApplicationInformation (see ApplicationInformation.is_third_party); `gateway client list` shows them.
        self.root = RootCollectionResource(
            api,
            RootFamily(
                "ApplicationInformation",
                "ApplicationInformation",
                ApplicationInformation,
                entry,
                False,
                where=lambda: (ApplicationInformation.third_party_filter(),),
            ),
        )

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.root.on_get(req, resp)

    def on_get_item(self, req: falcon.Request, resp: falcon.Response, application_id: int) -> None:
        if self.api.bearer_auth.authenticate(req).kind == "custodian":
            self.root.read_item(req, resp, application_id)
        else:
            self.registration.on_get_item(req, resp, application_id)

    def on_put_item(self, req: falcon.Request, resp: falcon.Response, application_id: int) -> None:
        self.registration.on_put_item(req, resp, application_id)

    def on_delete_item(self, req: falcon.Request, resp: falcon.Response, application_id: int) -> None:
        self.registration.on_delete_item(req, resp, application_id)


def root_collections(api: EspiApi) -> dict[str, RootCollectionResource[Any]]:
    """The flat root collections by path (``MeterReading``, ``UsageSummary``, …), their entries built for the root."""
    links = api.links
    tree = UsagePointLinks(links.resource_base_url, links)
    families: list[RootFamily[Any]] = [
        RootFamily(
            "MeterReading", "MeterReading", MeterReading, lambda row: meter_reading_entry(row, tree), id_field="m"
        ),
        RootFamily(
            "ElectricPowerQualitySummary",
            "ElectricPowerQualitySummary",
            ElectricPowerQualitySummary,
            lambda row: electric_power_quality_summary_entry(row, tree),
            id_field="summary_id",
        ),
        RootFamily("ReadingType", "ReadingType", ReadingType, lambda row: reading_type_entry(row, links), False),
        RootFamily(
            "LocalTimeParameters",
            "LocalTimeParameters",
            LocalTimeParameters,
            lambda row: local_time_parameters_entry(row, links),
            False,
        ),
    ]
    # ESPI 3.3 renamed ElectricPowerUsageSummary to UsageSummary: both paths list the same rows.
    for path in ("UsageSummary", "ElectricPowerUsageSummary"):
        families.append(
            RootFamily(
                path,
                "UsageSummary",
                UsageSummary,
                lambda row: summary_entry(CUSTODIAN_GRANT, row, tree),
                id_field="summary_id",
            )
        )
    return {family.path: RootCollectionResource(api, family) for family in families}
