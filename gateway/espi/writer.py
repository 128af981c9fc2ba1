"""The streaming Atom writer of Green Button documents (NAESB REQ.21 ESPI over RFC 4287 Atom; ESPI-NOTES §7).

Three layers, each usable on its own:

1. **Entry builders**, one per ESPI resource and named after it (:func:`usage_point_entry`,
   :func:`meter_reading_entry`, :func:`reading_type_entry`, :func:`interval_block_entry`,
   :func:`usage_summary_entry`, :func:`electric_power_quality_summary_entry`,
   :func:`local_time_parameters_entry`, :func:`application_information_entry`, :func:`authorization_entry`).
   Each takes a storage row (a plain transient object works as well as a session-bound one) and returns an
   :class:`Entry`: the Atom metadata, the typed links, and a lazy producer of the resource's XML. Nothing is
   written until the entry is.
2. **Documents**: :func:`feed` writes an ``atom:feed`` around any iterable of entries, :func:`entry_document`
   writes one entry as the root element (``GET …/UsagePoint/{u}``), :func:`service_status_document` and
   :func:`batch_list_document` write the two bare ESPI documents. Feeds and entries are generators of
   ``bytes`` chunks for falcon's ``resp.stream``: memory does not grow with the feed.
3. Whole-feed walkers (a subscription's usage tree) live in :mod:`gateway.espi.feeds`.

Why text and not element objects: a meter-year at 15 minutes is 35,040 IntervalReadings; building lxml
elements for them costs ~14x a plain formatting loop, so the IntervalReading hot path formats pre-built
f-strings. Every other value goes through :func:`_text` (escaping ``<&>"`` and replacing characters XML 1.0
forbids), so no row content can break the document. Element order follows the ESPI 4.0 schema's sequences
exactly (``espi.xsd`` 4.0.20231213), and optional elements are omitted when their column is NULL. Prefixes are
the stable ones of :data:`gateway.espi.namespaces.NSMAP`: Atom as the default namespace, ``espi:`` for ESPI.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from gateway.espi.links import ResourceLinks, UsagePointLinks
from gateway.espi.namespaces import ATOM, ESPI
from gateway.storage.ids import urn

if TYPE_CHECKING:
    from gateway.config import Settings
    from gateway.storage.application import ApplicationInformation
    from gateway.storage.authorization import Authorization
    from gateway.storage.usage import (
        ElectricPowerQualitySummary,
        IntervalBlock,
        LineItem,
        LocalTimeParameters,
        MeterReading,
        ReadingType,
        UsagePoint,
        UsageSummary,
    )

__all__ = [
    "AMI_BILLING_READY_KINDS",
    "CHUNK_SIZE",
    "USAGE_POINT_CONNECTED_KINDS",
    "CustodianEndpoints",
    "Entry",
    "Link",
    "ReadingRow",
    "application_information_entry",
    "atom_time",
    "authorization_entry",
    "batch_list_document",
    "electric_power_quality_summary_entry",
    "entry_document",
    "entry_link",
    "feed",
    "feed_link",
    "interval_block_entry",
    "local_time_parameters_entry",
    "meter_reading_entry",
    "reading_type_entry",
    "service_status_document",
    "usage_point_entry",
    "usage_summary_entry",
]

ReadingRow = tuple[int, int, int | None, int | None, str | None, int | None, int | None, int | None]
"""One ESPI ``IntervalReading``: ``interval_reading_table`` minus the block id, in column order:
``(start, duration, value, cost, quality, consumption_tier, tou, cpp)``; ``quality`` is comma-separated
ReadingQuality codes or None."""

CHUNK_SIZE: Final = 64 * 1024
"""Characters buffered before a chunk is yielded: big enough to keep per-chunk overhead negligible, small
enough that a WSGI server starts sending at once and memory stays flat."""

_READINGS_PER_PIECE: Final = 256
"""IntervalReadings joined into one piece before handing it to the feed's buffer (bounds a monthly block's
memory)."""

XML_DECLARATION: Final = '<?xml version="1.0" encoding="UTF-8"?>\n'
_ROOT_NAMESPACES: Final = f'xmlns="{ATOM}" xmlns:espi="{ESPI}"'
_INDENT: Final = "  "

AMI_BILLING_READY_KINDS: Final = (
    "amiCapable",
    "amiDisabled",
    "billingApproved",
    "enabled",
    "nonAmi",
    "nonMetered",
    "operable",
)
"""ESPI ``AmiBillingReadyKind`` in schema order: ``UsagePoint.ami_billing_ready`` stores the index into this
tuple."""

USAGE_POINT_CONNECTED_KINDS: Final = ("connected", "logicallyDisconnected", "physicallyDisconnected")
"""ESPI ``UsagePointConnectedKind`` in schema order: ``UsagePoint.connection_state`` stores the index."""

_GRANT_TYPES: Final = frozenset({"authorization_code", "client_credentials", "refresh_token"})
"""ESPI ``GrantType``: the only grant types the schema accepts (the password grant has no ESPI code)."""

_OAUTH_ERRORS: Final = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
        "invalid_redirect_uri",
        "invalid_client_metadata",
        "invalid_client_id",
        "access_denied",
        "unsupported_response_type",
        "server_error",
        "temporarily_unavailable",
    }
)
"""ESPI ``OAuthError`` codes; anything else is left out of an Authorization (the element is optional)."""

_SUMMARY_MEASUREMENT_FIELDS: Final = ("powerOfTenMultiplier", "timeStamp", "uom", "value", "readingTypeRef")
"""ESPI ``SummaryMeasurement`` children, in schema order (the keys of the JSON dicts that store them)."""

_USAGE_SUMMARY_MEASUREMENTS: Final = (
    "overallConsumptionLastPeriod",
    "currentBillingPeriodOverAllConsumption",
    "currentDayLastYearNetConsumption",
    "currentDayNetConsumption",
    "currentDayOverallConsumption",
    "peakDemand",
    "previousDayLastYearOverallConsumption",
    "previousDayNetConsumption",
    "previousDayOverallConsumption",
)
"""UsageSummary's SummaryMeasurements between ``currency`` and ``qualityOfReading``, in schema order."""

