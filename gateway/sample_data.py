"""Deterministic sample Green Button data: realistic feeds for demos, tests and third-party developers.

Three Download My Data files (NAESB REQ.21 ESPI feeds, written with :mod:`gateway.espi.writer`, so they look
exactly like what the gateway serves):

- ``home_electricity_15min.xml``: customer ``alice``, a year of 15-minute electricity on a time-of-use tariff;
- ``home_gas_hourly.xml``: the same home's hourly natural gas;
- ``business_three_usage_points.xml``: customer ``bizco``, a demand-metered bakery, a warehouse with rooftop
  solar on net metering (delivered and received energy as two MeterReadings), and the bakery's gas.

Everything is derived from a seed and the year: the same inputs give byte-identical files, and every
resource's id is a UUID v5 of its natural key (:func:`gateway.storage.ids.stable_uuid`), so importing a file
twice is idempotent.

The load shapes are simple physics-flavoured models, not recordings: an outdoor temperature (seasonal and
daily cycles with autocorrelated weather) drives air conditioning and heating; occupancy drives night base
load, morning and evening peaks; a few appliance runs are scattered over each day. Times follow ESPI: UTC
epoch seconds, with the local clock (US Pacific, DST by the US rules written into LocalTimeParameters) used
only to cut days, months and tariff periods. Daily IntervalBlocks therefore hold 92 quarter-hours on the
spring-forward day and 100 on the fall-back day.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import random
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Final

from gateway.espi.feeds import usage_feed
from gateway.espi.links import ResourceLinks
from gateway.espi.writer import AMI_BILLING_READY_KINDS, USAGE_POINT_CONNECTED_KINDS, ReadingRow, feed_link
from gateway.storage.ids import stable_uuid
from gateway.storage.models import (  # the registry of every model: relationships need them all
    IntervalBlock,
    LineItem,
    LocalTimeParameters,
    MeterReading,
    ReadingType,
    UsagePoint,
    UsageSummary,
)

__all__ = [
    "BUSINESS_FILE",
    "BUSINESS_MONTHS",
    "DEFAULT_SEED",
    "DEFAULT_YEAR",
    "HOME_ELECTRICITY_FILE",
    "HOME_GAS_FILE",
    "RESOURCE_BASE_URL",
    "US_DST_END_RULE",
    "US_DST_START_RULE",
    "LocalClock",
    "SampleFeed",
    "business_feed",
    "dst_rule",
    "generate",
    "home_electricity_feed",
    "home_gas_feed",
    "sample_feeds",
]

DEFAULT_YEAR: Final = 2025
"""A common (non-leap) year: 365 local days, 35,040 quarter-hours."""
DEFAULT_SEED: Final = 12_025
RESOURCE_BASE_URL: Final = "https://utility.example.com/DataCustodian/espi/1_1/resource"

HOME_ELECTRICITY_FILE: Final = "home_electricity_15min.xml"
HOME_GAS_FILE: Final = "home_gas_hourly.xml"
BUSINESS_FILE: Final = "business_three_usage_points.xml"

# ESPI code values used below (NAESB REQ.21 ESPI 4.0 enumerations).
UOM_WH: Final = 72
UOM_W: Final = 38
UOM_THERM: Final = 169
COMMODITY_ELECTRICITY: Final = 1  # electricity secondary metered
COMMODITY_NATURAL_GAS: Final = 7
ACCUMULATION_DELTA: Final = 4
FLOW_FORWARD: Final = 1  # delivered to the customer
FLOW_REVERSE: Final = 19  # received from the customer (export)
KIND_ENERGY: Final = 12
CURRENCY_USD: Final = 840
SERVICE_ELECTRICITY: Final = 0
SERVICE_GAS: Final = 1
ITEM_DELIVERY_FEE: Final = 2
ITEM_ADMINISTRATIVE_FEE: Final = 4
ITEM_TAX: Final = 5
ITEM_GENERATION_CREDIT: Final = 6
ITEM_DELIVERY_CREDIT: Final = 7
QUALITY_VALID: Final = 0

ALL_MONTHS: Final = tuple(range(1, 13))
BUSINESS_MONTHS: Final = tuple(range(3, 12))
"""The business file covers March to November: both DST changes, a summer, and under ~30 MB checked in."""

COST_UNITS_PER_DOLLAR: Final = 100_000
"""ESPI costs are hundred-thousandths of the currency, whatever the ReadingType's powerOfTenMultiplier."""


# ----------------------------------------------------------------------------------------------------------
# Local time: ESPI LocalTimeParameters and the US daylight-saving rules
# ----------------------------------------------------------------------------------------------------------


def dst_rule(*, month: int, operator: int, day_of_week: int, hour: int, day_of_month: int = 0, seconds: int = 0) -> str:
    """Encode an ESPI ``DstRuleType`` (8 hex digits).

    Bits 0-11 seconds, 12-16 hour, 17-19 day of week (Monday = 1 … Sunday = 7), 20-24 day of month, 25-27
    operator (2 = first occurrence of the weekday in the month, 3 = second, …, 7 = last), 28-31 month (ESPI
    ``DstRuleType`` documentation). The US rules: ``dst_rule(month=3, operator=3, day_of_week=7, hour=2)`` =
    ``360E2000`` (second Sunday of March, 02:00) and ``dst_rule(month=11, operator=2, day_of_week=7, hour=2)``
    = ``B40E2000`` (first Sunday of November, 02:00).
    """
    value = (month << 28) | (operator << 25) | (day_of_month << 20) | (day_of_week << 17) | (hour << 12) | seconds
    return f"{value:08X}"


