"""PreparedSelect answers exactly what ``Connection.execute(...).first()`` answers, and fails the same way."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import bindparam, insert, literal_column, select, text
from sqlalchemy.exc import DBAPIError, InvalidRequestError

from gateway.storage.models import RetailCustomer, UsagePoint
from gateway.storage.prepared import PreparedSelect

_point = UsagePoint.__table__
_customer = RetailCustomer.__table__

POINT_BY_ID = PreparedSelect(
    select(_point, _customer.c.username)
    .join(_customer, _customer.c.id == _point.c.customer_id)
    .where(_point.c.id == bindparam("point_id"))
    .limit(1)
)


@pytest.fixture
def point_id(connection) -> int:
    customer_id = connection.execute(
        insert(_customer)
        .values(uuid=uuid.uuid4(), username="prepared", email="p@example.com")
        .returning(_customer.c.id)
    ).scalar_one()
    return int(
        connection.execute(
            insert(_point)
            .values(
                uuid=uuid.uuid4(),
                customer_id=customer_id,
                description="Typed columns: a UUID, aware datetimes, a JSON mapping",
                service_kind=0,
                service_delivery_point={"name": "SDP-1", "tariffRiderRefs": [{"riderType": "net"}]},
                measurements={"ratedPower": {"value": 5, "powerOfTenMultiplier": 3}},
                published=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
                updated=dt.datetime(2024, 6, 1, 12, 30, tzinfo=dt.UTC),
            )
            .returning(_point.c.id)
        ).scalar_one()
    )


def test_a_row_is_typed_as_sqlalchemy_types_it(connection, point_id):
    expected = connection.execute(POINT_BY_ID.statement, {"point_id": point_id}).one()
    found = POINT_BY_ID.first(connection, {"point_id": point_id})
    assert found == tuple(expected)
    values = dict(zip(expected._fields, found, strict=True))
    assert isinstance(values["uuid"], uuid.UUID)
    assert values["updated"] == dt.datetime(2024, 6, 1, 12, 30, tzinfo=dt.UTC)
    assert values["updated"].tzinfo is not None
    assert values["service_delivery_point"]["tariffRiderRefs"] == [{"riderType": "net"}]


def test_the_second_call_uses_the_same_plan_and_answers_alike(connection, point_id):
    first = POINT_BY_ID.first(connection, {"point_id": point_id})
    assert POINT_BY_ID.first(connection, {"point_id": point_id}) == first


def test_no_row_is_none(connection, point_id):
    assert POINT_BY_ID.first(connection, {"point_id": point_id + 1000}) is None


def test_a_missing_parameter_is_an_error_not_a_wrong_answer(connection, point_id):
    with pytest.raises(InvalidRequestError, match="'point_id'"):
        POINT_BY_ID.first(connection, {})


def _error_of(connection, run) -> DBAPIError:
    """The error ``run()`` raises, inside a savepoint (PostgreSQL aborts the whole transaction otherwise)."""
    savepoint = connection.begin_nested()
    try:
        with pytest.raises(DBAPIError) as raised:
            run()
    finally:
        savepoint.rollback()
    return raised.value


@pytest.mark.parametrize(
    "statement",
    [
        select(literal_column("no_such_column")).select_from(text("no_such_table")),
        select(literal_column("1")).where(text("syntax error here")),
    ],
    ids=["unknown table", "syntax error"],
)
def test_a_driver_error_is_raised_as_sqlalchemy_raises_it(connection, statement):
    prepared = _error_of(connection, lambda: PreparedSelect(statement).first(connection, {}))
    ordinary = _error_of(connection, lambda: connection.execute(statement).first())
    assert type(prepared) is type(ordinary)
    assert type(prepared.orig) is type(ordinary.orig)
    # Not a lost connection: the connection stays usable, and the error mapping answers 500, not 503.
    assert not prepared.connection_invalidated
    assert not connection.invalidated
    assert connection.execute(select(literal_column("1"))).scalar_one() == 1


def test_an_expanding_in_is_left_to_sqlalchemy(connection, point_id):
    expanding = PreparedSelect(select(_point.c.id).where(_point.c.id.in_(bindparam("ids", expanding=True))))
    assert expanding.first(connection, {"ids": [point_id, point_id + 1]}) == (point_id,)


def test_a_lost_connection_is_invalidated_and_reported_as_such(migrated_engine, backend):
    """The error mapping answers 503 for it, and the pool replaces the connection (PostgreSQL: a killed backend)."""
    if backend != "postgresql":
        pytest.skip("a SQLite file connection cannot be lost from outside")
    one = PreparedSelect(select(literal_column("1")))
    with migrated_engine.connect() as victim, migrated_engine.connect() as killer:
        assert one.first(victim, {}) == (1,)
        pid = victim.execute(text("SELECT pg_backend_pid()")).scalar_one()
        killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(DBAPIError) as raised:
            one.first(victim, {})
        assert raised.value.connection_invalidated
        assert victim.invalidated