# XML 1.0 §2.2 Char: C0 controls other than tab/LF/CR, lone surrogates, U+FFFE/U+FFFF cannot appear at all.
_NOT_XML_CHAR: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


# ----------------------------------------------------------------------------------------------------------
# Text helpers
# ----------------------------------------------------------------------------------------------------------


# Anything _text or _attr would change: most values (ids, URLs, codes) have none, and one search is cheaper than
# four replacements (a UsagePoint entry has ~40 such values: about a fifth of writing it).
_NEEDS_ESCAPE: Final = re.compile('[&<>"\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]')


def _text(value: str) -> str:
    """Escape character data (XML 1.0 §2.4) and replace characters XML cannot carry with U+FFFD."""
    if _NEEDS_ESCAPE.search(value) is None:
        return value
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _NOT_XML_CHAR.sub("\ufffd", value)


def _attr(value: str) -> str:
    """Escape an attribute value written between double quotes (XML 1.0 §3.1)."""
    if _NEEDS_ESCAPE.search(value) is None:
        return value
    return _text(value).replace('"', "&quot;")


def atom_time(value: dt.datetime) -> str:
    """An Atom date (RFC 4287 §3.3) in the ESPI form ``YYYY-MM-DDThh:mm:ssZ``: UTC, no fractions (ESPI-NOTES
    §7).

    Naive datetimes are taken as UTC (the storage layer only hands out aware ones).
    """
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC)
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}T{value.hour:02d}:{value.minute:02d}:{value.second:02d}Z"


