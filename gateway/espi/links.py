"""The ESPI REST URLs of every resource, built in one place (NAESB REQ.21 ESPI §… "REST interfaces",
ESPI-NOTES §2).

Every href in a feed (``self``, ``up``, ``related``, the Authorization's ``resourceURI``, the BatchList pushed
to a third party) comes from here, so the resource API's routes and the links it writes cannot drift apart.
Ids in URLs are the integer primary keys of the rows.

Usage data is reachable under two prefixes, both served by :class:`UsagePointLinks`:

- ``Subscription/{s}/UsagePoint/{u}/…``: what a third party reads with a customer access token (Connect My
  Data);
- ``RetailCustomer/{c}/UsagePoint/{u}/…``: the custodian's own form, used in Download My Data exports and
  uploads.

Shared reference data (``ReadingType/{id}``, ``LocalTimeParameters/{id}``) and the third-party records
(``ApplicationInformation/{id}``, ``Authorization/{id}``) and batch URLs live at the top level
(:class:`ResourceLinks`).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ResourceLinks", "UsagePointLinks"]


@dataclass(frozen=True, slots=True)
class UsagePointLinks:
    """URLs of the usage tree below one prefix: ``…/Subscription/{s}`` or ``…/RetailCustomer/{c}``.

    The collection methods (plural names) return the ``up`` link of an entry (RFC 4287 §4.2.7.2: the
    collection that holds it); the singular ones return the entry's ``self`` link.
    """

    prefix: str
    """Absolute URL of the scope, e.g. ``https://…/resource/Subscription/5``, without a trailing slash."""
    resources: ResourceLinks
    """The top-level links, for the shared ReadingType and LocalTimeParameters an entry relates to."""

    def usage_points(self) -> str:
        """``…/UsagePoint``: the collection of usage points in this scope."""
        return f"{self.prefix}/UsagePoint"

    def usage_point(self, usage_point_id: int) -> str:
        """``…/UsagePoint/{u}``."""
        return f"{self.prefix}/UsagePoint/{usage_point_id}"

    def meter_readings(self, usage_point_id: int) -> str:
        """``…/UsagePoint/{u}/MeterReading``."""
        return f"{self.prefix}/UsagePoint/{usage_point_id}/MeterReading"

    def meter_reading(self, usage_point_id: int, meter_reading_id: int) -> str:
        """``…/UsagePoint/{u}/MeterReading/{m}``."""
        return f"{self.prefix}/UsagePoint/{usage_point_id}/MeterReading/{meter_reading_id}"

    def interval_blocks(self, usage_point_id: int, meter_reading_id: int) -> str:
        """``…/UsagePoint/{u}/MeterReading/{m}/IntervalBlock``."""
        return f"{self.prefix}/UsagePoint/{usage_point_id}/MeterReading/{meter_reading_id}/IntervalBlock"

    def interval_block(self, usage_point_id: int, meter_reading_id: int, interval_block_id: int) -> str:
        """``…/UsagePoint/{u}/MeterReading/{m}/IntervalBlock/{b}``."""
        return (
            f"{self.prefix}/UsagePoint/{usage_point_id}/MeterReading/{meter_reading_id}"
            f"/IntervalBlock/{interval_block_id}"
        )

    def usage_summaries(self, usage_point_id: int) -> str:
        """``…/UsagePoint/{u}/UsageSummary`` (called ``ElectricPowerUsageSummary`` before ESPI 3.3)."""
        return f"{self.prefix}/UsagePoint/{usage_point_id}/UsageSummary"

    def usage_summary(self, usage_point_id: int, usage_summary_id: int) -> str:
        """``…/UsagePoint/{u}/UsageSummary/{id}``."""
        return f"{self.prefix}/UsagePoint/{usage_point_id}/UsageSummary/{usage_summary_id}"

    def power_quality_summaries(self, usage_point_id: int) -> str:
        """``…/UsagePoint/{u}/ElectricPowerQualitySummary``."""
        return f"{self.prefix}/UsagePoint/{usage_point_id}/ElectricPowerQualitySummary"

    def power_quality_summary(self, usage_point_id: int, summary_id: int) -> str:
        """``…/UsagePoint/{u}/ElectricPowerQualitySummary/{id}``."""
        return f"{self.prefix}/UsagePoint/{usage_point_id}/ElectricPowerQualitySummary/{summary_id}"


