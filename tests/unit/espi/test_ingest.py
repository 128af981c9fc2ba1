"""Importing Green Button feeds (gateway.espi.ingest).

Streaming, any entry order, idempotent, atomic, strict or lenient; every real sample file is either imported
or rejected with line-numbered errors.
"""

from __future__ import annotations

import io
import tracemalloc
from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.customers import add_customer
from gateway.espi.ingest import FeedRejected, ImportReport, count_rows, import_feed
from gateway.espi.safe_xml import MiB, XmlRejected
from gateway.services import Services
from gateway.storage.customer import RetailCustomer
from gateway.storage.ids import stable_uuid
from gateway.storage.usage import IntervalBlock, MeterReading, ReadingType, UsagePoint, interval_reading_table

ATOM = "http://www.w3.org/2005/Atom"
ESPI = "http://naesb.org/espi"
BASE = "https://utility.example/DataCustodian/espi/1_1/resource"
UP = f"{BASE}/RetailCustomer/7/UsagePoint/1"
MR = f"{UP}/MeterReading/1"
UP_ID = "urn:uuid:11111111-1111-4111-8111-111111111111"
LTP_ID = "urn:uuid:22222222-2222-4222-8222-222222222222"
MR_ID = "urn:uuid:33333333-3333-4333-8333-333333333333"
RT_ID = "urn:uuid:44444444-4444-4444-8444-444444444444"
START = 1735689600  # 2025-01-01T00:00:00Z

Reading = tuple[int, int, int, int | None]
"""start, duration, value, cost"""


def hour_readings(count: int = 4, start: int = START, value: int = 1000, cost: int | None = 15_000) -> list[Reading]:
    return [(start + i * 3600, 3600, value + i, cost) for i in range(count)]