def _epoch(value: dt.datetime) -> int:
    """ESPI ``TimeType``: seconds since the Unix epoch."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return int(value.timestamp())


def _format(value: object) -> str:
    """The lexical form of a simple ESPI value: xs:boolean as true/false, numbers as digits, text escaped."""
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return _text(str(value))


class _Lines:
    """An indented list of lines for one ESPI resource (small resources only: the hot path is
    IntervalReading)."""

    __slots__ = ("indent", "lines")

    def __init__(self, indent: str) -> None:
        self.indent = indent
        self.lines: list[str] = []

    def leaf(self, name: str, value: object) -> None:
        """``<espi:name>value</espi:name>``, or nothing when ``value`` is None (optional elements are
        omitted)."""
        if value is not None:
            self.lines.append(f"{self.indent}<espi:{name}>{_format(value)}</espi:{name}>\n")

    def open(self, name: str) -> None:
        self.lines.append(f"{self.indent}<espi:{name}>\n")
        self.indent += _INDENT

    def close(self, name: str) -> None:
        self.indent = self.indent[: -len(_INDENT)]
        self.lines.append(f"{self.indent}</espi:{name}>\n")

    def interval(self, name: str, start: int | None, duration: int | None) -> None:
        """An ESPI ``DateTimeInterval`` (duration before start, as the schema orders them); omitted if
        incomplete."""
        if start is None or duration is None:
            return
        self.open(name)
        self.leaf("duration", duration)
        self.leaf("start", start)
        self.close(name)

    def summary_measurement(self, name: str, measurement: Mapping[str, Any] | None) -> None:
        """An ESPI ``SummaryMeasurement`` from its dict (keys are the ESPI child names); omitted when None."""
        if measurement is None:
            return
        self.open(name)
        for field in _SUMMARY_MEASUREMENT_FIELDS:
            self.leaf(field, measurement.get(field))
        self.close(name)

    def tariff_rider_refs(self, refs: Sequence[Mapping[str, Any]] | None) -> None:
        """ESPI ``TariffRiderRefs``: riderType, enrollmentStatus, effectiveDate per rider; omitted when
        empty."""
        if not refs:
            return
        self.open("tariffRiderRefs")
        for ref in refs:
            self.open("tariffRiderRef")
            self.leaf("riderType", ref.get("riderType"))
            self.leaf("enrollmentStatus", ref.get("enrollmentStatus"))
            self.leaf("effectiveDate", ref.get("effectiveDate"))
            self.close("tariffRiderRef")
        self.close("tariffRiderRefs")

    def text(self) -> str:
        return "".join(self.lines)


# ----------------------------------------------------------------------------------------------------------
# Entries and links
# ----------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Link:
    """An Atom link (RFC 4287 §4.2.7). ESPI wants ``type="espi-entry/X"`` or ``"espi-feed/X"`` on each one."""

    rel: str
    href: str
    type: str | None = None

    def render(self, indent: str) -> str:
        kind = "" if self.type is None else f' type="{_attr(self.type)}"'
        return f'{indent}<link rel="{_attr(self.rel)}"{kind} href="{_attr(self.href)}"/>\n'


def entry_link(rel: str, href: str, resource: str) -> Link:
    """A link to one entry: ``type="espi-entry/{resource}"``."""
    return Link(rel, href, f"espi-entry/{resource}")


def feed_link(rel: str, href: str, resource: str) -> Link:
    """A link to a collection: ``type="espi-feed/{resource}"``."""
    return Link(rel, href, f"espi-feed/{resource}")


ContentWriter = Callable[[str], Iterable[str]]
"""Writes the ESPI resource inside ``atom:content`` at the given indentation, as text pieces."""


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    """One Atom entry (RFC 4287 §4.1.2) holding exactly one ESPI resource, not yet written.

    ``links`` are written adjacent, in order (the GBA Atom schema only accepts runs of two or more links); the
    builders put ``self`` first, then ``up``, then ``related``. An entry is written once: an IntervalBlock's
    readings are an iterator consumed while writing.
    """

    id: uuid.UUID
    title: str
    published: dt.datetime
    updated: dt.datetime
    links: tuple[Link, ...]
    content: ContentWriter

    def pieces(self, indent: str = "", *, root: bool = False) -> Iterator[str]:
        """The entry as text pieces; ``root`` declares the namespaces (an entry document, RFC 4287 §4.1.2)."""
        inner = indent + _INDENT
        head = [f"{indent}<entry {_ROOT_NAMESPACES}>\n" if root else f"{indent}<entry>\n"]
        head.append(f"{inner}<id>{urn(self.id)}</id>\n")
        head.extend(link.render(inner) for link in self.links)
        head.append(f"{inner}<title>{_text(self.title)}</title>\n")
        head.append(f"{inner}<published>{atom_time(self.published)}</published>\n")
        head.append(f"{inner}<updated>{atom_time(self.updated)}</updated>\n")
        head.append(f"{inner}<content>\n")
        yield "".join(head)
        yield from self.content(inner + _INDENT)
        yield f"{inner}</content>\n{indent}</entry>\n"


def _meta(row: Any, default_title: str) -> tuple[uuid.UUID, str, dt.datetime, dt.datetime]:
    """The Atom id, title, published and updated of an ESPI ``IdentifiedObject`` row."""
    if row.published is None or row.updated is None:
        # Transient objects get no column defaults: fail before the first byte rather than write a bad entry.
        raise ValueError(f"{type(row).__name__} {row.id}: published and updated must be set")
    title = row.description if row.description else default_title
    return row.uuid, title, row.published, row.updated


def _resource(name: str, fill: Callable[[_Lines], None]) -> ContentWriter:
    """A content writer for a small resource whose children ``fill`` adds (no attributes, ``espi:``
    prefix)."""

    def write(indent: str) -> Iterable[str]:
        lines = _Lines(indent)
        lines.open(name)
        fill(lines)
        if len(lines.lines) == 1:
            # No children (a MeterReading has none of its own in ESPI 4.0): an empty element.
            return (f"{indent}<espi:{name}/>\n",)
        lines.close(name)
        return (lines.text(),)

    return write


# ----------------------------------------------------------------------------------------------------------
# UsagePoint
# ----------------------------------------------------------------------------------------------------------


def usage_point_entry(usage_point: UsagePoint, scope: UsagePointLinks) -> Entry:
    """ESPI ``UsagePoint`` entry: related to its MeterReading, UsageSummary and ElectricPowerQualitySummary
    collections and to its LocalTimeParameters (ESPI-NOTES §7)."""
    up_id = usage_point.id
    links = [
        entry_link("self", scope.usage_point(up_id), "UsagePoint"),
        feed_link("up", scope.usage_points(), "UsagePoint"),
        feed_link("related", scope.meter_readings(up_id), "MeterReading"),
        feed_link("related", scope.usage_summaries(up_id), "UsageSummary"),
        feed_link("related", scope.power_quality_summaries(up_id), "ElectricPowerQualitySummary"),
    ]
    if usage_point.local_time_parameters_id is not None:
        links.append(
            entry_link(
                "related",
                scope.resources.local_time_parameters(usage_point.local_time_parameters_id),
                "LocalTimeParameters",
            )
        )
    return Entry(
        *_meta(usage_point, "UsagePoint"),
        tuple(links),
        _resource("UsagePoint", _usage_point_fill(usage_point)),
    )


def _usage_point_fill(usage_point: UsagePoint) -> Callable[[_Lines], None]:
    def fill(out: _Lines) -> None:
        # Order of the ESPI 4.0 UsagePoint sequence.
        out.leaf("roleFlags", usage_point.role_flags)
        if usage_point.service_kind is not None:
            out.open("ServiceCategory")
            out.leaf("kind", usage_point.service_kind)
            out.close("ServiceCategory")
        out.leaf("status", usage_point.status)
        sdp = usage_point.service_delivery_point
        if sdp:
            out.open("serviceDeliveryPoint")
            out.leaf("name", sdp.get("name"))
            out.leaf("tariffProfile", sdp.get("tariffProfile"))
            out.leaf("customerAgreement", sdp.get("customerAgreement"))
            out.tariff_rider_refs(sdp.get("tariffRiderRefs"))
            out.close("serviceDeliveryPoint")
        out.leaf("amiBillingReady", _code(AMI_BILLING_READY_KINDS, usage_point.ami_billing_ready))
        out.leaf("checkBilling", usage_point.check_billing)
        out.leaf("connectionState", _code(USAGE_POINT_CONNECTED_KINDS, usage_point.connection_state))
        measurements = usage_point.measurements or {}
        out.summary_measurement("estimatedLoad", measurements.get("estimatedLoad"))
        out.leaf("grounded", usage_point.grounded)
        out.leaf("isSdp", usage_point.is_sdp)
        out.leaf("isVirtual", usage_point.is_virtual)
        out.leaf("minimalUsageExpected", usage_point.minimal_usage_expected)
        out.summary_measurement("nominalServiceVoltage", measurements.get("nominalServiceVoltage"))
        out.leaf("outageRegion", usage_point.outage_region)
        out.leaf("phaseCode", usage_point.phase_code)
        out.summary_measurement("ratedCurrent", measurements.get("ratedCurrent"))
        out.summary_measurement("ratedPower", measurements.get("ratedPower"))
        out.leaf("readCycle", usage_point.read_cycle)
        out.leaf("readRoute", usage_point.read_route)
        out.leaf("serviceDeliveryRemark", usage_point.service_delivery_remark)
        out.leaf("servicePriority", usage_point.service_priority)

    return fill


def _code(names: Sequence[str], index: int | None) -> str | None:
    """An ESPI string enumeration from its stored index; unknown codes are omitted (the elements are
    optional)."""
    if index is None or not 0 <= index < len(names):
        return None
    return names[index]


# ----------------------------------------------------------------------------------------------------------
# MeterReading, ReadingType, IntervalBlock
# ----------------------------------------------------------------------------------------------------------


def meter_reading_entry(meter_reading: MeterReading, scope: UsagePointLinks) -> Entry:
    """ESPI ``MeterReading`` entry: related to its IntervalBlock collection and to exactly one ReadingType,
    which is its own entry and never nested (ESPI-NOTES §7). The resource itself has no elements of its own in
    ESPI 4.0."""
    u, m = meter_reading.usage_point_id, meter_reading.id
    links = (
        entry_link("self", scope.meter_reading(u, m), "MeterReading"),
        feed_link("up", scope.meter_readings(u), "MeterReading"),
        feed_link("related", scope.interval_blocks(u, m), "IntervalBlock"),
        entry_link("related", scope.resources.reading_type(meter_reading.reading_type_id), "ReadingType"),
    )
    return Entry(*_meta(meter_reading, "MeterReading"), links, _resource("MeterReading", lambda out: None))


def reading_type_entry(reading_type: ReadingType, links: ResourceLinks) -> Entry:
    """ESPI ``ReadingType`` entry, at the shared ``ReadingType/{id}`` URL."""
    entry_links = (
        entry_link("self", links.reading_type(reading_type.id), "ReadingType"),
        feed_link("up", links.reading_types(), "ReadingType"),
    )

    def fill(out: _Lines) -> None:
        rt = reading_type
        # Order of the ESPI 4.0 ReadingType sequence.
        out.leaf("accumulationBehaviour", rt.accumulation_behaviour)
        out.leaf("commodity", rt.commodity)
        out.leaf("consumptionTier", rt.consumption_tier)
        out.leaf("currency", rt.currency)
        out.leaf("dataQualifier", rt.data_qualifier)
        out.leaf("defaultQuality", rt.default_quality)
        out.leaf("flowDirection", rt.flow_direction)
        out.leaf("intervalLength", rt.interval_length)
        out.leaf("kind", rt.kind)
        out.leaf("phase", rt.phase)
        out.leaf("powerOfTenMultiplier", rt.power_of_ten_multiplier)
        out.leaf("timeAttribute", rt.time_attribute)
        out.leaf("tou", rt.tou)
        out.leaf("uom", rt.uom)
        out.leaf("cpp", rt.cpp)
        _rational(out, "interharmonic", rt.interharmonic_numerator, rt.interharmonic_denominator)
        out.leaf("measuringPeriod", rt.measuring_period)
        _rational(out, "argument", rt.argument_numerator, rt.argument_denominator)

    return Entry(*_meta(reading_type, "ReadingType"), entry_links, _resource("ReadingType", fill))


def _rational(out: _Lines, name: str, numerator: int | None, denominator: int | None) -> None:
    """ESPI ``RationalNumber`` / ``ReadingInterharmonic``: numerator then denominator, both optional."""
    if numerator is None and denominator is None:
        return
    out.open(name)
    out.leaf("numerator", numerator)
    out.leaf("denominator", denominator)
    out.close(name)


def interval_block_entry(
    block: IntervalBlock,
    readings: Iterable[ReadingRow],
    scope: UsagePointLinks,
    *,
    usage_point_id: int,
) -> Entry:
    """ESPI ``IntervalBlock`` entry with its IntervalReadings, which are read from ``readings`` only while
    writing.

    ``readings`` are rows ``(start, duration, value, cost, quality, consumption_tier, tou, cpp)`` ordered by
    start (``interval_reading_table`` minus the block id); ``usage_point_id`` is the MeterReading's usage
    point, needed for the links and not stored on the block. ``cost`` is written as stored:
    hundred-thousandths of the currency, never scaled by ``powerOfTenMultiplier`` (ESPI-NOTES §7).
    """
    m, b = block.meter_reading_id, block.id
    links = (
        entry_link("self", scope.interval_block(usage_point_id, m, b), "IntervalBlock"),
        feed_link("up", scope.interval_blocks(usage_point_id, m), "IntervalBlock"),
    )
    start, duration = block.start, block.duration

    def write(indent: str) -> Iterator[str]:
        return _interval_block_pieces(indent, start, duration, readings)

    return Entry(*_meta(block, "IntervalBlock"), links, write)


def _interval_block_pieces(
    indent: str, start: int | None, duration: int | None, readings: Iterable[ReadingRow]
) -> Iterator[str]:
    """The IntervalBlock element; each IntervalReading on one line (a meter-year stays ~7 MB and greps
    well)."""
    inner = indent + _INDENT
    head = _Lines(inner)
    head.interval("interval", start, duration)
    yield f"{indent}<espi:IntervalBlock>\n{head.text()}"
    open_tag = f"{inner}<espi:IntervalReading>"
    batch: list[str] = []
    append = batch.append
    # Hot path: the common shapes (value, optional cost, nothing else) are one f-string each; everything else
    # goes through _interval_reading, which handles every optional field in schema order.
    for row in readings:
        r_start, r_duration, value, cost, quality, tier, tou, cpp = row
        if value is not None and quality is None and tier is None and tou is None and cpp is None:
            if cost is None:
                append(
                    f"{open_tag}<espi:timePeriod><espi:duration>{r_duration}</espi:duration><espi:start>{r_start}"
                    f"</espi:start></espi:timePeriod><espi:value>{value}</espi:value></espi:IntervalReading>\n"
                )
            else:
                append(
                    f"{open_tag}<espi:cost>{cost}</espi:cost><espi:timePeriod><espi:duration>{r_duration}"
                    f"</espi:duration><espi:start>{r_start}</espi:start></espi:timePeriod><espi:value>{value}"
                    f"</espi:value></espi:IntervalReading>\n"
                )
        else:
            append(_interval_reading(open_tag, row))
        if len(batch) >= _READINGS_PER_PIECE:
            yield "".join(batch)
            batch.clear()
    if batch:
        yield "".join(batch)
    yield f"{indent}</espi:IntervalBlock>\n"


def _interval_reading(open_tag: str, row: ReadingRow) -> str:
    """One ESPI ``IntervalReading`` with every optional field: cost, ReadingQuality*, timePeriod, value,
    consumptionTier, tou, cpp (ESPI 4.0 order)."""
    start, duration, value, cost, quality, tier, tou, cpp = row
    parts = [open_tag]
    if cost is not None:
        parts.append(f"<espi:cost>{int(cost)}</espi:cost>")
    if quality:
        for code in quality.split(","):
            code = code.strip()
            if code.isdigit():  # the importer stores only codes; anything else must not break a started stream
                parts.append(f"<espi:ReadingQuality><espi:quality>{int(code)}</espi:quality></espi:ReadingQuality>")
    parts.append(
        f"<espi:timePeriod><espi:duration>{int(duration)}</espi:duration><espi:start>{int(start)}</espi:start>"
        "</espi:timePeriod>"
    )
    if value is not None:
        parts.append(f"<espi:value>{int(value)}</espi:value>")
    if tier is not None:
        parts.append(f"<espi:consumptionTier>{int(tier)}</espi:consumptionTier>")
    if tou is not None:
        parts.append(f"<espi:tou>{int(tou)}</espi:tou>")
    if cpp is not None:
        parts.append(f"<espi:cpp>{int(cpp)}</espi:cpp>")
    parts.append("</espi:IntervalReading>\n")
    return "".join(parts)


# ----------------------------------------------------------------------------------------------------------
# UsageSummary and ElectricPowerQualitySummary
# ----------------------------------------------------------------------------------------------------------


def usage_summary_entry(summary: UsageSummary, scope: UsagePointLinks) -> Entry:
    """ESPI ``UsageSummary`` entry (the 3.3+ name of ``ElectricPowerUsageSummary``) with its cost line items
    (``costAdditionalDetailLastPeriod``) and SummaryMeasurements. Amounts are in 10⁻⁵ of ``currency``."""
    u = summary.usage_point_id
    links = (
        entry_link("self", scope.usage_summary(u, summary.id), "UsageSummary"),
        feed_link("up", scope.usage_summaries(u), "UsageSummary"),
    )

    def fill(out: _Lines) -> None:
        s = summary
        # Order of the ESPI 4.0 UsageSummary sequence.
        out.interval("billingPeriod", s.billing_period_start, s.billing_period_duration)
        out.leaf("billLastPeriod", s.bill_last_period)
        out.leaf("billToDate", s.bill_to_date)
        out.leaf("costAdditionalLastPeriod", s.cost_additional_last_period)
        for item in s.line_items:
            _line_item(out, item)
        out.leaf("currency", s.currency)
        measurements = s.measurements or {}
        for name in _USAGE_SUMMARY_MEASUREMENTS:
            out.summary_measurement(name, measurements.get(name))
        out.leaf("qualityOfReading", s.quality_of_reading)
        out.summary_measurement("ratchetDemand", measurements.get("ratchetDemand"))
        out.interval("ratchetDemandPeriod", s.ratchet_demand_period_start, s.ratchet_demand_period_duration)
        out.leaf("statusTimeStamp", s.status_time_stamp)
        out.leaf("commodity", s.commodity)
        out.leaf("tariffProfile", s.tariff_profile)
        out.leaf("readCycle", s.read_cycle)
        out.tariff_rider_refs(s.tariff_rider_refs)
        if s.billing_charge_source is not None:
            out.open("billingChargeSource")
            out.leaf("agencyName", s.billing_charge_source)
            out.close("billingChargeSource")

    return Entry(*_meta(summary, "UsageSummary"), links, _resource("UsageSummary", fill))


def _line_item(out: _Lines, item: LineItem) -> None:
    """ESPI ``LineItem`` as ``costAdditionalDetailLastPeriod``: amount, rounding, dateTime, note, measurement,
    itemKind, unitCost, itemPeriod."""
    out.open("costAdditionalDetailLastPeriod")
    out.leaf("amount", item.amount)
    out.leaf("rounding", item.rounding)
    out.leaf("dateTime", item.date_time)
    out.leaf("note", item.note if item.note is not None else "")
    out.summary_measurement("measurement", item.measurement)
    out.leaf("itemKind", item.item_kind)
    out.leaf("unitCost", item.unit_cost)
    out.interval("itemPeriod", item.item_period_start, item.item_period_duration)
    out.close("costAdditionalDetailLastPeriod")


def electric_power_quality_summary_entry(summary: ElectricPowerQualitySummary, scope: UsagePointLinks) -> Entry:
    """ESPI ``ElectricPowerQualitySummary`` entry (IEC 61000-4-30 quantities over ``summaryInterval``)."""
    u = summary.usage_point_id
    links = (
        entry_link("self", scope.power_quality_summary(u, summary.id), "ElectricPowerQualitySummary"),
        feed_link("up", scope.power_quality_summaries(u), "ElectricPowerQualitySummary"),
    )

    def fill(out: _Lines) -> None:
        s = summary
        # Order of the ESPI 4.0 ElectricPowerQualitySummary sequence.
        out.leaf("flickerPlt", s.flicker_plt)
        out.leaf("flickerPst", s.flicker_pst)
        out.leaf("harmonicVoltage", s.harmonic_voltage)
        out.leaf("longInterruptions", s.long_interruptions)
        out.leaf("mainsVoltage", s.mains_voltage)
        out.leaf("measurementProtocol", s.measurement_protocol)
        out.leaf("powerFrequency", s.power_frequency)
        out.leaf("rapidVoltageChanges", s.rapid_voltage_changes)
        out.leaf("shortInterruptions", s.short_interruptions)
        out.interval("summaryInterval", s.summary_interval_start, s.summary_interval_duration)
        out.leaf("supplyVoltageDips", s.supply_voltage_dips)
        out.leaf("supplyVoltageImbalance", s.supply_voltage_imbalance)
        out.leaf("supplyVoltageVariations", s.supply_voltage_variations)
        out.leaf("tempOvervoltage", s.temp_overvoltage)

    return Entry(*_meta(summary, "ElectricPowerQualitySummary"), links, _resource("ElectricPowerQualitySummary", fill))


# ----------------------------------------------------------------------------------------------------------
# LocalTimeParameters
# ----------------------------------------------------------------------------------------------------------


def local_time_parameters_entry(parameters: LocalTimeParameters, links: ResourceLinks) -> Entry:
    """ESPI ``LocalTimeParameters`` (type ``TimeConfiguration``) entry at the shared
    ``LocalTimeParameters/{id}``.

    The DST rules are the 4-byte ``DstRuleType`` bit maps as 8 hex digits, e.g. ``360E2000`` (second Sunday of
    March, 02:00) and ``B40E2000`` (first Sunday of November, 02:00) for the United States.
    """
    entry_links = (
        entry_link("self", links.local_time_parameters(parameters.id), "LocalTimeParameters"),
        feed_link("up", links.local_time_parameters_collection(), "LocalTimeParameters"),
    )

    def fill(out: _Lines) -> None:
        # The schema's (alphabetical) order: dstEndRule before dstStartRule.
        out.leaf("dstEndRule", parameters.dst_end_rule.upper())
        out.leaf("dstOffset", parameters.dst_offset)
        out.leaf("dstStartRule", parameters.dst_start_rule.upper())
        out.leaf("tzOffset", parameters.tz_offset)

    return Entry(*_meta(parameters, "LocalTimeParameters"), entry_links, _resource("LocalTimeParameters", fill))


# ----------------------------------------------------------------------------------------------------------
# ApplicationInformation and Authorization
# ----------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class CustodianEndpoints:
    """The Data Custodian's own URLs and id that every ApplicationInformation carries (ESPI-NOTES §6)."""

    data_custodian_id: str
    authorization_server_uri: str
    authorization_endpoint: str
    token_endpoint: str
    bulk_request_uri: str
    resource_endpoint: str
    registration_endpoint: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings, *, registration_endpoint: str | None = None) -> CustodianEndpoints:
        """The endpoints of this gateway: OAuth at ``/oauth/authorize`` and ``/oauth/token`` (ESPI-NOTES
        §2)."""
        links = ResourceLinks(settings.resource_base_url)
        return cls(
            data_custodian_id=settings.data_custodian_id,
            authorization_server_uri=settings.issuer,
            authorization_endpoint=f"{settings.base_url}/oauth/authorize",
            token_endpoint=f"{settings.base_url}/oauth/token",
            bulk_request_uri=links.batch_bulk_collection(),
            resource_endpoint=links.resource_base_url,
            registration_endpoint=registration_endpoint,
        )


