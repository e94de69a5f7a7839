"""The ``odoo.changes`` poll trigger: records created or changed since the last poll.

The cursor is ``{"write_date", "id"}`` of the last record emitted. Odoo stores ``write_date``
with microseconds but serialises it to the second, so the cursor's ``write_date`` names a
one-second *bucket*, and records are found in two parts:

1. the rest of the cursor's bucket: ``write_date`` in ``[wd, wd + 1 s)`` and ``id > last id``,
   by id;
2. the following buckets: ``write_date >= wd + 1 s``, by ``write_date, id``. In that order every
   bucket but the last one of a full batch is complete; the last one is dropped (it is read
   again, in id order, at the next poll), unless it is the only one, which is then read by id.

So no record is emitted twice and none is skipped, whatever the batch size, even when many
records share one second.

A bucket is read only once it is over: records written less than ``settle_seconds`` (default
5) ago are left for a later poll. Otherwise a record written again within the second the
cursor points at would keep its bucket and never be seen again. The margin also covers small
clock differences between the hub and Odoo, and transactions shorter than it (Odoo stamps
``write_date`` at the transaction's start, so a longer one that commits late can be missed).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from hub import ActionError, Trigger
from hub_odoo.client import OdooClient

STAMP = "%Y-%m-%d %H:%M:%S"
DEFAULT_BATCH = 100
DEFAULT_SETTLE = 5.0


def _bucket_end(write_date: str) -> str:
    start = dt.datetime.strptime(write_date[:19], STAMP)
    return (start + dt.timedelta(seconds=1)).strftime(STAMP)


def _bucket(write_date: str) -> list[Any]:
    return [["write_date", ">=", write_date[:19]], ["write_date", "<", _bucket_end(write_date)]]


async def poll_changes(
    ctx: Any, config: dict[str, Any], cursor: dict[str, Any] | None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Records of ``config.model`` matching ``config.domain`` written since ``cursor``."""
    client = OdooClient.of(ctx)
    model = str(config["model"])
    domain = list(config.get("domain") or [])
    fields = list(config.get("fields") or [])
    if fields:
        fields = list(dict.fromkeys([*fields, "id", "write_date"]))
    batch = int(config.get("batch_size") or DEFAULT_BATCH)
    settle = float(config.get("settle_seconds", DEFAULT_SETTLE))
    cutoff = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=settle)).strftime(STAMP)
    what = f"odoo.changes ({model})"

    async def read(terms: list[Any], order: str, limit: int) -> list[dict[str, Any]]:
        settled = [*terms, ["write_date", "<", cutoff]]  # whole seconds, over for a while
        params: dict[str, Any] = {"domain": domain + settled, "order": order, "limit": limit}
        if fields:
            params["fields"] = fields
        found = await client.execute(model, "search_read", params=params, what=what)
        if not isinstance(found, list):
            raise ActionError(f"{what}: search_read did not answer a list")
        return [r for r in found if r.get("write_date")]

    if cursor is None and config.get("start", "now") == "now":
        return [], await _latest(read)
    wd = (cursor or {}).get("write_date")
    last_id = int((cursor or {}).get("id") or 0)
    events: list[dict[str, Any]] = []
    if wd:
        events = await read([*_bucket(wd), ["id", ">", last_id]], "id asc", batch)
    room = batch - len(events)
    if room > 0:
        after = [["write_date", ">=", _bucket_end(wd)]] if wd else []
        rest = await read(after, "write_date asc, id asc", room)
        if len(rest) == room:  # a full batch: its last bucket may be incomplete
            last = rest[-1]["write_date"][:19]
            complete = [r for r in rest if r["write_date"][:19] != last]
            if not complete and not events:
                rest = await read(_bucket(last), "id asc", room)
            else:
                rest = complete
        events += rest
    if not events:
        return [], cursor or {"write_date": None, "id": 0}
    final = events[-1]["write_date"][:19]
    top = max(int(r["id"]) for r in events if r["write_date"][:19] == final)
    return events, {"write_date": final, "id": top}


async def _latest(read: Any) -> dict[str, Any]:
    """The cursor of the newest record: emitting starts after it."""
    newest = await read([], "write_date desc, id desc", 1)
    if not newest:
        return {"write_date": None, "id": 0}
    wd = newest[0]["write_date"][:19]
    top = await read(_bucket(wd), "id desc", 1)
    return {"write_date": wd, "id": int(top[0]["id"]) if top else int(newest[0]["id"])}


CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "model": {
            "type": "string",
            "pattern": r"^[a-z_][a-z0-9_]*(\.[a-z0-9_]+)*$",
            "description": "The model to watch (res.partner, sale.order ...).",
        },
        "domain": {
            "type": "array",
            "description": "An Odoo domain the records must match, e.g. [['customer_rank', "
            "'>', 0]].",
        },
        "fields": {
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "description": "Fields of each record in the run's trigger data (default: all).",
        },
        "batch_size": {"type": "integer", "minimum": 1, "maximum": 1000, "default": DEFAULT_BATCH},
        "start": {
            "enum": ["now", "beginning"],
            "default": "now",
            "description": "now: only records written after the first poll; beginning: every "
            "existing record too.",
        },
        "settle_seconds": {
            "type": "number",
            "minimum": 0,
            "default": DEFAULT_SETTLE,
            "description": "Records written less than this long ago wait for the next poll.",
        },
        "interval": {"type": "number", "exclusiveMinimum": 0, "description": "Seconds."},
    },
    "required": ["model"],
    "additionalProperties": False,
}

CHANGES_TRIGGER = Trigger(
    name="changes",
    kind="poll",
    title="Record created or changed",
    description="Starts a run for each record of a model created or changed (write_date) "
    "since the last poll, oldest first.",
    config_schema=CONFIG_SCHEMA,
    output_schema={
        "type": "object",
        "properties": {
            "id": {"type": "integer", "description": "The record's id."},
            "write_date": {"type": "string", "description": "UTC, YYYY-MM-DD HH:MM:SS."},
        },
        "required": ["id", "write_date"],
    },
    poll=poll_changes,
    interval=60.0,
)