class FeedBuilder:
    """Small, schema-valid ESPI feeds in any of the prefix styles found in real files (ESPI-NOTES §1)."""

    def __init__(self, style: str = "espi") -> None:
        self.style = style

    def a(self, name: str) -> str:
        return f"ns1:{name}" if self.style == "ns0" else name

    def e(self, name: str) -> str:
        return {"espi": f"espi:{name}", "ns0": f"ns0:{name}", "default": name}[self.style]

    def resource(self, name: str, body: str) -> str:
        declaration = f' xmlns="{ESPI}"' if self.style == "default" else ""
        return f"<{self.e(name)}{declaration}>{body}</{self.e(name)}>"

    def leaf(self, name: str, value: object) -> str:
        return f"<{self.e(name)}>{value}</{self.e(name)}>"

    def entry(self, entry_id: str, self_href: str, up_href: str, related: Sequence[str], content: str) -> str:
        a = self.a
        links = f'<{a("link")} rel="self" href="{self_href}"/><{a("link")} rel="up" href="{up_href}"/>' + "".join(
            f'<{a("link")} rel="related" href="{href}"/>' for href in related
        )
        return (
            f"<{a('entry')}><{a('id')}>{entry_id}</{a('id')}>{links}<{a('title')}>t</{a('title')}>"
            f"<{a('content')}>{content}</{a('content')}>"
            f"<{a('published')}>2025-01-01T00:00:00Z</{a('published')}>"
            f"<{a('updated')}>2025-01-02T00:00:00Z</{a('updated')}></{a('entry')}>\n"
        )

    def usage_point(self, entry_id: str = UP_ID, href: str = UP) -> str:
        body = self.resource(
            "UsagePoint", f"<{self.e('ServiceCategory')}>{self.leaf('kind', 0)}</{self.e('ServiceCategory')}>"
        )
        return self.entry(
            entry_id,
            href,
            href.rsplit("/", 1)[0],
            [f"{href}/MeterReading", f"{BASE}/LocalTimeParameters/1"],
            body,
        )

    def local_time(self) -> str:
        body = self.resource(
            "LocalTimeParameters",
            self.leaf("dstEndRule", "B40E2000")
            + self.leaf("dstOffset", 3600)
            + self.leaf("dstStartRule", "360E2000")
            + self.leaf("tzOffset", -28800),
        )
        return self.entry(LTP_ID, f"{BASE}/LocalTimeParameters/1", f"{BASE}/LocalTimeParameters", [], body)

    def reading_type(self, power: int = 0, uom: int = 72, currency: int = 840) -> str:
        body = self.resource(
            "ReadingType",
            self.leaf("accumulationBehaviour", 4)
            + self.leaf("commodity", 1)
            + self.leaf("currency", currency)
            + self.leaf("flowDirection", 1)
            + self.leaf("intervalLength", 3600)
            + self.leaf("kind", 12)
            + self.leaf("powerOfTenMultiplier", power)
            + self.leaf("uom", uom),
        )
        return self.entry(RT_ID, f"{BASE}/ReadingType/1", f"{BASE}/ReadingType", [], body)

    def meter_reading(self) -> str:
        body = self.resource("MeterReading", "")
        return self.entry(MR_ID, MR, f"{UP}/MeterReading", [f"{MR}/IntervalBlock", f"{BASE}/ReadingType/1"], body)

    def block(self, number: int, readings: Sequence[Reading], *, value_text: str | None = None) -> str:
        e, leaf = self.e, self.leaf
        parts = []
        for start, duration, value, cost in readings:
            cost_part = leaf("cost", cost) if cost is not None else ""
            parts.append(
                f"<{e('IntervalReading')}>{cost_part}<{e('timePeriod')}>"
                f"{leaf('duration', duration)}{leaf('start', start)}</{e('timePeriod')}>"
                f"{leaf('value', value_text if value_text is not None else value)}</{e('IntervalReading')}>"
            )
        first = readings[0][0]
        span = readings[-1][0] + readings[-1][1] - first
        interval = f"<{e('interval')}>{leaf('duration', span)}{leaf('start', first)}</{e('interval')}>"
        body = self.resource("IntervalBlock", interval + "".join(parts))
        block_id = f"urn:uuid:55555555-5555-4555-8555-{number:012d}"
        return self.entry(block_id, f"{MR}/IntervalBlock/{number}", f"{MR}/IntervalBlock", [], body)

    def feed(self, entries: Sequence[str]) -> bytes:
        if self.style == "ns0":
            head = f'<ns1:feed xmlns:ns0="{ESPI}" xmlns:ns1="{ATOM}">'
            tail = "</ns1:feed>"
        elif self.style == "espi":
            head = f'<feed xmlns="{ATOM}" xmlns:espi="{ESPI}">'
            tail = "</feed>"
        else:
            head = f'<feed xmlns="{ATOM}">'
            tail = "</feed>"
        a = self.a
        header = (
            f"<{a('id')}>urn:uuid:99999999-9999-4999-8999-999999999999</{a('id')}><{a('title')}>Test</{a('title')}>"
            f"<{a('updated')}>2025-01-02T00:00:00Z</{a('updated')}>\n"
        )
        return ('<?xml version="1.0" encoding="UTF-8"?>\n' + head + header + "".join(entries) + tail + "\n").encode()

    def standard(
        self, *, blocks: int = 2, power: int = 0, readings_per_block: int = 4, cost: int | None = 15_000
    ) -> bytes:
        entries = [self.usage_point(), self.local_time(), self.reading_type(power), self.meter_reading()]
        for number in range(blocks):
            entries.append(self.block(number, hour_readings(readings_per_block, START + number * 86400, cost=cost)))
        return self.feed(entries)


@pytest.fixture
def alice(db: Session, services: Services) -> RetailCustomer:
    return add_customer(db, services.passwords, username="alice", email="alice@example.org")


@pytest.fixture
def bob(db: Session, services: Services) -> RetailCustomer:
    return add_customer(db, services.passwords, username="bob", email="bob@example.org")


def run(db: Session, document: bytes | Path, customer: RetailCustomer, *, lenient: bool = False) -> ImportReport:
    source = document if isinstance(document, Path) else io.BytesIO(document)
    return import_feed(db, source, customer=customer, lenient=lenient)


def stored_readings(db: Session) -> list[tuple[int, int, int | None, int | None]]:
    table = interval_reading_table
    return [
        tuple(row)  # type: ignore[misc]
        for row in db.execute(
            select(table.c.start, table.c.duration, table.c.value, table.c.cost).order_by(table.c.start)
        )
    ]


# -- the basics ----------------------------------------------------------------------------------------------


def test_a_feed_imports_every_resource(db: Session, alice: RetailCustomer) -> None:
    report = run(db, FeedBuilder().standard(), alice)
    counts = (
        report.usage_points.created,
        report.local_time_parameters.created,
        report.reading_types.created,
        report.meter_readings.created,
        report.interval_blocks.created,
        report.interval_readings,
    )
    assert counts == (1, 1, 1, 1, 2, 8)