@dataclass(frozen=True, slots=True)
class ResourceLinks:
    """URLs of ESPI resources under the resource base ``…/DataCustodian/espi/1_1/resource``.

    Build it once from :attr:`gateway.config.Settings.resource_base_url`::

        links = ResourceLinks(settings.resource_base_url)
        links.subscription(5).interval_block(1, 2, 3)
        # https://…/resource/Subscription/5/UsagePoint/1/MeterReading/2/IntervalBlock/3
    """

    resource_base_url: str

    def __post_init__(self) -> None:
        # A trailing slash would give "resource//UsagePoint": normalise once here rather than in every method.
        object.__setattr__(self, "resource_base_url", self.resource_base_url.rstrip("/"))

    # -- usage data, by scope
    # ------------------------------------------------------------------------------------

    def subscription(self, subscription_id: int) -> UsagePointLinks:
        """The Connect My Data scope ``Subscription/{s}`` (what a customer access token reads)."""
        return UsagePointLinks(f"{self.resource_base_url}/Subscription/{subscription_id}", self)

    def retail_customer(self, customer_id: int) -> UsagePointLinks:
        """The custodian / Download My Data scope ``RetailCustomer/{c}`` (exports and uploads)."""
        return UsagePointLinks(f"{self.resource_base_url}/RetailCustomer/{customer_id}", self)

    # -- shared reference data
    # -----------------------------------------------------------------------------------

    def reading_types(self) -> str:
        """``ReadingType``: the collection of reading types."""
        return f"{self.resource_base_url}/ReadingType"

    def reading_type(self, reading_type_id: int) -> str:
        """``ReadingType/{id}``: shared by every MeterReading that measures the same thing."""
        return f"{self.resource_base_url}/ReadingType/{reading_type_id}"

    def local_time_parameters_collection(self) -> str:
        """``LocalTimeParameters``: the collection of time configurations."""
        return f"{self.resource_base_url}/LocalTimeParameters"

    def local_time_parameters(self, local_time_parameters_id: int) -> str:
        """``LocalTimeParameters/{id}``."""
        return f"{self.resource_base_url}/LocalTimeParameters/{local_time_parameters_id}"

    # -- third-party records
    # -------------------------------------------------------------------------------------

    def application_informations(self) -> str:
        """``ApplicationInformation``: the collection (custodian only)."""
        return f"{self.resource_base_url}/ApplicationInformation"

    def application_information(self, application_id: int) -> str:
        """``ApplicationInformation/{id}``: also the RFC 7592 ``registration_client_uri``."""
        return f"{self.resource_base_url}/ApplicationInformation/{application_id}"

    def authorizations(self) -> str:
        """``Authorization``: a third party's authorizations (client access token)."""
        return f"{self.resource_base_url}/Authorization"

    def authorization(self, authorization_id: int) -> str:
        """``Authorization/{id}``: the token response's ``authorizationURI`` (ESPI-NOTES §4)."""
        return f"{self.resource_base_url}/Authorization/{authorization_id}"

    # -- batch and service status
    # --------------------------------------------------------------------------------

    def batch_subscription(self, subscription_id: int) -> str:
        """``Batch/Subscription/{s}``: everything a consent covers; the token response's ``resourceURI``."""
        return f"{self.resource_base_url}/Batch/Subscription/{subscription_id}"

    def batch_subscription_usage_point(self, subscription_id: int, usage_point_id: int | None = None) -> str:
        """``Batch/Subscription/{s}/UsagePoint[/{u}]``."""
        base = f"{self.resource_base_url}/Batch/Subscription/{subscription_id}/UsagePoint"
        return base if usage_point_id is None else f"{base}/{usage_point_id}"

    def batch_bulk_collection(self) -> str:
        """``Batch/Bulk``: the prefix of bulk requests (``dataCustodianBulkRequestURI``)."""
        return f"{self.resource_base_url}/Batch/Bulk"

    def batch_bulk(self, bulk_id: int | str) -> str:
        """``Batch/Bulk/{bulkId}``: all subscriptions whose scope carries ``BR={bulkId}``."""
        return f"{self.resource_base_url}/Batch/Bulk/{bulk_id}"

    def batch_retail_customer(self, customer_id: int) -> str:
        """``Batch/RetailCustomer/{c}/UsagePoint``: the Download My Data export (GET) and upload (POST)."""
        return f"{self.resource_base_url}/Batch/RetailCustomer/{customer_id}/UsagePoint"

    def read_service_status(self) -> str:
        """``ReadServiceStatus``: the bare ``ServiceStatus`` document."""
        return f"{self.resource_base_url}/ReadServiceStatus"
