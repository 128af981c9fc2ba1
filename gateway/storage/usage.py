"""The ESPI usage model: UsagePoint and everything measured at it (NAESB REQ.21 ESPI §5 "Usage information").

Resource tree, as ESPI draws it::

    RetailCustomer ─< UsagePoint ─< MeterReading ─< IntervalBlock ─< IntervalReading
                         │              └── ReadingType (shared reference data)
                         ├─< UsageSummary ─< LineItem (costAdditionalDetailLastPeriod)
                         ├─< ElectricPowerQualitySummary
                         └── LocalTimeParameters (shared reference data)

Interval data is the bulk of any custodian's database: a meter-year at 15 minutes is 35,040 readings. Readings are
therefore compact rows keyed by (block, start) with no surrogate key (a clustered ``WITHOUT ROWID`` table on SQLite),
integers only, and are written with Core bulk inserts, never one ORM object each. ESPI times are kept as they travel:
UTC epoch seconds.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gateway.storage.base import Base, UTCDateTime, utcnow

if TYPE_CHECKING:
    from gateway.storage.customer import RetailCustomer

__all__ = [
    "ElectricPowerQualitySummary",
    "EspiResourceMixin",
    "IntervalBlock",
    "LineItem",
    "LocalTimeParameters",
    "MeterReading",
    "ReadingType",
    "UsagePoint",
    "UsageSummary",
    "interval_reading_table",
]


class EspiResourceMixin:
    """Columns every ESPI ``IdentifiedObject`` carries: its stable id and its Atom entry metadata."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uuid: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    description: Mapped[str | None] = mapped_column(String(256))
    published: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class LocalTimeParameters(EspiResourceMixin, Base):
    """ESPI ``LocalTimeParameters`` (``TimeConfiguration``): how UTC maps to the customer's local time.

    ``dst_start_rule``/``dst_end_rule`` are the 4-byte ESPI ``DstRuleType`` as 8 hex digits; offsets are seconds.
    """

    __tablename__ = "local_time_parameters"

    dst_start_rule: Mapped[str] = mapped_column(String(8))
    dst_end_rule: Mapped[str] = mapped_column(String(8))
    dst_offset: Mapped[int] = mapped_column(Integer)
    tz_offset: Mapped[int] = mapped_column(Integer)


class ReadingType(EspiResourceMixin, Base):
    """ESPI ``ReadingType``: what a MeterReading measures, in which unit and scale (every field of the 4.0 schema).

    Enumerated fields hold the ESPI code values (e.g. ``uom`` 72 = Wh, ``commodity`` 1 = electricity secondary metered,
    ``accumulation_behaviour`` 4 = delta data). ``power_of_ten_multiplier`` scales ``value`` only, never ``cost``.
    """

    __tablename__ = "reading_type"

    accumulation_behaviour: Mapped[int | None] = mapped_column(SmallInteger)
    commodity: Mapped[int | None] = mapped_column(SmallInteger)
    consumption_tier: Mapped[int | None] = mapped_column(SmallInteger)
    currency: Mapped[int | None] = mapped_column(SmallInteger)
    data_qualifier: Mapped[int | None] = mapped_column(SmallInteger)
    default_quality: Mapped[int | None] = mapped_column(SmallInteger)
    flow_direction: Mapped[int | None] = mapped_column(SmallInteger)
    interval_length: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[int | None] = mapped_column(SmallInteger)
    phase: Mapped[int | None] = mapped_column(SmallInteger)
    power_of_ten_multiplier: Mapped[int | None] = mapped_column(SmallInteger)
    time_attribute: Mapped[int | None] = mapped_column(SmallInteger)
    tou: Mapped[int | None] = mapped_column(SmallInteger)
    uom: Mapped[int | None] = mapped_column(SmallInteger)
    cpp: Mapped[int | None] = mapped_column(SmallInteger)
    interharmonic_numerator: Mapped[int | None] = mapped_column(BigInteger)
    interharmonic_denominator: Mapped[int | None] = mapped_column(BigInteger)
    measuring_period: Mapped[int | None] = mapped_column(SmallInteger)
    argument_numerator: Mapped[int | None] = mapped_column(BigInteger)
    argument_denominator: Mapped[int | None] = mapped_column(BigInteger)


