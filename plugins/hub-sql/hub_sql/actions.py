"""The actions: query, insert, upsert, update, delete.

``query`` runs the SQL text it is given with named parameters (``:name``) bound from
``params``: the SQL is never assembled from values. The other actions build their statement
with SQLAlchemy Core from the reflected table, so table and column names are checked against
the database and every value is a bound parameter.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Annotated, Any

import sqlalchemy as sa
from msgspec import Meta, Struct

from hub import ActionError, StepContext, action
from hub_sql.engines import Target, in_thread
from hub_sql.tables import check_columns, column, table_for
from hub_sql.values import coerce, row_to_json, to_json

TableName = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=257,
        description="The table: letters, digits, _ and $ (optionally schema.table).",
    ),
]
Row = dict[str, Any]
Where = Annotated[
    dict[str, Any],
    Meta(
        description="Column -> value; rows match when every column equals its value "
        "(null matches IS NULL, a list matches any of its values)."
    ),
]
MAX_ROWS_LIMIT = 100_000
SELECT = re.compile(r"\s*select\b", re.IGNORECASE)


class QueryInput(Struct, forbid_unknown_fields=True):
    """Input of `sql.query`."""

    sql: Annotated[
        str,
        Meta(
            min_length=1,
            description="SQL with named parameters (:name). Never put {{ }} expressions "
            "here: pass values through params.",
            extra_json_schema={"x-hub-literal": True},
        ),
    ]
    params: Annotated[
        dict[str, Any],
        Meta(description="Values of the :name parameters (a list binds an IN (...) list)."),
    ] = {}
    max_rows: Annotated[
        int, Meta(ge=1, le=MAX_ROWS_LIMIT, description="Return at most this many rows.")
    ] = 1000


class QueryOutput(Struct):
    """Output of `sql.query`."""

    rows: list[Row]
    row_count: Annotated[
        int, Meta(description="Rows returned, or rows changed by a statement returning none.")
    ]
    columns: list[str]
    truncated: Annotated[bool, Meta(description="True when more than max_rows rows matched.")]


class InsertInput(Struct, forbid_unknown_fields=True):
    """Input of `sql.insert`: give `rows` or `row`."""

    table: TableName
    rows: Annotated[list[Row], Meta(description="Rows to insert (column -> value).")] = []
    row: Annotated[Row | None, Meta(description="One row to insert.")] = None


class InsertOutput(Struct):
    """Output of `sql.insert`."""

    inserted: int
    primary_keys: Annotated[
        list[Row] | None,
        Meta(description="The primary key of each inserted row, in order; null without one."),
    ]


class UpsertInput(Struct, forbid_unknown_fields=True):
    """Input of `sql.upsert`."""

    table: TableName
    rows: Annotated[list[Row], Meta(min_length=1, description="Rows (same columns in each).")]
    conflict_keys: Annotated[
        list[str],
        Meta(
            min_length=1,
            description="Columns of a primary key or unique constraint that identify a row.",
        ),
    ]
    update_columns: Annotated[
        list[str] | None,
        Meta(description="Columns to update on conflict; default: every non-key column given."),
    ] = None


class UpsertOutput(Struct):
    """Output of `sql.upsert`."""

    upserted: Annotated[int, Meta(description="Rows inserted or updated.")]


class UpdateInput(Struct, forbid_unknown_fields=True):
    """Input of `sql.update`."""

    table: TableName
    values: Annotated[Row, Meta(min_length=1, description="Column -> new value.")]
    where: Where = {}
    all: Annotated[bool, Meta(description="Allow an empty where (every row).")] = False


class DeleteInput(Struct, forbid_unknown_fields=True):
    """Input of `sql.delete`."""

    table: TableName
    where: Where = {}
    all: Annotated[bool, Meta(description="Allow an empty where (every row).")] = False


class CountOutput(Struct):
    """Rows changed by `sql.update` or `sql.delete`."""

    row_count: int


def _param(value: Any) -> Any:
    """A JSON value as a bind parameter (mappings become JSON text)."""
    if isinstance(value, Mapping):
        return json.dumps(value, ensure_ascii=False)
    return value


@action(
    "query",
    title="Run a SQL query",
    needs_connection=True,
    examples=[
        {
            "input": {
                "sql": "SELECT id, email FROM customers WHERE country = :country",
                "params": {"country": "NL"},
                "max_rows": 100,
            }
        },
        {"input": {"sql": "SELECT * FROM orders WHERE id IN :ids", "params": {"ids": [1, 2]}}},
    ],
)
async def query(ctx: StepContext, data: QueryInput) -> QueryOutput:
    """Run one SQL statement with named parameters (:name) and return its rows.

    Values are always bound from `params`, never written into the SQL: give the SQL as a
    literal and the values as params. A list value binds an `IN :name` list. At most
    `max_rows` rows are returned (`truncated` says whether more matched). The statement runs
    in its own transaction, committed when it succeeds.
    """
    statement = sa.text(data.sql)
    used = set(statement._bindparams)
    missing = sorted(used - set(data.params))
    if missing:
        names = ", ".join(f":{name}" for name in missing)
        raise ActionError(f"sql.query: params: the SQL uses {names} but params has no value")
    lists = [name for name in used if isinstance(data.params.get(name), list | tuple)]
    if lists:
        statement = statement.bindparams(*(sa.bindparam(name, expanding=True) for name in lists))
    params = {name: _param(data.params[name]) for name in used}

    def work(conn: sa.Connection, target: Target) -> QueryOutput:
        # A server-side cursor keeps a huge SELECT out of memory; only plain SELECTs may use one.
        streamed = conn.execution_options(stream_results=True) if SELECT.match(data.sql) else conn
        result = streamed.execute(statement, params)
        if not result.returns_rows:
            return QueryOutput(
                rows=[], row_count=max(result.rowcount, 0), columns=[], truncated=False
            )
        columns = [str(k) for k in result.keys()]  # noqa: SIM118 (a Result, not a dict)
        fetched = result.fetchmany(data.max_rows + 1)
        result.close()
        truncated = len(fetched) > data.max_rows
        rows = [row_to_json(r) for r in fetched[: data.max_rows]]
        return QueryOutput(rows=rows, row_count=len(rows), columns=columns, truncated=truncated)

    return await in_thread(ctx.connection, "sql.query", work)


def _rows_of(data: InsertInput) -> list[Row]:
    if data.row is not None and data.rows:
        raise ActionError("sql.insert: give either rows or row, not both")
    rows = [data.row] if data.row is not None else list(data.rows)
    if not rows:
        raise ActionError("sql.insert: rows: give at least one row (or row)")
    return rows


def _bound(tbl: sa.Table, row: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A row's values coerced for its columns (names already checked)."""
    return {name: coerce(tbl.c[name], value, f"{where}.{name}") for name, value in row.items()}


