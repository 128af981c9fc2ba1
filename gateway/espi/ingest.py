"""Streaming, transactional, idempotent import of Green Button feeds (NAESB REQ.21 ESPI §5, RFC 4287).

:func:`import_feed` reads a feed (or a single entry) through :mod:`gateway.espi.safe_xml`, one ``atom:entry``
at a time, and writes the ESPI usage resources it finds for one retail customer:

- **Streaming.** Entries are parsed with ``iterparse`` and cleared as soon as they are stored, so memory is
  bounded by the largest entry, not the file. Readings go straight to the database with Core bulk inserts.
- **Any order.** Entries reference each other by their Atom links (``self``, ``up``, ``related``;
  ESPI-NOTES §7), not by position: a ReadingType may follow its MeterReading, IntervalBlocks may precede
  theirs. Only a small index (ids and hrefs) is kept in memory; a block whose MeterReading is not known yet
  has its readings spilled to a temporary file and written when the file ends.
- **Transactional.** Everything happens inside a SAVEPOINT and is flushed, never committed: the caller owns
  the transaction (the CLI commits per file, the upload endpoint per request). A rejected file leaves nothing.
- **Idempotent.** Resources keep their entry's ``urn:uuid`` as ``uuid`` (a non-UUID id gets a stable UUID v5
  from the customer and the self href), so importing the same file twice changes nothing; a re-imported
  IntervalBlock has its readings replaced by the file's. A UsagePoint of another customer is never taken over.
- **Strict or lenient.** Strict (the default) validates every entry against the gateway's schema
  (:func:`gateway.espi.schemas.validation_errors`) and rejects the file with line-numbered errors. Lenient
  recovers what real-world files get wrong (children out of order or wrongly capitalised, a ReadingType nested
  in its MeterReading, foreign elements, date-only or zone-less dates) with line-numbered warnings.

Values are stored as written: an IntervalReading's ``value`` is in the ReadingType's ``uom`` times
10^``powerOfTenMultiplier``; its ``cost`` is always in 10⁻⁵ of the currency, whatever the multiplier
(ESPI-NOTES §7). The report's per-MeterReading totals apply exactly that rule, for the operator to check.
"""

from __future__ import annotations

import datetime as dt
import pickle
import tempfile
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, Any, Final, cast
from urllib.parse import urlsplit

from sqlalchemy import Table, bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from gateway.errors import BadRequest
from gateway.espi.namespaces import ATOM, ESPI
from gateway.espi.safe_xml import DEFAULT_LIMITS, XmlLimits, XmlSource, open_xml, safe_iterparse
from gateway.espi.schemas import SchemaVersion, load_schema, validation_errors
from gateway.espi.writer import AMI_BILLING_READY_KINDS, USAGE_POINT_CONNECTED_KINDS
from gateway.storage.customer import RetailCustomer
from gateway.storage.ids import stable_uuid
from gateway.storage.usage import (
    ElectricPowerQualitySummary,
    IntervalBlock,
    LineItem,
    LocalTimeParameters,
    MeterReading,
    ReadingType,
    UsagePoint,
    UsageSummary,
    interval_reading_table,
)

__all__ = [
    "FeedRejected",
    "ImportIssue",
    "ImportReport",
    "MeterReadingTotals",
    "ResourceCounts",
    "import_feed",
    "validate_entry",
]

MAX_ERRORS: Final = 50
"""A rejected file reports at most this many errors (the first ones, in file order)."""
MAX_WARNINGS: Final = 200
"""At most this many warnings are kept; the rest are counted per code."""
READING_BATCH: Final = 10_000
"""Readings per Core executemany: large enough to amortise round trips, small enough to bound memory."""

# Clark names, compared as strings in the hot loop (parse by namespace URI, never by prefix: ESPI-NOTES §1).
_A = f"{{{ATOM}}}"
_E = f"{{{ESPI}}}"
A_ENTRY: Final = _A + "entry"
A_FEED: Final = _A + "feed"
A_ID: Final = _A + "id"
A_LINK: Final = _A + "link"
A_TITLE: Final = _A + "title"
A_PUBLISHED: Final = _A + "published"
A_UPDATED: Final = _A + "updated"
A_CONTENT: Final = _A + "content"
E_INTERVAL_READING: Final = _E + "IntervalReading"
E_INTERVAL: Final = _E + "interval"
E_TIME_PERIOD: Final = _E + "timePeriod"
E_START: Final = _E + "start"
E_DURATION: Final = _E + "duration"
E_VALUE: Final = _E + "value"
E_COST: Final = _E + "cost"
E_READING_QUALITY: Final = _E + "ReadingQuality"
E_QUALITY: Final = _E + "quality"
E_CONSUMPTION_TIER: Final = _E + "consumptionTier"
E_TOU: Final = _E + "tou"
E_CPP: Final = _E + "cpp"

_UNITS: Final = {
    72: "Wh",
    169: "therm",
    42: "m³",
    38: "W",
    63: "VAr",
    61: "VA",
    73: "VArh",
    71: "VAh",
    29: "V",
    5: "A",
    33: "Hz",
    119: "ft³",
    128: "US gal",
    132: "Btu",
    80: "currency",
}
_CURRENCIES: Final = {840: "USD", 124: "CAD", 978: "EUR", 826: "GBP", 36: "AUD", 484: "MXN", 554: "NZD"}


# ------------------------------------------------------------------------------------------------------------
# Report and errors


@dataclass(frozen=True, slots=True)
class ImportIssue:
    """A line-numbered problem found in a feed; ``code`` is stable (tests and operators match on it)."""

    line: int | None
    code: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line is not None else self.message

    def to_json(self) -> dict[str, Any]:
        return {"line": self.line, "code": self.code, "message": self.message}


