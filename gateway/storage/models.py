"""Every model of the gateway, imported in one place so the mapper registry and Alembic see them all."""

from __future__ import annotations

from gateway.storage.application import ApplicationInformation, ApplicationStatus, ClientRole
from gateway.storage.authorization import (
    Authorization,
    AuthorizationKind,
    AuthorizationStatus,
    Subscription,
    subscription_usage_point,
)
from gateway.storage.base import Base
from gateway.storage.customer import RetailCustomer
from gateway.storage.oauth import AuthorizationCode, OAuthToken, TokenType
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
    "ApplicationInformation",
    "ApplicationStatus",
    "Authorization",
    "AuthorizationCode",
    "AuthorizationKind",
    "AuthorizationStatus",
    "Base",
    "ClientRole",
    "ElectricPowerQualitySummary",
    "IntervalBlock",
    "LineItem",
    "LocalTimeParameters",
    "MeterReading",
    "OAuthToken",
    "ReadingType",
    "RetailCustomer",
    "Subscription",
    "TokenType",
    "UsagePoint",
    "UsageSummary",
    "interval_reading_table",
    "subscription_usage_point",
]