@action(
    "insert",
    title="Insert rows",
    needs_connection=True,
    examples=[{"input": {"table": "customers", "row": {"email": "ada@example.com"}}}],
)
async def insert(ctx: StepContext, data: InsertInput) -> InsertOutput:
    """Insert one row (`row`) or many (`rows`) into a table, in one transaction.

    Returns the number inserted and each row's primary key where the database can tell
    (PostgreSQL, SQLite 3.35+ and MariaDB 10.5+ through RETURNING; MySQL one row at a time).
    Not idempotent: a retry after a lost connection may insert twice; use upsert for that.
    """
    rows = _rows_of(data)
    field = "row" if data.row is not None else "rows"

    def work(conn: sa.Connection, target: Target) -> InsertOutput:
        tbl = table_for(conn, data.table, rows)
        # Consecutive rows with the same columns go in one statement; rows go in in order.
        groups: list[list[tuple[int, dict[str, Any]]]] = []
        for i, row in enumerate(rows):
            where = field if data.row is not None else f"rows[{i}]"
            check_columns(tbl, row, where)
            if not groups or set(groups[-1][0][1]) != set(row):
                groups.append([])
            groups[-1].append((i, _bound(tbl, row, where)))
        pk = list(tbl.primary_key.columns)
        keys: list[Row | None] = [None] * len(rows)
        dialect = conn.dialect
        for group in groups:
            indexes = [i for i, _ in group]
            values = [v for _, v in group]
            if not pk:
                conn.execute(tbl.insert(), values)
            elif dialect.insert_executemany_returning_sort_by_parameter_order or (
                len(values) == 1 and dialect.insert_returning
            ):
                stmt = tbl.insert().returning(*pk, sort_by_parameter_order=True)
                for i, got in zip(indexes, conn.execute(stmt, values), strict=True):
                    keys[i] = row_to_json(got)
            else:
                for i, value in zip(indexes, values, strict=True):
                    inserted = conn.execute(tbl.insert(), value).inserted_primary_key
                    keys[i] = {c.name: to_json(v) for c, v in zip(pk, inserted or (), strict=False)}
        primary_keys = [k or {} for k in keys] if pk else None
        return InsertOutput(inserted=len(rows), primary_keys=primary_keys)

    return await in_thread(ctx.connection, "sql.insert", work)


def _upsert_statement(tbl: sa.Table, target: Target, keys: list[str], update: list[str]) -> Any:
    if target.family == "mysql":
        from sqlalchemy.dialects import mysql

        my_stmt = mysql.insert(tbl)
        # MySQL picks the conflicting unique key itself; a no-op assignment keeps "do nothing".
        chosen = update or keys[:1]
        return my_stmt.on_duplicate_key_update({c: my_stmt.inserted[c] for c in chosen})
    if target.family == "postgresql":
        from sqlalchemy.dialects import postgresql

        pg_stmt = postgresql.insert(tbl)
        if not update:
            return pg_stmt.on_conflict_do_nothing(index_elements=keys)
        return pg_stmt.on_conflict_do_update(
            index_elements=keys, set_={c: pg_stmt.excluded[c] for c in update}
        )
    from sqlalchemy.dialects import sqlite

    lite_stmt = sqlite.insert(tbl)
    if not update:
        return lite_stmt.on_conflict_do_nothing(index_elements=keys)
    return lite_stmt.on_conflict_do_update(
        index_elements=keys, set_={c: lite_stmt.excluded[c] for c in update}
    )