def test_resources_keep_the_entry_uuids(db: Session, alice: RetailCustomer) -> None:
    run(db, FeedBuilder().standard(), alice)
    assert str(db.scalar(select(UsagePoint.uuid))) == UP_ID.removeprefix("urn:uuid:")


def test_readings_are_stored_as_written(db: Session, alice: RetailCustomer) -> None:
    run(db, FeedBuilder().standard(blocks=1), alice)
    assert stored_readings(db) == [(s, d, v, c) for s, d, v, c in hour_readings()]


def test_the_usage_point_links_to_its_local_time_parameters(db: Session, alice: RetailCustomer) -> None:
    run(db, FeedBuilder().standard(), alice)
    usage_point = db.scalars(select(UsagePoint)).one()
    assert usage_point.local_time_parameters is not None and usage_point.local_time_parameters.tz_offset == -28800


def test_the_import_is_flushed_not_committed(db: Session, alice: RetailCustomer) -> None:
    run(db, FeedBuilder().standard(), alice)
    db.rollback()
    assert count_rows(db)["interval_reading"] == 0


@pytest.mark.parametrize("style", ["default", "espi", "ns0"])
def test_every_prefix_style_imports_the_same(db: Session, alice: RetailCustomer, style: str) -> None:
    report = run(db, FeedBuilder(style).standard(), alice)
    assert (report.interval_readings, report.warning_count, stored_readings(db)[0]) == (
        8,
        0,
        (START, 3600, 1000, 15_000),
    )


@pytest.mark.parametrize(
    "order",
    [
        ["block0", "block1", "meter_reading", "reading_type", "usage_point", "local_time"],
        ["meter_reading", "usage_point", "block0", "reading_type", "block1", "local_time"],
        ["local_time", "reading_type", "block1", "usage_point", "meter_reading", "block0"],
    ],
    ids=["blocks_first", "reading_type_late", "shuffled"],
)
def test_entries_may_come_in_any_order(db: Session, alice: RetailCustomer, order: list[str]) -> None:
    builder = FeedBuilder()
    entries = {
        "usage_point": builder.usage_point(),
        "local_time": builder.local_time(),
        "reading_type": builder.reading_type(),
        "meter_reading": builder.meter_reading(),
        "block0": builder.block(0, hour_readings()),
        "block1": builder.block(1, hour_readings(start=START + 86400)),
    }
    report = run(db, builder.feed([entries[name] for name in order]), alice)
    assert (
        report.interval_blocks.created,
        len(stored_readings(db)),
        db.scalar(select(UsagePoint.local_time_parameters_id)) is not None,
    ) == (2, 8, True)


def test_a_single_entry_document_imports(db: Session, alice: RetailCustomer) -> None:
    builder = FeedBuilder()
    entry = builder.reading_type().replace("<entry>", f'<entry xmlns="{ATOM}" xmlns:espi="{ESPI}">', 1)
    report = run(db, entry.encode(), alice)
    assert report.reading_types.created == 1


# -- idempotence and replacement -----------------------------------------------------------------------------


def test_importing_the_same_file_twice_changes_nothing(db: Session, alice: RetailCustomer) -> None:
    document = FeedBuilder().standard()
    run(db, document, alice)
    before = (count_rows(db), stored_readings(db))
    second = run(db, document, alice)
    assert (count_rows(db), stored_readings(db)) == before
    assert (
        second.interval_blocks.unchanged,
        second.interval_readings_written,
        second.usage_points.unchanged,
    ) == (2, 0, 1)


def test_reimporting_a_block_replaces_its_readings(db: Session, alice: RetailCustomer) -> None:
    builder = FeedBuilder()
    head = [builder.usage_point(), builder.local_time(), builder.reading_type(), builder.meter_reading()]
    run(db, builder.feed([*head, builder.block(0, hour_readings(4, value=1000))]), alice)
    report = run(db, builder.feed([*head, builder.block(0, hour_readings(2, value=7))]), alice)
    assert (report.interval_blocks.updated, stored_readings(db)) == (
        1,
        [(START, 3600, 7, 15_000), (START + 3600, 3600, 8, 15_000)],
    )


