"""The ESPI resource API's URL table (ESPI-NOTES §2), mounted by :func:`gateway.routes.add_routes`.

Paths are relative to the resource base ``/DataCustodian/espi/1_1/resource``; ids are the integer primary keys
(``{s:int}``: anything else is 404 before any lookup).
"""

from __future__ import annotations

import falcon

from gateway.resources.application_information import ApplicationInformationResource
from gateway.resources.authorization import AuthorizationResource
from gateway.resources.background_access import BackgroundSubscriptionsResource, BackgroundTokensResource
from gateway.resources.batch import BatchSubscriptionResource
from gateway.resources.bulk import BulkResource
from gateway.resources.espi_base import EspiApi, ReadsMiddleware
from gateway.resources.interval_block import IntervalBlockResource
from gateway.resources.meter_reading import MeterReadingResource
from gateway.resources.power_quality import PowerQualityResource
from gateway.resources.reference_data import LocalTimeParametersResource, ReadingTypeResource
from gateway.resources.retail_customer import RetailCustomerBatchResource, RetailCustomerUsagePointResource
from gateway.resources.root_collections import (
    ApplicationInformationRoutes,
    AuthorizationRoutes,
    RootIntervalBlockResource,
    RootUsagePointResource,
    root_collections,
)
from gateway.resources.service_status import ReadServiceStatusResource
from gateway.resources.usage_point import UsagePointResource
from gateway.resources.usage_summary import UsageSummaryResource
from gateway.services import Services
from gateway.web.auth import BearerAuth
from gateway.web.rate_limit import RateLimiter, sessions_bind

__all__ = ["RESOURCE_BASE", "add_espi_routes"]

RESOURCE_BASE = "/DataCustodian/espi/1_1/resource"


