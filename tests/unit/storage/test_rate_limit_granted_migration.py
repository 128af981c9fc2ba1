"""Migration 0005 (``rate_limit_bucket.granted``) on a database that already holds buckets, up and down again."""

from __future__ import annotations

from alembic import command
from sqlalchemy import Engine, inspect, text

from gateway.storage import migrate
from gateway.storage.engine import make_engine


def _at_0004_with_a_bucket(url: str) -> Engine:
    engine = make_engine(url)
    migrate.upgrade(engine, "0004")
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO rate_limit_bucket (key, tokens, refilled_at) VALUES ('espi:app', 7.5, 1800000000.0)")
        )
    return engine


def test_upgrade_adds_granted_zero_and_keeps_the_buckets(fresh_database_url):
    engine = _at_0004_with_a_bucket(fresh_database_url)
    migrate.upgrade(engine, "0005")
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT key, tokens, granted FROM rate_limit_bucket")).all()
    engine.dispose()
    assert [tuple(row) for row in rows] == [("espi:app", 7.5, 0)]


def test_downgrade_drops_the_column_and_keeps_the_buckets(fresh_database_url):
    engine = _at_0004_with_a_bucket(fresh_database_url)
    migrate.upgrade(engine, "0005")
    command.downgrade(migrate.alembic_config(engine), "0004")
    columns = {column["name"] for column in inspect(engine).get_columns("rate_limit_bucket")}
    with engine.connect() as connection:
        count = connection.execute(text("SELECT count(*) FROM rate_limit_bucket")).scalar_one()
    engine.dispose()
    assert ("granted" in columns, count) == (False, 1)
