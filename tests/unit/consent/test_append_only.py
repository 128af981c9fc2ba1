"""The consent history is append-only in the database itself (triggers on SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, text, update
from sqlalchemy.exc import DBAPIError

from gateway.storage.consent import ConsentEvent, ConsentRequest


@pytest.fixture
def event_id(db, services) -> int:
    from tests.functional.oauth.helpers import make_client

    client = make_client(db, services.settings, services.digester)
    db.add(ConsentRequest(id="ocr_test", application_id=client.application.id, scope="FB=1"))
    db.flush()
    event = ConsentEvent(consent_request_id="ocr_test", kind="requested", actor="app")
    db.add(event)
    db.flush()
    return event.id


def test_an_event_cannot_be_updated(db, event_id):
    with pytest.raises(DBAPIError, match="append-only"), db.begin_nested():
        db.execute(update(ConsentEvent).where(ConsentEvent.id == event_id).values(kind="granted"))


def test_an_event_cannot_be_deleted(db, event_id):
    with pytest.raises(DBAPIError, match="append-only"), db.begin_nested():
        db.execute(delete(ConsentEvent).where(ConsentEvent.id == event_id))


def test_the_migration_created_the_triggers(db, backend):
    if backend == "postgresql":
        names = db.scalars(text("SELECT tgname FROM pg_trigger WHERE tgrelid = 'consent_event'::regclass")).all()
    else:
        names = db.scalars(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")).all()
    assert {name for name in names if name.startswith("consent_event_append_only")}
