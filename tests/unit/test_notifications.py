"""gateway.notifications.import_and_notify: an import and its FB 39 pushes in one SAVEPOINT of the caller's
transaction (ESPI REQ.21 FB 39; transactional outbox)."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.customers import add_customer
from gateway.espi.ingest import FeedRejected
from gateway.notifications import BATCH_LIST, import_and_notify
from gateway.services import Services
from gateway.storage.customer import RetailCustomer
from gateway.storage.outbox import OutboxMessage
from tests.functional.push_fixtures import add_active_consent
from tests.unit.espi.test_ingest import FeedBuilder

THREE_DAYS = FeedBuilder().standard(blocks=3)
REJECTED = THREE_DAYS.replace(b"<espi:value>1003</espi:value>", b"<espi:value>many</espi:value>")


@pytest.fixture
def subscribed(db: Session, services: Services) -> RetailCustomer:
    """alice with her first day of data and an app holding an active consent on it."""
    alice = add_customer(db, services.passwords, username="alice", email="alice@example.org")
    import_and_notify(db, services.settings, io.BytesIO(FeedBuilder().standard(blocks=1)), customer=alice)
    add_active_consent(db, services, alice)
    return alice


def batch_lists(db: Session) -> int:
    return int(db.scalar(select(func.count()).where(OutboxMessage.kind == BATCH_LIST)) or 0)


def test_new_data_is_imported_with_its_batch_list_queued(
    db: Session, services: Services, subscribed: RetailCustomer
) -> None:
    report, queued = import_and_notify(db, services.settings, io.BytesIO(THREE_DAYS), customer=subscribed)
    assert (report.interval_blocks.created, queued, batch_lists(db)) == (2, 1, 1)


def test_a_rejected_file_queues_nothing_and_leaves_the_transaction_usable(
    db: Session, services: Services, subscribed: RetailCustomer
) -> None:
    with pytest.raises(FeedRejected):
        import_and_notify(db, services.settings, io.BytesIO(REJECTED), customer=subscribed)
    rejected = batch_lists(db)
    _, queued = import_and_notify(db, services.settings, io.BytesIO(THREE_DAYS), customer=subscribed)
    assert (rejected, queued, batch_lists(db)) == (0, 1, 1)