def application_information_entry(
    application: ApplicationInformation,
    links: ResourceLinks,
    endpoints: CustodianEndpoints,
    *,
    client_secret: str = "",
    registration_access_token: str = "",
) -> Entry:
    """ESPI ``ApplicationInformation`` entry (``GET ApplicationInformation/{id}`` with the registration
    token).

    ``client_secret`` and ``registration_access_token`` are required elements but the gateway stores only
    digests: pass the plaintext when it has just been issued (the registration response, RFC 7591 §3.2.1);
    otherwise they are written empty. ESPI knows only ``client_secret_basic`` as
    ``token_endpoint_auth_method`` and only the authorization_code, client_credentials and refresh_token
    grants, so other grants are left out.
    """
    entry_links = (
        entry_link("self", links.application_information(application.id), "ApplicationInformation"),
        feed_link("up", links.application_informations(), "ApplicationInformation"),
    )

    def fill(out: _Lines) -> None:
        a = application
        # Order of the ESPI 4.0 ApplicationInformation sequence.
        out.leaf("dataCustodianId", endpoints.data_custodian_id)
        out.leaf("dataCustodianApplicationStatus", a.status)
        out.leaf("thirdPartyApplicationDescription", a.description)
        out.leaf("thirdPartyApplicationStatus", a.third_party_application_status)
        out.leaf("thirdPartyApplicationType", a.third_party_application_type)
        out.leaf("thirdPartyApplicationUse", a.third_party_application_use)
        out.leaf("thirdPartyPhone", a.third_party_phone)
        out.leaf("authorizationServerUri", endpoints.authorization_server_uri)
        out.leaf("thirdPartyNotifyUri", a.notify_uri or "")
        out.leaf("authorizationServerAuthorizationEndpoint", endpoints.authorization_endpoint)
        out.leaf("authorizationServerRegistrationEndpoint", endpoints.registration_endpoint)
        out.leaf("authorizationServerTokenEndpoint", endpoints.token_endpoint)
        out.leaf("dataCustodianBulkRequestURI", endpoints.bulk_request_uri)
        out.leaf("dataCustodianResourceEndpoint", endpoints.resource_endpoint)
        out.leaf("client_secret", client_secret)
        out.leaf("logo_uri", a.logo_uri)
        out.leaf("client_name", a.client_name)
        out.leaf("client_uri", a.client_uri)
        for redirect_uri in a.redirect_uris:
            out.leaf("redirect_uri", redirect_uri)
        out.leaf("client_id", a.client_id)
        out.leaf("tos_uri", a.tos_uri)
        out.leaf("policy_uri", a.policy_uri)
        out.leaf("software_id", a.software_id)
        out.leaf("software_version", a.software_version)
        out.leaf("client_id_issued_at", _epoch(a.client_id_issued_at))
        # RFC 7591 §3.2.1: 0 means the secret does not expire.
        expires = a.client_secret_expires_at
        out.leaf("client_secret_expires_at", 0 if expires is None else _epoch(expires))
        for contact in a.contacts or ():
            out.leaf("contacts", contact)
        out.leaf("token_endpoint_auth_method", "client_secret_basic")
        for scope in a.scopes:
            out.leaf("scope", scope)
        for grant in a.grant_types:
            if grant in _GRANT_TYPES:
                out.leaf("grant_types", grant)
        out.leaf("response_types", "code")
        out.leaf("registration_client_uri", links.application_information(a.id))
        out.leaf("registration_access_token", registration_access_token)

    title = application.client_name or "ApplicationInformation"
    _, _, published, updated = _meta(application, title)
    return Entry(application.uuid, title, published, updated, entry_links, _resource("ApplicationInformation", fill))


