"""Append-only tables: database triggers that refuse UPDATE and DELETE, carried into the Alembic migration.

An audit trail that application code promises not to rewrite is only as good as the next bug; the database itself
must refuse (the consent issue: "an append-only history of events that no code path rewrites"). A model marked with
:func:`append_only` gets, on SQLite, ``BEFORE UPDATE``/``BEFORE DELETE`` triggers raising ``ABORT``, and on
PostgreSQL a ``BEFORE UPDATE OR DELETE`` row trigger and a ``BEFORE TRUNCATE`` statement trigger raising an exception.

Alembic's autogenerate does not see triggers, so this module registers a schema comparator (alembic.autogenerate
``comparators``) and a renderer: regenerating a migration from the models emits the triggers as plain ``op.execute``
statements chosen by dialect at run time, and the migration never imports model code. ``metadata.create_all`` gets
them too, through SQLAlchemy ``DDL`` ``after_create`` events.
"""

from __future__ import annotations

from typing import Any, TypeVar

from alembic.autogenerate import comparators, renderers
from alembic.operations.ops import MigrateOperation
from alembic.util.langhelpers import DispatchPriority, PriorityDispatchResult
from sqlalchemy import DDL, Table, event, text

__all__ = ["APPEND_ONLY_TABLES", "append_only", "trigger_statements"]

APPEND_ONLY_TABLES: set[str] = set()

_T = TypeVar("_T")


def _trigger_name(table: str) -> str:
    return f"{table}_append_only"


def trigger_statements(table: str, dialect: str) -> list[str]:
    """The DDL that makes ``table`` append-only on ``dialect`` (``sqlite`` or ``postgresql``)."""
    name = _trigger_name(table)
    if dialect == "postgresql":
        return [
            "CREATE OR REPLACE FUNCTION gateway_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'table % is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege'; "
            "END $$",
            f"CREATE TRIGGER {name} BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION gateway_refuse_change()",
            f"CREATE TRIGGER {name}_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION gateway_refuse_change()",
        ]
    return [
        f"CREATE TRIGGER {name}_update BEFORE UPDATE ON {table} "
        f"BEGIN SELECT RAISE(ABORT, 'table {table} is append-only'); END",
        f"CREATE TRIGGER {name}_delete BEFORE DELETE ON {table} "
        f"BEGIN SELECT RAISE(ABORT, 'table {table} is append-only'); END",
    ]


def _drop_statements(table: str, dialect: str) -> list[str]:
    name = _trigger_name(table)
    if dialect == "postgresql":
        return [
            f"DROP TRIGGER IF EXISTS {name} ON {table}",
            f"DROP TRIGGER IF EXISTS {name}_truncate ON {table}",
        ]
    return [f"DROP TRIGGER IF EXISTS {name}_update", f"DROP TRIGGER IF EXISTS {name}_delete"]


def append_only(cls: _T) -> _T:
    """Class decorator for a mapped model: its table refuses UPDATE and DELETE in the database."""
    table: Table = cls.__table__  # type: ignore[attr-defined]
    APPEND_ONLY_TABLES.add(table.name)
    for dialect in ("sqlite", "postgresql"):
        for statement in trigger_statements(table.name, dialect):
            event.listen(table, "after_create", DDL(statement).execute_if(dialect=dialect))  # type: ignore[no-untyped-call]
    return cls


# -- Alembic autogenerate support ------------------------------------------------------------------------------


class CreateAppendOnlyTriggersOp(MigrateOperation):
    """Autogenerate's record that ``table`` needs its append-only triggers."""

    def __init__(self, table: str) -> None:
        self.table = table

    def reverse(self) -> DropAppendOnlyTriggersOp:
        return DropAppendOnlyTriggersOp(self.table)

    def to_diff_tuple(self) -> tuple[Any, ...]:
        return ("add_append_only_triggers", self.table)


class DropAppendOnlyTriggersOp(MigrateOperation):
    """The reverse: drop the triggers of ``table``."""

    def __init__(self, table: str) -> None:
        self.table = table

    def reverse(self) -> CreateAppendOnlyTriggersOp:
        return CreateAppendOnlyTriggersOp(self.table)

    def to_diff_tuple(self) -> tuple[Any, ...]:
        return ("remove_append_only_triggers", self.table)


def _render_by_dialect(comment: str, postgresql: list[str], sqlite: list[str]) -> str:
    lines = [f"# {comment} (gateway.storage.append_only)"]
    lines.append('if op.get_bind().dialect.name == "postgresql":')
    lines.extend(f"    op.execute({statement!r})" for statement in postgresql)
    lines.append("else:")
    lines.extend(f"    op.execute({statement!r})" for statement in sqlite)
    return "\n".join(lines)


@renderers.dispatch_for(CreateAppendOnlyTriggersOp)
def _render_create(autogen_context: Any, op: CreateAppendOnlyTriggersOp) -> str:
    return _render_by_dialect(
        f"{op.table} is append-only: triggers refuse UPDATE and DELETE",
        trigger_statements(op.table, "postgresql"),
        trigger_statements(op.table, "sqlite"),
    )


@renderers.dispatch_for(DropAppendOnlyTriggersOp)
def _render_drop(autogen_context: Any, op: DropAppendOnlyTriggersOp) -> str:
    return _render_by_dialect(
        f"drop the append-only triggers of {op.table}",
        _drop_statements(op.table, "postgresql"),
        _drop_statements(op.table, "sqlite"),
    )


def _existing_triggers(connection: Any, table: str) -> set[str]:
    if connection.dialect.name == "postgresql":
        rows = connection.execute(
            text("SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass(:table) AND NOT tgisinternal"),
            {"table": table},
        )
    else:
        rows = connection.execute(
            text("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :table"),
            {"table": table},
        )
    return {row[0] for row in rows}


@comparators.dispatch_for("schema", priority=DispatchPriority.LAST)
def _compare_append_only(autogen_context: Any, upgrade_ops: Any, schemas: Any) -> PriorityDispatchResult:
    """Emit the triggers of every append-only table of the metadata that lacks them in the database."""
    metadata = autogen_context.metadata
    connection = autogen_context.connection
    if metadata is None or connection is None:
        return PriorityDispatchResult.CONTINUE
    for table in sorted(APPEND_ONLY_TABLES):
        if table not in metadata.tables:
            continue
        if not _existing_triggers(connection, table):
            upgrade_ops.ops.append(CreateAppendOnlyTriggersOp(table))
    return PriorityDispatchResult.CONTINUE