def test_ids_that_are_not_uuids_get_stable_ones(db: Session, alice: RetailCustomer) -> None:
    document = FeedBuilder().standard().replace(UP_ID.encode(), b"usage-point-one")
    run(db, document, alice)
    run(db, document, alice)
    expected = stable_uuid("ImportedUsagePoint", alice.uuid, UP.split("/resource/")[1])
    assert db.scalars(select(UsagePoint.uuid)).all() == [expected]


# -- ownership, atomicity ------------------------------------------------------------------------------------


def test_a_usage_point_of_another_customer_is_not_taken_over(
    db: Session, alice: RetailCustomer, bob: RetailCustomer
) -> None:
    document = FeedBuilder().standard()
    run(db, document, alice)
    before = count_rows(db)
    with pytest.raises(FeedRejected) as rejected:
        run(db, document, bob)
    assert ([e.code for e in rejected.value.errors][:1], count_rows(db)) == (
        ["owned_by_another_customer"],
        before,
    )


def test_a_malformed_element_near_the_end_leaves_no_data(db: Session, alice: RetailCustomer) -> None:
    document = FeedBuilder().standard(blocks=20).replace(b"</feed>", b"<entry><id>x</entry></feed>")
    before = count_rows(db)
    with pytest.raises(XmlRejected, match=r"not well-formed: mismatched tag at line \d+"):
        run(db, document, alice)
    assert count_rows(db) == before


def test_an_invalid_value_in_the_last_block_rolls_back_the_whole_file(db: Session, alice: RetailCustomer) -> None:
    builder = FeedBuilder()
    entries = [builder.usage_point(), builder.local_time(), builder.reading_type(), builder.meter_reading()]
    entries += [builder.block(n, hour_readings(start=START + n * 86400)) for n in range(10)]
    entries.append(builder.block(10, hour_readings(start=START + 10 * 86400), value_text="lots"))
    before = count_rows(db)
    with pytest.raises(FeedRejected) as rejected:
        run(db, builder.feed(entries), alice)
    assert (count_rows(db), all(e.line for e in rejected.value.errors)) == (before, True)


def test_a_rejected_file_leaves_the_session_usable(db: Session, alice: RetailCustomer) -> None:
    with pytest.raises(FeedRejected):
        run(
            db,
            FeedBuilder().standard().replace(b"<espi:value>1000</espi:value>", b"<espi:value>x</espi:value>"),
            alice,
        )
    assert run(db, FeedBuilder().standard(), alice).interval_readings == 8


def test_a_block_of_an_unknown_meter_reading_is_rejected_in_strict_mode(db: Session, alice: RetailCustomer) -> None:
    builder = FeedBuilder()
    with pytest.raises(FeedRejected) as rejected:
        run(db, builder.feed([builder.block(0, hour_readings())]), alice)
    assert [(e.code, e.line) for e in rejected.value.errors] == [("unresolved_reference", 3)]


def test_a_feed_without_entries_is_rejected(db: Session, alice: RetailCustomer) -> None:
    with pytest.raises(FeedRejected, match="no entries"):
        run(db, FeedBuilder().feed([]), alice)


# -- values and costs ----------------------------------------------------------------------------------------


def test_value_is_scaled_by_the_multiplier_but_cost_never_is(db: Session, alice: RetailCustomer) -> None:
    # ESPI-NOTES §7: value in Wh times 10^3 (kWh); cost always in 10⁻⁵ USD whatever the multiplier.
    builder = FeedBuilder()
    readings: list[Reading] = [(START, 3600, 2, 150_000), (START + 3600, 3600, 3, 250_000)]
    document = builder.feed(
        [
            builder.usage_point(),
            builder.reading_type(power=3),
            builder.meter_reading(),
            builder.block(0, readings),
        ]
    )
    totals = next(iter(run(db, document, alice).totals.values()))
    assert (totals.consumption, totals.cost, totals.to_json()["unit"], totals.to_json()["currency"]) == (
        5000.0,
        4.0,
        "Wh",
        "USD",
    )


def test_cost_is_stored_unscaled(db: Session, alice: RetailCustomer) -> None:
    builder = FeedBuilder()
    readings: list[Reading] = [(START, 3600, 2, 150_000)]
    run(
        db,
        builder.feed(
            [
                builder.usage_point(),
                builder.reading_type(power=3),
                builder.meter_reading(),
                builder.block(0, readings),
            ]
        ),
        alice,
    )
    assert stored_readings(db) == [(START, 3600, 2, 150_000)]


