"""An app with a notify URI holding an active consent, and the FB 39 BatchList rows queued for it.

For tests on databases of their own (CLI commands, subprocesses killed mid-way) rather than the savepoint-wrapped
``db``: the consent is arranged directly, as it stands after the consent screen and the token exchange, so that the
only ``espi_batch_list`` rows in the outbox are the data pushes under test (ESPI REQ.21 FB 39, ESPI-NOTES §9).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from gateway.notifications import BATCH_LIST
from gateway.oauth.registration import register_client
from gateway.services import Services
from gateway.storage.authorization import Authorization, AuthorizationKind, AuthorizationStatus, Subscription
from gateway.storage.base import utcnow
from gateway.storage.customer import RetailCustomer
from gateway.storage.outbox import OutboxMessage
from gateway.storage.usage import UsagePoint
from tests.functional.oauth.helpers import CLIENT_SCOPE, REDIRECT

__all__ = ["NOTIFY_URI", "PUSH_SCOPE", "add_active_consent", "batch_lists"]

NOTIFY_URI = "https://app.example/notify"
PUSH_SCOPE = "FB=1_3_4_5_13_14_39;IntervalDuration=900_3600;BlockDuration=daily"
"""Electricity interval data and FB 39, with no HistoryLength: any data window is new data for it."""


def add_active_consent(session: Session, services: Services, customer: RetailCustomer) -> int:
    """Register an app with :data:`NOTIFY_URI` and give it an active consent on every usage point ``customer`` has;
    return the Subscription's id."""
    client = register_client(
        session,
        services.settings,
        services.digester,
        name="Push App",
        redirect_uris=[REDIRECT],
        scopes=[PUSH_SCOPE, CLIENT_SCOPE],
        grant_types=["authorization_code", "refresh_token", "client_credentials"],
        notify_uri=NOTIFY_URI,
    )
    authorization = Authorization(
        uuid=uuid.uuid4(),
        kind=AuthorizationKind.CUSTOMER,
        application_id=client.application.id,
        customer_id=customer.id,
        status=AuthorizationStatus.ACTIVE,
        expires_at=int(utcnow().timestamp()) + 86_400,
        grant_type="authorization_code",
        scope=PUSH_SCOPE,
    )
    session.add(authorization)
    session.flush()
    subscription = Subscription(
        uuid=uuid.uuid4(),
        authorization_id=authorization.id,
        application_id=client.application.id,
        customer_id=customer.id,
        usage_points=list(session.scalars(select(UsagePoint).where(UsagePoint.customer_id == customer.id))),
    )
    session.add(subscription)
    session.flush()
    return subscription.id


def batch_lists(engine: Engine) -> list[dict[str, Any]]:
    """The payloads of every queued BatchList, oldest first (read in a connection of its own)."""
    with engine.connect() as connection:
        return list(
            connection.scalars(
                select(OutboxMessage.payload).where(OutboxMessage.kind == BATCH_LIST).order_by(OutboxMessage.id)
            )
        )
