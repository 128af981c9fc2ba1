"""Regression: a worker whose claim lapsed mid-pass must not deliver what another worker has claimed since.

A pass claims up to 50 messages under one lease (5 minutes), then delivers them one after the other. With a slow
receiver (each POST may take its full timeout) the lease could run out half-way; another worker then claims the rest,
and both delivered them: every later BatchList of the pass arrived twice. Now a worker checks its lease before each
delivery and hands back what it can no longer deliver safely.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from gateway.outbox import deliver_due, enqueue_notification
from gateway.outbox.delivery import LEASE
from gateway.storage.base import utcnow
from gateway.storage.outbox import OutboxMessage, OutboxState


def test_a_worker_whose_lease_lapsed_does_not_deliver_the_rest_of_its_batch(db, services):
    for n in range(4):
        enqueue_notification(db, notify_uri="http://127.0.0.1:9/notify", resources=[f"urn:test:{n}"])
    db.commit()
    now = [utcnow()]
    delivered: list[tuple[str, str]] = []

    def clock() -> dt.datetime:
        return now[0]

    def slow_worker(payload: dict) -> None:
        delivered.append(("slow", payload["resources"][0]))
        if len(delivered) == 1:
            now[0] += LEASE - dt.timedelta(seconds=10)  # the first POST takes almost the whole lease
        else:
            # The next one runs past the lease's end; meanwhile a second worker runs its own pass.
            now[0] += dt.timedelta(seconds=20)
            other = {"notification": lambda p: delivered.append(("other", p["resources"][0]))}
            deliver_due(services.sessions, other, clock=clock)

    deliver_due(services.sessions, {"notification": slow_worker}, clock=clock)
    # Whatever is left over (handed back, not delivered) goes out on the next pass of any worker.
    now[0] += dt.timedelta(seconds=1)
    later = {"notification": lambda p: delivered.append(("later", p["resources"][0]))}
    deliver_due(services.sessions, later, clock=clock)
    resources = sorted(resource for _, resource in delivered)
    db.expire_all()
    states = db.scalars(select(OutboxMessage.state)).all()
    assert resources == [f"urn:test:{n}" for n in range(4)], delivered
    assert states == [OutboxState.DELIVERED] * 4


def test_messages_a_worker_cannot_deliver_in_time_are_handed_back_at_once(db, services):
    for n in range(3):
        enqueue_notification(db, notify_uri="http://127.0.0.1:9/notify", resources=[f"urn:test:{n}"])
    db.commit()
    now = [utcnow()]

    def slow(payload: dict) -> None:
        now[0] += LEASE - dt.timedelta(seconds=30)  # too little of the lease is left to start another delivery

    report = deliver_due(services.sessions, {"notification": slow}, clock=lambda: now[0])
    db.expire_all()
    claimed = db.scalars(select(OutboxMessage.claimed_until).where(OutboxMessage.state == OutboxState.PENDING)).all()
    assert (report.delivered, claimed) == (1, [None, None])