US_DST_START_RULE: Final = dst_rule(month=3, operator=3, day_of_week=7, hour=2)
US_DST_END_RULE: Final = dst_rule(month=11, operator=2, day_of_week=7, hour=2)


def _nth_sunday(year: int, month: int, n: int) -> dt.date:
    first = dt.date(year, month, 1)
    return first + dt.timedelta(days=(6 - first.weekday()) % 7 + 7 * (n - 1))


def _naive_epoch(value: dt.datetime) -> int:
    """Seconds from 1970-01-01 00:00 of a wall-clock time, as if it were UTC."""
    return int(value.replace(tzinfo=dt.UTC).timestamp())


@dataclasses.dataclass(frozen=True, slots=True)
class LocalClock:
    """A local clock as ESPI ``LocalTimeParameters`` describes it: a standard offset plus US-rule DST.

    The US switches at 02:00 local time: on the second Sunday of March 02:00 standard becomes 03:00 daylight;
    on the first Sunday of November 02:00 daylight becomes 01:00 standard (15 U.S.C. §260a).
    """

    year: int
    tz_offset: int = -8 * 3600  # Pacific Standard Time
    dst_offset: int = 3600
    dst_start: int = dataclasses.field(init=False)
    """UTC epoch when daylight time begins (02:00 standard time)."""
    dst_end: int = dataclasses.field(init=False)
    """UTC epoch when daylight time ends (02:00 daylight time)."""

    def __post_init__(self) -> None:
        start = _nth_sunday(self.year, 3, 2)
        end = _nth_sunday(self.year, 11, 1)
        object.__setattr__(
            self,
            "dst_start",
            _naive_epoch(dt.datetime(start.year, start.month, start.day, 2)) - self.tz_offset,
        )
        object.__setattr__(
            self,
            "dst_end",
            _naive_epoch(dt.datetime(end.year, end.month, end.day, 2)) - self.tz_offset - self.dst_offset,
        )

    def offset(self, utc: int) -> int:
        """Seconds to add to a UTC epoch to get local wall-clock time."""
        return self.tz_offset + (self.dst_offset if self.dst_start <= utc < self.dst_end else 0)

    def local(self, utc: int) -> dt.datetime:
        """The naive local wall-clock time of a UTC epoch."""
        return dt.datetime(1970, 1, 1) + dt.timedelta(seconds=utc + self.offset(utc))

    def midnight(self, day: dt.date) -> int:
        """UTC epoch of local midnight starting ``day`` (never inside a transition: the US switches at
        02:00)."""
        start_day = _nth_sunday(day.year, 3, 2)
        end_day = _nth_sunday(day.year, 11, 1)
        in_dst = start_day < day <= end_day
        return (
            _naive_epoch(dt.datetime(day.year, day.month, day.day))
            - self.tz_offset
            - (self.dst_offset if in_dst else 0)
        )

    def days(self) -> Iterator[tuple[dt.date, int, int]]:
        """Each local day of the year as ``(date, utc_start, duration_seconds)`` (82,800 / 90,000 on DST
        days)."""
        day = dt.date(self.year, 1, 1)
        while day.year == self.year:
            following = day + dt.timedelta(days=1)
            start = self.midnight(day)
            yield day, start, self.midnight(following) - start
            day = following

    def months(self, months: Sequence[int] = ALL_MONTHS) -> Iterator[tuple[int, int, int]]:
        """Each local calendar month as ``(month, utc_start, duration_seconds)``: the billing periods."""
        for month in months:
            start = self.midnight(dt.date(self.year, month, 1))
            end = self.midnight(dt.date(self.year + (month == 12), month % 12 + 1, 1))
            yield month, start, end - start


# ----------------------------------------------------------------------------------------------------------
# Weather and load models
# ----------------------------------------------------------------------------------------------------------


def _stream(seed: int, name: str) -> random.Random:
    """An independent pseudo-random stream per component, so changing one model does not shift the others.

    Simulation, not security: a seeded, reproducible generator is the point (byte-identical files).
    """
    return random.Random(f"{seed}/{name}")  # noqa: S311


def _daily_weather(clock: LocalClock, rng: random.Random) -> list[float]:
    """Mean outdoor temperature (°C) of each local day: an inland-California seasonal cycle plus AR(1)
    weather."""
    temperatures: list[float] = []
    anomaly = 0.0
    for index, _ in enumerate(clock.days()):
        anomaly = 0.75 * anomaly + rng.gauss(0.0, 1.6)
        seasonal = 16.0 - 8.5 * math.cos(2 * math.pi * (index - 15) / 365.0)  # coldest mid-January
        temperatures.append(seasonal + anomaly)
    return temperatures


def _hourly_temperature(day_mean: float, hour: float) -> float:
    """Diurnal swing of ±7 °C around the day's mean, warmest mid-afternoon."""
    return day_mean + 7.0 * math.sin(2 * math.pi * (hour - 9.0) / 24.0)


def _bump(hour: float, centre: float, width: float) -> float:
    return math.exp(-0.5 * ((hour - centre) / width) ** 2)