def test_readings_without_cost_report_no_cost(db: Session, alice: RetailCustomer) -> None:
    totals = next(iter(run(db, FeedBuilder().standard(cost=None), alice).totals.values()))
    assert (totals.cost, totals.to_json()["cost"]) == (None, None)


def test_report_to_json_has_the_counts(db: Session, alice: RetailCustomer) -> None:
    document = run(db, FeedBuilder().standard(), alice).to_json()
    assert (document["interval_blocks"]["created"], document["interval_readings"], document["warnings"]) == (
        2,
        8,
        [],
    )


# -- streaming -----------------------------------------------------------------------------------------------


def test_progress_receives_bytes_read(db: Session, alice: RetailCustomer) -> None:
    document = FeedBuilder().standard(blocks=30)
    seen: list[int] = []
    import_feed(db, io.BytesIO(document), customer=alice, progress=seen.append)
    assert (seen[-1], seen == sorted(seen)) == (len(document), True)


def test_memory_stays_bounded_on_a_large_feed(db: Session, alice: RetailCustomer, tmp_path: Path) -> None:
    # ~10 MB of XML (about 58,000 readings): the tree never holds more than one entry and a reading batch.
    path = tmp_path / "large.xml"
    path.write_bytes(FeedBuilder().standard(blocks=240, readings_per_block=240))
    tracemalloc.start()
    try:
        run(db, path, alice)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (path.stat().st_size > 9 * MiB, peak < 48 * MiB) == (True, True), peak


@pytest.mark.parametrize(
    "document",
    [
        b'<!DOCTYPE feed [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><feed xmlns="http://www.w3.org/2005/Atom">&b;</feed>',
        b'<!DOCTYPE feed [<!ENTITY x SYSTEM "file:///etc/passwd">]><feed xmlns="http://www.w3.org/2005/Atom">&x;</feed>',
        b'<feed xmlns="http://www.w3.org/2005/Atom">' + b"<a>" * 10_000 + b"</a>" * 10_000 + b"</feed>",
        b'<feed xmlns="http://example.com/not-atom"/>',
        b'<?xml version="1.0" encoding="UTF-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>\xe9</title></feed>',
    ],
    ids=["entities", "external_entity", "deep_nesting", "wrong_namespace", "latin1"],
)
def test_hostile_documents_change_nothing(db: Session, alice: RetailCustomer, document: bytes) -> None:
    before = count_rows(db)
    with pytest.raises(XmlRejected):
        run(db, document, alice)
    assert count_rows(db) == before


# -- lenient mode --------------------------------------------------------------------------------------------


def test_lenient_mode_imports_a_nested_reading_type_with_a_warning(db: Session, alice: RetailCustomer) -> None:
    builder = FeedBuilder()
    nested = builder.meter_reading().replace(
        "<espi:MeterReading></espi:MeterReading>",
        "<espi:MeterReading>"
        + builder.resource("ReadingType", builder.leaf("powerOfTenMultiplier", 0) + builder.leaf("uom", 72))
        + "</espi:MeterReading>",
    )
    nested = nested.replace(f'<link rel="related" href="{BASE}/ReadingType/1"/>', "")
    document = builder.feed([builder.usage_point(), nested, builder.block(0, hour_readings())])
    report = run(db, document, alice, lenient=True)
    codes = {w.code for w in report.warnings}
    assert ("nested_reading_type" in codes, report.interval_readings, db.scalar(select(ReadingType.uom))) == (
        True,
        4,
        72,
    )


def test_strict_mode_rejects_a_nested_reading_type(db: Session, alice: RetailCustomer) -> None:
    builder = FeedBuilder()
    nested = builder.meter_reading().replace(
        "<espi:MeterReading></espi:MeterReading>",
        "<espi:MeterReading>" + builder.resource("ReadingType", builder.leaf("uom", 72)) + "</espi:MeterReading>",
    )
    with pytest.raises(FeedRejected, match=r"line \d+: .*ReadingType"):
        run(db, builder.feed([builder.usage_point(), builder.reading_type(), nested]), alice)