@action(
    "upsert",
    title="Insert or update rows",
    needs_connection=True,
    idempotent=True,
    examples=[
        {
            "input": {
                "table": "customers",
                "rows": [{"email": "ada@example.com", "name": "Ada"}],
                "conflict_keys": ["email"],
            }
        }
    ],
)
async def upsert(ctx: StepContext, data: UpsertInput) -> UpsertOutput:
    """Insert rows, updating those that already exist (by `conflict_keys`).

    PostgreSQL and SQLite use INSERT ... ON CONFLICT (conflict_keys) DO UPDATE, so the keys
    must be a primary key or unique constraint; MySQL and MariaDB use ON DUPLICATE KEY UPDATE,
    which reacts to any unique key of the table. Every row must have the same columns,
    conflict keys included. Safe to retry.
    """
    rows = data.rows
    columns = list(rows[0])

    def work(conn: sa.Connection, target: Target) -> UpsertOutput:
        tbl = table_for(conn, data.table, [*rows, dict.fromkeys(data.conflict_keys)])
        check_columns(tbl, data.conflict_keys, "conflict_keys")
        for i, row in enumerate(rows):
            check_columns(tbl, row, f"rows[{i}]")
            if set(row) != set(columns):
                raise ActionError(
                    f"sql.upsert: rows[{i}] has other columns than rows[0] "
                    f"({', '.join(sorted(row))} vs {', '.join(sorted(columns))})"
                )
        absent = [k for k in data.conflict_keys if k not in columns]
        if absent:
            raise ActionError(f"sql.upsert: conflict_keys: the rows have no {', '.join(absent)}")
        if data.update_columns is None:
            update = [c for c in columns if c not in data.conflict_keys]
        else:
            check_columns(tbl, data.update_columns, "update_columns")
            update = list(data.update_columns)
            stray = [c for c in update if c not in columns]
            if stray:
                raise ActionError(
                    f"sql.upsert: update_columns: the rows have no {', '.join(stray)}"
                )
        stmt = _upsert_statement(tbl, target, list(data.conflict_keys), update)
        conn.execute(stmt, [_bound(tbl, row, f"rows[{i}]") for i, row in enumerate(rows)])
        return UpsertOutput(upserted=len(rows))

    return await in_thread(ctx.connection, "sql.upsert", work)


def _where(tbl: sa.Table, where: Mapping[str, Any], what: str, allow_all: bool) -> Any:
    if not where and not allow_all:
        raise ActionError(
            f"{what}: where is empty, which would touch every row; give where, or all: true"
        )
    clauses = []
    for name, value in where.items():
        col = column(tbl, name, f"where.{name}")
        if value is None:
            clauses.append(col.is_(None))
        elif isinstance(value, list):
            clauses.append(col.in_([coerce(col, v, f"where.{name}") for v in value]))
        elif isinstance(value, Mapping):
            raise ActionError(f"where.{name}: expected a value or a list of values, not a mapping")
        else:
            clauses.append(col == coerce(col, value, f"where.{name}"))
    return sa.and_(sa.true(), *clauses)


@action(
    "update",
    title="Update rows",
    needs_connection=True,
    idempotent=True,
    examples=[{"input": {"table": "orders", "values": {"status": "shipped"}, "where": {"id": 42}}}],
)
async def update(ctx: StepContext, data: UpdateInput) -> CountOutput:
    """Set `values` on the rows matching `where` (column equals value, all of them).

    An empty `where` is refused unless `all` is true. Returns the number of rows changed
    (MySQL and MariaDB count rows matched).
    """

    def work(conn: sa.Connection, target: Target) -> CountOutput:
        tbl = table_for(conn, data.table, [data.values, data.where])
        check_columns(tbl, data.values, "values")
        clause = _where(tbl, data.where, "sql.update", data.all)
        stmt = tbl.update().where(clause).values(_bound(tbl, data.values, "values"))
        return CountOutput(row_count=max(conn.execute(stmt).rowcount, 0))

    return await in_thread(ctx.connection, "sql.update", work)


@action(
    "delete",
    title="Delete rows",
    needs_connection=True,
    idempotent=True,
    examples=[{"input": {"table": "sessions", "where": {"user_id": 7}}}],
)
async def delete(ctx: StepContext, data: DeleteInput) -> CountOutput:
    """Delete the rows matching `where`; an empty `where` is refused unless `all` is true."""

    def work(conn: sa.Connection, target: Target) -> CountOutput:
        tbl = table_for(conn, data.table, [data.where])
        clause = _where(tbl, data.where, "sql.delete", data.all)
        return CountOutput(row_count=max(conn.execute(tbl.delete().where(clause)).rowcount, 0))

    return await in_thread(ctx.connection, "sql.delete", work)


ACTIONS = [query, insert, upsert, update, delete]
