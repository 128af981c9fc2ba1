"""The durable outbox: queued with the change, delivered by a worker with retries and backoff."""

from __future__ import annotations

import datetime as dt
from email import message_from_bytes

import pytest
from sqlalchemy import select

from gateway.config import ConfigurationError
from gateway.outbox import deliver_due, enqueue_mail, enqueue_notification
from gateway.outbox.delivery import MAX_ATTEMPTS, backoff, batch_list
from gateway.outbox.mailer import FileMailer, build_message, parse_smtp_url
from gateway.storage.outbox import OutboxMessage, OutboxState


def _queue_one(db) -> int:
    message = enqueue_mail(db, to=["a@example.com"], subject="Hi", text="Hello")
    db.commit()
    assert message is not None
    return message.id


def test_a_due_message_is_delivered_once(db, services):
    _queue_one(db)
    seen: list[dict] = []
    first = deliver_due(services.sessions, {"mail": seen.append})
    second = deliver_due(services.sessions, {"mail": seen.append})
    assert (first.delivered, second.delivered, len(seen)) == (1, 0, 1)


def test_a_failure_is_retried_later_with_backoff(db, services):
    message_id = _queue_one(db)

    def broken(payload):
        raise ConnectionRefusedError("smtp down")

    report = deliver_due(services.sessions, {"mail": broken})
    db.expire_all()
    row = db.get(OutboxMessage, message_id)
    assert (report.retried, row.state, row.attempts, "smtp down" in row.last_error) == (
        1,
        OutboxState.PENDING,
        1,
        True,
    )
    assert row.next_attempt_at > dt.datetime.now(dt.UTC)


def test_after_the_last_attempt_the_message_is_kept_as_failed(db, services):
    message_id = _queue_one(db)

    def broken(payload):
        raise TimeoutError("no answer")

    deliver_due(services.sessions, {"mail": broken}, max_attempts=1)
    db.expire_all()
    assert db.get(OutboxMessage, message_id).state == OutboxState.FAILED


def test_backoff_doubles_and_is_capped():
    delays = [backoff(n, rng=lambda: 0.5).total_seconds() for n in (1, 2, 3, 30)]
    assert delays == [30.0, 60.0, 120.0, 6 * 3600.0] and MAX_ATTEMPTS > 5


def test_a_claimed_message_is_not_claimed_again(db, services):
    _queue_one(db)
    calls: list[int] = []

    def nested(payload):
        # A second worker running while the first delivers finds nothing due.
        calls.append(deliver_due(services.sessions, {"mail": lambda p: None}).attempted)

    deliver_due(services.sessions, {"mail": nested})
    assert calls == [0]


def test_no_recipient_queues_nothing(db):
    assert enqueue_mail(db, to=[], subject="x", text="y") is None


def test_no_notify_uri_queues_nothing(db):
    assert enqueue_notification(db, notify_uri=None, resources=["https://x/Authorization/1"]) is None


def test_batch_list_is_espi():
    assert batch_list(["https://gw/a?b=1&c=2"]) == (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<BatchList xmlns="http://naesb.org/espi">'
        b"<resources>https://gw/a?b=1&amp;c=2</resources></BatchList>\n"
    )


def test_the_file_mailer_writes_an_eml(tmp_path):
    FileMailer(tmp_path / "outbox").send(
        build_message(sender="gw@example.com", to=["a@example.com"], subject="Hi", text="Hello")
    )
    (written,) = (tmp_path / "outbox").glob("*.eml")
    assert message_from_bytes(written.read_bytes())["Subject"] == "Hi"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://127.0.0.1:2525", ("plain", "127.0.0.1", 2525, None)),
        ("smtps://u%40x:p%3Aw@mail.example.com", ("tls", "mail.example.com", 465, "u@x")),
        ("smtp+starttls://user:pw@mail.example.com", ("starttls", "mail.example.com", 587, "user")),
    ],
)
def test_smtp_urls(url, expected):
    parsed = parse_smtp_url(url)
    assert (parsed.security, parsed.host, parsed.port, parsed.username) == expected


def test_a_bad_smtp_url_is_a_configuration_error():
    with pytest.raises(ConfigurationError):
        parse_smtp_url("http://mail.example.com")


def test_the_worker_pass_expires_and_delivers(db, services, tmp_path):
    from gateway.outbox.worker import run_once

    _queue_one(db)
    report = run_once(services)
    assert report.delivery.delivered == 1 and len(list(services.settings.mail_outbox_dir.glob("*.eml"))) == 1


def test_delivered_rows_are_marked(db, services):
    message_id = _queue_one(db)
    deliver_due(services.sessions, {"mail": lambda payload: None})
    db.expire_all()
    row = db.scalars(select(OutboxMessage).where(OutboxMessage.id == message_id)).one()
    assert (row.state, row.attempts, row.delivered_at is not None) == (OutboxState.DELIVERED, 1, True)


def test_other_kinds_plug_into_the_same_worker(db, services):
    from gateway.outbox import enqueue
    from gateway.outbox.delivery import _FACTORIES, default_deliverers, register_deliverer

    seen: list[dict] = []
    register_deliverer("test-kind", lambda settings: seen.append)
    try:
        enqueue(db, "test-kind", {"n": 1})
        db.commit()
        deliver_due(services.sessions, default_deliverers(services.settings))
    finally:
        _FACTORIES.pop("test-kind", None)
    assert seen == [{"n": 1}]