class UsagePoint(EspiResourceMixin, Base):
    """ESPI ``UsagePoint``: a logical point on the network where a commodity is measured, owned by a customer.

    ``service_kind`` is the ESPI ``ServiceCategory/kind`` (0 electricity, 1 gas, 2 water, …); ``status`` 1 is on,
    0 off; ``role_flags`` is the ESPI ``HexBinary16`` as 4 hex digits.
    """

    __tablename__ = "usage_point"

    customer_id: Mapped[int] = mapped_column(ForeignKey("retail_customer.id", ondelete="CASCADE"), index=True)
    local_time_parameters_id: Mapped[int | None] = mapped_column(
        ForeignKey("local_time_parameters.id", ondelete="SET NULL")
    )
    service_kind: Mapped[int] = mapped_column(SmallInteger, default=0)
    status: Mapped[int | None] = mapped_column(SmallInteger)
    role_flags: Mapped[str | None] = mapped_column(String(4))
    ami_billing_ready: Mapped[int | None] = mapped_column(SmallInteger)
    check_billing: Mapped[bool | None] = mapped_column(Boolean)
    connection_state: Mapped[int | None] = mapped_column(SmallInteger)
    is_sdp: Mapped[bool | None] = mapped_column(Boolean)
    is_virtual: Mapped[bool | None] = mapped_column(Boolean)
    minimal_usage_expected: Mapped[bool | None] = mapped_column(Boolean)
    grounded: Mapped[bool | None] = mapped_column(Boolean)
    phase_code: Mapped[int | None] = mapped_column(SmallInteger)
    outage_region: Mapped[str | None] = mapped_column(String(256))
    read_cycle: Mapped[str | None] = mapped_column(String(256))
    read_route: Mapped[str | None] = mapped_column(String(256))
    service_delivery_remark: Mapped[str | None] = mapped_column(String(256))
    service_priority: Mapped[str | None] = mapped_column(String(32))
    service_delivery_point: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """``ServiceDeliveryPoint`` as a dict: name, tariffProfile, customerAgreement, tariffRiderRefs."""
    measurements: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """``SummaryMeasurement`` fields (estimatedLoad, nominalServiceVoltage, ratedCurrent, ratedPower) by ESPI name."""

    customer: Mapped[RetailCustomer] = relationship(back_populates="usage_points")
    local_time_parameters: Mapped[LocalTimeParameters | None] = relationship()
    meter_readings: Mapped[list[MeterReading]] = relationship(
        back_populates="usage_point", cascade="all, delete-orphan", passive_deletes=True, order_by="MeterReading.id"
    )
    usage_summaries: Mapped[list[UsageSummary]] = relationship(
        back_populates="usage_point", cascade="all, delete-orphan", passive_deletes=True, order_by="UsageSummary.id"
    )
    power_quality_summaries: Mapped[list[ElectricPowerQualitySummary]] = relationship(
        back_populates="usage_point",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="ElectricPowerQualitySummary.id",
    )


class MeterReading(EspiResourceMixin, Base):
    """ESPI ``MeterReading``: a set of values of one ReadingType taken at a UsagePoint."""

    __tablename__ = "meter_reading"

    usage_point_id: Mapped[int] = mapped_column(ForeignKey("usage_point.id", ondelete="CASCADE"), index=True)
    reading_type_id: Mapped[int] = mapped_column(ForeignKey("reading_type.id", ondelete="RESTRICT"), index=True)

    usage_point: Mapped[UsagePoint] = relationship(back_populates="meter_readings")
    reading_type: Mapped[ReadingType] = relationship()
    interval_blocks: Mapped[list[IntervalBlock]] = relationship(
        back_populates="meter_reading",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="IntervalBlock.start",
    )


class IntervalBlock(EspiResourceMixin, Base):
    """ESPI ``IntervalBlock``: readings over one ``interval`` (start and duration in UTC epoch seconds).

    Its readings live in :data:`interval_reading_table`; ``start`` equals the first reading's start (ESPI-NOTES §7).
    """

    __tablename__ = "interval_block"
    __table_args__ = (
        # Range queries (published-min/max compare the block's interval, ESPI-NOTES §8) walk this index.
        Index("ix_interval_block_meter_reading_start", "meter_reading_id", "start"),
        CheckConstraint("duration >= 0", name="duration_not_negative"),
    )

    meter_reading_id: Mapped[int] = mapped_column(ForeignKey("meter_reading.id", ondelete="CASCADE"))
    start: Mapped[int] = mapped_column(BigInteger)
    duration: Mapped[int] = mapped_column(Integer)

    meter_reading: Mapped[MeterReading] = relationship(back_populates="interval_blocks")


interval_reading_table = Table(
    "interval_reading",
    Base.metadata,
    # Column order is storage layout: two 4-byte integers first so the 8-byte ones need no alignment padding on
    # PostgreSQL (8 bytes saved per reading). Select columns by name, never by position.
    Column("interval_block_id", ForeignKey("interval_block.id", ondelete="CASCADE"), nullable=False),
    Column("duration", Integer, nullable=False),
    Column("start", BigInteger, nullable=False, autoincrement=False),
    Column("value", BigInteger),
    Column("cost", BigInteger),
    # ESPI ReadingQuality codes (QualityOfReading), comma-separated: rare, so a short string beats a child table.
    Column("quality", String(64)),
    Column("consumption_tier", SmallInteger),
    Column("tou", SmallInteger),
    Column("cpp", SmallInteger),
    PrimaryKeyConstraint("interval_block_id", "start"),
    sqlite_with_rowid=False,
)
"""ESPI ``IntervalReading`` rows: ``value`` in the ReadingType's unit and multiplier, ``cost`` in 10⁻⁵ currency."""