def add_espi_routes(
    app: falcon.App[falcon.Request, falcon.Response],
    services: Services,
    *,
    bearer_auth: BearerAuth | None = None,
    limiter: RateLimiter | None = None,
) -> EspiApi:
    """Mount the ESPI resources; return their shared collaborators (tests and later families use it).

    Rate limits come from ``settings.rate_limit_per_second`` and ``settings.rate_limit_burst``, per OAuth client
    across every worker and node (buckets in the database: :mod:`gateway.web.rate_limit`).
    """
    settings = services.settings
    bearer_auth = bearer_auth or BearerAuth(services.digester, services.engine)
    limiter = limiter or RateLimiter(
        settings.rate_limit_per_second, settings.rate_limit_burst, bind=sessions_bind(services.sessions), name="espi"
    )
    api = EspiApi.build(settings, bearer_auth, limiter, engine=services.engine)
    app.add_middleware([ReadsMiddleware()])
    base = RESOURCE_BASE

    batch = BatchSubscriptionResource(api)
    app.add_route(f"{base}/Batch/Subscription/{{s:int}}", batch)
    app.add_route(f"{base}/Batch/Subscription/{{s:int}}/UsagePoint", batch, suffix="usage_points")
    app.add_route(f"{base}/Batch/Subscription/{{s:int}}/UsagePoint/{{u:int}}", batch, suffix="usage_point")

    point = f"{base}/Subscription/{{s:int}}/UsagePoint"
    usage_points = UsagePointResource(api)
    app.add_route(point, usage_points)
    app.add_route(f"{point}/{{u:int}}", usage_points, suffix="item")

    meter_readings = MeterReadingResource(api)
    app.add_route(f"{point}/{{u:int}}/MeterReading", meter_readings)
    app.add_route(f"{point}/{{u:int}}/MeterReading/{{m:int}}", meter_readings, suffix="item")

    interval_blocks = IntervalBlockResource(api)
    app.add_route(f"{point}/{{u:int}}/MeterReading/{{m:int}}/IntervalBlock", interval_blocks)
    app.add_route(f"{point}/{{u:int}}/MeterReading/{{m:int}}/IntervalBlock/{{b:int}}", interval_blocks, suffix="item")

    summaries = UsageSummaryResource(api)
    for name in ("UsageSummary", "ElectricPowerUsageSummary"):
        app.add_route(f"{point}/{{u:int}}/{name}", summaries)
        app.add_route(f"{point}/{{u:int}}/{name}/{{summary_id:int}}", summaries, suffix="item")

    quality = PowerQualityResource(api)
    app.add_route(f"{point}/{{u:int}}/ElectricPowerQualitySummary", quality)
    app.add_route(f"{point}/{{u:int}}/ElectricPowerQualitySummary/{{summary_id:int}}", quality, suffix="item")

    app.add_route(f"{base}/ReadingType/{{reading_type_id:int}}", ReadingTypeResource(api), suffix="item")
    app.add_route(
        f"{base}/LocalTimeParameters/{{local_time_parameters_id:int}}",
        LocalTimeParametersResource(api),
        suffix="item",
    )

    # GET by the custodian's token reads every record (root collections); any other token its own.
    authorizations = AuthorizationRoutes(api, AuthorizationResource(api))
    app.add_route(f"{base}/Authorization", authorizations)
    app.add_route(f"{base}/Authorization/{{authorization_id:int}}", authorizations, suffix="item")
    applications = ApplicationInformationRoutes(api, ApplicationInformationResource(api))
    app.add_route(f"{base}/ApplicationInformation/{{application_id:int}}", applications, suffix="item")

    # Root collections, for the custodian's token only (see gateway.resources.root_collections).
    app.add_route(f"{base}/ApplicationInformation", applications)
    root_points = RootUsagePointResource(api, meter_readings, interval_blocks, summaries, quality)
    _add_usage_tree(app, f"{base}/UsagePoint", root_points)
    root_blocks = RootIntervalBlockResource(api)
    app.add_route(f"{base}/IntervalBlock", root_blocks)
    app.add_route(f"{base}/IntervalBlock/{{b:int}}", root_blocks, suffix="item")
    for path, collection in root_collections(api).items():
        app.add_route(f"{base}/{path}", collection)
        if path not in ("ReadingType", "LocalTimeParameters"):  # their items are the reference-data resources
            app.add_route(f"{base}/{path}/{{{collection.family.id_field}:int}}", collection, suffix="item")
    app.add_route(f"{base}/ReadServiceStatus", ReadServiceStatusResource(api))
    app.add_route(f"{base}/Batch/Bulk/{{bulk_id}}", BulkResource(api))
    app.add_route(f"{base}/Batch/RetailCustomer/{{c:int}}/UsagePoint", RetailCustomerBatchResource(api))
    # Where the export's links lead: the customer's usage tree, for the export's tokens.
    customer_points = RetailCustomerUsagePointResource(api, meter_readings, interval_blocks, summaries, quality)
    _add_usage_tree(app, f"{base}/RetailCustomer/{{c:int}}/UsagePoint", customer_points)
    # Background access (a token management service for multi-tenant apps): OAuth-side paths.
    app.add_route("/oauth/background/subscriptions", BackgroundSubscriptionsResource(api))
    app.add_route("/oauth/background/tokens", BackgroundTokensResource(api, services.digester))
    return api


def _add_usage_tree(app: falcon.App[falcon.Request, falcon.Response], point: str, resource: object) -> None:
    """Mount ``point`` (a UsagePoint collection), ``point/{u}`` and the usage tree below it on ``resource``'s
    suffixed responders (``on_get_meter_readings``, ``on_get_interval_block``, …: the custodian's root tree and a
    customer's Download My Data tree share them)."""
    app.add_route(point, resource)
    app.add_route(f"{point}/{{u:int}}", resource, suffix="item")
    app.add_route(f"{point}/{{u:int}}/MeterReading", resource, suffix="meter_readings")
    app.add_route(f"{point}/{{u:int}}/MeterReading/{{m:int}}", resource, suffix="meter_reading")
    app.add_route(f"{point}/{{u:int}}/MeterReading/{{m:int}}/IntervalBlock", resource, suffix="interval_blocks")
    app.add_route(
        f"{point}/{{u:int}}/MeterReading/{{m:int}}/IntervalBlock/{{b:int}}", resource, suffix="interval_block"
    )
    for name in ("UsageSummary", "ElectricPowerUsageSummary"):
        app.add_route(f"{point}/{{u:int}}/{name}", resource, suffix="usage_summaries")
        app.add_route(f"{point}/{{u:int}}/{name}/{{summary_id:int}}", resource, suffix="usage_summary")
    app.add_route(f"{point}/{{u:int}}/ElectricPowerQualitySummary", resource, suffix="power_quality_summaries")
    app.add_route(
        f"{point}/{{u:int}}/ElectricPowerQualitySummary/{{summary_id:int}}", resource, suffix="power_quality_summary"
    )