def test_lenient_mode_reads_children_out_of_order_and_wrongly_capitalised(db: Session, alice: RetailCustomer) -> None:
    builder = FeedBuilder()
    reading_type = builder.reading_type().replace(
        "<espi:powerOfTenMultiplier>0</espi:powerOfTenMultiplier><espi:uom>72</espi:uom>",
        "<espi:Uom>72</espi:Uom><espi:powerOfTenMultiplier>-3</espi:powerOfTenMultiplier>",
    )
    report = run(db, builder.feed([builder.usage_point(), reading_type, builder.meter_reading()]), alice, lenient=True)
    row = db.scalars(select(ReadingType)).one()
    assert ((row.uom, row.power_of_ten_multiplier), "element_case" in {w.code for w in report.warnings}) == (
        (72, -3),
        True,
    )


def test_lenient_mode_accepts_date_only_updated_with_a_line_numbered_warning(
    db: Session, alice: RetailCustomer
) -> None:
    document = (
        FeedBuilder().standard().replace(b"<updated>2025-01-02T00:00:00Z</updated>", b"<updated>2025-01-02</updated>")
    )
    report = run(db, document, alice, lenient=True)
    date_only = [w for w in report.warnings if w.code == "date_only"]
    assert (len(date_only) > 0, all(w.line for w in date_only)) == (True, True)


def test_lenient_warnings_carry_lines_and_stable_codes(db: Session, alice: RetailCustomer) -> None:
    builder = FeedBuilder()
    block = builder.block(0, hour_readings()).replace(
        "</espi:timePeriod>", "<timezone>-0500</timezone></espi:timePeriod>", 1
    )
    document = builder.feed([builder.usage_point(), builder.reading_type(), builder.meter_reading(), block])
    report = run(db, document, alice, lenient=True)
    assert {(w.code, w.line) for w in report.warnings if w.code == "foreign_element"} == {("foreign_element", 6)}


# -- the real files ------------------------------------------------------------------------------------------

SAMPLES_VALID = [
    "01_gba_sdk_Coastal_Single_Family_2011_electric_hourly.xml",
    "02_gba_sdk_Gas.xml",
    "03_openespi_common_test_usage_data.xml",
    "04_cmdtest_Meter_Data_12-09-2013_12-15-2013_big.xml",
    "05_cmdtest_BatchBulk.xml",
    "06_enbridge_gas_EGD_2022-2024_utility.xml",
]
SAMPLES_INVALID = [
    "07_opower_ngma_gas_billing_utility.xml",
    "08_pge_api_IntervalBlock_feed.xml",
    "09_sce_bulk_UsageSummary_IntervalBlock.xml",
    "11_utilityapi_algoma_intervals_electric.xml",
    "12_gbjava_Usage-Subscription-Feed-Anonymized.xml",
]
# What lenient mode recovers from the files strict mode rejects: (usage points, meter readings, readings).
LENIENT_RECOVERS = {
    "07_opower_ngma_gas_billing_utility.xml": (1, 1, 35),
    # PG&E's IntervalBlock-only API response names a MeterReading it does not contain: nothing to attach.
    "08_pge_api_IntervalBlock_feed.xml": (0, 0, 0),
    "09_sce_bulk_UsageSummary_IntervalBlock.xml": (1, 2, 3),
    "11_utilityapi_algoma_intervals_electric.xml": (1, 1, 300),
    "12_gbjava_Usage-Subscription-Feed-Anonymized.xml": (1, 1, 0),
}


@pytest.mark.parametrize("name", SAMPLES_VALID)
def test_valid_sample_imports_strictly(db: Session, alice: RetailCustomer, shared_espi: Path, name: str) -> None:
    report = run(db, shared_espi / "samples" / name, alice)
    assert (
        report.usage_points.total >= 1,
        report.interval_readings == count_rows(db)["interval_reading"],
    ) == (True, True)


@pytest.mark.parametrize("name", SAMPLES_VALID)
def test_valid_sample_reimports_unchanged(db: Session, alice: RetailCustomer, shared_espi: Path, name: str) -> None:
    run(db, shared_espi / "samples" / name, alice)
    before = count_rows(db)
    second = run(db, shared_espi / "samples" / name, alice)
    assert (count_rows(db), second.interval_readings_written, second.interval_blocks.created) == (
        before,
        0,
        0,
    )


@pytest.mark.parametrize("name", SAMPLES_INVALID)
def test_invalid_sample_is_rejected_strictly_with_line_numbers(
    db: Session, alice: RetailCustomer, shared_espi: Path, name: str
) -> None:
    before = count_rows(db)
    with pytest.raises(FeedRejected) as rejected:
        run(db, shared_espi / "samples" / name, alice)
    located = [e.line for e in rejected.value.errors if e.code != "too_many_errors"]
    assert (len(located) > 0, all(located), count_rows(db)) == (True, True, before)


