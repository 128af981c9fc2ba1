"""Who delivered an outbox message: the worker process (``host:pid``) is recorded on the row it marks delivered."""

from __future__ import annotations

import os
import socket

from gateway.outbox import deliver_due, enqueue_mail
from gateway.outbox.delivery import worker_identity
from gateway.storage.outbox import OutboxMessage, OutboxState


def _queue_one(db) -> int:
    message = enqueue_mail(db, to=["a@example.com"], subject="Hi", text="Hello")
    db.commit()
    assert message is not None
    return message.id


def _row(db, message_id: int) -> OutboxMessage:
    db.expire_all()
    row = db.get(OutboxMessage, message_id)
    assert row is not None
    return row


def test_the_worker_identity_is_host_and_pid():
    assert worker_identity() == f"{socket.gethostname()}:{os.getpid()}"


def test_a_delivered_message_records_this_process_by_default(db, services):
    message_id = _queue_one(db)
    deliver_due(services.sessions, {"mail": lambda payload: None})
    row = _row(db, message_id)
    assert (row.state, row.delivered_by) == (OutboxState.DELIVERED, worker_identity())


def test_a_delivered_message_records_the_worker_it_is_told(db, services):
    message_id = _queue_one(db)
    deliver_due(services.sessions, {"mail": lambda payload: None}, delivered_by="node-b:4242")
    assert _row(db, message_id).delivered_by == "node-b:4242"


def test_a_failed_attempt_records_no_deliverer(db, services):
    message_id = _queue_one(db)

    def broken(payload):
        raise ConnectionRefusedError("smtp down")

    deliver_due(services.sessions, {"mail": broken}, delivered_by="node-a:1")
    row = _row(db, message_id)
    assert (row.state, row.delivered_by) == (OutboxState.PENDING, None)


def test_a_message_given_up_records_no_deliverer(db, services):
    message_id = _queue_one(db)

    def broken(payload):
        raise TimeoutError("no answer")

    deliver_due(services.sessions, {"mail": broken}, max_attempts=1, delivered_by="node-a:1")
    row = _row(db, message_id)
    assert (row.state, row.delivered_by) == (OutboxState.FAILED, None)
