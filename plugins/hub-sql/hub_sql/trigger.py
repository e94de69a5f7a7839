"""The ``new_rows`` poll trigger: one event (one run) per new row, by a cursor column.

Each poll selects the rows whose ``cursor_column`` is greater than the stored cursor, in
order, at most ``batch_size`` of them; the cursor becomes the last row's value. The hub stores
the cursor in the same transaction as the runs it started, so a row is neither skipped nor
started twice when the hub stops between polls.

Rows that share one cursor value are never split across two polls: when a full batch ends
inside such a group, the group is left for the next poll (or, when the whole batch is one
group, the whole group is taken, even beyond ``batch_size``).

The first poll without a stored cursor only records where the table is now (its current
maximum), so a new flow does not back-fill; ``from_start: true`` starts from the first row.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from hub import ActionError, Trigger
from hub_sql.engines import Target, in_thread
from hub_sql.tables import check_columns, column, table
from hub_sql.values import coerce, row_to_json, to_json

DEFAULT_BATCH = 100
MAX_BATCH = 10_000

CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "table": {
            "type": "string",
            "minLength": 1,
            "description": "The table to watch (optionally schema.table).",
        },
        "cursor_column": {
            "type": "string",
            "minLength": 1,
            "description": "A column that grows with each new (or changed) row: an "
            "auto-increment id, or an updated_at timestamp.",
        },
        "columns": {
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "description": "Columns to return (default: all); the cursor column is always added.",
        },
        "batch_size": {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_BATCH,
            "default": DEFAULT_BATCH,
            "description": "Most rows taken per poll (the rest wait for the next poll).",
        },
        "from_start": {
            "type": "boolean",
            "default": False,
            "description": "On the first poll, take the rows already there (default: only "
            "rows that arrive after the flow is published).",
        },
        "interval": {
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "Seconds between polls (default 60).",
        },
    },
    "required": ["table", "cursor_column"],
    "additionalProperties": False,
}

DESCRIPTION = """Start one run per new row of a table, found by a cursor column.

Each poll takes the rows whose `cursor_column` is greater than the last value seen, in order
(at most `batch_size`). The run's `trigger` is the row (column -> value, JSON as the actions
return it). With an `updated_at` column this also sees changed rows. See the connector notes
for the caveat about timestamps and ids that do not grow in commit order."""


def _config(config: Mapping[str, Any]) -> tuple[str, str, list[str], int, bool]:
    cursor_column = config.get("cursor_column")
    if not isinstance(cursor_column, str) or not cursor_column:
        raise ActionError("trigger.config.cursor_column: give the column to follow")
    columns = config.get("columns") or []
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise ActionError("trigger.config.columns: expected a list of column names")
    batch = config.get("batch_size", DEFAULT_BATCH)
    if isinstance(batch, bool) or not isinstance(batch, int) or not 0 < batch <= MAX_BATCH:
        raise ActionError(f"trigger.config.batch_size: expected 1 to {MAX_BATCH}")
    return config.get("table", ""), cursor_column, columns, batch, bool(config.get("from_start"))


async def poll_new_rows(
    ctx: Any, config: Mapping[str, Any], cursor: Any
) -> tuple[list[dict[str, Any]], Any]:
    """Poll once: ``(rows after the cursor, the new cursor)``.

    The cursor is ``{"value": <last cursor_column value, as JSON>}``; ``{"value": null}``
    means "from the first row" (the table was empty when the flow started).
    """
    name, cursor_column, columns, batch, from_start = _config(config)
    if ctx.connection is None:
        raise ActionError("sql.new_rows: the trigger needs a connection (trigger.connection)")
    started = isinstance(cursor, Mapping) and "value" in cursor

    def work(conn: sa.Connection, target: Target) -> tuple[list[dict[str, Any]], Any]:
        tbl = table(conn, name, [cursor_column, *columns], "trigger.config.table")
        col = column(tbl, cursor_column, "trigger.config.cursor_column")
        check_columns(tbl, columns, "trigger.config.columns")
        if not started and not from_start:
            top = conn.execute(sa.select(sa.func.max(col))).scalar()
            return [], {"value": to_json(top)}
        last = cursor.get("value") if started else None
        chosen = [tbl.c[c] for c in dict.fromkeys([*columns, cursor_column])] if columns else [tbl]
        after = col.is_not(None) if last is None else col > coerce(col, last, "cursor")
        stmt = sa.select(*chosen).where(after).order_by(col).limit(batch + 1)
        rows = list(conn.execute(stmt))
        if len(rows) > batch:
            beyond, rows = rows[batch], rows[:batch]
            edge = rows[-1]._mapping[cursor_column]
            if beyond._mapping[cursor_column] == edge:  # a group of equal values crosses the edge
                # Leave the group for the next poll, or take it whole if it fills the batch.
                kept = [r for r in rows if r._mapping[cursor_column] != edge]
                rows = kept or list(conn.execute(sa.select(*chosen).where(col == edge)))
        if not rows:
            return [], {"value": last}
        return [row_to_json(r) for r in rows], {"value": to_json(rows[-1]._mapping[cursor_column])}

    return await in_thread(ctx.connection, "sql.new_rows", work)


NEW_ROWS = Trigger(
    name="new_rows",
    kind="poll",
    title="New rows",
    description=DESCRIPTION,
    config_schema=CONFIG_SCHEMA,
    output_schema={"type": "object", "description": "The row: column -> value."},
    poll=poll_new_rows,
    interval=60.0,
)