def authorization_entry(
    authorization: Authorization,
    links: ResourceLinks,
    *,
    resource_uri: str | None = None,
    customer_resource_uri: str | None = None,
) -> Entry:
    """ESPI ``Authorization`` entry (``GET Authorization/{id}`` with the client token). Never carries a token.

    ``resourceURI`` defaults to ``Batch/Subscription/{s}`` when the authorization has a subscription (a
    customer's consent), else to the Authorization collection; ``authorizationURI`` is the entry's own URL
    (ESPI-NOTES §4).
    """
    a = authorization
    self_href = links.authorization(a.id)
    entry_links = (
        entry_link("self", self_href, "Authorization"),
        feed_link("up", links.authorizations(), "Authorization"),
    )
    if resource_uri is None:
        subscription = a.subscription
        resource_uri = links.batch_subscription(subscription.id) if subscription is not None else links.authorizations()

    def fill(out: _Lines) -> None:
        # Order of the ESPI 4.0 Authorization sequence.
        out.interval("authorizedPeriod", a.authorized_period_start, a.authorized_period_duration)
        out.interval("publishedPeriod", a.published_period_start, a.published_period_duration)
        out.leaf("status", a.status)
        out.leaf("expires_at", a.expires_at)
        out.leaf("grant_type", a.grant_type if a.grant_type in _GRANT_TYPES else None)
        out.leaf("scope", a.scope)
        out.leaf("token_type", "Bearer")
        out.leaf("error", a.error if a.error in _OAUTH_ERRORS else None)
        out.leaf("error_description", a.error_description)
        out.leaf("error_uri", a.error_uri)
        out.leaf("resourceURI", resource_uri)
        out.leaf("authorizationURI", self_href)
        out.leaf("customerResourceURI", customer_resource_uri)

    return Entry(*_meta(a, f"Authorization {a.id}"), entry_links, _resource("Authorization", fill))