@pytest.mark.parametrize("name", SAMPLES_INVALID)
def test_invalid_sample_is_recovered_leniently(
    db: Session, alice: RetailCustomer, shared_espi: Path, name: str
) -> None:
    report = run(db, shared_espi / "samples" / name, alice, lenient=True)
    recovered = (report.usage_points.total, report.meter_readings.total, report.interval_readings)
    assert (recovered, all(w.line for w in report.warnings), report.warning_count > 0) == (
        LENIENT_RECOVERS[name],
        True,
        True,
    )


@pytest.mark.parametrize("name", [*SAMPLES_VALID, *SAMPLES_INVALID])
def test_every_sample_imports_leniently_twice_to_the_same_rows(
    db: Session, alice: RetailCustomer, shared_espi: Path, name: str
) -> None:
    run(db, shared_espi / "samples" / name, alice, lenient=True)
    before = count_rows(db)
    run(db, shared_espi / "samples" / name, alice, lenient=True)
    assert count_rows(db) == before


def test_gas_sample_totals_apply_the_multiplier_to_value_only(
    db: Session, alice: RetailCustomer, shared_espi: Path
) -> None:
    # 02: therm times 10^-3 values, costs in 10⁻⁵ USD.
    totals = next(iter(run(db, shared_espi / "samples" / "02_gba_sdk_Gas.xml", alice).totals.values()))
    assert (totals.power_of_ten_multiplier, round(totals.consumption, 3), round(totals.cost or 0, 5)) == (
        -3,
        totals.value_sum / 1000,
        totals.cost_sum / 100_000,
    )


def test_multi_block_entries_get_one_uuid_per_block(db: Session, alice: RetailCustomer, shared_espi: Path) -> None:
    run(db, shared_espi / "samples" / "02_gba_sdk_Gas.xml", alice)
    uuids = db.scalars(select(IntervalBlock.uuid)).all()
    assert len(set(uuids)) == len(uuids) == 13


def test_meter_readings_get_their_reading_type_when_it_comes_later(
    db: Session, alice: RetailCustomer, shared_espi: Path
) -> None:
    # 02 puts its ReadingType after the IntervalBlocks.
    run(db, shared_espi / "samples" / "02_gba_sdk_Gas.xml", alice)
    assert db.scalar(select(ReadingType.uom).join(MeterReading, MeterReading.reading_type_id == ReadingType.id)) == 169


def test_a_shared_reading_type_of_another_customer_is_copied_not_changed(
    db: Session, alice: RetailCustomer, bob: RetailCustomer
) -> None:
    builder = FeedBuilder()
    run(db, builder.standard(power=0), alice)
    other_usage_point = builder.usage_point(
        "urn:uuid:66666666-6666-4666-8666-666666666666", f"{BASE}/RetailCustomer/8/UsagePoint/1"
    )
    other_meter_reading = (
        builder.meter_reading()
        .replace(MR_ID, "urn:uuid:77777777-7777-4777-8777-777777777777")
        .replace("RetailCustomer/7", "RetailCustomer/8")
    )
    report = run(db, builder.feed([other_usage_point, builder.reading_type(power=3), other_meter_reading]), bob)
    multipliers = sorted(db.scalars(select(ReadingType.power_of_ten_multiplier)).all())
    assert (multipliers, [w.code for w in report.warnings]) == ([0, 3], ["shared_resource_copied"])


def test_a_nested_reading_type_survives_a_meter_reading_that_waits_for_its_usage_point(
    db: Session, alice: RetailCustomer
) -> None:
    builder = FeedBuilder()
    nested = (
        builder.meter_reading()
        .replace(
            "<espi:MeterReading></espi:MeterReading>",
            "<espi:MeterReading>" + builder.resource("ReadingType", builder.leaf("uom", 169)) + "</espi:MeterReading>",
        )
        .replace(f'<link rel="related" href="{BASE}/ReadingType/1"/>', "")
    )
    run(
        db,
        builder.feed([nested, builder.block(0, hour_readings()), builder.usage_point()]),
        alice,
        lenient=True,
    )
    assert db.scalar(select(ReadingType.uom)) == 169