@dataclasses.dataclass(frozen=True, slots=True)
class _Interval:
    """One reading interval in local terms, for the load models."""

    start: int
    hour: float  # local hour of the interval's middle, 0-24
    day_index: int
    weekday: int  # Monday = 0
    month: int
    temperature: float


def _intervals(
    clock: LocalClock, temperatures: Sequence[float], seconds: int, months: Sequence[int] = ALL_MONTHS
) -> Iterator[tuple[int, int, list[_Interval]]]:
    """Local days of ``months`` as ``(utc_start, duration, intervals)``, each interval ``seconds`` long."""
    for index, (day, start, duration) in enumerate(clock.days()):
        if day.month not in months:
            continue
        intervals = []
        for t in range(start, start + duration, seconds):
            local = clock.local(t + seconds // 2)
            hour = local.hour + local.minute / 60.0 + local.second / 3600.0
            intervals.append(
                _Interval(t, hour, index, day.weekday(), day.month, _hourly_temperature(temperatures[index], hour))
            )
        yield start, duration, intervals


def _home_electric_kw(interval: _Interval, rng: random.Random, appliance: dict[str, float]) -> float:
    """A home's average demand (kW) over one quarter-hour: base, occupancy peaks, AC, heating, appliances."""
    h, weekend = interval.hour, interval.weekday >= 5
    winter = interval.month in (11, 12, 1, 2)
    load = 0.22 + 0.05 * math.sin(2 * math.pi * h / 1.3)  # refrigerator and standby cycling
    if weekend:
        load += 0.75 * _bump(h, 9.0, 1.6) + 0.45 * _bump(h, 13.5, 2.5)
    else:
        load += 0.85 * _bump(h, 7.0, 0.8) + 0.12 * _bump(h, 13.0, 3.0)
    load += (1.35 if winter else 1.05) * _bump(h, 19.0 if not winter else 18.3, 1.7)  # cooking, lights, TV
    cooling = max(0.0, interval.temperature - 24.0) * 0.32
    if 9 <= h < 23 or interval.temperature > 30:
        load += min(cooling, 3.6)
    heating = max(0.0, 11.0 - interval.temperature) * 0.07  # furnace blower and a space heater
    if 6 <= h < 23:
        load += min(heating, 1.2)
    # Appliance runs (dryer, dishwasher, oven): start at random while people are awake, last about an hour.
    if appliance["left"] > 0:
        appliance["left"] -= 1
        load += appliance["kw"]
    elif 8 <= h < 22 and rng.random() < (0.025 if weekend else 0.015):
        appliance["left"], appliance["kw"] = rng.randint(2, 5), rng.uniform(1.2, 2.6)
    # Calibrated so the year comes to about 10,000 kWh, a typical US home (EIA RECS).
    return 1.27 * load * rng.lognormvariate(0.0, 0.12)


def _home_gas_therm_per_hour(interval: _Interval, rng: random.Random) -> float:
    """A home's gas use (therm/h): water heating peaks, furnace on heating degree-hours, evening cooking."""
    h = interval.hour
    water = 0.02 + 0.095 * _bump(h, 7.0, 0.9) + 0.065 * _bump(h, 21.0, 1.2)
    cooking = 0.04 * _bump(h, 18.5, 0.8)
    setpoint = 20.0 if 6 <= h < 22 else 15.5  # night setback
    furnace = max(0.0, setpoint - 2.0 - interval.temperature) * 0.012
    return (water + cooking + furnace) * rng.lognormvariate(0.0, 0.15)


def _bakery_kw(interval: _Interval, rng: random.Random) -> float:
    """A bakery-café: refrigeration around the clock, ovens from 04:00, trading hours 06:30-15:00 (closed
    Sunday)."""
    h = interval.hour
    load = 4.0 + 0.6 * math.sin(2 * math.pi * h / 1.7)  # walk-in cooler and display cases
    if interval.weekday != 6:
        if 4.0 <= h < 11.0:
            load += 18.0 * (1.0 if h < 9 else 0.6)  # deck ovens and mixers
        if 6.5 <= h < 15.0:
            load += 6.0 + 3.0 * _bump(h, 12.0, 1.0)  # lights, espresso machine, dishwasher
        load += max(0.0, interval.temperature - 22.0) * 0.9 * (1.0 if 5 <= h < 16 else 0.2)  # rooftop AC
    return load * rng.lognormvariate(0.0, 0.08)


def _warehouse_kw(interval: _Interval, rng: random.Random) -> float:
    """A small warehouse and office: lighting and HVAC on weekdays, security lighting at night."""
    h, weekday = interval.hour, interval.weekday < 5
    load = 1.2 + (1.0 if h < 6.5 or h >= 19.0 else 0.0)  # servers and security lighting
    if weekday and 7.0 <= h < 18.0:
        load += 9.0 + max(0.0, interval.temperature - 21.0) * 1.1
    return load * rng.lognormvariate(0.0, 0.1)


def _solar_kw(interval: _Interval, cloudiness: float, capacity_kw: float = 30.0) -> float:
    """Rooftop PV output: a clear-sky bell from sunrise to sunset (longer in summer), dimmed by clouds."""
    day_length = 12.0 + 2.4 * math.sin(2 * math.pi * (interval.day_index - 80) / 365.0)
    noon = 13.0 if 3 <= interval.month <= 10 else 12.0  # solar noon drifts with daylight time
    x = (interval.hour - noon) / (day_length / 2)
    if abs(x) >= 1.0:
        return 0.0
    elevation = 0.75 + 0.25 * math.sin(2 * math.pi * (interval.day_index - 80) / 365.0)
    bell: float = math.cos(x * math.pi / 2) ** 1.5
    return capacity_kw * 0.82 * elevation * bell * (1.0 - cloudiness)


# ----------------------------------------------------------------------------------------------------------
# Tariffs (hypothetical, shaped like California's): prices in dollars per kWh or per therm
# ----------------------------------------------------------------------------------------------------------


def _residential_tou_price(interval: _Interval) -> float:
    """Residential time-of-use: on-peak 16:00-21:00 every day, summer June-September."""
    summer = 6 <= interval.month <= 9
    if 16.0 <= interval.hour < 21.0:
        return 0.52 if summer else 0.41
    return 0.42 if summer else 0.38


def _commercial_tou_price(interval: _Interval) -> float:
    """Small commercial time-of-use energy price (a separate demand charge is billed monthly)."""
    summer = 6 <= interval.month <= 9
    if 16.0 <= interval.hour < 21.0:
        return 0.36 if summer else 0.30
    return 0.24 if summer else 0.22


def _cost(quantity: float, price: float) -> int:
    """Cost in 10⁻⁵ USD of ``quantity`` units at ``price`` dollars per unit."""
    return round(quantity * price * COST_UNITS_PER_DOLLAR)


# ----------------------------------------------------------------------------------------------------------
# Building the resources
# ----------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class SampleFeed:
    """One sample file: its usage points (transient model objects) and the readings of each block in
    memory."""

    file_name: str
    customer: str
    customer_id: int
    title: str
    year: int
    usage_points: list[UsagePoint]
    readings: dict[int, list[ReadingRow]]

    def write(self) -> Iterator[bytes]:
        """The feed in the Download My Data form (links under ``RetailCustomer/{c}``), as UTF-8 chunks."""
        links = ResourceLinks(RESOURCE_BASE_URL)
        return usage_feed(
            self.usage_points,
            links.retail_customer(self.customer_id),
            feed_id=stable_uuid("Feed", self.customer, self.file_name, self.year),
            title=self.title,
            updated=_feed_updated(self.year),
            self_link=feed_link("self", links.batch_retail_customer(self.customer_id), "UsagePoint"),
            readings_for=lambda block: self.readings[block.id],
        )

    def to_bytes(self) -> bytes:
        return b"".join(self.write())

    def reading_rows(self, meter_reading: MeterReading) -> Iterator[ReadingRow]:
        """Every reading of ``meter_reading``, in time order."""
        for block in meter_reading.interval_blocks:
            yield from self.readings[block.id]


def _at(epoch: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


def _feed_updated(year: int) -> dt.datetime:
    """The export time written into every sample: 06:00 UTC on 2 January after the data year."""
    return dt.datetime(year + 1, 1, 2, 6, tzinfo=dt.UTC)


def _year_start(year: int) -> dt.datetime:
    return dt.datetime(year, 1, 1, 8, tzinfo=dt.UTC)


def _local_time_parameters(year: int) -> LocalTimeParameters:
    """US Pacific time, shared by every usage point of the samples (one stable id, so it imports once)."""
    clock = LocalClock(year)
    return LocalTimeParameters(
        id=1,
        uuid=stable_uuid("LocalTimeParameters", "US/Pacific"),
        description="US Pacific time (PST/PDT)",
        published=_year_start(year),
        updated=_year_start(year),
        dst_start_rule=US_DST_START_RULE,
        dst_end_rule=US_DST_END_RULE,
        dst_offset=clock.dst_offset,
        tz_offset=clock.tz_offset,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class _Meter:
    """What a MeterReading measures: its ids, labels and ReadingType codes."""

    key: tuple[str, ...]
    meter_reading_id: int
    description: str
    commodity: int
    uom: int
    multiplier: int
    interval_length: int
    flow_direction: int = FLOW_FORWARD
    with_cost: bool = True


def _usage_point(
    *,
    usage_point_id: int,
    customer: str,
    customer_id: int,
    key: str,
    description: str,
    service_kind: int,
    tariff: str,
    parameters: LocalTimeParameters,
    year: int,
    riders: list[dict[str, object]] | None = None,
) -> UsagePoint:
    return UsagePoint(
        id=usage_point_id,
        uuid=stable_uuid("UsagePoint", customer, key),
        description=description,
        published=_year_start(year),
        updated=_feed_updated(year),
        customer_id=customer_id,
        local_time_parameters_id=parameters.id,
        local_time_parameters=parameters,
        service_kind=service_kind,
        status=1,
        # ESPI roleFlags bits: 4 isDER (0x0008) for the solar site, 5 isRevenueQuality (0x0010) for all.
        role_flags="0018" if riders else "0010",
        service_delivery_point={
            "name": f"SDP-{customer_id:04d}-{usage_point_id:02d}",
            "tariffProfile": tariff,
            "customerAgreement": f"SA-{customer_id:04d}{usage_point_id:03d}",
            **({"tariffRiderRefs": riders} if riders else {}),
        },
        ami_billing_ready=AMI_BILLING_READY_KINDS.index("operable"),
        connection_state=USAGE_POINT_CONNECTED_KINDS.index("connected"),
        read_cycle="Monthly, cycle 07",
    )


def _meter_reading(usage_point: UsagePoint, customer: str, meter: _Meter, year: int) -> MeterReading:
    reading_type = ReadingType(
        id=meter.meter_reading_id,
        uuid=stable_uuid("ReadingType", customer, *meter.key),
        description=meter.description,
        published=_year_start(year),
        updated=_year_start(year),
        accumulation_behaviour=ACCUMULATION_DELTA,
        commodity=meter.commodity,
        currency=CURRENCY_USD,
        data_qualifier=12,  # normal
        default_quality=QUALITY_VALID,
        flow_direction=meter.flow_direction,
        interval_length=meter.interval_length,
        kind=KIND_ENERGY,
        phase=769 if meter.commodity == COMMODITY_ELECTRICITY else 0,  # S12N: single-phase three-wire service
        power_of_ten_multiplier=meter.multiplier,
        time_attribute=0,
        uom=meter.uom,
    )
    meter_reading = MeterReading(
        id=meter.meter_reading_id,
        uuid=stable_uuid("MeterReading", customer, *meter.key),
        description=meter.description,
        published=_year_start(year),
        updated=_feed_updated(year),
        usage_point_id=usage_point.id,
        reading_type_id=reading_type.id,
        reading_type=reading_type,
    )
    usage_point.meter_readings.append(meter_reading)
    return meter_reading


def _fill_blocks(
    sample: SampleFeed,
    meter_reading: MeterReading,
    customer: str,
    meter: _Meter,
    days: Sequence[tuple[int, int, list[_Interval]]],
    quantity: Callable[[_Interval], int],
    price: Callable[[_Interval], float] | None,
) -> None:
    """One IntervalBlock per local day; ``quantity`` gives each interval's value (in the ReadingType's unit
    and multiplier) and ``price`` its price per unit, from which the cost is computed."""
    scale = 10.0**meter.multiplier  # value * scale = quantity in the uom's base unit (e.g. millitherm -> therm)
    for index, (start, duration, intervals) in enumerate(days, start=1):
        rows: list[ReadingRow] = []
        for interval in intervals:
            value = quantity(interval)
            cost = None
            if price is not None and meter.with_cost:
                base_units = value * scale / (1000.0 if meter.uom == UOM_WH else 1.0)  # Wh priced per kWh
                cost = _cost(base_units, price(interval))
            rows.append((interval.start, meter.interval_length, value, cost, None, None, None, None))
        block_id = meter.meter_reading_id * 1000 + index
        available = _at(start + duration + 6 * 3600)  # the meter data management system publishes next morning
        meter_reading.interval_blocks.append(
            IntervalBlock(
                id=block_id,
                uuid=stable_uuid("IntervalBlock", customer, *meter.key, start),
                published=available,
                updated=available,
                meter_reading_id=meter_reading.id,
                start=start,
                duration=duration,
            )
        )
        sample.readings[block_id] = rows


@dataclasses.dataclass(frozen=True, slots=True)
class _Charge:
    """A monthly line item: ``amount(month_summary)`` in 10⁻⁵ USD."""

    note: str
    item_kind: int
    amount: Callable[[_MonthTotals], int | None]


@dataclasses.dataclass(slots=True)
class _MonthTotals:
    month: int
    start: int
    duration: int
    energy_cost: int = 0
    consumption: int = 0
    received: int = 0
    peak_value: int = 0
    peak_start: int = 0


def _month_totals(
    clock: LocalClock, sample: SampleFeed, meter_reading: MeterReading, periods: Sequence[int] = ALL_MONTHS
) -> list[_MonthTotals]:
    months = [_MonthTotals(month, start, duration) for month, start, duration in clock.months(periods)]
    for start, _duration, value, cost, *_ in sample.reading_rows(meter_reading):
        totals = _find(months, start)
        totals.consumption += value or 0
        totals.energy_cost += cost or 0
        if (value or 0) > totals.peak_value:
            totals.peak_value, totals.peak_start = value or 0, start
    return months


def _find(months: Sequence[_MonthTotals], start: int) -> _MonthTotals:
    for totals in months:
        if totals.start <= start < totals.start + totals.duration:
            return totals
    raise ValueError(f"reading at {start} outside the year")


def _usage_summaries(
    usage_point: UsagePoint,
    customer: str,
    months: Sequence[_MonthTotals],
    *,
    commodity: int,
    uom: int,
    multiplier: int,
    tariff: str,
    charges: Sequence[_Charge],
    demand: bool = False,
) -> None:
    """Monthly bills: ``billLastPeriod`` = energy charges (the sum of the interval costs) + additional
    charges, whose line items add up to ``costAdditionalLastPeriod`` (ESPI UsageSummary documentation)."""
    for totals in months:
        end = totals.start + totals.duration
        summary = UsageSummary(
            id=usage_point.id * 100 + totals.month,
            uuid=stable_uuid("UsageSummary", customer, usage_point.uuid, totals.start),
            description=f"Bill for {dt.date(2000, totals.month, 1):%B}",
            published=_at(end + 3 * 86400),
            updated=_at(end + 3 * 86400),
            usage_point_id=usage_point.id,
            billing_period_start=totals.start,
            billing_period_duration=totals.duration,
            currency=CURRENCY_USD,
            quality_of_reading=QUALITY_VALID,
            status_time_stamp=end + 3 * 86400,
            commodity=commodity,
            tariff_profile=tariff,
            read_cycle="Monthly, cycle 07",
            measurements={
                "overallConsumptionLastPeriod": {
                    "powerOfTenMultiplier": multiplier,
                    "timeStamp": end,
                    "uom": uom,
                    "value": totals.consumption,
                }
            },
        )
        if demand:
            assert summary.measurements is not None
            summary.measurements["peakDemand"] = {
                "powerOfTenMultiplier": 0,
                "timeStamp": totals.peak_start,
                "uom": UOM_W,
                "value": totals.peak_value * 4,  # Wh in 15 minutes → average W over the interval
            }
        additional = 0
        position = 0
        for charge in charges:
            amount = charge.amount(totals)
            if amount is None:
                continue
            summary.line_items.append(
                LineItem(
                    id=summary.id * 10 + position,
                    position=position,
                    amount=amount,
                    date_time=end,
                    note=charge.note,
                    item_kind=charge.item_kind,
                    item_period_start=totals.start,
                    item_period_duration=totals.duration,
                )
            )
            additional += amount
            position += 1
        summary.cost_additional_last_period = additional
        summary.bill_last_period = totals.energy_cost + additional
        usage_point.usage_summaries.append(summary)


def _daily_charge(dollars_per_day: float) -> Callable[[_MonthTotals], int]:
    return lambda totals: _cost(totals.duration / 86400, dollars_per_day)


def _tax(rate: float, *, extra: Callable[[_MonthTotals], int] | None = None) -> Callable[[_MonthTotals], int]:
    def amount(totals: _MonthTotals) -> int:
        base = totals.energy_cost + (extra(totals) if extra else 0)
        return round(max(base, 0) * rate)

    return amount


# ----------------------------------------------------------------------------------------------------------
# The three sample feeds
# ----------------------------------------------------------------------------------------------------------


def home_electricity_feed(year: int = DEFAULT_YEAR, seed: int = DEFAULT_SEED) -> SampleFeed:
    """Alice's home: a year of 15-minute electricity (Wh) with time-of-use interval costs and monthly
    bills."""
    clock = LocalClock(year)
    weather = _daily_weather(clock, _stream(seed, "weather"))
    rng = _stream(seed, "home/electricity")
    sample = SampleFeed(HOME_ELECTRICITY_FILE, "alice", 1, "Green Button Download: home electricity", year, [], {})
    tariff = "E-TOU-C residential time-of-use (sample)"
    usage_point = _usage_point(
        usage_point_id=1,
        customer="alice",
        customer_id=1,
        key="electricity",
        description="Home electricity, 123 Elm Street",
        service_kind=SERVICE_ELECTRICITY,
        tariff=tariff,
        parameters=_local_time_parameters(year),
        year=year,
    )
    meter = _Meter(
        ("electricity", "delivered"),
        1,
        "Electricity delivered, 15-minute energy (Wh)",
        COMMODITY_ELECTRICITY,
        UOM_WH,
        0,
        900,
    )
    meter_reading = _meter_reading(usage_point, "alice", meter, year)
    appliance = {"left": 0.0, "kw": 0.0}
    _fill_blocks(
        sample,
        meter_reading,
        "alice",
        meter,
        list(_intervals(clock, weather, 900)),
        lambda interval: round(_home_electric_kw(interval, rng, appliance) * 250),  # kW over 15 min → Wh
        _residential_tou_price,
    )
    _usage_summaries(
        usage_point,
        "alice",
        _month_totals(clock, sample, meter_reading),
        commodity=COMMODITY_ELECTRICITY,
        uom=UOM_WH,
        multiplier=0,
        tariff=tariff,
        charges=[
            _Charge("Base services charge", ITEM_ADMINISTRATIVE_FEE, _daily_charge(0.39)),
            _Charge(
                "California Climate Credit",
                ITEM_DELIVERY_CREDIT,
                lambda totals: -5_823_000 if totals.month in (4, 10) else None,
            ),
            _Charge("Taxes and franchise fees (7.5%)", ITEM_TAX, _tax(0.075)),
        ],
    )
    sample.usage_points.append(usage_point)
    return sample


def home_gas_feed(year: int = DEFAULT_YEAR, seed: int = DEFAULT_SEED) -> SampleFeed:
    """Alice's home: a year of hourly natural gas in millitherms (uom 169, powerOfTenMultiplier -3),
    winter-heavy."""
    clock = LocalClock(year)
    weather = _daily_weather(clock, _stream(seed, "weather"))  # the same weather as the electricity
    rng = _stream(seed, "home/gas")
    sample = SampleFeed(HOME_GAS_FILE, "alice", 1, "Green Button Download: home natural gas", year, [], {})
    tariff = "G-1 residential gas (sample)"
    usage_point = _usage_point(
        usage_point_id=2,
        customer="alice",
        customer_id=1,
        key="gas",
        description="Home natural gas, 123 Elm Street",
        service_kind=SERVICE_GAS,
        tariff=tariff,
        parameters=_local_time_parameters(year),
        year=year,
    )
    meter = _Meter(
        ("gas", "delivered"),
        2,
        "Natural gas delivered, hourly (millitherm)",
        COMMODITY_NATURAL_GAS,
        UOM_THERM,
        -3,
        3600,
    )
    meter_reading = _meter_reading(usage_point, "alice", meter, year)
    _fill_blocks(
        sample,
        meter_reading,
        "alice",
        meter,
        list(_intervals(clock, weather, 3600)),
        lambda interval: round(_home_gas_therm_per_hour(interval, rng) * 1000),
        lambda interval: 2.35 if interval.month in (11, 12, 1, 2, 3) else 2.05,  # $/therm, winter procurement
    )
    _usage_summaries(
        usage_point,
        "alice",
        _month_totals(clock, sample, meter_reading),
        commodity=COMMODITY_NATURAL_GAS,
        uom=UOM_THERM,
        multiplier=-3,
        tariff=tariff,
        charges=[
            _Charge("Customer charge", ITEM_ADMINISTRATIVE_FEE, _daily_charge(0.16)),
            _Charge(
                "Gas public purpose program surcharge",
                ITEM_DELIVERY_FEE,
                lambda t: _cost(t.consumption / 1000, 0.09),
            ),
            _Charge("Taxes (5%)", ITEM_TAX, _tax(0.05)),
        ],
    )
    sample.usage_points.append(usage_point)
    return sample


def business_feed(year: int = DEFAULT_YEAR, seed: int = DEFAULT_SEED) -> SampleFeed:
    """Bizco: a demand-metered bakery, a warehouse with 30 kW of rooftop solar on net metering, and the
    bakery's gas, from March to November (:data:`BUSINESS_MONTHS`).

    Net metering is written as two MeterReadings of the same UsagePoint, energy delivered (flowDirection 1,
    forward) and energy received from the customer (flowDirection 19, reverse), each a delta ReadingType: the
    form the ESPI ``FlowDirectionKind`` and ``ReadingType`` documentation describe, and the one a net-metering
    bill is computed from (delivered at the retail price, received at the export credit). Interval costs are
    on the delivered reading; the export credit is a monthly line item (ESPI ``ItemKind`` 6, energy generation
    credit).
    """
    clock = LocalClock(year)
    weather = _daily_weather(clock, _stream(seed, "weather"))
    parameters = _local_time_parameters(year)
    sample = SampleFeed(BUSINESS_FILE, "bizco", 2, "Green Button Download: Main Street Bakery & Co.", year, [], {})

    # 1. The bakery, demand-metered (peak demand in each UsageSummary, demand charge as a line item).
    rng = _stream(seed, "bizco/bakery")
    tariff = "B-10 small commercial time-of-use with demand (sample)"
    bakery = _usage_point(
        usage_point_id=3,
        customer="bizco",
        customer_id=2,
        key="bakery-electricity",
        description="Main Street Bakery & Café <electric, demand-metered>",
        service_kind=SERVICE_ELECTRICITY,
        tariff=tariff,
        parameters=parameters,
        year=year,
    )
    meter = _Meter(
        ("bakery-electricity", "delivered"),
        3,
        "Electricity delivered, 15-minute energy (Wh)",
        COMMODITY_ELECTRICITY,
        UOM_WH,
        0,
        900,
    )
    reading = _meter_reading(bakery, "bizco", meter, year)
    quarter_hours = list(_intervals(clock, weather, 900, BUSINESS_MONTHS))
    _fill_blocks(
        sample,
        reading,
        "bizco",
        meter,
        quarter_hours,
        lambda i: round(_bakery_kw(i, rng) * 250),
        _commercial_tou_price,
    )
    _usage_summaries(
        bakery,
        "bizco",
        _month_totals(clock, sample, reading, BUSINESS_MONTHS),
        commodity=COMMODITY_ELECTRICITY,
        uom=UOM_WH,
        multiplier=0,
        tariff=tariff,
        demand=True,
        charges=[
            _Charge("Customer charge", ITEM_ADMINISTRATIVE_FEE, _daily_charge(1.05)),
            _Charge(
                "Maximum demand charge ($18.50/kW)",
                ITEM_DELIVERY_FEE,
                lambda t: _cost(t.peak_value * 4 / 1000, 18.50),
            ),
            _Charge(
                "Taxes and franchise fees (7.5%)",
                ITEM_TAX,
                _tax(0.075, extra=lambda t: _cost(t.peak_value * 4 / 1000, 18.50)),
            ),
        ],
    )
    sample.usage_points.append(bakery)

    # 2. The warehouse with rooftop solar: delivered and received energy.
    rng = _stream(seed, "bizco/warehouse")
    clouds_rng = _stream(seed, "bizco/clouds")
    cloudiness = [min(0.9, max(0.0, clouds_rng.gauss(0.45 if i < 60 or i > 320 else 0.12, 0.18))) for i in range(366)]
    tariff = "B-1 small commercial time-of-use, NEM 3.0 net billing (sample)"
    riders: list[dict[str, object]] = [
        {
            "riderType": "Net Energy Metering (NEM) net billing tariff",
            "enrollmentStatus": "enrolled",
            "effectiveDate": clock.midnight(dt.date(year, 1, 1)),
        },
    ]
    warehouse = _usage_point(
        usage_point_id=4,
        customer="bizco",
        customer_id=2,
        key="warehouse-electricity",
        description="Warehouse with rooftop solar (net metering)",
        service_kind=SERVICE_ELECTRICITY,
        tariff=tariff,
        parameters=parameters,
        year=year,
        riders=riders,
    )
    net: dict[int, float] = {}
    for _, _, intervals in quarter_hours:
        for interval in intervals:
            net[interval.start] = _warehouse_kw(interval, rng) - _solar_kw(interval, cloudiness[interval.day_index])
    delivered = _Meter(
        ("warehouse-electricity", "delivered"),
        4,
        "Electricity delivered, 15-minute energy (Wh)",
        COMMODITY_ELECTRICITY,
        UOM_WH,
        0,
        900,
    )
    received = _Meter(
        ("warehouse-electricity", "received"),
        5,
        "Electricity received from the customer (solar export), 15-minute energy (Wh)",
        COMMODITY_ELECTRICITY,
        UOM_WH,
        0,
        900,
        flow_direction=FLOW_REVERSE,
        with_cost=False,
    )
    delivered_reading = _meter_reading(warehouse, "bizco", delivered, year)
    received_reading = _meter_reading(warehouse, "bizco", received, year)
    _fill_blocks(
        sample,
        delivered_reading,
        "bizco",
        delivered,
        quarter_hours,
        lambda i: round(max(net[i.start], 0.0) * 250),
        _commercial_tou_price,
    )
    _fill_blocks(
        sample,
        received_reading,
        "bizco",
        received,
        quarter_hours,
        lambda i: round(max(-net[i.start], 0.0) * 250),
        None,
    )
    months = _month_totals(clock, sample, delivered_reading, BUSINESS_MONTHS)
    exports = _month_totals(clock, sample, received_reading, BUSINESS_MONTHS)
    for totals, export in zip(months, exports, strict=True):
        totals.received = export.consumption
    _usage_summaries(
        warehouse,
        "bizco",
        months,
        commodity=COMMODITY_ELECTRICITY,
        uom=UOM_WH,
        multiplier=0,
        tariff=tariff,
        demand=True,
        charges=[
            _Charge("Customer charge", ITEM_ADMINISTRATIVE_FEE, _daily_charge(0.82)),
            _Charge(
                "Solar export credit ($0.08/kWh)",
                ITEM_GENERATION_CREDIT,
                lambda t: -_cost(t.received / 1000, 0.08),
            ),
            _Charge("Taxes and franchise fees (7.5%)", ITEM_TAX, _tax(0.075)),
        ],
    )
    sample.usage_points.append(warehouse)

    # 3. The bakery's gas (water heating and a proofing cabinet), hourly.
    rng = _stream(seed, "bizco/gas")
    tariff = "G-NR1 small commercial gas (sample)"
    gas = _usage_point(
        usage_point_id=5,
        customer="bizco",
        customer_id=2,
        key="bakery-gas",
        description="Main Street Bakery & Café gas",
        service_kind=SERVICE_GAS,
        tariff=tariff,
        parameters=parameters,
        year=year,
    )
    meter = _Meter(
        ("bakery-gas", "delivered"),
        6,
        "Natural gas delivered, hourly (millitherm)",
        COMMODITY_NATURAL_GAS,
        UOM_THERM,
        -3,
        3600,
    )
    gas_reading = _meter_reading(gas, "bizco", meter, year)

    def bakery_gas(interval: _Interval) -> int:
        open_hours = interval.weekday != 6 and 4.0 <= interval.hour < 15.0
        heating = max(0.0, 16.0 - interval.temperature) * (0.06 if open_hours else 0.02)
        therms = 0.08 + (0.9 if open_hours else 0.0) + heating
        return round(therms * rng.lognormvariate(0.0, 0.12) * 1000)

    _fill_blocks(
        sample,
        gas_reading,
        "bizco",
        meter,
        list(_intervals(clock, weather, 3600, BUSINESS_MONTHS)),
        bakery_gas,
        lambda i: 1.65,
    )
    _usage_summaries(
        gas,
        "bizco",
        _month_totals(clock, sample, gas_reading, BUSINESS_MONTHS),
        commodity=COMMODITY_NATURAL_GAS,
        uom=UOM_THERM,
        multiplier=-3,
        tariff=tariff,
        charges=[
            _Charge("Customer charge", ITEM_ADMINISTRATIVE_FEE, _daily_charge(0.45)),
            _Charge("Taxes (5%)", ITEM_TAX, _tax(0.05)),
        ],
    )
    sample.usage_points.append(gas)
    return sample


def sample_feeds(year: int = DEFAULT_YEAR, seed: int = DEFAULT_SEED) -> list[SampleFeed]:
    """The three sample feeds, in file order."""
    return [home_electricity_feed(year, seed), home_gas_feed(year, seed), business_feed(year, seed)]


def generate(out_dir: Path, *, year: int = DEFAULT_YEAR, seed: int = DEFAULT_SEED) -> list[Path]:
    """Write the sample files into ``out_dir`` (created if needed) and return their paths.

    Files are written through a temporary name and renamed, so a reader never sees half a file.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for sample in sample_feeds(year, seed):
        path = out_dir / sample.file_name
        partial = path.with_suffix(".xml.partial")
        with partial.open("wb") as handle:
            for chunk in sample.write():
                handle.write(chunk)
        partial.replace(path)
        written.append(path)
    return written
