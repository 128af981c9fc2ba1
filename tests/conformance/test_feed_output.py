"""Everything the feed writer produces is valid against the official ESPI 4.0 and 3.3 schemas and against
ours.

Documents: a full usage feed with every resource type (all optional fields set), a feed with only the required
fields, each resource as a single-entry document, ApplicationInformation and Authorization entries and a feed
of Authorizations, ServiceStatus, BatchList, and an empty paged feed. The official schemas are reference
material outside the project (``../shared/espi``): those checks skip, saying where they looked, when it is
absent.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from lxml import etree

from gateway.espi.feeds import usage_feed
from gateway.espi.writer import (
    CustodianEndpoints,
    Entry,
    application_information_entry,
    authorization_entry,
    batch_list_document,
    electric_power_quality_summary_entry,
    entry_document,
    feed,
    feed_link,
    interval_block_entry,
    local_time_parameters_entry,
    meter_reading_entry,
    reading_type_entry,
    service_status_document,
    usage_point_entry,
    usage_summary_entry,
)
from gateway.storage.models import IntervalBlock, MeterReading
from tests.unit.espi import factories as f

SCOPE = f.LINKS.subscription(5)
ENDPOINTS = CustodianEndpoints(
    data_custodian_id="Example Electric & Gas",
    authorization_server_uri="https://utility.example.com",
    authorization_endpoint="https://utility.example.com/oauth/authorize",
    token_endpoint="https://utility.example.com/oauth/token",
    bulk_request_uri=f"{f.BASE}/Batch/Bulk",
    resource_endpoint=f.BASE,
    registration_endpoint="https://utility.example.com/register",
)


def _full_feed() -> bytes:
    usage_point, readings = f.usage_tree()
    return b"".join(
        usage_feed(
            [usage_point, f.minimal_usage_point()],
            SCOPE,
            feed_id=uuid.UUID(int=1),
            title="Subscription <5> & more",
            updated=f.UPDATED,
            self_link=feed_link("self", f.LINKS.batch_subscription(5), "Subscription"),
            readings_for=lambda block: readings[block.id],
            certification_url="https://cert.greenbuttonalliance.org/certificate/0000",
        )
    )


def _entry(build: Callable[[], Entry]) -> Callable[[], bytes]:
    return lambda: b"".join(entry_document(build()))


def _block() -> Entry:
    block = IntervalBlock(**f.meta("IntervalBlock", 3), meter_reading_id=2, start=f.DAY_START, duration=86400)
    return interval_block_entry(block, f.reading_rows(), SCOPE, usage_point_id=1)


def _authorization_feed() -> bytes:
    entries = [
        authorization_entry(f.customer_authorization(), f.LINKS),
        authorization_entry(f.client_authorization(), f.LINKS),
    ]
    return b"".join(
        feed(
            entries,
            feed_id=uuid.UUID(int=2),
            title="Authorizations",
            updated=f.UPDATED,
            self_link=feed_link("self", f.LINKS.authorizations(), "Authorization"),
        )
    )


def _paged_empty_feed() -> bytes:
    return b"".join(
        feed(
            [],
            feed_id=uuid.UUID(int=3),
            title="IntervalBlocks",
            updated=f.UPDATED,
            self_link=feed_link(
                "self", SCOPE.interval_blocks(1, 2) + "?start-index=21&max-results=10", "IntervalBlock"
            ),
            links=[
                feed_link(
                    "previous",
                    SCOPE.interval_blocks(1, 2) + "?start-index=11&max-results=10",
                    "IntervalBlock",
                )
            ],
        )
    )


DOCUMENTS: dict[str, Callable[[], bytes]] = {
    "full_usage_feed": _full_feed,
    "usage_point_entry": _entry(lambda: usage_point_entry(f.full_usage_point(), SCOPE)),
    "minimal_usage_point_entry": _entry(lambda: usage_point_entry(f.minimal_usage_point(), SCOPE)),
    "meter_reading_entry": _entry(
        lambda: meter_reading_entry(
            MeterReading(**f.meta("MeterReading", 2), usage_point_id=1, reading_type_id=1), SCOPE
        )
    ),
    "reading_type_entry": _entry(lambda: reading_type_entry(f.full_reading_type(), f.LINKS)),
    "interval_block_entry": _entry(_block),
    "usage_summary_entry": _entry(lambda: usage_summary_entry(f.full_usage_summary(), SCOPE)),
    "power_quality_summary_entry": _entry(
        lambda: electric_power_quality_summary_entry(f.full_power_quality_summary(), SCOPE)
    ),
    "local_time_parameters_entry": _entry(lambda: local_time_parameters_entry(f.local_time_parameters(), f.LINKS)),
    "application_information_entry": _entry(
        lambda: application_information_entry(
            f.application(), f.LINKS, ENDPOINTS, client_secret="s3cr3t", registration_access_token="opaque"
        )
    ),
    "application_information_entry_without_secrets": _entry(
        lambda: application_information_entry(f.application(), f.LINKS, ENDPOINTS)
    ),
    "customer_authorization_entry": _entry(lambda: authorization_entry(f.customer_authorization(), f.LINKS)),
    "client_authorization_entry": _entry(lambda: authorization_entry(f.client_authorization(), f.LINKS)),
    "authorization_feed": _authorization_feed,
    "paged_empty_feed": _paged_empty_feed,
    "service_status": service_status_document,
    "service_status_unavailable": lambda: service_status_document(0),
    "batch_list": lambda: batch_list_document([f.LINKS.batch_subscription(5), f.LINKS.batch_bulk(3)]),
    "batch_list_empty": lambda: batch_list_document([]),
}


def _validate(version: str, name: str) -> None:
    from gateway.espi.schemas import load_schema

    schema = load_schema(version)
    document = etree.fromstring(DOCUMENTS[name](), etree.XMLParser(no_network=True, resolve_entities=False))
    if not schema.validate(document):
        errors = "\n".join(f"line {e.line}: {e.message}" for e in schema.error_log)
        pytest.fail(f"{name} is invalid against ESPI {version}:\n{errors}")


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
@pytest.mark.parametrize("version", ["4.0", "3.3"])
def test_writer_output_is_valid_against_the_official_schema(version: str, name: str, shared_espi: Path) -> None:
    _validate(version, name)


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_writer_output_is_valid_against_our_schema(name: str) -> None:
    pytest.importorskip("gateway.espi.schemas", reason="our schema registry (gateway.espi.schemas) is not there yet")
    _validate("ours", name)
