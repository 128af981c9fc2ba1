"""Transient ESPI model objects for writer tests: one with every column set, one with only the required ones.

No session is involved: the writer must work on plain objects (the sample generator uses it that way) as well
as on rows loaded from the database.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from gateway.espi.links import ResourceLinks
from gateway.espi.writer import ReadingRow
from gateway.storage.ids import stable_uuid
from gateway.storage.models import (
    ApplicationInformation,
    Authorization,
    ElectricPowerQualitySummary,
    IntervalBlock,
    LineItem,
    LocalTimeParameters,
    MeterReading,
    ReadingType,
    Subscription,
    UsagePoint,
    UsageSummary,
)

BASE = "https://utility.example.com/DataCustodian/espi/1_1/resource"
LINKS = ResourceLinks(BASE)
PUBLISHED = dt.datetime(2025, 1, 1, 8, 0, 0, tzinfo=dt.UTC)
UPDATED = dt.datetime(2025, 2, 1, 8, 30, 15, tzinfo=dt.UTC)
DAY_START = 1_735_718_400  # 2025-01-01T08:00:00Z, local midnight in US Pacific time


def meta(kind: str, row_id: int, description: str | None = None) -> dict[str, Any]:
    """The IdentifiedObject columns of a row."""
    return {
        "id": row_id,
        "uuid": stable_uuid(kind, "test", row_id),
        "description": description,
        "published": PUBLISHED,
        "updated": UPDATED,
    }


def local_time_parameters() -> LocalTimeParameters:
    return LocalTimeParameters(
        **meta("LocalTimeParameters", 1, "US Pacific"),
        dst_start_rule="360E2000",
        dst_end_rule="b40e2000",
        dst_offset=3600,
        tz_offset=-28800,
    )


def full_reading_type(row_id: int = 1) -> ReadingType:
    """A ReadingType with every ESPI 4.0 field set."""
    return ReadingType(
        **meta("ReadingType", row_id, "Energy delivered (Wh)"),
        accumulation_behaviour=4,
        commodity=1,
        consumption_tier=1,
        currency=840,
        data_qualifier=12,
        default_quality=0,
        flow_direction=1,
        interval_length=900,
        kind=12,
        phase=769,
        power_of_ten_multiplier=0,
        time_attribute=0,
        tou=1,
        uom=72,
        cpp=0,
        interharmonic_numerator=1,
        interharmonic_denominator=2,
        measuring_period=2,
        argument_numerator=3,
        argument_denominator=4,
    )


def full_usage_point(parameters: LocalTimeParameters | None = None) -> UsagePoint:
    """A UsagePoint with every stored ESPI field set."""
    parameters = parameters or local_time_parameters()
    measurement = {
        "powerOfTenMultiplier": 0,
        "timeStamp": DAY_START,
        "uom": 38,
        "value": 5000,
        "readingTypeRef": f"{BASE}/ReadingType/1",
    }
    return UsagePoint(
        **meta("UsagePoint", 1, "Home <main> & garage"),
        customer_id=7,
        local_time_parameters_id=parameters.id,
        local_time_parameters=parameters,
        service_kind=0,
        status=1,
        role_flags="0010",
        ami_billing_ready=6,
        check_billing=True,
        connection_state=0,
        is_sdp=True,
        is_virtual=False,
        minimal_usage_expected=False,
        grounded=True,
        phase_code=769,
        outage_region="North",
        read_cycle="Cycle 7",
        read_route="Route 12",
        service_delivery_remark="Dog in yard",
        service_priority="normal",
        service_delivery_point={
            "name": "SDP-1",
            "tariffProfile": "E-TOU-C",
            "customerAgreement": "SA-1",
            "tariffRiderRefs": [{"riderType": "NEM", "enrollmentStatus": "enrolled", "effectiveDate": DAY_START}],
        },
        measurements={
            "estimatedLoad": measurement,
            "nominalServiceVoltage": {"uom": 29, "value": 240},
            "ratedCurrent": {"uom": 5, "value": 200},
            "ratedPower": {"uom": 38, "value": 48000},
        },
    )


def minimal_usage_point() -> UsagePoint:
    """A UsagePoint with every optional column NULL."""
    return UsagePoint(**meta("UsagePoint", 2), customer_id=7, service_kind=1)


def full_usage_summary() -> UsageSummary:
    summary = UsageSummary(
        **meta("UsageSummary", 1, "January bill"),
        usage_point_id=1,
        billing_period_start=DAY_START,
        billing_period_duration=31 * 86400,
        bill_last_period=25_000_000,
        bill_to_date=1_000_000,
        cost_additional_last_period=2_000_000,
        currency=840,
        quality_of_reading=0,
        status_time_stamp=DAY_START + 32 * 86400,
        commodity=1,
        tariff_profile="E-TOU-C",
        read_cycle="Cycle 7",
        tariff_rider_refs=[{"riderType": "CARE", "enrollmentStatus": "enrolledPending", "effectiveDate": DAY_START}],
        billing_charge_source="Utility & Co",
        ratchet_demand_period_start=DAY_START,
        ratchet_demand_period_duration=86400,
        measurements={
            "overallConsumptionLastPeriod": {
                "powerOfTenMultiplier": 0,
                "timeStamp": DAY_START,
                "uom": 72,
                "value": 600_000,
            },
            "peakDemand": {"uom": 38, "value": 4200},
            "ratchetDemand": {"uom": 38, "value": 4000},
            "currentBillingPeriodOverAllConsumption": {"uom": 72, "value": 1},
            "currentDayLastYearNetConsumption": {"uom": 72, "value": 2},
            "currentDayNetConsumption": {"uom": 72, "value": 3},
            "currentDayOverallConsumption": {"uom": 72, "value": 4},
            "previousDayLastYearOverallConsumption": {"uom": 72, "value": 5},
            "previousDayNetConsumption": {"uom": 72, "value": 6},
            "previousDayOverallConsumption": {"uom": 72, "value": 7},
        },
    )
    summary.line_items.append(
        LineItem(
            id=1,
            position=0,
            amount=1_200_000,
            rounding=0,
            date_time=DAY_START,
            note="Base charge <monthly> & fees",
            measurement={"uom": 72, "value": 600_000},
            item_kind=4,
            unit_cost=39_000,
            item_period_start=DAY_START,
            item_period_duration=31 * 86400,
        )
    )
    summary.line_items.append(LineItem(id=2, position=1, amount=800_000, note="Tax", item_kind=5))
    return summary


def full_power_quality_summary() -> ElectricPowerQualitySummary:
    return ElectricPowerQualitySummary(
        **meta("ElectricPowerQualitySummary", 1),
        usage_point_id=1,
        flicker_plt=1,
        flicker_pst=2,
        harmonic_voltage=3,
        long_interruptions=4,
        mains_voltage=240_000,
        measurement_protocol=5,
        power_frequency=60_000,
        rapid_voltage_changes=6,
        short_interruptions=7,
        summary_interval_start=DAY_START,
        summary_interval_duration=86400,
        supply_voltage_dips=8,
        supply_voltage_imbalance=9,
        supply_voltage_variations=10,
        temp_overvoltage=11,
    )


def reading_rows(start: int = DAY_START, count: int = 96, duration: int = 900) -> list[ReadingRow]:
    """Quarter-hour readings with cost (the fast path), plus one with every optional field and one without
    value."""
    rows: list[ReadingRow] = [
        (start + i * duration, duration, 250 + i, 10_000 + i, None, None, None, None) for i in range(count)
    ]
    if count >= 3:
        rows[1] = (start + duration, duration, 300, 12_000, "8,9", 1, 2, 0)
        rows[2] = (start + 2 * duration, duration, None, None, "14", None, None, None)
    return rows


def usage_tree() -> tuple[UsagePoint, dict[int, list[ReadingRow]]]:
    """A UsagePoint with two MeterReadings sharing one ReadingType, two daily blocks each, a UsageSummary and
    an ElectricPowerQualitySummary; and the readings of every block by block id."""
    usage_point = full_usage_point()
    reading_type = full_reading_type()
    readings: dict[int, list[ReadingRow]] = {}
    for m in (1, 2):
        meter_reading = MeterReading(
            **meta("MeterReading", m),
            usage_point_id=1,
            reading_type_id=reading_type.id,
            reading_type=reading_type,
        )
        for day in range(2):
            block_id = m * 10 + day
            start = DAY_START + day * 86400
            meter_reading.interval_blocks.append(
                IntervalBlock(**meta("IntervalBlock", block_id), meter_reading_id=m, start=start, duration=86400)
            )
            readings[block_id] = reading_rows(start)
        usage_point.meter_readings.append(meter_reading)
    usage_point.usage_summaries.append(full_usage_summary())
    usage_point.power_quality_summaries.append(full_power_quality_summary())
    return usage_point, readings


def application() -> ApplicationInformation:
    return ApplicationInformation(
        **meta("ApplicationInformation", 7, "Tracks household energy <use> & cost"),
        client_id="energy-helper-7",
        client_secret_digest="00" * 32,
        client_name="Energy Helper",
        software_id="EnergyHelper",
        software_version="2.1.0",
        client_uri="https://app.example.org/",
        logo_uri="https://app.example.org/logo.png",
        tos_uri="https://app.example.org/terms",
        policy_uri="https://app.example.org/privacy",
        contacts=["ops@app.example.org"],
        redirect_uris=["https://app.example.org/callback", "https://app.example.org/callback2"],
        notify_uri="https://app.example.org/notify",
        scopes=["FB=1_3_4_5_13_14_39;IntervalDuration=900;BlockDuration=daily;HistoryLength=13"],
        grant_types=["authorization_code", "refresh_token", "client_credentials", "password"],
        token_endpoint_auth_method="client_secret_basic",
        status=2,
        third_party_application_type=1,
        third_party_application_use=1,
        third_party_application_status=3,
        third_party_phone="+1 800 555 0100",
        client_id_issued_at=PUBLISHED,
        client_secret_expires_at=None,
    )


def customer_authorization() -> Authorization:
    authorization = Authorization(
        **meta("Authorization", 9),
        kind="customer",
        application_id=7,
        customer_id=7,
        status=1,
        authorized_period_start=DAY_START,
        authorized_period_duration=365 * 86400,
        published_period_start=DAY_START - 365 * 86400,
        published_period_duration=365 * 86400,
        expires_at=DAY_START + 365 * 86400,
        grant_type="authorization_code",
        scope="FB=1_3_4_5_13_14_39;IntervalDuration=900;BlockDuration=daily;HistoryLength=13",
        token_type="Bearer",
        error="access_denied",
        error_description="The customer said no",
        error_uri="https://utility.example.com/errors/denied",
    )
    authorization.subscription = Subscription(**meta("Subscription", 5), application_id=7, customer_id=7)
    return authorization


def client_authorization() -> Authorization:
    """A client_credentials authorization of a third party, with the password grant recorded (not an ESPI
    code)."""
    return Authorization(
        **meta("Authorization", 10),
        kind="client",
        application_id=7,
        status=1,
        expires_at=DAY_START + 3600,
        grant_type="password",
        scope="FB=34_35",
        token_type="Bearer",
        error="consent_required",
    )
