"""A notify URI down for many minutes gets every BatchList, exactly once, when it is back (ESPI-NOTES §9).

Real HTTP to a receiver on 127.0.0.1 that refuses connections, then listens again on the same port; real outbox rows
on SQLite and PostgreSQL. Time is the injected clock of :func:`gateway.outbox.deliver_due`: the outbox's backoff
(30 s doubling) plays out over "twenty minutes" in a fraction of a second, so the test stays bounded.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from gateway.outbox import default_deliverers, deliver_due, enqueue_notification
from gateway.storage.base import utcnow
from gateway.storage.outbox import OutboxMessage, OutboxState
from tests.multinode.receiver import BatchListReceiver

MESSAGES = 25


class Clock:
    """A clock the test moves forward."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


def test_every_batch_list_is_delivered_once_when_the_receiver_is_back(db, services):
    receiver = BatchListReceiver()  # not started yet: its port refuses connections
    urls = [f"{services.settings.resource_base_url}/Authorization/{n}" for n in range(MESSAGES)]
    for url in urls:
        enqueue_notification(db, notify_uri=receiver.uri, resources=[url])
    db.commit()
    clock = Clock()
    deliverers = default_deliverers(services.settings)
    failed_attempts = 0
    for _minute in range(20):  # down for twenty minutes: a worker pass every simulated minute
        report = deliver_due(services.sessions, deliverers, clock=clock)
        failed_attempts += report.retried + report.failed
        assert report.delivered == 0
        clock.advance(60)
    receiver.start()
    try:
        delivered = 0
        for _pass in range(30):  # back: the pending retries come due within the longest backoff reached so far
            delivered += deliver_due(services.sessions, deliverers, clock=clock).delivered
            clock.advance(60)
        counts = [receiver.count(url) for url in urls]
    finally:
        receiver.stop()
    states = dict(db.execute(select(OutboxMessage.state, func.count()).group_by(OutboxMessage.state)).all())
    print(f"receiver down 20 min: {failed_attempts} failed attempts, then {delivered} delivered; states {states}")
    assert failed_attempts >= 3 * MESSAGES  # retried several times while down, never given up
    assert counts == [1] * MESSAGES
    assert states == {OutboxState.DELIVERED: MESSAGES}
