"""The durable outbox: queue messages in the caller's transaction, deliver them later with retries.

:func:`enqueue_mail` and :func:`enqueue_notification` (from :mod:`gateway.outbox.queue`) add rows; :func:`deliver_due`
(from :mod:`gateway.outbox.delivery`) is what ``gateway worker`` runs.
"""

from __future__ import annotations

from gateway.outbox.delivery import Deliverer, DeliveryReport, default_deliverers, deliver_due
from gateway.outbox.queue import enqueue, enqueue_mail, enqueue_notification

__all__ = [
    "Deliverer",
    "DeliveryReport",
    "default_deliverers",
    "deliver_due",
    "enqueue",
    "enqueue_mail",
    "enqueue_notification",
]