class FeedRejected(BadRequest):
    """A feed was refused as a whole (strict-mode schema errors, unresolvable references, another owner)."""

    code = "feed_rejected"
    title = "Feed rejected"

    def __init__(self, errors: list[ImportIssue]) -> None:
        shown = "; ".join(str(issue) for issue in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        super().__init__(
            f"feed rejected with {len(errors)} error(s): {shown}{more}", errors=[e.to_json() for e in errors]
        )
        self.errors = errors


@dataclass(slots=True)
class ResourceCounts:
    """How many resources of one kind the file held, by what happened to them."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0

    @property
    def total(self) -> int:
        return self.created + self.updated + self.unchanged

    def to_json(self) -> dict[str, int]:
        return {
            "total": self.total,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
        }


@dataclass(slots=True)
class MeterReadingTotals:
    """Sums over one MeterReading's imported readings, in the base unit and in currency units.

    ``value`` is in ``uom`` times 10^``power_of_ten_multiplier``; ``cost`` is in 10⁻⁵ currency regardless of
    the multiplier (ESPI-NOTES §7), so ``consumption = value_sum * 10^multiplier`` and ``cost = cost_sum /
    100000``.
    """

    uuid: str
    readings: int = 0
    value_sum: int = 0
    cost_sum: int = 0
    has_cost: bool = False
    uom: int | None = None
    power_of_ten_multiplier: int | None = None
    currency: int | None = None

    @property
    def consumption(self) -> float:
        return float(self.value_sum) * 10.0 ** (self.power_of_ten_multiplier or 0)

    @property
    def cost(self) -> float | None:
        return self.cost_sum / 100_000 if self.has_cost else None

    def to_json(self) -> dict[str, Any]:
        return {
            "meter_reading": self.uuid,
            "readings": self.readings,
            "value_sum": self.value_sum,
            "power_of_ten_multiplier": self.power_of_ten_multiplier,
            "uom": self.uom,
            "unit": _UNITS.get(self.uom, f"uom {self.uom}") if self.uom is not None else None,
            "consumption": self.consumption,
            "cost_sum": self.cost_sum if self.has_cost else None,
            "currency": _CURRENCIES.get(self.currency, self.currency) if self.currency is not None else None,
            "cost": self.cost,
        }


@dataclass(slots=True)
class ImportReport:
    """What :func:`import_feed` did: counts per resource kind, warnings, and per-MeterReading totals."""

    usage_points: ResourceCounts = field(default_factory=ResourceCounts)
    meter_readings: ResourceCounts = field(default_factory=ResourceCounts)
    reading_types: ResourceCounts = field(default_factory=ResourceCounts)
    local_time_parameters: ResourceCounts = field(default_factory=ResourceCounts)
    interval_blocks: ResourceCounts = field(default_factory=ResourceCounts)
    """``updated`` counts blocks whose readings were replaced."""
    interval_readings: int = 0
    """Readings in the file's imported blocks."""
    interval_readings_written: int = 0
    """Readings inserted (0 on an idempotent re-import)."""
    usage_summaries: ResourceCounts = field(default_factory=ResourceCounts)
    power_quality_summaries: ResourceCounts = field(default_factory=ResourceCounts)
    warnings: list[ImportIssue] = field(default_factory=list)
    warnings_suppressed: dict[str, int] = field(default_factory=dict)
    totals: dict[str, MeterReadingTotals] = field(default_factory=dict)
    bytes: int = 0
    lenient: bool = False

    @property
    def warning_count(self) -> int:
        return len(self.warnings) + sum(self.warnings_suppressed.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "bytes": self.bytes,
            "mode": "lenient" if self.lenient else "strict",
            "usage_points": self.usage_points.to_json(),
            "meter_readings": self.meter_readings.to_json(),
            "reading_types": self.reading_types.to_json(),
            "local_time_parameters": self.local_time_parameters.to_json(),
            "interval_blocks": self.interval_blocks.to_json(),
            "interval_readings": self.interval_readings,
            "interval_readings_written": self.interval_readings_written,
            "usage_summaries": self.usage_summaries.to_json(),
            "power_quality_summaries": self.power_quality_summaries.to_json(),
            "warning_count": self.warning_count,
            "warnings": [w.to_json() for w in self.warnings],
            "warnings_suppressed": dict(self.warnings_suppressed),
            "meter_reading_totals": [t.to_json() for t in self.totals.values()],
        }


# ------------------------------------------------------------------------------------------------------------
# Small parsing helpers


def _local(tag: Any) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _namespace(tag: Any) -> str:
    return tag[1:].partition("}")[0] if isinstance(tag, str) and tag.startswith("{") else ""


def _normalise_href(href: str) -> str:
    """The resource path of an href: no scheme, host, query or ``…/espi/1_1/resource/`` base (ESPI-NOTES
    §2)."""
    parts = urlsplit(href.strip())
    path = parts.path
    if "/resource/" in path:
        path = path.split("/resource/", 1)[1]
    return path.strip("/")


def _segment_after(path: str, name: str) -> tuple[str, str] | None:
    """``(prefix up to and including name/{id}, "name/{id}")`` for the last ``name/{id}`` pair in ``path``."""
    segments = path.split("/")
    for index in range(len(segments) - 2, -1, -1):
        if segments[index] == name and segments[index + 1]:
            return "/".join(segments[: index + 2]), f"{name}/{segments[index + 1]}"
    return None


def _parse_uuid(text: str | None) -> uuid.UUID | None:
    if not text:
        return None
    value = text.strip()
    if value.lower().startswith("urn:uuid:"):
        value = value[9:]
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


@dataclass(slots=True)
class _Entry:
    """The Atom envelope of one entry (RFC 4287 §4.1.2), detached from the tree."""

    line: int
    id_text: str | None = None
    title: str | None = None
    published: dt.datetime | None = None
    updated: dt.datetime | None = None
    links: list[tuple[str, str]] = field(default_factory=list)
    resources: list[Any] = field(default_factory=list)

    def hrefs(self, rel: str) -> list[str]:
        return [_normalise_href(href) for link_rel, href in self.links if link_rel == rel]

    @property
    def self_href(self) -> str | None:
        hrefs = self.hrefs("self")
        return hrefs[0] if hrefs else None


@dataclass(slots=True)
class _Ref:
    """What the importer remembers of a stored resource: its row id and how other entries may refer to it."""

    kind: str
    uuid: uuid.UUID
    line: int
    row_id: int | None = None
    self_href: str | None = None


@dataclass(slots=True)
class _PendingMeterReading:
    ref: _Ref
    entry: _Entry
    up_candidates: list[str]
    rt_candidates: list[str]
    nested_reading_type: tuple[int, dict[str, Any]] | None
    """(line, column values) of a ReadingType nested in the MeterReading (sample 12)."""


@dataclass(slots=True)
class _PendingBlock:
    """A block whose MeterReading was not resolved when it was read; its readings wait in the spill file."""

    uuid: uuid.UUID
    line: int
    mr_candidates: list[str]
    self_href: str | None
    values: dict[str, Any]
    spill_offset: int


@dataclass(slots=True)
class _PendingSummary:
    model: type[UsageSummary] | type[ElectricPowerQualitySummary]
    uuid: uuid.UUID
    line: int
    up_candidates: list[str]
    values: dict[str, Any]
    line_items: list[dict[str, Any]] | None


_BLOCKS: Final = cast(Table, IntervalBlock.__table__)
_FIND_BLOCK: Final = (
    select(_BLOCKS.c.id, _BLOCKS.c.meter_reading_id, _BLOCKS.c.start, _BLOCKS.c.duration, UsagePoint.customer_id)
    .join(MeterReading, MeterReading.id == _BLOCKS.c.meter_reading_id)
    .join(UsagePoint, UsagePoint.id == MeterReading.usage_point_id)
    .where(_BLOCKS.c.uuid == bindparam("block_uuid"))
)
_INSERT_BLOCK: Final = insert(_BLOCKS)
_STORED_READINGS: Final = (
    select(
        *(
            interval_reading_table.c[name]
            for name in ("start", "duration", "value", "cost", "quality", "consumption_tier", "tou", "cpp")
        )
    )
    .where(interval_reading_table.c.interval_block_id == bindparam("block_id"))
    .order_by(interval_reading_table.c.start)
)
_DELETE_READINGS: Final = delete(interval_reading_table).where(
    interval_reading_table.c.interval_block_id == bindparam("block_id")
)
_READING_COLUMNS: Final = (
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
_Row = tuple[int, int, int | None, int | None, str | None, int | None, int | None, int | None]
"""An IntervalReading as stored: start, duration, value, cost, quality, consumption tier, tou, cpp."""

# ESPI element name → (column, converter) per resource (NAESB REQ.21 ESPI 4.0 espi.xsd); converters below.
_INT, _BOOL, _STR, _MEASUREMENT, _INTERVAL, _HEX = "int", "bool", "str", "measurement", "interval", "hex"

_USAGE_POINT_FIELDS: Final[dict[str, tuple[str, str]]] = {
    "roleFlags": ("role_flags", _HEX),
    "status": ("status", _INT),
    "amiBillingReady": ("ami_billing_ready", "enum"),
    "checkBilling": ("check_billing", _BOOL),
    "connectionState": ("connection_state", "enum"),
    "grounded": ("grounded", _BOOL),
    "isSdp": ("is_sdp", _BOOL),
    "isVirtual": ("is_virtual", _BOOL),
    "minimalUsageExpected": ("minimal_usage_expected", _BOOL),
    "outageRegion": ("outage_region", _STR),
    "phaseCode": ("phase_code", _INT),
    "readCycle": ("read_cycle", _STR),
    "readRoute": ("read_route", _STR),
    "serviceDeliveryRemark": ("service_delivery_remark", _STR),
    "servicePriority": ("service_priority", _STR),
    "estimatedLoad": ("measurements", _MEASUREMENT),
    "nominalServiceVoltage": ("measurements", _MEASUREMENT),
    "ratedCurrent": ("measurements", _MEASUREMENT),
    "ratedPower": ("measurements", _MEASUREMENT),
    # Handled specially or deliberately not stored (no column in the model).
    "ServiceCategory": ("", "special"),
    "serviceDeliveryPoint": ("", "special"),
    "pnodeRefs": ("", "ignore"),
    "aggregateNodeRefs": ("", "ignore"),
    "batchItemInfo": ("", "ignore"),
}

_READING_TYPE_FIELDS: Final[dict[str, tuple[str, str]]] = {
    "accumulationBehaviour": ("accumulation_behaviour", _INT),
    "commodity": ("commodity", _INT),
    "consumptionTier": ("consumption_tier", _INT),
    "currency": ("currency", _INT),
    "dataQualifier": ("data_qualifier", _INT),
    "defaultQuality": ("default_quality", _INT),
    "flowDirection": ("flow_direction", _INT),
    "intervalLength": ("interval_length", _INT),
    "kind": ("kind", _INT),
    "phase": ("phase", _INT),
    "powerOfTenMultiplier": ("power_of_ten_multiplier", _INT),
    "timeAttribute": ("time_attribute", _INT),
    "tou": ("tou", _INT),
    "uom": ("uom", _INT),
    "cpp": ("cpp", _INT),
    "interharmonic": ("interharmonic", "rational"),
    "measuringPeriod": ("measuring_period", _INT),
    "argument": ("argument", "rational"),
    "batchItemInfo": ("", "ignore"),
}

_LOCAL_TIME_FIELDS: Final[dict[str, tuple[str, str]]] = {
    "dstEndRule": ("dst_end_rule", _HEX),
    "dstOffset": ("dst_offset", _INT),
    "dstStartRule": ("dst_start_rule", _HEX),
    "tzOffset": ("tz_offset", _INT),
    "batchItemInfo": ("", "ignore"),
}

_USAGE_SUMMARY_FIELDS: Final[dict[str, tuple[str, str]]] = {
    "billingPeriod": ("billing_period", _INTERVAL),
    "billLastPeriod": ("bill_last_period", _INT),
    "billToDate": ("bill_to_date", _INT),
    "costAdditionalLastPeriod": ("cost_additional_last_period", _INT),
    "costAdditionalDetailLastPeriod": ("", "special"),
    "currency": ("currency", _INT),
    "qualityOfReading": ("quality_of_reading", _INT),
    "ratchetDemandPeriod": ("ratchet_demand_period", _INTERVAL),
    "statusTimeStamp": ("status_time_stamp", _INT),
    "commodity": ("commodity", _INT),
    "tariffProfile": ("tariff_profile", _STR),
    "readCycle": ("read_cycle", _STR),
    "tariffRiderRefs": ("tariff_rider_refs", "riders"),
    "billingChargeSource": ("billing_charge_source", "text_content"),
    "batchItemInfo": ("", "ignore"),
    **{
        name: ("measurements", _MEASUREMENT)
        for name in (
            "overallConsumptionLastPeriod",
            "currentBillingPeriodOverAllConsumption",
            "currentDayLastYearNetConsumption",
            "currentDayNetConsumption",
            "currentDayOverallConsumption",
            "peakDemand",
            "previousDayLastYearOverallConsumption",
            "previousDayNetConsumption",
            "previousDayOverallConsumption",
            "ratchetDemand",
        )
    },
}

_QUALITY_SUMMARY_FIELDS: Final[dict[str, tuple[str, str]]] = {
    "flickerPlt": ("flicker_plt", _INT),
    "flickerPst": ("flicker_pst", _INT),
    "harmonicVoltage": ("harmonic_voltage", _INT),
    "longInterruptions": ("long_interruptions", _INT),
    "mainsVoltage": ("mains_voltage", _INT),
    "measurementProtocol": ("measurement_protocol", _INT),
    "powerFrequency": ("power_frequency", _INT),
    "rapidVoltageChanges": ("rapid_voltage_changes", _INT),
    "shortInterruptions": ("short_interruptions", _INT),
    "summaryInterval": ("summary_interval", _INTERVAL),
    "supplyVoltageDips": ("supply_voltage_dips", _INT),
    "supplyVoltageImbalance": ("supply_voltage_imbalance", _INT),
    "supplyVoltageVariations": ("supply_voltage_variations", _INT),
    "tempOvervoltage": ("temp_overvoltage", _INT),
    "batchItemInfo": ("", "ignore"),
}

_LINE_ITEM_FIELDS: Final[dict[str, tuple[str, str]]] = {
    "amount": ("amount", _INT),
    "rounding": ("rounding", _INT),
    "dateTime": ("date_time", _INT),
    "note": ("note", _STR),
    "measurement": ("measurement", "measurement_dict"),
    "itemKind": ("item_kind", _INT),
    "unitCost": ("unit_cost", _INT),
    "itemPeriod": ("item_period", _INTERVAL),
}

_ENUMERATIONS: Final[dict[str, tuple[str, ...]]] = {
    "amiBillingReady": tuple(AMI_BILLING_READY_KINDS),
    "connectionState": tuple(USAGE_POINT_CONNECTED_KINDS),
}
_LINE_ITEM_COLUMNS: Final = (
    "amount",
    "rounding",
    "date_time",
    "note",
    "measurement",
    "item_kind",
    "unit_cost",
    "item_period_start",
    "item_period_duration",
)
_SERVICE_DELIVERY_POINT_FIELDS: Final = ("name", "tariffProfile", "customerAgreement")
_SUPPORTED: Final = frozenset(
    {
        "UsagePoint",
        "MeterReading",
        "ReadingType",
        "IntervalBlock",
        "UsageSummary",
        "ElectricPowerUsageSummary",
        "ElectricPowerQualitySummary",
        "LocalTimeParameters",
    }
)


def validate_entry(entry: Any) -> list[ImportIssue]:
    """Schema errors of one ``atom:entry`` against our schema (validated as a document of its own, with its
    source line numbers). Thread-safe: the compiled schema is shared, its error log is not."""
    return [
        ImportIssue(e.line, "schema", e.message)
        for e in validation_errors(entry, SchemaVersion.OURS)
        # libxml2 follows each bad value with a "no precomputed value" warning that adds nothing.
        if "No precomputed value" not in e.message
    ]


def _load_schema() -> Any:
    """The gateway's strict schema ("ours"); compiled once per process, so loading it here costs nothing.

    Loaded before the first entry so that a broken installation fails the import at once, not mid-file.
    """
    return load_schema(SchemaVersion.OURS)


# ------------------------------------------------------------------------------------------------------------
# The importer


class _Importer:
    """One import: the in-memory index, the spill file, and the report."""

    def __init__(self, session: Session, customer: RetailCustomer, *, lenient: bool, schema: Any | None) -> None:
        self.session = session
        # Core statements for blocks and readings go to the connection directly: Session.execute would add ORM
        # bookkeeping (autoflush, ORM compile state) to every one of them.
        self.connection = session.connection()
        self.customer = customer
        self.lenient = lenient
        self.schema = schema
        self.report = ImportReport(lenient=lenient)
        self.errors: list[ImportIssue] = []
        self.error_overflow = 0
        # Index: href keys → refs. Keys are normalised resource paths or "Kind/{id}" pairs.
        self.usage_points: dict[str, _Ref] = {}
        self.usage_points_by_related: dict[str, _Ref] = {}
        self.usage_point_refs: list[_Ref] = []
        self.meter_readings: dict[str, _Ref] = {}
        self.meter_readings_by_related: dict[str, _Ref] = {}
        self.reading_types: dict[str, _Ref] = {}
        self.reading_type_refs: list[_Ref] = []
        self.local_times: dict[str, _Ref] = {}
        self.usage_point_local_time: list[tuple[_Ref, list[str]]] = []
        self.pending_meter_readings: list[_PendingMeterReading] = []
        self.pending_blocks: list[_PendingBlock] = []
        self.pending_summaries: list[_PendingSummary] = []
        self.spill: IO[bytes] | None = None
        self.reading_buffer: list[tuple[Any, ...]] = []
        self.insert_sql: str | None = None
        self.insert_order: list[int] | None = None
        self.totals_by_row: dict[int, MeterReadingTotals] = {}

    # -- issues ----------------------------------------------------------------------------------------------

    @property
    def rejected(self) -> bool:
        return bool(self.errors)

    def error(self, line: int | None, code: str, message: str) -> None:
        """A problem that rejects the file in either mode."""
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(ImportIssue(line, code, message))
        else:
            self.error_overflow += 1

    def problem(self, line: int | None, code: str, message: str) -> None:
        """A problem lenient mode recovers from (a warning) and strict mode rejects (an error)."""
        if self.lenient:
            self.warn(line, code, message)
        else:
            self.error(line, code, message)

    def warn(self, line: int | None, code: str, message: str) -> None:
        report = self.report
        if len(report.warnings) < MAX_WARNINGS:
            report.warnings.append(ImportIssue(line, code, message))
        else:
            report.warnings_suppressed[code] = report.warnings_suppressed.get(code, 0) + 1

    # -- value conversion ------------------------------------------------------------------------------------

    def integer(self, element: Any, name: str) -> int | None:
        text = (element.text or "").strip()
        try:
            return int(text)
        except ValueError:
            self.problem(element.sourceline, "bad_value", f"{name} must be an integer, not {text!r}")
            return None

    def boolean(self, element: Any, name: str) -> bool | None:
        text = (element.text or "").strip().lower()
        if text in {"true", "1"}:
            return True
        if text in {"false", "0"}:
            return False
        self.problem(element.sourceline, "bad_value", f"{name} must be true or false, not {text!r}")
        return None

    def interval(self, element: Any, name: str) -> tuple[int | None, int | None]:
        """ESPI ``DateTimeInterval``: (start, duration) in UTC epoch seconds."""
        values = self.fields(element, {"start": ("start", _INT), "duration": ("duration", _INT)}, name)
        return values.get("start"), values.get("duration")

    def measurement(self, element: Any, name: str) -> dict[str, Any]:
        """ESPI ``SummaryMeasurement`` as a dict under its ESPI field names."""
        spec = {
            "powerOfTenMultiplier": ("powerOfTenMultiplier", _INT),
            "timeStamp": ("timeStamp", _INT),
            "uom": ("uom", _INT),
            "value": ("value", _INT),
            "readingTypeRef": ("readingTypeRef", _STR),
        }
        return self.fields(element, spec, name)

    def date(self, element: Any) -> dt.datetime | None:
        """An Atom date (RFC 4287 §3.3, ``xs:dateTime`` with a zone); lenient accepts dates and zone-less
        times."""
        text = (element.text or "").strip()
        line = element.sourceline
        try:
            value = dt.datetime.fromisoformat(text)
        except ValueError:
            self.problem(line, "bad_date", f"{_local(element.tag)} {text!r} is not a date-time")
            return None
        if "T" not in text:
            self.problem(
                line,
                "date_only",
                f"{_local(element.tag)} {text!r} is a date without a time (taken as 00:00Z)",
            )
        elif value.tzinfo is None:
            self.problem(line, "no_timezone", f"{_local(element.tag)} {text!r} has no time zone (taken as UTC)")
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).replace(microsecond=0)

    def fields(self, element: Any, spec: dict[str, tuple[str, str]], owner: str) -> dict[str, Any]:
        """Read an ESPI complex element's children by name, in any order (lenient about case and foreign
        elements).

        Strict mode leaves order and content checks to the schema; what the schema cannot see (values that do
        not fit) still comes back as issues.
        """
        values: dict[str, Any] = {}
        folded: dict[str, str] | None = None
        for child in element:
            tag = child.tag
            if not isinstance(tag, str):
                continue
            local = _local(tag)
            name = local
            if _namespace(tag) != ESPI:
                self.problem(child.sourceline, "foreign_element", f"{owner}: element {tag} is not ESPI (ignored)")
                continue
            if name not in spec:
                if folded is None:
                    folded = {key.lower(): key for key in spec}
                match = folded.get(name.lower())
                if match is None:
                    self.problem(child.sourceline, "unknown_element", f"{owner}: unknown element {local} (ignored)")
                    continue
                self.problem(child.sourceline, "element_case", f"{owner}: element {local} should be spelt {match}")
                name = match
            column, kind = spec[name]
            if kind == _INT:
                values[column] = self.integer(child, name)
            elif kind == _STR:
                values[column] = (child.text or "").strip()[:256]
            elif kind == _HEX:
                values[column] = (child.text or "").strip().upper()[:8]
            elif kind == _BOOL:
                values[column] = self.boolean(child, name)
            elif kind == _INTERVAL:
                start, duration = self.interval(child, name)
                values[column + "_start"] = start
                values[column + "_duration"] = duration
            elif kind == _MEASUREMENT:
                values.setdefault("measurements", {})[name] = self.measurement(child, name)
            elif kind == "measurement_dict":
                values[column] = self.measurement(child, name)
            elif kind == "enum":
                # ESPI string enumerations are stored as their index in schema order (as the writer does).
                names = _ENUMERATIONS[name]
                text = (child.text or "").strip()
                if text in names:
                    values[column] = names.index(text)
                else:
                    self.problem(child.sourceline, "bad_value", f"{name} {text!r} is not one of {', '.join(names)}")
            elif kind == "rational":
                parts = self.fields(
                    child, {"numerator": ("numerator", _INT), "denominator": ("denominator", _INT)}, name
                )
                values[column + "_numerator"] = parts.get("numerator")
                values[column + "_denominator"] = parts.get("denominator")
            elif kind == "riders":
                values[column] = self.riders(child)
            elif kind == "text_content":
                values[column] = " ".join(t.strip() for t in child.itertext() if t.strip())[:256] or None
            elif kind == "special":
                values.setdefault("_special", []).append((name, child))
            # "ignore": known ESPI content with no column in our model.
        return values

    def riders(self, element: Any) -> list[dict[str, Any]]:
        spec = {
            "riderType": ("riderType", _STR),
            "enrollmentStatus": ("enrollmentStatus", _STR),
            "effectiveDate": ("effectiveDate", _INT),
        }
        return [
            self.fields(child, spec, "tariffRiderRef") for child in element if _local(child.tag) == "tariffRiderRef"
        ]

    # -- identity --------------------------------------------------------------------------------------------

    def entry_uuid(self, entry: _Entry, kind: str) -> uuid.UUID:
        """The entry's ``urn:uuid`` id, or a UUID v5 of the customer and the self href (ESPI-NOTES §7)."""
        parsed = _parse_uuid(entry.id_text)
        if parsed is not None:
            return parsed
        key = entry.self_href or entry.id_text or f"line {entry.line}"
        if entry.id_text is not None:
            self.warn(
                entry.line,
                "id_not_uuid",
                f"entry id {entry.id_text!r} is not a urn:uuid (a stable one is derived)",
            )
        return stable_uuid("Imported" + kind, self.customer.uuid, key)

    def remember(self, index: dict[str, _Ref], key: str, ref: _Ref, kind: str) -> None:
        previous = index.get(key)
        if previous is not None and previous.uuid != ref.uuid:
            self.problem(
                ref.line,
                "duplicate_href",
                f"{kind} {key} also appears at line {previous.line} (the later one wins)",
            )
        index[key] = ref

    # -- entries ---------------------------------------------------------------------------------------------

    def read_entry(self, element: Any) -> _Entry:
        entry = _Entry(line=element.sourceline or 0)
        for child in element:
            tag = child.tag
            if tag == A_CONTENT:
                for resource in child:
                    if not isinstance(resource.tag, str):
                        continue
                    if resource.tag.startswith(_A):
                        # UtilityAPI puts atom:published/updated inside content (sample 11).
                        self.problem(resource.sourceline, "misplaced_element", f"{_local(resource.tag)} inside content")
                        self.read_envelope(entry, resource)
                    else:
                        entry.resources.append(resource)
            else:
                self.read_envelope(entry, child)
        return entry

    def read_envelope(self, entry: _Entry, child: Any) -> None:
        tag = child.tag
        if tag == A_ID:
            entry.id_text = (child.text or "").strip()
        elif tag == A_LINK:
            href = child.get("href")
            if href:
                entry.links.append((child.get("rel") or "alternate", href))
        elif tag == A_TITLE:
            entry.title = (child.text or "").strip()[:256] or None
        elif tag == A_PUBLISHED:
            entry.published = self.date(child)
        elif tag == A_UPDATED:
            entry.updated = self.date(child)

    def handle_entry(self, element: Any) -> None:
        if self.schema is not None:
            issues = validate_entry(element)
            for issue in issues[:10]:
                self.problem(issue.line, "schema", issue.message)
        entry = self.read_entry(element)
        if not entry.resources:
            self.problem(entry.line, "empty_entry", "entry has no ESPI resource in its content (ignored)")
            return
        blocks = [r for r in entry.resources if r.tag == _E + "IntervalBlock"]
        for resource in entry.resources:
            kind = _local(resource.tag)
            if _namespace(resource.tag) != ESPI:
                self.warn(
                    resource.sourceline,
                    "ignored_resource",
                    f"{resource.tag} is not an ESPI usage resource (ignored)",
                )
                continue
            if kind not in _SUPPORTED:
                self.warn(resource.sourceline, "ignored_resource", f"{kind} entries are not imported (ignored)")
                continue
            if self.rejected and not self.lenient:
                continue  # keep collecting schema errors, stop writing
            if kind == "IntervalBlock":
                position = blocks.index(resource)
                self.handle_interval_block(entry, resource, position if len(blocks) > 1 else None)
            elif kind == "UsagePoint":
                self.handle_usage_point(entry, resource)
            elif kind == "MeterReading":
                self.handle_meter_reading(entry, resource)
            elif kind == "ReadingType":
                self.handle_reading_type(entry, resource)
            elif kind == "LocalTimeParameters":
                self.handle_local_time(entry, resource)
            elif kind in {"UsageSummary", "ElectricPowerUsageSummary"}:
                self.handle_summary(entry, resource, UsageSummary, _USAGE_SUMMARY_FIELDS)
            else:
                self.handle_summary(entry, resource, ElectricPowerQualitySummary, _QUALITY_SUMMARY_FIELDS)

    # -- ORM upsert of the small resources -------------------------------------------------------------------

    def upsert(self, model: type[Any], key: uuid.UUID, values: dict[str, Any], counts: ResourceCounts) -> Any:
        """Insert or update one resource by uuid; count whether it was created, updated or unchanged."""
        row = self.session.scalar(select(model).where(model.uuid == key))
        if row is None:
            row = model(uuid=key, **values)
            self.session.add(row)
            self.session.flush()
            counts.created += 1
            return row
        changed = False
        for name, value in values.items():
            if getattr(row, name) != value:
                setattr(row, name, value)
                changed = True
        if changed:
            self.session.flush()
            counts.updated += 1
        else:
            counts.unchanged += 1
        return row

    def unshared(
        self,
        model: type[ReadingType] | type[LocalTimeParameters],
        key: uuid.UUID,
        values: dict[str, Any],
        line: int,
    ) -> uuid.UUID:
        """The uuid to store shared reference data under without altering another customer's data.

        ReadingType and LocalTimeParameters are shared (ESPI-NOTES §2): two files may carry the same id. If
        the stored one differs and another customer's data uses it, changing it would silently rescale or
        shift their readings, so this customer gets its own copy under a stable derived uuid.
        """
        row = cast(
            "ReadingType | LocalTimeParameters | None",
            self.session.scalar(select(model).where(model.uuid == key)),
        )
        if row is None or all(getattr(row, name) == value for name, value in values.items()):
            return key
        if model is ReadingType:
            others = (
                select(UsagePoint.id)
                .join(MeterReading, MeterReading.usage_point_id == UsagePoint.id)
                .where(MeterReading.reading_type_id == row.id, UsagePoint.customer_id != self.customer.id)
            )
        else:
            others = select(UsagePoint.id).where(
                UsagePoint.local_time_parameters_id == row.id, UsagePoint.customer_id != self.customer.id
            )
        if self.session.scalar(others.limit(1)) is None:
            return key
        self.warn(
            line,
            "shared_resource_copied",
            f"{model.__name__} {key} is used by another customer with other values: imported as a copy",
        )
        return stable_uuid("Imported" + model.__name__, self.customer.uuid, key)

    def envelope_values(self, entry: _Entry) -> dict[str, Any]:
        """Atom title → ``description``; published/updated only when the file has them (so re-imports
        match)."""
        values: dict[str, Any] = {}
        if entry.title is not None:
            values["description"] = entry.title
        if entry.published is not None:
            values["published"] = entry.published
        if entry.updated is not None:
            values["updated"] = entry.updated
        return values

    # -- LocalTimeParameters, ReadingType --------------------------------------------------------------------

    def handle_local_time(self, entry: _Entry, element: Any) -> None:
        key = self.entry_uuid(entry, "LocalTimeParameters")
        values = self.fields(element, _LOCAL_TIME_FIELDS, "LocalTimeParameters")
        missing = [
            name for name in ("dst_end_rule", "dst_offset", "dst_start_rule", "tz_offset") if values.get(name) is None
        ]
        if missing:
            self.problem(entry.line, "missing_field", f"LocalTimeParameters lacks {', '.join(missing)} (not imported)")
            return
        key = self.unshared(LocalTimeParameters, key, values, entry.line)
        row = self.upsert(
            LocalTimeParameters,
            key,
            {**values, **self.envelope_values(entry)},
            self.report.local_time_parameters,
        )
        ref = _Ref("LocalTimeParameters", key, entry.line, row.id, entry.self_href)
        for href in entry.hrefs("self"):
            pair = _segment_after(href, "LocalTimeParameters")
            self.remember(self.local_times, pair[1] if pair else href, ref, "LocalTimeParameters")

    def reading_type_values(self, element: Any) -> dict[str, Any]:
        values = self.fields(element, _READING_TYPE_FIELDS, "ReadingType")
        return values

    def handle_reading_type(self, entry: _Entry, element: Any) -> None:
        key = self.entry_uuid(entry, "ReadingType")
        values = self.reading_type_values(element)
        key = self.unshared(ReadingType, key, values, entry.line)
        row = self.upsert(ReadingType, key, {**values, **self.envelope_values(entry)}, self.report.reading_types)
        ref = _Ref("ReadingType", key, entry.line, row.id, entry.self_href)
        self.reading_type_refs.append(ref)
        for href in entry.hrefs("self"):
            pair = _segment_after(href, "ReadingType")
            self.remember(self.reading_types, pair[1] if pair else href, ref, "ReadingType")
        self.retry_meter_readings()

    # -- UsagePoint ------------------------------------------------------------------------------------------

    def handle_usage_point(self, entry: _Entry, element: Any) -> None:
        key = self.entry_uuid(entry, "UsagePoint")
        values = self.fields(element, _USAGE_POINT_FIELDS, "UsagePoint")
        for name, child in values.pop("_special", []):
            if name == "ServiceCategory":
                kind = self.fields(child, {"kind": ("kind", _INT)}, "ServiceCategory").get("kind")
                if kind is not None:
                    values["service_kind"] = kind
            elif name == "serviceDeliveryPoint":
                point = self.fields(
                    child,
                    {
                        **{n: (n, _STR) for n in _SERVICE_DELIVERY_POINT_FIELDS},
                        "tariffRiderRefs": ("tariffRiderRefs", "riders"),
                    },
                    "serviceDeliveryPoint",
                )
                values["service_delivery_point"] = point
        values.setdefault("service_kind", 0)
        existing = self.session.execute(
            select(UsagePoint.id, UsagePoint.customer_id).where(UsagePoint.uuid == key)
        ).first()
        if existing is not None and existing.customer_id != self.customer.id:
            self.error(
                entry.line,
                "owned_by_another_customer",
                f"UsagePoint {key} belongs to another customer: it cannot be imported for {self.customer.username!r}",
            )
            return
        row = self.upsert(
            UsagePoint,
            key,
            {"customer_id": self.customer.id, **values, **self.envelope_values(entry)},
            self.report.usage_points,
        )
        ref = _Ref("UsagePoint", key, entry.line, row.id, entry.self_href)
        self.usage_point_refs.append(ref)
        for href in entry.hrefs("self"):
            self.remember(self.usage_points, href, ref, "UsagePoint")
            pair = _segment_after(href, "UsagePoint")
            if pair is not None:
                self.usage_points.setdefault(pair[1], ref)
        # Opower links a UsagePoint to its MeterReadings under another base path (sample 07): keep those too.
        local_time: list[str] = []
        for href in entry.hrefs("related"):
            if "MeterReading/" in href:
                self.usage_points_by_related[href] = ref
            pair = _segment_after(href, "LocalTimeParameters")
            if pair is not None:
                local_time.append(pair[1])
        if local_time:
            self.usage_point_local_time.append((ref, local_time))
        self.retry_meter_readings()
        self.retry_summaries()

    def find_usage_point(self, candidates: Iterable[str]) -> _Ref | None:
        for href in candidates:
            ref = self.usage_points.get(href) or self.usage_points_by_related.get(href)
            if ref is not None:
                return ref
            full = _segment_after(href, "UsagePoint")
            if full is not None:
                ref = self.usage_points.get(full[0]) or self.usage_points.get(full[1])
                if ref is not None:
                    return ref
        return None

    # -- MeterReading ----------------------------------------------------------------------------------------

    def handle_meter_reading(self, entry: _Entry, element: Any) -> None:
        key = self.entry_uuid(entry, "MeterReading")
        nested: tuple[int, dict[str, Any]] | None = None
        for child in element:
            if child.tag == _E + "ReadingType":
                # GBA's 2025 sample nests the ReadingType (sample 12); ESPI wants its own entry (ESPI-NOTES
                # §7). Read it now: the entry's elements are cleared before a pending MeterReading is stored.
                self.problem(
                    child.sourceline,
                    "nested_reading_type",
                    "ReadingType nested in MeterReading (imported as its own)",
                )
                nested = (child.sourceline, self.reading_type_values(child))
            elif isinstance(child.tag, str) and _local(child.tag) != "batchItemInfo":
                self.problem(
                    child.sourceline,
                    "unknown_element",
                    f"MeterReading: unexpected element {_local(child.tag)} (ignored)",
                )
        up_candidates = entry.hrefs("self") + entry.hrefs("up")
        rt_candidates = [h for h in entry.hrefs("related") if "ReadingType" in h]
        ref = _Ref("MeterReading", key, entry.line, None, entry.self_href)
        for href in entry.hrefs("self"):
            self.remember(self.meter_readings, href, ref, "MeterReading")
            tail = _meter_reading_tail(href)
            if tail is not None:
                self.meter_readings.setdefault(tail, ref)
        for href in entry.hrefs("related"):
            if "IntervalBlock/" in href:
                self.meter_readings_by_related[href] = ref
        pending = _PendingMeterReading(ref, entry, up_candidates, rt_candidates, nested)
        if not self.write_meter_reading(pending, final=False):
            self.pending_meter_readings.append(pending)

    def write_meter_reading(self, pending: _PendingMeterReading, *, final: bool) -> bool:
        """Store a MeterReading once its UsagePoint and ReadingType are known; False if they are not yet."""
        ref, entry = pending.ref, pending.entry
        up = self.find_usage_point(pending.up_candidates)
        rt = None
        for href in pending.rt_candidates:
            pair = _segment_after(href, "ReadingType")
            rt = self.reading_types.get(pair[1] if pair else href)
            if rt is not None:
                break
        if rt is None and pending.nested_reading_type is not None and up is not None:
            line, values = pending.nested_reading_type
            rt_key = self.unshared(ReadingType, stable_uuid("ImportedReadingType", ref.uuid), values, line)
            row = self.upsert(ReadingType, rt_key, values, self.report.reading_types)
            rt = _Ref("ReadingType", rt_key, line, row.id)
        if not final and (up is None or rt is None):
            return False
        if up is None and len(self.usage_point_refs) == 1:
            up = self.usage_point_refs[0]
            self.problem(
                ref.line,
                "parent_guessed",
                "MeterReading has no link to its UsagePoint (the file's only one used)",
            )
        if rt is None and not pending.rt_candidates and len(self.reading_type_refs) == 1:
            rt = self.reading_type_refs[0]
            self.problem(
                ref.line,
                "reading_type_guessed",
                "MeterReading has no ReadingType link (the file's only one used)",
            )
        if up is None or rt is None:
            missing = "UsagePoint" if up is None else "ReadingType"
            self.problem(
                ref.line,
                "unresolved_reference",
                f"MeterReading {entry.self_href or ref.uuid} has no {missing} in this file (not imported)",
            )
            return True
        owner = self.session.execute(
            select(UsagePoint.customer_id)
            .join(MeterReading, MeterReading.usage_point_id == UsagePoint.id)
            .where(MeterReading.uuid == ref.uuid)
        ).scalar()
        if owner is not None and owner != self.customer.id:
            self.error(ref.line, "owned_by_another_customer", f"MeterReading {ref.uuid} belongs to another customer")
            return True
        row = self.upsert(
            MeterReading,
            ref.uuid,
            {"usage_point_id": up.row_id, "reading_type_id": rt.row_id, **self.envelope_values(entry)},
            self.report.meter_readings,
        )
        ref.row_id = row.id
        self.totals_by_row.setdefault(row.id, MeterReadingTotals(uuid=str(ref.uuid)))
        return True

    def retry_meter_readings(self) -> None:
        if self.pending_meter_readings:
            self.pending_meter_readings = [
                p for p in self.pending_meter_readings if not self.write_meter_reading(p, final=False)
            ]

    def find_meter_reading(self, candidates: Iterable[str]) -> _Ref | None:
        for href in candidates:
            ref = self.meter_readings_by_related.get(href)
            if ref is None:
                full = _segment_after(href, "MeterReading")
                if full is not None:
                    ref = self.meter_readings.get(full[0])
            if ref is None:
                tail = _meter_reading_tail(href)
                if tail is not None:
                    ref = self.meter_readings.get(tail)
            if ref is not None and ref.row_id is not None:
                return ref
        return None

    # -- IntervalBlock ---------------------------------------------------------------------------------------

    def readings(self, block: Any) -> list[_Row]:
        """The block's IntervalReadings as rows; the hot loop of the import (one pass over each element)."""
        rows: list[_Row] = []
        append = rows.append
        for reading in block.iterchildren(E_INTERVAL_READING):
            start = duration = value = cost = tier = tou = cpp = None
            quality: str | None = None
            try:
                for child in reading:
                    tag = child.tag
                    if tag == E_VALUE:
                        value = int(child.text)
                    elif tag == E_TIME_PERIOD:
                        for part in child:
                            if part.tag == E_START:
                                start = int(part.text)
                            elif part.tag == E_DURATION:
                                duration = int(part.text)
                            elif isinstance(part.tag, str):
                                self.problem(
                                    part.sourceline,
                                    "foreign_element",
                                    f"timePeriod: unexpected element {part.tag} (ignored)",
                                )
                    elif tag == E_COST:
                        cost = int(child.text)
                    elif tag == E_READING_QUALITY:
                        code = (child.findtext(E_QUALITY) or "").strip()
                        quality = code if quality is None else f"{quality},{code}"
                    elif tag == E_CONSUMPTION_TIER:
                        tier = int(child.text)
                    elif tag == E_TOU:
                        tou = int(child.text)
                    elif tag == E_CPP:
                        cpp = int(child.text)
                    elif isinstance(tag, str):
                        self.problem(
                            child.sourceline,
                            "unknown_element",
                            f"IntervalReading: unexpected element {tag} (ignored)",
                        )
            except (TypeError, ValueError):
                self.problem(
                    reading.sourceline,
                    "bad_value",
                    "IntervalReading has a value that is not an integer (skipped)",
                )
                continue
            if start is None or duration is None:
                self.problem(
                    reading.sourceline,
                    "missing_field",
                    "IntervalReading has no timePeriod start and duration (skipped)",
                )
                continue
            append((start, duration, value, cost, quality[:64] if quality else None, tier, tou, cpp))
        if len({row[0] for row in rows}) != len(rows):
            # Not a schema matter (GBA's own sample 01 repeats the DST fall-back hour): the later one wins.
            self.warn(
                block.sourceline,
                "duplicate_reading",
                "IntervalBlock has two readings with the same start (the later kept)",
            )
            rows = sorted({row[0]: row for row in rows}.values())
        return rows

    def handle_interval_block(self, entry: _Entry, element: Any, position: int | None) -> None:
        key = self.entry_uuid(entry, "IntervalBlock")
        if position is not None:
            # Several blocks in one content (GBA SDK samples 01, 02): one uuid each, stable across imports.
            key = stable_uuid("IntervalBlock", key, position)
        line = element.sourceline or entry.line
        interval = element.find(E_INTERVAL)
        rows = self.readings(element)
        for child in element:
            if (
                isinstance(child.tag, str)
                and child.tag not in (E_INTERVAL, E_INTERVAL_READING)
                and _local(child.tag) != "batchItemInfo"
            ):
                self.problem(
                    child.sourceline,
                    "unknown_element",
                    f"IntervalBlock: unexpected element {_local(child.tag)} (ignored)",
                )
        if interval is not None:
            start, duration = self.interval(interval, "interval")
        else:
            start = duration = None
        if start is None or duration is None:
            if not rows:
                self.problem(line, "missing_field", "IntervalBlock has no interval and no readings (not imported)")
                return
            # ESPI-NOTES §7: the interval starts with the first reading; derive it when missing (UtilityAPI).
            self.problem(line, "missing_field", "IntervalBlock has no interval (derived from its readings)")
            start = min(r[0] for r in rows)
            duration = max(r[0] + r[1] for r in rows) - start
        values = {"start": start, "duration": duration, **self.envelope_values(entry)}
        candidates = entry.hrefs("self") + entry.hrefs("up") + entry.hrefs("related")
        meter_reading = self.find_meter_reading(candidates)
        if meter_reading is not None:
            self.write_block(key, line, meter_reading, values, rows)
            return
        spill = self.spill_file()
        offset = spill.tell()
        pickle.dump(rows, spill, protocol=pickle.HIGHEST_PROTOCOL)
        self.pending_blocks.append(_PendingBlock(key, line, candidates, entry.self_href, values, offset))

    def spill_file(self) -> IO[bytes]:
        if self.spill is None:
            # Closed by close(), which import_feed calls in its finally clause.
            self.spill = tempfile.TemporaryFile(prefix="gateway-import-")  # noqa: SIM115
        self.spill.seek(0, 2)
        return self.spill

    def write_block(
        self, key: uuid.UUID, line: int, meter_reading: _Ref, values: dict[str, Any], rows: list[_Row]
    ) -> None:
        """Insert or replace one IntervalBlock and its readings with prebuilt Core statements (the bulk of a
        file)."""
        connection = self.connection
        counts = self.report.interval_blocks
        existing = connection.execute(_FIND_BLOCK, {"block_uuid": key}).first()
        if existing is not None and existing.customer_id != self.customer.id:
            self.error(line, "owned_by_another_customer", f"IntervalBlock {key} belongs to another customer")
            return
        totals = self.totals_by_row.setdefault(
            meter_reading.row_id or 0, MeterReadingTotals(uuid=str(meter_reading.uuid))
        )
        totals.readings += len(rows)
        totals.value_sum += sum([r[2] or 0 for r in rows])
        costs = [r[3] for r in rows if r[3] is not None]
        if costs:
            totals.has_cost = True
            totals.cost_sum += sum(costs)
        self.report.interval_readings += len(rows)
        columns = {
            "meter_reading_id": meter_reading.row_id,
            "start": values["start"],
            "duration": values["duration"],
            "description": values.get("description"),
        }
        if existing is None:
            now = dt.datetime.now(dt.UTC).replace(microsecond=0)
            inserted = connection.execute(
                _INSERT_BLOCK,
                {
                    "uuid": key,
                    **columns,
                    "published": values.get("published", now),
                    "updated": values.get("updated", now),
                },
            ).inserted_primary_key
            assert inserted is not None  # a single-row INSERT always reports its key
            block_id = inserted[0]
            counts.created += 1
        else:
            block_id = existing.id
            stored = [tuple(r) for r in connection.execute(_STORED_READINGS, {"block_id": block_id})]
            same_block = (
                existing.meter_reading_id == meter_reading.row_id
                and existing.start == values["start"]
                and existing.duration == values["duration"]
            )
            if same_block and stored == sorted(rows):
                counts.unchanged += 1
                return
            counts.updated += 1
            connection.execute(
                update(_BLOCKS)
                .where(_BLOCKS.c.id == block_id)
                .values(**columns, **{name: values[name] for name in ("published", "updated") if name in values})
            )
            self.flush_readings()
            connection.execute(_DELETE_READINGS, {"block_id": block_id})
        self.reading_buffer.extend([(block_id, *row) for row in rows])
        self.report.interval_readings_written += len(rows)
        if len(self.reading_buffer) >= READING_BATCH:
            self.flush_readings()

    def flush_readings(self) -> None:
        """Write buffered readings with one executemany of the Core insert, compiled once for the dialect.

        Going through ``exec_driver_sql`` skips SQLAlchemy's per-row parameter processing (a third of the
        import time for a meter-year); the rows are plain integers and strings, which the drivers take as they
        are.
        """
        if not self.reading_buffer:
            return
        connection = self.connection
        if self.insert_sql is None:
            compiled = insert(interval_reading_table).compile(
                dialect=connection.dialect, column_keys=list(_READING_COLUMNS)
            )
            self.insert_sql = str(compiled)
            if compiled.positional:
                self.insert_order = [_READING_COLUMNS.index(name) for name in compiled.positiontup or ()]
        order = self.insert_order
        if order is not None:
            rows = self.reading_buffer
            if order != list(range(len(_READING_COLUMNS))):
                rows = [tuple([row[i] for i in order]) for row in rows]
            connection.exec_driver_sql(self.insert_sql, rows)
        else:
            connection.exec_driver_sql(
                self.insert_sql,
                [dict(zip(_READING_COLUMNS, row, strict=True)) for row in self.reading_buffer],
            )
        self.reading_buffer = []

    # -- UsageSummary, ElectricPowerQualitySummary -----------------------------------------------------------

    def handle_summary(
        self,
        entry: _Entry,
        element: Any,
        model: type[UsageSummary] | type[ElectricPowerQualitySummary],
        spec: dict[str, tuple[str, str]],
    ) -> None:
        kind = model.__name__
        key = self.entry_uuid(entry, kind)
        values = self.fields(element, spec, _local(element.tag))
        line_items: list[dict[str, Any]] | None = None
        for name, child in values.pop("_special", []):
            if name == "costAdditionalDetailLastPeriod":
                item = self.fields(child, _LINE_ITEM_FIELDS, "LineItem")
                item["item_period_start"] = item.pop("item_period_start", None)
                item["item_period_duration"] = item.pop("item_period_duration", None)
                if item.get("note") is None or item.get("item_kind") is None:
                    self.problem(child.sourceline, "missing_field", "LineItem lacks note or itemKind (skipped)")
                    continue
                line_items = [
                    *(line_items or []),
                    {column: item.get(column) for column in _LINE_ITEM_COLUMNS},
                ]
        if model is UsageSummary:
            values["billing_period_start"] = values.pop("billing_period_start", None)
            values["billing_period_duration"] = values.pop("billing_period_duration", None)
            values["ratchet_demand_period_start"] = values.pop("ratchet_demand_period_start", None)
            values["ratchet_demand_period_duration"] = values.pop("ratchet_demand_period_duration", None)
            if values.get("status_time_stamp") is None:
                self.problem(entry.line, "missing_field", "UsageSummary lacks statusTimeStamp (0 used)")
                values["status_time_stamp"] = 0
            values.setdefault("measurements", None)
        elif values.get("summary_interval_start") is None or values.get("summary_interval_duration") is None:
            self.problem(
                entry.line,
                "missing_field",
                "ElectricPowerQualitySummary lacks summaryInterval (not imported)",
            )
            return
        values.update(self.envelope_values(entry))
        candidates = entry.hrefs("self") + entry.hrefs("up") + entry.hrefs("related")
        pending = _PendingSummary(model, key, entry.line, candidates, values, line_items)
        if not self.write_summary(pending, final=False):
            self.pending_summaries.append(pending)

    def write_summary(self, pending: _PendingSummary, *, final: bool) -> bool:
        up = self.find_usage_point(pending.up_candidates)
        if up is None and final and len(self.usage_point_refs) == 1:
            up = self.usage_point_refs[0]
            self.problem(
                pending.line,
                "parent_guessed",
                f"{pending.model.__name__} has no link to its UsagePoint (the file's only one used)",
            )
        if up is None:
            if final:
                self.problem(
                    pending.line,
                    "unresolved_reference",
                    f"{pending.model.__name__} has no UsagePoint in this file (not imported)",
                )
            return final
        model = pending.model
        owner = self.session.execute(
            select(UsagePoint.customer_id)
            .join(model, model.usage_point_id == UsagePoint.id)
            .where(model.uuid == pending.uuid)
        ).scalar()
        if owner is not None and owner != self.customer.id:
            self.error(
                pending.line,
                "owned_by_another_customer",
                f"{model.__name__} {pending.uuid} belongs to another customer",
            )
            return True
        counts = self.report.usage_summaries if model is UsageSummary else self.report.power_quality_summaries
        before = counts.updated + counts.created
        row = self.upsert(model, pending.uuid, {"usage_point_id": up.row_id, **pending.values}, counts)
        if isinstance(row, UsageSummary):
            wanted = pending.line_items or []
            current = [{column: getattr(item, column) for column in _LINE_ITEM_COLUMNS} for item in row.line_items]
            if current != wanted:
                row.line_items.clear()
                self.session.flush()
                for position, item in enumerate(wanted):
                    row.line_items.append(LineItem(position=position, **item))
                self.session.flush()
                if counts.updated + counts.created == before:
                    counts.unchanged -= 1
                    counts.updated += 1
        return True

    def retry_summaries(self) -> None:
        if self.pending_summaries:
            self.pending_summaries = [p for p in self.pending_summaries if not self.write_summary(p, final=False)]

    # -- end of file: resolve what waited --------------------------------------------------------------------

    def finish(self) -> None:
        if self.rejected and not self.lenient:
            return
        for pending in self.pending_meter_readings:
            self.write_meter_reading(pending, final=True)
        self.pending_meter_readings = []
        for block in self.pending_blocks:
            meter_reading = self.find_meter_reading(block.mr_candidates)
            if meter_reading is None:
                self.problem(
                    block.line,
                    "unresolved_reference",
                    f"IntervalBlock {block.self_href or block.uuid} belongs to a MeterReading "
                    "that is not in this file (not imported)",
                )
                continue
            assert self.spill is not None
            self.spill.seek(block.spill_offset)
            rows = pickle.load(self.spill)  # noqa: S301 - our own temporary file, written above
            self.write_block(block.uuid, block.line, meter_reading, block.values, rows)
        self.pending_blocks = []
        for summary in self.pending_summaries:
            self.write_summary(summary, final=True)
        self.pending_summaries = []
        for up, hrefs in self.usage_point_local_time:
            local_time = next((self.local_times[h] for h in hrefs if h in self.local_times), None)
            if local_time is None:
                continue  # ESPI lets LocalTimeParameters be shared data served elsewhere: not an error
            self.session.execute(
                update(UsagePoint)
                .where(
                    UsagePoint.id == up.row_id,
                    UsagePoint.local_time_parameters_id.is_distinct_from(local_time.row_id),
                )
                # SET updated = updated: a link resolved at the end is no change of the entry (no onupdate).
                .values(local_time_parameters_id=local_time.row_id, updated=UsagePoint.updated)
            )
        self.flush_readings()
        self.fill_totals()

    def fill_totals(self) -> None:
        if not self.totals_by_row:
            return
        rows = self.session.execute(
            select(MeterReading.id, ReadingType.uom, ReadingType.power_of_ten_multiplier, ReadingType.currency)
            .join(ReadingType, ReadingType.id == MeterReading.reading_type_id)
            .where(MeterReading.id.in_(list(self.totals_by_row)))
        )
        for row_id, uom, multiplier, currency in rows:
            totals = self.totals_by_row[row_id]
            totals.uom, totals.power_of_ten_multiplier, totals.currency = uom, multiplier, currency
        self.report.totals = {t.uuid: t for t in self.totals_by_row.values() if t.readings}

    def close(self) -> None:
        if self.spill is not None:
            self.spill.close()


def _meter_reading_tail(href: str) -> str | None:
    """``UsagePoint/{u}/MeterReading/{m}``: matches a block to its reading across different base paths."""
    reading = _segment_after(href, "MeterReading")
    if reading is None:
        return None
    point = _segment_after(reading[0], "UsagePoint")
    return f"{point[1]}/{reading[1]}" if point is not None else reading[1]


def import_feed(
    session: Session,
    source: XmlSource,
    *,
    customer: RetailCustomer,
    lenient: bool = False,
    progress: Callable[[int], None] | None = None,
    limits: XmlLimits = DEFAULT_LIMITS,
) -> ImportReport:
    """Import a Green Button feed (or single entry) for ``customer``; flush, never commit.

    ``source`` is a path or a binary stream (an upload body: it is spooled). ``progress`` receives the number
    of bytes parsed so far. The whole import runs in a SAVEPOINT: on any error nothing of the file remains,
    and the caller's transaction stays usable.

    Raises:
        gateway.espi.safe_xml.XmlRejected: the document is unsafe or not well-formed (HTTP 400; its subclass
            XmlTooLarge is HTTP 413).
        FeedRejected: strict-mode schema errors, unresolvable references, or resources of another customer.
    """
    importer = _Importer(session, customer, lenient=lenient, schema=_load_schema())
    try:
        with session.begin_nested():
            with open_xml(source, limits) as (file, size):
                importer.report.bytes = size
                root: Any = None
                for _event, element in safe_iterparse(file, events=("end",), tag=A_ENTRY, progress=progress):
                    parent = element.getparent()
                    if parent is not None and parent.tag != A_FEED:
                        continue  # an entry inside something else: the outer element's validation reports it
                    importer.handle_entry(element)
                    root = parent if parent is not None else element
                    # Bounded memory: drop the entry's subtree and the entries before it (iterparse idiom).
                    element.clear(keep_tail=False)
                    if parent is not None:
                        previous = element.getprevious()
                        while previous is not None and previous.tag == A_ENTRY:
                            parent.remove(previous)
                            previous = element.getprevious()
                importer.finish()
                if root is not None and root.tag == A_FEED and importer.schema is not None:
                    for entry in root.findall(A_ENTRY):
                        root.remove(entry)
                    for issue in validate_entry(root)[:10]:
                        importer.problem(issue.line, "schema", issue.message)
                if root is None:
                    importer.problem(1, "empty_feed", "the feed has no entries")
            if importer.errors:
                errors = importer.errors
                if importer.error_overflow:
                    errors = [
                        *errors,
                        ImportIssue(None, "too_many_errors", f"{importer.error_overflow} more error(s)"),
                    ]
                raise FeedRejected(errors)
            session.flush()
    finally:
        importer.close()
    return importer.report


def count_rows(session: Session) -> dict[str, int]:
    """Row counts of every usage table (for tests and the CLI's sanity checks)."""
    tables = [
        UsagePoint,
        MeterReading,
        ReadingType,
        LocalTimeParameters,
        IntervalBlock,
        UsageSummary,
        LineItem,
        ElectricPowerQualitySummary,
    ]
    counts = {model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0 for model in tables}
    counts["interval_reading"] = session.scalar(select(func.count()).select_from(interval_reading_table)) or 0
    return counts