# ----------------------------------------------------------------------------------------------------------
# Documents
# ----------------------------------------------------------------------------------------------------------


def _chunks(pieces: Iterable[str]) -> Iterator[bytes]:
    """Group text pieces into UTF-8 chunks of about :data:`CHUNK_SIZE` characters."""
    buffer: list[str] = []
    size = 0
    for piece in pieces:
        buffer.append(piece)
        size += len(piece)
        if size >= CHUNK_SIZE:
            yield "".join(buffer).encode()
            buffer.clear()
            size = 0
    if buffer:
        yield "".join(buffer).encode()


def feed(
    entries: Iterable[Entry],
    *,
    feed_id: uuid.UUID,
    title: str,
    updated: dt.datetime,
    self_link: Link,
    certification_url: str | None = None,
    links: Sequence[Link] = (),
) -> Iterator[bytes]:
    """Write an Atom feed (RFC 4287 §4.1.1) of ``entries`` as UTF-8 chunks, pulling each entry only when
    needed.

    The feed carries its ``urn:uuid`` id, title, updated, the ``self`` link, the optional ``related`` link to
    the custodian's Green Button certificate (ESPI-NOTES §7) and any ``links`` the caller adds
    (``next``/``previous`` for paging, RFC 5005 §3).
    """
    return _chunks(_feed_pieces(entries, feed_id, title, updated, self_link, certification_url, links))