class UsageSummary(EspiResourceMixin, Base):
    """ESPI ``UsageSummary`` (formerly ``ElectricPowerUsageSummary``): a billing period's consumption and cost.

    Costs (``bill_*``, ``cost_*``) are in hundred-thousandths of ``currency`` (ISO 4217 numeric). Each
    ``SummaryMeasurement`` (overallConsumptionLastPeriod, peakDemand, …) is kept as a dict under its ESPI name in
    ``measurements``.
    """

    __tablename__ = "usage_summary"

    usage_point_id: Mapped[int] = mapped_column(ForeignKey("usage_point.id", ondelete="CASCADE"), index=True)
    billing_period_start: Mapped[int | None] = mapped_column(BigInteger)
    billing_period_duration: Mapped[int | None] = mapped_column(Integer)
    bill_last_period: Mapped[int | None] = mapped_column(BigInteger)
    bill_to_date: Mapped[int | None] = mapped_column(BigInteger)
    cost_additional_last_period: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[int | None] = mapped_column(SmallInteger)
    quality_of_reading: Mapped[int | None] = mapped_column(SmallInteger)
    status_time_stamp: Mapped[int] = mapped_column(BigInteger)
    commodity: Mapped[int | None] = mapped_column(SmallInteger)
    tariff_profile: Mapped[str | None] = mapped_column(String(256))
    read_cycle: Mapped[str | None] = mapped_column(String(256))
    tariff_rider_refs: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    billing_charge_source: Mapped[str | None] = mapped_column(String(256))
    ratchet_demand_period_start: Mapped[int | None] = mapped_column(BigInteger)
    ratchet_demand_period_duration: Mapped[int | None] = mapped_column(Integer)
    measurements: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    usage_point: Mapped[UsagePoint] = relationship(back_populates="usage_summaries")
    line_items: Mapped[list[LineItem]] = relationship(
        back_populates="usage_summary", cascade="all, delete-orphan", passive_deletes=True, order_by="LineItem.position"
    )


class LineItem(Base):
    """ESPI ``LineItem`` of a UsageSummary's ``costAdditionalDetailLastPeriod`` (amounts in 10⁻⁵ currency)."""

    __tablename__ = "usage_summary_line_item"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    usage_summary_id: Mapped[int] = mapped_column(ForeignKey("usage_summary.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(SmallInteger)
    amount: Mapped[int | None] = mapped_column(BigInteger)
    rounding: Mapped[int | None] = mapped_column(BigInteger)
    date_time: Mapped[int | None] = mapped_column(BigInteger)
    note: Mapped[str] = mapped_column(String(256))
    measurement: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    item_kind: Mapped[int] = mapped_column(SmallInteger)
    unit_cost: Mapped[int | None] = mapped_column(BigInteger)
    item_period_start: Mapped[int | None] = mapped_column(BigInteger)
    item_period_duration: Mapped[int | None] = mapped_column(Integer)

    usage_summary: Mapped[UsageSummary] = relationship(back_populates="line_items")


class ElectricPowerQualitySummary(EspiResourceMixin, Base):
    """ESPI ``ElectricPowerQualitySummary``: power quality over ``summary_interval`` (IEC 61000-4-30 quantities)."""

    __tablename__ = "electric_power_quality_summary"

    usage_point_id: Mapped[int] = mapped_column(ForeignKey("usage_point.id", ondelete="CASCADE"), index=True)
    flicker_plt: Mapped[int | None] = mapped_column(BigInteger)
    flicker_pst: Mapped[int | None] = mapped_column(BigInteger)
    harmonic_voltage: Mapped[int | None] = mapped_column(BigInteger)
    long_interruptions: Mapped[int | None] = mapped_column(BigInteger)
    mains_voltage: Mapped[int | None] = mapped_column(BigInteger)
    measurement_protocol: Mapped[int | None] = mapped_column(SmallInteger)
    power_frequency: Mapped[int | None] = mapped_column(BigInteger)
    rapid_voltage_changes: Mapped[int | None] = mapped_column(BigInteger)
    short_interruptions: Mapped[int | None] = mapped_column(BigInteger)
    summary_interval_start: Mapped[int] = mapped_column(BigInteger)
    summary_interval_duration: Mapped[int] = mapped_column(Integer)
    supply_voltage_dips: Mapped[int | None] = mapped_column(BigInteger)
    supply_voltage_imbalance: Mapped[int | None] = mapped_column(BigInteger)
    supply_voltage_variations: Mapped[int | None] = mapped_column(BigInteger)
    temp_overvoltage: Mapped[int | None] = mapped_column(BigInteger)

    usage_point: Mapped[UsagePoint] = relationship(back_populates="power_quality_summaries")
