"""The schema the migrations build is the schema the models describe, on SQLite and PostgreSQL.

The service reads and writes through the SQLAlchemy models, but every real database is built by the
Alembic migrations; nothing else ties the two together. An index a model declares but no migration
creates makes a query slow in production only; a column a migration forgot fails on first use; a
NOT NULL the model does not know about fails an insert. This test migrates to head and lets Alembic's
autogenerate comparison list every difference (tables, columns with types and nullability, indexes,
unique constraints, foreign keys).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from contextlib import contextmanager

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Index, MetaData, inspect
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateIndex
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import UnaryExpression

import crm_core
from crm_core.db import Base, create_engine
from crm_core.migrate import upgrade_async


def model_metadata() -> MetaData:
    """Every table any crm_core module declares, not only those crm_core/migrations/env.py imports: a model
    module env.py forgot is a table autogenerate never sees, and it should show up here as missing."""
    for module in pkgutil.iter_modules(crm_core.__path__):
        if module.name != "migrations":
            importlib.import_module(f"crm_core.{module.name}")
    return Base.metadata


@contextmanager
def indexes_for(metadata: MetaData, connection: Connection) -> Iterator[None]:
    """Hide the indexes declared with `ddl_if` for another dialect while comparing.

    Autogenerate ignores `ddl_if`: it would report PostgreSQL's NULLS LAST indexes as missing on SQLite,
    and, as the SQLite and PostgreSQL variants of one index share a name, compare whichever of the two
    it met last. `create_all` skips them the same way (Index._ddl_if), so this is what the models ask for.
    """
    hidden: list[tuple[set[Index], Index]] = []
    for table in metadata.tables.values():
        for index in list(table.indexes):
            rule = index._ddl_if
            if rule is not None and not rule._should_execute(CreateIndex(index), index, connection):
                table.indexes.discard(index)
                hidden.append((table.indexes, index))
    try:
        yield
    finally:
        for indexes, index in hidden:
            indexes.add(index)


def _column(table: str, column) -> str:
    return f"{table}.{column.name}"


def describe(diff) -> str:
    """One difference in plain words: what the models say against what the migrations built."""
    if isinstance(diff, list):  # column modifications come as a list of ops on one column
        return "; ".join(describe(op) for op in diff)
    kind = diff[0]
    if kind == "add_table":
        return f"table {diff[1].name} is declared by a model but no migration creates it"
    if kind == "remove_table":
        return f"table {diff[1].name} is created by a migration but no model declares it"
    if kind == "add_column":
        return f"column {_column(diff[2], diff[3])} is declared by a model but no migration creates it"
    if kind == "remove_column":
        return f"column {_column(diff[2], diff[3])} is created by a migration but no model declares it"
    if kind == "modify_type":
        _, _, table, column, _, existing, wanted = diff
        return f"column {table}.{column} is {existing} in the database but {wanted} in the model"
    if kind == "modify_nullable":
        _, _, table, column, _, existing, wanted = diff
        said = {True: "nullable", False: "NOT NULL"}
        return f"column {table}.{column} is {said[existing]} in the database but {said[wanted]} in the model"
    if kind in ("add_index", "remove_index"):
        index = diff[1]
        what = (f"{'unique ' if index.unique else ''}index {index.name} on {index.table.name}"
                f"({', '.join(str(e) for e in index.expressions)})")
        if kind == "add_index":
            return f"{what} is declared by a model but no migration creates it (or creates it differently)"
        return f"{what} is created by a migration but no model declares it (or declares it differently)"
    if kind in ("add_constraint", "remove_constraint"):
        constraint = diff[1]
        what = (f"{type(constraint).__name__} {constraint.name or '(unnamed)'} on {constraint.table.name}"
                f"({', '.join(c.name for c in constraint.columns)})")
        if kind == "add_constraint":
            return f"{what} is declared by a model but no migration creates it"
        return f"{what} is created by a migration but no model declares it"
    if kind in ("add_fk", "remove_fk"):
        fk = diff[1]
        what = (f"foreign key {fk.table.name}({', '.join(fk.column_keys)}) → "
                f"{fk.referred_table.name}({', '.join(e.column.name for e in fk.elements)})"
                f" ON DELETE {fk.ondelete or 'NO ACTION'}")
        if kind == "add_fk":
            return f"{what} is declared by a model but no migration creates it"
        return f"{what} is created by a migration but no model declares it"
    return f"{kind}: {diff[1:]}"


def _descending(expression) -> bool:
    while isinstance(expression, UnaryExpression):  # desc(), possibly wrapped in nulls_last()
        if expression.modifier is operators.desc_op:
            return True
        expression = expression.element
    return False


def _order(descending: list[bool]) -> str:
    return ", ".join("DESC" if flag else "ASC" for flag in descending)


def index_details(connection: Connection, metadata: MetaData) -> list[str]:
    """What autogenerate leaves out of its index comparison although queries depend on it: PostgreSQL's
    operator classes (`text_pattern_ops` serves the `LIKE 'q%'` searches) and, on SQLite, which columns
    are DESC (SQLite's reflection drops the order; the search's newest-first indexes of 0020 need it)."""
    found = []
    inspector = inspect(connection)
    for table in metadata.tables.values():
        built = {ix["name"]: ix for ix in inspector.get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in built:
                continue  # missing altogether: autogenerate says so
            if connection.dialect.name == "postgresql":
                wanted = dict(index.dialect_options["postgresql"]["ops"] or {})
                have = built[index.name].get("dialect_options", {}).get("postgresql_ops", {})
                if wanted != have:
                    found.append(f"index {index.name} on {table.name} has operator classes {have} in the "
                                 f"database but {wanted} in the model")
            elif connection.dialect.name == "sqlite":
                wanted = [_descending(e) for e in index.expressions]
                rows = connection.exec_driver_sql(f'PRAGMA index_xinfo("{index.name}")').all()
                have = [bool(row[3]) for row in sorted(rows) if row[5]]  # (seqno, cid, name, desc, coll, key)
                if wanted != have:
                    found.append(f"index {index.name} on {table.name} sorts ({_order(have)}) in the database "
                                 f"but ({_order(wanted)}) in the model")
    return found


def differences(connection: Connection) -> list[str]:
    metadata = model_metadata()
    # Server defaults are not compared: the migrations give new NOT NULL columns a server default to fill
    # the rows already there, while the models set Python-side defaults; both are intended.
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    with indexes_for(metadata, connection):
        return ([describe(diff) for diff in compare_metadata(context, metadata)]
                + index_details(connection, metadata))


async def test_migrations_build_what_the_models_declare(backend) -> None:
    await upgrade_async(backend.database_url)  # the fixture's database is at head already; this checks it
    engine = create_engine(backend.database_url)
    try:
        async with engine.connect() as connection:
            found = await connection.run_sync(differences)
    finally:
        await engine.dispose()
    assert not found, (f"{len(found)} difference(s) between the migrations (head) and the models on "
                       f"{backend.name}:\n  " + "\n  ".join(sorted(found)))
