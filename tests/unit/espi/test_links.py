"""ESPI REST hrefs (ESPI-NOTES §2): every resource's URL form, under both usage scopes."""

from __future__ import annotations

import pytest

from gateway.espi.links import ResourceLinks

BASE = "https://utility.example.com/DataCustodian/espi/1_1/resource"
LINKS = ResourceLinks(BASE)


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        (LINKS.subscription(5).usage_points(), "Subscription/5/UsagePoint"),
        (LINKS.subscription(5).usage_point(1), "Subscription/5/UsagePoint/1"),
        (LINKS.subscription(5).meter_readings(1), "Subscription/5/UsagePoint/1/MeterReading"),
        (LINKS.subscription(5).meter_reading(1, 2), "Subscription/5/UsagePoint/1/MeterReading/2"),
        (
            LINKS.subscription(5).interval_blocks(1, 2),
            "Subscription/5/UsagePoint/1/MeterReading/2/IntervalBlock",
        ),
        (
            LINKS.subscription(5).interval_block(1, 2, 3),
            "Subscription/5/UsagePoint/1/MeterReading/2/IntervalBlock/3",
        ),
        (LINKS.subscription(5).usage_summaries(1), "Subscription/5/UsagePoint/1/UsageSummary"),
        (LINKS.subscription(5).usage_summary(1, 4), "Subscription/5/UsagePoint/1/UsageSummary/4"),
        (
            LINKS.subscription(5).power_quality_summaries(1),
            "Subscription/5/UsagePoint/1/ElectricPowerQualitySummary",
        ),
        (
            LINKS.subscription(5).power_quality_summary(1, 6),
            "Subscription/5/UsagePoint/1/ElectricPowerQualitySummary/6",
        ),
        (LINKS.retail_customer(9).usage_point(1), "RetailCustomer/9/UsagePoint/1"),
        (
            LINKS.retail_customer(9).interval_block(1, 2, 3),
            "RetailCustomer/9/UsagePoint/1/MeterReading/2/IntervalBlock/3",
        ),
        (LINKS.reading_types(), "ReadingType"),
        (LINKS.reading_type(8), "ReadingType/8"),
        (LINKS.local_time_parameters_collection(), "LocalTimeParameters"),
        (LINKS.local_time_parameters(2), "LocalTimeParameters/2"),
        (LINKS.application_informations(), "ApplicationInformation"),
        (LINKS.application_information(7), "ApplicationInformation/7"),
        (LINKS.authorizations(), "Authorization"),
        (LINKS.authorization(11), "Authorization/11"),
        (LINKS.batch_subscription(5), "Batch/Subscription/5"),
        (LINKS.batch_subscription_usage_point(5), "Batch/Subscription/5/UsagePoint"),
        (LINKS.batch_subscription_usage_point(5, 1), "Batch/Subscription/5/UsagePoint/1"),
        (LINKS.batch_bulk_collection(), "Batch/Bulk"),
        (LINKS.batch_bulk(3), "Batch/Bulk/3"),
        (LINKS.batch_retail_customer(9), "Batch/RetailCustomer/9/UsagePoint"),
        (LINKS.read_service_status(), "ReadServiceStatus"),
    ],
)
def test_resource_href(href: str, expected: str) -> None:
    assert href == f"{BASE}/{expected}"


def test_trailing_slash_of_the_base_is_ignored() -> None:
    assert ResourceLinks(BASE + "/").reading_type(1) == f"{BASE}/ReadingType/1"


def test_a_scope_reaches_the_shared_links() -> None:
    assert LINKS.subscription(5).resources.reading_type(1) == f"{BASE}/ReadingType/1"


def test_links_are_immutable() -> None:
    with pytest.raises(AttributeError):
        LINKS.resource_base_url = "https://evil.example"  # type: ignore[misc]
