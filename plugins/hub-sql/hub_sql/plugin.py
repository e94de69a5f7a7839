"""The ``sql`` connector: PostgreSQL, MySQL/MariaDB and SQLite through SQLAlchemy."""

from __future__ import annotations

import asyncio
from typing import Any

from hub import Connector, hookimpl
from hub_sql import __version__
from hub_sql.actions import ACTIONS
from hub_sql.engines import ENGINES, test_connection
from hub_sql.trigger import NEW_ROWS

CONNECTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Either url, or dialect with host, port, database, username and password.",
    "properties": {
        "url": {
            "type": "string",
            "writeOnly": True,
            "description": "A SQLAlchemy URL, e.g. postgresql://user:pw@db.example.com/sales, "
            "mysql://user:pw@host/db, sqlite:////var/lib/app.db. Secret: it may hold a "
            "password. Async drivers are replaced by the default sync driver.",
        },
        "dialect": {
            "type": "string",
            "enum": ["postgresql", "mysql", "sqlite"],
            "description": "The database kind (mysql also covers MariaDB).",
        },
        "host": {"type": "string", "description": "Server host name (default localhost)."},
        "port": {
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": 65535},
                {"type": "string", "pattern": "^[0-9]{1,5}$"},
            ],
            "description": "Server port (default: the dialect's).",
        },
        "database": {
            "type": "string",
            "description": "The database name; for sqlite, the path of the database file.",
        },
        "username": {"type": "string"},
        "password": {"type": "string", "writeOnly": True},
        "options": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "Driver options added to the URL query, e.g. {sslmode: require}.",
        },
        "statement_timeout": {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$"},
            ],
            "default": 30,
            "description": "Seconds a statement may run on the server (0: no limit; "
            "PostgreSQL and MySQL/MariaDB).",
        },
    },
    "oneOf": [{"required": ["url"]}, {"required": ["dialect"]}],
}

NOTES = """\
**Engines.** Every call runs on SQLAlchemy's synchronous engine in a worker thread
(`asyncio.to_thread`). A sync engine is not tied to an event loop, so one engine (one
connection pool) per connection URL serves every run and trigger of the process; the plugin
keeps at most 16 in an LRU and disposes of the one it evicts. Drivers: psycopg2 for
PostgreSQL, PyMySQL for MySQL/MariaDB, the standard library's sqlite3 (`pip install
"hub-sql[all]"`). A URL naming an async driver (asyncpg, aiomysql, aiosqlite) gets the sync one.

**Statement timeout.** A step's timeout cannot interrupt a thread, so each transaction sets a
server-side limit (`statement_timeout` seconds, default 30; PostgreSQL `statement_timeout`,
MariaDB `max_statement_time`, MySQL `max_execution_time` for SELECTs). SQLite has none.

**Parameters, never string-built SQL.** `sql.query` binds `:name` parameters from `params`;
a list binds an `IN :name` list, a mapping is bound as JSON text. Keep the `sql` field a
literal: a `{{ }}` expression inside it would put data into the SQL text, which is exactly
what parameters avoid. Write `\\:` for a literal colon followed by a word. The other actions
check the table (`name` or `schema.name`, letters, digits, `_`, `$`) and every column against
the reflected table and refuse unknown ones by name.

**Values.** Rows come back as JSON: dates and times as ISO 8601 strings, `Decimal` as a
string (no digit lost; convert with `| float` when needed), bytes as base64, UUIDs as strings,
intervals as seconds. Going in, an ISO string for a date/time column, base64 for a binary
column and a number or string for a decimal column are converted for the column's type.
SQLite has no date or decimal types: `sql.query` returns what SQLite stored (dates as text,
decimals as floats); the table actions and the trigger convert by the declared column type.

**Errors.** Refused credentials or a missing database fail at once (not retried); connection
errors, deadlocks, serialization failures, lock waits and statement timeouts are retryable
(the transaction was rolled back); a broken constraint, a syntax error or an unknown table or
column are not. Messages carry the server's text, never the password or the URL.

**Idempotency.** Databases take no idempotency key. `upsert`, `update` and `delete` are safe
to retry; `insert` is not (a retry after a connection lost during COMMIT may insert twice):
use `upsert` with a unique key when a row must be written exactly once. MySQL has no
`RETURNING` (MariaDB 10.5+ has): there `insert` inserts row by row to report primary keys.
`upsert` on MySQL/MariaDB is `ON DUPLICATE KEY UPDATE`, which reacts to any unique key.

**The `new_rows` trigger and its cursor.** The cursor only moves forward, so a row whose
cursor value is lower than one already seen is never picked up. That happens when values are
not assigned in commit order: two transactions that take `updated_at = now()` (or an
auto-increment id) and commit in the opposite order, clocks of several writers that differ,
or `updated_at` values written by hand. Prefer an auto-increment id for inserts on a single
writer; for changed rows, set `updated_at` from the database at commit time
(a trigger or `clock_timestamp()`), and poll less often than your longest write transaction.
Rows with a null cursor value are never seen. An `updated_at` cursor starts a run for every
change, including repeated changes of the same row.
"""


def sql_connector() -> Connector:
    """The connector description."""
    return Connector(
        name="sql",
        title="SQL databases",
        version=__version__,
        icon="database",
        description="Query and change PostgreSQL, MySQL/MariaDB and SQLite databases; start "
        "a flow for each new row of a table.",
        connection_schema=CONNECTION_SCHEMA,
        actions=list(ACTIONS),
        triggers=[NEW_ROWS],
        test_connection=test_connection,
        notes=NOTES,
    )


@hookimpl
def hub_connectors() -> list[Connector]:
    """The ``sql`` connector."""
    return [sql_connector()]


@hookimpl
async def hub_shutdown(hub: Any) -> None:
    """Close the pooled database connections when the hub stops."""
    await asyncio.to_thread(ENGINES.clear)
