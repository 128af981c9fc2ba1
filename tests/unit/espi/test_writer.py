"""The streaming Atom writer: each ESPI resource's serialization, the feed envelope, and streaming behaviour.

Element order is checked against the ESPI 4.0 schema's sequences (``espi.xsd`` 4.0.20231213), written out here
so a reordering in the writer fails a test even where no schema is at hand; the conformance tests validate the
same documents against the schemas themselves.
"""

from __future__ import annotations

import datetime as dt
import inspect
import re
import uuid
from collections.abc import Iterator

import pytest
from lxml import etree

from gateway.espi import writer
from gateway.espi.feeds import usage_entries, usage_feed
from gateway.espi.namespaces import ATOM, ESPI
from gateway.espi.writer import (
    CustodianEndpoints,
    Entry,
    Link,
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
from gateway.storage.ids import urn
from gateway.storage.models import IntervalBlock
from tests.unit.espi import factories as f

SCOPE = f.LINKS.retail_customer(7)
ENDPOINTS = CustodianEndpoints(
    data_custodian_id="Example Electric",
    authorization_server_uri="https://utility.example.com",
    authorization_endpoint="https://utility.example.com/oauth/authorize",
    token_endpoint="https://utility.example.com/oauth/token",
    bulk_request_uri=f"{f.BASE}/Batch/Bulk",
    resource_endpoint=f.BASE,
)
A = f"{{{ATOM}}}"
E = f"{{{ESPI}}}"
ATOM_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def write_entry(entry: Entry) -> etree._Element:
    return etree.fromstring(b"".join(entry_document(entry)))


def resource_of(entry_element: etree._Element) -> etree._Element:
    content = entry_element.find(f"{A}content")
    assert content is not None
    (resource,) = list(content)
    return resource


def names(element: etree._Element) -> list[str]:
    return [etree.QName(child).localname for child in element]


def whole_feed() -> bytes:
    usage_point, readings = f.usage_tree()
    return b"".join(
        usage_feed(
            [usage_point],
            SCOPE,
            feed_id=uuid.UUID(int=1),
            title="Alice's <home> & garden",
            updated=f.UPDATED,
            self_link=feed_link("self", f.LINKS.batch_retail_customer(7), "UsagePoint"),
            readings_for=lambda block: readings[block.id],
            certification_url="https://cert.greenbuttonalliance.org/certificate/0000",
        )
    )


# -- UsagePoint
# ------------------------------------------------------------------------------------------------


def test_usage_point_children_follow_the_espi_4_0_sequence() -> None:
    resource = resource_of(write_entry(usage_point_entry(f.full_usage_point(), SCOPE)))
    assert names(resource) == [
        "roleFlags",
        "ServiceCategory",
        "status",
        "serviceDeliveryPoint",
        "amiBillingReady",
        "checkBilling",
        "connectionState",
        "estimatedLoad",
        "grounded",
        "isSdp",
        "isVirtual",
        "minimalUsageExpected",
        "nominalServiceVoltage",
        "outageRegion",
        "phaseCode",
        "ratedCurrent",
        "ratedPower",
        "readCycle",
        "readRoute",
        "serviceDeliveryRemark",
        "servicePriority",
    ]


def test_usage_point_writes_espi_lexical_forms() -> None:
    resource = resource_of(write_entry(usage_point_entry(f.full_usage_point(), SCOPE)))
    assert resource.findtext(f"{E}amiBillingReady") == "operable"
    assert resource.findtext(f"{E}connectionState") == "connected"
    assert resource.findtext(f"{E}checkBilling") == "true"
    assert resource.findtext(f"{E}isVirtual") == "false"
    assert resource.findtext(f"{E}ServiceCategory/{E}kind") == "0"
    assert names(resource.find(f"{E}serviceDeliveryPoint")) == [
        "name",
        "tariffProfile",
        "customerAgreement",
        "tariffRiderRefs",
    ]
    assert names(resource.find(f"{E}estimatedLoad")) == [
        "powerOfTenMultiplier",
        "timeStamp",
        "uom",
        "value",
        "readingTypeRef",
    ]


def test_usage_point_with_null_columns_omits_optional_elements() -> None:
    resource = resource_of(write_entry(usage_point_entry(f.minimal_usage_point(), SCOPE)))
    assert names(resource) == ["ServiceCategory"]


def test_usage_point_links_relate_to_its_collections_and_local_time_parameters() -> None:
    entry = usage_point_entry(f.full_usage_point(), SCOPE)
    assert [(link.rel, link.type, link.href) for link in entry.links] == [
        ("self", "espi-entry/UsagePoint", f"{f.BASE}/RetailCustomer/7/UsagePoint/1"),
        ("up", "espi-feed/UsagePoint", f"{f.BASE}/RetailCustomer/7/UsagePoint"),
        ("related", "espi-feed/MeterReading", f"{f.BASE}/RetailCustomer/7/UsagePoint/1/MeterReading"),
        ("related", "espi-feed/UsageSummary", f"{f.BASE}/RetailCustomer/7/UsagePoint/1/UsageSummary"),
        (
            "related",
            "espi-feed/ElectricPowerQualitySummary",
            f"{f.BASE}/RetailCustomer/7/UsagePoint/1/ElectricPowerQualitySummary",
        ),
        ("related", "espi-entry/LocalTimeParameters", f"{f.BASE}/LocalTimeParameters/1"),
    ]


def test_unknown_enumeration_codes_are_omitted_rather_than_invalid() -> None:
    usage_point = f.full_usage_point()
    usage_point.ami_billing_ready = 99
    resource = resource_of(write_entry(usage_point_entry(usage_point, SCOPE)))
    assert resource.find(f"{E}amiBillingReady") is None


# -- MeterReading and ReadingType
# ------------------------------------------------------------------------------


def test_meter_reading_is_empty_and_relates_to_one_reading_type_entry() -> None:
    usage_point, _ = f.usage_tree()
    entry = meter_reading_entry(usage_point.meter_readings[0], SCOPE)
    resource = resource_of(write_entry(entry))
    assert etree.QName(resource).localname == "MeterReading"
    assert len(resource) == 0
    related = [(link.type, link.href) for link in entry.links if link.rel == "related"]
    assert related == [
        ("espi-feed/IntervalBlock", f"{f.BASE}/RetailCustomer/7/UsagePoint/1/MeterReading/1/IntervalBlock"),
        ("espi-entry/ReadingType", f"{f.BASE}/ReadingType/1"),
    ]


def test_reading_type_children_follow_the_espi_4_0_sequence() -> None:
    resource = resource_of(write_entry(reading_type_entry(f.full_reading_type(), f.LINKS)))
    assert names(resource) == [
        "accumulationBehaviour",
        "commodity",
        "consumptionTier",
        "currency",
        "dataQualifier",
        "defaultQuality",
        "flowDirection",
        "intervalLength",
        "kind",
        "phase",
        "powerOfTenMultiplier",
        "timeAttribute",
        "tou",
        "uom",
        "cpp",
        "interharmonic",
        "measuringPeriod",
        "argument",
    ]
    assert names(resource.find(f"{E}argument")) == ["numerator", "denominator"]


# -- IntervalBlock
# ---------------------------------------------------------------------------------------------


def block_resource(rows: list[writer.ReadingRow]) -> etree._Element:
    block = IntervalBlock(**f.meta("IntervalBlock", 3), meter_reading_id=2, start=rows[0][0], duration=86400)
    return resource_of(write_entry(interval_block_entry(block, rows, SCOPE, usage_point_id=1)))


def test_interval_block_starts_with_its_interval_then_readings_in_order() -> None:
    rows = f.reading_rows()
    resource = block_resource(rows)
    assert names(resource) == ["interval"] + ["IntervalReading"] * 96
    assert resource.findtext(f"{E}interval/{E}start") == str(f.DAY_START)
    starts = [int(r.findtext(f"{E}timePeriod/{E}start")) for r in resource.iter(f"{E}IntervalReading")]
    assert starts == [row[0] for row in rows]


def test_interval_reading_with_every_field_follows_the_espi_4_0_sequence() -> None:
    reading = block_resource(f.reading_rows()).findall(f"{E}IntervalReading")[1]
    assert names(reading) == [
        "cost",
        "ReadingQuality",
        "ReadingQuality",
        "timePeriod",
        "value",
        "consumptionTier",
        "tou",
        "cpp",
    ]
    assert [q.findtext(f"{E}quality") for q in reading.findall(f"{E}ReadingQuality")] == ["8", "9"]


def test_interval_reading_without_value_or_cost_omits_them() -> None:
    reading = block_resource(f.reading_rows()).findall(f"{E}IntervalReading")[2]
    assert names(reading) == ["ReadingQuality", "timePeriod"]


def test_interval_reading_cost_is_written_as_stored_in_hundred_thousandths() -> None:
    reading = block_resource(f.reading_rows()).findall(f"{E}IntervalReading")[0]
    assert names(reading) == ["cost", "timePeriod", "value"]
    assert (reading.findtext(f"{E}cost"), reading.findtext(f"{E}value")) == ("10000", "250")


def test_interval_block_links_use_the_subscription_form() -> None:
    block = IntervalBlock(**f.meta("IntervalBlock", 3), meter_reading_id=2, start=0, duration=900)
    entry = interval_block_entry(block, [], f.LINKS.subscription(5), usage_point_id=1)
    assert [link.href for link in entry.links] == [
        f"{f.BASE}/Subscription/5/UsagePoint/1/MeterReading/2/IntervalBlock/3",
        f"{f.BASE}/Subscription/5/UsagePoint/1/MeterReading/2/IntervalBlock",
    ]


# -- UsageSummary, ElectricPowerQualitySummary, LocalTimeParameters
# --------------------------------------------


def test_usage_summary_children_follow_the_espi_4_0_sequence() -> None:
    resource = resource_of(write_entry(usage_summary_entry(f.full_usage_summary(), SCOPE)))
    assert etree.QName(resource).localname == "UsageSummary"
    assert names(resource) == [
        "billingPeriod",
        "billLastPeriod",
        "billToDate",
        "costAdditionalLastPeriod",
        "costAdditionalDetailLastPeriod",
        "costAdditionalDetailLastPeriod",
        "currency",
        "overallConsumptionLastPeriod",
        "currentBillingPeriodOverAllConsumption",
        "currentDayLastYearNetConsumption",
        "currentDayNetConsumption",
        "currentDayOverallConsumption",
        "peakDemand",
        "previousDayLastYearOverallConsumption",
        "previousDayNetConsumption",
        "previousDayOverallConsumption",
        "qualityOfReading",
        "ratchetDemand",
        "ratchetDemandPeriod",
        "statusTimeStamp",
        "commodity",
        "tariffProfile",
        "readCycle",
        "tariffRiderRefs",
        "billingChargeSource",
    ]


def test_usage_summary_line_items_follow_the_espi_4_0_sequence() -> None:
    resource = resource_of(write_entry(usage_summary_entry(f.full_usage_summary(), SCOPE)))
    full, minimal = resource.findall(f"{E}costAdditionalDetailLastPeriod")
    assert names(full) == [
        "amount",
        "rounding",
        "dateTime",
        "note",
        "measurement",
        "itemKind",
        "unitCost",
        "itemPeriod",
    ]
    assert names(minimal) == ["amount", "note", "itemKind"]
    assert full.findtext(f"{E}note") == "Base charge <monthly> & fees"


def test_electric_power_quality_summary_children_follow_the_espi_4_0_sequence() -> None:
    resource = resource_of(write_entry(electric_power_quality_summary_entry(f.full_power_quality_summary(), SCOPE)))
    assert names(resource) == [
        "flickerPlt",
        "flickerPst",
        "harmonicVoltage",
        "longInterruptions",
        "mainsVoltage",
        "measurementProtocol",
        "powerFrequency",
        "rapidVoltageChanges",
        "shortInterruptions",
        "summaryInterval",
        "supplyVoltageDips",
        "supplyVoltageImbalance",
        "supplyVoltageVariations",
        "tempOvervoltage",
    ]


def test_local_time_parameters_follow_the_schema_order_with_upper_case_rules() -> None:
    resource = resource_of(write_entry(local_time_parameters_entry(f.local_time_parameters(), f.LINKS)))
    assert [(etree.QName(c).localname, c.text) for c in resource] == [
        ("dstEndRule", "B40E2000"),
        ("dstOffset", "3600"),
        ("dstStartRule", "360E2000"),
        ("tzOffset", "-28800"),
    ]


# -- ApplicationInformation and Authorization
# ------------------------------------------------------------------


def test_application_information_children_follow_the_espi_4_0_sequence() -> None:
    entry = application_information_entry(f.application(), f.LINKS, ENDPOINTS, client_secret="s3cr3t")
    resource = resource_of(write_entry(entry))
    assert names(resource) == [
        "dataCustodianId",
        "dataCustodianApplicationStatus",
        "thirdPartyApplicationDescription",
        "thirdPartyApplicationStatus",
        "thirdPartyApplicationType",
        "thirdPartyApplicationUse",
        "thirdPartyPhone",
        "authorizationServerUri",
        "thirdPartyNotifyUri",
        "authorizationServerAuthorizationEndpoint",
        "authorizationServerTokenEndpoint",
        "dataCustodianBulkRequestURI",
        "dataCustodianResourceEndpoint",
        "client_secret",
        "logo_uri",
        "client_name",
        "client_uri",
        "redirect_uri",
        "redirect_uri",
        "client_id",
        "tos_uri",
        "policy_uri",
        "software_id",
        "software_version",
        "client_id_issued_at",
        "client_secret_expires_at",
        "contacts",
        "token_endpoint_auth_method",
        "scope",
        "grant_types",
        "grant_types",
        "grant_types",
        "response_types",
        "registration_client_uri",
        "registration_access_token",
    ]
    assert resource.findtext(f"{E}client_secret") == "s3cr3t"
    assert resource.findtext(f"{E}registration_client_uri") == f"{f.BASE}/ApplicationInformation/7"


def test_application_information_leaves_out_grants_espi_does_not_know() -> None:
    resource = resource_of(write_entry(application_information_entry(f.application(), f.LINKS, ENDPOINTS)))
    grants = [g.text for g in resource.findall(f"{E}grant_types")]
    assert grants == ["authorization_code", "refresh_token", "client_credentials"]


def test_application_information_never_writes_a_stored_secret_digest() -> None:
    data = b"".join(entry_document(application_information_entry(f.application(), f.LINKS, ENDPOINTS)))
    assert b"00" * 32 not in data
    assert resource_of(etree.fromstring(data)).findtext(f"{E}client_secret") == ""  # required, written empty


def test_authorization_children_follow_the_espi_4_0_sequence() -> None:
    resource = resource_of(write_entry(authorization_entry(f.customer_authorization(), f.LINKS)))
    assert names(resource) == [
        "authorizedPeriod",
        "publishedPeriod",
        "status",
        "expires_at",
        "grant_type",
        "scope",
        "token_type",
        "error",
        "error_description",
        "error_uri",
        "resourceURI",
        "authorizationURI",
    ]
    assert resource.findtext(f"{E}resourceURI") == f"{f.BASE}/Batch/Subscription/5"
    assert resource.findtext(f"{E}authorizationURI") == f"{f.BASE}/Authorization/9"


def test_authorization_omits_grant_types_and_errors_outside_the_espi_code_lists() -> None:
    resource = resource_of(write_entry(authorization_entry(f.client_authorization(), f.LINKS)))
    assert names(resource) == [
        "status",
        "expires_at",
        "scope",
        "token_type",
        "resourceURI",
        "authorizationURI",
    ]


# -- Atom entry metadata
# ---------------------------------------------------------------------------------------


def test_entry_id_is_the_upper_case_urn_of_the_row_uuid() -> None:
    usage_point = f.full_usage_point()
    element = write_entry(usage_point_entry(usage_point, SCOPE))
    assert element.findtext(f"{A}id") == urn(usage_point.uuid)
    assert element.findtext(f"{A}id").startswith("urn:uuid:")


def test_entry_times_are_utc_seconds_with_z() -> None:
    usage_point = f.full_usage_point()
    usage_point.updated = dt.datetime(2025, 6, 1, 1, 2, 3, 456, tzinfo=dt.timezone(dt.timedelta(hours=-7)))
    element = write_entry(usage_point_entry(usage_point, SCOPE))
    assert element.findtext(f"{A}published") == "2025-01-01T08:00:00Z"
    assert element.findtext(f"{A}updated") == "2025-06-01T08:02:03Z"


def test_entry_title_is_the_escaped_description() -> None:
    element = write_entry(usage_point_entry(f.full_usage_point(), SCOPE))
    assert element.findtext(f"{A}title") == "Home <main> & garage"


def test_entry_title_defaults_to_the_espi_name() -> None:
    element = write_entry(usage_point_entry(f.minimal_usage_point(), SCOPE))
    assert element.findtext(f"{A}title") == "UsagePoint"


def test_characters_xml_cannot_carry_are_replaced() -> None:
    usage_point = f.minimal_usage_point()
    usage_point.description = 'bad\x00\x1b chars "quoted" ]]>'
    element = write_entry(usage_point_entry(usage_point, SCOPE))
    assert element.findtext(f"{A}title") == 'bad\ufffd\ufffd chars "quoted" ]]>'


def test_entry_without_published_time_is_refused_before_writing() -> None:
    usage_point = f.minimal_usage_point()
    usage_point.published = None  # type: ignore[assignment]
    with pytest.raises(ValueError, match="published and updated"):
        usage_point_entry(usage_point, SCOPE)


def test_entry_document_declares_the_stable_prefixes_on_the_entry_root() -> None:
    data = b"".join(entry_document(usage_point_entry(f.full_usage_point(), SCOPE)))
    root = etree.fromstring(data)
    assert etree.QName(root).localname == "entry"
    assert root.nsmap == {None: ATOM, "espi": ESPI}
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<entry ')


# -- Feeds --


def test_feed_envelope_has_id_title_updated_self_and_certification_links() -> None:
    root = etree.fromstring(whole_feed())
    assert root.findtext(f"{A}id") == "urn:uuid:00000000-0000-0000-0000-000000000001"
    assert root.findtext(f"{A}title") == "Alice's <home> & garden"
    assert root.findtext(f"{A}updated") == "2025-02-01T08:30:15Z"
    links = [(link.get("rel"), link.get("type"), link.get("href")) for link in root.findall(f"{A}link")]
    assert links == [
        ("self", "espi-feed/UsagePoint", f"{f.BASE}/Batch/RetailCustomer/7/UsagePoint"),
        ("related", "text/html", "https://cert.greenbuttonalliance.org/certificate/0000"),
    ]


def test_feed_uses_only_the_atom_default_namespace_and_the_espi_prefix() -> None:
    data = whole_feed()
    root = etree.fromstring(data)
    assert root.nsmap == {None: ATOM, "espi": ESPI}
    assert not re.search(rb"<ns\d|xmlns:ns\d", data)
    assert all(element.prefix in (None, "espi") for element in root.iter())


def test_feed_entries_walk_the_usage_tree_in_green_button_order() -> None:
    root = etree.fromstring(whole_feed())
    kinds = [etree.QName(resource_of(entry)).localname for entry in root.findall(f"{A}entry")]
    assert kinds == [
        "UsagePoint",
        "LocalTimeParameters",
        "MeterReading",
        "ReadingType",
        "IntervalBlock",
        "IntervalBlock",
        "MeterReading",
        "IntervalBlock",
        "IntervalBlock",  # the shared ReadingType is written once
        "UsageSummary",
        "ElectricPowerQualitySummary",
    ]


def test_every_entry_has_adjacent_typed_links_and_atom_times() -> None:
    root = etree.fromstring(whole_feed())
    for entry in root.findall(f"{A}entry"):
        children = names(entry)
        first, last = children.index("link"), len(children) - 1 - children[::-1].index("link")
        assert set(children[first : last + 1]) == {"link"}
        assert children[:first] == ["id"] and children[last + 1 :] == [
            "title",
            "published",
            "updated",
            "content",
        ]
        for link in entry.findall(f"{A}link"):
            assert re.fullmatch(r"espi-(entry|feed)/[A-Za-z]+", link.get("type", ""))
        assert ATOM_TIME.match(entry.findtext(f"{A}published"))
        assert ATOM_TIME.match(entry.findtext(f"{A}updated"))


def test_feed_accepts_extra_links_for_paging() -> None:
    data = b"".join(
        feed(
            [],
            feed_id=uuid.UUID(int=2),
            title="IntervalBlocks",
            updated=f.UPDATED,
            self_link=feed_link("self", "https://x.example/IntervalBlock?start-index=11", "IntervalBlock"),
            links=[
                feed_link("next", "https://x.example/IntervalBlock?start-index=21", "IntervalBlock"),
                feed_link("previous", "https://x.example/IntervalBlock?start-index=1", "IntervalBlock"),
            ],
        )
    )
    rels = [link.get("rel") for link in etree.fromstring(data).findall(f"{A}link")]
    assert rels == ["self", "next", "previous"]


def test_link_attributes_are_escaped() -> None:
    assert Link("self", 'https://x.example/a?b=1&c="2"', "espi-feed/X").render("") == (
        '<link rel="self" type="espi-feed/X" href="https://x.example/a?b=1&amp;c=&quot;2&quot;"/>\n'
    )


# -- Streaming
# -------------------------------------------------------------------------------------------------


def test_feed_is_a_generator() -> None:
    stream = feed([], feed_id=uuid.UUID(int=3), title="t", updated=f.UPDATED, self_link=feed_link("self", "h", "X"))
    assert inspect.isgenerator(stream)


def test_large_feed_streams_in_many_chunks_of_bounded_size() -> None:
    blocks = [
        IntervalBlock(
            **f.meta("IntervalBlock", day),
            meter_reading_id=1,
            start=f.DAY_START + day * 86400,
            duration=86400,
        )
        for day in range(365)
    ]
    entries = (interval_block_entry(block, f.reading_rows(block.start), SCOPE, usage_point_id=1) for block in blocks)
    chunks = list(
        feed(
            entries,
            feed_id=uuid.UUID(int=4),
            title="year",
            updated=f.UPDATED,
            self_link=feed_link("self", "h", "IntervalBlock"),
        )
    )
    assert len(chunks) > 50
    assert max(len(chunk) for chunk in chunks) < 2 * writer.CHUNK_SIZE + 64 * 1024
    assert len(etree.fromstring(b"".join(chunks), etree.XMLParser(huge_tree=True)).findall(f"{A}entry")) == 365


def test_readings_are_pulled_only_when_their_block_is_written() -> None:
    usage_point, readings = f.usage_tree()
    requested: list[int] = []

    def readings_for(block: IntervalBlock) -> Iterator[writer.ReadingRow]:
        requested.append(block.id)
        yield from readings[block.id]

    stream = usage_feed(
        [usage_point],
        SCOPE,
        feed_id=uuid.UUID(int=5),
        title="t",
        updated=f.UPDATED,
        self_link=feed_link("self", "h", "UsagePoint"),
        readings_for=readings_for,
    )
    assert requested == []
    next(stream)
    assert len(requested) < 4 and requested == [10, 11, 20, 21][: len(requested)]  # only what the first chunk needed
    list(stream)
    assert requested == [10, 11, 20, 21]


def test_usage_entries_honour_a_block_filter() -> None:
    usage_point, readings = f.usage_tree()
    entries = usage_entries(
        [usage_point],
        SCOPE,
        readings_for=lambda b: readings[b.id],
        blocks_for=lambda m: m.interval_blocks[:1],
    )
    blocks = [
        e for e in entries if any(link.type == "espi-entry/IntervalBlock" and link.rel == "self" for link in e.links)
    ]
    assert len(blocks) == 2


# -- Bare documents
# --------------------------------------------------------------------------------------------


def test_service_status_document() -> None:
    assert service_status_document() == (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<ServiceStatus xmlns="http://naesb.org/espi">\n'
        b"  <currentStatus>1</currentStatus>\n"
        b"</ServiceStatus>\n"
    )


def test_batch_list_document_lists_escaped_urls() -> None:
    data = batch_list_document(
        [f"{f.BASE}/Batch/Subscription/5?published-min=2025-01-01T00:00:00Z&x=1", f"{f.BASE}/Batch/Bulk/3"]
    )
    root = etree.fromstring(data)
    assert root.tag == f"{E}BatchList"
    assert [r.text for r in root] == [
        f"{f.BASE}/Batch/Subscription/5?published-min=2025-01-01T00:00:00Z&x=1",
        f"{f.BASE}/Batch/Bulk/3",
    ]


def test_custodian_endpoints_from_settings() -> None:
    from gateway.config import Settings

    endpoints = CustodianEndpoints.from_settings(
        Settings(base_url="https://gw.example.com", data_custodian_id="gw", secret_key="k" * 40)
    )
    assert endpoints.token_endpoint == "https://gw.example.com/oauth/token"
    assert endpoints.resource_endpoint == "https://gw.example.com/DataCustodian/espi/1_1/resource"
    assert endpoints.bulk_request_uri == "https://gw.example.com/DataCustodian/espi/1_1/resource/Batch/Bulk"


# -- Database rows -----------------------------------------------------------------------------------------


def test_writer_streams_session_bound_rows_and_database_readings(db, services) -> None:  # type: ignore[no-untyped-def]
    """The resource API's shape: ORM rows from the session, readings pulled per block with a Core select."""
    from sqlalchemy import insert, select

    from gateway.customers import add_customer
    from gateway.storage.models import interval_reading_table

    customer = add_customer(db, services.passwords, username="writer-test", email="writer@example.com")
    usage_point, readings = f.usage_tree()
    usage_point.customer_id = customer.id
    db.add(usage_point)
    db.flush()
    for block_id, rows in readings.items():
        db.execute(
            insert(interval_reading_table),
            [dict(zip(_READING_COLUMNS, (block_id, *row), strict=True)) for row in rows],
        )
    db.expire_all()
    columns = [interval_reading_table.c[name] for name in _READING_COLUMNS[1:]]

    def readings_for(block: IntervalBlock) -> Iterator[writer.ReadingRow]:
        statement = (
            select(*columns)
            .where(interval_reading_table.c.interval_block_id == block.id)
            .order_by(interval_reading_table.c.start)
            .execution_options(yield_per=500)
        )
        for row in db.execute(statement):
            yield tuple(row)  # type: ignore[misc]

    data = b"".join(
        usage_feed(
            [db.get(type(usage_point), usage_point.id)],
            SCOPE,
            feed_id=uuid.UUID(int=6),
            title="from the database",
            updated=f.UPDATED,
            self_link=feed_link("self", f.LINKS.batch_retail_customer(customer.id), "UsagePoint"),
            readings_for=readings_for,
        )
    )
    assert data == whole_feed_of(usage_point_id=usage_point.id, readings=readings, customer_id=customer.id)


_READING_COLUMNS = (
    "interval_block_id",
    "start",
    "duration",
    "value",
    "cost",
    "quality",
    "consumption_tier",
    "tou",
    "cpp",
)


def whole_feed_of(*, usage_point_id: int, readings: dict[int, list[writer.ReadingRow]], customer_id: int) -> bytes:
    """The same feed written from fresh transient objects, for comparison with the database round trip."""
    usage_point, _ = f.usage_tree()
    assert usage_point.id == usage_point_id
    return b"".join(
        usage_feed(
            [usage_point],
            SCOPE,
            feed_id=uuid.UUID(int=6),
            title="from the database",
            updated=f.UPDATED,
            self_link=feed_link("self", f.LINKS.batch_retail_customer(customer_id), "UsagePoint"),
            readings_for=lambda block: readings[block.id],
        )
    )
