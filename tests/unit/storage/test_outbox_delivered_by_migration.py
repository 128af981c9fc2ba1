"""Migration 0004 (``outbox_message.delivered_by``) on a database that already holds messages, up and down again."""

from __future__ import annotations

from alembic import command
from sqlalchemy import Engine, inspect, text

from gateway.storage import migrate
from gateway.storage.engine import make_engine

_INSERT = text(
    "INSERT INTO outbox_message (kind, payload, state, created_at, next_attempt_at, attempts, delivered_at) "
    "VALUES ('mail', '{}', 'delivered', :at, :at, 1, :at)"
)


def _at_0003_with_a_delivered_message(url: str) -> Engine:
    engine = make_engine(url)
    migrate.upgrade(engine, "0003")
    with engine.begin() as connection:
        connection.execute(_INSERT, {"at": "2026-01-01 00:00:00+00:00"})
    return engine


def _columns(engine: Engine) -> set[str]:
    return {column["name"] for column in inspect(engine).get_columns("outbox_message")}


def test_upgrade_adds_an_empty_delivered_by_and_keeps_the_rows(fresh_database_url):
    engine = _at_0003_with_a_delivered_message(fresh_database_url)
    migrate.upgrade(engine, "0004")
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT state, delivered_by FROM outbox_message")).all()
    engine.dispose()
    assert [tuple(row) for row in rows] == [("delivered", None)]


def test_downgrade_drops_the_column_and_keeps_the_rows_and_the_due_index(fresh_database_url):
    engine = _at_0003_with_a_delivered_message(fresh_database_url)
    migrate.upgrade(engine, "0004")
    command.downgrade(migrate.alembic_config(engine), "0003")
    columns = _columns(engine)
    indexes = {index["name"] for index in inspect(engine).get_indexes("outbox_message")}
    with engine.connect() as connection:
        count = connection.execute(text("SELECT count(*) FROM outbox_message")).scalar_one()
    engine.dispose()
    assert ("delivered_by" in columns, "ix_outbox_message_due" in indexes, count) == (False, True, 1)
