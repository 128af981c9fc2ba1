"""A hot one-row ``SELECT`` run on the driver's cursor, compiled and typed by SQLAlchemy.

Every ESPI resource request looks its bearer token up (:mod:`gateway.oauth.bearer`), and for that one-row query on
SQLite, SQLAlchemy's per-call execution machinery (an execution context, a ``CursorResult`` with its metadata, the
row's processing) costs as much as the query itself: about 20 µs of 40. :class:`PreparedSelect` keeps everything
SQLAlchemy does well and skips only that per-call machinery, as SQLAlchemy's own documentation shows for working with
the DBAPI cursor directly (``Connection.connection``):

- the SQL is SQLAlchemy's compilation of the statement for the connection's dialect, made once per dialect;
- bound values go through each parameter type's bind processor, and each fetched value through its column type's
  result processor: a ``UTCDateTime`` comes back aware, a JSON column as a dict, exactly as from
  ``Connection.execute``;
- driver errors are raised as SQLAlchemy's own (:meth:`sqlalchemy.exc.DBAPIError.instance`: ``OperationalError``
  and its kin), and an error that means the connection is gone invalidates it, so the error mapping (503 with
  ``Retry-After``) and the pool behave as for any other query.

Left out: statement events (``before_cursor_execute``) and echo logging. A statement SQLAlchemy would rewrite at
execution time (an expanding ``IN``, a post-compile ``LIMIT``) is simply executed the ordinary way.
"""

from __future__ import annotations

import dataclasses
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, InvalidRequestError

__all__ = ["PreparedSelect"]

_Processor = Callable[[Any], Any] | None


@dataclasses.dataclass(slots=True)
class _Plan:
    """The statement compiled for one dialect."""

    sql: str
    names: tuple[str, ...] | None
    """Parameter names in placeholder order (positional paramstyles), or ``None`` to pass a mapping."""
    fixed: dict[str, Any]
    """Values of the statement's own bound literals (``LIMIT 1``)."""
    required: frozenset[str]
    """Parameters the caller must give."""
    bind_processors: dict[str, Callable[[Any], Any]]
    result_processors: tuple[_Processor, ...] | None = None
    """Built on the first fetch: some dialects choose a processor by the column's type code in the description."""


class PreparedSelect:
    """``statement`` (a Core select) compiled once per dialect; :meth:`first` runs it on a connection's cursor."""

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        self._columns = tuple(statement.selected_columns)
        self._plans: weakref.WeakKeyDictionary[Dialect, _Plan | None] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def first(self, connection: Connection, parameters: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The first row for ``parameters`` (each column typed as SQLAlchemy types it), or ``None``."""
        dialect = connection.dialect
        try:
            plan = self._plans[dialect]
        except KeyError:
            plan = self._plan(dialect)
        if plan is None:
            found = connection.execute(self.statement, dict(parameters)).first()
            return None if found is None else tuple(found)
        missing = plan.required.difference(parameters)
        if missing:
            raise InvalidRequestError(f"a value is required for bind parameter {min(missing)!r}")
        values = {**plan.fixed, **parameters}
        for name, process in plan.bind_processors.items():
            values[name] = process(values[name])
        arguments: Sequence[Any] | Mapping[str, Any] = (
            values if plan.names is None else tuple(values[name] for name in plan.names)
        )
        dbapi_connection = connection.connection.dbapi_connection
        if dbapi_connection is None:  # closed under us: let SQLAlchemy raise its own error
            found = connection.execute(self.statement, dict(parameters)).first()
            return None if found is None else tuple(found)
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(plan.sql, arguments)
            row = cursor.fetchone()
            if row is not None and plan.result_processors is None:
                plan.result_processors = self._result_processors(dialect, cursor.description)
        except dialect.loaded_dbapi.Error as error:
            gone = dialect.is_disconnect(error, dbapi_connection, cursor)
            if gone:
                connection.invalidate(error)
            raise DBAPIError.instance(
                plan.sql,
                arguments,
                error,
                dialect.loaded_dbapi.Error,
                connection_invalidated=gone,
                dialect=dialect,
            ) from error
        finally:
            cursor.close()
        if row is None:
            return None
        processors = plan.result_processors
        assert processors is not None
        return tuple(
            value if process is None or value is None else process(value)
            for process, value in zip(processors, row, strict=True)
        )

    def _plan(self, dialect: Dialect) -> _Plan | None:
        with self._lock:
            if dialect in self._plans:
                return self._plans[dialect]
            compiled = self.statement.compile(dialect=dialect)
            plan: _Plan | None = None
            # Expanding or post-compile parameters are rendered per execution: leave those to SQLAlchemy.
            if "POSTCOMPILE" not in compiled.string:
                # By the name in the SQL (compiled.binds also holds anonymous aliases of the same parameters).
                binds = {compiled.bind_names[bind]: bind for bind in compiled.bind_names}
                bind_processors: dict[str, Callable[[Any], Any]] = {}
                for name, bind in binds.items():
                    process = bind.type.dialect_impl(dialect).bind_processor(dialect)
                    if process is not None:
                        bind_processors[name] = process
                plan = _Plan(
                    sql=compiled.string,
                    names=tuple(compiled.positiontup) if compiled.positional and compiled.positiontup else None,
                    fixed={name: bind.effective_value for name, bind in binds.items() if not bind.required},
                    required=frozenset(name for name, bind in binds.items() if bind.required),
                    bind_processors=bind_processors,
                )
            self._plans[dialect] = plan
            return plan

    def _result_processors(self, dialect: Dialect, description: Sequence[Sequence[Any]]) -> tuple[_Processor, ...]:
        if len(description) != len(self._columns):
            raise RuntimeError(f"expected {len(self._columns)} columns, the driver described {len(description)}")
        return tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, described[1])
            for column, described in zip(self._columns, description, strict=True)
        )