def _feed_pieces(
    entries: Iterable[Entry],
    feed_id: uuid.UUID,
    title: str,
    updated: dt.datetime,
    self_link: Link,
    certification_url: str | None,
    links: Sequence[Link],
) -> Iterator[str]:
    head = [
        XML_DECLARATION,
        f"<feed {_ROOT_NAMESPACES}>\n",
        f"{_INDENT}<id>{urn(feed_id)}</id>\n",
        f"{_INDENT}<title>{_text(title)}</title>\n",
        f"{_INDENT}<updated>{atom_time(updated)}</updated>\n",
        self_link.render(_INDENT),
    ]
    if certification_url is not None:
        # ESPI 3.3's Atom schema requires a type on every link.
        head.append(Link("related", certification_url, "text/html").render(_INDENT))
    head.extend(link.render(_INDENT) for link in links)
    yield "".join(head)
    for entry in entries:
        yield from entry.pieces(_INDENT)
    yield "</feed>\n"


def entry_document(entry: Entry) -> Iterator[bytes]:
    """Write one entry as the document's root element (RFC 4287 §4.1.2), as UTF-8 chunks."""

    def pieces() -> Iterator[str]:
        yield XML_DECLARATION
        yield from entry.pieces("", root=True)

    return _chunks(pieces())


def service_status_document(current_status: int = 1) -> bytes:
    """The bare ESPI ``ServiceStatus`` document of ``ReadServiceStatus``: 1 is available, 0 unavailable."""
    return (
        f'{XML_DECLARATION}<ServiceStatus xmlns="{ESPI}">\n'
        f"{_INDENT}<currentStatus>{int(current_status)}</currentStatus>\n</ServiceStatus>\n"
    ).encode()


def batch_list_document(resources: Iterable[str]) -> bytes:
    """The ESPI ``BatchList`` pushed to a third party's ``thirdPartyNotifyUri`` (ESPI-NOTES §9): one
    ``resources`` URL per line."""
    lines = [f'{XML_DECLARATION}<BatchList xmlns="{ESPI}">\n']
    lines.extend(f"{_INDENT}<resources>{_text(url)}</resources>\n" for url in resources)
    lines.append("</BatchList>\n")
    return "".join(lines).encode()
