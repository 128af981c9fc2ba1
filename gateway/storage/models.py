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
from gateway.storage.bulk import BulkChunk, BulkRequest, bulk_subscription
from gateway.storage.consent import Consent, ConsentEvent, ConsentRequest, CustomerSession
from gateway.storage.customer import RetailCustomer
from gateway.storage.oauth import AuthorizationCode, OAuthToken, PendingAuthorizationRequest, TokenType
from gateway.storage.outbox import OutboxMessage
from gateway.storage.rate_limit import RateLimitBucket
from gateway.storage.throttle import ThrottleCounter
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
    "BulkChunk",
    "BulkRequest",
    "ClientRole",
    "Consent",
    "ConsentEvent",
    "ConsentRequest",
    "CustomerSession",
    "ElectricPowerQualitySummary",
    "IntervalBlock",
    "LineItem",
    "LocalTimeParameters",
    "MeterReading",
    "OAuthToken",
    "OutboxMessage",
    "PendingAuthorizationRequest",
    "RateLimitBucket",
    "ReadingType",
    "RetailCustomer",
    "Subscription",
    "ThrottleCounter",
    "TokenType",
    "UsagePoint",
    "UsageSummary",
    "bulk_subscription",
    "interval_reading_table",
    "subscription_usage_point",
]
